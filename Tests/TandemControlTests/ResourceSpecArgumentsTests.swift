import Testing
import TandemControl
import TandemCore

@Suite struct ResourceSpecArgumentsTests {
    let minimal: [String: JSONValue] = ["name": .string("r0"), "volume": .string("/dev/vdb")]

    func parse(_ args: [String: JSONValue]) -> Result<ResourceSpec, ControlError> {
        Result { () throws(ControlError) in
            try ResourceSpec.parse(createArgs: args, defaultNBDSocketDirectory: "/run/tandem")
        }
    }

    func refusal(_ changes: [String: JSONValue], removing: [String] = []) -> ControlError? {
        var args = minimal.merging(changes) { $1 }
        for key in removing { args[key] = nil }
        if case .failure(let error) = parse(args) { return error }
        return nil
    }

    @Test func aMinimalCreateGetsTheDocumentedDefaults() throws {
        let spec = try parse(minimal).get()
        #expect(spec.role == .standalone)
        #expect(spec.mode == .sync)
        #expect(spec.nbd == NBDSpec(socket: "/run/tandem/r0.nbd"))
        #expect(spec.sizeBytes == nil)
        #expect(spec.fencing == .dontCare, "DRBD's default for a new resource")
        #expect(spec.resyncRateBytesPerSecond == 0)
    }

