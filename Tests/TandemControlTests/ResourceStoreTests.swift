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

    /// Format-1 files predate `fencing`: they keep the behaviour they were created with
    /// (`suspend-io`) and say so, whether they carry the unbuilt settings at their defaults
    /// of then (`fencing: dont-care` included, which was never carried out) or nothing. One
    /// that asked for an unbuilt setting is refused with the key named.
    @Test func aFormatOneFileLoadsAsSuspendIOAndSaysSo() throws {
        let stateDir = makeTemporaryDirectory()
        defer { removeTree(stateDir) }
        let store = ResourceStore(stateDir: stateDir)
        mkdir("\(stateDir)/resources", 0o750)
        func file(_ name: String, _ extra: String) -> String {
            "{\"version\":1,\"spec\":{\"name\":\"\(name)\",\"volume\":\"/dev/vdb\",\"size_bytes\":1048576,"
                + "\"nbd\":{\"socket\":\"/run/tandem/\(name).nbd\"}\(extra)}}"
        }
        let legacy = ",\"resync_rate\":0,\"bandwidth\":0,\"fencing\":\"dont-care\",\"after_split_brain\":\"disconnect\""
        writeFile("\(stateDir)/resources/r0.json", file("r0", legacy))
        writeFile("\(stateDir)/resources/r1.json", file("r1", ""))
        writeFile("\(stateDir)/resources/r2.json", file("r2", ",\"bandwidth\":-5"))
        var new = spec("r3")
        new.resyncRateBytesPerSecond = 8 << 20
        try store.save(new)
        let loaded = store.loadAll()
        var old = [spec("r0"), spec("r1")]
        for index in old.indices { old[index].fencing = .suspendIO }
        #expect(loaded.specs == old + [new])
        #expect(loaded.fencingDefaulted == ["r0", "r1"], "a format-2 file's fencing is its own")
        #expect(loaded.problems.count == 1)
        #expect(loaded.problems.first?.contains("'bandwidth'") == true)
        // Rewritten, an old file is format 2 and no longer defaulted.
        try store.save(loaded.specs[0])
        let again = store.loadAll()
        #expect(again.specs.first == old[0] && again.fencingDefaulted == ["r1"])
    }

    @Test func aNewerFormatIsRefusedNotMisread() throws {
        let stateDir = makeTemporaryDirectory()
        defer { removeTree(stateDir) }
        mkdir("\(stateDir)/resources", 0o750)
        writeFile("\(stateDir)/resources/r9.json", JSONCodec.serializeString(.object(["version": .int(3), "spec": .object(spec("r9").jsonFields)])))
        let loaded = ResourceStore(stateDir: stateDir).loadAll()
        #expect(loaded.specs.isEmpty && loaded.problems.first?.contains("unsupported format version") == true)
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
