// EventHub: state changes of every resource, as JSON objects, fanned out to `events`
// subscribers. Published on the loop thread, read on control-connection threads; every
// subscriber's queue is bounded (a slow reader loses the oldest events and is told how
// many). Hence the lock and `@unchecked Sendable`.
import DequeModule
import Glibc
import Logging
import TandemControl
import TandemIO

final class EventHub: @unchecked Sendable {
    static let queuedEventsMax = 1024

    final class Subscriber {
        var queue = Deque<[String: JSONValue]>(minimumCapacity: EventHub.queuedEventsMax)
        var dropped = 0
    }

    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var subscribers: [ObjectIdentifier: Subscriber] = [:]
    private var sequence: Int64 = 0
    let logger: Logger

    init(logger: Logger) {
        self.logger = logger
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    deinit {
        pthread_mutex_destroy(&mutex)
        pthread_cond_destroy(&condition)
    }

    /// Records a state change: logged, and queued for every subscriber.
    func publish(resource: String?, _ kind: String, _ fields: [String: JSONValue] = [:]) {
        var event = fields
        event["event"] = .string(kind)
        if let resource { event["resource"] = .string(resource) }
        event["time_ms"] = .int(Self.wallClockMs())
        logger.info("event \(kind)", metadata: [
            "resource": "\(resource ?? "-")",
            "detail": "\(fields.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " "))",
        ])
        pthread_mutex_lock(&mutex)
        sequence += 1
        event["seq"] = .int(sequence)
        for subscriber in subscribers.values {
            if subscriber.queue.count >= Self.queuedEventsMax {
                subscriber.queue.removeFirst()
                subscriber.dropped += 1
            }
            subscriber.queue.append(event)
        }
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
    }

    /// Milliseconds since the Unix epoch: events carry wall-clock time for people and logs.
    static func wallClockMs() -> Int64 { Int64(WallClock.nowUnixNs() / 1_000_000) }

    /// The state fields an `exists` event of the initial dump copies from a resource's status.
    static let existsFields = [
        "role", "enabled", "connection_state", "disk_state", "peer_disk_state", "replication_state",
        "out_of_sync_bytes", "resync_progress", "lag_bytes", "last_error", "disk_error", "split_brain",
    ]

    /// One `exists` event per resource (`initial: true`), as DRBD's `events2` starts with.
    static func existsEvents(_ statusAll: [String: JSONValue], only filter: String?) -> [[String: JSONValue]] {
        let resources = (statusAll["resources"]?.arrayValue ?? []).compactMap(\.objectValue)
        let timeMs = wallClockMs()
        return resources.compactMap { status in
            guard let name = status["name"]?.stringValue, filter == nil || filter == name else { return nil }
            var event: [String: JSONValue] = ["event": .string("exists"), "resource": .string(name),
                                              "initial": .bool(true), "time_ms": .int(timeMs)]
            for key in existsFields { if let value = status[key] { event[key] = value } }
            return event
        }
    }

    func subscribe() -> Subscriber {
        let subscriber = Subscriber()
        pthread_mutex_lock(&mutex)
        subscribers[ObjectIdentifier(subscriber)] = subscriber
        pthread_mutex_unlock(&mutex)
        return subscriber
    }

    func unsubscribe(_ subscriber: Subscriber) {
        pthread_mutex_lock(&mutex)
        subscribers[ObjectIdentifier(subscriber)] = nil
        pthread_mutex_unlock(&mutex)
    }

    /// Waits up to `timeoutMs` for events; returns them (empty on timeout) and the count of
    /// events lost to the queue bound since the last call.
    func take(_ subscriber: Subscriber, timeoutMs: Int) -> ([[String: JSONValue]], Int) {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if subscriber.queue.isEmpty {
            var deadline = timespec()
            clock_gettime(CLOCK_REALTIME, &deadline)
            let nanoseconds = Int(deadline.tv_nsec) + (timeoutMs % 1000) * 1_000_000
            deadline.tv_sec += timeoutMs / 1000 + nanoseconds / 1_000_000_000
            deadline.tv_nsec = nanoseconds % 1_000_000_000
            _ = pthread_cond_timedwait(&condition, &mutex, &deadline)
        }
        let events = Array(subscriber.queue)
        let dropped = subscriber.dropped
        subscriber.queue.removeAll(keepingCapacity: true)
        subscriber.dropped = 0
        return (events, dropped)
    }
}
