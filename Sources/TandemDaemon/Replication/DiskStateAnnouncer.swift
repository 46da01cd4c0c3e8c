// DiskStateAnnouncer: publishes one disk-state word as an event on every change, with the
// changes between UpToDate and Consistent coalesced (DiskState.publishesNow: an async stream
// flips them with every acknowledgement); the caller's tick calls `announce` again, which
// catches up. The secondary announces its own state, the primary its peer's. Loop thread only.
import TandemCore

struct DiskStateAnnouncer {
    /// The event's name and the field that carries the word.
    let event: String
    let field: String
    private var last: DiskState?
    private var lastNs: UInt64 = 0

    init(event: String, field: String) {
        self.event = event
        self.field = field
    }

    mutating func announce(_ state: DiskState, resource: String, events: EventHub) {
        let now = ReplicationContext.nowNs()
        guard state.publishesNow(from: last, sinceLastNs: now &- lastNs) else { return }
        last = state
        lastNs = now
        events.publish(resource: resource, event, [field: .string(state.rawValue)])
    }
}
