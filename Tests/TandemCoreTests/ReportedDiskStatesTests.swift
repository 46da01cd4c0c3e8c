import TandemCore
import Testing

/// The final status words about both copies (ReportedDiskStates): one test per case of the
/// decision, including each override.
@Suite struct ReportedDiskStatesTests {
    private let liveSyncedPeer = PrimaryPeerView(peerDiskState: .upToDate, peerReady: true, peerSynced: true)
    private let connectedSecondary = SecondaryCopyView(diskState: .upToDate, peerDiskState: .upToDate, redundant: true)

    private func decide(_ facts: ResourceCopyFacts, ownDiskFailed: Bool = false,
                        peerDiskFailed: Bool = false) -> ReportedDiskStates {
        ReportedDiskStates.decide(facts, ownDiskFailed: ownDiskFailed, peerDiskFailed: peerDiskFailed)
    }

    @Test func theOutdatedFlagTurnsAConsistentSecondaryOrAnUpToDatePrimaryOutdatedAndNothingElse() {
        let waiting = SecondaryCopyView(diskState: .consistent, peerDiskState: .unknown, redundant: false)
        let copying = SecondaryCopyView(diskState: .inconsistent, peerDiskState: .upToDate, redundant: false)
        func outdated(_ facts: ResourceCopyFacts) -> DiskState {
            ReportedDiskStates.decide(facts, ownDiskFailed: false, peerDiskFailed: false, ownOutdated: true).diskState
        }
        #expect(outdated(.secondary(atRest: .consistent, replicator: nil)) == .outdated)
        #expect(outdated(.secondary(atRest: .consistent, replicator: waiting)) == .outdated)
        #expect(outdated(.secondary(atRest: .consistent, replicator: copying)) == .inconsistent)
        #expect(outdated(.secondary(atRest: .consistent, replicator: connectedSecondary)) == .upToDate)
        #expect(outdated(.primary(promotedInconsistent: false, replicator: nil)) == .outdated)
        #expect(outdated(.primary(promotedInconsistent: true, replicator: nil)) == .inconsistent)
        #expect(outdated(.standalone) == .upToDate)
        #expect(decide(.secondary(atRest: .consistent, replicator: waiting)).diskState == .consistent)
    }

    @Test func aStandaloneVolumeIsTheOnlyCopyAndSaysNothingOfAPeer() {
        #expect(decide(.standalone) == ReportedDiskStates(diskState: .upToDate, peerDiskState: nil, redundant: nil))
    }

    @Test func aStoppedPrimaryKnowsNothingOfItsPeerAndClaimsNoRedundancy() {
        #expect(decide(.primary(promotedInconsistent: false, replicator: nil))
            == ReportedDiskStates(diskState: .upToDate, peerDiskState: .unknown, redundant: nil))
    }

    @Test func aPrimaryPromotedFromAnInconsistentCopyStaysInconsistent() {
        #expect(decide(.primary(promotedInconsistent: true, replicator: nil)).diskState == .inconsistent)
        #expect(decide(.primary(promotedInconsistent: true, replicator: liveSyncedPeer)).diskState == .inconsistent)
    }

    @Test func aRunningPrimaryReportsItsNodesWordOfThePeer() {
        let copying = PrimaryPeerView(peerDiskState: .inconsistent, peerReady: true, peerSynced: false)
        #expect(decide(.primary(promotedInconsistent: false, replicator: copying))
            == ReportedDiskStates(diskState: .upToDate, peerDiskState: .inconsistent, redundant: false))
        #expect(decide(.primary(promotedInconsistent: false, replicator: liveSyncedPeer))
            == ReportedDiskStates(diskState: .upToDate, peerDiskState: .upToDate, redundant: true))
    }

    @Test func aPrimaryIsRedundantOnlyWhileTheStreamIsLiveAndNoCopyIsDue() {
        for peerReady in [false, true] {
            for peerSynced in [false, true] {
                let view = PrimaryPeerView(peerDiskState: .consistent, peerReady: peerReady, peerSynced: peerSynced)
                #expect(decide(.primary(promotedInconsistent: false, replicator: view)).redundant == (peerReady && peerSynced))
            }
        }
    }

    @Test func aStoppedSecondarySaysWhatItsRecordSaysAndNothingOfThePrimary() {
        for atRest in [DiskState.consistent, .inconsistent] {
            #expect(decide(.secondary(atRest: atRest, replicator: nil))
                == ReportedDiskStates(diskState: atRest, peerDiskState: .unknown, redundant: nil))
        }
    }

    @Test func aRunningSecondaryReportsItsNodesWordsNotTheRecords() {
        #expect(decide(.secondary(atRest: .inconsistent, replicator: connectedSecondary))
            == ReportedDiskStates(diskState: .upToDate, peerDiskState: .upToDate, redundant: true))
        let cut = SecondaryCopyView(diskState: .consistent, peerDiskState: .unknown, redundant: false)
        #expect(decide(.secondary(atRest: .consistent, replicator: cut))
            == ReportedDiskStates(diskState: .consistent, peerDiskState: .unknown, redundant: false))
    }

    @Test func aFailedOwnDiskIsFailedAndNotRedundantWhateverTheReplicatorSaid() {
        let cases: [ResourceCopyFacts] = [
            .standalone,
            .primary(promotedInconsistent: false, replicator: nil),
            .primary(promotedInconsistent: false, replicator: liveSyncedPeer),
            .secondary(atRest: .consistent, replicator: nil),
            .secondary(atRest: .consistent, replicator: connectedSecondary),
        ]
        for facts in cases {
            let states = decide(facts, ownDiskFailed: true)
            #expect(states.diskState == .failed)
            #expect(states.redundant == false)
            // The peer's state is what it was: a failed local disk says nothing of the peer.
            #expect(states.peerDiskState == decide(facts).peerDiskState)
        }
    }

    @Test func aPeerWhoseDiskFailedIsFailedAndNotRedundantUntilReenabled() {
        // While the replicator still runs (it is being stopped) and after it stopped.
        for view in [liveSyncedPeer, nil] {
            let states = decide(.primary(promotedInconsistent: false, replicator: view), peerDiskFailed: true)
            #expect(states == ReportedDiskStates(diskState: .upToDate, peerDiskState: .failed, redundant: false))
        }
    }

    @Test func bothDisksFailedSayFailedOfBoth() {
        let states = decide(.primary(promotedInconsistent: false, replicator: liveSyncedPeer),
                            ownDiskFailed: true, peerDiskFailed: true)
        #expect(states == ReportedDiskStates(diskState: .failed, peerDiskState: .failed, redundant: false))
    }

    @Test func aResourceThatCouldNotBeOpenedIsFailedAndSaysNothingOfAPeer() {
        #expect(ReportedDiskStates.unopened == ReportedDiskStates(diskState: .failed, peerDiskState: nil, redundant: false))
    }
}
