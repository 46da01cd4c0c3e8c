import Glibc
import TandemCore

// Simulation: one seeded run of two role-symmetric nodes (A and B, each primary or secondary)
// against fake disks, a fake network (one ordered stream per direction per connection, random
// delays, disconnects) and a simulated clock, under an application workload and the
// scenario's faults. Each node persists a ReplicationRecord and restarts from it. After every
// event it checks the guarantees and every disk state a node reports; the first violation
// ends the run.

struct SimulationFailure: Error, CustomStringConvertible {
    var seed: UInt64
    var scenario: String
    var step: Int
    var timeNs: UInt64
    var message: String
    var replay: String

    var description: String {
        "simulation seed \(seed) failed at step \(step) (t=\(timeNs / 1000)µs): \(message)\n"
            + "  scenario: \(scenario)\n"
            + "  replay: \(replay)"
    }
}

/// One node: its disk, its persisted record, and the role it has now.
final class SimNode {
    enum IO {
        case primaryWrite(WriteSequence, session: UInt64)
        case primaryFlush(session: UInt64)
        case standaloneWrite(RequestID)
        case standaloneFlush(RequestID)
        case secondaryWrite(WriteSequence)
        case secondaryFlush
        /// The secondary's volume flush before a link's first digest read (`.flushForDigests`).
        case secondaryDigestFlush
        /// The volume flush before an activity-log transaction that evicts an extent.
        case activityLogFlush(ActivityLogTransaction)
    }

    let index: Int
    var name: String { index == 0 ? "A" : "B" }
    let disk: FakeDisk
    /// The record as on stable storage (ReplicationMetadata): survives every crash.
    var record = ReplicationRecord()
    var alive = true
    var incarnation = 0
    /// Dials started (a dial's failure answers only the latest).
    var dialsStarted = 0
    /// The bitmap the last primary stop sealed in the metadata, with the bases it covers
    /// (cleared by the next session's first write and by any role change).
    var sealedBitmap: (bitmap: DirtyBitmap, bases: [CatchUpBase])?
    /// The activity-log ring's newest durable transaction (survives every crash), and the one
    /// being written (a crash lands it or not: one 4 KiB write is atomic here).
    var activityLogDurable: ActivityLogTransaction?
    var activityLogInFlight: ActivityLogTransaction?
    /// The metadata bitmap area's pages as on stable storage (nil: as created, every page
    /// clear), and the activity log's page writes in flight: each page lands or not at a crash.
    var durablePages: DirtyBitmap?
    var pageWritesInFlight: [(ticket: UInt64, primary: PrimarySide, pages: [(page: Int, setBlocks: [UInt64])])] = []
    /// `crashed-primary`: set with a primary session's start record, cleared with its stop
    /// record and at a role change (Resource+ActivityLog).
    var crashedPrimary = false
    /// The daemon's `trackedSinceStop`: the bitmap of the last stop (or a clean stop's empty
    /// one) with the writes made without a replicator since; lost with the process.
    var trackedInMemory: (bitmap: DirtyBitmap, bases: [CatchUpBase])?
    var isPrimary: Bool
    /// Its generation identifiers, as the daemon keeps them (Simulation+Generations).
    var generations = Generations.none
    /// The daemon's parted bitmap and `changed bytes` (Resource+Generations): every region
    /// written since B was set (nil: B = 0, not tracking); `partedLost`: a crash lost it (the
    /// daemon removes its file before the first write it would not cover).
    var parted: DirtyBitmap?
    var changedBytes: UInt64 = 0
    var partedLost = false
    /// The daemon's `needsTracked`: B moved for a write the peer will not get, so the writes
    /// unconfirmed at the link's loss belong to the set, known only from a bitmap a stop sealed.
    var partedNeedsTracked = false
    var primary: PrimarySide?
    var secondary: SecondaryNode?
    /// The primary's own disk failed (a secondary's failure is its node's).
    var diskFailed = false
    /// The lineage (see GuaranteeChecker) this node's content belongs to.
    var lineage = 0
    /// The session whose history this node's content is a state of (nil: none; a crashed
    /// primary's volume is whatever its disk kept).
    var historySession: UInt64? = 0
    /// The last session this node ran as primary.
    var lastPrimarySession: UInt64 = 0
    /// `<name>.peer-failed`: the peer's disk failed while this node was its primary.
    /// Record writes in flight, in order (a crash keeps a prefix of them: each is atomic).
    var recordsInFlight: [ReplicationRecord] = []
    var lastRecordDoneNs: UInt64 = 0
    var io: [FakeDisk.Tag: IO] = [:]
    /// Writes the driver reported completed after a timeout while the disk still had them
    /// (the seeded fault `completesStuckWritesAfterTimeout`): they land when the disk is done.
    var timedOutWrites: Set<FakeDisk.Tag> = []
    /// When each write and flush in `io` was submitted, for the disk timeout (DiskStalls);
    /// an entry goes once its I/O has completed or was reported overdue.
    var ioSubmittedNs: [FakeDisk.Tag: UInt64] = [:]
    /// The staging journal's device (Simulation+Staging): survives a crash as it says.
    var journal = SimJournal()
    /// The daemon's record of a crash restart's compare (CrashCompareRecordFile): the ring's
    /// transaction its plan came from and its regions; survives every crash.
    var compareRecord: (transaction: UInt64, regions: DirtyBitmap)?

    init(index: Int, content: [UInt64], isPrimary: Bool, seed: UInt64) {
        self.index = index
        disk = FakeDisk(content: content, seed: seed)
        self.isPrimary = isPrimary
    }

    func writeRecord(_ change: (inout ReplicationRecord) -> Void) {
        change(&record)
        record.generation += 1
    }
}

final class Simulation {
    /// Primary → secondary on one connection.
    enum ToSecondary {
        case hello(session: UInt64, basis: SessionBasis, nodeName: String, certificateNamesPeer: Bool)
        case message(PrimaryMessage)
        case syncComplete(throughSequence: WriteSequence)
        case demoted
        case digestRequest(offsetBytes: UInt64, lengthBytes: UInt64)
        /// Bytes that decode to nothing valid (an impostor's).
        case garbage
    }

    /// Secondary → primary.
    enum ToPrimary {
        /// The secondary accepted the Hello (the HelloReply).
        case accepted
        case refused(String, WireRefusal)
        case message(SecondaryMessage)
        case failoverRequest
        case digests(offsetBytes: UInt64, lengthBytes: UInt64, digest: RegionDigest)
        case caughtUp(session: UInt64)
    }

