// The split-brain resolution model's seeded runs (SplitBrainSimulation), its seeded faults and
// its replay. TANDEM_SIM_SPLIT_BRAIN_SEEDS sets how many seeds (default 600);
// TANDEM_SIM_SPLIT_BRAIN_SEED runs one.

import Glibc
import TandemCore
import Testing

@Suite struct SplitBrainSimulationTests {
    static var seeds: [UInt64] {
        if let text = getenv("TANDEM_SIM_SPLIT_BRAIN_SEED"), let seed = UInt64(String(cString: text)) { return [seed] }
        let count = getenv("TANDEM_SIM_SPLIT_BRAIN_SEEDS").flatMap { UInt64(String(cString: $0)) } ?? 600
        return Array(1...max(1, count))
    }

    @Test func aResolvedSplitBrainLeavesTheSurvivorsDataOnBoth() {
        var policies: [String: Int] = [:]
        var byOperator = 0, unions = 0, fullCopies = 0, victimCrashes = 0, survivorCrashes = 0, steps = 0
        var moved: UInt64 = 0, union: UInt64 = 0
        for seed in Self.seeds {
            let simulation = SplitBrainSimulation(seed: seed)
            let failure = simulation.run()
            #expect(failure == nil, "\(failure!)")
            if failure != nil { break }
            policies[simulation.policy.rawValue, default: 0] += 1
            steps += simulation.step
            if simulation.operatorResolved { byOperator += 1 }
            if simulation.plan == .union { unions += 1 } else { fullCopies += 1 }
            victimCrashes += simulation.victimCrashes
            survivorCrashes += simulation.survivorCrashes
            if simulation.plan == .union {
                moved += simulation.movedBytes
                union += simulation.unionBytes
            }
        }
        print("split brain: \(Self.seeds.count) seeds, \(steps) steps, policies \(policies.sorted { $0.key < $1.key }), "
            + "\(byOperator) resolved by the operator, \(unions) union resyncs (moved \(moved) bytes for unions of \(union)), "
            + "\(fullCopies) full copies, \(victimCrashes) victim and \(survivorCrashes) survivor kills")
        if Self.seeds.count >= 100 {
            #expect(byOperator > 0 && unions > 0 && fullCopies > 0 && victimCrashes > 0 && survivorCrashes > 0)
        }
    }

    @Test func aSplitBrainSeedReplaysExactly() {
        for seed: UInt64 in [5, 77, 300] {
            let first = SplitBrainSimulation(seed: seed), second = SplitBrainSimulation(seed: seed)
            _ = first.run()
            _ = second.run()
            #expect(first.digest == second.digest)
        }
    }

    private func caught(_ fault: SplitBrainFault, policy: AfterSplitBrain? = nil,
                        _ expected: (SplitBrainFailure) -> Bool) -> SplitBrainFailure? {
        for seed in UInt64(1)...400 {
            guard let failure = SplitBrainSimulation(seed: seed, policy: policy, fault: fault).run() else { continue }
            #expect(expected(failure), "an unexpected failure: \(failure)")
            let control = SplitBrainSimulation(seed: seed, policy: policy).run()
            #expect(control == nil, "the control without the fault failed too: \(control!)")
            return failure
        }
        return nil
    }

    /// A resync of the survivor's changes alone leaves the victim's own changes in place.
    @Test func checkerCatchesAResyncOfTheSurvivorsChangesAlone() {
        let failure = caught(.resyncsSurvivorChangesOnly) { $0.message.contains("differs from the survivor") }
        #expect(failure != nil, "the checker never noticed a resync without the victim's changes in 400 seeds")
    }

    /// A side that decides with the facts swapped: the verdicts stop mirroring each other.
    @Test func checkerCatchesVerdictsThatDoNotMirror() {
        let failure = caught(.verdictWithSwappedFacts, policy: .discardLeastChanges) { $0.message.contains("guarantee 4") }
        #expect(failure != nil, "the checker never noticed verdicts that do not mirror in 400 seeds")
    }
}
