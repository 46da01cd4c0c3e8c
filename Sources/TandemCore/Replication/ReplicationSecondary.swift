// ReplicationSecondary: the secondary's side of one resource's replication, as a pure state
// machine. It applies the primary's writes epoch by epoch (every write of epoch N completes
// before any write of N+1 is submitted; writes inside an epoch go concurrently), batches
// durability (group commit, or a flush per epoch with `disk_drain: flush`), records
// "durable through epoch E" and acknowledges it, and knows whether its volume is consistent.
// It performs no I/O and reads no clock. Confined to one thread (the resource's event loop).

public struct ReplicationSecondary: Sendable {
    enum WriteState: Sendable { case queued, inFlight, completed }

    struct Write: Sendable {
        var message: DataMessage
        var state: WriteState
    }

    public let config: ReplicationSecondaryConfig

    /// Received writes from the first not yet completed on, contiguous in sequence.
    private var queue: BoundedQueue<Write>
    public private(set) var queuedBytes: UInt64 = 0
    public private(set) var writesInFlight = 0
    /// The next sequence to submit; submissions are a prefix of the queue.
    private var nextSubmitSequence: WriteSequence = 0

    /// Highest sequence received on any connection (nil after a restart, until the re-send
    /// starts): later copies of these are duplicates of a re-send.
    private var receivedThroughSequence: WriteSequence?
    private var lastReceivedEpoch: Epoch
    /// No write of an epoch ≤ this will arrive.
    private var closedThroughEpoch: Epoch
    /// Every write of every epoch ≤ this has completed on the disk.
    public private(set) var completedThroughEpoch: Epoch
    private var flushRequestedEpoch: Epoch = 0
    /// Consistency group: the newest epoch whose writes may be issued (docs/groups.md).
    public private(set) var groupIssueLimit: Epoch = .max

    public private(set) var flushInFlight = false
    private var flushCoversEpoch: Epoch = 0
    public private(set) var flushedThroughEpoch: Epoch
    private var recordInFlight = false
    /// Persisted in the metadata and acknowledged (or about to be) to the primary.
    public private(set) var durableThroughEpoch: Epoch
    private var bytesCompletedSinceFlush: UInt64 = 0
    /// When the oldest completed epoch that no submitted flush covers completed (nil: none).
    /// A flush in flight does not restart it: an epoch that completed meanwhile has been
    /// waiting since its own completion, and the group-commit interval counts from there.
    private var unflushedSinceNs: UInt64?

    public private(set) var isConnected = false
    /// The volume is a state the primary's volume was in (all writes through some point, in
    /// epoch order). False after a restart until the primary has re-sent, and this node has
    /// re-applied, everything after the durable epoch.
    public private(set) var isConsistent: Bool
    private var consistentAfterSequence: WriteSequence?

    /// - Parameters:
    ///   - durableThroughEpoch: the value last recorded by `.recordDurableEpoch` (0 for a
    ///     new resource).
    ///   - restarted: the node or the process stopped while writes may have been unflushed;
    ///     those may have landed in any order, so the volume is not consistent until re-sent.
    public init(config: ReplicationSecondaryConfig, durableThroughEpoch: Epoch = 0, restarted: Bool = false) {
        self.config = config
        self.queue = BoundedQueue(capacity: config.queuedWritesMax)
        self.lastReceivedEpoch = durableThroughEpoch
        self.closedThroughEpoch = durableThroughEpoch
        self.completedThroughEpoch = durableThroughEpoch
        self.flushedThroughEpoch = durableThroughEpoch
        self.durableThroughEpoch = durableThroughEpoch
        self.isConsistent = !restarted
        self.receivedThroughSequence = restarted || durableThroughEpoch > 0 ? nil : 0
        // A group member issues nothing until the group's barrier says how far it may go.
        self.groupIssueLimit = config.groupID != 0 ? 0 : .max
    }

    public var queuedWrites: Int { queue.count }

    /// Every write received through `sequence` has completed (a group member's catch-up is
    /// whole only once its journal holds everything its SyncComplete named: the barrier may
    /// still hold some; ConsistencyGroup+CatchUp).
    public func hasCompleted(through sequence: WriteSequence) -> Bool {
        guard let first = queue.first else { return true }
        return first.message.sequence > sequence
    }

