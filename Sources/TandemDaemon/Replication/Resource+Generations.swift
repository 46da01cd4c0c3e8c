// Resource's generation identifiers (docs/design-v3.md section 2), kept durably in the
// metadata superblock, and what follows when two primaries meet: a split brain (reported on
// both nodes, then `after_split_brain` or `resolve` decides) or a primary superseded by a
// later promotion (it stops accepting writes). The decisions are TandemCore's
// (`Generations`, `PeerHelloCheck`, `SplitBrainVerdict`); this file persists and carries
// them out. Loop thread only.
import Logging
import TandemControl
import TandemCore
import TandemIO

/// A split brain as this node found it (status `split_brain`).
struct SplitBrainState {
    var report: SplitBrainReport
    var peer: String
    var detectedAtMs: Int64
}

extension Resource {
    var generations: Generations {
        let node = metadata.latest
        return Generations(current: node.currentGeneration, bitmap: node.bitmapGeneration,
                           history: Array(node.history.prefix(Generations.historyCount)),
                           promotion: node.promotionNumber)
    }

    /// Changes the generations and writes them durably before anything acts on them.
    @discardableResult
    func updateGenerations(_ change: (inout Generations) -> Void,
                           also: (inout MetadataSuperblock) -> Void = { _ in }) -> Bool {
        var next = generations
        change(&next)
        guard next != generations else { return true }
        return updateNode { node in
            node.currentGeneration = next.current
            node.bitmapGeneration = next.bitmap
            node.history = next.history
            node.promotionNumber = next.promotion
            also(&node)
        }
    }

    /// A random identifier, never 0 and never one this node already holds.
    func newGeneration() -> UInt64 {
        let held = generations
        while true {
            let candidate = UInt64.random(in: 1...UInt64.max)
            if candidate != held.current && candidate != held.bitmap && !held.historyContains(candidate) { return candidate }
        }
    }

    /// Bytes written here since parting from the peer (0 on a secondary).
    var changedBytesSinceParting: UInt64 { spec.role == .primary ? changedBytesWhileParted : 0 }

    func persistChangedBytes() {
        // In a split brain the field holds what the detection reported (split_brain_detail's
        // `local_changed_bytes`, restored from it after a restart) until it is resolved.
        guard splitBrain == nil, metadata.latest.changedBytes != changedBytesWhileParted else { return }
        _ = updateNode { $0.changedBytes = changedBytesWhileParted }
    }

    /// The version-4 Hello tail and promotion number this node sends.
    var helloGenerations: (node: WireNodeGenerations, promotion: UInt64) {
        let held = generations
        var flags: WireNodeGenerations.Flags = metadata.latest.flags.contains(.outdated) ? [.outdated] : []
        if asksForPeerBitmap { flags.insert(.splitBrainResync) }
        return (WireNodeGenerations(current: held.current, bitmap: held.bitmap, changedBytes: changedBytesSinceParting,
                                    flags: flags, afterSplitBrain: spec.afterSplitBrain), held.promotion)
    }

    // MARK: transitions

    /// A primary's first session: its copy is the reference, so it gets a generation.
    func ensurePrimaryGeneration() {
        guard generations.current == 0 else { return }
        updateGenerations { $0.beginInSync(generation: newGeneration()) }
    }

    /// A write the peer will not get (the link is down, or what it acknowledged is not
    /// confirmed): tracking starts against the shared generation, once (B := C, C := new).
    func startTrackingGeneration() {
        // Since when the peer lacks acknowledged writes, on the wall clock, once per parting
        // (after a forced promotion too, where B is set already): a restart while it still
        // lacks them reports their age, not 0 (docs/metadata.md, offset 392).
        let lacksSince = metadata.latest.peerLacksSinceUnixNs == 0 ? peerLacksSinceNow() : nil
        let held = generations
        guard held.bitmap == 0, held.current != 0 else {
            if let lacksSince { _ = updateNode { $0.peerLacksSinceUnixNs = lacksSince } }
            return
        }
        changedBytesWhileParted = 0
        updateGenerations({ $0.startTracking(newGeneration: newGeneration()) },
                          also: { if let lacksSince { $0.peerLacksSinceUnixNs = lacksSince } })
        persistChangedBytes()
        startPartedTracking(inFlight: true)
    }

