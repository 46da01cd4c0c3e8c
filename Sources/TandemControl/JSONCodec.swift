// JSONCodec: a strict RFC 8259 parser and a deterministic serializer for JSONValue.
// Integers stay exact Int64 (sizes and offsets must never pass through Double). The parser
// never traps on any input: every malformed byte sequence is a JSONError, and nesting depth
// and input size are bounded so a hostile control client cannot exhaust the stack or memory.

/// Why a byte sequence is not the JSON we accept; `offset` is the byte where it went wrong.
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public init(offset: Int, reason: String) {
        self.offset = offset
        self.reason = reason
    }
    public var description: String { "\(reason) at byte \(offset)" }
}

public enum JSONCodec {
    /// Deepest array/object nesting accepted.
    public static let depthMax = 64
    /// Largest input accepted by `parse` (the control socket's own line bound is 1 MiB).
    public static let inputBytesMax = 16 << 20

    /// Parses exactly one JSON value; surrounding whitespace is allowed, anything else is not.
    public static func parse(_ bytes: some Collection<UInt8>) -> Result<JSONValue, JSONError> {
        guard bytes.count <= inputBytesMax else {
            return .failure(JSONError(offset: 0, reason: "input larger than \(inputBytesMax) bytes"))
        }
        var parser = JSONParser(bytes: Array(bytes))
        do throws(JSONError) {
            parser.skipWhitespace()
            let value = try parser.parseValue(depth: 0)
            parser.skipWhitespace()
            guard parser.atEnd else { throw parser.error("unexpected data after the value") }
            return .success(value)
        } catch {
            return .failure(error)
        }
    }

    /// Serializes with object keys sorted (bytewise), no insignificant whitespace, no newline.
    public static func serialize(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        write(value, into: &out)
        return out
    }

    public static func serializeString(_ value: JSONValue) -> String {
        String(decoding: serialize(value), as: UTF8.self)
    }

    static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: Array("null".utf8))
        case .bool(let flag): out.append(contentsOf: Array((flag ? "true" : "false").utf8))
        case .int(let number): out.append(contentsOf: Array(String(number).utf8))
        case .double(let number): writeDouble(number, into: &out)
        case .string(let text): writeString(text, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                write(item, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let fields):
            writeObject(fields, into: &out)
        }
    }

    static func writeObject(_ fields: [String: JSONValue], into out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        let keys = fields.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        for (index, key) in keys.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            writeString(key, into: &out)
            out.append(UInt8(ascii: ":"))
            write(fields[key] ?? .null, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// JSON has no NaN or infinity; they are written as null rather than as invalid JSON.
    static func writeDouble(_ number: Double, into out: inout [UInt8]) {
        guard number.isFinite else {
            out.append(contentsOf: Array("null".utf8))
            return
        }
        out.append(contentsOf: Array(String(number).utf8))
    }

    static func writeString(_ text: String, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x00..<0x20, 0x7F:
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
