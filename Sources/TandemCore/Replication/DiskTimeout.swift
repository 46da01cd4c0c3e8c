// DiskTimeout: when a volume I/O that has not completed counts as a failed disk
// (`disk_timeout_ms`, DRBD's disk-timeout). A disk that hangs instead of failing would hold
// a secondary's acknowledgements, and with them the primary's sync writes, for as long as it
// hangs; after this bound the resource's disk is failed as if the I/O had returned EIO
// (docs/replication.md "Disk failures"). The driver stamps each I/O when it is submitted and
// asks here once per tick; the answer depends on nothing else. No I/O, no clock reads.

public enum DiskTimeout {
    /// `disk_timeout_ms`'s bounds when set: at least a second, because ages are checked once
    /// per tick (1 s), so a shorter bound would be read as a second anyway; at most ten
    /// minutes (DRBD's maximum, 6000 tenths of a second).
    public static let timeoutMsRange: ClosedRange<UInt32> = 1_000...600_000

    /// Whether an I/O submitted at `submittedNs` is overdue at `nowNs` under `timeoutNs`
    /// (0: the timeout is off, nothing is ever overdue). A clock that reads earlier than the
    /// stamp (it cannot, being monotonic; a caller's mistake) makes nothing overdue.
    @inline(__always)
    public static func isOverdue(submittedNs: UInt64, nowNs: UInt64, timeoutNs: UInt64) -> Bool {
        timeoutNs != 0 && nowNs > submittedNs && nowNs - submittedNs > timeoutNs
    }

    /// The failure's message: how long the I/O has been outstanding, and the bound.
    public static func message(ageNs: UInt64, timeoutNs: UInt64) -> String {
        "timed out: no completion after \(ageNs / 1_000_000) ms (disk_timeout_ms \(timeoutNs / 1_000_000))"
    }
}
