// Resource's side of an old primary's return after its secondary was promoted (forced
// failover; docs/design-v3.md section 2, row 4's second half; docs/replication.md, *The old
// primary returns*). When two primaries of protocol 8 meet and one was promoted from the
// other's generation while the other wrote nothing since (HandshakeDecision
// `.returnedPrimaryResync`), it is no split brain:
// - the returning node stops taking writes in the turn of the judgement (so no write can
//   come between the judgement and the yield), stops its replicator, keeps what it had not
//   confirmed when it stopped (a crash's activity-log extents, or a stop's sealed bitmap) as
//   its set since parting, takes C := 0 with B := the parting generation, is `Outdated`, and
//   becomes secondary (enabled);
// - the promoted node prepares the resync a split brain's survivor runs (its bitmap since the
//   promotion ∪ the returning node's set, BitmapChunk / BitmapDone; Resource+SplitBrainUnion)
//   and starts it now if it replicates, else at its next `enable`.
// Anything the returning node cannot name (no proven log, a set lost) makes it a full copy.
// The decisions are TandemCore's (PeerHelloCheck, Generations); this file carries them out.
// Loop thread only.
import Logging
import TandemControl
import TandemCore
import TandemIO

extension Resource {
    /// The judgement's own turn: a returning primary takes no more writes from this instant
    /// (its B is still 0, so it wrote nothing since it parted; a write from here on would be
    /// refused rather than make a split brain behind the yield's back).
    func actOnReturn(_ outcome: PeerHelloOutcome, peer: String) {
        switch outcome {
        case .yieldToPromoted(let report):
            guard mayYield(report) else { return }
            backend.readOnly = true
            context.loop.atTurnEnd(TurnEndAction { [self] in yieldToPromoted(report, peer: peer) })
        case .resyncReturnedPrimary(let report):
            context.loop.atTurnEnd(TurnEndAction { [self] in resyncReturnedPrimary(report, peer: peer) })
        default:
            return
        }
    }

    private func mayYield(_ report: ReturnedPrimaryReport) -> Bool {
        let held = generations
        return spec.role == .primary && splitBrain == nil && demotedByPromotion == nil && !transitioning
            && held.bitmap == 0 && held.current == report.partingGeneration
    }

    /// The returning node: demoted, its unconfirmed set kept for the promoted node's resync.
    private func yieldToPromoted(_ report: ReturnedPrimaryReport, peer: String) {
        guard mayYield(report) else {
            // Something else changed this node in the same turn (a stop, a role change): the
            // next meeting judges again. Writes are taken again only while it is primary.
            if spec.role == .primary && !transitioning { backend.readOnly = demotedByPromotion != nil }
            return
        }
        logger.notice("the peer was promoted after this primary stopped: this node yields and becomes its secondary",
                      metadata: ["peer": "\(peer)", "peer_promotion": "\(report.peerPromotion)"])
        transitioning = true
        stopReplication { [self] in
            transitioning = false
            let kept = keepUnconfirmedForPromoted(report)
            _ = updateNode { $0.set(.outdated, true) }  // it lacks the promoted node's writes until resynced
            changedBytesWhileParted = 0
            persistChangedBytes()
            var fields: [String: JSONValue] = [
                "peer": .string(peer), "row": .int(Int64(report.row)),
                "promotion": .int(Int64(clamping: report.localPromotion)),
                "peer_promotion": .int(Int64(clamping: report.peerPromotion)),
                "plan": .string(kept.bytes != nil ? "union" : "full-copy"), "reason": .string(kept.reason),
            ]
            if let bytes = kept.bytes {
                fields["unconfirmed_bytes"] = .int(Int64(clamping: bytes))
                // Sync: no write in the set was acknowledged without the peer. Async: the
                // acknowledged ones the peer lacked are dropped, as the forced failover accepted.
                fields["unconfirmed_writes"] = .string(spec.mode == .sync ? "never-acknowledged" : "discarded")
            }
            context.events.publish(resource: spec.name, "returned-primary-yields", fields)
            becomeSecondary(enable: true)
        }
    }

    /// After the returning node's replicator stopped: its set since parting is what that
    /// replicator had not confirmed (folded in from the sealed bitmap). Kept (with B := the
    /// parting generation, C := 0), or none (C := 0, B := 0: the promoted node copies all).
    private func keepUnconfirmedForPromoted(_ report: ReturnedPrimaryReport) -> (bytes: UInt64?, reason: String) {
        startPartedTracking(inFlight: true)
        let (set, lostReason) = ownChangesSinceParting()
        guard let set else {
            endPartedTracking()
            updateGenerations { $0.fullCopyStartedAsTarget() }
            return (nil, "this node cannot name what it had not confirmed (\(lostReason)): the peer copies the whole volume")
        }
        splitBrainResync.victimPartingGeneration = report.partingGeneration
        updateGenerations { $0.yieldedToPromoted() }
        persistPartedBitmap()  // its generation is B now: the file speaks for the set
        return (set.outOfSyncBytes, "the peer resyncs its changes since its promotion and the regions this node had "
            + "not confirmed when it stopped (\(set.outOfSyncBytes) bytes)")
    }

    /// The promoted node: the returning one becomes its secondary; prepare the union resync
    /// and run it now if replicating (a forced promotion leaves replication off: then at the
    /// operator's `enable`).
    private func resyncReturnedPrimary(_ report: ReturnedPrimaryReport, peer: String) {
        guard spec.role == .primary, splitBrain == nil, !resolvingAsSurvivor, !transitioning else { return }
        resolvingAsSurvivor = true
        prepareSurvivorResync(returnedPrimary: true)
        _ = updateNode { $0.peerLacksWrites = true }  // a restart before the resync ends copies the volume
        let ownBytes = splitBrainResync.survivor?.own?.outOfSyncBytes
        var fields: [String: JSONValue] = [
            "peer": .string(peer), "row": .int(Int64(report.row)),
            "promotion": .int(Int64(clamping: report.localPromotion)),
            "peer_promotion": .int(Int64(clamping: report.peerPromotion)),
            "replicating": .bool(primary != nil),
        ]
        if let ownBytes { fields["local_changed_bytes"] = .int(Int64(clamping: ownBytes)) }
        logger.notice("the old primary returned after this node's promotion: it becomes secondary and is resynced",
                      metadata: ["peer": "\(peer)", "replicating": "\(primary != nil)"])
        context.events.publish(resource: spec.name, "returned-primary-resync", fields)
        guard primary != nil else { return }
        transitioning = true
        stopReplication { [self] in
            transitioning = false
            do throws(ControlError) { try restartPrimaryReplication() } catch {
                logger.error("restarting replication for the returned primary's resync failed",
                             metadata: ["error": "\(error.message)"])
            }
        }
    }
}
