// Capabilities: `tandemctl capabilities`: what the daemon carries out and what it refuses
// with `unsupported` (commands, modes, compression, resource settings), and its versions.
import ArgumentParser
import TandemControl

struct Capabilities: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the daemon's version, protocol version, and what it supports.",
        discussion: """
            Lists the commands, replication modes, compression kinds and resource settings \
            this daemon carries out, and those it refuses with 'unsupported'. With --json \
            the reply is printed as the daemon sent it (docs/control-protocol.md).
            """)
    @OptionGroup var options: GlobalOptions

    func run() throws {
        try options.call("capabilities") { fields in
            let version = fields["version"]?.stringValue ?? "?"
            let protocolVersion = fields["protocol_version"]?.intValue.map(String.init) ?? "?"
            let peerProtocol = fields["peer_protocol_version"]?.intValue.map(String.init) ?? "?"
            print("tandemd \(version) on \(fields["node"]?.stringValue ?? "?"), control protocol \(protocolVersion), "
                + "peer protocol \(peerProtocol)")
            for key in ["commands", "modes", "compression", "settings"] {
                let split = fields[key]?.objectValue ?? [:]
                print("\(key): \(Self.names(split["supported"]))")
                let refused = Self.names(split["unsupported"])
                if refused != "-" { print("  unsupported: \(refused)") }
            }
            print("live settings: \(Self.names(fields["live_settings"]))")
        }
    }

    static func names(_ value: JSONValue?) -> String {
        let names = (value?.arrayValue ?? []).compactMap(\.stringValue)
        return names.isEmpty ? "-" : names.joined(separator: " ")
    }
}
