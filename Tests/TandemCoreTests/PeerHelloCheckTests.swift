// PeerHelloCheck: a primary's judgement of a peer's Hello, one test per outcome of two
// primaries meeting (split brain, demoted by promotion, stale promotion, role conflict),
// the mirrored verdicts both nodes reach, and each after_split_brain policy's loser.
import TandemCore
import Testing

private let sizeBytes: UInt64 = 64 << 20
/// The generation both shared before they parted.
private let shared: UInt64 = 0x5A5A

private func facts(_ generations: Generations, changed: UInt64 = 0, policy: AfterSplitBrain = .disconnect) -> OwnHelloFacts {
    OwnHelloFacts(resourceName: "r0", volumeSizeBytes: sizeBytes, role: .primary, generations: generations,
                  changedBytes: changed, afterSplitBrain: policy)
}

private func hello(_ own: OwnHelloFacts, role: ResourceRole = .primary,
                   version: UInt16 = WireFormat.helloVersion) -> WireHello {
    WireHello(protocolVersion: version, role: role, nodeName: "peer", resourceName: own.resourceName, volumeSizeBytes: own.volumeSizeBytes,
              generations: WireGenerations(current: 0, bitmap: 0), promotionNumber: own.generations.promotion,
              node: WireNodeGenerations(current: own.generations.current, bitmap: own.generations.bitmap,
                                        changedBytes: own.changedBytes, afterSplitBrain: own.afterSplitBrain))
}

/// The old primary, which wrote after the cut (B := shared, C := new).
private func oldPrimaryThatWrote() -> Generations {
    var g = Generations(current: shared, bitmap: 0, history: [], promotion: 0)
    g.startTracking(newGeneration: 0xA1)
    return g
}

/// The old primary, which wrote nothing after the cut.
private let oldPrimaryIdle = Generations(current: shared, bitmap: 0, history: [], promotion: 0)

/// The secondary promoted by force after the cut.
private func promoted() -> Generations {
    var g = Generations(current: shared, bitmap: 0, history: [], promotion: 0)
    g.promote(newGeneration: 0xB1, peerPromotion: 0)
    return g
}

private func judge(_ own: OwnHelloFacts, _ peer: OwnHelloFacts, version: UInt16 = WireFormat.helloVersion) -> PeerHelloOutcome {
    PeerHelloCheck.judge(own: own, hello: hello(peer, version: version))
}

@Suite struct PeerHelloCheckTests {
    @Test func twoPrimariesThatBothWroteSinceTheyPartedIsSplitBrainOnBothWithBothChanges() {
        let a = facts(oldPrimaryThatWrote(), changed: 8192)
        let b = facts(promoted(), changed: 4096)
        guard case .splitBrain(let seenByA) = judge(a, b), case .splitBrain(let seenByB) = judge(b, a) else {
            Issue.record("expected split brain on both: \(judge(a, b)) / \(judge(b, a))")
            return
        }
        #expect(seenByA.row == 8 && seenByB.row == 8)
        #expect(seenByA.localChangedBytes == 8192 && seenByA.peerChangedBytes == 4096)
        #expect(seenByB.localChangedBytes == 4096 && seenByB.peerChangedBytes == 8192)
        #expect(seenByA.verdict.word == "disconnect" && seenByB.verdict.word == "disconnect")
    }

