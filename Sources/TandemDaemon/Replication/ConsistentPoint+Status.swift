// `consistent_as_of` in status (docs/control-protocol.md): a ConsistentPoint as JSON. The
// session is a random 64-bit id, so it is a decimal string; the epoch a number, or
// `whole_session: true` for every write of the session; `time`, when the primary stamped the
// epoch (protocol 9), its wall-clock time in RFC 3339, UTC, with milliseconds. Null: no
// consistent image (or not known).
#if canImport(Glibc)
import Glibc
#endif
import TandemControl
import TandemCore

extension ConsistentPoint {
    static func statusValue(_ point: ConsistentPoint?) -> JSONValue {
        guard let point else { return .null }
        var fields: [String: JSONValue] = ["session": .string(String(point.session))]
        if point.wholeSession {
            fields["whole_session"] = .bool(true)
        } else {
            fields["epoch"] = .int(Int64(clamping: point.epoch))
        }
        if let wallClockNs = point.wallClockNs { fields["time"] = .string(Self.rfc3339(unixNs: wallClockNs)) }
        return .object(fields)
    }

    /// "2026-12-07T04:12:07.300Z": UTC, milliseconds (truncated).
    static func rfc3339(unixNs: UInt64) -> String {
        var seconds = time_t(clamping: unixNs / 1_000_000_000)
        var parts = tm()
        guard gmtime_r(&seconds, &parts) != nil else { return "?" }
        func padded(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let milliseconds = Int32((unixNs / 1_000_000) % 1000)
        return "\(padded(parts.tm_year + 1900, 4))-\(padded(parts.tm_mon + 1, 2))-\(padded(parts.tm_mday, 2))"
            + "T\(padded(parts.tm_hour, 2)):\(padded(parts.tm_min, 2)):\(padded(parts.tm_sec, 2)).\(padded(milliseconds, 3))Z"
    }
}
