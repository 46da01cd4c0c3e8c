import Glibc
import TandemCore

// SimulationScenario: everything a seed decides before the run starts — mode, drain policy,
// limits, initial sync, workload size, disk errors and the fault plan. The seed alone
// reproduces a run.

/// Slow and stuck I/O: each disk operation (write, flush, copy read, record write) of either
/// node stalls with `perMille` chance for `minNs...maxNs` before it completes, so completions
/// come far out of order. Stalls start only while the workload runs; the run's settling time
/// starts after the last one ends. `timeoutNs` (half the stalling seeds): the nodes'
/// `disk_timeout_ms`: a write or flush outstanding longer fails its node's disk, as
/// production decides it (`DiskTimeout`, checked on every tick; Simulation+DiskTimeout).
struct DiskStalls: CustomStringConvertible {
    var perMille: UInt64
    var minNs: UInt64
    var maxNs: UInt64
    var timeoutNs: UInt64? = nil
    var description: String {
        "stalls \(perMille)‰ of \(minNs / 1_000_000)–\(maxNs / 1_000_000) ms"
            + (timeoutNs.map { ", disk_timeout_ms \($0 / 1_000_000)" } ?? "")
    }
}

/// A crash or forced failover that strikes when the secondary's staged catch-up reaches
/// `phase` (Simulation+Staging): staging into the journal, committing it, applying it.
struct StagingFault: CustomStringConvertible {
    enum Phase: CaseIterable { case journal, commit, apply }
    enum Action { case crash(powerLoss: Bool), forcedFailover }
    var phase: Phase
    var action: Action
    var description: String {
        let what = switch action {
        case let .crash(powerLoss): powerLoss ? "secondary power loss" : "secondary kill -9"
        case .forcedFailover: "forced failover"
        }
        return "\(what) mid-\(phase)"
    }
}

struct SimulationScenario: CustomStringConvertible {
    enum Role: CustomStringConvertible {
        case primary, secondary
        var description: String { self == .primary ? "primary" : "secondary" }
    }

    enum Fault: CustomStringConvertible {
        case disconnect
        /// The node in `role` loses power (`powerLoss`) or its process is killed (kill -9);
        /// it restarts from its persisted record.
        case crash(Role, powerLoss: Bool)
        /// The operator asks the secondary to take over: the primary drains and demotes.
        case plannedFailover
        /// The primary is gone (killed now if it is not) and the secondary is promoted;
        /// `allowInconsistent`: even an Inconsistent copy.
        case forcedFailover(allowInconsistent: Bool)
        /// A peer with a valid certificate opens a session to the secondary and then sends
        /// garbage (`helloFirst`: after a Hello for a new session).
        case impostor(helloFirst: Bool)
        /// The node in `role` gets disk errors from now on.
        case diskErrors(Role, errno: Int32)
        /// The primary's daemon is stopped (SIGTERM: replication stops, flushes and records the
        /// stop, sealing its bitmap if the peer lacks writes) and started again.
        case cleanRestart
        /// The operator starts an online verify on the primary; refused while the pair is not
        /// in sync, it is asked again a little later (`attempts` times).
        case verify(attempts: Int)
        /// The next frame it fits on one direction of the connection (`toSecondary`: primary →
        /// secondary) is changed on the wire (Simulation+Wire): its receiver must refuse it.
        case wire(WireTamper, toSecondary: Bool)
        /// The connection is cut both ways; only one side (`primarySees`: the primary) learns
        /// it now, the other at its link liveness timeout (Simulation+Partition).
        case asymmetricPartition(primarySees: Bool)
        /// Armed now, strikes when the secondary's staged catch-up is in the fault's phase.
        case whileStaging(StagingFault)
        /// Armed now, strikes while a crash restart's digest compare runs (Simulation+CompareCrash).
        case whileComparing(CompareFault)