    /// The wall-clock time of the oldest acknowledged write the peer lacks: now minus the
    /// node's RPO age (the writes held unconfirmed when tracking started count).
    private func peerLacksSinceNow() -> UInt64? {
        guard let node = primary?.node else { return nil }
        let ageNs = node.rpoAgeNs(nowNs: MonotonicClock.nowNs())
        let nowUnixNs = WallClock.nowUnixNs()
        return max(1, nowUnixNs - min(ageNs, nowUnixNs))
    }

    /// The monotonic instant a restarted primary's RPO age counts from: the recorded wall
    /// time while tracking (B ≠ 0), else 0 (the peer lacked nothing, or the age is unknown).
    var peerLacksSinceNs: UInt64 {
        let since = metadata.latest.peerLacksSinceUnixNs
        guard since != 0, generations.bitmap != 0 else { return 0 }
        return WallClock.monotonicNs(ofUnixNs: since)
    }

    /// The peer holds everything this primary has (a copy or catch-up ended).
    func peerCaughtUpGeneration() {
        changedBytesWhileParted = 0
        persistChangedBytes()
        endPartedTracking()
        guard generations.bitmap != 0 else {
            if metadata.latest.peerLacksSinceUnixNs != 0 { _ = updateNode { $0.peerLacksSinceUnixNs = 0 } }
            return
        }
        updateGenerations({ $0.resyncDoneAsSource() }, also: { $0.peerLacksSinceUnixNs = 0 })
    }

    /// A secondary is UpToDate with this primary: it holds the primary's generation.
    func adoptPrimaryGeneration(_ hello: WireHello) {
        guard let node = hello.node, node.current != 0 else { return }
        updateGenerations {
            $0.resyncDoneAsTarget(sourceCurrent: node.current)
            $0.sawPromotion(hello.promotionNumber)
        }
        if metadata.latest.flags.contains(.outdated) { _ = updateNode { $0.set(.outdated, false) } }
        endPartedTracking()  // a split brain's loser: the survivor's resync ended
    }

    /// Promotion: a forced one starts tracking against the old primary's generation (B := C);
    /// both take a new C and P := P + 1 (P already holds the highest the peer sent). A planned
    /// one tracks nothing: the old primary handed over every write, so B is cleared again.
    func promoteGeneration(planned: Bool) {
        let fresh = newGeneration()
        changedBytesWhileParted = 0
        persistChangedBytes()
        updateGenerations {
            $0.promote(newGeneration: fresh, peerPromotion: $0.promotion)
            if planned { $0.resyncDoneAsSource() }
        }
        // Forced: the writes from now on are this node's side of any split brain.
        if planned { endPartedTracking() } else { startPartedTracking(inFlight: false) }
    }

    // MARK: Outdated

    /// `outdate`: the control plane says the primary went on without this secondary.
    func outdate() throws(ControlError) {
        guard spec.role == .secondary else {
            throw ControlError(.wrongState, "resource '\(spec.name)' is \(spec.role.rawValue): only a secondary's copy can be outdated")
        }
        if secondary?.isConnectedToPeer == true && secondary?.diskState == .upToDate {
            throw ControlError(.wrongState, "resource '\(spec.name)' is connected to its primary and UpToDate: it lacks nothing")
        }
        markOutdated("the control plane said the primary went on without this node (outdate)")
    }

    /// The accepted primary's Hello says it tracked writes since this copy's generation
    /// (its B is this node's C): this copy lacks them until the catch-up ends.
    func primaryAccepted(_ hello: WireHello) {
        guard PeerHelloCheck.primaryWentOnWithout(own: generations, hello: hello) else { return }
        markOutdated("the primary '\(hello.nodeName)' went on without this node: its writes since are being caught up")
    }

