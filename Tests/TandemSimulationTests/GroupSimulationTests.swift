// The consistency-group model's seeded runs (GroupSimulation, GroupCatchUpSimulation), their
// seeded faults and their replay. TANDEM_SIM_GROUP_SEEDS sets how many seeds (default 300);
// TANDEM_SIM_GROUP_SEED runs one.

import Glibc
import TandemCore
import Testing

@Suite struct GroupSimulationTests {
    static var seeds: [UInt64] {
        if let text = getenv("TANDEM_SIM_GROUP_SEED"), let seed = UInt64(String(cString: text)) { return [seed] }
        let count = getenv("TANDEM_SIM_GROUP_SEEDS").flatMap { UInt64(String(cString: $0)) } ?? 300
        return Array(1...max(1, count))
    }

    @Test func theGroupsSecondariesHoldAPrefixOfTheChainUnderAsync() {
        var steps = 0, kills = 0, drops = 0, closes = 0
        for seed in Self.seeds {
            let simulation = GroupSimulation(seed: seed)
            let failure = simulation.run()
            #expect(failure == nil, "\(failure!)")
            if failure != nil { break }
            steps += simulation.step
            kills += simulation.kills
            drops += simulation.drops
            closes += simulation.groupCloses
        }
        print("group: \(Self.seeds.count) seeds, \(steps) steps, \(kills) secondary kills, \(drops) link drops, \(closes) group epoch closes")
    }

    @Test func aGroupSeedReplaysExactly() {
        for seed: UInt64 in [2, 31, 250] {
            let first = GroupSimulation(seed: seed), second = GroupSimulation(seed: seed)
            _ = first.run()
            _ = second.run()
            #expect(first.digest == second.digest)
        }
    }

    private func caught(_ fault: GroupFault) -> GroupFailure? {
        for seed in UInt64(1)...200 {
            guard let failure = GroupSimulation(seed: seed, fault: fault).run() else { continue }
            #expect(failure.message.contains("not a prefix of the chain"), "an unexpected failure: \(failure)")
            let control = GroupSimulation(seed: seed).run()
            #expect(control == nil, "the control without the fault failed too: \(control!)")
            return failure
        }
        return nil
    }

    /// Members on the secondary node that issue writes past the group's barrier.
    @Test func checkerCatchesASecondaryNodeWithoutTheGroupBarrier() {
        #expect(caught(.barrierIgnored) != nil, "the checker never noticed a missing group barrier in 200 seeds")
    }

    /// Members on the primary node that do not share the epoch sequence.
    @Test func checkerCatchesPrimariesThatDoNotShareTheGroupsEpochs() {
        #expect(caught(.epochsNotShared) != nil, "the checker never noticed unshared epochs in 200 seeds")
    }
}

/// The group's staged catch-up commit (GroupCatchUpSimulation).
extension GroupSimulationTests {
    @Test func theGroupsCatchUpsCommitTogetherThroughKills() {
        var steps = 0, kills = 0, decisions = 0, rolled = 0, dropped = 0
        var byPhase: [String: Int] = [:]
        for seed in Self.seeds {
            let simulation = GroupCatchUpSimulation(seed: seed)
            let failure = simulation.run()
            #expect(failure == nil, "\(failure!)")
            if failure != nil { break }
            steps += simulation.step
            kills += simulation.kills
            decisions += simulation.decisions
            rolled += simulation.rolledForward
            dropped += simulation.dropped
            byPhase.merge(simulation.killsByPhase, uniquingKeysWith: +)
        }
        print("group catch-up: \(Self.seeds.count) seeds, \(steps) steps, \(decisions) group decisions, \(kills) kills: "
            + "\(rolled) journals rolled forward, \(dropped) dropped; member phases at kills \(byPhase.sorted { $0.key < $1.key })")
        if Self.seeds.count >= 100 {
            #expect(rolled > 0 && dropped > 0 && decisions > 0)
            // A kill met every phase of the commit.
            for phase in ["copying", "whole", "draining", "drained", "committed", "inPlace", "decision on its way"] {
                #expect(byPhase[phase, default: 0] > 0, "no kill while a member was \(phase)")
            }
        }
    }

    @Test func aGroupCatchUpSeedReplaysExactly() {
        for seed: UInt64 in [4, 60, 199] {
            let first = GroupCatchUpSimulation(seed: seed), second = GroupCatchUpSimulation(seed: seed)
            _ = first.run()
            _ = second.run()
            #expect(first.digest == second.digest)
        }
    }

    private func caught(_ fault: GroupCatchUpFault) -> GroupFailure? {
        for seed in UInt64(1)...200 {
            guard let failure = GroupCatchUpSimulation(seed: seed, fault: fault).run() else { continue }
            #expect(failure.message.contains("a kill now would leave"), "an unexpected failure: \(failure)")
            let control = GroupCatchUpSimulation(seed: seed).run()
            #expect(control == nil, "the control without the fault failed too: \(control!)")
            return failure
        }
        return nil
    }

    /// Members that commit their catch-ups one by one, as single resources do.
    @Test func checkerCatchesCatchUpsCommittedWithoutTheGroup() {
        #expect(caught(.uncoordinated) != nil, "the checker never noticed uncoordinated commits in 200 seeds")
    }

    /// Members that commit on a decision that is written but not yet durable.
    @Test func checkerCatchesACommitBeforeTheGroupsDecisionIsDurable() {
        #expect(caught(.commitsBeforeDecisionIsDurable) != nil, "the checker never noticed a commit ahead of the durable decision in 200 seeds")
    }
}