        var description: String {
            switch self {
            case .disconnect: "disconnect"
            case let .crash(role, powerLoss): "\(role) \(powerLoss ? "power loss" : "kill -9")"
            case .plannedFailover: "planned failover"
            case let .forcedFailover(allowInconsistent): "forced failover\(allowInconsistent ? " allowing Inconsistent" : "")"
            case .cleanRestart: "primary clean restart"
            case .verify: "online verify"
            case let .impostor(helloFirst): helloFirst ? "impostor session" : "garbage connection"
            case let .diskErrors(role, errno): "\(role) disk \(errno == ENOSPC ? "ENOSPC" : "EIO")"
            case let .wire(tamper, toSecondary): "\(tamper) \(toSecondary ? "to the secondary" : "to the primary")"
            case let .asymmetricPartition(primarySees): "partition seen by the \(primarySees ? "primary" : "secondary") only"
            case let .whileStaging(fault): "\(fault)"
            case let .whileComparing(fault): "\(fault)"
            }
        }
    }

    static let blockSizeBytes: UInt64 = 4096

    // The fields a seeded-fault check shapes to its fault are `var` (SeededFaultSurvey.swift).
    let seed: UInt64
    var mode: ReplicationAckMode
    var diskDrain: DiskDrain
    var initialSync: InitialSync
    var blockCount: Int
    var copyChunkBlocks: Int
    /// Copy chunks the primary holds at once (reads in flight and chunks not yet released).
    var copyBuffers: Int
    var operationCount: Int
    var requestsOutstandingMax: Int
    /// Application writes may overlap writes still in flight (the core serialises them).
    let overlappingWrites: Bool
    var primaryConfig: ReplicationPrimaryConfig
    var secondaryConfig: ReplicationSecondaryConfig
    let testingFault: SimulationFault?
    /// When the workload stops issuing requests; faults happen before it.
    var workloadEndNs: UInt64
    /// When the run ends; the time in between lets the pair settle.
    var runEndNs: UInt64
    var faults: [(atNs: UInt64, fault: Fault)]

    /// Multi-block writes may land in part (FakeDisk.tornWrites), in every seed.
    let tornWrites: Bool
    /// Slow and stuck I/O, in some seeds.
    var diskStalls: DiskStalls?
    /// Sync with `fencing: dont-care`: the primary goes Ahead while its peer is away.
    var fencingDontCare: Bool
    /// The primary's activity log (its `lastTransaction` is set at each start), in most seeds.
    var activityLog: ActivityLogSettings?
    /// `compression: lz4`: Data payloads go LZ4-compressed where it pays, in half the seeds.
    let compression: Bool
    /// `ping_interval_ms` and `ping_timeout_ms` (shortened to milliseconds of simulated time,
    /// so that a partition heals within the run), in the seeds with asymmetric partitions.
    let liveness: LinkLivenessConfig?
    /// The chance that an asymmetric cut is followed by a forced failover while the link is
    /// half up (and, in half of those, by a second one).
    let promotionRacePerMille: UInt64
    /// `staging_bytes`: the secondaries stage consistent catch-ups in a journal this large
    /// (0: off), in half the seeds (Simulation+Staging).
    let stagingBytesMax: UInt64
    /// `mode: adaptive` (the stream async, the controller admitting each write sync or async),
    /// in a quarter of the async seeds (Simulation+Adaptive).
    var adaptive: AdaptiveModeController.Settings?
    /// `mode: periodic` (`period_s`, shortened to 0.3–3 ms of simulated time so that a run
    /// holds many cycles): the stream async between the cycles' catch-ups, in a fifth of the
    /// async seeds without adaptive mode (Simulation+Periodic).
    var periodNs: UInt64?
    /// `after_split_brain`, in the seeds where a forced failover's running old primary keeps
    /// running and writing behind a partition, both primaries side by side, until the two meet
    /// as a split brain (Simulation+SplitBrain); nil: it is fenced at once, as before.
    let splitBrainPolicy: AfterSplitBrain?
    /// Application reads (Simulation+Reads) and their `read_balancing`, in 40 % of the seeds;
    /// nil: the workload only writes.
    var reads: ReadWorkload?
    /// The operator replaces a failed primary disk this long after it failed (disable, a new
    /// disk, enable: Simulation+Diskless), in 70 % of the seeds; nil: the disk stays failed.
    var diskReplacedAfterNs: UInt64?

