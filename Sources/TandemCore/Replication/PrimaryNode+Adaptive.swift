// PrimaryNode's replication profile: `mode: adaptive` (AdaptiveModeController) and
// `rpo_target_ms` write pacing (RPOPacingController). Both controllers are pure; this file
// feeds them from the stream after every event and applies what they decide.
//
// Adaptive: the node runs an async stream whose ReplicationPrimary acknowledges each write as
// the mode it was admitted in says (`admit(as:)`): a switch applies to writes admitted after
// it, and a write admitted sync is acknowledged only once the peer applied it — no later switch
// and no Ahead (unless `fencing: dont-care` lets sync writes go Ahead, as it does in sync mode)
// acknowledges it without the peer.
//
// Pacing: while the projected RPO of the stream is above half the target, each async write's
// admission waits the pacer's delay after the previous one (so its acknowledgement comes that
// much later, and the application's write rate follows the link's). When even the maximum
// delay cannot hold the target, the node reports it and goes Ahead (+Ahead's `aheadReason`).

/// A write (or a WRITE_ZEROES chunk) at the head of the queue, as pacing knows it.
struct PacedHead: Sendable, Equatable {
    var request: RequestID
    var offsetBytes: UInt64
}

extension PrimaryNode {
    /// Pacing looks at the lag at most this often (the lag's age is a scan of the buffer).
    static let pacingUpdateIntervalNs: UInt64 = 1_000_000

    /// The controllers' state at creation (the config names which run).
    mutating func startReplicationProfile() {
        adaptiveMode = config.adaptive.map { AdaptiveModeController(settings: $0) }
        rpoPacer = config.rpoTarget.map { RPOPacingController(settings: $0) }
        applyAdmissionMode()
    }

    /// A new stream (a catch-up's) admits as the adaptive controller says.
    mutating func applyAdmissionMode() {
        if let adaptiveMode { primary.admit(as: adaptiveMode.mode) }
    }

    /// How writes admitted now are acknowledged: sync or async. Ahead, async whatever the mode
    /// (writes are acknowledged on this copy alone).
    public var effectiveMode: ReplicationAckMode {
        if isAhead { return .async }
        return adaptiveMode?.mode ?? config.primary.mode
    }

    /// The delay pacing put between the last two async admissions (0: not pacing).
    public var pacingDelayActiveNs: UInt64 { rpoPacer?.admitBytesPerSecond == nil ? 0 : pacingDelayNs }

    /// When the driver should feed `.tick` for the profile's sake: a write waits for pacing, or
    /// the adaptive controller's decision falls due without any acknowledgement to wake it.
    public var profileWakeAtNs: UInt64? {
        var wake = adaptiveMode?.decisionDueNs
        // No acknowledgement may come to wake the node: look again when the oldest waiting
        // write crosses the bound (then a pending switch has its due time).
        if let adaptiveMode, adaptiveMode.mode == .sync, wake == nil, let admitted = primary.oldestUnappliedAdmittedAtNs {
            wake = admitted + adaptiveMode.settings.latencyBoundNs + 1
        }
        if pacingHoldsHead { wake = min(wake ?? pacedUntilNs, pacedUntilNs) }
        return wake
    }

    /// Feeds both controllers (before admission, so that a switch applies to what follows).
    mutating func updateReplicationProfile(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        if adaptiveMode != nil { updateAdaptive(nowNs: nowNs, into: &actions) }
        if rpoPacer != nil { updatePacer(nowNs: nowNs, into: &actions) }
    }

    private mutating func updateAdaptive(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        guard var controller = adaptiveMode else { return }
        let bound = controller.settings.latencyBoundNs
        let acks = primary.takePeerAckLatency()
        let waiting = primary.oldestUnappliedAgeNs(nowNs: nowNs)
        if acks.samples > 0 || waiting > 0 { lastPeerLatencyNs = max(acks.maxNs, waiting) }
        let seen = AdaptiveModeController.Observation(
            latencyNs: max(acks.maxNs, waiting), peerOutOfStream: isAhead,
            drained: waiting <= bound && isPeerReady && !copyWanted && !restartPending)
        if let change = controller.observe(seen, nowNs: nowNs) {
            primary.admit(as: change.to)
            actions.append(.notice(.modeSwitched(to: change.to, reason: change.reason)))
        }
        adaptiveMode = controller
    }