    enum Event {
        case appIssue
        case appDependentWrite
        case writeDone(node: Int, tag: FakeDisk.Tag, incarnation: Int)
        /// The seeded fault's driver stops waiting for a write (SimulationFault.writeTimeoutNs).
        case writeTimedOut(node: Int, tag: FakeDisk.Tag, incarnation: Int)
        case flushDone(node: Int, tag: FakeDisk.Tag, incarnation: Int)
        case copyReadDone(node: Int, incarnation: Int, session: UInt64, blocks: Range<Int>)
        /// A verify read (`primary`: the primary's own, else the secondary's digest read) ends.
        case verifyReadDone(node: Int, incarnation: Int, primary: Bool, blocks: Range<Int>)
        case recordDone(node: Int, incarnation: Int)
        /// The activity-log transaction in flight is durable.
        case activityLogDone(node: Int, incarnation: Int, transaction: UInt64)
        /// The activity log's bitmap page write with this ticket is durable.
        case bitmapPagesDone(node: Int, incarnation: Int, ticket: UInt64)
        /// Bytes on one direction of a connection (Simulation+Wire).
        case toSecondary(WireChunk, link: Int)
        case toPrimary(WireChunk, link: Int)
        case dialFailed(node: Int, incarnation: Int, dial: Int)
        case restart(node: Int)
        /// The operator looks: with no node primary, the secondary is promoted (forced).
        case operatorCheck
        case tick
        case fault(SimulationScenario.Fault)
        /// The staging journal's I/O (Simulation+Staging).
        case staging(StagingEvent, node: Int, incarnation: Int)
        /// A split brain run for real (Simulation+SplitBrain).
        case splitBrain(SplitBrainStep)
    }

    enum AppRequest {
        case write(blocks: Range<Int>, fua: Bool, value: UInt64?)
        /// WRITE_ZEROES: each chunk admitted is a write of its own (its value: those zeros).
        case zeroes(blocks: Range<Int>, fua: Bool, chunks: [(blocks: Range<Int>, value: UInt64)])
        case flush(snapshot: [UInt64])
        case trim(blocks: Range<Int>)
    }

    /// One connection between a primary (or an impostor) and a secondary.
    struct Link {
        var id: Int
        var primary: Int?
        var secondary: Int
        var lastToSecondaryNs: UInt64
        var lastToPrimaryNs: UInt64
        /// The bytes each way: the receiver's decoder, the sender's barrier count, a wire fault.
        var toSecondary = WireDirection()
        var toPrimary = WireDirection()
        /// The TLS fact the secondary judges the Hello with: the dialler's certificate names
        /// the configured peer.
        var certificateNamesPeer = true
        /// Cut asymmetrically (Simulation+Partition): nothing flows any more, and this side
        /// has not seen it yet; the other side has.
        var unaware: UnawareSide?
        var impostor: Bool { primary == nil }
    }

    let scenario: SimulationScenario
    var random: SimRandom
    var nowNs: UInt64 = 0
    /// When the run ends: the scenario's end, later if a disk stall ends late.
    var runEndNs: UInt64
    var events = EventQueue<Event>()
    var step = 0
    var failure: String?

