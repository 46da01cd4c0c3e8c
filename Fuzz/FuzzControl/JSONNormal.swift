// JSONNormal: values compared after a round trip through JSON text. JSON has one kind of
// number; JSONCodec keeps integers exact, and a double with no fraction ("1.0") comes back as
// the integer it equals. Both mean the same number, so they compare equal here.
import TandemControl

enum JSONNormal {
    static func value(_ value: JSONValue) -> JSONValue {
        switch value {
        case .double(let number):
            if number.rounded() == number, let integer = Int64(exactly: number) { return .int(integer) }
            return value
        case .array(let items): return .array(items.map(Self.value))
        case .object(let fields): return .object(fields.mapValues(Self.value))
        default: return value
        }
    }

    static func request(_ request: ControlRequest) -> ControlRequest {
        ControlRequest(id: value(request.id), cmd: request.cmd, args: request.args.mapValues(value))
    }

    /// A reply's own `id` and `ok` replace result fields of those names (ControlCodec.encode
    /// says so), so such fields are not expected back.
    static func reply(_ reply: ControlReply) -> ControlReply {
        ControlReply(
            id: value(reply.id),
            result: reply.result.map { fields in fields.filter { $0.key != "id" && $0.key != "ok" }.mapValues(value) })
    }
}