    private mutating func updatePacer(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        guard var pacer = rpoPacer else { return }
        defer { rpoPacer = pacer }
        if isAhead || restartPending {
            pacer.reset()
            pacedUntilNs = 0
            return
        }
        guard nowNs >= pacingUpdatedNs + Self.pacingUpdateIntervalNs || pacingUpdatedNs == 0 else { return }
        pacingUpdatedNs = nowNs
        // The stream's application writes: a copy's chunks (a catch-up's regions, which the
        // peer lacked from before) are not, and pacing the application cannot make them arrive
        // sooner; counted, a catch-up on a slow link said the target missed and went Ahead
        // again and again. The drain is the link's: every byte the peer confirmed.
        let copyCounts = pacer.settings.testingFault == .copyCountsAsApplication
        let age = primary.rpoAgeNs(nowNs: nowNs, countingCopies: copyCounts)
        let lag = copyCounts ? primary.lagBytes : primary.applicationLagBytes
        guard pacer.update(ageNs: age, lagBytes: lag, peerDurableBytes: primary.peerDurableBytesTotal, nowNs: nowNs)
        else { return }
        let reason = "rpo_ms \(age / 1_000_000) is above rpo_target_ms \(pacer.settings.targetNs / 1_000_000) with "
            + "writes paced at rpo_pacing_max_ms \(pacer.settings.delayMaxNs / 1_000_000): the link carries "
            + "\(UInt64(pacer.drainBytesPerSecond)) bytes/s, less than the writes"
        lastRPOMissReason = reason
        actions.append(.notice(.rpoTargetMissed(reason: reason, rpoMs: age / 1_000_000)))
    }

    /// Whether the async write at the head of the queue may be admitted now (pacing). On
    /// admission the next write's earliest time is set by this one's delay.
    /// `head` names the write (or zero chunk) at the head of the queue: one that passed and
    /// was then held by a later gate goes without a second charge (the caller forgets it once
    /// admitted). Charged twice, it waited two delays and took two shares of the pacer's budget.
    mutating func pacingAdmits(_ head: PacedHead, _ lengthBytes: UInt64, nowNs: UInt64) -> Bool {
        guard rpoPacer != nil, !isAhead, !primary.admitsSync, pacingPassedHead != head else { return true }
        if nowNs < pacedUntilNs {
            pacingHoldsHead = true
            return false
        }
        pacingHoldsHead = false
        pacingPassedHead = head
        let delay = rpoPacer!.admit(lengthBytes: lengthBytes)
        pacingDelayNs = delay
        pacedUntilNs = delay == 0 ? 0 : nowNs + delay
        return true
    }

    /// With `rpo_target_ms`, the copy (a catch-up's, a full copy's) keeps at most the pacer's
    /// `copyInFlightBytesMax` in flight (read or not yet durable on the peer), one chunk at
    /// least: an application write sent behind the copy's chunks waits for them on the link. A
    /// copy that filled its half of the buffer on a slow link put every such write's RPO age
    /// past the target whatever pacing did, and the node went Ahead and started over.
    func pacingLeavesRoomForCopy(_ lengthBytes: UInt64) -> Bool {
        guard let pacer = rpoPacer, !isAhead, pacer.settings.testingFault != .copyCountsAsApplication else { return true }
        var inFlight = copyReadBytes
        for index in 0..<copyChunksHeld.count { inFlight += UInt64(copyChunksHeld[index].lengthBytes) }
        return inFlight == 0 || inFlight + lengthBytes <= pacer.copyInFlightBytesMax
    }

    /// Why Ahead is due for the RPO target (nil: it is not).
    var rpoTargetAheadReason: String? {
        guard rpoPacer?.cannotHold == true else { return nil }
        return "the RPO target cannot be held: \(lastRPOMissReason ?? "the link is slower than the writes")"
    }
}