    var nodes: [SimNode]
    var link: Link?
    var linkCount = 0
    /// Primaries whose peer's disk failed: replication stops once the link is down.
    var pendingDetach: Set<Int> = []
    var nextTag: FakeDisk.Tag = 1
    /// Global write identities (block values); values up to `initialValues` are the volume's
    /// content at creation.
    var nextValue: UInt64
    /// Payload of every replicated write, by (session, sequence): what a Data frame carries.
    var payloads: [PayloadKey: FakeDisk.Extent] = [:]
    var sessionsStarted = 0
    var restarts = 0
    var failovers = 0
    var impostors = 0
    /// Planned failovers whose old primary demoted while the requester could not promote.
    var plannedFailoversStranded = 0
    var copiesCompleted = 0
    var aheadEntered = 0
    var catchUpsStarted = 0
    var catchUpsFromSealedBitmap = 0
    var verifiesStarted = 0
    var verifyBytesChecked: UInt64 = 0
    /// Crash restarts that caught up from the activity log (not a full copy).
    var catchUpsFromActivityLog = 0
    /// Of them, restarts whose transaction counted the bitmap pages (Ahead or catching up).
    var catchUpsFromBitmapPages = 0
    /// Crash restarts' digest compares of the extents that ended, and the bytes they compared
    /// and found differing.
    var checksumResyncsEnded = 0
    var checksumBytesChecked: UInt64 = 0
    var checksumBytesDiffering: UInt64 = 0
    /// A crash armed to strike while a crash restart's compare runs (Simulation+CompareCrash),
    /// how often one struck, and the crash restarts that resumed an interrupted compare (with
    /// the bytes they compared again instead of copying).
    var armedCompareFault: (fault: CompareFault, untilNs: UInt64)?
    var compareFaultsFired = 0
    var comparesResumed = 0
    var compareBytesResumed: UInt64 = 0
    var comparesResumedAfterStop = 0
    var compareBytesResumedAfterStop: UInt64 = 0
    var copiesInterrupted = 0
    /// Steps at which both nodes said UpToDate with nothing admitted unanswered (the blocks
    /// were compared).
    var stepsInSync = 0
    var diskErrors = 0
    var diskStalls = 0
    /// Writes and flushes reported overdue (DiskStalls.timeoutNs): each failed its node's disk.
    var diskTimeouts = 0
    /// Forced failovers whose old primary ran on behind a partition and met the new one.
    var partitionsHealed = 0
    var splitBrainsFound = 0
    /// Generation identifiers and partitions (Simulation+Generations): a generator of its own.
    var generationRandom: SimRandom
    /// Bytes on the wire (Simulation+Wire): which bits flip, where a frame is cut.
    var wireRandom: SimRandom
    /// Asymmetric partitions and promotion races (Simulation+Partition).
    var partitionRandom: SimRandom
    var partitionsCut = 0
    /// Cuts the unaware side's liveness ended, and forced promotions while a link was half up.
    var partitionTimeouts = 0
    /// Disk-state checks skipped for the unaware side of a cut (Simulation+Partition).
    var staleClaimChecksSkipped = 0
    /// A primary's Consistent/Outdated about its peer while a copy runs (SimulationWorkload).
    var stagedPeerClaimsUnchecked = 0
    /// Steps at which the primary's `peer_consistent_as_of` was checked against the peer's
    /// image (Simulation+PeerPoint), and the staged Consistent/Outdated claims checked through it.
    var peerPointsChecked = 0
    var stagedPeerClaimsChecked = 0
    /// Of them, points that named a staged session whose commit was not durable on the peer
    /// (held against its journal: Simulation+PeerPoint's header).
    var peerPointsAheadOfCommit = 0
    /// Sessions that began with a copy (full or catch-up), and those whose copy completed
    /// (Simulation+PeerPoint: a copy session's base is the peer's only once it completed).
    var copySessions: Set<UInt64> = []
    var copiedSessions: Set<UInt64> = []
    var peerPointsOfIncompleteCopies = 0
    /// Points of an earlier session while the peer's committed journal holds a later one.
    var peerPointsSuperseded = 0
    /// Periodic mode (Simulation+Periodic): the running cycle's start on its primary, with what
    /// was acknowledged by then; cycles started, completed and checked as a boundary;
    /// application writes streamed during cycles; the image the stale-copy fault reads.
    var cycleStart: (primary: PrimarySide, acked: [UInt64], lineage: Int)?
    var cyclesStarted = 0
    var cyclesCompleted = 0
    var cyclesChecked = 0
    /// Cycles completed while the staging peer's journal was not committed.
    var cyclesAheadOfCommit = 0
    var cycleWritesStreamed = 0
    var staleCycleImage: [UInt64]?
    /// The last cycle completed with the workload answered: when, and how the peer's image
    /// differed from the primary's content (nil: equal).
    var lastQuietCycle: (atNs: UInt64, difference: String?)?
    var promotionRaces = 0
    /// Payloads as the secondary restored them from Data frames, by (session, sequence),
    /// with the block's bytes.
    var received: [PayloadKey: (extent: FakeDisk.Extent, block: [UInt8])] = [:]
    /// Frames a wire fault changed, those of them that arrived (the others were in flight when
    /// their connection dropped), those refused by their receiver, and tampered Data frames
    /// whose payload was never restored (ignored or re-sent ones).
    var wireTampered = 0
    var wireTamperedDelivered = 0
    var wireRefused = 0
    var wireKindsRefused: Set<WireTamper> = []
    /// Whether a tampered frame must have been refused once delivered (off only to show that
    /// the volume check sees what a skipped check lets through).
    var checksRefusal = true
    var wireNotRestored = 0
    var wireCompressedFrames = 0
    /// The staging journal (Simulation+Staging): a generator of its own, and what it did.
    var stagingRandom: SimRandom
    var stagedWrites = 0
    var commitsStored = 0
    var appliesCompleted = 0
    var stagingReplays = 0
    var stagingDiscards = 0
    /// A crash or forced failover armed to strike when the secondary reaches a staging phase.
    var armedStagingFault: (fault: StagingFault, untilNs: UInt64)?
    var stagingFaultsFired = 0
    /// Adaptive mode (Simulation+Adaptive): the application writes whose Data went out
    /// admitted sync, the acknowledgements of them, and the controller's switches.
    var syncAdmittedValues: Set<UInt64> = []
    var syncAdmittedAcks = 0
    var modeSwitches = 0
    /// A split brain run for real (Simulation+SplitBrain): a generator of its own, the run's
    /// split brain, and what it did.
    var splitBrainRandom: SimRandom
    var splitBrain: SplitBrainRun?
    var splitBrainsRun = 0
    var splitBrainsResolvedByPolicy = 0
    var splitBrainsResolvedByOperator = 0
    var farWritesIssued = 0
    var farWritesAcked = 0
    var unionResyncs = 0
    var splitBrainFullCopies = 0
    var unionBytesCopied: UInt64 = 0
    /// Union resyncs whose victim changed blocks the survivor did not (the union is larger).
    var unionsWithVictimOnlyBlocks = 0
    /// Meetings that were no split brain although the old primary had admitted a write after
    /// the cut (one submitted before it): Simulation+SplitBrain's `heal`.
    var writtenAfterCutWithoutSplitBrain = 0

    var checker: GuaranteeChecker
    var requests: [RequestID: AppRequest] = [:]
    var outstanding: [(request: RequestID, blocks: Range<Int>)] = []
    var nextRequest: RequestID = 1
    var requestsIssued = 0
    var requestsAnswered = 0
    /// TANDEM_SIM_TRACE=1 prints every event and action of a run (use with TANDEM_SIM_SEED).
    let tracing = getenv("TANDEM_SIM_TRACE") != nil
    var primaryActions: [PrimaryNodeAction] = []
    var secondaryActions: [SecondaryNodeAction] = []

    struct PayloadKey: Hashable {
        var session: UInt64
        var sequence: WriteSequence
    }

    init(scenario: SimulationScenario) {
        self.scenario = scenario
        random = SimRandom(seed: scenario.seed)
        generationRandom = SimRandom(seed: scenario.seed ^ 0x6E6E_5A5A_0000_0000)
        wireRandom = SimRandom(seed: scenario.seed ^ 0x3149_E0B7_0000_0000)
        partitionRandom = SimRandom(seed: scenario.seed ^ 0xA5E4_C0A7_0000_0000)
        stagingRandom = SimRandom(seed: scenario.seed ^ 0x57A6_1D0C_0000_0000)
        splitBrainRandom = SimRandom(seed: scenario.seed ^ 0x5B1D_B4A1_0000_0000)
        let blockCount = scenario.blockCount
        // initial_sync full: A's volume holds data B lacks; none: both are equal (zeros).
        var initial = Array(repeating: UInt64(0), count: blockCount)
        if scenario.initialSync == .full {
            for block in 0..<blockCount where random.chance(perMille: 600) { initial[block] = UInt64(block + 1) }
        }
        nextValue = UInt64(blockCount + 1)
        nodes = [
            SimNode(index: 0, content: initial, isPrimary: true, seed: scenario.seed ^ 0xD15C_A000),
            SimNode(index: 1, content: Array(repeating: 0, count: blockCount), isPrimary: false, seed: scenario.seed ^ 0xD15C_B000),
        ]
        for node in nodes {
            node.disk.tornWrites = scenario.tornWrites
            node.disk.tearsDurableWrites = scenario.testingFault == .diskTearsDurableWrites
        }
        runEndNs = scenario.runEndNs
        checker = GuaranteeChecker(
            mode: scenario.mode, blockCount: blockCount, overlapping: scenario.overlappingWrites, initialContent: initial)
        checker.adaptive = scenario.adaptive != nil
        // Session 0: the volumes as created (B's claim at rest refers to it).
        _ = checker.startSession(0, base: initial)
        if scenario.initialSync == .full { nodes[1].historySession = nil }
    }

