// AsyncReply: a control request (or any call) run on a thread of its own, for a test that must
// act while the daemon holds the reply back (a failover waiting for a held disk). `wait`
// returns what the call returned or rethrows what it threw.
import Foundation

final class AsyncReply: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<JSONObject, any Error>?

    /// Runs `call` on a thread of its own; `finished`, if given, is signalled once the reply
    /// is stored (so a `wait(timeoutSeconds: 0)` after it finds it).
    init(signalling finished: DispatchSemaphore? = nil, _ call: @escaping @Sendable () throws -> JSONObject) {
        Thread.detachNewThread { [self] in
            result = Result { try call() }
            done.signal()
            finished?.signal()
        }
    }

    func wait(timeoutSeconds: Double) throws -> JSONObject {
        guard done.wait(timeout: .now() + timeoutSeconds) == .success, let result else {
            throw HarnessError("no reply within \(timeoutSeconds) s")
        }
        return try result.get()
    }
}
