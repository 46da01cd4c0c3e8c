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

final class Simulation {
    /// Primary → secondary on one connection.
    enum ToSecondary {
        case hello(session: UInt64, basis: SessionBasis, nodeName: String, certificateNamesPeer: Bool)
        case message(PrimaryMessage)
        case syncComplete(throughSequence: WriteSequence)
        case demoted
        case digestRequest(offsetBytes: UInt64, lengthBytes: UInt64)
        /// VerifyEnd (protocol 10): the verify or compare that asked ended.
        case verifyEnd
        /// Bytes that decode to nothing valid (an impostor's).
        case garbage
        /// A read of the secondary's volume (an application read routed to the peer, or a
        /// diskless pull: Simulation+Reads, Simulation+Diskless).
        case readRequest(WireReadRequest)
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
        /// The answer to a ReadRequest: the blocks' values (errno 0) or why not.
        case readReply(tag: UInt64, errno: Int32, values: [UInt64])
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
        /// The application reads (Simulation+Reads); a read of this node's disk ends; a read
        /// the secondary serves for its primary ends.
        case appRead
        case readDone(node: Int, incarnation: Int, read: Int)
        case peerReadDone(node: Int, incarnation: Int, link: Int, request: WireReadRequest)
        /// The operator replaces the primary's failed disk: disable, then enable (Simulation+Diskless).
        case diskReplaced(node: Int, incarnation: Int)
        /// The primary's pacer timer fires at the instant it was armed for (Simulation+Pacing).
        case pacerWake(node: Int, incarnation: Int, atNs: UInt64)
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
    /// The union's checkpoints taken, and the unions resumed from the file (after a crash).
    var unionCheckpointsTaken = 0
    var unionsResumed = 0
    var unionsResumedAfterCrash = 0
    /// Checkpoints taken before the victim's set came, and unions resumed that asked it again.
    var pendingUnionCheckpoints = 0
    var unionsResumedAskingVictim = 0
    /// The union checker's shape (Simulation+UnionCheckpoint): kill the survivor right after its
    /// writes during the union, and how often it did.
    var unionCrashAfterWrite = false
    var unionCrashesAfterWrite = 0
    /// Crash the survivor (power loss or kill -9) before the victim's set came, and how often.
    var unionCrashBeforeVictimSet: Bool?
    var unionCrashesBeforeVictimSet = 0
    /// How many of the union resyncs arm a crash of their survivor (‰; a test may raise it).
    var unionCrashPerMille: UInt64 = 500
    /// Meetings that were no split brain although the old primary had admitted a write after
    /// the cut (one submitted before it): Simulation+SplitBrain's `heal`.
    var writtenAfterCutWithoutSplitBrain = 0
    /// Writes and crashes of split-brain primaries while StandAlone, before the resolve
    /// (Simulation+SplitBrainStandAlone), the sets a restart took from the parted file, and
    /// how many of the split brains waiting for the operator get them (‰; a test may change it).
    var standAloneWrites = 0
    var standAloneCrashes = 0
    var standAloneSetsRestored = 0
    var standAloneUnionsAfterCrash = 0
    var standAlonePerMille: UInt64 = 600

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
        readRandom = SimRandom(seed: scenario.seed ^ 0x7EAD_5EED_0000_0000)
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
        if scenario.reads != nil { events.schedule(.appRead, atNs: 2000) }
        for (atNs, fault) in scenario.faults { events.schedule(.fault(fault), atNs: atNs) }
        while failure == nil, let (timeNs, event) = events.popFirst() {
            precondition(timeNs >= nowNs, "simulated time went backwards")
            guard timeNs <= runEndNs else { break }
            nowNs = timeNs
            step += 1
            if tracing { print("\(nowNs / 1000)µs #\(step) \(event)") }
            handle(event)
            if failure == nil, pacingRun != nil { checkPacingStep() }
            if failure == nil { checkInvariants() }
            if failure == nil, armedStagingFault != nil { fireArmedStagingFault() }
            if failure == nil, armedCompareFault != nil { fireArmedCompareFault() }
            if failure == nil, catchUpEndCrash != nil { fireCatchUpEndCrash() }  // Simulation+TrackedStart
            if step > 2_000_000 { fail("the run did not settle") }
        }
        if failure == nil { checkSettled() }
        if failure == nil, pacingRun != nil { checkSettledPacing() }
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

    var impostorRecords: [Int: ReplicationRecord] = [:]
    /// Answered WRITEs of the primary's session whose epoch is not yet durable on the peer.
    var answeredUnconfirmed: [(session: UInt64, epoch: Epoch, blocks: Range<Int>, answeredNs: UInt64)] = []
    var operatorCheckPending = false

    /// Application reads (Simulation+Reads): a generator of their own, the reads in flight by
    /// id, and what they did.
    var readRandom: SimRandom
    var appReads: [Int: AppRead] = [:]
    var nextRead = 0
    var readsIssued = 0
    var readsChecked = 0
    var readsServedByPeer = 0
    var readsRefused = 0
    var readsFellBack = 0
    /// Diskless (Simulation+Diskless): primaries that wrote through their peer, their disks
    /// replaced, the resyncs from the peer started and finished, and the bytes they pulled.
    var disklessEntered = 0
    var disksReplaced = 0
    /// Looks of the operator at a failed disk that found the peer lacking acknowledged writes.
    var replacementsWaited = 0
    /// Peer points a lacking primary's start named while the peer cached unflushed writes.
    var peerPointsOfLackingStarts = 0
    var localResyncsStarted = 0
    var localResyncsDone = 0
    var pulledBytes: UInt64 = 0
    /// A primary kill -9 armed for the end of each catch-up (Simulation+TrackedStart), and the
    /// crash restarts whose activity log proved nothing dirty (a catch-up of nothing).
    var catchUpEndCrash: CatchUpEndCrash?
    var catchUpsOfNothingAfterCrash = 0
    /// RPO-target pacing on a link with a rate (Simulation+Pacing); nil outside its seeds.
    lazy var pacingRun: PacingRun? = scenario.pacing.map { PacingRun(plan: $0) }
    /// Diskless stops' (and disables') drains of the peer (PrimaryNode+PeerDrain): started,
    /// done, and those that could not drain (Simulation+Diskless).
    var peerDrainsStarted = 0
    var peerDrainsDone = 0
    var peerDrainsFailed = 0
}