    private func markOutdated(_ reason: String) {
        guard !metadata.latest.flags.contains(.outdated) else { return }
        _ = updateNode { $0.set(.outdated, true) }
        logger.notice("copy outdated", metadata: ["reason": "\(reason)"])
        context.events.publish(resource: spec.name, "outdated", ["reason": .string(reason)])
    }

    /// A primary whose flag `outdated` is set was demoted by a later promotion before a
    /// restart: it still takes no writes until `resolve --discard local`.
    func restoreDemotionAtOpen() {
        guard spec.role == .primary, metadata.latest.flags.contains(.outdated) else { return }
        demotedByPromotion = "a primary promoted after this one superseded it before the restart "
            + "(flag outdated): this node takes no writes until resolve --discard local"
        backend.readOnly = true
    }

    // MARK: two primaries

    /// This node is primary and so is the peer whose Hello arrived (either side dialled).
    func judgePrimaryHello(_ hello: WireHello) -> PeerHelloOutcome {
        // The survivor of a split brain waits for the loser to become secondary: the loser's
        // Hello as a primary meanwhile is no new split brain.
        let own = OwnHelloFacts(resourceName: spec.name, volumeSizeBytes: volume.sizeBytes, role: .primary,
                                generations: generations, changedBytes: changedBytesSinceParting,
                                afterSplitBrain: spec.afterSplitBrain)
        let outcome = PeerHelloCheck.judge(own: own, hello: hello)
        if resolvingAsSurvivor {
            // A returned primary that did not see this node's answer yet is told again
            // (Resource+ReturnedPrimary; acting on it twice changes nothing).
            if case .resyncReturnedPrimary = outcome { return outcome }
            return .refuse(.busy, "resolving a split brain: waiting for the peer to discard its data and become secondary")
        }
        return outcome
    }

    /// Carries out a judgement of a primary's Hello at the end of this turn.
    func act(on outcome: PeerHelloOutcome, peer: String) {
        switch outcome {
        case .accept, .refuse: return
        case .splitBrain(let report):
            context.loop.atTurnEnd(TurnEndAction { [self] in splitBrainDetected(report, peer: peer) })
        case .demotedByPromotion(_, let reason):
            context.loop.atTurnEnd(TurnEndAction { [self] in demoteByPromotion(reason) })
        case .yieldToPromoted, .resyncReturnedPrimary:
            actOnReturn(outcome, peer: peer)
        }
    }

    /// Both primaries wrote since they parted. Reported once; replication stops (no more
    /// dials: StandAlone) and the verdict is carried out.
    func splitBrainDetected(_ report: SplitBrainReport, peer: String) {
        guard spec.role == .primary, splitBrain == nil, !transitioning else { return }
        splitBrain = SplitBrainState(report: report, peer: peer, detectedAtMs: EventHub.wallClockMs())
        // Persisted: a restart stays in the split brain (`restoreSplitBrainAtOpen`) until a
        // verdict or `resolve` clears it.
        _ = updateNode {
            $0.changedBytes = report.localChangedBytes
            $0.set(.splitBrain, true)
        }
        logger.error("split brain", metadata: [
            "peer": "\(peer)", "reason": "\(report.reason)", "verdict": "\(report.verdict.word)",
        ])
        context.events.publish(resource: spec.name, "split-brain", [
            "peer": .string(peer), "reason": .string(report.reason), "row": .int(Int64(report.row)),
            "local_changed_bytes": .int(Int64(clamping: report.localChangedBytes)),
            "peer_changed_bytes": .int(Int64(clamping: report.peerChangedBytes)),
            "verdict": .string(report.verdict.word), "verdict_reason": .string(report.verdict.reason),
        ])
        transitioning = true
        stopReplication { [self] in
            transitioning = false
            persistPartedBitmap()  // with the old primary's tracked bitmap folded in
            switch report.verdict {
            case .disconnect: break
            case .discardLocal(let reason): discardLocalData(reason: reason, by: "after_split_brain") { _ in }
            case .discardPeer(let reason): resyncPeerAsSurvivor(reason: reason, by: "after_split_brain") { _ in }
            }
        }
    }

