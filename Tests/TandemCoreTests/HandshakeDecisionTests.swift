import TandemCore
import Testing

/// One test per row of docs/design-v3.md section 2, the symmetry property and the guard.
@Suite struct HandshakeDecisionTests {
    private func side(
        c: UInt64, b: UInt64 = 0, h: [UInt64] = [], primary: Bool = false, crashed: Bool = false,
        disk: DiskState = .consistent, initialSync: InitialSync = .full
    ) -> HandshakeSide {
        HandshakeSide(
            generations: Generations(current: c, bitmap: b, history: h, promotion: 0),
            crashedPrimary: crashed, isPrimary: primary, diskState: disk, initialSync: initialSync)
    }

    private func check(_ own: HandshakeSide, _ peer: HandshakeSide, row: Int, _ decision: HandshakeDecision) {
        let result = HandshakeDecision.decideWithRow(own: own, peer: peer)
        #expect(result.row == row)
        #expect(result.decision == decision)
        #expect(HandshakeDecision.decide(own: peer, peer: own) == decision.mirrored)
    }

    @Test func row1NeverSyncedCopiesFollowThePrimarysInitialSync() {
        check(side(c: 0, primary: true), side(c: 0), row: 1, .initialFullCopy(.ownToPeer))
        check(side(c: 0), side(c: 0, primary: true, initialSync: .none), row: 1, .initialInSync(.peerToOwn))
        check(side(c: 0), side(c: 0), row: 1, .awaitingPrimary)
    }

    @Test func row2ACopyWithoutAGenerationGetsAFullCopy() {
        check(side(c: 0, disk: .inconsistent), side(c: 7), row: 2, .fullCopy(.peerToOwn))
        check(side(c: 7, primary: true), side(c: 0, disk: .inconsistent), row: 2, .fullCopy(.ownToPeer))
    }

    @Test func row3EqualGenerationsWithoutTrackingAreInSync() {
        check(side(c: 7, primary: true), side(c: 7), row: 3, .inSync)
    }

    @Test func row4ACrashedPrimaryCostsAnActivityLogResyncFromThePrimary() {
        // The crashed primary is primary again: it is the source.
        check(side(c: 7, primary: true, crashed: true), side(c: 7), row: 4, .activityLogResync(.ownToPeer))
        // It came back as secondary after the peer was promoted: the primary is the source.
        check(side(c: 7, crashed: true), side(c: 7, primary: true), row: 4, .activityLogResync(.peerToOwn))
        check(side(c: 7, crashed: true), side(c: 7), row: 4, .awaitingPrimary)
    }

    @Test func row5EqualCurrentWithTrackingOnOneSideIsABitmapResyncFromIt() {
        check(side(c: 7, b: 3, primary: true), side(c: 7), row: 5, .bitmapResync(.ownToPeer))
    }

    @Test func row6OwnBitmapGenerationIsThePeersCurrent() {
        check(side(c: 9, b: 7, h: [7], primary: true), side(c: 7), row: 6, .bitmapResync(.ownToPeer))
    }

    @Test func row7ThePeersBitmapGenerationIsOwnCurrent() {
        check(side(c: 7), side(c: 9, b: 7, h: [7], primary: true), row: 7, .bitmapResync(.peerToOwn))
    }