    var replayCommand: String {
        let command = "TANDEM_SIM_SEED=\(scenario.seed) TANDEM_SIM_TRACE=1 swift test --filter TandemSimulationTests.SimulationTests/guaranteesHoldUnderSeededFaults"
        guard let fault = scenario.testingFault else { return command }
        return "seeded fault \(fault): run its checkerCatches… test with TANDEM_SIM_VERBOSE=1 (seed \(scenario.seed))"
    }

    func run() -> SimulationFailure? {
        startSecondary(nodes[1], handedOver: false)
        startPrimary(nodes[0])
        events.schedule(.appIssue, atNs: 1000)
        events.schedule(.tick, atNs: 100_000)
        for (atNs, fault) in scenario.faults { events.schedule(.fault(fault), atNs: atNs) }
        while failure == nil, let (timeNs, event) = events.popFirst() {
            precondition(timeNs >= nowNs, "simulated time went backwards")
            guard timeNs <= runEndNs else { break }
            nowNs = timeNs
            step += 1
            if tracing { print("\(nowNs / 1000)µs #\(step) \(event)") }
            handle(event)
            if failure == nil { checkInvariants() }
            if failure == nil, armedStagingFault != nil { fireArmedStagingFault() }
            if failure == nil, armedCompareFault != nil { fireArmedCompareFault() }
            if step > 2_000_000 { fail("the run did not settle") }
        }
        if failure == nil { checkSettled() }
        guard let failure else { return nil }
        return SimulationFailure(
            seed: scenario.seed, scenario: scenario.description, step: step, timeNs: nowNs,
            message: failure, replay: replayCommand)
    }

    func fail(_ message: String) {
        if failure == nil { failure = message }
    }

    func trace(_ text: @autoclosure () -> String) {
        if tracing { print("    \(text())") }
    }

    func makeTag() -> FakeDisk.Tag {
        defer { nextTag += 1 }
        return nextTag
    }

    /// The node that is primary and running, if any.
    /// (Not the old primary behind a split brain's partition: its application is the far side.)
    var livePrimary: SimNode? {
        nodes.first { $0.alive && $0.isPrimary && $0.primary != nil && splitBrain?.farIndex != $0.index }
    }
    var liveSecondary: SimNode? { nodes.first { $0.alive && !$0.isPrimary } }

    // MARK: Events

    private func handle(_ event: Event) {
        switch event {
        case .appIssue: issueRequest(dependent: false)
        case .appDependentWrite: issueRequest(dependent: true)
        case let .writeDone(index, tag, incarnation):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation else { return }
            guard let io = node.io.removeValue(forKey: tag) else {
                // Reported completed at its timeout (seeded fault): it lands only now.
                if node.timedOutWrites.remove(tag) != nil { _ = node.disk.completeWrite(tag) }
                return
            }
            guard let result = node.disk.completeWrite(tag) else { return }
            ioCompleted(node, io, result: result)
        case let .writeTimedOut(index, tag, incarnation):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation, let io = node.io.removeValue(forKey: tag) else { return }
            trace("\(node.name) write tag \(tag) timed out: reported completed while still in flight")
            node.timedOutWrites.insert(tag)
            ioCompleted(node, io, result: 0)
        case let .flushDone(index, tag, incarnation):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation, let io = node.io.removeValue(forKey: tag) else { return }
            guard let result = node.disk.completeFlush(tag) else { return }
            ioCompleted(node, io, result: result)
        case let .copyReadDone(index, incarnation, session, blocks):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation, let primary = node.primary, primary.session == session
            else { return }
            copyReadCompleted(node, primary, blocks: blocks)
        case let .verifyReadDone(index, incarnation, isPrimary, blocks):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation else { return }
            verifyReadCompleted(node, primary: isPrimary, blocks: blocks)
        case let .recordDone(index, incarnation):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation else { return }
            recordDone(node)
        case let .activityLogDone(index, incarnation, transaction):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation else { return }
            activityLogDone(node, transaction: transaction)
        case let .bitmapPagesDone(index, incarnation, ticket):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation else { return }
            bitmapPagesDone(node, ticket: ticket)
        case let .toSecondary(chunk, linkID):
            guard let link, link.id == linkID, link.unaware == nil else { return }
            receiveAtSecondary(chunk, linkID: linkID)
        case let .toPrimary(chunk, linkID):
            guard let link, link.id == linkID, link.primary != nil, link.unaware == nil else { return }
            receiveAtPrimary(chunk, linkID: linkID)
        case let .dialFailed(index, incarnation, dial):
            let node = nodes[index]
            // A dial the node hung up (going Ahead) and replaced answers no later one.
            guard node.alive, incarnation == node.incarnation, dial == node.dialsStarted else { return }
            drivePrimary(node, .dialFailed("the peer does not answer"))
        case let .restart(index): restart(nodes[index])
        case .operatorCheck:
            operatorCheckPending = false
            if nodes.contains(where: { $0.alive && !$0.isPrimary && $0.primary != nil }) {
                // A demoted primary is still stopping: its resource is busy; look again later.
                events.schedule(.operatorCheck, atNs: nowNs + random.between(100_000, 1_000_000))
            } else if !nodes.contains(where: { $0.isPrimary }) {
                trace("the operator finds no primary: forced failover")
                forcedFailover(allowInconsistent: true)
            }
        case .tick:
            checkDiskTimeouts()
            checkCutLiveness()
            tryCarryOutSplitBrain()
            for node in nodes where node.alive {
                if let primary = node.primary, !primary.standalone { drivePrimary(node, .tick) }
                if node.secondary != nil { driveSecondary(node, .tick) }
            }
            // Past the scenario's end only a disk stall is awaited (DiskStalls): a coarser
            // clock then keeps seconds of waiting from costing ten thousands of steps.
            let tickNs = nowNs > scenario.runEndNs ? random.between(1_000_000, 5_000_000) : random.between(50_000, 500_000)
            events.schedule(.tick, atNs: nowNs + tickNs)
            if !operatorCheckPending && !nodes.contains(where: { $0.isPrimary }) {
                // No node is primary (a hand-over lost with its link, ...): the operator looks.
                operatorCheckPending = true
                events.schedule(.operatorCheck, atNs: nowNs + random.between(500_000, 3_000_000))
            }
        case let .fault(fault): inject(fault)
        case let .staging(stagingEvent, index, incarnation):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation else { return }
            handleStaging(stagingEvent, node: node)
        case let .splitBrain(step):
            handleSplitBrain(step)
        }
    }

