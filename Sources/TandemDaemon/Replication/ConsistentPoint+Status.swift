// `consistent_as_of` in status (docs/control-protocol.md): a ConsistentPoint as JSON. The
// session is a random 64-bit id, so it is a decimal string; the epoch a number, or
// `whole_session: true` for every write of the session. Null: no consistent image (or not
// known).
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
        return .object(fields)
    }
}
