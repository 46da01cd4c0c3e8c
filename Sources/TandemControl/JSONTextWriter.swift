// JSONTextWriter: JSONValue to JSON text without Foundation. Every control reply, status line
// and event is written here, and Foundation's writer (bridging each value to an NSObject,
// sorting keys with an ICU collator) cost a storm of `status` pollers most of the daemon's
// CPU. The output is the same text: keys sorted, no insignificant whitespace, `/` not escaped,
// non-ASCII written as UTF-8, control characters escaped (the short forms where JSON has
// them), integers in full; a fraction is written by Foundation (rare: one per resource in
// `status`), so its digits are exactly what they were.
import Foundation

enum JSONTextWriter {
    static func write(_ value: JSONValue, into output: inout [UInt8]) {
        switch value {
        case .null: output.append(contentsOf: "null".utf8)
        case .bool(let flag): output.append(contentsOf: (flag ? "true" : "false").utf8)
        case .int(let number): writeInteger(number, into: &output)
        case .double(let number): writeDouble(number, into: &output)
        case .string(let text): writeString(text, into: &output)
        case .array(let items):
            output.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                write(item, into: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let fields):
            output.append(UInt8(ascii: "{"))
            for (index, key) in fields.keys.sorted(by: keyPrecedes).enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                writeString(key, into: &output)
                output.append(UInt8(ascii: ":"))
                write(fields[key]!, into: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// The order of keys: by their UTF-8 bytes. For the keys the control plane writes
    /// (lower-case ASCII words and `_`) this is the order Foundation's collator gave.
    static func keyPrecedes(_ left: String, _ right: String) -> Bool {
        left.utf8.lexicographicallyPrecedes(right.utf8)
    }

    private static func writeInteger(_ number: Int64, into output: inout [UInt8]) {
        output.append(contentsOf: String(number).utf8)
    }

    /// Non-finite: null (JSON has no such number). Integral and within Int64: every digit, as
    /// an integer. Otherwise Foundation's shortest round-tripping form.
    private static func writeDouble(_ number: Double, into output: inout [UInt8]) {
        guard number.isFinite else { return output.append(contentsOf: "null".utf8) }
        if number.rounded() == number, let integer = Int64(exactly: number) {
            return writeInteger(integer, into: &output)
        }
        let options: JSONSerialization.WritingOptions = [.fragmentsAllowed]
        guard let data = try? JSONSerialization.data(withJSONObject: NSNumber(value: number), options: options) else {
            preconditionFailure("JSONSerialization refused the finite Double \(number)")
        }
        output.append(contentsOf: data)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func writeString(_ text: String, into output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x08: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0A: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x00..<0x20:
                output.append(contentsOf: Array("\\u00".utf8))
                output.append(hexDigits[Int(byte >> 4)])
                output.append(hexDigits[Int(byte & 0x0F)])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}