    /// Overlapping writes need the core's overlap rule (PrimaryNode serialises them).
    static let overlapSupported = true
    /// The switches of the fault classes torn writes and stuck I/O (off: not simulated).
    static let tornWritesEnabled = true
    static let diskStallsEnabled = true
    /// The switch of the wire faults (Simulation+Wire); off, every seed runs the steps it ran
    /// before the link carried bytes.
    static let wireFaultsEnabled = true
    /// The switch of asymmetric partitions and promotion races (Simulation+Partition).
    static let asymmetricPartitionsEnabled = true
    /// The switch of the staging journal (Simulation+Staging).
    static let stagingEnabled = true
    /// The switch of adaptive mode (Simulation+Adaptive).
    static let adaptiveEnabled = true
    /// The switch of periodic mode (Simulation+Periodic).
    static let periodicEnabled = true
    /// The switch of split brains run for real in the default seeds (Simulation+SplitBrain);
    /// TANDEM_SIM_SPLIT_BRAIN=off leaves them to SplitBrainNodeSimulationTests alone.
    static let splitBrainEnabled = getenv("TANDEM_SIM_SPLIT_BRAIN").map { String(cString: $0) != "off" } ?? true
    /// The switch of the crash restart's digest compare (ChecksumResync.plan in
    /// `trackedAfterCrash`), on as production runs it; TANDEM_SIM_CHECKSUM=off leaves it to
    /// ChecksumSimulationTests (docs/replication.md, *Checksum resync of the extents*).
    static let checksumCompareEnabled = getenv("TANDEM_SIM_CHECKSUM").map { String(cString: $0) != "off" } ?? true
    /// The activity log's batching rule (ActivityLogBatching): production's, or the one
    /// TANDEM_SIM_AL_BATCHING names (`per-turn`, `across-turns`).
    static let activityLogBatching: ActivityLogBatching = {
        guard let text = getenv("TANDEM_SIM_AL_BATCHING").map({ String(cString: $0) }) else { return .production }
        guard let rule = ActivityLogBatching(rawValue: text) else {
            preconditionFailure("TANDEM_SIM_AL_BATCHING=\(text): expected per-turn or across-turns")
        }
        return rule
    }()
    /// Whether this scenario's crash restarts compare by digest (default: the switch above).
    var checksumCompare = SimulationScenario.checksumCompareEnabled
    /// `checksumCheckpointBytes` of the primaries (PrimaryNodeConfig): 1–4 blocks, so that the
    /// small simulated compares write their found-the-same pages as they go.
    var checksumCheckpointBytes: UInt64 = 0
    /// The chance (‰) that the application sends a FLUSH right before a clean restart's stop
    /// (Simulation+StopFlush).
    var stopFlushPerMille: UInt64 = 500
    /// `rpo_target_ms` on a link whose rate changes, and a writer in bursts (SimulationScenario+
    /// Pacing, Simulation+Pacing), in the seeds SeededFaultShape.pacing shapes; nil: no pacing.
    var pacing: PacingPlan? = nil

