// ControlCodec: control-socket lines <-> ControlRequest / ControlReply (DESIGN.md "Control
// socket"). One JSON object per line. Decoding never traps; every way a line can be wrong
// maps to one stable error code: bad-json, bad-request or unknown-command.

public enum ControlCodec {
    /// Every command the protocol defines (DESIGN.md). Unknown names get `unknown-command`;
    /// known ones a daemon does not implement yet get `unsupported` from the handler.
    public static let commands: Set<String> = [
        "ping", "capabilities", "create", "enable", "disable", "failover", "demote", "status", "set", "verify",
        "resolve", "outdate", "outdate-peer", "delete", "events", "reload-tls", "trace", "create-md",
        "resize",
    ]

    /// A decoded request, or the error to reply with and the id to echo in that reply
    /// (`null` when the line was not an object or its `id` could not be read).
    public static func decodeRequestWithID(
        line: some Collection<UInt8>
    ) -> (id: JSONValue, result: Result<ControlRequest, ControlError>) {
        let fields: [String: JSONValue]
        switch JSONCodec.parse(line) {
        case .failure(let error):
            return (.null, .failure(ControlError(.badJSON, "request is not valid JSON: \(error)")))
        case .success(let value):
            guard let object = value.objectValue else {
                return (.null, .failure(ControlError(.badRequest, "request must be a JSON object, got \(value.typeName)")))
            }
            fields = object
        }
        let id = fields["id"] ?? .null
        guard let cmdValue = fields["cmd"] else {
            return (id, .failure(ControlError(.badRequest, "request has no 'cmd'")))
        }
        guard let cmd = cmdValue.stringValue else {
            return (id, .failure(ControlError(.badRequest, "'cmd' must be a string, got \(cmdValue.typeName)")))
        }
        guard commands.contains(cmd) else {
            return (id, .failure(ControlError(.unknownCommand, "unknown command '\(printable(cmd))'")))
        }
        var args = fields
        args["id"] = nil
        args["cmd"] = nil
        return (id, .success(ControlRequest(id: id, cmd: cmd, args: args)))
    }

    public static func decodeRequest(line: some Collection<UInt8>) -> Result<ControlRequest, ControlError> {
        decodeRequestWithID(line: line).result
    }

    /// One newline-terminated line: `{"id":..,"ok":true,...fields}` or
    /// `{"error":"..","id":..,"message":"..","ok":false}`; keys sorted. `id` and `ok` are the
    /// reply's own even if a handler put fields of those names in its result.
    public static func encode(_ reply: ControlReply) -> [UInt8] {
        var object: [String: JSONValue]
        switch reply.result {
        case .success(let fields):
            object = fields
            object["ok"] = .bool(true)
        case .failure(let error):
            object = ["ok": .bool(false), "error": .string(error.code.rawValue), "message": .string(error.message)]
        }
        object["id"] = reply.id
        return JSONCodec.serialize(.object(object)) + [0x0A]
    }

    /// A request as the client sends it: `{"cmd":..,"id":..,...args}` plus newline.
    public static func encode(_ request: ControlRequest) -> [UInt8] {
        var object = request.args
        object["cmd"] = .string(request.cmd)
        object["id"] = request.id
        return JSONCodec.serialize(.object(object)) + [0x0A]
    }

    /// Parses a reply line (client side). A reply whose `error` code this build does not know
    /// becomes `internal` with the daemon's code kept in the message.
    public static func decodeReply(line: some Collection<UInt8>) -> Result<ControlReply, ControlError> {
        let object: [String: JSONValue]
        switch JSONCodec.parse(line) {
        case .failure(let error):
            return .failure(ControlError(.badJSON, "reply is not valid JSON: \(error)"))
        case .success(let value):
            guard let fields = value.objectValue else {
                return .failure(ControlError(.badRequest, "reply is not a JSON object"))
            }
            object = fields
        }
        let id = object["id"] ?? .null
        guard let ok = object["ok"]?.boolValue else {
            return .failure(ControlError(.badRequest, "reply has no boolean 'ok'"))
        }
        if ok {
            var fields = object
            fields["id"] = nil
            fields["ok"] = nil
            return .success(.ok(id, fields))
        }
        let codeText = object["error"]?.stringValue ?? "internal"
        let message = object["message"]?.stringValue ?? ""
        guard let code = ControlErrorCode(rawValue: codeText) else {
            return .success(.failure(id, ControlError(.internalError, "\(codeText): \(message)")))
        }
        return .success(.failure(id, ControlError(code, message)))
    }

    /// Echoing attacker-chosen text into a message: cap its length so a reply stays small.
    static func printable(_ text: String) -> String {
        text.utf8.count <= 64 ? text : String(text.prefix(64)) + "…"
    }
}
