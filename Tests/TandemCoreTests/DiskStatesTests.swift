import TandemCore
import Testing

@Suite struct DiskStatesTests {
    @Test func aSecondaryIsUpToDateOnlyConnectedConsistentSyncedAndConfirmed() {
        #expect(DiskState.ofSecondary(synced: true, consistent: true, connected: true, confirmed: true) == .upToDate)
        // Cut off from a primary that may go on writing: a prefix, not UpToDate.
        #expect(DiskState.ofSecondary(synced: true, consistent: true, connected: false, confirmed: true) == .consistent)
        // Connected but not yet confirmed by the primary (or an async write arrived since).
        #expect(DiskState.ofSecondary(synced: true, consistent: true, connected: true, confirmed: false) == .consistent)
        // A full copy due or running, or a re-send not yet applied after a restart.
        #expect(DiskState.ofSecondary(synced: false, consistent: true, connected: true, confirmed: true) == .inconsistent)
        #expect(DiskState.ofSecondary(synced: true, consistent: false, connected: true, confirmed: true) == .inconsistent)
        #expect(DiskState.ofSecondary(synced: false, consistent: true, connected: false, confirmed: false) == .inconsistent)
    }

    @Test func aPrimaryNeverClaimsItsPeerUpToDateWhenItCannotKnow() {
        // Never heard from the peer in this run (e.g. just restarted): unknown.
        #expect(DiskState.ofPeer(heard: false, peerReady: false, copying: false, sync: true, lagBytes: 0, acknowledgedWithoutPeer: false) == .unknown)
        #expect(DiskState.ofPeer(heard: false, peerReady: false, copying: true, sync: false, lagBytes: 9, acknowledgedWithoutPeer: false) == .unknown)
        // Connected: sync is UpToDate (acknowledged only after the peer applied), async only at lag 0.
        #expect(DiskState.ofPeer(heard: true, peerReady: true, copying: false, sync: true, lagBytes: 4096, acknowledgedWithoutPeer: false) == .upToDate)
        #expect(DiskState.ofPeer(heard: true, peerReady: true, copying: false, sync: false, lagBytes: 0, acknowledgedWithoutPeer: false) == .upToDate)
        #expect(DiskState.ofPeer(heard: true, peerReady: true, copying: false, sync: false, lagBytes: 1, acknowledgedWithoutPeer: false) == .consistent)
        // A copy due or running: Inconsistent, connected or not.
        #expect(DiskState.ofPeer(heard: true, peerReady: true, copying: true, sync: true, lagBytes: 0, acknowledgedWithoutPeer: false) == .inconsistent)
        #expect(DiskState.ofPeer(heard: true, peerReady: false, copying: true, sync: true, lagBytes: 0, acknowledgedWithoutPeer: false) == .inconsistent)
        // Gone: known to lack writes once one was acknowledged without it; writes acknowledged
        // while it was connected and not confirmed durable it may hold or not: unknown.
        #expect(DiskState.ofPeer(heard: true, peerReady: false, copying: false, sync: false, lagBytes: 4096, acknowledgedWithoutPeer: true) == .outdated)
        #expect(DiskState.ofPeer(heard: true, peerReady: false, copying: false, sync: true, lagBytes: 4096, acknowledgedWithoutPeer: true) == .outdated)
        #expect(DiskState.ofPeer(heard: true, peerReady: false, copying: false, sync: true, lagBytes: 4096, acknowledgedWithoutPeer: false) == .unknown)
        #expect(DiskState.ofPeer(heard: true, peerReady: false, copying: false, sync: false, lagBytes: 4096, acknowledgedWithoutPeer: false) == .unknown)
        #expect(DiskState.ofPeer(heard: true, peerReady: false, copying: false, sync: true, lagBytes: 0, acknowledgedWithoutPeer: false) == .unknown)
    }