    /// A primary whose flag `split-brain` is set found a split brain before a restart that
    /// nothing resolved: it is still in it (status `split_brain`), and StandAlone (see
    /// `enableAtOpen`) until `resolve`.
    func restoreSplitBrainAtOpen() {
        guard metadata.latest.flags.contains(.splitBrain) else { return }
        guard spec.role == .primary else {
            _ = updateNode { $0.set(.splitBrain, false) }  // a role change ended it
            return
        }
        let report = SplitBrainReport.restored(localChangedBytes: metadata.latest.changedBytes,
                                               localPromotion: generations.promotion)
        splitBrain = SplitBrainState(report: report, peer: spec.peer?.name ?? "", detectedAtMs: EventHub.wallClockMs())
        logger.error("split brain (found before the restart)", metadata: ["reason": "\(report.reason)"])
        context.events.publish(resource: spec.name, "split-brain", [
            "peer": .string(spec.peer?.name ?? ""), "reason": .string(report.reason), "row": .int(0),
            "local_changed_bytes": .int(Int64(clamping: report.localChangedBytes)), "restored": .bool(true),
            "verdict": .string(report.verdict.word), "verdict_reason": .string(report.verdict.reason),
        ])
    }

    /// At the daemon's start, for a resource whose metadata says enabled: in a split brain
    /// the replicator stays stopped (StandAlone, as the detection left it) while the resource
    /// counts as enabled, so that `resolve` starts it again; otherwise `enable`.
    func enableAtOpen() throws(ControlError) {
        try refuseEnableAfterFailedCompareFlush()  // Resource+CrashCompare
        guard splitBrain != nil else { return try enable() }
        enabled = true
        logger.notice("replication stays off: the resource is in a split brain (run resolve)")
    }

    /// Re-enabling at daemon start failed (its TLS material unreadable, its disk failed, …):
    /// replication stays off, and the operator sees why in status (`last_error`, `enabled`
    /// false, `replication_state` Off) and an event, not only in the log. An `enable` that
    /// succeeds once it is fixed clears it.
    func enableFailedAtOpen(_ error: ControlError) {
        refusalError = "replication could not be re-enabled at start: \(error.message)"
        logger.error("re-enabling replication failed", metadata: ["error": "\(error.message)"])
        context.events.publish(resource: spec.name, "enable-failed", [
            "error": .string(error.message), "code": .string(error.code.rawValue), "at_start": .bool(true),
        ])
    }

    /// A primary promoted after this one is there: stop taking writes, leave the data.
    func demoteByPromotion(_ reason: String) {
        guard spec.role == .primary, demotedByPromotion == nil, !transitioning else { return }
        demotedByPromotion = reason
        backend.readOnly = true
        // Persisted: a restart (or an enable) must not take writes again (`restoreDemotionAtOpen`).
        _ = updateNode { $0.set(.outdated, true) }
        logger.error("demoted by promotion", metadata: ["reason": "\(reason)"])
        context.events.publish(resource: spec.name, "demoted-by-promotion", ["reason": .string(reason)])
        transitioning = true
        stopReplication { [self] in transitioning = false }
    }

    // MARK: resolve