    /// Row 4's second half: the old primary (B = 0) returns, primary again, after its peer
    /// was promoted from its generation (the peer's B is its C, the peer's P higher): the
    /// promoted node is the source, the returning one yields. Mirrored on the other node.
    @Test func rows6And7BetweenTwoPrimariesWithTheSourcePromotedLaterResyncTheReturnedPrimary() {
        let returning = HandshakeSide(generations: Generations(current: 7, bitmap: 0, history: [], promotion: 2),
                                      crashedPrimary: true, isPrimary: true)
        let promoted = HandshakeSide(generations: Generations(current: 9, bitmap: 7, history: [7], promotion: 3),
                                     isPrimary: true)
        check(returning, promoted, row: 7, .returnedPrimaryResync(.peerToOwn))
        check(promoted, returning, row: 6, .returnedPrimaryResync(.ownToPeer))
        // A clean stop names the same facts (the crash flag does not travel in the Hello).
        var clean = returning
        clean.crashedPrimary = false
        check(clean, promoted, row: 7, .returnedPrimaryResync(.peerToOwn))
        // Not promoted after it (P not higher): the ordinary row 7, no yield.
        var notLater = promoted
        notLater.generations = Generations(current: 9, bitmap: 7, history: [7], promotion: 2)
        check(returning, notLater, row: 7, .bitmapResync(.peerToOwn))
        // The returning node wrote since it parted (B ≠ 0): a split brain, never a yield.
        let wrote = HandshakeSide(generations: Generations(current: 11, bitmap: 7, history: [7], promotion: 2),
                                  isPrimary: true)
        check(wrote, promoted, row: 8, .splitBrain)
        // A secondary on the other end is the ordinary row 7.
        var secondary = returning
        secondary.isPrimary = false
        check(secondary, promoted, row: 7, .bitmapResync(.peerToOwn))
    }

    @Test func row8BothMovedSinceACommonGenerationIsSplitBrain() {
        check(side(c: 9, b: 7, h: [7]), side(c: 11, b: 7, h: [7]), row: 8, .splitBrain)
        check(side(c: 9, b: 7, h: [7]), side(c: 7, b: 5, h: [5]), row: 8, .splitBrain)
        check(side(c: 7, b: 5, h: [5]), side(c: 9, b: 7, h: [7]), row: 8, .splitBrain)
    }

    @Test func row9APeerMoreThanOneGenerationBehindGetsAFullCopy() {
        check(side(c: 11, h: [9, 7], primary: true), side(c: 7), row: 9, .fullCopy(.ownToPeer))
    }

    @Test func row10OwnCopyMoreThanOneGenerationBehindGetsAFullCopy() {
        check(side(c: 7), side(c: 11, h: [9, 7], primary: true), row: 10, .fullCopy(.peerToOwn))
    }

    @Test func row9And10BothMatchingIsSplitBrainSoNoArgumentOrderPicksADirection() {
        check(side(c: 11, h: [7]), side(c: 7, h: [11]), row: 9, .splitBrain)
    }

    @Test func row11UnrelatedGenerationsAreRefused() {
        check(side(c: 11, h: [3]), side(c: 7, h: [5]), row: 11, .unrelated)
    }

    @Test func anOutdatedOrInconsistentCopyIsNeverTheSourceOverAConsistentOne() {
        check(side(c: 9, b: 7, primary: true, disk: .outdated), side(c: 7, disk: .upToDate), row: 6,
              .refusedSourceNotUsable(.ownToPeer))
        check(side(c: 7, disk: .consistent), side(c: 11, h: [9, 7], disk: .inconsistent), row: 10,
              .refusedSourceNotUsable(.peerToOwn))
    }

    @Test func theDecisionIsSymmetricForRandomInputs() {
        var random = SplitMix64(seed: 14)
        // A small pool of values makes equalities (the interesting cases) frequent.
        func generation() -> UInt64 { UInt64.random(in: 0...4, using: &random) }
        func anySide() -> HandshakeSide {
            let current = generation()
            let bitmap = generation()
            let history = (0..<Int.random(in: 0...4, using: &random)).map { _ in generation() }
            return HandshakeSide(
                generations: Generations(current: current, bitmap: bitmap, history: history,
                                         promotion: UInt64.random(in: 0...2, using: &random)),
                crashedPrimary: Bool.random(using: &random), isPrimary: Bool.random(using: &random),
                diskState: DiskState.allCases.randomElement(using: &random)!,
                initialSync: Bool.random(using: &random) ? .full : .none)
        }
        var rows = Set<Int>()
        for _ in 0..<50_000 {
            let a = anySide()
            let b = anySide()
            let forward = HandshakeDecision.decideWithRow(own: a, peer: b)
            let backward = HandshakeDecision.decideWithRow(own: b, peer: a)
            #expect(forward.decision == backward.decision.mirrored, "a: \(a) b: \(b)")
            rows.insert(forward.row)
        }
        #expect(rows == Set(1...11))
    }
}

