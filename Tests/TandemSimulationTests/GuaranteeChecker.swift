import TandemCore

// GuaranteeChecker: the history of every primary session (its base content and every write it
// admitted, with its epoch) and the requirements the acknowledgements of the current lineage
// created; the checks of DESIGN.md's guarantees against the fake disks' content, and of every
// disk state a node reports. Every check returns a description of the violation.
//
// Values: a block holds the global identity of the application write that last wrote it
// (identities increase in admission order over the whole run). A *lineage* is the chain of
// primary sessions that share data: it starts at the beginning and again at every forced
// promotion; the requirements below belong to the current lineage.

struct SessionHistory {
    let session: UInt64
    /// The primary's content when the session started: what "nothing of this session yet" is.
    let base: [UInt64]
    /// Per block, every admitted application write of the session that covers it, in order.
    fileprivate(set) var entries: [[(epoch: Epoch, value: UInt64)]]
    fileprivate(set) var epochOfValue: [UInt64: Epoch] = [:]
    /// The application write each sequence carried (copy chunks: none).
    fileprivate(set) var valueOfSequence: [WriteSequence: UInt64] = [:]

    /// The newest application write admitted with a sequence ≤ `sequence` (0: none).
    func newestValue(through sequence: WriteSequence) -> UInt64 {
        var candidate = min(sequence, lastSequence)
        while candidate > 0 {
            if let value = valueOfSequence[candidate] { return value }
            candidate -= 1
        }
        return 0
    }
    /// Per block, the newest epoch any write (a copy chunk too) touched it in, and its data.
    fileprivate var lastTouching: [(epoch: Epoch, value: UInt64)]
    fileprivate(set) var lastSequence: WriteSequence = 0
    fileprivate(set) var lastEpoch: Epoch = 0

    init(session: UInt64, base: [UInt64]) {
        self.session = session
        self.base = base
        entries = Array(repeating: [], count: base.count)
        lastTouching = base.map { (0, $0) }
    }

    func contains(_ value: UInt64, block: Int) -> Bool {
        value == base[block] || epochOfValue[value] != nil
    }

    func newestBefore(epoch: Epoch, block: Int) -> UInt64 {
        for entry in entries[block].reversed() where entry.epoch < epoch { return entry.value }
        return base[block]
    }

    /// Crash consistency: the content equals the session's history through some epoch K (K = 0:
    /// the base) plus a subset of the writes of epoch K+1. K+1 can only be the newest epoch
    /// present.
    func prefixViolation(_ content: [UInt64]) -> String? {
        var newestEpoch: Epoch = 0
        for (block, value) in content.enumerated() {
            if let epoch = epochOfValue[value] {
                newestEpoch = max(newestEpoch, epoch)
            } else if value != base[block] {
                return "block \(block) holds write \(value), which session \(session) never admitted and did not start with"
            }
        }
        guard newestEpoch > 0 else { return nil }
        for (block, value) in content.enumerated() {
            if let epoch = epochOfValue[value], epoch == newestEpoch { continue }
            let expected = newestBefore(epoch: newestEpoch, block: block)
            if value != expected {
                return "not crash-consistent: block \(block) holds \(value) but epoch \(newestEpoch) of session \(session) is present and its history through epoch \(newestEpoch - 1) has \(expected) there"
            }
        }
        return nil
    }

    func admittedViolation(_ content: [UInt64]) -> String? {
        for (block, value) in content.enumerated() where !contains(value, block: block) {
            return "block \(block) holds \(value), which session \(session) never admitted and did not start with"
        }
        return nil
    }
}