    public mutating func handle(
        _ event: SecondaryEvent, nowNs: UInt64, into actions: inout [SecondaryAction]
    ) {
        switch event {
        case .connectionUp:
            precondition(!isConnected, "connection up twice")
            isConnected = true
            actions.append(.send(.hello(durableThroughEpoch: durableThroughEpoch, copy: isConsistent ? .consistent : .inconsistent)))
        case .connectionDown:
            isConnected = false
        case let .message(message):
            // A message read before the connection was dropped (e.g. after a violation) is stale.
            if isConnected { receive(message, into: &actions) }
        case let .writeCompleted(sequence):
            complete(sequence, into: &actions)
        case .flushCompleted:
            precondition(flushInFlight, "flush completion without a flush")
            flushInFlight = false
            flushedThroughEpoch = flushCoversEpoch
            recordIfDue(into: &actions)
        case let .durableEpochRecorded(epoch):
            precondition(recordInFlight && epoch <= flushedThroughEpoch, "unexpected record completion")
            recordInFlight = false
            durableThroughEpoch = epoch
            if isConnected { actions.append(.send(.durableThroughEpoch(epoch))) }
            recordIfDue(into: &actions)
        case .tick:
            break
        case let .groupIssueLimit(epoch):
            precondition(config.groupID != 0, "a group limit for a resource in no group")
            groupIssueLimit = epoch
        }
        applyNext(nowNs: nowNs, into: &actions)
        flushIfDue(nowNs: nowNs, into: &actions)
        updateConsistency()
        checkInvariants()
    }

    private func checkInvariants() {
        precondition(durableThroughEpoch <= flushedThroughEpoch, "recorded more than flushed")
        precondition(flushedThroughEpoch <= completedThroughEpoch, "flushed an incomplete epoch")
        precondition(completedThroughEpoch <= closedThroughEpoch, "completed an open epoch")
        precondition(writesInFlight >= 0 && writesInFlight <= config.writesInFlightMax)
        precondition(queuedBytes <= config.queuedBytesMax)
        // The ordering faults break these on purpose (the simulator's checker must see it).
        guard config.testingFault != .appliesEpochsOutOfOrder,
            config.testingFault != .appliesAheadOverOutstandingWrites
        else { return }
        if config.diskDrain == .flush && config.groupID == 0 {
            precondition(completedThroughEpoch <= flushedThroughEpoch + 1, "two epochs unflushed")
        }
        if let first = queue.first {
            precondition(first.message.epoch > completedThroughEpoch, "a completed epoch is queued")
        }
    }

    // MARK: Receiving

    private mutating func receive(_ message: PrimaryMessage, into actions: inout [SecondaryAction]) {
        switch message {
        case let .data(data):
            receive(data, into: &actions)
        case let .epochBarrier(epoch):
            guard epoch <= lastReceivedEpoch else { return violation("barrier \(epoch)", &actions) }
            closedThroughEpoch = max(closedThroughEpoch, epoch)
        case let .flushRequest(epoch):
            guard epoch <= lastReceivedEpoch else { return violation("flush request \(epoch)", &actions) }
            closedThroughEpoch = max(closedThroughEpoch, epoch)
            flushRequestedEpoch = max(flushRequestedEpoch, epoch)
        case let .resendComplete(sequence):
            guard sequence <= (receivedThroughSequence ?? 0) else {
                return violation("resend complete at \(sequence)", &actions)
            }
            if !isConsistent { consistentAfterSequence = sequence }
        case let .groupBarrier(groupID, epoch):
            guard groupID == config.groupID, groupID != 0 else {
                return violation("group barrier of group \(groupID) for a resource in group \(config.groupID)", &actions)
            }
            // Nothing of this member's through `epoch` follows: the skipped numbers are empty.
            closedThroughEpoch = max(closedThroughEpoch, epoch)
            lastReceivedEpoch = max(lastReceivedEpoch, epoch)
        }
    }

