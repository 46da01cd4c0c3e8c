// Status: `tandemctl status [NAME]`: a table of all resources, or one resource in detail.
import ArgumentParser
import TandemControl

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show resources: role, connection, disk and replication state, lag.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Only this resource, with every field (all resources when omitted).")
    var name: String?

    func run() throws {
        var args: [String: JSONValue] = [:]
        if let name { args["name"] = .string(name) }
        try options.call("status", args) { fields in
            if name == nil {
                let resources = (fields["resources"]?.arrayValue ?? []).compactMap(\.objectValue)
                print(resources.isEmpty ? "no resources" : StatusTable.render(resources))
            } else {
                print(StatusTable.render([fields]))
                print("")
                print(StatusTable.details(fields))
            }
        }
    }
}

enum StatusTable {
    /// Column title and the reply keys it reads, first present wins.
    static let columns: [(String, [String])] = [
        ("NAME", ["name"]), ("ROLE", ["role"]), ("CONNECTION", ["connection_state", "connection"]),
        ("DISK", ["disk_state", "disk"]), ("REPLICATION", ["replication_state", "replication"]),
        ("OUT-OF-SYNC", ["out_of_sync_bytes"]), ("LAG", ["lag_bytes"]), ("RPO-MS", ["rpo_ms"]),
    ]

    static func render(_ resources: [[String: JSONValue]]) -> String {
        let rows = resources.map { fields in
            columns.map { _, keys in
                keys.lazy.compactMap { key in fields[key].map { cell($0, isBytes: key.hasSuffix("_bytes")) } }.first ?? "-"
            }
        }
        let header = columns.map(\.0)
        let widths = header.indices.map { column in
            ([header] + rows).map { $0[column].count }.max() ?? 0
        }
        return ([header] + rows).map { row in
            row.enumerated().map { column, text in
                column == row.count - 1 ? text : text.padding(to: widths[column])
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func cell(_ value: JSONValue, isBytes: Bool) -> String {
        switch value {
        case .string(let text): text
        case .int(let number): isBytes && number >= 0 ? ByteSize.format(UInt64(number)) : String(number)
        case .bool(let flag): flag ? "yes" : "no"
        case .null: "-"
        default: JSONCodec.serializeString(value)
        }
    }

    static func details(_ fields: [String: JSONValue]) -> String {
        fields.keys.sorted().map { key in
            let value = fields[key] ?? .null
            let text = value.stringValue ?? JSONCodec.serializeString(value)
            return "\(key): \(text)"
        }.joined(separator: "\n")
    }

    static func keyValueLine(_ fields: [String: JSONValue]) -> String {
        fields.keys.sorted().map { key in
            let value = fields[key] ?? .null
            return "\(key)=\(value.stringValue ?? JSONCodec.serializeString(value))"
        }.joined(separator: " ")
    }
}

extension String {
    func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
