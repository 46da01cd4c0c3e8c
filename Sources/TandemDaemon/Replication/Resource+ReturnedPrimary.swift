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
#if canImport(Glibc)
import Glibc
#endif
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

    /// A primary demoted by promotion (live, or restored at open from the flag `outdated`: a
    /// crash in the middle of an earlier yield) yields too: B = 0 and C = the parting
    /// generation still prove it wrote nothing since, and the yield is what `resolve --discard
    /// local` would do, with the union instead of a full copy.
    private func mayYield(_ report: ReturnedPrimaryReport) -> Bool {
        let held = generations
        return spec.role == .primary && splitBrain == nil && !transitioning
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
            // It lacks the promoted node's writes until resynced; and recorded first, so that
            // a crash at any later step restarts read-only (restoreDemotionAtOpen) into the
            // same yield: before the generations change it meets the promoted node as it did
            // now, after it the open completes the yield (completeYieldAtOpen).
            _ = updateNode { $0.set(.outdated, true) }
            crashForTest(at: .outdatedRecorded)
            let kept = keepUnconfirmedForPromoted(report)
            crashForTest(at: .yieldRecorded)
            demotedByPromotion = nil
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

    // MARK: a crash in the middle of the yield

    /// At open (before the demotion is restored): a primary whose record says it yielded — the
    /// flag `outdated` (no write since: it was recorded before the generations changed), C = 0
    /// and B = the parting generation — was killed between that record and its role change.
    /// The yield is completed here, not judged again: the node becomes secondary (enabled as
    /// it was), its set since parting is the parted-bitmap file if that names its B (read
    /// next, loadPartedBitmapAtOpen), else the promoted node copies the whole volume. Without
    /// this, it met the promoted node as a primary with C = 0: a split brain.
    func completeYieldAtOpen() {
        let held = generations
        guard spec.role == .primary, metadata.latest.flags.contains(.outdated), held.current == 0, held.bitmap != 0
        else { return }
        logger.notice("this node was killed in the middle of yielding to the promoted peer: the yield is completed, it becomes secondary",
                      metadata: ["parting_generation": "\(held.bitmap)"])
        changeRole(to: .secondary)
        writeSyncedRecord()
        context.events.publish(resource: spec.name, "returned-primary-yields", [
            "after_restart": .bool(true),
            "reason": .string("killed between the yield's record and its role change: the yield is completed at open"),
        ])
    }

    /// Test-only: where a yield kills its own process (as kill -9 would), named by the
    /// environment variable `TANDEM_TEST_YIELD_CRASH_AT` (integration tests of a crash in the
    /// middle of a yield). Unset in production: nothing happens.
    enum YieldCrashPoint: String {
        /// The flag `outdated` is recorded; the generations are not changed yet.
        case outdatedRecorded = "outdated-recorded"
        /// C := 0 and B := the parting generation are recorded, with the set's file; the role
        /// is still primary.
        case yieldRecorded = "yield-recorded"
    }

    static let yieldCrashVariable = "TANDEM_TEST_YIELD_CRASH_AT"

    private func crashForTest(at point: YieldCrashPoint) {
        guard let value = getenv(Self.yieldCrashVariable), String(cString: value) == point.rawValue else { return }
        logger.critical("test hook: killed in the middle of the yield", metadata: ["point": "\(point.rawValue)"])
        kill(getpid(), SIGKILL)
    }
}