    /// `primaryRestart`: add a primary kill -9 (the restart-fault test needs one in every run;
    /// its control run has it too). Default: when `testingFault` is the restart fault.
    /// `tornWrites`, `stalls`: switch those fault classes on or off (default: the switches
    /// above; stalls in 5 % of seeds). `diskTimeout`: whether stalling seeds run with a disk
    /// timeout (default: half of them).
    /// `wireFaults`: whether the run has wire faults (default: 30 % of seeds; the payload
    /// checksum fault: always, payload flips only).
    init(seed: UInt64, testingFault: SimulationFault? = nil, overlapping: Bool? = nil, primaryRestart: Bool? = nil,
         tornWrites: Bool? = nil, stalls: Bool? = nil, diskTimeout: Bool? = nil, wireFaults: Bool? = nil,
         partitions: Bool? = nil, staging: Bool? = nil, stagingFault: StagingFault? = nil, adaptive: Bool? = nil,
         periodic: Bool? = nil, splitBrain: Bool? = nil, splitBrainPolicy: AfterSplitBrain? = nil,
         forcedFailovers: Int = 0) {
        // Drawn from a stream of their own, so that the classes leave the rest of a seed's
        // scenario as it was.
        var ioRandom = SimRandom(seed: seed ^ 0x5710_7ED1_0000_0000)
        self.tornWrites = tornWrites ?? Self.tornWritesEnabled
        let stalling = ioRandom.chance(perMille: 50)
        var stallPlan = (stalls ?? (Self.diskStallsEnabled && stalling))
            ? DiskStalls(perMille: ioRandom.between(20, 100), minNs: 500_000_000, maxNs: 3_000_000_000) : nil
        // A stream of its own again: which stalling seeds run with a disk timeout, and its
        // bound (within the stalls' range, so that some stalls outlast it and some do not).
        var timeoutRandom = SimRandom(seed: seed ^ 0xD15C_7173_0000_0000)
        if stallPlan != nil, diskTimeout ?? timeoutRandom.chance(perMille: 500) {
            stallPlan?.timeoutNs = timeoutRandom.between(1_000, 2_000) * 1_000_000
        }
        diskStalls = stallPlan
        // Also a stream of its own: half the sync seeds run with `fencing: dont-care`.
        var fencingRandom = SimRandom(seed: seed ^ 0xFE4C_1A60_0000_0000)
        let dontCare = fencingRandom.chance(perMille: 500)
        // Also a stream of its own: an activity log of 1- or 2-block extents in 80 % of the
        // seeds, a few more extents than the largest write (8 blocks) needs, so they are evicted.
        var logRandom = SimRandom(seed: seed ^ 0xAC71_1709_0000_0000)
        let logged = logRandom.chance(perMille: 800)
        let extentBytes = Self.blockSizeBytes << logRandom.between(0, 1)
        let writeBytesMax = 8 * Self.blockSizeBytes
        let extentsNeeded = ActivityLogSettings.extentsPerWrite(writeBytesMax: writeBytesMax, extentBytes: extentBytes)
        let logFault: ActivityLogTestingFault? = switch testingFault {
        case .activityLogReleasesAtLocalCompletion: .releasesAtLocalCompletion
        case .activityLogEvictsBeforePagesPersisted: .evictsBeforePagesPersisted
        case .activityLogSkipsEvictionFlush: .skipsEvictionFlush
        case .activityLogCountsFlushWhenAsked: .countsFlushWhenAsked
        case .activityLogFormsFromDurableSetOnly: .formsFromDurableSetOnly
        default: nil
        }
        activityLog = logged || logFault != nil
            ? ActivityLogSettings(
                extents: extentsNeeded + Int(logRandom.between(0, 3)), extentBytes: extentBytes,
                writeBytesMax: writeBytesMax, lastTransaction: 0, testingFault: logFault,
                batching: Self.activityLogBatching)
            : nil
        var random = SimRandom(seed: seed ^ 0x5EED_5CE7_A110_0000)
        self.seed = seed
        self.testingFault = testingFault
        mode = random.chance(perMille: 500) ? .sync : .async
        fencingDontCare = mode == .sync && dontCare
        diskDrain = random.chance(perMille: 250) ? .flush : .drain
        initialSync = random.chance(perMille: 300) ? .full : .none
        blockCount = Int(random.between(4, 24))
        copyChunkBlocks = Int(random.between(1, 4))
        // From a stream of its own, so that adding it left every other draw as it was.
        var copyRandom = SimRandom(seed: seed ^ 0xC0B0_FFE5_0000_0000)
        copyBuffers = Int(copyRandom.between(1, 8))
        operationCount = Int(random.between(20, 160))
        requestsOutstandingMax = Int(random.between(1, 8))
        let overlapChance = random.chance(perMille: 500)
        overlappingWrites = overlapping ?? (Self.overlapSupported && overlapChance)
        let bufferBlocks = random.between(4, 24)
        let writesInFlightMax = Int(random.between(3, 32))
        primaryConfig = ReplicationPrimaryConfig(
            mode: mode, bufferBytesMax: bufferBlocks * Self.blockSizeBytes,
            writesInFlightMax: writesInFlightMax, requestsWaitingMax: 16, flushesPendingMax: 16,
            testingFault: testingFault == .switchToAsyncReleasesSyncWrites ? .switchToAsyncReleasesSyncWrites : nil)
        var secondaryFault: SecondaryTestingFault?
        if case let .secondary(fault) = testingFault { secondaryFault = fault }
        if testingFault == .claimsUpToDateBeforeConfirmed { secondaryFault = .claimsUpToDateBeforeConfirmed }
        secondaryConfig = ReplicationSecondaryConfig(
            diskDrain: diskDrain, queuedBytesMax: bufferBlocks * Self.blockSizeBytes,
            queuedWritesMax: writesInFlightMax, writesInFlightMax: Int(random.between(1, 8)),
            groupCommitIntervalNs: random.between(200_000, 3_000_000),
            groupCommitBytesMax: random.between(2, 16) * Self.blockSizeBytes,
            testingFault: secondaryFault)
        workloadEndNs = UInt64(operationCount) * 60_000
        runEndNs = workloadEndNs + 150_000_000
        var faults: [(atNs: UInt64, fault: Fault)] = []
        let faultCount = random.chance(perMille: 200) ? random.between(4, 8) : random.below(4)
        for _ in 0..<faultCount {
            let fault: Fault
            switch random.below(100) {
            case 0..<20: fault = .disconnect
            case 20..<32: fault = .crash(.secondary, powerLoss: true)
            case 32..<40: fault = .crash(.secondary, powerLoss: false)
            case 40..<50: fault = .crash(.primary, powerLoss: true)
            case 50..<58: fault = .crash(.primary, powerLoss: false)
            case 58..<68: fault = .plannedFailover
            case 68..<76: fault = .forcedFailover(allowInconsistent: random.chance(perMille: 300))
            case 76..<84: fault = .impostor(helloFirst: random.chance(perMille: 700))
            case 84..<92: fault = .diskErrors(.secondary, errno: random.chance(perMille: 500) ? EIO : ENOSPC)
            default: fault = .diskErrors(.primary, errno: random.chance(perMille: 500) ? EIO : ENOSPC)
            }
            faults.append((random.below(workloadEndNs), fault))
        }
        // The seeded-fault tests need the situation their fault is about in every run.
        if primaryRestart ?? (testingFault == .restartForgetsUnconfirmedWrites
            || testingFault == .activityLogReleasesAtLocalCompletion) {
            faults.append((random.below(workloadEndNs), .crash(.primary, powerLoss: false)))
        }
        // From a stream of its own (the other faults stay as they were): a clean restart of
        // the primary in 30 % of the seeds, the way a sealed bitmap is made and used.
        var restartRandom = SimRandom(seed: seed ^ 0xC1EA_4E57_0000_0000)
        if restartRandom.chance(perMille: 300) { faults.append((restartRandom.below(workloadEndNs), .cleanRestart)) }
        // And an online verify in 40 % of the seeds (another stream of its own).
        var verifyRandom = SimRandom(seed: seed ^ 0x5E41_F100_0000_0000)
        if verifyRandom.chance(perMille: 400) { faults.append((verifyRandom.below(workloadEndNs), .verify(attempts: 50))) }
        // Bytes on the wire (Simulation+Wire), from a stream of their own: compression in half
        // the seeds, wire faults in 30 %.
        var wireRandom = SimRandom(seed: seed ^ 0x3149_E5CE_0000_0000)
        compression = wireRandom.chance(perMille: 500)
        let payloadOnly = testingFault == .payloadChecksumSkipped
        let wireFaulty = wireRandom.chance(perMille: 300)
        if wireFaults ?? (payloadOnly || (Self.wireFaultsEnabled && wireFaulty)) {
            for _ in 0..<wireRandom.between(1, payloadOnly ? 8 : 4) {
                let tamper = payloadOnly ? .flipPayloadBit : WireTamper.allCases[Int(wireRandom.below(UInt64(WireTamper.allCases.count)))]
                let toSecondary = tamper == .flipPayloadBit || tamper == .duplicateFrame || wireRandom.chance(perMille: 500)
                faults.append((wireRandom.below(workloadEndNs), .wire(tamper, toSecondary: toSecondary)))
            }
        }
        // Asymmetric partitions, from a stream of their own: 1–3 in 20 % of the seeds, a
        // promotion race after half of them.
        var partitionRandom = SimRandom(seed: seed ^ 0xA5E4_5EED_0000_0000)
        let partitioned = partitionRandom.chance(perMille: 200)
        if partitions ?? (testingFault == .livenessNeverChecked || (Self.asymmetricPartitionsEnabled && partitioned)) {
            let intervalNs = partitionRandom.between(2, 5) * 1_000_000
            liveness = LinkLivenessConfig(pingIntervalNs: intervalNs, timeoutNs: intervalNs * partitionRandom.between(2, 6))
            promotionRacePerMille = 500
            for _ in 0..<partitionRandom.between(1, 3) {
                faults.append((partitionRandom.below(workloadEndNs), .asymmetricPartition(primarySees: partitionRandom.chance(perMille: 500))))
            }
        } else {
            liveness = nil
            promotionRacePerMille = 0
        }
        // The staging journal, from a stream of its own: in half the seeds, 1 to 24 records of
        // one block (fewer of larger writes: some catch-ups outgrow it), and in half of those a
        // crash or forced failover timed to a phase of a staged catch-up.
        var stagingDraws = SimRandom(seed: seed ^ 0x57A6_5CE7_0000_0000)
        let stagedSeed = stagingDraws.chance(perMille: 500)
        let stagingFaultNeeded = testingFault == .stagedWritesReachTheVolume || testingFault == .promotionDropsCommittedJournal
            || testingFault == .commitSkipsJournalSync
        let staged = staging ?? (stagingFaultNeeded || (Self.stagingEnabled && stagedSeed))
        stagingBytesMax = staged ? stagingDraws.between(1, 24) * 8192 : 0
        let phase = StagingFault.Phase.allCases[Int(stagingDraws.below(3))]
        let action: StagingFault.Action = switch stagingDraws.below(3) {
        case 0: .crash(powerLoss: true)
        case 1: .crash(powerLoss: false)
        default: .forcedFailover
        }
        let faultAtNs = stagingDraws.below(workloadEndNs)
        if staged, let chosen = stagingFault ?? (stagingDraws.chance(perMille: 500) ? StagingFault(phase: phase, action: action) : nil) {
            faults.append((faultAtNs, .whileStaging(chosen)))
        }
        // Adaptive mode, from a stream of its own: a latency bound of 0.1–1 ms and a hysteresis
        // of 0.2–3 ms (the simulated link's deliveries take 5 µs to 3 ms).
        var adaptiveDraws = SimRandom(seed: seed ^ 0xADA9_7173_0000_0000)
        let adaptiveSeed = adaptiveDraws.chance(perMille: 250)
        let settings = AdaptiveModeController.Settings(latencyBoundNs: adaptiveDraws.between(100_000, 1_000_000),
                                                       switchAfterNs: adaptiveDraws.between(200_000, 3_000_000))
        self.adaptive = mode == .async && (adaptive ?? (Self.adaptiveEnabled && adaptiveSeed)) ? settings : nil
        // Periodic mode, from a stream of its own: a fifth of the async seeds that are not
        // adaptive, with a period of 0.3–3 ms (the workload lasts 1.2–9.6 ms, the settling 150).
        var periodicDraws = SimRandom(seed: seed ^ 0x9E41_0D1C_0000_0000)
        let periodicSeed = periodicDraws.chance(perMille: 200)
        let period = periodicDraws.between(300, 3_000) * 1_000
        let periodicFaultNeeded = testingFault == .cycleCopiesStaleRegions
        periodNs = mode == .async && self.adaptive == nil
            && (periodic ?? (periodicFaultNeeded || (Self.periodicEnabled && periodicSeed))) ? period : nil
        // Split brains for real, from a stream of their own: in 40 % of the seeds not in
        // periodic mode, each policy alike; `forcedFailovers` adds forced failovers (a class run).
        var splitDraws = SimRandom(seed: seed ^ 0x5B1D_5CE7_0000_0000)
        let splitSeed = splitDraws.chance(perMille: 400)
        let policy = splitBrainPolicy ?? AfterSplitBrain.allCases[Int(splitDraws.below(UInt64(AfterSplitBrain.allCases.count)))]
        let splitFaultNeeded = testingFault == .splitBrainUnionOmitsVictimChanges || testingFault == .splitBrainResolvedWithoutVerdict
        self.splitBrainPolicy = periodNs == nil && (splitBrain ?? (splitFaultNeeded || (Self.splitBrainEnabled && splitSeed)))
            ? policy : nil
        for _ in 0..<forcedFailovers {
            faults.append((splitDraws.below(workloadEndNs), .forcedFailover(allowInconsistent: false)))
        }
        // A second crash during a crash restart's digest compare, from a stream of its own: in
        // 30 % of the seeds with an activity log, a primary kill -9 and, armed with it, a crash
        // of either node once the restart's compare has compared a region.
        var compareDraws = SimRandom(seed: seed ^ 0xC0F1_C4A5_0000_0000)
        checksumCheckpointBytes = compareDraws.between(1, 4) * Self.blockSizeBytes
        if activityLog != nil && compareDraws.chance(perMille: 300) {
            let atNs = compareDraws.below(workloadEndNs)
            let role: Role = compareDraws.chance(perMille: 650) ? .primary : .secondary
            faults.append((atNs, .crash(.primary, powerLoss: false)))
            faults.append((atNs, .whileComparing(CompareFault(role: role, powerLoss: compareDraws.chance(perMille: 300)))))
        }
        self.faults = faults
        drawReadsAndDiskReplacement()
    }