struct GuaranteeChecker {
    let mode: ReplicationAckMode
    let blockCount: Int
    /// Whether application writes may overlap writes in flight (the core serialises them).
    let overlapping: Bool
    private(set) var histories: [UInt64: SessionHistory] = [:]
    private(set) var lineage = 0
    /// The lineage each session belongs to.
    private(set) var lineageOfSession: [UInt64: Int] = [:]
    /// Per block, the newest acknowledged write covering it: must be readable on the primary.
    private(set) var ackedRequired: [UInt64]
    /// Per block, every acknowledged write covering it in the lineage (ascending).
    private var ackedValues: [[UInt64]]
    /// Per block, the newest write acknowledged while the primary replicated (not detached
    /// after its peer's disk failed): what a sync secondary holds.
    private var replicatedAckedRequired: [UInt64]
    /// Per block, the newest write an acknowledged FLUSH/FUA made durable on the primary…
    private var durableRequiredPrimary: [UInt64]
    /// …and, in sync mode, on the secondary too.
    private var durableRequiredSecondary: [UInt64]
    /// `mode: adaptive` (the stream async, each write admitted sync or async): per block, the
    /// newest write acknowledged while admitted sync and replicating — never lost by a later
    /// switch to async: a Consistent copy of the lineage holds it (Simulation+Adaptive).
    var adaptive = false
    private(set) var syncAckedRequired: [UInt64]

    init(mode: ReplicationAckMode, blockCount: Int, overlapping: Bool, initialContent: [UInt64]) {
        self.mode = mode
        self.blockCount = blockCount
        self.overlapping = overlapping
        ackedRequired = initialContent
        ackedValues = initialContent.map { [$0] }
        replicatedAckedRequired = initialContent
        durableRequiredPrimary = initialContent
        durableRequiredSecondary = Array(repeating: 0, count: blockCount)
        syncAckedRequired = Array(repeating: 0, count: blockCount)
    }

    // MARK: History

    mutating func startSession(_ session: UInt64, base: [UInt64]) -> String? {
        guard histories[session] == nil else { return "session number \(session) used twice" }
        histories[session] = SessionHistory(session: session, base: base)
        lineageOfSession[session] = lineage
        return nil
    }

    /// A session that took another copy as its base before that copy settled (a diskless
    /// primary's start: the peer's writes of the last session may still be landing) takes it
    /// again as it is now, before the session admitted anything.
    mutating func rebase(_ session: UInt64, base: [UInt64]) -> String? {
        guard let history = histories[session], history.lastSequence == 0 else {
            return "session \(session) rebased after it admitted writes"
        }
        histories[session] = SessionHistory(session: session, base: base)
        return nil
    }

    func isCurrentLineage(session: UInt64?) -> Bool {
        session.flatMap { lineageOfSession[$0] } == lineage
    }

    /// A forced promotion: what the promoted node holds is the truth from now on. A sync
    /// secondary that was synced keeps the durability promised of it (`keepsSyncPromises`).
    mutating func startLineage(content: [UInt64], keepsSyncPromises: Bool) {
        lineage += 1
        ackedRequired = content
        ackedValues = content.map { [$0] }
        replicatedAckedRequired = content
        durableRequiredPrimary = keepsSyncPromises && (mode == .sync || adaptive)
            ? durableRequiredSecondary : Array(repeating: 0, count: blockCount)
        durableRequiredSecondary = Array(repeating: 0, count: blockCount)
        syncAckedRequired = Array(repeating: 0, count: blockCount)
    }

    /// After the primary's power loss its unflushed writes may be gone (allowed: they were not
    /// flushed); what must be readable from now on is what it kept.
    mutating func primaryLostItsCache(content: [UInt64]) {
        for block in 0..<blockCount {
            ackedRequired[block] = min(ackedRequired[block], content[block])
            replicatedAckedRequired[block] = min(replicatedAckedRequired[block], content[block])
            syncAckedRequired[block] = min(syncAckedRequired[block], content[block])
            ackedValues[block].removeAll { $0 > content[block] }
            if ackedValues[block].isEmpty { ackedValues[block] = [content[block]] }
        }
    }

