// A setting the parser accepts is carried out or refused with `unsupported` (common brief,
// DESIGN.md): the support table decides, for modes, compression and each setting.
import TandemControl
import TandemCore
import Testing

@Suite struct ResourceSettingSupportTests {
    /// A valid value other than the default, for every setting this version does not carry out.
    static let nonDefaultValues: [String: [String: JSONValue]] = [
        "period_s": ["mode": .string("periodic"), "period_s": .int(60)],
        "rpo_target_ms": ["rpo_target_ms": .int(500)],
        "resync_rate": ["resync_rate": .int(100 << 20)],
        "bandwidth": ["bandwidth": .int(100 << 20)],
        "fencing": ["fencing": .string("suspend-io")],
        "after_split_brain": ["after_split_brain": .string("discard-zero-changes")],
    ]

    func spec(_ args: [String: JSONValue]) throws -> ResourceSpec {
        try ResourceSpec.parse(
            createArgs: ["name": .string("r0"), "volume": .string("/dev/vdb")].merging(args) { $1 },
            defaultNBDSocketDirectory: "/run/tandem")
    }

    @Test func theDefaultsAreAllCarriedOut() throws {
        #expect(ResourceSpec.withDefaults().unsupportedSetting() == nil)
        for key in ResourceSpec.unimplementedSettingKeys {
            guard let value = ResourceSpec.withDefaults().jsonFields[key] else { continue }
            #expect(try spec([key: value]).unsupportedSetting() == nil, "\(key) at its default is refused")
        }
    }

    @Test(arguments: ResourceSpec.unimplementedSettingKeys)
    func aSettingNotCarriedOutIsRefusedAsUnsupported(key: String) throws {
        let args = try #require(Self.nonDefaultValues[key], "add a non-default value for '\(key)' to this test")
        let refusal = try spec(args).unsupportedSetting()
        #expect(refusal?.code == .unsupported, "\(key): \(String(describing: refusal))")
    }

    @Test(arguments: ReplicationMode.allCases)
    func aModeIsRunOrRefusedAsUnsupported(mode: ReplicationMode) throws {
        let args: [String: JSONValue] = mode == .periodic
            ? ["mode": .string("periodic"), "period_s": .int(60)] : ["mode": .string(mode.rawValue)]
        let refusal = try spec(args).unsupportedSetting()
        if ResourceSpec.implementedModes.contains(mode) {
            #expect(refusal == nil)
        } else {
            #expect(refusal?.code == .unsupported)
            #expect(refusal?.message.contains(mode.rawValue) == true)
        }
    }

    @Test func settingsThatWorkAreAccepted() throws {
        let working: [String: JSONValue] = [
            "compression": .string("lz4"), "disk_drain": .string("flush"), "mode": .string("async"),
            "initial_sync": .string("none"), "async_buffer_bytes": .int(64 << 20),
        ]
        #expect(try spec(working).unsupportedSetting() == nil)
    }
}