    private func ioCompleted(_ node: SimNode, _ io: SimNode.IO, result: Int32) {
        if result != 0 { diskErrors += 1 }
        switch io {
        case let .primaryWrite(sequence, session):
            guard node.primary?.session == session else { return }
            drivePrimary(node, .localWriteDone(sequence: sequence, errno: result))
        case let .primaryFlush(session):
            guard node.primary?.session == session else { return }
            drivePrimary(node, .localFlushDone(errno: result))
        case let .standaloneWrite(request):
            if result != 0 { primaryDiskFailed(node, operation: "write", errno: result) }
            answer(request, errno: result)
        case let .standaloneFlush(request):
            if result != 0 { primaryDiskFailed(node, operation: "flush", errno: result) }
            answer(request, errno: node.diskFailed ? EIO : 0)
        case let .secondaryWrite(sequence):
            driveSecondary(node, .writeCompleted(sequence: sequence, errno: result))
        case .secondaryFlush:
            driveSecondary(node, .flushCompleted(errno: result))
        case .secondaryDigestFlush:
            driveSecondary(node, .digestFlushCompleted(errno: result))
        case let .activityLogFlush(transaction):
            guard node.primary?.node.activityLog?.inFlightTransaction == transaction.transaction else { return }
            if result != 0 { return drivePrimary(node, .activityLogWritten(transaction: transaction.transaction, errno: result)) }
            writeActivityLog(node, transaction)
        }
    }

    // MARK: Network

    /// Encodes the message into the connection's bytes (Simulation+Wire); one delivery event
    /// carries one frame, or the frame an armed wire fault changed.
    func sendToSecondary(_ message: ToSecondary) {
        guard var link, link.unaware == nil else { return }  // a cut link carries nothing
        let (bytes, isData) = encodeToSecondary(message, &link.toSecondary)
        if case let .hello(_, _, _, namesPeer) = message { link.certificateNamesPeer = namesPeer }
        var isBarrier = false
        if case .message(.epochBarrier) = message { isBarrier = true }
        let chunk = tamper(bytes, isData: isData, isBarrier: isBarrier, &link.toSecondary)
            ?? WireChunk(bytes: bytes, tamper: nil)
        link.lastToSecondaryNs = max(link.lastToSecondaryNs, nowNs + networkDelayNs())
        self.link = link
        events.schedule(.toSecondary(chunk, link: link.id), atNs: link.lastToSecondaryNs)
    }

    func sendToPrimary(_ message: ToPrimary) {
        guard var link, link.unaware == nil else { return }
        let bytes = encodeToPrimary(message)
        let chunk = tamper(bytes, isData: false, isBarrier: false, &link.toPrimary)
            ?? WireChunk(bytes: bytes, tamper: nil)
        link.lastToPrimaryNs = max(link.lastToPrimaryNs, nowNs + networkDelayNs())
        self.link = link
        events.schedule(.toPrimary(chunk, link: link.id), atNs: link.lastToPrimaryNs)
    }

    /// Drops the connection; both ends notice now (the secondary not when it closed it
    /// itself). Messages in flight are never delivered.
    func disconnect(_ reason: String, notifySecondary: Bool = true) {
        guard let link else { return }
        trace("link \(link.id) down: \(reason)")
        self.link = nil
        // (A disk failure meanwhile changes `synced` itself.)
        if let before = impostorRecords.removeValue(forKey: link.id), let secondary = nodes[link.secondary].secondary,
            secondary.diskFault == nil, !sameSession(before, secondary.record) {
            let after = secondary.record
            fail("an impostor's session changed \(nodes[link.secondary].name)'s record from \(before) to \(after)")
        }
        // The side that saw an asymmetric cut was told then.
        let secondary = nodes[link.secondary]
        if secondary.alive && notifySecondary && link.unaware?.primary != true { secondaryLinkDown(secondary) }
        if let primaryIndex = link.primary, link.unaware?.primary != false {
            let node = nodes[primaryIndex]
            if node.alive, let primary = node.primary { primaryLinkDown(node, primary, reason: reason) }
        }
    }

    // MARK: Faults

    private func inject(_ fault: SimulationScenario.Fault) {
        trace("fault: \(fault)")
        switch fault {
        case .disconnect:
            disconnect("injected disconnect")
        case let .crash(role, powerLoss):
            guard let node = role == .primary ? livePrimary : liveSecondary else { return }
            crash(node, powerLoss: powerLoss)
            events.schedule(.restart(node: node.index), atNs: nowNs + random.between(100_000, 5_000_000))
        case .plannedFailover:
            plannedFailover()
        case let .forcedFailover(allowInconsistent):
            let halfUp = link?.unaware != nil
            let before = failovers
            forcedFailover(allowInconsistent: allowInconsistent)
            if halfUp && failovers > before { promotionRaces += 1 }
        case let .impostor(helloFirst):
            impostorSession(helloFirst: helloFirst)
        case let .verify(attempts):
            guard let node = livePrimary, let primary = node.primary, !primary.standalone else { return }
            guard primary.node.verifyRefusal == nil else {
                if attempts > 1 { events.schedule(.fault(.verify(attempts: attempts - 1)), atNs: nowNs + random.between(200_000, 2_000_000)) }
                return
            }
            verifiesStarted += 1
            drivePrimary(node, .startVerify)
        case .cleanRestart:
            guard let node = livePrimary, let primary = node.primary, !primary.standalone, !primary.handingOver,
                !primary.node.stopping
            else { return }
            primary.restartWhenStopped = true
            drivePrimary(node, .stop)
        case let .diskErrors(role, errno):
            guard let node = role == .primary ? livePrimary : liveSecondary else { return }
            node.disk.errorPlan = FakeDisk.ErrorPlan(
                afterOperations: node.disk.operations + Int(random.between(1, 20)), errno: errno)
        case let .asymmetricPartition(primarySees):
            cutAsymmetrically(primarySees: primarySees)
        case let .wire(tamper, toSecondary):
            // Armed for the next frame it fits on that direction of the connection up now.
            guard link != nil, link?.impostor == false else { return }
            if toSecondary { link!.toSecondary.armed = tamper } else { link!.toPrimary.armed = tamper }
        case let .whileStaging(fault):
            // Armed until a while after the workload, so that the pair still settles.
            armedStagingFault = (fault, scenario.workloadEndNs + 50_000_000)
        case let .whileComparing(fault):
            armedCompareFault = (fault, scenario.workloadEndNs + 50_000_000)
        }
    }

