// SecondaryNode's wall-clock stamps of the primary's epochs (`consistent_as_of.time`;
// docs/replication.md, *Consistent as of a time*). A primary whose peer speaks protocol 9 or
// more sends, right before each EpochBarrier, an EpochTime: the wall-clock time (ns since the
// Unix epoch, the primary's own clock, read by its driver) at which it closed the epoch, so
// every write it admitted before that instant is in an epoch at or below it. This node only
// carries the values: when an epoch is recorded durable, the newest stamp of an epoch at or
// below it goes into the record with it (the superblock's `consistent as of`, so it survives
// a restart), and `consistentAsOf` reports it with the session and epoch. No clock is read.

/// The primary's wall-clock time of one closed epoch.
struct EpochTimeStamp: Equatable, Sendable {
    var epoch: Epoch
    var wallClockNs: UInt64
}

extension SecondaryNode {
    /// Stamps kept until their epoch is durable: a bound, not a working set (the stream makes
    /// epochs durable in order, a few at a time; the oldest are dropped first).
    public static let epochTimesMax = 256

    /// An EpochTime from the primary. A stamp at or below one already held restates the
    /// stream from there (a new link of the session): the later ones are dropped first.
    public mutating func noteEpochTime(epoch: Epoch, wallClockNs: UInt64) {
        guard wallClockNs != 0 else { return }
        while let last = epochTimes.last, last.epoch >= epoch { epochTimes.removeLast() }
        if epochTimes.count >= Self.epochTimesMax { epochTimes.removeFirst() }
        epochTimes.append(EpochTimeStamp(epoch: epoch, wallClockNs: wallClockNs))
    }

    /// The record is about to say `epoch` of the session durable: its time becomes the newest
    /// stamp at or below it (none: the record keeps the time it had, an earlier and still
    /// true point of the same session).
    mutating func stampDurable(_ epoch: Epoch) {
        var stamp: UInt64?
        while let first = epochTimes.first, first.epoch <= epoch {
            stamp = first.wallClockNs
            epochTimes.removeFirst()
        }
        if let stamp { record.consistentAsOfNs = stamp }
    }

    /// A new session replaces the recorded one: its epochs start again, and so do their times.
    mutating func forgetEpochTimes() {
        epochTimes.removeAll()
        record.consistentAsOfNs = 0
    }
}