    /// What a Data message would be to this machine, without changing anything: the driver
    /// asks before it allocates and restores a payload (`.accept` is queued by `.data`).
    public func classify(_ data: DataMessage) -> DataVerdict {
        if let received = receivedThroughSequence, data.sequence <= received { return .duplicate }
        let inOrder: Bool
        // A group member's epochs are the group's: they skip the numbers it wrote nothing in.
        let skips = config.groupID != 0
        if let received = receivedThroughSequence {
            inOrder = data.sequence == received + 1
                && (data.epoch == lastReceivedEpoch || data.epoch == lastReceivedEpoch + 1
                    || (skips && data.epoch > lastReceivedEpoch))
        } else {
            inOrder = data.epoch == lastReceivedEpoch + 1 || (skips && data.epoch > lastReceivedEpoch)
        }
        guard inOrder, data.epoch > closedThroughEpoch, data.lengthBytes > 0 else {
            return .violation("data \(data.sequence) of epoch \(data.epoch) out of order")
        }
        // A write larger than the whole bound could never be queued; any other write fits once
        // enough of the queue has been written (backpressure, not a fault of the primary).
        guard UInt64(data.lengthBytes) <= config.queuedBytesMax else {
            return .violation("data \(data.sequence) of \(data.lengthBytes) bytes exceeds the secondary's queue bound")
        }
        guard !queue.isFull, queuedBytes + UInt64(data.lengthBytes) <= config.queuedBytesMax else { return .wait }
        return .accept
    }

    public enum DataVerdict: Sendable, Hashable {
        /// Queued to be applied in order.
        case accept
        /// A re-send of a write received before: dropped (acknowledged again when complete).
        case duplicate
        /// No room in the queue now: the driver holds the frame (and stops reading the link)
        /// until a completed write frees room, then asks again.
        case wait
        case violation(String)
    }

    /// Nothing of the stream is queued, being written, flushed or recorded.
    public var isIdle: Bool { queue.isEmpty && writesInFlight == 0 && !flushInFlight && !recordInFlight }

    private mutating func receive(_ data: DataMessage, into actions: inout [SecondaryAction]) {
        switch classify(data) {
        case .duplicate:
            // A re-send of what this node already has: acknowledge again if it is done, the
            // first acknowledgement may have been lost with the previous connection.
            if isCompleted(data.sequence) {
                actions.append(.send(.dataAck(sequence: data.sequence)))
            }
            return
        case .violation(let reason):
            return violation(reason, &actions)
        case .wait:
            return violation("data \(data.sequence) delivered while the queue had no room for it", &actions)
        case .accept:
            break
        }
        if queue.isEmpty { nextSubmitSequence = data.sequence }
        if data.epoch > lastReceivedEpoch { closedThroughEpoch = max(closedThroughEpoch, data.epoch - 1) }
        lastReceivedEpoch = data.epoch
        receivedThroughSequence = data.sequence
        queue.append(Write(message: data, state: .queued))
        queuedBytes += UInt64(data.lengthBytes)
    }

    private mutating func violation(_ reason: String, _ actions: inout [SecondaryAction]) {
        isConnected = false
        actions.append(.protocolViolation(reason))
    }

    // MARK: Applying

    private func isCompleted(_ sequence: WriteSequence) -> Bool {
        guard let first = queue.first, sequence >= first.message.sequence else { return true }
        return queue[Int(sequence - first.message.sequence)].state == .completed
    }

    private mutating func complete(_ sequence: WriteSequence, into actions: inout [SecondaryAction]) {
        guard let first = queue.first, sequence >= first.message.sequence,
            Int(sequence - first.message.sequence) < queue.count
        else { preconditionFailure("completion for unknown write \(sequence)") }
        let index = Int(sequence - first.message.sequence)
        precondition(queue[index].state == .inFlight, "write \(sequence) completed twice")
        queue[index].state = .completed
        writesInFlight -= 1
        bytesCompletedSinceFlush += UInt64(queue[index].message.lengthBytes)
        if isConnected { actions.append(.send(.dataAck(sequence: sequence))) }
        while let front = queue.first, front.state == .completed {
            queue.removeFirst()
            queuedBytes -= UInt64(front.message.lengthBytes)
        }
    }

    /// The epoch whose writes may be submitted now.
    private var applyingEpoch: Epoch { completedThroughEpoch + 1 }

    private mutating func applyNext(nowNs: UInt64, into actions: inout [SecondaryAction]) {
        while true {
            submitApplyingEpoch(into: &actions)
            // Epoch N is complete once no write of it is outstanding and none can still arrive.
            let epoch = applyingEpoch
            guard epoch <= closedThroughEpoch else { return }
            if let front = queue.first, front.message.epoch <= epoch { return }
            completedThroughEpoch = epoch
            if config.groupID != 0 {
                // The numbers up to the next queued write's epoch hold nothing of this member.
                completedThroughEpoch = min(closedThroughEpoch, (queue.first?.message.epoch ?? .max) - 1)
            }
            if unflushedSinceNs == nil { unflushedSinceNs = nowNs }
            // disk_drain: flush — the next epoch waits for the flush of this one.
            if config.diskDrain == .flush { return }
        }
    }