    func crash(_ node: SimNode, powerLoss: Bool) {
        guard node.alive else { return }
        if isAwareSideOfCut(node) {
            // Across the partition nobody learns of it: the other side still waits for its timeout.
        } else if link?.primary == node.index || link?.secondary == node.index {
            disconnect("\(node.name) crashed")
        }
        node.alive = false
        node.incarnation += 1
        if powerLoss { node.disk.powerLoss(&random) } else { node.disk.processCrash(&random) }
        // The record writes in flight: a prefix of them lands (each is crash-atomic).
        let landing = Int(random.below(UInt64(node.recordsInFlight.count + 1)))
        if landing > 0 { node.record = node.recordsInFlight[landing - 1] }
        node.recordsInFlight.removeAll()
        // The activity-log write in flight lands or not.
        if let transaction = node.activityLogInFlight, random.chance(perMille: 500) { node.activityLogDurable = transaction }
        node.activityLogInFlight = nil
        // Each bitmap page in flight lands or not (one 4 KiB write is atomic here).
        for write in node.pageWritesInFlight {
            for page in write.pages where random.chance(perMille: 500) { landPage(node, page.page, setBlocks: page.setBlocks) }
        }
        node.pageWritesInFlight.removeAll()
        crashJournal(node, powerLoss: powerLoss)
        node.io.removeAll()
        node.timedOutWrites.removeAll()
        node.ioSubmittedNs.removeAll()
        if node.isPrimary {
            // The application's requests die with the primary: nothing more is answered. (With
            // a split brain, the far side's are the old primary's, the run's the other's.)
            let far = splitBrain?.farRequests ?? []
            let ownsFar = splitBrain?.old == node.index
            let servesWorkload = !isFarPrimary(node)
            outstanding.removeAll { far.contains($0.request) ? ownsFar : servesWorkload }
            requests = requests.filter { far.contains($0.key) ? !ownsFar : !servesWorkload }
            if ownsFar { splitBrain?.farRequests.removeAll() }

            if powerLoss && node.lineage == checker.lineage {
                checker.primaryLostItsCache(content: node.disk.cache)
                if let problem = checker.checkPrimary(node.disk, name: node.name) { return fail("after power loss: \(problem)") }
            }
            node.historySession = nil
        }
        node.primary = nil
        node.secondary = nil
        node.trackedInMemory = nil
        // The parted set lives in memory between stops (its file is removed before the first
        // write it would not cover): a crash loses it (taken whenever B is set: at most a
        // full copy more than the daemon's, which keeps the file of a stop with no write since).
        if node.generations.bitmap != 0 { node.partedLost = true }
        trace("\(node.name) \(powerLoss ? "lost power" : "was killed")")
    }

    /// A node comes back with what its disk and record kept.
    private func restart(_ node: SimNode) {
        guard !node.alive else { return }
        restarts += 1
        node.alive = true
        node.diskFailed = false
        node.disk.errorPlan = nil
        if node.isPrimary {
            startPrimary(node)
        } else {
            settleStaging(node, promoting: false)
            if failure != nil { return }
            // disk_drain: flush never has two epochs unflushed, so what survived a crash is still
            // a prefix: a forced promotion right now would expose a consistent volume. (A staged
            // catch-up resumed: the staging checks look at its image.)
            if scenario.diskDrain == .flush, node.record.synced, node.record.staging == nil, let session = contentSession(node),
                let problem = checker.histories[session]?.prefixViolation(node.disk.cache) {
                return fail("disk_drain flush, after \(node.name)'s restart: \(problem)")
            }
            startSecondary(node, handedOver: false)
            if let primaryNode = livePrimary { reenableIfPeerRecovered(primaryNode) }
        }
    }

    /// The operator re-enables a detached primary once its peer's disk works again (the peer
    /// restarted): the peer-failed marker makes the new session a full copy.
    func reenableIfPeerRecovered(_ primaryNode: SimNode) {
        let peer = nodes[1 - primaryNode.index]
        guard primaryNode.primary?.standalone == true, peer.alive, !peer.isPrimary, let secondary = peer.secondary,
            secondary.diskFault == nil
        else { return }
        trace("\(primaryNode.name) re-enabled after the peer's disk failure")
        // Enabling waits for the local I/O of the detached primary.
        for (tag, io) in primaryNode.io.sorted(by: { $0.key < $1.key }) {
            primaryNode.io[tag] = nil
            switch io {
            case .standaloneWrite, .primaryWrite:
                ioCompleted(primaryNode, io, result: primaryNode.disk.completeWrite(tag) ?? EIO)
            case .standaloneFlush, .primaryFlush:
                ioCompleted(primaryNode, io, result: primaryNode.disk.completeFlush(tag) ?? EIO)
            default:
                break
            }
        }
        startPrimary(primaryNode, peerLacksWrites: true)
    }

    private func roleFacts(_ node: SimNode) -> ResourceRoleFacts {
        ResourceRoleFacts(name: Self.resourceName, role: node.isPrimary ? .primary : .secondary, enabled: true,
                          transitioning: false)
    }

    /// The operator runs `failover` on the secondary, which asks the connected primary to
    /// drain and demote (ResourceRoles.failover, SecondaryNode.requestFailover).
    private func plannedFailover() {
        guard let candidate = liveSecondary, let secondary = candidate.secondary else { return }
        let diskFailure = secondary.diskFault?.summary
        switch ResourceRoles.failover(roleFacts(candidate), force: false, allowInconsistent: false,
                                      diskFailure: diskFailure, peerConnected: secondary.isConnected,
                                      ownDiskState: secondary.diskState) {
        case let .failure(refusal):
            trace("planned failover refused: \(refusal.message)")
        case .success(.askPeerToDemote):
            trace("planned failover: \(candidate.name) asks its primary to demote")
            driveSecondary(candidate, .requestFailover)
        case .success(.promote):
            fail("a planned failover promoted at once")
        }
    }

