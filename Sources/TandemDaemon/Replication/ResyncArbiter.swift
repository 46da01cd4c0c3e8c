// ResyncArbiter: the daemon's `resync_concurrency_max` (docs/design-v3.md section 5). At most
// that many resources copy (a full copy or a catch-up) at once, so many resources on one disk
// do not thrash it together (DRBD's `resync-after` idea, without the ordering). A replicator
// whose copy is due and whose peer is ready asks for a slot; the slots go in the order they
// were asked for; a holder gives its slot back when its copy ends, its peer goes or it
// stops. `set resync_concurrency_max` changes the count live: raised, waiting copies are
// granted at once; lowered, running copies keep their slots and finish, and no new one is
// granted until fewer than the new count run. One per daemon (ReplicationContext); loop
// thread only.
import DequeModule

final class ResyncArbiter {
    typealias Owner = ObjectIdentifier

    private(set) var slotsMax: Int
    private(set) var holders: Set<Owner> = []
    /// Owners waiting for a slot, in request order, with what to run when one is granted.
    /// At most one entry per resource.
    private var waiting = Deque<(owner: Owner, grant: () -> Void)>()

    init(slotsMax: Int) {
        precondition(slotsMax >= 1, "resync_concurrency_max \(slotsMax)")
        self.slotsMax = slotsMax
    }

    var waitingCount: Int { waiting.count }

    /// The new count from now on (1-1024); a raise grants waiters at once.
    func setSlotsMax(_ count: Int) {
        precondition(count >= 1, "resync_concurrency_max \(count)")
        slotsMax = count
        grantFreeSlots()
    }

    /// A slot for `owner`: true when granted now; otherwise it waits and `grant` runs once a
    /// slot is its turn.
    func request(_ owner: Owner, grant: @escaping () -> Void) -> Bool {
        precondition(!holders.contains(owner) && !waiting.contains { $0.owner == owner }, "a slot asked for twice")
        if holders.count < slotsMax && waiting.isEmpty {
            holders.insert(owner)
            return true
        }
        waiting.append((owner, grant))
        return false
    }

    /// `owner` gives its slot back, or stops waiting for one (nothing when it has neither).
    /// The next waiter is granted the freed slot.
    func withdraw(_ owner: Owner) {
        if holders.remove(owner) == nil {
            waiting.removeAll { $0.owner == owner }
        }
        grantFreeSlots()
    }

    /// Grants waiters while slots are free. The state is settled before each grant runs: a
    /// grant may ask or withdraw again.
    private func grantFreeSlots() {
        while holders.count < slotsMax, let next = waiting.popFirst() {
            holders.insert(next.owner)
            next.grant()
        }
    }
}
