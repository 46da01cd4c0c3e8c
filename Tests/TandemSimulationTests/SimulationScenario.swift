import TandemCore

// SimulationScenario: everything a seed decides before the run starts — mode, drain policy,
// limits, workload size and the fault plan. The seed alone reproduces a run.

struct SimulationScenario: CustomStringConvertible {
    enum Fault: CustomStringConvertible {
        case disconnect
        case secondaryPowerLoss
        case secondaryCrash
        case primaryDeath

        var description: String {
            switch self {
            case .disconnect: "disconnect"
            case .secondaryPowerLoss: "secondary power loss"
            case .secondaryCrash: "secondary kill -9"
            case .primaryDeath: "primary death"
            }
        }
    }

    static let blockSizeBytes: UInt64 = 4096

    let seed: UInt64
    let mode: ReplicationAckMode
    let diskDrain: DiskDrain
    let blockCount: Int
    let operationCount: Int
    let requestsOutstandingMax: Int
    let primaryConfig: ReplicationPrimaryConfig
    let secondaryConfig: ReplicationSecondaryConfig
    /// When the workload stops issuing requests; faults happen before it.
    let workloadEndNs: UInt64
    /// When the run ends; the time in between lets the pair settle.
    let runEndNs: UInt64
    let faults: [(atNs: UInt64, fault: Fault)]

    init(seed: UInt64, testingFault: SecondaryTestingFault? = nil) {
        var random = SimRandom(seed: seed ^ 0x5EED_5CE7_A110_0000)
        self.seed = seed
        mode = random.chance(perMille: 500) ? .sync : .async
        diskDrain = random.chance(perMille: 250) ? .flush : .drain
        blockCount = Int(random.between(4, 24))
        operationCount = Int(random.between(20, 160))
        requestsOutstandingMax = Int(random.between(1, 8))
        let bufferBlocks = random.between(3, 24)
        let writesInFlightMax = Int(random.between(3, 32))
        primaryConfig = ReplicationPrimaryConfig(
            mode: mode, bufferBytesMax: bufferBlocks * Self.blockSizeBytes,
            writesInFlightMax: writesInFlightMax, requestsWaitingMax: 16, flushesPendingMax: 16)
        secondaryConfig = ReplicationSecondaryConfig(
            mode: mode, diskDrain: diskDrain, queuedBytesMax: bufferBlocks * Self.blockSizeBytes,
            queuedWritesMax: writesInFlightMax, writesInFlightMax: Int(random.between(1, 8)),
            groupCommitIntervalNs: random.between(200_000, 3_000_000),
            groupCommitBytesMax: random.between(2, 16) * Self.blockSizeBytes,
            testingFault: testingFault)
        workloadEndNs = UInt64(operationCount) * 60_000
        runEndNs = workloadEndNs + 100_000_000
        var faults: [(atNs: UInt64, fault: Fault)] = []
        for _ in 0..<(random.chance(perMille: 200) ? random.between(4, 8) : random.below(4)) {
            let fault: Fault
            switch random.below(10) {
            case 0..<4: fault = .disconnect
            case 4..<7: fault = .secondaryPowerLoss
            case 7..<9: fault = .secondaryCrash
            default: fault = .primaryDeath
            }
            faults.append((random.below(workloadEndNs), fault))
        }
        self.faults = faults
    }

    var description: String {
        let faultList = faults.map { "\($0.fault)@\($0.atNs / 1000)µs" }.joined(separator: ", ")
        return "\(mode) mode, disk_drain \(diskDrain), \(blockCount) blocks, \(operationCount) requests, "
            + "buffer \(primaryConfig.bufferBytesMax / Self.blockSizeBytes) blocks, faults [\(faultList)]"
    }
}
