// The names a survivor's union resync is reported under. The promoted node resyncing a
// returned primary (docs/replication.md, *The old primary returns*) runs the same machinery as
// a split brain's survivor, but it is no split brain: a state word is a promise, so its status
// field, event, plan words and session start are its own (`returned_primary_resync`,
// `returned-primary-resync-plan`, `returned-primary-union` / `returned-primary-full-copy`,
// `returned-primary`), and the split brain's names stay for real split brains.
import TandemCore

struct SurvivorResyncNames {
    let returnedPrimary: Bool

    /// The status field of the running or last resync.
    var statusKey: String { returnedPrimary ? "returned_primary_resync" : "split_brain_resync" }
    /// The event that says how the resync goes (the union, or a full copy and why).
    var event: String { returnedPrimary ? "returned-primary-resync-plan" : "split-brain-resync" }
    var logName: String { returnedPrimary ? "returned-primary resync" : "split-brain resync" }

    func word(_ plan: SplitBrainResyncPlan) -> String {
        guard returnedPrimary else { return plan.word }
        switch plan {
        case .union: return "returned-primary-union"
        case .fullCopy: return "returned-primary-full-copy"
        }
    }

    /// `session_start` of the session that runs the union.
    var sessionStart: String { returnedPrimary ? "returned-primary" : SplitBrainResyncPlan.union.word }
    var sessionStartReason: String {
        returnedPrimary
            ? "the promoted node resyncs the returned primary: its own changes since the promotion are copied, "
                + "the returned node's unconfirmed regions are compared by digest and copied where they differ "
                + "(the peer takes it as a full copy)"
            : "a split brain's survivor copies the union of both sides' changes since they parted (the peer takes it as a full copy)"
    }
}
