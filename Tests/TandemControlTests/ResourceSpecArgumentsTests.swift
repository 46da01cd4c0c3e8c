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
        #expect(spec.fencing == "dont-care")
        #expect(spec.afterSplitBrain == "disconnect")
        #expect(spec.sizeBytes == nil)
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
        ("period_s", .int(10)), ("rpo_target_ms", .int(0)), ("resync_rate", .int(-1)),
        ("bandwidth", .double(1.5)), ("fencing", .string("stonith")), ("after_split_brain", .string("merge")),
        ("disk_drain", .string("barrier")), ("initial_sync", .string("partial")),
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

    @Test func periodicModeRequiresAPeriod() {
        #expect(refusal(["mode": .string("periodic")])?.message.contains("'period_s'") == true)
        #expect(refusal(["mode": .string("periodic"), "period_s": .int(30)]) == nil)
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
        args["mode"] = .string("periodic")
        args["period_s"] = .int(60)
        args["rpo_target_ms"] = .int(500)
        args["nbd"] = .object(["socket": .string("/run/r0.sock"), "tcp": .string("127.0.0.1:10809")])
        let spec = try parse(args).get()
        #expect(try parse(spec.jsonFields).get() == spec)
    }
}

@Suite struct ResourceSpecSettingsTests {
    let spec = ResourceSpec(name: "r0", volume: "/dev/vdb", nbd: NBDSpec(socket: "/run/tandem/r0.nbd"))

    func refusal(_ settings: [String: JSONValue]) -> ControlError? {
        do throws(ControlError) {
            _ = try spec.applying(settings: settings)
            return nil
        } catch {
            return error
        }
    }

    @Test func liveSettingsChangeAndTheRestStays() throws {
        let changed = try spec.applying(settings: ["resync_rate": .int(100 << 20), "mode": .string("async")])
        #expect(changed.resyncRateBytesPerSecond == 100 << 20)
        #expect(changed.mode == .async)
        #expect(changed.volume == spec.volume && changed.nbd == spec.nbd)
    }

    @Test func leavingPeriodicModeDropsThePeriod() throws {
        let periodic = try spec.applying(settings: ["mode": .string("periodic"), "period_s": .int(30)])
        #expect(periodic.periodSeconds == 30)
        let back = try periodic.applying(settings: ["mode": .string("sync")])
        #expect(back.periodSeconds == nil)
    }

    @Test func fixedAndUnknownSettingsAreRefusedByName() {
        #expect(refusal(["volume": .string("/dev/vdc")])?.message.contains("'volume'") == true)
        #expect(refusal(["speed": .int(1)]) == ControlError(.invalidArgument, "unknown argument 'speed'"))
        #expect(refusal(["bandwidth": .int(-5)])?.message.contains("'bandwidth'") == true)
    }
}