    @Test func fencingAndResyncRateAreTakenAndReportedUnderTheirKeys() throws {
        let spec = try parse(minimal.merging(["fencing": .string("suspend-io"), "resync_rate": .int(8 << 20)]) { $1 }).get()
        #expect(spec.fencing == .suspendIO && spec.resyncRateBytesPerSecond == 8 << 20)
        #expect(spec.jsonFields["fencing"] == .string("suspend-io") && spec.jsonFields["resync_rate"] == .int(8 << 20))
        #expect(refusal(["fencing": .string("stonith")])?.message
            == "argument 'fencing' must be one of dont-care|suspend-io, got 'stonith'")
    }

    @Test func alExtentsIsTakenInItsRangeKeptInTheResourceFileAndOtherwiseRefused() throws {
        #expect(try parse(minimal).get().alExtents == nil, "absent: the metadata's AL extents max")
        #expect(try parse(minimal).get().jsonFields["al_extents"] == nil)
        let spec = try parse(minimal.merging(["al_extents": .int(1000)]) { $1 }).get()
        #expect(spec.alExtents == 1000 && spec.jsonFields["al_extents"] == .int(1000))
        #expect(try parse(minimal.merging(["al_extents": .int(0)]) { $1 }).get().alExtents == 0, "0: no log")
        for bad: JSONValue in [.int(1001), .int(-1), .string("512")] {
            let error = refusal(["al_extents": bad])
            #expect(error?.code == .invalidArgument && error?.message.contains("al_extents") == true, "\(bad): \(String(describing: error))")
        }
        #expect(refusal(["al_extents": .int(1001)])?.message.contains("1000") == true, "the bound is named")
    }

    // stage (issue 13 §3)
    @Test func stagingPathAndBytesAreTakenKeptInTheResourceFileAndOtherwiseRefused() throws {
        let spec = try parse(minimal.merging([
            "staging_path": .string("/srv/journal/r0.staging"), "staging_bytes": .int(64 << 20),
        ]) { $1 }).get()
        #expect(spec.stagingPath == "/srv/journal/r0.staging" && spec.stagingBytes == 64 << 20)
        #expect(spec.jsonFields["staging_path"] == .string("/srv/journal/r0.staging"))
        #expect(spec.jsonFields["staging_bytes"] == .int(64 << 20))
        #expect(try parse(minimal.merging(["staging_bytes": .int(0)]) { $1 }).get().stagingBytes == 0, "0: never stage")
        for (key, bad): (String, JSONValue) in [
            ("staging_path", .string("r0.staging")), ("staging_path", .string("/dev/vdb")),
            ("staging_bytes", .int(-1)), ("staging_bytes", .int((1 << 40) + 1)), ("staging_bytes", .string("256MiB")),
        ] {
            let error = refusal([key: bad])
            #expect(error?.code == .invalidArgument && error?.message.contains(key) == true, "\(key) \(bad): \(String(describing: error))")
        }
    }

    func change(_ args: [String: JSONValue]) -> Result<ResourceSettingChange, ControlError> {
        Result { () throws(ControlError) in try ResourceSettingChange.parse(args) }
    }

    @Test func setTakesResyncRateAndRefusesEverythingElseNamingTheKey() throws {
        let name: JSONValue = .string("r0")
        #expect(try change(["name": name, "resync_rate": .int(1 << 20)]).get()
            == ResourceSettingChange(name: "r0", resyncRateBytesPerSecond: 1 << 20))
        #expect(try change(["name": name, "resync_rate": .int(0)]).get().resyncRateBytesPerSecond == 0)
        func refused(_ args: [String: JSONValue]) -> ControlError? {
            if case .failure(let error) = change(args) { return error }
            return nil
        }
        #expect(refused(["resync_rate": .int(1)])?.code == .missingArgument)
        #expect(refused(["name": name])?.code == .missingArgument)
        let fixed = refused(["name": name, "resync_rate": .int(1 << 20), "mode": .string("async")])
        #expect(fixed?.code == .unsupported && fixed?.message.contains("'mode'") == true, "\(String(describing: fixed))")
        #expect(refused(["name": name, "bandwidth": .int(-1)])?.code == .invalidArgument)
        let unknown = refused(["name": name, "resync": .int(1)])
        #expect(unknown?.code == .invalidArgument && unknown?.message.contains("'resync'") == true)
        let bad = refused(["name": name, "resync_rate": .string("fast")])
        #expect(bad?.code == .invalidArgument && bad?.message.contains("'resync_rate'") == true)
        #expect(refused(["name": name, "resync_rate": .int(-5)])?.code == .invalidArgument)
    }

    @Test func diskTimeoutIsOffByDefaultAndTakesZeroOrASecondToTenMinutes() throws {
        #expect(try parse(minimal).get().diskTimeoutMs == 0)
        #expect(try parse(minimal).get().jsonFields["disk_timeout_ms"] == .int(0))
        for good: Int64 in [0, 1000, 30_000, 600_000] {
            let spec = try parse(minimal.merging(["disk_timeout_ms": .int(good)]) { $1 }).get()
            #expect(spec.diskTimeoutMs == UInt32(good) && spec.jsonFields["disk_timeout_ms"] == .int(good))
        }
        for bad: JSONValue in [.int(1), .int(999), .int(600_001), .int(-1), .string("5s"), .bool(true)] {
            let error = refusal(["disk_timeout_ms": bad])
            #expect(error?.code == .invalidArgument && error?.message.contains("'disk_timeout_ms'") == true,
                    "\(bad): \(String(describing: error))")
        }
        #expect(refusal(["disk_timeout_ms": .int(500)])?.message
            == "argument 'disk_timeout_ms' must be 0 (off) or between 1000 and 600000 (ages are checked once a second), got 500")
    }

    @Test func setChangesDiskTimeoutLiveWithTheSameBounds() throws {
        let name: JSONValue = .string("r0")
        #expect(try change(["name": name, "disk_timeout_ms": .int(5000)]).get()
            == ResourceSettingChange(name: "r0", diskTimeoutMs: 5000))
        #expect(try change(["name": name, "disk_timeout_ms": .int(0)]).get().jsonFields == ["disk_timeout_ms": .int(0)])
        if case .failure(let error) = change(["name": name, "disk_timeout_ms": .int(10)]) {
            #expect(error.code == .invalidArgument)
        } else {
            Issue.record("set accepted disk_timeout_ms 10")
        }
    }

    @Test(arguments: ["name", "volume"])
    func aMissingRequiredKeyIsNamed(key: String) {
        let error = refusal([:], removing: [key])
        #expect(error?.code == .missingArgument)
        #expect(error?.message.contains("'\(key)'") == true)
    }

    @Test(arguments: [
        ("name", JSONValue.string("../etc")), ("name", .int(3)), ("volume", .string("relative/path")),
        ("size_bytes", .int(0)), ("size_bytes", .int(4097)), ("size_bytes", .string("1GiB")),
        ("role", .string("master")), ("mode", .string("semi-sync")), ("compression", .string("zstd")),
        ("disk_drain", .string("barrier")), ("initial_sync", .string("partial")),
        ("fencing", .string("resource-only")), ("fencing", .int(1)), ("resync_rate", .int(-1)),
        ("resync_rate", .int((1 << 40) + 1)), ("resync_rate", .string("8MiB")),
        ("async_buffer_bytes", .int(4096)), ("nbd", .string("/s")), ("peer", .object(["name": .string("b"), "address": .string("x:1")])),
    ])
    func aBadValueIsRefusedNamingItsKey(key: String, value: JSONValue) {
        let error = refusal([key: value])
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("'\(key)'") == true, "\(error?.message ?? "accepted")")
    }

    @Test func anUnknownKeyIsRefusedNotIgnored() {
        #expect(refusal(["sizebytes": .int(4096)]) == ControlError(.invalidArgument, "unknown argument 'sizebytes'"))
        let nested = refusal(["nbd": .object(["sock": .string("/x")])])
        #expect(nested == ControlError(.invalidArgument, "unknown argument 'nbd.sock'"))
    }

    @Test func primaryAndSecondaryRequireAPeer() {
        #expect(refusal(["role": .string("primary")])?.code == .missingArgument)
        #expect(refusal(["role": .string("secondary")])?.message.contains("'peer'") == true)
        let peer: JSONValue = .object(["name": .string("beta"), "address": .string("10.0.0.2:7788")])
        #expect(refusal(["role": .string("primary"), "peer": peer]) == nil)
        let badAddress: JSONValue = .object(["name": .string("beta"), "address": .string("10.0.0.2")])
        #expect(refusal(["role": .string("primary"), "peer": badAddress])?.message.contains("'peer.address'") == true)
    }

    @Test(arguments: ResourceSpec.unsupportedKeys)
    func anUnbuiltSettingIsRefusedAsUnsupportedNamingItsKey(key: String) {
        for value: JSONValue in [.int(0), .int(100 << 20), .string("dont-care"), .string("disconnect")] {
            let error = refusal([key: value])
            #expect(error?.code == .unsupported, "\(key)=\(value): \(error?.message ?? "accepted")")
            #expect(error?.message.contains("'\(key)'") == true)
        }
        #expect(refusal([key: .null]) == nil, "null means absent")
    }

    @Test(arguments: ResourceSpec.unsupportedModes)
    func anUnbuiltModeIsRefusedAsUnsupported(mode: String) {
        let error = refusal(["mode": .string(mode)])
        #expect(error?.code == .unsupported)
        #expect(error?.message.contains("'mode'") == true && error?.message.contains(mode) == true)
    }

    @Test(arguments: ["beta:7788", "localhost:7788", "[::1]:7788", "10.0.0.2:7788", "node-2.example.com:1"])
    func aPeerAddressMayBeAHostName(address: String) throws {
        let peer: JSONValue = .object(["name": .string("beta"), "address": .string(address)])
        let spec = try parse(minimal.merging(["role": .string("primary"), "peer": peer]) { $1 }).get()
        #expect(spec.peer?.address == address)
    }

    @Test(arguments: ["beta", "beta:0", "beta:70000", "be ta:7788", "-beta:7788", "beta..x:7788", "[::1:7788",
                      "[zz]:7788", "beta_1:7788", "a/b:7788", ":7788"])
    func aPeerAddressThatCannotBeParsedIsRefused(address: String) {
        let peer: JSONValue = .object(["name": .string("beta"), "address": .string(address)])
        let error = refusal(["role": .string("primary"), "peer": peer])
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("'peer.address'") == true)
    }

    @Test func anNBDTCPAddressMustBeBindableWithoutALookUp() {
        #expect(refusal(["nbd": .object(["tcp": .string("beta:10809")])])?.message.contains("'nbd.tcp'") == true)
        #expect(refusal(["nbd": .object(["tcp": .string("127.0.0.1:10809")])]) == nil)
        #expect(refusal(["nbd": .object(["tcp": .string("[::1]:10809")])]) == nil)
    }

    @Test func anNBDSocketPathThatDoesNotFitSunPathIsRefused() {
        let long = "/" + String(repeating: "a", count: 120)
        #expect(refusal(["nbd": .object(["socket": .string(long)])])?.message.contains("'nbd.socket'") == true)
    }

    @Test func jsonFieldsParseBackToTheSameSpec() throws {
        var args = minimal
        args["size_bytes"] = .int(1 << 30)
        args["role"] = .string("primary")
        args["peer"] = .object(["name": .string("beta"), "address": .string("[::1]:7788")])
        args["mode"] = .string("async")
        args["compression"] = .string("lz4")
        args["disk_drain"] = .string("flush")
        args["async_buffer_bytes"] = .int(64 << 20)
        args["nbd"] = .object(["socket": .string("/run/r0.sock"), "tcp": .string("127.0.0.1:10809")])
        let spec = try parse(args).get()
        #expect(try parse(spec.jsonFields).get() == spec)
    }
}