    private mutating func submitApplyingEpoch(into actions: inout [SecondaryAction]) {
        if config.diskDrain == .flush && flushedThroughEpoch < completedThroughEpoch { return }
        guard let first = queue.first else { return }
        while writesInFlight < config.writesInFlightMax {
            let index = Int(nextSubmitSequence - first.message.sequence)
            guard index < queue.count else { return }
            let message = queue[index].message
            // The group's barrier: a later group epoch waits until every member completed
            // the one before (sync writes too: the barrier is simpler kept without exception).
            guard message.epoch <= groupIssueLimit else { return }
            if config.testingFault != .appliesEpochsOutOfOrder {
                precondition(message.epoch >= applyingEpoch, "a write of a completed epoch is queued")
                guard message.epoch == applyingEpoch || mayApplyAhead(index) else { return }
            }
            queue[index].state = .inFlight
            writesInFlight += 1
            nextSubmitSequence += 1
            actions.append(
                .submitWrite(
                    SecondaryWrite(
                        sequence: message.sequence, epoch: message.epoch,
                        offsetBytes: message.offsetBytes, lengthBytes: message.lengthBytes)))
        }
    }

    /// A write of a later epoch may be issued before the applying epoch has completed when
    /// its primary acknowledges only after it completed here (sync): whatever it may depend on
    /// was acknowledged, so is complete here already. It must still overlap no earlier write
    /// that has not completed — the newer bytes have to land last (a re-send after a
    /// reconnect carries both). `disk_drain: flush` keeps the strict order, which is its
    /// promise. The scan is bounded: far behind, the write waits for its epoch.
    private func mayApplyAhead(_ index: Int) -> Bool {
        let message = queue[index].message
        guard message.flags.contains(.acknowledgedAfterApply), config.diskDrain == .drain,
            index < 4 * config.writesInFlightMax
        else { return false }
        let start = message.offsetBytes
        let end = start + UInt64(message.lengthBytes)
        if config.testingFault == .appliesAheadOverOutstandingWrites { return true }
        for earlier in 0..<index where queue[earlier].state != .completed {
            let other = queue[earlier].message
            if other.offsetBytes < end && start < other.offsetBytes + UInt64(other.lengthBytes) { return false }
        }
        return true
    }

    // MARK: Durability

    private mutating func flushIfDue(nowNs: UInt64, into actions: inout [SecondaryAction]) {
        guard !flushInFlight, completedThroughEpoch > flushedThroughEpoch else { return }
        let due: Bool
        switch config.diskDrain {
        case .flush:
            due = true
        case .drain:
            let requested = flushRequestedEpoch > flushedThroughEpoch
                && completedThroughEpoch >= flushRequestedEpoch
            let aged = nowNs >= (unflushedSinceNs ?? nowNs) + config.groupCommitIntervalNs
            due = requested || aged || bytesCompletedSinceFlush >= config.groupCommitBytesMax
        }
        guard due else { return }
        // A flush covers what completed before it was submitted: every epoch ≤ completed.
        flushInFlight = true
        flushCoversEpoch = completedThroughEpoch
        bytesCompletedSinceFlush = 0
        unflushedSinceNs = nil
        actions.append(.submitFlush)
    }

    private mutating func recordIfDue(into actions: inout [SecondaryAction]) {
        guard !recordInFlight, flushedThroughEpoch > durableThroughEpoch else { return }
        recordInFlight = true
        actions.append(.recordDurableEpoch(flushedThroughEpoch))
    }

    /// When the group-commit timer next needs a tick, if anything is unflushed and no flush is
    /// in flight (its completion decides again: a deadline passed meanwhile is due at once).
    public var flushDeadlineNs: UInt64? {
        guard let since = unflushedSinceNs, !flushInFlight else { return nil }
        return since + config.groupCommitIntervalNs
    }

    private mutating func updateConsistency() {
        guard !isConsistent, let after = consistentAfterSequence else { return }
        if let front = queue.first, front.message.sequence <= after { return }
        isConsistent = true
        consistentAfterSequence = nil
    }
}
