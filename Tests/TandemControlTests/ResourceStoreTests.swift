import Testing
import TandemControl
import TandemCore
import TandemDaemon

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ResourceStoreTests {
    func spec(_ name: String, volume: String = "/dev/vdb") -> ResourceSpec {
        ResourceSpec(name: name, volume: volume, sizeBytes: 1 << 20, nbd: NBDSpec(socket: "/run/tandem/\(name).nbd"))
    }

    func writeFile(_ path: String, _ text: String) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = Array(text.utf8).withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
    }

    @Test func savedResourcesComeBackAfterARestart() throws {
        let stateDir = makeTemporaryDirectory()
        defer { removeTree(stateDir) }
        let saved = [spec("r0"), spec("r1", volume: "/var/lib/tandem/r1.img")]
        for resource in saved { try ResourceStore(stateDir: stateDir).save(resource) }
        let loaded = ResourceStore(stateDir: stateDir).loadAll()
        #expect(loaded.specs == saved)
        #expect(loaded.problems.isEmpty)
    }

    @Test func savingAgainReplacesAndRemoveForgets() throws {
        let stateDir = makeTemporaryDirectory()
        defer { removeTree(stateDir) }
        let store = ResourceStore(stateDir: stateDir)
        try store.save(spec("r0"))
        try store.save(spec("r0", volume: "/dev/vdc"))
        #expect(store.loadAll().specs == [spec("r0", volume: "/dev/vdc")])
        try store.remove(name: "r0")
        try store.remove(name: "r0")
        #expect(store.loadAll().specs.isEmpty)
    }

    /// A crash between writing the temporary file and the rename leaves the old spec in force.
    @Test func aCrashBeforeTheRenameLeavesTheOldSpecIntact() throws {
        let stateDir = makeTemporaryDirectory()
        defer { removeTree(stateDir) }
        let store = ResourceStore(stateDir: stateDir)
        try store.save(spec("r0"))
        writeFile("\(stateDir)/resources/.r0.json.tmp", "{\"version\":1,\"spec\":{\"name\":\"r0\",\"vol")
        let loaded = store.loadAll()
        #expect(loaded.specs == [spec("r0")])
        #expect(loaded.problems.isEmpty)
        #expect(access("\(stateDir)/resources/.r0.json.tmp", F_OK) != 0)
    }

    /// Files from before the unbuilt settings were refused hold them at their defaults: the
    /// resource still loads. One that asked for a rate limit is refused with the key named.
    @Test func anOlderFileWithUnbuiltSettingsAtTheirDefaultsStillLoads() throws {
        let stateDir = makeTemporaryDirectory()
        defer { removeTree(stateDir) }
        let store = ResourceStore(stateDir: stateDir)
        mkdir("\(stateDir)/resources", 0o750)
        func file(_ name: String, _ extra: String) -> String {
            "{\"version\":1,\"spec\":{\"name\":\"\(name)\",\"volume\":\"/dev/vdb\",\"size_bytes\":1048576,"
                + "\"nbd\":{\"socket\":\"/run/tandem/\(name).nbd\"},\(extra)}}"
        }
        let legacy = "\"resync_rate\":0,\"bandwidth\":0,\"fencing\":\"dont-care\",\"after_split_brain\":\"disconnect\""
        writeFile("\(stateDir)/resources/r0.json", file("r0", legacy))
        writeFile("\(stateDir)/resources/r1.json", file("r1", "\"resync_rate\":5"))
        let loaded = store.loadAll()
        #expect(loaded.specs == [spec("r0")])
        #expect(loaded.problems.count == 1)
        #expect(loaded.problems.first?.contains("'resync_rate'") == true)
    }

    @Test func aDamagedFileIsReportedAndTheOthersStillLoad() throws {
        let stateDir = makeTemporaryDirectory()
        defer { removeTree(stateDir) }
        let store = ResourceStore(stateDir: stateDir)
        try store.save(spec("good"))
        writeFile("\(stateDir)/resources/torn.json", "{\"version\":1,\"spe")
        writeFile("\(stateDir)/resources/other.json", JSONCodec.serializeString(.object(["version": .int(1), "spec": .object(spec("r7").jsonFields)])))
        let loaded = store.loadAll()
        #expect(loaded.specs == [spec("good")])
        #expect(loaded.problems.count == 2)
        #expect(loaded.problems.contains { $0.contains("torn.json") })
        #expect(loaded.problems.contains { $0.contains("other.json") && $0.contains("r7") })
    }

    @Test func aMissingStateDirectoryMeansNoResources() {
        let loaded = ResourceStore(stateDir: "/nonexistent/tandem").loadAll()
        #expect(loaded.specs.isEmpty && loaded.problems.isEmpty)
    }
}
