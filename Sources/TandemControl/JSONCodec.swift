// JSONCodec: JSONValue to and from JSON text: parsed by Foundation's JSONSerialization,
// written by JSONTextWriter (the same text Foundation wrote, at a fraction of its cost). What
// this file adds is what the control plane needs on top: integers stay exact Int64 (sizes
// and offsets must never pass through Double: an integer beyond Int64 is refused, not
// rounded), booleans never become numbers, nesting and input size are bounded so a hostile
// client cannot exhaust the stack or memory, and output is deterministic (keys sorted).
// Parsing never traps: every malformed input is a JSONError.
import Foundation

/// Why a byte sequence is not the JSON we accept; `offset` is the byte where it went wrong
/// when that is known (0 otherwise: Foundation reports a position only in its message).
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public init(offset: Int, reason: String) {
        self.offset = offset
        self.reason = reason
    }
    public var description: String { offset > 0 ? "\(reason) at byte \(offset)" : reason }
}

public enum JSONCodec {
    /// Deepest array/object nesting accepted.
    public static let depthMax = 64
    /// Largest input accepted by `parse` (the control socket's own line bound is 1 MiB).
    public static let inputBytesMax = 16 << 20

    /// Parses exactly one JSON value; surrounding whitespace is allowed, anything else is not.
    /// Input must be UTF-8 (a NUL byte, which UTF-16 or UTF-32 text would have, is refused).
    public static func parse(_ bytes: some Collection<UInt8>) -> Result<JSONValue, JSONError> {
        guard bytes.count <= inputBytesMax else {
            return .failure(JSONError(offset: 0, reason: "input larger than \(inputBytesMax) bytes"))
        }
        let data = Data(bytes)
        if let nul = data.firstIndex(of: 0) {
            return .failure(JSONError(offset: nul - data.startIndex, reason: "NUL byte in JSON text"))
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            return .failure(JSONError(offset: 0, reason: foundationReason(error)))
        }
        do throws(JSONError) {
            return .success(try value(of: object, depth: 0))
        } catch {
            return .failure(error)
        }
    }

    /// Serializes with object keys sorted, no insignificant whitespace, no newline.
    public static func serialize(_ value: JSONValue) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        JSONTextWriter.write(value, into: &output)
        return output
    }

    /// What `serialize` did before JSONTextWriter, through Foundation: the tests hold the
    /// two to the same text.
    static func foundationSerialize(_ value: JSONValue) -> [UInt8] {
        let options: JSONSerialization.WritingOptions = [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]
        do {
            return [UInt8](try JSONSerialization.data(withJSONObject: foundationObject(value), options: options))
        } catch {
            // foundationObject gives only strings, finite numbers, booleans, null, arrays and
            // string-keyed dictionaries, all of which JSONSerialization writes.
            preconditionFailure("JSONSerialization refused a JSONValue: \(error)")
        }
    }

    public static func serializeString(_ value: JSONValue) -> String {
        String(decoding: serialize(value), as: UTF8.self)
    }

    // MARK: Foundation's objects to JSONValue

    static func value(of object: Any, depth: Int) throws(JSONError) -> JSONValue {
        switch object {
        case is NSNull:
            return .null
        case let number as NSNumber:
            return try value(of: number)
        case let text as String:
            return .string(text)
        case let items as [Any]:
            guard depth < depthMax else { throw JSONError(offset: 0, reason: "nesting deeper than \(depthMax)") }
            var values: [JSONValue] = []
            values.reserveCapacity(items.count)
            for item in items { values.append(try value(of: item, depth: depth + 1)) }
            return .array(values)
        case let fields as [String: Any]:
            guard depth < depthMax else { throw JSONError(offset: 0, reason: "nesting deeper than \(depthMax)") }
            var values: [String: JSONValue] = [:]
            values.reserveCapacity(fields.count)
            for (key, item) in fields { values[key] = try value(of: item, depth: depth + 1) }
            return .object(values)
        default:
            throw JSONError(offset: 0, reason: "unexpected JSON value of type \(type(of: object))")
        }
    }

    /// JSONSerialization keeps the literal's kind in the number's type: a boolean is "c", an
    /// integer a signed or unsigned integer type, a fraction or exponent "d"; an integer
    /// outside Int64 and UInt64, and a number of about 17 or more significant digits (any
    /// form), comes as an NSDecimalNumber, which no longer says how it was spelt.
    /// So a number of magnitude 2^63 or more is refused whatever its form: an integer there
    /// could not be told from a Double, and a Double there serialises as text that reads back
    /// as such an integer. A Decimal's Double is taken from its digits (correctly rounded;
    /// `doubleValue` is not), so the same text always gives the same Double.
    static func value(of number: NSNumber) throws(JSONError) -> JSONValue {
        if let decimal = number as? NSDecimalNumber {
            let integer = decimal.int64Value
            if decimal.compare(NSDecimalNumber(value: integer)) == .orderedSame { return .int(integer) }
            var rounded = decimal.decimalValue, exact = decimal.decimalValue
            NSDecimalRound(&rounded, &exact, 0, .plain)
            if rounded == exact { throw JSONError(offset: 0, reason: "integer \(decimal) does not fit in 64 bits") }
            guard let double = Double(decimal.stringValue) else {
                throw JSONError(offset: 0, reason: "number \(decimal) out of range")
            }
            return try finite(double)
        }
        switch String(cString: number.objCType) {
        case "c", "B":
            return .bool(number.boolValue)
        case "q", "l", "i", "s":
            return .int(number.int64Value)
        case "Q", "L", "I", "S", "C":
            guard number.uint64Value <= UInt64(Int64.max) else {
                throw JSONError(offset: 0, reason: "integer \(number.uint64Value) does not fit in 64 bits")
            }
            return .int(Int64(number.uint64Value))
        default:
            return try finite(number.doubleValue)
        }
    }

    /// Magnitudes from 2^63 up are refused (see `value(of:)`), as are infinities.
    static let doubleMagnitudeLimit = 0x1p63

    static func finite(_ double: Double) throws(JSONError) -> JSONValue {
        guard double.isFinite, double.magnitude < doubleMagnitudeLimit else {
            throw JSONError(offset: 0, reason: "number \(double) out of range (magnitude below 2^63)")
        }
        return .double(double)
    }

    /// Foundation's own explanation ("Unexpected end of file during JSON parse."), which
    /// names the character position where it has one.
    static func foundationReason(_ error: any Error) -> String {
        let nsError = error as NSError
        let detail = nsError.userInfo[NSDebugDescriptionErrorKey] as? String ?? nsError.localizedDescription
        return "invalid JSON: \(detail)"
    }

    // MARK: JSONValue to Foundation's objects

    /// JSON has no NaN or infinity; they are written as null rather than as invalid JSON. A
    /// Double with no fraction that fits Int64 is written as that integer, every digit:
    /// JSONSerialization would write `2.3456789012345646e+18`, which reads back as the integer
    /// 2345678901234564600, not the Double's 2345678901234564608.
    static func foundationObject(_ value: JSONValue) -> Any {
        switch value {
        case .null: return NSNull()
        case .bool(let flag): return NSNumber(value: flag)
        case .int(let number): return NSNumber(value: number)
        case .double(let number):
            guard number.isFinite else { return NSNull() }
            if number.rounded() == number, let integer = Int64(exactly: number) { return NSNumber(value: integer) }
            return NSNumber(value: number)
        case .string(let text): return text
        case .array(let items): return items.map(foundationObject)
        case .object(let fields): return fields.mapValues(foundationObject)
        }
    }
}
