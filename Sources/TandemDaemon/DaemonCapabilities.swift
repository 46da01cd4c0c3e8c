// DaemonCapabilities: the `capabilities` reply: what this daemon carries out and what it
// refuses with `unsupported`, computed from the tables the daemon itself acts on
// (ControlCodec.commands, DaemonControl.laterCommands, ResourceSpec's support table, the
// enums the parser accepts), so that it cannot claim what the code does not do.
import TandemControl
import TandemCore

extension DaemonControl {
    var capabilities: [String: JSONValue] {
        let commands = ControlCodec.commands.sorted()
        let settings = ResourceSpec.tunableDocs.map(\.name).sorted()
        let live = ResourceSpec.liveKeys.sorted()
        return [
            "node": .string(config.nodeName),
            "version": .string(Self.version),
            "protocol_version": .int(ControlProtocol.version),
            // The peer protocol this build speaks (docs/protocol.md, *Versions*; rolling upgrade).
            "peer_protocol_version": .int(Int64(WireFormat.helloVersion)),
            "commands": Self.split(commands) { !Self.laterCommands.contains($0) },
            "modes": Self.split(ResourceSpec.allModes) { !ResourceSpec.unsupportedModes.contains($0) },
            "compression": Self.split(CompressionKind.allCases.map(\.rawValue)) { _ in true },
            "settings": Self.split(settings) { !ResourceSpec.unsupportedKeys.contains($0) },
            "live_settings": .array(Self.laterCommands.contains("set") ? [] : live.map(JSONValue.string)),
            "error_codes": .array(ControlErrorCode.allCases.map { .string($0.rawValue) }),
        ]
    }

    /// `{"supported": [...], "unsupported": [...]}`, each in the order given.
    static func split(_ names: [String], supported: (String) -> Bool) -> JSONValue {
        .object([
            "supported": .array(names.filter(supported).map(JSONValue.string)),
            "unsupported": .array(names.filter { !supported($0) }.map(JSONValue.string)),
        ])
    }
}
