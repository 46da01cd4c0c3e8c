// ConnectionThreads: the control socket and the metrics endpoint each run their accept loop
// and every connection on a thread of its own (blocking I/O, off the event loop), counted in
// `threads` so that `stop()` can wait, bounded, for all of them to end.
import Dispatch
import Foundation

protocol ConnectionThreads: AnyObject {
    var threads: DispatchGroup { get }
}

extension ConnectionThreads {
    /// Runs `body` on a new thread named `name`, counted in `threads` until it returns.
    func spawn(name: String, _ body: @escaping @Sendable () -> Void) {
        threads.enter()
        let thread = Thread { [threads] in
            body()
            threads.leave()
        }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }
}