@Suite struct GenerationsTests {
    @Test func losingThePeerStartsTrackingOnceAndShiftsHistory() {
        var g = Generations(current: 7, bitmap: 0, history: [5], promotion: 1)
        g.startTracking(newGeneration: 9)
        #expect(g.current == 9 && g.bitmap == 7 && g.history == [7, 5, 0, 0])
        g.startTracking(newGeneration: 11)  // already tracking: the bitmap covers since 7
        #expect(g.current == 9 && g.bitmap == 7)
    }

    @Test func aReturnedPrimaryThatYieldsHasNoGenerationAndKeepsTheParting() {
        var g = Generations(current: 7, bitmap: 0, history: [5], promotion: 2)
        g.yieldedToPromoted()
        #expect(g.current == 0 && g.bitmap == 7 && g.history == [7, 5, 0, 0] && g.promotion == 2)
        // The promoted node's resync ends: it holds the source's generation, tracks nothing.
        g.resyncDoneAsTarget(sourceCurrent: 9)
        #expect(g.current == 9 && g.bitmap == 0)
    }

    @Test func promotionStartsAGenerationAndRaisesThePromotionNumberAboveBoth() {
        var g = Generations(current: 7, bitmap: 0, history: [], promotion: 3)
        g.promote(newGeneration: 9, peerPromotion: 5)
        #expect(g.current == 9 && g.bitmap == 7 && g.promotion == 6)
        g.promote(newGeneration: 11, peerPromotion: 0)  // B stays: tracking still since 7
        #expect(g.current == 11 && g.bitmap == 7 && g.history == [9, 7, 0, 0] && g.promotion == 7)
    }

    @Test func aFinishedResyncLeavesBothSidesInSyncByTheTable() {
        var source = Generations(current: 7, bitmap: 0, history: [], promotion: 0)
        var target = source
        source.startTracking(newGeneration: 9)
        #expect(HandshakeDecision.decide(own: HandshakeSide(generations: source, isPrimary: true),
                                         peer: HandshakeSide(generations: target, isPrimary: false))
                == .bitmapResync(.ownToPeer))
        target.resyncDoneAsTarget(sourceCurrent: source.current)
        source.resyncDoneAsSource()
        #expect(source.current == target.current && source.bitmap == 0 && target.bitmap == 0)
        #expect(HandshakeDecision.decide(own: HandshakeSide(generations: source, isPrimary: true),
                                         peer: HandshakeSide(generations: target, isPrimary: false)) == .inSync)
    }

    @Test func aFullCopyTargetHasNoGenerationUntilTheCopyEnds() {
        var target = Generations(current: 7, bitmap: 3, history: [3], promotion: 0)
        target.fullCopyStartedAsTarget()
        #expect(target.current == 0 && target.bitmap == 0 && target.history == [7, 3, 0, 0])
        let source = Generations(current: 11, bitmap: 0, history: [], promotion: 0)
        #expect(HandshakeDecision.decide(own: HandshakeSide(generations: source, isPrimary: true),
                                         peer: HandshakeSide(generations: target, isPrimary: false))
                == .fullCopy(.ownToPeer))
    }

    @Test func historyKeepsTheFourNewestGenerations() {
        var g = Generations(current: 1, bitmap: 0, history: [], promotion: 0)
        for next in UInt64(2)...7 { g.promote(newGeneration: next, peerPromotion: 0) }
        #expect(g.current == 7 && g.history == [6, 5, 4, 3] && g.bitmap == 1)
    }
}
