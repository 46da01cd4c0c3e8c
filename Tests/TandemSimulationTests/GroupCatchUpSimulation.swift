// GroupCatchUpSimulation: a consistency group's staged catch-ups commit together (docs/groups.md,
// *Catch-up: one commit for the group*), with the secondary node killed at every phase. The
// decisions are production's: `GroupStagedCommit.next` (when the members drain, when the
// group decides) from each member's `GroupMemberCatchUp` facts, the decision's codec
// (`GroupCommitDecision.encode`/`decode`, the `<group>.group-commit` file) and its
// `committedBytes` at a restart's settlement. What a member does at each step (SecondaryNode+
// Staging and +Group: stage, drain, commit, apply) is the simulator's own, reduced to what the
// image depends on.
//
// Two members had the chain's writes 0 ..< a in place when the group went Ahead; the
// application went on writing the chain, alternating between the volumes. Each member's
// catch-up copies its missing chain writes into its journal in any order (a copy has none);
// the stream's later writes are staged after them; at its SyncComplete the catch-up is whole.
// Drained, a member holds further writes until it is in place again. The decision file is
// replaced atomically (a kill leaves the old one or the new one); a member commits only once
// the decision naming it is durable (the fault `commitsBeforeDecisionIsDurable` breaks that;
// `uncoordinated` commits each member alone, as `TANDEM_TEST_GROUP_CATCH_UP_UNCOORDINATED`
// makes the daemon do). A kill drops every journal no durable decision or commit names (the
// member's catch-up starts over from its volume) and rolls the others forward.
//
// Checked after every step: the image a kill would leave — each volume, with its journal
// applied if a durable decision or its own commit names it — holds a gap-free prefix of the
// chain; and at the end every chain write is on its volume.

import TandemCore

enum GroupCatchUpFault: String {
    /// A member commits its journal as soon as its catch-up is whole, without the group.
    case uncoordinated
    /// Members commit once the decision is written, before it is durable.
    case commitsBeforeDecisionIsDurable
}

final class GroupCatchUpSimulation {
    static let group = "sim-group"
    static let names = ["data", "log"]

    enum Phase: Equatable { case copying, whole, draining, drained, committed, inPlace }

    struct Member {
        var phase: Phase = .copying
        var session: UInt64
        /// Chain writes still to be copied into the journal (the catch-up's regions).
        var toCopy: [Int] = []
        var journal: [Int] = []
        /// Chain writes this member received while drained or committed: written once in place.
        var held: [Int] = []
        var volume: Set<Int> = []
        var volumeWrites: UInt64 = 0
        /// Its own record says its journal committed (rolled forward at a restart).
        var recordCommitted = false
    }

    let seed: UInt64
    let fault: GroupCatchUpFault?
    private var random: SimRandom
    private var members: [Member] = []
    private var coordinator = GroupStagedCommit()
    private var chainMember: [Int] = []
    private let chainLength: Int
    private var nextSession: UInt64 = 1
    /// The durable decision file, and a replacement on its way (lands or not at a kill).
    private var decisionFile: [UInt8] = []
    private var decisionInFlight: [UInt8]?
    /// Written but not yet durable (the fault acts on it).
    private var decisionWritten: GroupCommitDecision?
    private(set) var step = 0
    private(set) var kills = 0
    /// Kills by the phase each member was in (each kill counts once per member), and while
    /// the decision was on its way to the disk.
    private(set) var killsByPhase: [String: Int] = [:]
    private(set) var decisions = 0
    private(set) var rolledForward = 0
    private(set) var dropped = 0
    private(set) var failure: GroupFailure?

    init(seed: UInt64, fault: GroupCatchUpFault? = nil) {
        self.seed = seed
        self.fault = fault
        var random = SimRandom(seed: seed ^ 0x6CA7_C400_0000_0000)
        chainLength = Int(random.between(10, 80))
        let inPlace = Int(random.between(0, 10))
        for index in 0..<chainLength {
            let previous = chainMember.last ?? 1
            chainMember.append(random.chance(perMille: 700) ? 1 - previous : previous)
            _ = index
        }
        // The writes issued before the catch-up began: 0 ..< inPlace are on the volumes, the
        // rest up to `issuedAtStart` only on the primary (its bitmap).
        let issuedAtStart = min(chainLength, inPlace + Int(random.between(1, 20)))
        members = (0..<2).map { _ in Member(session: 0) }
        for index in 0..<issuedAtStart {
            if index < inPlace { members[chainMember[index]].volume.insert(index) } else { members[chainMember[index]].toCopy.append(index) }
        }
        issued = issuedAtStart
        self.random = random
        for member in 0..<2 { startCatchUp(member) }
    }