    /// The primary was asked to hand over (FailoverRequest): it drains (ResourceRoles.demote).
    func failoverRequested(_ node: SimNode) {
        guard let primary = node.primary else { return }
        let drained = primary.node.isDrained
        switch ResourceRoles.demote(roleFacts(node), replicating: !primary.standalone, drained: drained,
                                    peerConnected: primaryConnected(node)) {
        case let .failure(refusal):
            trace("demote refused: \(refusal.message)")
        case .success(.becomeSecondaryNow):
            trace("demote: not replicating")
        case .success(.drainThenHandOver):
            trace("planned failover: \(node.name) drains")
            drivePrimary(node, .drain)
        }
    }

    /// The drained primary hands over as PrimaryNode's `.handOver` says (the daemon's
    /// ResourceReplication.demote does the same): it stops with the link kept and flushes
    /// its disk, the demotion is recorded (role secondary, the demoted record: synced, no
    /// session), and only then is the peer told Demoted (it promotes itself) and the link
    /// closed. A crash before the record leaves it primary and the peer secondary.
    func handOver(from oldPrimary: SimNode) {
        guard primaryConnected(oldPrimary), let primary = oldPrimary.primary else { return }
        primary.handingOver = true
        drivePrimary(oldPrimary, .handOver)
    }

    /// `.recordDemotion`: the role and the record change at once (the daemon writes both
    /// synchronously before it feeds `.demotionRecorded`).
    func recordDemotion(_ oldPrimary: SimNode) {
        oldPrimary.isPrimary = false
        oldPrimary.crashedPrimary = false
        oldPrimary.sealedBitmap = nil
        oldPrimary.trackedInMemory = nil
        oldPrimary.record = oldPrimary.record.demoted()
        oldPrimary.record.generation += 1
    }

    /// The old primary stopped after a hand-over (its disk flushed, its demotion recorded,
    /// Demoted sent): it becomes secondary.
    func finishHandOver(_ oldPrimary: SimNode, session: UInt64) {
        oldPrimary.historySession = session
        startSecondary(oldPrimary, handedOver: true)
        if oldPrimary.diskFailed {
            // The resource's disk failed while it was primary: the secondary knows it.
            driveSecondary(oldPrimary, .diskFailed(SecondaryDiskFault(operation: "write", errno: EIO)))
        }
    }

    /// The answer to the secondary's failover request.
    func failoverAnswered(_ node: SimNode, demoted: Bool) {
        if demoted {
            let state = secondaryDiskState(node)
            let promotable: Bool
            if case .success = ResourceRoles.promotion(.planned, ownDiskState: state) { promotable = true } else { promotable = false }
            disconnect("planned failover", notifySecondary: !promotable)
            guard promotable else {
                // The old primary demoted, but this copy may not be promoted (it asked while
                // Inconsistent): no node is primary until the operator acts.
                plannedFailoversStranded += 1
                trace("planned failover: \(node.name) is \(state.rawValue) and refuses to promote after its peer demoted")
                events.schedule(.operatorCheck, atNs: nowNs + random.between(100_000, 2_000_000))
                return
            }
            failovers += 1
            promote(node, .planned)
        } else {
            // The old primary may have demoted with the link gone before Demoted arrived.
            events.schedule(.operatorCheck, atNs: nowNs + random.between(100_000, 2_000_000))
        }
    }

    func forcedFailover(allowInconsistent: Bool) {
        // With both nodes secondary, the operator picks the better copy.
        func rank(_ node: SimNode) -> Int {
            switch node.secondary?.diskState {
            case .upToDate?: 0
            case .consistent?, .outdated?: 1
            case .inconsistent?: 2
            default: 3
            }
        }
        let candidates = nodes.filter { $0.alive && !$0.isPrimary && $0.secondary != nil }
        guard let candidate = candidates.min(by: { rank($0) < rank($1) }), let secondary = candidate.secondary else { return }
        let step = ResourceRoles.failover(roleFacts(candidate), force: true, allowInconsistent: allowInconsistent,
                                          diskFailure: secondary.diskFault?.summary, peerConnected: secondary.isConnected,
                                          ownDiskState: secondary.diskState)
        guard case let .success(.promote(kind)) = step else {
            if case let .failure(refusal) = step { trace("forced failover refused: \(refusal.message)") }
            return
        }
        guard case let .success(promotion) = ResourceRoles.promotion(kind, ownDiskState: secondary.diskState) else {
            return trace("forced failover refused: \(candidate.name) is \(secondary.diskState.rawValue)")
        }
        failovers += 1
        let oldPrimary = nodes[1 - candidate.index]
        // A running old primary is first taken to be behind a partition, where it may keep writing
        // (Simulation+Generations): it meets the promoted node once the partition heals.
        var partition: (generations: Generations, wrote: Bool)?
        // In the seeds with a split-brain policy it runs on for real (Simulation+SplitBrain).
        let runsOn = splitBrainStarts(old: oldPrimary)
        if runsOn {
            disconnect("partition")
        } else if oldPrimary.alive && oldPrimary.isPrimary && oldPrimary.primary != nil {
            disconnect("partition")
            let wrote = generationRandom.chance(perMille: 700)
            if wrote { generationsWriteWithoutPeer(oldPrimary) }
            partition = (oldPrimary.generations, wrote)
        }
        // Fencing: the old primary is stopped (killed if it runs) and comes back as secondary.
        if !runsOn { fenceOldPrimary(oldPrimary) }
        disconnect("forced failover")
        // Decision (a): a copy staging a catch-up is promoted as Consistent/Outdated, never
        // UpToDate; the sync writes its dropped journal held are not claimed of it.
        if stagesACatchUp(candidate), secondary.diskState == .upToDate {
            return fail("\(candidate.name) is promoted as UpToDate while it stages a catch-up")
        }
        let discardsBefore = stagingDiscards
        drainSecondaryIO(candidate)
        if failure != nil { return }
        checker.startLineage(content: candidate.disk.cache,
                             keepsSyncPromises: candidate.record.synced && !promotion.inconsistent
                                 && stagingDiscards == discardsBefore)
        if runsOn {
            // The application's requests still with the old primary are the far side's now.
            beginSplitBrain(old: oldPrimary, promoted: candidate, inFlight: outstanding.map(\.request))
        }
        promote(candidate, kind, inconsistent: promotion.inconsistent)
        if let partition {
            primariesMeet(old: oldPrimary, oldGenerations: partition.generations, oldWrote: partition.wrote,
                          promoted: candidate)
        }
    }

