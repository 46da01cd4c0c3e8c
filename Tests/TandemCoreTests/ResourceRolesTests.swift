import TandemCore
import Testing

/// The role rules (ResourceRoles.swift): how a primary session starts from its record, when
/// role commands are refused and with which message, and what promotion and demotion write.
@Suite struct ResourceRolesTests {
    private func facts(_ role: ResourceRole, enabled: Bool = false, transitioning: Bool = false) -> ResourceRoleFacts {
        ResourceRoleFacts(name: "r0", role: role, enabled: enabled, transitioning: transitioning)
    }

    // MARK: primary start

    @Test func aFirstRunFollowsInitialSyncAndRecordsThatThePrimaryStarted() {
        let fresh = ReplicationRecord()
        let full = PrimaryStart(PrimaryStartFacts(record: fresh, initialSync: .full))
        #expect(full.basis == .fullCopy)
        #expect(full.reason == .initialCopy)
        #expect(full.reason.description == "initial copy (initial_sync full)")
        #expect(full.record.primaryStarted)
        #expect(full.record.cleanStop == 0)

        let none = PrimaryStart(PrimaryStartFacts(record: fresh, initialSync: .none))
        #expect(none.basis == .assumeInSync)
        #expect(none.reason == .identicalAtCreation)
        #expect(none.reason.description == "initial_sync none: the volumes are identical at creation")
        #expect(none.record.primaryStarted)
        // Still in sync after a crash before any write: the record says so.
        #expect(none.record.cleanStop == SessionBasis.assumeInSync.cleanStopValue)
        #expect(none.record.cleanStop != 0)
    }

    @Test func initialSyncNoneCountsOnlyOnTheFirstRun() {
        let restarted = ReplicationRecord(generation: 4, primaryStarted: true)
        let start = PrimaryStart(PrimaryStartFacts(record: restarted, initialSync: .none))
        #expect(start.basis == .fullCopy)
        #expect(start.reason == .uncleanStop)
        #expect(start.reason.description.hasPrefix("unclean stop (crash, kill -9, power loss)"))
        #expect(start.record.cleanStop == 0)
        #expect(start.record.generation == 4, "the generation is the store's to bump")
    }

