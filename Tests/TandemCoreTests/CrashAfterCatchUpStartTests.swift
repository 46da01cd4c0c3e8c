// A primary killed right after a catch-up ended (issue 13 §4, the hostile run h13): the ring's
// newest transaction records the bases the peer held, names no extent and counts no page (the
// pair was in sync and idle), so the tracked bitmap a crash restart builds from it sets no bit.
// That proves the peer lacks nothing relative to those bases: the start is a catch-up of
// nothing from them (PrimaryStart), which the peer's own record must still hold, and which
// ends at once. Before, the daemon dropped an empty bitmap and the record, with no clean stop,
// copied the whole volume.
import TandemCore
import Testing

@Suite struct CrashAfterCatchUpStartTests {
    static let bases = [CatchUpBase(session: 77, durableThroughEpoch: 12)]

    /// What the daemon's open makes of that ring: bases, an empty bitmap, no clean stop.
    static func crashed(record: ReplicationRecord = ReplicationRecord(generation: 4, primaryStarted: true))
        -> PrimaryStartFacts {
        var facts = PrimaryStartFacts(record: record, initialSync: .full, tracked: bases, trackedAfterCrash: true)
        facts.trackedIsEmpty = true
        return facts
    }

    @Test func aCrashWithNothingDirtyStartsACatchUpOfNothingNotAFullCopy() {
        let start = PrimaryStart(Self.crashed())
        #expect(start.basis == .catchUp(Self.bases))
        #expect(start.reason == .crashRecoveryNothingDirty)
        #expect(start.reason.description.hasPrefix("crash-recovery: "), "\(start.reason)")
        #expect(start.record.cleanStop == 0, "a catch-up promises nothing until it ends")
        #expect(start.record.primaryStarted)
        // The same facts without the empty bitmap (what the daemon passed before): the volume.
        let before = PrimaryStart(PrimaryStartFacts(record: Self.crashed().record, initialSync: .full))
        #expect(before.basis == .fullCopy && before.reason == .uncleanStop)
        // With bits set it is the crash recovery it always was.
        var dirty = Self.crashed()
        dirty.trackedIsEmpty = false
        #expect(PrimaryStart(dirty).basis == .catchUp(Self.bases) && PrimaryStart(dirty).reason == .crashRecovery)
    }

    /// "In sync" rests on the peer's record, not on the primary's word: the catch-up of nothing
    /// is taken only by a peer whose record holds the base's session durable through its epoch;
    /// anything else (a peer that lost its record, another session, a lower epoch) refuses and
    /// the primary copies the volume, saying why.
    @Test func thePeerTakesTheCatchUpOfNothingOnlyFromItsOwnRecordOfTheBase() {
        let basis = PrimaryStart(Self.crashed()).basis
        func verdict(session: UInt64, durable: Epoch, synced: Bool = true, fresh: Bool = false) -> SecondarySessionVerdict {
            SecondarySessionVerdict.decide(recordSession: session, recordContinuedFrom: 0, recordSynced: synced, fresh: fresh,
                                           recordDurableEpoch: durable, session: 91, basis: basis)
        }
        for accepted in [verdict(session: 77, durable: 12), verdict(session: 77, durable: 30),
                         verdict(session: 77, durable: 12, synced: false)] {
            #expect(accepted == .newSession(synced: false, continuedFrom: 0), "\(accepted)")
        }
        for refused in [verdict(session: 77, durable: 11), verdict(session: 78, durable: 12),
                        verdict(session: 77, durable: 12, fresh: true)] {
            guard case .refuse(let reason) = refused else {
                Issue.record("a catch-up of nothing taken by a copy it does not describe: \(refused)")
                continue
            }
            #expect(reason.contains("needs a full copy"), "\(reason)")
        }
    }

    /// An empty bitmap never outranks what is better or required: a clean stop's record keeps
    /// the peer UpToDate (no catch-up at all), a peer that lacks writes is copied, a first run
    /// follows `initial_sync`, and no bases prove nothing.
    @Test func anEmptyBitmapYieldsToACleanStopAPeerThatLacksWritesAndAFirstRun() {
        var clean = Self.crashed(record: ReplicationRecord(cleanStop: 0xBEEF, primaryStarted: true))
        clean.trackedAfterCrash = false
        #expect(PrimaryStart(clean).basis == .continues(from: 0xBEEF))
        // A request while disabled cancels the clean stop; the tracked bitmap (empty) still covers it.
        clean.writtenWhileDisabled = true
        #expect(PrimaryStart(clean).basis == .catchUp(Self.bases) && PrimaryStart(clean).reason == .trackedSinceStop)
        var lacking = Self.crashed()
        lacking.peerLacksWrites = true
        #expect(PrimaryStart(lacking).basis == .fullCopy)
        let first = PrimaryStart(Self.crashed(record: ReplicationRecord()))
        #expect(first.basis == .fullCopy && first.reason == .initialCopy)
        var noBases = Self.crashed()
        noBases.tracked = []
        #expect(PrimaryStart(noBases).basis == .fullCopy && PrimaryStart(noBases).reason == .uncleanStop)
        // The seeded restart fault stays where it was (an unclean stop with nothing tracked).
        #expect(PrimaryStart(Self.crashed(), fault: .restartForgetsUnconfirmedWrites) == PrimaryStart(Self.crashed()))
    }

    /// The node: a catch-up with an empty tracked bitmap copies one block (a SyncComplete
    /// before any Data of a session is a violation to the peer) and then ends as every catch-up
    /// does, with SyncComplete naming that block's write.
    @Test func aCatchUpOfNothingCopiesOneBlockAndEndsWithSyncComplete() {
        var config = PrimaryNodeConfig(
            primary: ReplicationPrimaryConfig(mode: .sync, bufferBytesMax: 16 << 20),
            volumeSizeBytes: 160 << 20, chunkBytes: 1 << 20, copyBuffersMax: 4,
            activityLog: ActivityLogSettings(extents: 2, extentBytes: 4 << 20, writeBytesMax: 1 << 20, lastTransaction: 10))
        config.activityLog?.trackedPagesDurable = true
        let empty = DirtyBitmap(volumeSizeBytes: 160 << 20, blockBytes: 4096)
        var node = PrimaryNode(config: config, session: 91, basis: .catchUp(Self.bases), trackedBitmap: empty)
        #expect(node.outOfSyncBytes == 4096, "one block, nothing else")
        var actions: [PrimaryNodeAction] = []
        func send(_ event: PrimaryNodeEvent) {
            actions.removeAll()
            node.handle(event, nowNs: 1_000_000_000, into: &actions)
        }
        send(.enable)
        for case let .writeActivityLog(number, _, _, _, _) in actions { send(.activityLogWritten(transaction: number, errno: 0)) }
        send(.linkUp)
        send(.peer(.hello(durableThroughEpoch: 0, copy: .consistent)))
        let reads = actions.compactMap { if case let .readCopyChunk(offset, length) = $0 { (offset, length) } else { nil } }
        #expect(reads.count == 1 && reads.first?.0 == 0 && reads.first?.1 == 4096, "\(actions)")
        send(.copyChunkRead(offsetBytes: 0, lengthBytes: 4096, errno: 0))
        send(.peer(.dataAck(sequence: 1)))
        send(.peer(.durableThroughEpoch(1)))
        #expect(actions.contains(.sendSyncComplete(throughSequence: 1)), "\(actions)")
        #expect(actions.contains(.notice(.copyDone(bytes: 4096))), "\(actions)")
        #expect(node.outOfSyncBytes == 0)
    }
}
