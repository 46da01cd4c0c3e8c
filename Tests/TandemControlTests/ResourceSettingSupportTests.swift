// A setting the parser accepts is carried out or refused with `unsupported` (DESIGN.md): the
// support table (ResourceSpec.unsupportedKeys / unsupportedModes) decides, in `parse`.
import TandemControl
import TandemCore
import Testing

@Suite struct ResourceSettingSupportTests {
    let minimal: [String: JSONValue] = ["name": .string("r0"), "volume": .string("/dev/vdb")]

    func refusal(_ args: [String: JSONValue]) -> ControlError? {
        do {
            _ = try ResourceSpec.parse(createArgs: minimal.merging(args) { $1 }, defaultNBDSocketDirectory: "/run/tandem")
            return nil
        } catch { return error }
    }

    @Test(arguments: ResourceSpec.unsupportedKeys)
    func aSettingNotCarriedOutIsRefusedWhenGivenAtAll(key: String) throws {
        for value in [JSONValue.int(1), .string("dont-care"), .int(0)] {
            let error = refusal([key: value])
            #expect(error?.code == .unsupported, "\(key) = \(value): \(String(describing: error))")
            #expect(error?.message.contains("'\(key)'") == true)
        }
        #expect(refusal([key: .null]) == nil, "\(key): null counts as absent")
    }

    @Test func everyModeIsParsedOrRefusedAsUnsupported() {
        for mode in ResourceSpec.allModes {
            // periodic needs its period beside it.
            let error = refusal(mode == "periodic" ? ["mode": .string(mode), "period_s": .int(60)] : ["mode": .string(mode)])
            if ResourceSpec.unsupportedModes.contains(mode) {
                #expect(error?.code == .unsupported && error?.message.contains(mode) == true, "\(mode)")
            } else {
                #expect(error == nil, "\(mode) refused: \(String(describing: error))")
                #expect(ReplicationMode(rawValue: mode) != nil)
            }
        }
    }

    @Test func settingsThatWorkAreNotRefused() {
        let working: [String: JSONValue] = [
            "compression": .string("lz4"), "disk_drain": .string("flush"), "mode": .string("async"),
            "initial_sync": .string("none"), "async_buffer_bytes": .int(64 << 20),
        ]
        #expect(refusal(working) == nil)
    }
}