    /// `resolve --discard local|peer`: ends a split brain (or a demotion by promotion, with
    /// `local`) as a policy would.
    func resolve(discardLocal: Bool, _ done: @escaping (ControlError?) -> Void) {
        guard spec.role == .primary else {
            return done(ControlError(.wrongState, "resource '\(spec.name)' is \(spec.role.rawValue): resolve ends a split brain between two primaries"))
        }
        guard !transitioning else { return done(ControlError(.busy, "resource '\(spec.name)' is changing state")) }
        if discardLocal {
            guard splitBrain != nil || demotedByPromotion != nil else {
                return done(ControlError(.wrongState, "resource '\(spec.name)' is in no split brain: nothing to discard"))
            }
            return discardLocalData(reason: "the operator discarded this node's data", by: "resolve", done)
        }
        guard splitBrain != nil else {
            return done(ControlError(.wrongState, "resource '\(spec.name)' is in no split brain"))
        }
        resyncPeerAsSurvivor(reason: "the operator discarded the peer's data", by: "resolve", done)
    }

    /// The loser: its changes since parting are dropped. It becomes secondary (enabled), its
    /// generation is none until the survivor's full copy ends.
    func discardLocalData(reason: String, by source: String, _ done: @escaping (ControlError?) -> Void) {
        context.events.publish(resource: spec.name, "split-brain-resolved", [
            "discard": .string("local"), "by": .string(source), "reason": .string(reason),
        ])
        splitBrain = nil
        demotedByPromotion = nil
        if metadata.latest.flags.contains(.splitBrain) { _ = updateNode { $0.set(.splitBrain, false) } }
        // Its changes since parting are kept for the survivor's union (else a full copy).
        let kept = keepChangesForSurvivor()
        updateGenerations { kept ? $0.discardedForUnion() : $0.fullCopyStartedAsTarget() }
        changedBytesWhileParted = 0
        persistChangedBytes()
        becomeSecondary(enable: true)
        done(nil)
    }

    /// The survivor: the peer's copy is overwritten by a full copy of this one (the next
    /// session's `peer-lacks-writes`), once the peer is secondary.
    func resyncPeerAsSurvivor(reason: String, by source: String, _ done: @escaping (ControlError?) -> Void) {
        context.events.publish(resource: spec.name, "split-brain-resolved", [
            "discard": .string("peer"), "by": .string(source), "reason": .string(reason),
        ])
        splitBrain = nil
        resolvingAsSurvivor = true
        prepareSurvivorResync()
        _ = updateNode {
            $0.peerLacksWrites = true
            $0.set(.splitBrain, false)
        }
        guard enabled else { return done(nil) }
        do throws(ControlError) { try restartPrimaryReplication() } catch { return done(error) }
        done(nil)
    }

    /// Status fields of this file.
    func mergeGenerationStatus(into fields: inout [String: JSONValue]) {
        let held = generations
        fields["generations"] = .object([
            "current": .string(Self.hex(held.current)), "bitmap": .string(Self.hex(held.bitmap)),
            "history": .array(held.history.map { .string(Self.hex($0)) }),
        ])
        fields["promotion"] = .int(Int64(clamping: held.promotion))
        fields["outdated"] = .bool(metadata.latest.flags.contains(.outdated))
        fields["after_split_brain"] = .string(spec.afterSplitBrain.rawValue)
        fields["split_brain"] = .bool(splitBrain != nil)
        if let splitBrain {
            let report = splitBrain.report
            var detail: [String: JSONValue] = [
                "peer": .string(splitBrain.peer), "detected_at_ms": .int(splitBrain.detectedAtMs),
                "local_changed_bytes": .int(Int64(clamping: report.localChangedBytes)),
                "reason": .string(report.reason), "verdict": .string(report.verdict.word),
                "verdict_reason": .string(report.verdict.reason), "restored": .bool(report.isRestored),
            ]
            // Found before a restart, the peer's bytes are not known: not reported as 0.
            if !report.isRestored { detail["peer_changed_bytes"] = .int(Int64(clamping: report.peerChangedBytes)) }
            fields["split_brain_detail"] = .object(detail)
        }
        if let demotedByPromotion { fields["demoted_by_promotion"] = .string(demotedByPromotion) }
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
