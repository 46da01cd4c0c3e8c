// ControlClient: the control socket's JSON-lines protocol, spoken with Foundation's
// JSONSerialization (deliberately not TandemControl's codec, so the two check each other).
import Foundation

typealias JSONObject = [String: Any]

final class ControlClient {
    private let stream: UnixStream
    private var pending: [UInt8] = []
    private var nextID = 1

    init(path: String) throws { stream = try UnixStream(path: path, timeoutSeconds: 15) }

    /// Sends `request` with a fresh numeric id and returns the reply, checking the id echoes.
    func request(_ request: JSONObject) throws -> JSONObject {
        var request = request
        let id = nextID
        nextID += 1
        request["id"] = id
        let data = try JSONSerialization.data(withJSONObject: request)
        try sendLine(Array(data))
        let reply = try readReply()
        guard (reply["id"] as? Int) == id else {
            throw HarnessError("reply id \(String(describing: reply["id"])) does not echo request id \(id): \(reply)")
        }
        return reply
    }

    func request(_ cmd: String, _ args: JSONObject = [:]) throws -> JSONObject {
        try request(args.merging(["cmd": cmd]) { $1 })
    }

    /// Sends raw bytes followed by a newline (for malformed input).
    func sendLine(_ bytes: [UInt8]) throws { try stream.sendAll(bytes + [0x0A]) }

    /// Reads one reply line and parses it as a JSON object.
    func readReply() throws -> JSONObject {
        let line = try readLine()
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? JSONObject else {
            throw HarnessError("reply is not a JSON object: \(String(decoding: line, as: UTF8.self))")
        }
        return object
    }

    private func readLine() throws -> [UInt8] {
        for _ in 0..<100_000 {
            if let newline = pending.firstIndex(of: 0x0A) {
                let line = Array(pending[..<newline])
                pending.removeSubrange(...newline)
                return line
            }
            let (outcome, bytes) = stream.readSome()
            switch outcome {
            case .data: pending += bytes
            case .closed: throw HarnessError("control socket closed while awaiting a reply")
            case .timedOut: throw HarnessError("no reply on the control socket within the timeout")
            }
        }
        throw HarnessError("reply line never ended")
    }
}

/// Typed access to reply fields, tolerant of how JSONSerialization bridges numbers.
extension Dictionary where Key == String, Value == Any {
    var ok: Bool? { self["ok"] as? Bool }
    func bool(_ key: String) -> Bool? { self[key] as? Bool }
    var errorCode: String? { self["error"] as? String }
    func string(_ key: String) -> String? { self[key] as? String }
    func uint64(_ key: String) -> UInt64? {
        if let value = self[key] as? Int { return value >= 0 ? UInt64(value) : nil }
        if let value = self[key] as? UInt64 { return value }
        if let value = self[key] as? NSNumber { return value.uint64Value }
        return nil
    }
}