    /// Every write the primary's state machine admitted: an application write (`values`: its
    /// identity in every block) or a copy chunk (`values`: what the primary read).
    mutating func recordAdmission(
        session: UInt64, sequence: WriteSequence, epoch: Epoch, blocks: Range<Int>, values: [UInt64], isCopyChunk: Bool
    ) -> String? {
        guard var history = histories.removeValue(forKey: session) else { return "admission in unknown session \(session)" }
        defer { histories[session] = history }
        guard sequence == history.lastSequence + 1 else {
            return "sequence \(sequence) is not the next one (\(history.lastSequence + 1)) in session \(session)"
        }
        guard epoch >= history.lastEpoch else {
            return "write \(sequence) has epoch \(epoch) below the previous write's"
        }
        history.lastSequence = sequence
        history.lastEpoch = epoch
        for (offset, block) in blocks.enumerated() {
            // Two writes of one epoch on the same block are applied concurrently on the
            // secondary, in any order: harmless only if they carry the same data (a copy chunk
            // read after the write landed); otherwise the epoch rule (and the overlap rule)
            // must have separated them.
            let last = history.lastTouching[block]
            if last.epoch == epoch && last.value != values[offset] {
                return "two writes to block \(block) with different data share epoch \(epoch) (write \(sequence) of session \(session))"
            }
            history.lastTouching[block] = (epoch, values[offset])
            if !isCopyChunk { history.entries[block].append((epoch, values[offset])) }
        }
        if !isCopyChunk, let value = values.first {
            history.epochOfValue[value] = epoch
            history.valueOfSequence[sequence] = value
        }
        return nil
    }

    // MARK: Requirements

    /// `peerCovered` false: acknowledged by a primary replicating to no one (detached).
    /// `admittedSync`: adaptive mode admitted it sync (acknowledged once the peer applied it).
    mutating func recordWriteAcknowledged(_ value: UInt64, blocks: Range<Int>, fua: Bool, peerCovered: Bool,
                                          admittedSync: Bool = false) {
        for block in blocks {
            ackedRequired[block] = max(ackedRequired[block], value)
            if peerCovered { replicatedAckedRequired[block] = max(replicatedAckedRequired[block], value) }
            if peerCovered && admittedSync { syncAckedRequired[block] = max(syncAckedRequired[block], value) }
            let index = ackedValues[block].firstIndex { $0 > value } ?? ackedValues[block].count
            ackedValues[block].insert(value, at: index)
            if fua {
                durableRequiredPrimary[block] = max(durableRequiredPrimary[block], value)
                if (mode == .sync || admittedSync) && peerCovered {
                    durableRequiredSecondary[block] = max(durableRequiredSecondary[block], value)
                }
            }
        }
    }

    /// A FLUSH covers every write acknowledged before the FLUSH was submitted (`snapshot`);
    /// in sync mode on the peer too, unless the peer's copy is being replaced by a full copy
    /// (`peerCovered` false: the session has no peer copy to make durable).
    mutating func recordFlushAcknowledged(snapshot: [UInt64], peerCovered: Bool) {
        for block in 0..<blockCount {
            durableRequiredPrimary[block] = max(durableRequiredPrimary[block], snapshot[block])
            if mode == .sync && peerCovered {
                durableRequiredSecondary[block] = max(durableRequiredSecondary[block], snapshot[block])
            }
        }
    }

    // MARK: Checks

    func checkPrimary(_ disk: FakeDisk, name: String) -> String? {
        for block in 0..<blockCount {
            if disk.cache[block] < ackedRequired[block] {
                return "primary \(name) block \(block) holds \(disk.cache[block]), acknowledged write \(ackedRequired[block]) is missing"
            }
            if disk.durable[block] < durableRequiredPrimary[block] {
                return "primary \(name) block \(block) durably holds \(disk.durable[block]), but FLUSH/FUA acknowledged write \(durableRequiredPrimary[block])"
            }
        }
        return nil
    }