    var description: String {
        let faultList = faults.map { "\($0.fault)@\($0.atNs / 1000)µs" }.joined(separator: ", ")
        return "\(mode) mode, disk_drain \(diskDrain), initial_sync \(initialSync), \(blockCount) blocks (copy chunks of \(copyChunkBlocks), \(copyBuffers) at once), "
            + "\(operationCount) requests\(overlappingWrites ? " (overlapping)" : ""), "
            + "buffer \(primaryConfig.bufferBytesMax / Self.blockSizeBytes) blocks, faults [\(faultList)]"
            + (fencingDontCare ? ", fencing dont-care" : "") + (tornWrites ? ", torn writes" : "") + (diskStalls.map { ", \($0)" } ?? "")
            + (activityLog.map { ", activity log of \($0.extents) × \($0.extentBytes / Self.blockSizeBytes) blocks" } ?? "")
            + (activityLog.flatMap { $0.batching == .production ? nil : ", \($0.batching.rawValue) batching" } ?? "")
            + (compression ? ", lz4" : "")
            + (liveness.map { ", ping_timeout_ms \($0.timeoutNs / 1_000_000)" } ?? "")
            + (stagingBytesMax > 0 ? ", staging_bytes \(stagingBytesMax / 1024) KiB" : "")
            + (adaptive.map { ", adaptive (\($0.latencyBoundNs / 1000) µs, switch after \($0.switchAfterNs / 1000) µs)" } ?? "")
            + (periodNs.map { ", periodic every \($0 / 1000) µs" } ?? "")
            + (splitBrainPolicy.map { ", after_split_brain \($0.rawValue)" } ?? "")
            + (reads.map { ", \($0)" } ?? "") + (diskReplacedAfterNs.map { ", a failed primary disk replaced after \($0 / 1000) µs" } ?? "")
            + (testingFault.map { ", seeded fault: \($0)" } ?? "")
            + (pacing.map { ", \($0)" } ?? "")
    }
}
