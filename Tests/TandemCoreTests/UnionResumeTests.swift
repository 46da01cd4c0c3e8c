import Testing

@testable import TandemCore

/// A split brain's survivor restarted in the middle of its union resync (UnionResume): it
/// resumes from its `.union-resync` file — after a crash with the activity log's extents, and
/// asking the loser's set again when that had not come — or copies the whole volume, saying why.
@Suite struct UnionResumeTests {
    static let volumeBytes: UInt64 = 64 << 20
    static let parting: UInt64 = 0x5EED_0000_0000_0042

    static func file(pending: Bool, returned: Bool = false) -> PartedBitmap {
        var bitmap = DirtyBitmap(volumeSizeBytes: volumeBytes, blockBytes: 4096)
        _ = bitmap.setBlocks(BlockRun(first: 10, count: 6))
        return PartedBitmap(partingGeneration: parting, bitmap: bitmap, peerSetPending: pending, returnedPrimary: returned)
    }

    static func facts(_ file: PartedBitmap?, crashed: Bool, regions: [ActivityLog.Region]? = nil) -> UnionResumeFacts {
        UnionResumeFacts(file: file, fileProblem: "checksum mismatch", isPrimary: true, peerLacksWrites: true,
                         writtenWhileDisabled: false, partingGeneration: parting, crashed: crashed,
                         activityLogRegions: regions, activityLogProblem: "no transaction is proven")
    }

    static let extent = ActivityLog.Region(offsetBytes: 8 << 20, lengthBytes: 4 << 20)

    /// The survivor crashed before the loser's set came: its checkpoint (its own side) with the
    /// activity log's extents is resumed, and the loser is asked for its set again.
    @Test func aCrashBeforeThePeersSetCameResumesThisSideAndAsksAgain() {
        let plan = UnionResume.decide(Self.facts(Self.file(pending: true), crashed: true, regions: [Self.extent]))
        guard case let .resume(left, afterCrash, asksPeerSet, returnedPrimary) = plan else {
            Issue.record("\(plan)")
            return
        }
        #expect(afterCrash && asksPeerSet && !returnedPrimary)
        #expect(left.outOfSyncBytes == 6 * 4096 + (4 << 20))
        #expect(left.isSet(block: 10) && left.isSet(block: (8 << 20) / 4096) && !left.isSet(block: 0))
        #expect(UnionResume.reason(afterCrash: true, askedPeerSet: true).contains("asked again"))
    }

    /// A returned primary's resync keeps its names when it resumes asking for the set.
    @Test func aReturnedPrimarysPendingResyncStaysOne() {
        let plan = UnionResume.decide(Self.facts(Self.file(pending: true, returned: true), crashed: true, regions: []))
        guard case let .resume(_, _, asksPeerSet, returnedPrimary) = plan else { Issue.record("\(plan)"); return }
        #expect(asksPeerSet && returnedPrimary)
    }

    /// Once the union was known the file holds both sides: nothing is asked again; a stop's
    /// seal is taken as it is (no extents).
    @Test func aKnownUnionResumesWithoutAsking() {
        let crashed = UnionResume.decide(Self.facts(Self.file(pending: false), crashed: true, regions: [Self.extent]))
        guard case let .resume(left, true, false, false) = crashed else { Issue.record("\(crashed)"); return }
        #expect(left.outOfSyncBytes == 6 * 4096 + (4 << 20))
        let stopped = UnionResume.decide(Self.facts(Self.file(pending: true), crashed: false))
        guard case let .resume(sealed, false, true, false) = stopped else { Issue.record("\(stopped)"); return }
        #expect(sealed.outOfSyncBytes == 6 * 4096)
    }

    /// Whatever breaks the proof copies the whole volume, for a reason the event carries.
    @Test func whatCannotBeProvenCopiesTheWholeVolume() {
        var cases: [(UnionResumeFacts, String)] = [
            (Self.facts(nil, crashed: true), "cannot be proven (checksum mismatch)"),
            (Self.facts(Self.file(pending: true), crashed: true, regions: nil), "activity log proves nothing after a crash (no transaction is proven)"),
        ]
        var facts = Self.facts(Self.file(pending: true), crashed: true, regions: [])
        facts.isPrimary = false
        cases.append((facts, "this node is no primary"))
        facts = Self.facts(Self.file(pending: true), crashed: true, regions: [])
        facts.peerLacksWrites = false
        cases.append((facts, "the peer no longer lacks writes"))
        facts = Self.facts(Self.file(pending: false), crashed: false)
        facts.writtenWhileDisabled = true
        cases.append((facts, "wrote while replication was off"))
        facts = Self.facts(Self.file(pending: true), crashed: true, regions: [])
        facts.partingGeneration = Self.parting + 1
        cases.append((facts, "another parting generation"))
        for (facts, reason) in cases {
            guard case let .fullCopy(said) = UnionResume.decide(facts) else {
                Issue.record("resumed although \(reason)")
                continue
            }
            #expect(said.contains(reason) && said.contains("the whole volume is copied"), "\(said)")
        }
    }
}