    /// Sync mode: an acknowledged FLUSH/FUA is durable on the secondary of its lineage, also
    /// across its power loss.
    func checkSecondaryDurable(_ disk: FakeDisk, name: String) -> String? {
        for block in 0..<blockCount where disk.durable[block] < durableRequiredSecondary[block] {
            return "secondary \(name) block \(block) durably holds \(disk.durable[block]), but sync FLUSH/FUA acknowledged write \(durableRequiredSecondary[block])"
        }
        return nil
    }

    /// Whether the disk state `claim`, said by `who` about `content` (a copy whose data belongs
    /// to `session`'s history), is true.
    /// - UpToDate: holds every acknowledged write, and nothing the primary never admitted.
    /// - Consistent (and Outdated): async: a crash-consistent prefix of the session; sync: every
    ///   acknowledged write (writes of later epochs may be applied ahead, DataFlags
    ///   .acknowledgedAfterApply, so the content need not be an epoch prefix) and nothing
    ///   never admitted.
    /// `confirmedThrough`: an async secondary's UpToDate rests on the primary's SyncComplete
    /// through this sequence of `session`; it promises the writes acknowledged through it (a
    /// write the primary acknowledges after sending SyncComplete, before this node received
    /// it, is beyond any secondary's knowledge: docs/replication.md "The simulator").
    func checkClaim(_ claim: DiskState, by who: String, content: [UInt64], session: UInt64, currentLineage: Bool,
                    confirmedThrough: WriteSequence? = nil) -> String? {
        guard let history = histories[session] else {
            return claim == .upToDate || claim == .consistent || claim == .outdated
                ? "\(who) says \(claim.rawValue) of a copy of unknown session \(session)" : nil
        }
        switch claim {
        case .upToDate:
            guard currentLineage else { return "\(who) says UpToDate of a copy of an abandoned lineage" }
            let bound = confirmedThrough.map { history.newestValue(through: $0) }
            if let problem = missingAcknowledged(content, upTo: bound) { return "\(who) says UpToDate: \(problem)" }
            if let problem = history.admittedViolation(content) { return "\(who) says UpToDate: \(problem)" }
        case .consistent, .outdated:
            if mode == .sync && currentLineage {
                // Sync: every write acknowledged while replicating (a detached primary's
                // acknowledgements are the ones a Consistent copy may lack).
                for block in 0..<blockCount where content[block] < replicatedAckedRequired[block] {
                    return "\(who) says \(claim.rawValue) (sync): block \(block) holds \(content[block]), acknowledged write \(replicatedAckedRequired[block]) is missing"
                }
                if let problem = history.admittedViolation(content) { return "\(who) says \(claim.rawValue): \(problem)" }
            } else if adaptive && currentLineage {
                // Adaptive: writes admitted sync may be applied ahead of their epoch (DataFlags
                // .acknowledgedAfterApply), so no epoch prefix; every write acknowledged while
                // admitted sync is there, and nothing never admitted.
                for block in 0..<blockCount where content[block] < syncAckedRequired[block] {
                    return "\(who) says \(claim.rawValue) (adaptive): block \(block) holds \(content[block]), write \(syncAckedRequired[block]) acknowledged while admitted sync is missing"
                }
                if let problem = history.admittedViolation(content) { return "\(who) says \(claim.rawValue): \(problem)" }
            } else if let problem = history.prefixViolation(content) {
                return "\(who) says \(claim.rawValue): \(problem)"
            }
        case .inconsistent, .failed, .unknown:
            break
        }
        return nil
    }

    /// `upTo`: only acknowledged writes admitted no later than this one count.
    func missingAcknowledged(_ content: [UInt64], upTo bound: UInt64? = nil) -> String? {
        for block in 0..<blockCount {
            var required = ackedRequired[block]
            if let bound, required > bound { required = ackedValues[block].last { $0 <= bound } ?? 0 }
            if content[block] < required {
                return "block \(block) holds \(content[block]), acknowledged write \(required) is missing"
            }
        }
        return nil
    }
}
