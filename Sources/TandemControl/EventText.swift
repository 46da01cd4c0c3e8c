// EventText: one `events` object as a line for people:
// `2026-11-29T20:01:02.123Z r0 connection-state connection_state=Connected`.
// Pure: the time printed is the event's own `time_ms`, in UTC.
#if canImport(Glibc)
import Glibc
#endif

public enum EventText {
    /// Keys shown in the line's fixed columns or meaningful only on the wire.
    static let framingKeys: Set<String> = ["event", "resource", "time_ms", "seq", "ok", "id", "initial"]

    /// The line for `event`, or nil for stream bookkeeping (`subscribed`, `heartbeat`).
    public static func line(_ event: [String: JSONValue]) -> String? {
        let kind = event["event"]?.stringValue ?? "?"
        if kind == "subscribed" || kind == "heartbeat" { return nil }
        let time = event["time_ms"]?.intValue.map(timestamp) ?? "-"
        let resource = event["resource"]?.stringValue ?? "-"
        let details = event.keys.filter { !framingKeys.contains($0) }.sorted().map { key in
            "\(key)=\(value(event[key] ?? .null))"
        }
        return ([time, resource, kind] + details).joined(separator: " ")
    }

    /// Strings bare when they are one word, JSON-quoted otherwise; other values as JSON.
    static func value(_ value: JSONValue) -> String {
        if let text = value.stringValue, !text.isEmpty,
            !text.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline })
        {
            return text
        }
        return JSONCodec.serializeString(value)
    }

    /// `time_ms` (milliseconds since the epoch) as ISO 8601 UTC with milliseconds.
    public static func timestamp(_ milliseconds: Int64) -> String {
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let millis = Int32(milliseconds % 1000)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(millis, 3))Z"
    }
}