    private var issued: Int

    var scenario: String { "chain of \(chainLength) writes" + (fault.map { ", fault \($0.rawValue)" } ?? "") }

    func run() -> GroupFailure? {
        while failure == nil, step < 20_000, !done {
            step += 1
            act()
            coordinate()
            check()
        }
        if failure == nil, !done { fail("the group's catch-up did not finish in 20 000 steps") }
        return failure
    }

    private var done: Bool {
        issued == chainLength && members.allSatisfy { $0.phase == .inPlace && $0.held.isEmpty }
    }

    var digest: [UInt64] { [UInt64(step), UInt64(kills), UInt64(decisions), UInt64(rolledForward), UInt64(dropped)] }

    private func startCatchUp(_ member: Int) {
        members[member].session = nextSession
        nextSession += 1
        members[member].phase = .copying
        members[member].journal = []
        members[member].recordCommitted = false
        random.shuffle(&members[member].toCopy)
    }

    // MARK: Steps

    private func act() {
        switch random.below(100) {
        case 0..<30:
            // A copy chunk reaches a catching-up member's journal.
            let member = Int(random.below(2))
            guard members[member].phase == .copying, !members[member].toCopy.isEmpty else { break }
            members[member].journal.append(members[member].toCopy.removeFirst())
        case 30..<40:
            // SyncComplete: the catch-up is whole once every chunk is in.
            let member = Int(random.below(2))
            if members[member].phase == .copying, members[member].toCopy.isEmpty { members[member].phase = .whole }
        case 40..<60:
            issueChainWrite()
        case 60..<75:
            // A drain finishes, the decision lands, a committed member applies.
            let member = Int(random.below(2))
            if members[member].phase == .draining { members[member].phase = .drained }
            if let bytes = decisionInFlight, random.chance(perMille: 500) {
                decisionFile = bytes
                decisionInFlight = nil
            }
            if members[member].phase == .committed { apply(member) }
        case 75..<90:
            writeHeld(Int(random.below(2)))
        case 90..<92:
            guard kills < 4 else { break }
            kill()
        default:
            commitIfDecided()
        }
    }

    /// The application's next chain write reaches its member (the stream: staged, held or
    /// written in place).
    private func issueChainWrite() {
        guard issued < chainLength else { return }
        let index = issued
        issued += 1
        let member = chainMember[index]
        switch members[member].phase {
        case .copying, .whole: members[member].journal.append(index)
        case .draining, .drained, .committed, .inPlace: members[member].held.append(index)
        }
    }

    /// An in-place member writes what it holds to its volume, in order, each once every
    /// earlier chain write is on its volume (the group's barrier; GroupSimulation checks the
    /// real one).
    private func writeHeld(_ member: Int) {
        guard members[member].phase == .inPlace, let index = members[member].held.first else { return }
        guard (0..<index).allSatisfy({ members[chainMember[$0]].volume.contains($0) }) else { return }
        members[member].held.removeFirst()
        members[member].volume.insert(index)
        members[member].volumeWrites += 1
    }

    private func apply(_ member: Int) {
        for index in members[member].journal { members[member].volume.insert(index) }
        members[member].volumeWrites += UInt64(members[member].journal.count)
        members[member].journal = []
        members[member].phase = .inPlace
        members[member].recordCommitted = false
    }

    private var durableDecision: GroupCommitDecision? { GroupCommitDecision.decode(decisionFile) }

    /// A member named by the durable decision (or, with the fault, by one only written)
    /// commits: its own record says so.
    private func commitIfDecided() {
        let decision = fault == .commitsBeforeDecisionIsDurable ? (decisionWritten ?? durableDecision) : durableDecision
        // One member at a time: each commits as an event of its own.
        let member = Int(random.below(2))
        guard members[member].phase == .drained,
            decision?.committedBytes(resource: Self.names[member], stagingSession: members[member].session) == journalBytes(member)
        else { return }
        members[member].recordCommitted = true
        members[member].phase = .committed
    }