    /// Protocol 8 on both sides (row 4's second half): not a split brain and no demotion that
    /// waits for an operator: the old primary yields, the promoted one resyncs it.
    @Test func anOldPrimaryThatWroteNothingYieldsToTheLaterPromotionAndIsResynced() {
        let a = facts(oldPrimaryIdle)
        let b = facts(promoted())
        let expected = ReturnedPrimaryReport(row: 7, partingGeneration: shared, localPromotion: 0, peerPromotion: 1)
        #expect(judge(a, b) == .yieldToPromoted(expected))
        #expect(judge(b, a) == .resyncReturnedPrimary(
            ReturnedPrimaryReport(row: 6, partingGeneration: shared, localPromotion: 1, peerPromotion: 0)))
        // One write after the cut and it is a split brain again, on both.
        guard case .splitBrain = judge(facts(oldPrimaryThatWrote(), changed: 4096), b),
            case .splitBrain = judge(b, facts(oldPrimaryThatWrote(), changed: 4096))
        else {
            Issue.record("a returned primary that wrote is a split brain")
            return
        }
    }

    /// A peer of protocol 7 keeps today's behaviour: demoted by promotion, stale-promotion.
    @Test func anOldPrimaryThatWroteNothingMeetsTheHigherPromotionOfAVersion7PeerAndIsDemoted() {
        let a = facts(oldPrimaryIdle)
        let b = facts(promoted())
        guard case .demotedByPromotion(let number, _) = judge(a, b, version: 7) else {
            Issue.record("expected demoted-by-promotion, got \(judge(a, b, version: 7))")
            return
        }
        #expect(number == 1)
        // The promoted side refuses the old one with stale-promotion, which it reads as the same.
        guard case .refuse(.stalePromotion, let reason) = judge(b, a, version: 7) else {
            Issue.record("expected stale-promotion, got \(judge(b, a, version: 7))")
            return
        }
        #expect(PeerHelloCheck.refusedByPeer(.stalePromotion, reason: reason) != nil)
        #expect(PeerHelloCheck.refusedByPeer(.roleConflict, reason: reason) == nil)
    }

    @Test func aPromotedNodeThatWroteNothingIsStillASplitBrainWithZeroChanges() {
        // Promotion moves its generation (it writes a history of its own from then on).
        let a = facts(oldPrimaryThatWrote(), changed: 4096)
        let b = facts(promoted(), changed: 0)
        guard case .splitBrain(let report) = judge(a, b) else {
            Issue.record("expected split brain, got \(judge(a, b))")
            return
        }
        #expect(report.peerChangedBytes == 0)
    }

    /// Found by the simulator: the promoted copy never took the old primary's generation
    /// (it was promoted before it was UpToDate in that session): table row 11.
    @Test func aPromotedCopyThatNeverHeldTheGenerationIsASplitBrainOnlyIfTheOldPrimaryWrote() {
        var neverSynced = Generations.none
        neverSynced.promote(newGeneration: 0xB1, peerPromotion: 0)
        let b = facts(neverSynced)
        let wrote = facts(oldPrimaryThatWrote(), changed: 4096)
        guard case .splitBrain(let report) = judge(wrote, b), case .splitBrain = judge(b, wrote) else {
            Issue.record("expected split brain on both: \(judge(wrote, b)) / \(judge(b, wrote))")
            return
        }
        #expect(report.row == 11)
        guard case .demotedByPromotion = judge(facts(oldPrimaryIdle), b) else {
            Issue.record("expected demoted-by-promotion, got \(judge(facts(oldPrimaryIdle), b))")
            return
        }
        guard case .refuse(.stalePromotion, _) = judge(b, facts(oldPrimaryIdle)) else {
            Issue.record("expected stale-promotion, got \(judge(b, facts(oldPrimaryIdle)))")
            return
        }
    }

    @Test func twoPrimariesWithEqualPromotionsAreARoleConflict() {
        let none = facts(.none)
        #expect(judge(none, none) == .refuse(.roleConflict, "this node is primary and so is the peer"))
    }

    /// A primary of protocol 3 or older carries no generations: no split brain could be told,
    /// so the link is refused naming the upgrade order (issue 14 §2.5), not a bare conflict.
    @Test func aPrimaryOlderThanVersion4IsRefusedNamingTheUpgradeOrder() {
        var old = hello(facts(.none))
        old.protocolVersion = 3
        old.node = nil
        let outcome = PeerHelloCheck.judge(own: facts(oldPrimaryIdle), hello: old)
        guard case .refuse(.unsupportedVersion, let reason) = outcome else {
            Issue.record("expected unsupported-version, got \(outcome)")
            return
        }
        #expect(reason.contains("protocol 3") && reason.contains("split brain cannot be detected"))
        #expect(reason.contains("the secondary first, a planned failover, then the old primary"))
    }

    @Test func aSecondaryIsAcceptedAndTheResourceAndSizeChecksComeFirst() {
        let a = facts(oldPrimaryIdle)
        #expect(PeerHelloCheck.judge(own: a, hello: hello(facts(.none), role: .secondary)) == .accept)
        var other = hello(facts(promoted()))
        other.volumeSizeBytes = 4096
        #expect(PeerHelloCheck.judge(own: a, hello: other)
            == .refuse(.sizeMismatch, "local volume has 67108864 bytes, peer 4096"))
        // A secondary larger than its primary is what a resize whose answer was lost leaves:
        // the refusal says how to finish it, on either side.
        other.volumeSizeBytes = 128 << 20
        guard case let .refuse(code, reason) = PeerHelloCheck.judge(own: a, hello: other) else {
            Issue.record("a larger secondary was not refused")
            return
        }
        #expect(code == .sizeMismatch && reason.contains("run `resize --size 134217728` on the primary"), "\(reason)")
        #expect(PeerHelloCheck.sizeMismatchReason(own: 128 << 20, peer: 64 << 20, ownIsPrimary: false)
            .contains("run `resize --size 134217728` on the primary"))
        #expect(!PeerHelloCheck.sizeMismatchReason(own: 64 << 20, peer: 128 << 20, ownIsPrimary: false).contains("resize"))
    }

    @Test func aSecondaryLearnsFromThePrimarysHelloThatItWentOnWithoutIt() {
        let secondary = Generations(current: shared, bitmap: 0, history: [], promotion: 0)
        let tracking = facts(oldPrimaryThatWrote())
        #expect(PeerHelloCheck.primaryWentOnWithout(own: secondary, hello: hello(tracking)))
        #expect(!PeerHelloCheck.primaryWentOnWithout(own: secondary, hello: hello(facts(oldPrimaryIdle))))
        // Tracking against another generation (this copy is further behind: a full copy) or
        // a secondary's Hello says nothing of this copy.
        let elsewhere = Generations(current: 0x77, bitmap: 0, history: [], promotion: 0)
        #expect(!PeerHelloCheck.primaryWentOnWithout(own: elsewhere, hello: hello(tracking)))
        #expect(!PeerHelloCheck.primaryWentOnWithout(own: secondary, hello: hello(tracking, role: .secondary)))
    }

    @Test func eachPolicyPicksTheSameLoserOnBothNodes() {
        typealias Case = (policy: AfterSplitBrain, aChanged: UInt64, bChanged: UInt64, loser: String?)
        let cases: [Case] = [
            (.disconnect, 4096, 4096, nil),
            (.discardZeroChanges, 4096, 0, "b"),
            (.discardZeroChanges, 4096, 8192, nil),
            (.discardYoungerPrimary, 4096, 8192, "b"),
            (.discardLeastChanges, 4096, 8192, "a"),
            (.discardLeastChanges, 8192, 4096, "b"),
            (.discardLeastChanges, 4096, 4096, "b"),
        ]
        for c in cases {
            let a = facts(oldPrimaryThatWrote(), changed: c.aChanged, policy: c.policy)
            let b = facts(promoted(), changed: c.bChanged, policy: c.policy)
            guard case .splitBrain(let seenByA) = judge(a, b), case .splitBrain(let seenByB) = judge(b, a) else {
                Issue.record("\(c.policy): expected split brain")
                continue
            }
            let loser: String?
            switch (seenByA.verdict, seenByB.verdict) {
            case (.disconnect, .disconnect): loser = nil
            case (.discardLocal, .discardPeer): loser = "a"
            case (.discardPeer, .discardLocal): loser = "b"
            default:
                Issue.record("\(c.policy): verdicts do not mirror: \(seenByA.verdict) / \(seenByB.verdict)")
                continue
            }
            #expect(loser == c.loser, "\(c.policy) with \(c.aChanged)/\(c.bChanged): \(seenByA.verdict.reason)")
        }
    }

    /// A consistency group's member needs GroupBarrier on its link: a peer below the group
    /// version is refused naming the group and the upgrade; one at it, or a member of no
    /// group, is accepted.
    @Test func aGroupMemberRefusesAPeerTooOldForGroupBarriers() {
        var own = facts(.none)
        own.group = "db"
        let old = WireHello(protocolVersion: WireFormat.groupVersion - 1, role: .secondary, nodeName: "peer",
                            resourceName: "r0", volumeSizeBytes: sizeBytes,
                            generations: WireGenerations(current: 0, bitmap: 0), promotionNumber: 0)
        guard case .refuse(.unsupportedVersion, let reason) = PeerHelloCheck.judge(own: own, hello: old) else {
            Issue.record("an old peer of a group member was not refused")
            return
        }
        #expect(reason.contains("'db'") && reason.contains("upgrade the peer"), "\(reason)")
        var current = old
        current.protocolVersion = WireFormat.groupVersion
        #expect(PeerHelloCheck.judge(own: own, hello: current) == .accept)
        #expect(PeerHelloCheck.judge(own: facts(.none), hello: old) == .accept)
    }

    /// After a restart only this node's facts are known: the split brain is restored as a
    /// disconnect (the operator resolves), with the peer's bytes unknown, not claimed as 0.
    @Test func aSplitBrainRestoredAfterARestartWaitsForResolveAndClaimsNothingOfThePeer() {
        let report = SplitBrainReport.restored(localChangedBytes: 40960, localPromotion: 3)
        #expect(report.isRestored)
        guard case .disconnect(let why) = report.verdict else { Issue.record("\(report.verdict)"); return }
        #expect(why.contains("resolve"))
        #expect(report.reason.contains("40960 bytes changed here") && !report.reason.contains("on the peer"))
        let found = SplitBrainReport(row: 8, localChangedBytes: 1, peerChangedBytes: 2, localPromotion: 1, peerPromotion: 2,
                                     verdict: .disconnect(reason: "x"))
        #expect(!found.isRestored && found.reason.contains("2 on the peer"))
    }

    /// failover's generation check on a connected secondary: behind when the primary tracked
    /// writes since this copy's generation, or while this copy lacks the primary's generation;
    /// not once it holds it.
    @Test func aSecondaryIsBehindItsPrimaryUntilItHoldsThePrimarysGeneration() {
        let copy = Generations(current: shared, bitmap: 0, history: [], promotion: 0)
        let wentOn = PeerHelloCheck.copyBehindPrimary(own: copy, hello: hello(facts(oldPrimaryThatWrote())))
        #expect(wentOn?.contains("went on without this node") == true, "\(wentOn ?? "nil")")
        let fresh = PeerHelloCheck.copyBehindPrimary(own: .none, hello: hello(facts(copy)))
        #expect(fresh?.contains("does not hold the primary's generation yet") == true, "\(fresh ?? "nil")")
        #expect(PeerHelloCheck.copyBehindPrimary(own: copy, hello: hello(facts(copy))) == nil)
        // A primary of an older build sends no generations: nothing to compare.
        let old = WireHello(role: .primary, nodeName: "peer", resourceName: "r0", volumeSizeBytes: sizeBytes,
                            generations: WireGenerations(current: 7, bitmap: 0), promotionNumber: 0)
        #expect(PeerHelloCheck.copyBehindPrimary(own: .none, hello: old) == nil)
    }

    @Test func nodesWhosePoliciesDifferBothDisconnect() {
        let a = facts(oldPrimaryThatWrote(), changed: 4096, policy: .discardYoungerPrimary)
        let b = facts(promoted(), changed: 4096, policy: .discardLeastChanges)
        guard case .splitBrain(let report) = judge(a, b) else {
            Issue.record("expected split brain")
            return
        }
        #expect(report.verdict.word == "disconnect")
    }

    @Test func theGenerationTailSurvivesTheCodecAndAVersionThreeHelloHasNone() throws {
        let sent = hello(facts(promoted(), changed: 12_288, policy: .discardLeastChanges))
        let frames = try WireFixtures.decodeAll(try WireEncoder.encode(.hello(sent), promotionNumber: 0))
        #expect(frames.map(\.message) == [.hello(sent)])
        var old = sent
        old.protocolVersion = 3
        old.node = nil
        let oldFrames = try WireFixtures.decodeAll(try WireEncoder.encode(.hello(old), promotionNumber: 0))
        #expect(oldFrames.map(\.message) == [.hello(old)])
        // The strictness older builds have, which the dialler's version-3 fallback is for: a
        // Hello naming version 3 with bytes after its names is refused.
        var tailed = try WireEncoder.encode(.hello(sent), promotionNumber: 0)
        tailed[WireFormat.headerBytes] = 3
        tailed[WireFormat.headerBytes + 1] = 0
        let headerCRC = CRC32C.checksum(tailed[0..<20])
        for index in 0..<4 { tailed[20 + index] = UInt8(truncatingIfNeeded: headerCRC >> (8 * index)) }
        #expect(throws: WireError.self) { _ = try WireFixtures.decodeAll(tailed) }
    }
}