    @Test func aCleanStopContinuesTheSessionWithoutACopy() {
        let record = ReplicationRecord(generation: 9, cleanStop: 0xBEEF, primaryStarted: true)
        let start = PrimaryStart(PrimaryStartFacts(record: record, initialSync: .full))
        #expect(start.basis == .continues(from: 0xBEEF))
        #expect(start.reason == .cleanStop)
        #expect(start.reason.description
            == "clean stop: every write was confirmed durable by the peer, none since; no resync")
        // The session's basis holds until its first write.
        #expect(start.record.cleanStop == 0xBEEF)
        #expect(start.record.primaryStarted)
    }

    @Test func aCleanStopBeforeAnyWriteOfAnInSyncSessionStaysInSync() {
        let record = ReplicationRecord(cleanStop: SessionBasis.assumeInSync.cleanStopValue, primaryStarted: true)
        let start = PrimaryStart(PrimaryStartFacts(record: record, initialSync: .full))
        #expect(start.basis == .assumeInSync)
        #expect(start.reason == .cleanStopBeforeAnyWrite)
        #expect(start.reason.description
            == "clean stop before any write; the volumes were in sync (initial_sync none)")
    }

    @Test func writesWhileDisabledCancelTheCleanStop() {
        let record = ReplicationRecord(cleanStop: 0xBEEF, primaryStarted: true)
        let start = PrimaryStart(PrimaryStartFacts(record: record, initialSync: .full, writtenWhileDisabled: true))
        #expect(start.basis == .fullCopy)
        #expect(start.reason == .uncleanStop)
        #expect(start.record.cleanStop == 0)
        // "Identical at creation" no longer holds once the volume was written alone.
        let firstRun = PrimaryStart(PrimaryStartFacts(record: ReplicationRecord(), initialSync: .none,
                                                      writtenWhileDisabled: true))
        #expect(firstRun.basis == .fullCopy)
        #expect(firstRun.reason == .writtenBeforeFirstStart)
        #expect(firstRun.record.primaryStarted && firstRun.record.cleanStop == 0)
        let firstFull = PrimaryStart(PrimaryStartFacts(record: ReplicationRecord(), initialSync: .full,
                                                       writtenWhileDisabled: true))
        #expect(firstFull.basis == .fullCopy)
        #expect(firstFull.reason == .initialCopy)
        // A clean stop of an in-sync session too: the local writes are not on the peer.
        let restarted = PrimaryStart(PrimaryStartFacts(
            record: ReplicationRecord(cleanStop: SessionBasis.assumeInSync.cleanStopValue, primaryStarted: true),
            initialSync: .none, writtenWhileDisabled: true))
        #expect(restarted.basis == .fullCopy)
    }

    @Test func aPeerThatLacksWritesIsCopiedWhateverElseHolds() {
        let clean = ReplicationRecord(cleanStop: 0xBEEF, primaryStarted: true)
        for handedOver in [false, true] {
            for initialSync in InitialSync.allCases {
                let start = PrimaryStart(PrimaryStartFacts(
                    record: clean, initialSync: initialSync, handedOver: handedOver, peerLacksWrites: true))
                #expect(start.basis == .fullCopy)
                #expect(start.reason == .peerLacksWrites)
                #expect(start.record.cleanStop == 0)
                #expect(start.record.primaryStarted)
            }
        }
    }

    @Test func aPlannedFailoversHandOverStartsInSync() {
        let promoted = ReplicationRecord().promoted(inconsistent: false)
        let start = PrimaryStart(PrimaryStartFacts(record: promoted, initialSync: .full, handedOver: true))
        #expect(start.basis == .assumeInSync)
        #expect(start.reason == .handedOver)
        #expect(start.reason.description == "planned failover: the old primary handed over every write")
        #expect(start.record.cleanStop == SessionBasis.assumeInSync.cleanStopValue)
    }

    @Test func theRestartFaultForgetsUnconfirmedWritesOnlyAfterAnUncleanStop() {
        let crashed = ReplicationRecord(primaryStarted: true)
        let honest = PrimaryStart(PrimaryStartFacts(record: crashed, initialSync: .full))
        let faulty = PrimaryStart(PrimaryStartFacts(record: crashed, initialSync: .full),
                                  fault: .restartForgetsUnconfirmedWrites)
        #expect(honest.basis == .fullCopy)
        #expect(faulty.basis == .assumeInSync)
        #expect(faulty.reason == .uncleanStopTreatedAsClean)
        // A synced secondary refuses nothing here: it takes the faulty session as in sync, so
        // only a checker that compares the volumes sees the writes it lacks.
        #expect(SecondarySessionVerdict.decide(recordSession: 41, recordContinuedFrom: 0, recordSynced: true,
                                               fresh: false, session: 42, basis: faulty.basis)
            == .newSession(synced: true, continuedFrom: 0))
        #expect(SecondarySessionVerdict.decide(recordSession: 41, recordContinuedFrom: 0, recordSynced: true,
                                               fresh: false, session: 42, basis: honest.basis)
            == .newSession(synced: false, continuedFrom: 0))
        // Writes made while disabled are an unclean stop too.
        let written = PrimaryStart(PrimaryStartFacts(
            record: ReplicationRecord(cleanStop: 7, primaryStarted: true), initialSync: .full,
            writtenWhileDisabled: true), fault: .restartForgetsUnconfirmedWrites)
        #expect(written.basis == .assumeInSync)
        // Everything else is as without the fault.
        let cases: [PrimaryStartFacts] = [
            PrimaryStartFacts(record: ReplicationRecord(), initialSync: .full),
            PrimaryStartFacts(record: ReplicationRecord(), initialSync: .none),
            PrimaryStartFacts(record: ReplicationRecord(), initialSync: .none, writtenWhileDisabled: true),
            PrimaryStartFacts(record: ReplicationRecord(cleanStop: 7, primaryStarted: true), initialSync: .full),
            PrimaryStartFacts(record: crashed, initialSync: .full, peerLacksWrites: true),
            PrimaryStartFacts(record: crashed, initialSync: .full, handedOver: true),
        ]
        for facts in cases {
            #expect(PrimaryStart(facts, fault: .restartForgetsUnconfirmedWrites) == PrimaryStart(facts))
        }
    }

    @Test func theStatusWordNamesTheBasis() {
        #expect(SessionBasis.fullCopy.word == "full-copy")
        #expect(SessionBasis.assumeInSync.word == "assumed-in-sync")
        #expect(SessionBasis.continues(from: 3).word == "clean-restart")
    }

    // MARK: records

    @Test func aPromotedRecordHasNoCleanStopAndHasRunAsPrimary() {
        let secondary = ReplicationRecord(generation: 5, session: 77, durableThroughEpoch: 12, synced: true,
                                          continuedFrom: 3, cleanStop: 99)
        let promoted = secondary.promoted(inconsistent: false)
        #expect(promoted.cleanStop == 0)
        #expect(promoted.primaryStarted)
        #expect(!promoted.promotedInconsistent)
        #expect(promoted.session == 77 && promoted.durableThroughEpoch == 12 && promoted.synced)
        #expect(promoted.generation == 5)
        #expect(secondary.promoted(inconsistent: true).promotedInconsistent)
        // So its next start (not a hand-over) copies, whatever initial_sync said.
        #expect(PrimaryStart(PrimaryStartFacts(record: promoted, initialSync: .none)).basis == .fullCopy)
    }

    @Test func aDemotedRecordIsSyncedUnlessPromotedInconsistentAndBelongsToNoSession() {
        let primary = ReplicationRecord(generation: 8, session: 44, durableThroughEpoch: 9, synced: false,
                                        continuedFrom: 2, cleanStop: 44, primaryStarted: true)
        let demoted = primary.demoted()
        #expect(demoted.synced)
        #expect(demoted.session == 0 && demoted.continuedFrom == 0 && demoted.durableThroughEpoch == 0)
        #expect(demoted.cleanStop == 0)
        #expect(demoted.primaryStarted)
        var inconsistent = primary
        inconsistent.promotedInconsistent = true
        let demotedInconsistent = inconsistent.demoted()
        #expect(!demotedInconsistent.synced)
        #expect(demotedInconsistent.promotedInconsistent, "cleared only when a full copy completes")
        // Only a hand-over or a full copy can start the next session on it.
        #expect(SecondarySessionVerdict.decide(
            recordSession: demoted.session, recordContinuedFrom: demoted.continuedFrom, recordSynced: demoted.synced,
            fresh: false, session: 1234, basis: .continues(from: 44)) != .newSession(synced: true, continuedFrom: 44))
        #expect(SecondarySessionVerdict.decide(
            recordSession: demoted.session, recordContinuedFrom: demoted.continuedFrom, recordSynced: demoted.synced,
            fresh: false, session: 1234, basis: .assumeInSync) == .newSession(synced: true, continuedFrom: 0))
    }

    @Test func aPrimaryOpenedDisabledForgetsItsCleanStop() {
        let clean = ReplicationRecord(cleanStop: 5, primaryStarted: true)
        #expect(clean.atOpen(role: .primary, enabled: false) == ReplicationRecord(cleanStop: 0, primaryStarted: true))
        #expect(clean.atOpen(role: .primary, enabled: true) == nil)
        #expect(clean.atOpen(role: .secondary, enabled: false) == nil)
        #expect(ReplicationRecord(primaryStarted: true).atOpen(role: .primary, enabled: false) == nil,
                "nothing to forget: no write")
    }

    @Test func theFirstWriteAndAStopSetTheCleanStop() {
        let started = ReplicationRecord(cleanStop: 5, primaryStarted: true)
        #expect(started.afterFirstWrite().cleanStop == 0)
        #expect(started.afterFirstWrite().primaryStarted)
        #expect(started.stopped(cleanStop: 81).cleanStop == 81)
        #expect(started.stopped(cleanStop: 0).cleanStop == 0)
    }

    // MARK: disk states at rest

    @Test func aPrimaryIsUpToDateUnlessPromotedInconsistent() {
        #expect(DiskState.ofPrimary(promotedInconsistent: false) == .upToDate)
        #expect(DiskState.ofPrimary(promotedInconsistent: true) == .inconsistent)
    }

    @Test func aSecondaryAtRestIsNeverUpToDate() {
        // A new resource: in sync by the operator's word, or awaiting its copy.
        #expect(DiskState.ofSecondaryAtRest(record: ReplicationRecord(), initialSync: .none, stoppedCleanly: false) == .consistent)
        #expect(DiskState.ofSecondaryAtRest(record: ReplicationRecord(), initialSync: .full, stoppedCleanly: false) == .inconsistent)
        // A written record decides, initial_sync no longer counts.
        let unsynced = ReplicationRecord(generation: 1, synced: false)
        #expect(DiskState.ofSecondaryAtRest(record: unsynced, initialSync: .none, stoppedCleanly: true) == .inconsistent)
        let synced = ReplicationRecord(generation: 3, session: 7, synced: true)
        #expect(DiskState.ofSecondaryAtRest(record: synced, initialSync: .full, stoppedCleanly: true) == .consistent)
        // A demoted primary's copy belongs to no session: the newest there is.
        #expect(DiskState.ofSecondaryAtRest(record: synced.demoted(), initialSync: .full, stoppedCleanly: false) == .consistent)
    }

    /// A synced copy of a session whose replicator was killed (no clean-stop flag) may hold
    /// part of an epoch: Inconsistent at rest, as it is once its replicator starts again.
    @Test func aSecondaryKilledWhileApplyingIsInconsistentAtRest() {
        let synced = ReplicationRecord(generation: 3, session: 7, durableThroughEpoch: 40, synced: true)
        #expect(DiskState.ofSecondaryAtRest(record: synced, initialSync: .none, stoppedCleanly: false) == .inconsistent)
    }

    // MARK: enable / disable

    @Test func enableIsRefusedStandaloneAlreadyEnabledOrBusy() {
        #expect(ResourceRoles.checkEnable(facts(.standalone)) == RoleRefusal(.wrongState,
            "resource 'r0' is standalone: it has no peer to replicate to"))
        #expect(ResourceRoles.checkEnable(facts(.primary, enabled: true)) == RoleRefusal(.wrongState,
            "resource 'r0' is already enabled"))
        #expect(ResourceRoles.checkEnable(facts(.secondary, transitioning: true)) == RoleRefusal(.busy,
            "resource 'r0' is changing state"))
        #expect(ResourceRoles.checkEnable(facts(.primary)) == nil)
        #expect(ResourceRoles.checkEnable(facts(.secondary)) == nil)
    }

    @Test func disableIsRefusedWhenNotEnabledOrBusy() {
        #expect(ResourceRoles.checkDisable(facts(.primary)) == RoleRefusal(.wrongState, "resource 'r0' is not enabled"))
        #expect(ResourceRoles.checkDisable(facts(.secondary, enabled: true, transitioning: true)) == RoleRefusal(.busy,
            "resource 'r0' is changing state"))
        #expect(ResourceRoles.checkDisable(facts(.secondary, enabled: true)) == nil)
    }

    // MARK: failover

    @Test func failoverRunsOnTheSecondaryOnly() {
        for role in [ResourceRole.primary, .standalone] {
            #expect(ResourceRoles.failover(facts(role), force: true, allowInconsistent: false, diskFailure: nil,
                                           peerConnected: true, ownDiskState: .upToDate)
                == .failure(RoleRefusal(.wrongState, "resource 'r0' is \(role.rawValue): failover is run on the secondary")))
        }
        #expect(ResourceRoles.failover(facts(.secondary, transitioning: true), force: true, allowInconsistent: false,
                                       diskFailure: nil, peerConnected: true, ownDiskState: .upToDate)
            == .failure(RoleRefusal(.busy, "resource 'r0' is changing state")))
    }

    @Test func aFailedDiskIsNeverPromotedNotEvenForced() {
        for force in [false, true] {
            #expect(ResourceRoles.failover(facts(.secondary, enabled: true), force: force, allowInconsistent: force,
                                           diskFailure: "write: Input/output error", peerConnected: true, ownDiskState: .upToDate)
                == .failure(RoleRefusal(.wrongState,
                    "this node's disk failed (write: Input/output error); it cannot become primary")))
        }
    }

    @Test func anOutdatedCopyIsPromotedOnlyByForceAndTheRefusalSaysWhy() {
        let secondary = facts(.secondary, enabled: true)
        for connected in [false, true] {
            guard case .failure(let refusal) = ResourceRoles.failover(
                secondary, force: false, allowInconsistent: false, diskFailure: nil, peerConnected: connected,
                ownDiskState: .outdated)
            else {
                Issue.record("an Outdated copy was promoted without force")
                continue
            }
            #expect(refusal.message.contains("Outdated: it lacks writes the peer acknowledged"))
        }
        #expect(ResourceRoles.failover(secondary, force: true, allowInconsistent: false, diskFailure: nil,
                                       peerConnected: false, ownDiskState: .outdated)
            == .success(.promote(.forced(allowInconsistent: false))))
    }

    /// The wrong direction: the generations say the connected primary holds writes this copy
    /// lacks. A planned failover is refused, whatever the disk state word says (a copy that
    /// stays Consistent during its catch-up is still older), and says why; force still works.
    @Test func aCopyWhoseGenerationsShowThePeerWentOnIsPromotedOnlyByForce() {
        let secondary = facts(.secondary, enabled: true)
        let behind = "the primary 'alpha' went on without this node"
        for state in [DiskState.consistent, .upToDate] {
            guard case .failure(let refusal) = ResourceRoles.failover(
                secondary, force: false, allowInconsistent: false, diskFailure: nil, peerConnected: true,
                ownDiskState: state, behindPeer: behind)
            else {
                Issue.record("a copy behind its primary was promoted without force (\(state))")
                continue
            }
            #expect(refusal.code == .wrongState && refusal.message.hasPrefix("wrong direction: \(behind)"), "\(refusal)")
        }
        #expect(ResourceRoles.failover(secondary, force: true, allowInconsistent: false, diskFailure: nil,
                                       peerConnected: true, ownDiskState: .consistent, behindPeer: behind)
            == .success(.promote(.forced(allowInconsistent: false))))
    }

    @Test func aPlannedFailoverNeedsTheConnectedPeerAForcedOneDoesNot() {
        let secondary = facts(.secondary, enabled: true)
        #expect(ResourceRoles.failover(secondary, force: false, allowInconsistent: false, diskFailure: nil,
                                       peerConnected: false, ownDiskState: .consistent)
            == .failure(RoleRefusal(.wrongState,
                "the peer is not connected, so it may hold newer data; use force: true if it is really gone")))
        #expect(ResourceRoles.failover(secondary, force: false, allowInconsistent: false, diskFailure: nil,
                                       peerConnected: true, ownDiskState: .consistent) == .success(.askPeerToDemote))
        #expect(ResourceRoles.failover(secondary, force: true, allowInconsistent: false, diskFailure: nil,
                                       peerConnected: false, ownDiskState: .consistent) == .success(.promote(.forced(allowInconsistent: false))))
        #expect(ResourceRoles.failover(facts(.secondary), force: true, allowInconsistent: true, diskFailure: nil,
                                       peerConnected: true, ownDiskState: .inconsistent) == .success(.promote(.forced(allowInconsistent: true))))
        // An Inconsistent copy is refused before the primary is asked to demote.
        #expect(ResourceRoles.failover(secondary, force: false, allowInconsistent: false, diskFailure: nil,
                                       peerConnected: true, ownDiskState: .inconsistent)
            == .failure(RoleRefusal(.wrongState,
                "this node's copy is Inconsistent (a full copy or a re-send has not finished): "
                    + "promoting it would expose data the primary never had")))
        #expect(ResourceRoles.peerLeftBeforeDemoting == RoleRefusal(.wrongState,
            "the peer went away before it demoted; use force: true if it is gone"))
        #expect(PromotionKind.planned.reason == "planned failover")
        #expect(PromotionKind.forced(allowInconsistent: true).reason == "forced failover")
    }

    @Test func anInconsistentCopyIsPromotedOnlyWhenForcedWithAllowInconsistent() {
        let base = "(a full copy or a re-send has not finished): promoting it would expose data the primary never had"
        let hint = "; add allow_inconsistent: true (tandemctl failover --force --allow-inconsistent) to promote it anyway"
        for state in [DiskState.inconsistent, .failed] {
            #expect(ResourceRoles.promotion(.planned, ownDiskState: state)
                == .failure(RoleRefusal(.wrongState, "this node's copy is \(state.rawValue) \(base)")))
            #expect(ResourceRoles.promotion(.forced(allowInconsistent: false), ownDiskState: state)
                == .failure(RoleRefusal(.wrongState, "this node's copy is \(state.rawValue) \(base)\(hint)")))
            #expect(ResourceRoles.promotion(.forced(allowInconsistent: true), ownDiskState: state)
                == .success(Promotion(kind: .forced(allowInconsistent: true), inconsistent: true)))
        }
        for state in [DiskState.upToDate, .consistent, .outdated, .unknown] {
            for kind in [PromotionKind.planned, .forced(allowInconsistent: false), .forced(allowInconsistent: true)] {
                #expect(ResourceRoles.promotion(kind, ownDiskState: state)
                    == .success(Promotion(kind: kind, inconsistent: false)))
            }
        }
    }

    @Test func onlyAPlannedFailoverOfAnEnabledResourceEnablesAgainInSync() {
        #expect(Promotion(kind: .planned, inconsistent: false).enablesAfter(wasEnabled: true))
        #expect(!Promotion(kind: .planned, inconsistent: false).enablesAfter(wasEnabled: false))
        #expect(!Promotion(kind: .forced(allowInconsistent: false), inconsistent: false).enablesAfter(wasEnabled: true))
        #expect(!Promotion(kind: .forced(allowInconsistent: true), inconsistent: true).enablesAfter(wasEnabled: true))
    }

    // MARK: demote

    @Test func demoteOnlyAPrimaryThatIsDrainedOrConnected() {
        #expect(ResourceRoles.demote(facts(.secondary), replicating: false, drained: true, peerConnected: false)
            == .failure(RoleRefusal(.wrongState, "resource 'r0' is secondary, not primary")))
        #expect(ResourceRoles.demote(facts(.standalone), replicating: false, drained: true, peerConnected: false)
            == .failure(RoleRefusal(.wrongState, "resource 'r0' is standalone, not primary")))
        #expect(ResourceRoles.demote(facts(.primary, transitioning: true), replicating: true, drained: true,
                                     peerConnected: true)
            == .failure(RoleRefusal(.busy, "resource 'r0' is changing state")))
        let primary = facts(.primary, enabled: true)
        #expect(ResourceRoles.demote(facts(.primary), replicating: false, drained: false, peerConnected: false)
            == .success(.becomeSecondaryNow))
        #expect(ResourceRoles.demote(primary, replicating: true, drained: false, peerConnected: false)
            == .failure(RoleRefusal(.wrongState, "writes are waiting for the peer, which is not connected")))
        #expect(ResourceRoles.demote(primary, replicating: true, drained: true, peerConnected: false)
            == .success(.drainThenHandOver))
        #expect(ResourceRoles.demote(primary, replicating: true, drained: false, peerConnected: true)
            == .success(.drainThenHandOver))
    }

    // MARK: incoming connections

    @Test func onlyAnEnabledSecondaryTakesAPeersSession() {
        let probed = ResourceRoles.incoming(facts(.primary, enabled: true), peerRole: .secondary, peerNode: "beta",
                                            secondaryRunning: false)
        #expect(probed == IncomingRefusal(
            code: .roleConflict, reason: "resource 'r0' is primary on this node",
            seen: "'beta' (secondary) probed this node: no connection from this primary reached it for a while; "
                + "check that it is enabled and that this node reaches its address"))
        let twoPrimaries = ResourceRoles.incoming(facts(.primary, enabled: true), peerRole: .primary, peerNode: "beta",
                                                  secondaryRunning: false)
        #expect(twoPrimaries == IncomingRefusal(
            code: .roleConflict, reason: "resource 'r0' is primary on this node",
            seen: "refused a connection from 'beta' (primary): resource 'r0' is primary on this node"))
        let standalone = ResourceRoles.incoming(facts(.standalone), peerRole: .secondary, peerNode: "beta",
                                                secondaryRunning: false)
        #expect(standalone?.code == .roleConflict)
        #expect(standalone?.seen == "refused a connection from 'beta' (secondary): resource 'r0' is standalone on this node")
        let disabled = IncomingRefusal(
            code: .busy, reason: "resource 'r0' is not enabled here",
            seen: "refused a connection from 'alpha': resource 'r0' is not enabled here")
        #expect(ResourceRoles.incoming(facts(.secondary), peerRole: .primary, peerNode: "alpha",
                                       secondaryRunning: false) == disabled)
        #expect(ResourceRoles.incoming(facts(.secondary), peerRole: .primary, peerNode: "alpha",
                                       secondaryRunning: true) == disabled)
        #expect(ResourceRoles.incoming(facts(.secondary, enabled: true), peerRole: .primary, peerNode: "alpha",
                                       secondaryRunning: true) == nil)
    }

    @Test func aSecondaryRefusingASecondarySaysNeitherNodeIsPrimary() {
        let secondary = facts(.secondary, enabled: true)
        #expect(ResourceRoles.secondaryRefusalSeen(secondary, code: .roleConflict, reason: "x", peerRole: .secondary,
                                                   peerNode: "alpha")
            == "the peer 'alpha' is secondary for 'r0' too: neither node is primary "
                + "(promote one with failover, or fix the configuration)")
        #expect(ResourceRoles.secondaryRefusalSeen(secondary, code: .unrelatedData, reason: "needs a copy",
                                                   peerRole: .primary, peerNode: "alpha")
            == "refused a connection: unrelated-data: needs a copy")
    }
}