    @Test func changesBetweenUpToDateAndConsistentAreCoalescedOthersPublishedAtOnce() {
        let second = DiskState.lagChangeIntervalNs
        #expect(DiskState.consistent.publishesNow(from: nil, sinceLastNs: 0))
        #expect(!DiskState.consistent.publishesNow(from: .consistent, sinceLastNs: second))
        #expect(!DiskState.consistent.publishesNow(from: .upToDate, sinceLastNs: second - 1))
        #expect(DiskState.consistent.publishesNow(from: .upToDate, sinceLastNs: second))
        #expect(!DiskState.upToDate.publishesNow(from: .consistent, sinceLastNs: 10))
        #expect(DiskState.inconsistent.publishesNow(from: .upToDate, sinceLastNs: 0))
        #expect(DiskState.outdated.publishesNow(from: .consistent, sinceLastNs: 0))
        #expect(DiskState.upToDate.publishesNow(from: .unknown, sinceLastNs: 0))
    }

    @Test func aPrimaryCopiesAgainAfterAnUncleanStopWhateverInitialSyncSaid() {
        // initial_sync describes the volumes at creation: it counts for the first run only.
        #expect(SessionBasis.forPrimaryStart(initialSync: .none, firstRun: true, cleanStop: 0) == .assumeInSync)
        #expect(SessionBasis.forPrimaryStart(initialSync: .full, firstRun: true, cleanStop: 0) == .fullCopy)
        #expect(SessionBasis.forPrimaryStart(initialSync: .none, firstRun: false, cleanStop: 0) == .fullCopy)
        #expect(SessionBasis.forPrimaryStart(initialSync: .full, firstRun: false, cleanStop: 0) == .fullCopy)
        // A clean stop continues from the session the peer confirmed.
        #expect(SessionBasis.forPrimaryStart(initialSync: .full, firstRun: false, cleanStop: 77) == .continues(from: 77))
        // A clean stop before any write keeps the basis the session started with.
        let assumed = SessionBasis.assumeInSync.cleanStopValue
        #expect(SessionBasis.forPrimaryStart(initialSync: .full, firstRun: false, cleanStop: assumed) == .assumeInSync)
        #expect(SessionBasis.fullCopy.cleanStopValue == 0)
        #expect(SessionBasis.continues(from: 5).cleanStopValue == 5)
    }

    @Test func theBasisRoundTripsThroughTheHelloBitmapField() {
        for basis in [SessionBasis.fullCopy, .assumeInSync, .continues(from: 12)] {
            #expect(SessionBasis(wireValue: basis.wireValue(session: 99), session: 99) == basis)
        }
    }

    @Test func aSecondaryContinuesOnlyFromTheSessionItHolds() {
        func decide(session: UInt64 = 50, continuedFrom: UInt64 = 0, synced: Bool = true, fresh: Bool = false,
                    hello: UInt64 = 60, _ basis: SessionBasis) -> SecondarySessionVerdict {
            SecondarySessionVerdict.decide(recordSession: session, recordContinuedFrom: continuedFrom,
                                           recordSynced: synced, fresh: fresh, session: hello, basis: basis)
        }
        #expect(decide(hello: 50, .fullCopy) == .sameSession)
        #expect(decide(.fullCopy) == .newSession(synced: false, continuedFrom: 0))
        #expect(decide(.continues(from: 50)) == .newSession(synced: true, continuedFrom: 50))
        // The primary crashed again before writing: the secondary moved to the session that
        // continued from 40, which still holds the same content.
        #expect(decide(continuedFrom: 40, .continues(from: 40)) == .newSession(synced: true, continuedFrom: 40))
        #expect(decide(.continues(from: 49)) == .refuse("the primary continues session 49, this copy holds session 50: it needs a full copy"))
        // An interrupted full copy can only be repaired by a full copy.
        if case .refuse = decide(synced: false, .continues(from: 50)) {} else { Issue.record("continued an Inconsistent copy") }
        if case .refuse = decide(synced: false, .assumeInSync) {} else { Issue.record("assumed an Inconsistent copy in sync") }
        #expect(decide(session: 0, synced: false, fresh: true, .assumeInSync) == .newSession(synced: true, continuedFrom: 0))
        #expect(decide(session: 0, synced: false, fresh: true, .fullCopy) == .newSession(synced: false, continuedFrom: 0))
    }
}
