// EventWatch: a daemon's `events` stream recorded in the background from the moment it is
// made, so a test can ask afterwards whether an event came, without having to be reading at
// the instant it was published.
import Foundation

final class EventWatch: @unchecked Sendable {
    static let eventsMax = 10_000

    private let condition = NSCondition()
    private var recorded: [String] = []
    /// The events themselves, in order.
    private var recordedEvents: [JSONObject] = []
    private var stopped = false
    private var ended = false

    /// Subscribes (the subscription is in place when this returns) and starts recording.
    init(_ daemon: DaemonProcess) throws {
        let client = try daemon.control()
        try client.sendLine(Array(#"{"id": 0, "cmd": "events"}"#.utf8))
        _ = try client.readReply()  // subscribed: nothing published after this is missed
        let handoff = Handoff(client: client)
        Thread.detachNewThread { [self] in record(handoff.client) }
    }

    /// The client moves to the reading thread and is used there only.
    private struct Handoff: @unchecked Sendable { let client: ControlClient }

    /// Ends the recording: the reader wakes at least once a second (the stream's idle
    /// heartbeat), sees the stop and closes the subscription.
    func stop() { condition.withLock { stopped = true } }

    private func record(_ client: ControlClient) {
        while !condition.withLock({ stopped }) {
            guard let event = try? client.readReply() else { break }
            condition.withLock {
                if let kind = event["event"] as? String, recorded.count < Self.eventsMax {
                    recorded.append(kind)
                    recordedEvents.append(event)
                }
                condition.broadcast()
            }
        }
        condition.withLock {
            ended = true
            condition.broadcast()
        }
    }

    /// Event names recorded so far, in order.
    var names: [String] { condition.withLock { recorded } }

    /// Waits up to `timeoutSeconds` for an event `name` (true at once if one came already).
    func saw(_ name: String, timeoutSeconds: Double = 0) -> Bool {
        waitFor(timeoutSeconds) { $0.recorded.contains(name) }
    }

    /// The same for an event `name` about `resource`.
    func saw(_ name: String, resource: String, timeoutSeconds: Double = 0) -> Bool {
        waitFor(timeoutSeconds) { watch in
            watch.recordedEvents.contains { $0["event"] as? String == name && $0["resource"] as? String == resource }
        }
    }

    /// The first event `name` about `resource`, waiting up to `timeoutSeconds` for it.
    func first(_ name: String, resource: String, timeoutSeconds: Double = 0) -> JSONObject? {
        guard saw(name, resource: resource, timeoutSeconds: timeoutSeconds) else { return nil }
        return condition.withLock {
            recordedEvents.first { $0["event"] as? String == name && $0["resource"] as? String == resource }
        }
    }

    /// Waits up to `timeoutSeconds` until the events recorded so far, in order, satisfy
    /// `condition` (true at once if they already do).
    func waitUntil(timeoutSeconds: Double, _ condition: ([JSONObject]) -> Bool) -> Bool {
        waitFor(timeoutSeconds) { condition($0.recordedEvents) }
    }

    private func waitFor(_ timeoutSeconds: Double, _ found: (EventWatch) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        condition.lock()
        defer { condition.unlock() }
        while !found(self) {
            if ended || !condition.wait(until: deadline) { return found(self) }
        }
        return true
    }
}