    private func journalBytes(_ member: Int) -> UInt64 { UInt64(members[member].journal.count) * 8_192 }

    /// The coordinator, as the daemon's ConsistencyGroups runs it after every member change.
    private func coordinate() {
        if fault == .uncoordinated {
            for member in 0..<2 where members[member].phase == .whole {
                members[member].recordCommitted = true
                members[member].phase = .committed
            }
            return
        }
        let facts = (0..<2).map { (name: Self.names[$0], catchUp: catchUp($0)) }
        switch coordinator.next(group: Self.group, members: facts) {
        case .wait: break
        case .drain(let names):
            for member in 0..<2 where names.contains(Self.names[member]) && members[member].phase == .whole { members[member].phase = .draining }
        case .decide(let decision):
            // Asked again while its members wait to commit: the same decision, stored again
            // (the daemon's is synchronous and tells the members at once; here the file's
            // write and each member's commit are events of their own).
            if decisionWritten != decision { decisions += 1 }
            decisionWritten = decision
            decisionInFlight = decision.encode()
        }
    }

    private func catchUp(_ member: Int) -> GroupMemberCatchUp {
        let m = members[member]
        let step: GroupMemberCatchUp.Step
        switch m.phase {
        case .copying: step = .staging
        case .whole: step = .whole
        case .draining: step = .draining
        case .drained: step = .drained
        case .committed: step = .committing
        case .inPlace: step = .inPlace
        }
        return GroupMemberCatchUp(step: step, stagingSession: m.session, journalBytes: journalBytes(member), consistent: true,
                                  holdsImageBeforeCatchUp: [.copying, .whole, .draining, .drained].contains(m.phase),
                                  volumeWrites: m.volumeWrites, streaming: m.phase == .inPlace, failed: false)
    }

    /// Whether a kill now rolls `member`'s journal forward.
    private func rollsForward(_ member: Int) -> Bool {
        guard !members[member].journal.isEmpty || members[member].recordCommitted else { return false }
        if members[member].recordCommitted { return true }
        guard [.drained, .committed].contains(members[member].phase) else { return false }
        return durableDecision?.committedBytes(resource: Self.names[member], stagingSession: members[member].session) == journalBytes(member)
    }

    /// kill -9 of the secondary node: the decision on its way lands or not; each member
    /// settles (rolls forward or drops its journal and catches up again from its volume);
    /// writes it held are re-sent by the primary.
    private func kill() {
        kills += 1
        for member in members { killsByPhase["\(member.phase)", default: 0] += 1 }
        if decisionInFlight != nil { killsByPhase["decision on its way", default: 0] += 1 }
        if let bytes = decisionInFlight, random.chance(perMille: 500) { decisionFile = bytes }
        decisionInFlight = nil
        decisionWritten = nil
        coordinator = GroupStagedCommit()
        for member in 0..<2 {
            if rollsForward(member) {
                rolledForward += 1
                apply(member)
                continue
            }
            guard members[member].phase != .inPlace else { continue }
            dropped += 1
            // Its catch-up starts over: every chain write of it not on its volume.
            members[member].toCopy = (0..<issued).filter { chainMember[$0] == member && !members[member].volume.contains($0) }
            members[member].held = []
            startCatchUp(member)
        }
    }

    // MARK: The check

    private func check() {
        guard failure == nil else { return }
        var image = Set<Int>()
        for member in 0..<2 {
            image.formUnion(members[member].volume)
            if rollsForward(member) { image.formUnion(members[member].journal) }
        }
        guard let newest = image.max() else { return }
        if let gap = (0..<newest).first(where: { !image.contains($0) }) {
            let newestName = Self.names[chainMember[newest]], gapName = Self.names[chainMember[gap]]
            let decision = durableDecision.map { "durable for sessions \($0.members.map(\.stagingSession))" } ?? "none durable"
            fail("a kill now would leave the group's volumes with chain write \(newest) (volume '\(newestName)') but not write "
                + "\(gap) (volume '\(gapName)'): phases \(members.map { "\($0.phase)" }.joined(separator: "/")), decision \(decision)")
        }
    }

    private func fail(_ message: String) {
        guard failure == nil else { return }
        failure = GroupFailure(seed: seed, step: step, message: message, scenario: scenario)
    }
}
