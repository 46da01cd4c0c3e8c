import Glibc
import TandemCore

// The scenario's application reads and the replacement of a failed primary disk (drawn from
// streams of their own, so that every other draw of a seed stays as it was), and the shape of
// the diskless primary's seeded-fault checks.

/// Application reads: one every `gapMinNs`–`gapMaxNs` of the workload, of 1–4 blocks, routed by
/// the primary's `read_balancing` (Simulation+Reads).
struct ReadWorkload: CustomStringConvertible {
    var policy: ReadBalancing
    var gapMinNs: UInt64
    var gapMaxNs: UInt64
    var description: String { "reads every \(gapMinNs / 1000)–\(gapMaxNs / 1000) µs (read_balancing \(policy.rawValue))" }
}

extension SimulationScenario {
    /// The switch of application reads in the default seeds (Simulation+Reads).
    static let readsEnabled = true

    /// Reads in 40 % of the seeds, each `read_balancing` alike; a failed primary disk replaced
    /// 0.3–5 ms after it failed in 70 %.
    mutating func drawReadsAndDiskReplacement() {
        var draws = SimRandom(seed: seed ^ 0x7EAD_D15C_0000_0000)
        let reading = draws.chance(perMille: 400)
        let policy = ReadBalancing.allCases[Int(draws.below(UInt64(ReadBalancing.allCases.count)))]
        let gapMaxNs = draws.between(20, 200) * 1_000
        reads = Self.readsEnabled && reading ? ReadWorkload(policy: policy, gapMinNs: 1_000, gapMaxNs: gapMaxNs) : nil
        let replaced = draws.chance(perMille: 700)
        let afterNs = draws.between(300, 5_000) * 1_000
        diskReplacedAfterNs = replaced ? afterNs : nil
    }

    /// SeededFaultShape.disklessPrimary: a sync pair in sync from the start (`initial_sync:
    /// none`, `fencing: suspend-io`) on 4–8 blocks, 120–160 requests and a read every 1–15 µs;
    /// the primary's disk fails in the first quarter of the workload (EIO or ENOSPC), the link
    /// drops or the secondary crashes once or twice after it, and the disk is replaced 1–4 ms
    /// after it failed.
    mutating func shapeDiskless(_ draws: inout SimRandom) {
        mode = .sync
        primaryConfig.mode = .sync
        fencingDontCare = false
        adaptive = nil
        periodNs = nil
        initialSync = .none
        blockCount = Int(draws.between(4, 8))
        operationCount = Int(draws.between(120, 160))
        requestsOutstandingMax = Int(draws.between(2, 8))
        workloadEndNs = UInt64(operationCount) * 60_000
        runEndNs = workloadEndNs + 150_000_000
        let policy = ReadBalancing.allCases[Int(draws.below(UInt64(ReadBalancing.allCases.count)))]
        reads = ReadWorkload(policy: policy, gapMinNs: 1_000, gapMaxNs: draws.between(5, 15) * 1_000)
        diskReplacedAfterNs = draws.between(1_000, 4_000) * 1_000
        let failsAtNs = draws.between(workloadEndNs / 16, workloadEndNs / 4)
        faults.append((failsAtNs, .diskErrors(.primary, errno: draws.chance(perMille: 500) ? EIO : ENOSPC)))
        for _ in 0..<draws.between(1, 2) {
            let atNs = draws.between(failsAtNs, workloadEndNs)
            let fault: Fault = switch draws.below(3) {
            case 0: .disconnect
            case 1: .crash(.secondary, powerLoss: false)
            default: .crash(.secondary, powerLoss: true)
            }
            faults.append((atNs, fault))
        }
    }
}