    /// The secondary's state machine stops (a promotion): its writes and flush in flight
    /// finish first, and the records it asked for are stored.
    func drainSecondaryIO(_ node: SimNode) {
        driveSecondary(node, .stop)
        drainStagingIO(node)
        for (tag, io) in node.io.sorted(by: { $0.key < $1.key }) {
            switch io {
            case .secondaryWrite: _ = node.disk.completeWrite(tag)
            case .secondaryFlush, .secondaryDigestFlush: _ = node.disk.completeFlush(tag)
            default: continue
            }
            node.io[tag] = nil
        }
        if let last = node.recordsInFlight.last { node.record = last }
        node.recordsInFlight.removeAll()
        // Resource+Staging: the journal is settled before the role changes.
        // (A no-room commit is of part of the catch-up: that copy is Inconsistent.)
        let committed = node.record.staging?.committed == true && node.record.synced ? node.record.session : nil
        let confirmed = node.secondary?.confirmedThrough
        settleStaging(node, promoting: true)
        if let committed, failure == nil { checkPromotedAfterCommit(node, committedSession: committed, confirmedThrough: confirmed) }
    }

    private func promote(_ node: SimNode, _ kind: PromotionKind, inconsistent: Bool = false) {
        drainSecondaryIO(node)
        node.secondary = nil
        node.isPrimary = true
        node.record = node.record.promoted(inconsistent: inconsistent)
        node.record.generation += 1
        generationsPromoted(node, planned: kind == .planned)
        startPrimary(node, handedOver: kind == .planned)
    }

    /// Between two real sessions, a peer with a valid certificate (or, sometimes, another
    /// node's) connects to the secondary: with a Hello for a session of its own and then
    /// garbage, or garbage at once. The secondary must drop it and keep what it had.
    private func impostorSession(helloFirst: Bool) {
        guard let node = liveSecondary, node.secondary != nil else { return }
        impostors += 1
        disconnect("an impostor connects")
        let recordBefore = node.secondary!.record
        linkCount += 1
        link = Link(id: linkCount, primary: nil, secondary: node.index, lastToSecondaryNs: nowNs, lastToPrimaryNs: nowNs)
        if helloFirst {
            let session = random.between(1, UInt64.max - 1)
            let basis: SessionBasis
            switch random.below(3) {
            case 0: basis = .fullCopy
            case 1: basis = .assumeInSync
            default: basis = .continues(from: random.chance(perMille: 500) ? node.record.session : random.between(1, 1000))
            }
            let namesPeer = random.chance(perMille: 800)
            sendToSecondary(.hello(session: session, basis: basis, nodeName: namesPeer ? nodes[1 - node.index].name : "mallory",
                                   certificateNamesPeer: namesPeer))
        }
        sendToSecondary(.garbage)
        impostorRecords[linkCount] = recordBefore
    }

    var impostorRecords: [Int: ReplicationRecord] = [:]
    /// Answered WRITEs of the primary's session whose epoch is not yet durable on the peer.
    var answeredUnconfirmed: [(session: UInt64, epoch: Epoch, blocks: Range<Int>, answeredNs: UInt64)] = []
    var operatorCheckPending = false

    /// The session fields of two records agree (the durable epoch may advance meanwhile).
    private func sameSession(_ a: ReplicationRecord, _ b: ReplicationRecord) -> Bool {
        a.session == b.session && a.synced == b.synced && a.continuedFrom == b.continuedFrom
    }

    func diskWriteLatencyNs() -> UInt64 {
        stalled(random.chance(perMille: 100) ? random.between(200_000, 2_000_000) : random.between(10_000, 150_000))
    }

    func diskFlushLatencyNs() -> UInt64 { stalled(random.between(50_000, 1_500_000)) }

    /// A disk operation's latency, or (DiskStalls, while the workload runs) a stall of
    /// seconds; the run then settles after the stall ends.
    func stalled(_ latencyNs: UInt64) -> UInt64 {
        guard let stalls = scenario.diskStalls, nowNs <= scenario.workloadEndNs, random.chance(perMille: stalls.perMille)
        else { return latencyNs }
        let stallNs = random.between(stalls.minNs, stalls.maxNs)
        diskStalls += 1
        trace("disk stall of \(stallNs / 1_000_000) ms")
        runEndNs = max(runEndNs, nowNs + stallNs + scenario.runEndNs - scenario.workloadEndNs)
        return latencyNs + stallNs
    }

    func networkDelayNs() -> UInt64 {
        random.chance(perMille: 50) ? random.between(500_000, 3_000_000) : random.between(5_000, 200_000)
    }

    func submitWrite(_ node: SimNode, _ extent: FakeDisk.Extent, fua: Bool, io: SimNode.IO) {
        let tag = makeTag()
        node.io[tag] = io
        trace("\(node.name) write tag \(tag): \(io) \(extent.blocks)")
        node.disk.submitWrite(extent, fua: fua, tag: tag)
        if scenario.diskStalls?.timeoutNs != nil { node.ioSubmittedNs[tag] = nowNs }
        events.schedule(.writeDone(node: node.index, tag: tag, incarnation: node.incarnation), atNs: nowNs + diskWriteLatencyNs())
        if scenario.testingFault == .completesStuckWritesAfterTimeout {
            events.schedule(.writeTimedOut(node: node.index, tag: tag, incarnation: node.incarnation),
                            atNs: nowNs + SimulationFault.writeTimeoutNs)
        }
    }

    func submitFlush(_ node: SimNode, io: SimNode.IO) {
        let tag = makeTag()
        node.io[tag] = io
        trace("\(node.name) flush tag \(tag): \(io)")
        node.disk.submitFlush(tag: tag)
        if scenario.diskStalls?.timeoutNs != nil { node.ioSubmittedNs[tag] = nowNs }
        events.schedule(.flushDone(node: node.index, tag: tag, incarnation: node.incarnation), atNs: nowNs + diskFlushLatencyNs())
    }

    func blocks(offsetBytes: UInt64, lengthBytes: UInt32) -> Range<Int> {
        let first = Int(offsetBytes / SimulationScenario.blockSizeBytes)
        return first..<(first + Int(UInt64(lengthBytes) / SimulationScenario.blockSizeBytes))
    }
}
