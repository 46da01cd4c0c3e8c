// ControlMessage: the control socket's request and reply types (DESIGN.md "Control socket").
// One JSON object per line each way.

/// A JSON value, kept exact for integers (offsets and sizes must not pass through Double).
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

/// Error codes a reply carries in `error`. Stable: control planes match on them.
public enum ControlErrorCode: String, Sendable, CaseIterable {
    case badJSON = "bad-json"
    case badRequest = "bad-request"
    case lineTooLong = "line-too-long"
    case unknownCommand = "unknown-command"
    case missingArgument = "missing-argument"
    case invalidArgument = "invalid-argument"
    case unsupported = "unsupported"
    case notFound = "not-found"
    case exists = "exists"
    case busy = "busy"
    case permissionDenied = "permission-denied"
    case ioError = "io-error"
    case wrongState = "wrong-state"
    case internalError = "internal"
}

public struct ControlError: Error, Sendable, Equatable {
    public var code: ControlErrorCode
    public var message: String
    public init(_ code: ControlErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
}

public struct ControlRequest: Sendable, Equatable {
    /// Echoed back verbatim in the reply; any JSON value, `null` when absent.
    public var id: JSONValue
    public var cmd: String
    /// Every key of the request object except `id` and `cmd`.
    public var args: [String: JSONValue]
    public init(id: JSONValue, cmd: String, args: [String: JSONValue]) {
        self.id = id
        self.cmd = cmd
        self.args = args
    }
}

public struct ControlReply: Sendable, Equatable {
    public var id: JSONValue
    public var result: Result<[String: JSONValue], ControlError>
    public init(id: JSONValue, result: Result<[String: JSONValue], ControlError>) {
        self.id = id
        self.result = result
    }
    public static func ok(_ id: JSONValue, _ fields: [String: JSONValue] = [:]) -> ControlReply {
        ControlReply(id: id, result: .success(fields))
    }
    public static func failure(_ id: JSONValue, _ error: ControlError) -> ControlReply {
        ControlReply(id: id, result: .failure(error))
    }
}
