// GroupSimulation: a consistency group of two resources (issue 16 §3, docs/groups.md) under
// async replication, seeded. Each member runs production's stream machines
// (`ReplicationPrimary` on the primary node, `ReplicationSecondary` on the secondary node);
// the group's decisions are production's too: the primary node's shared epoch sequence
// (`GroupEpochClock`, `closeGroupEpoch`: what the daemon's ConsistencyGroups does with a
// member's `.groupEpochClosed`) and the secondary node's barrier
// (`ConsistencyGroup.issueLimit` over the members' completed epochs, fed as
// `.groupIssueLimit`, as SecondaryReplicator+Group does). The glue is re-implemented here.
//
// The application is a dependent-write chain: write k + 1 is issued only once write k was
// acknowledged, and it goes to the other volume most of the time. Every chain write has a
// block of its own, so which writes a volume holds is plain. Each member has its own link
// (random delays, ordered), which drops now and then; the secondary node is killed (kill -9:
// its volumes keep every completed write, each write in flight lands or not) and restarts
// from its recorded durable epochs, and the primaries re-send what it lacks.
//
// Checked after every step: the chain writes the two secondary volumes hold, plus those in
// flight on their disks (a kill lands any of them), are a gap-free prefix of the chain.
// Not modelled: a primary crash (a new session: a full copy or a catch-up), power loss (the
// restarted copy is Inconsistent until its re-send completes, so no image is promised then).

import TandemCore

struct GroupFailure: CustomStringConvertible {
    let seed: UInt64
    let step: Int
    let message: String
    let scenario: String
    var description: String { "group seed \(seed) step \(step): \(message)\n  \(scenario)\n  replay: TANDEM_SIM_GROUP_SEED=\(seed)" }
}

/// A deliberately wrong group driver, only for proving that the checker fails.
enum GroupFault: String {
    /// The secondary node's members issue writes without the group's barrier.
    case barrierIgnored
    /// The primary node's members do not share the epoch sequence (a close stays one member's).
    case epochsNotShared
}

final class GroupSimulation {
    static let groupID = ConsistencyGroup.id(ofName: "sim-group")
    static let blockBytes: UInt64 = 4_096

    enum Event {
        case issueNext
        case primaryWriteDone(member: Int, sequence: WriteSequence)
        case primaryFlushDone(member: Int)
        case toSecondary(member: Int, link: UInt64, PrimaryMessage)
        case toPrimary(member: Int, link: UInt64, SecondaryMessage)
        case secondaryWriteDone(member: Int, life: UInt64, sequence: WriteSequence)
        case secondaryFlushDone(member: Int, life: UInt64)
        case secondaryRecordDone(member: Int, life: UInt64, Epoch)
        case tick
        case linkDrop(member: Int)
        case reconnect(member: Int)
        case killSecondary
    }

    let seed: UInt64
    let fault: GroupFault?
    private var random: SimRandom
    private var queue = EventQueue<Event>()
    private(set) var nowNs: UInt64 = 0
    private(set) var step = 0
    private(set) var failure: GroupFailure?

    private var primaries: [ReplicationPrimary]
    private var clock = GroupEpochClock()
    private var secondaries: [ReplicationSecondary]
    private let secondaryConfig: ReplicationSecondaryConfig
    /// Per member: the link's id (0: down), and the newest delivery time each way (ordered).
    private var links: [UInt64] = [0, 0]
    private var nextLink: UInt64 = 1
    private var lastDeliveryNs: [[UInt64]] = [[0, 0], [0, 0]]
    /// The secondary node's incarnation: completions of a killed one are dropped.
    private var life: UInt64 = 1
    private var recordedEpoch: [Epoch] = [0, 0]

    // The chain and the volumes.
    private let chainLength: Int
    private var chainMember: [Int] = []
    private var issued = 0
    private var acknowledged = 0
    /// Per member: request → chain index, sequence → chain index.
    private var chainOfSequence: [[WriteSequence: Int]] = [[:], [:]]
    /// Per member: the chain writes its secondary volume holds, and those on its disk now.
    private var landed: [Set<Int>] = [[], []]
    private var onDisk: [[WriteSequence: Int]] = [[:], [:]]
    private(set) var kills = 0
    private(set) var drops = 0
    private(set) var groupCloses = 0
    private var ticking = true

    init(seed: UInt64, fault: GroupFault? = nil) {
        self.seed = seed
        self.fault = fault
        var random = SimRandom(seed: seed ^ 0x6C0B_0000_0000_0000)
        chainLength = Int(random.between(20, 160))
        var primaryConfig = ReplicationPrimaryConfig(mode: .async, bufferBytesMax: 1 << 20, writesInFlightMax: 256)
        primaryConfig.groupID = Self.groupID
        var secondaryConfig = ReplicationSecondaryConfig(groupCommitIntervalNs: random.between(50_000, 2_000_000))
        secondaryConfig.groupID = Self.groupID
        self.secondaryConfig = secondaryConfig
        primaries = [ReplicationPrimary(config: primaryConfig), ReplicationPrimary(config: primaryConfig)]
        secondaries = [ReplicationSecondary(config: secondaryConfig), ReplicationSecondary(config: secondaryConfig)]
        self.random = random
    }

    var scenario: String {
        "chain of \(chainLength) writes, group commit \(secondaryConfig.groupCommitIntervalNs / 1_000) µs" + (fault.map { ", fault \($0.rawValue)" } ?? "")
    }

    func run() -> GroupFailure? {
        for member in 0..<2 { connect(member) }
        barrier()
        queue.schedule(.issueNext, atNs: 0)
        queue.schedule(.tick, atNs: 100_000)
        for _ in 0..<random.between(0, 3) { queue.schedule(.killSecondary, atNs: random.between(100_000, 3_000_000)) }
        for _ in 0..<random.between(0, 3) { queue.schedule(.linkDrop(member: Int(random.below(2))), atNs: random.between(100_000, 3_000_000)) }
        while let (time, event) = queue.popFirst(), failure == nil, step < 200_000 {
            nowNs = time
            step += 1
            handle(event)
            check()
        }
        if failure == nil, acknowledged < chainLength { fail("the chain stalled at \(acknowledged) of \(chainLength) writes") }
        return failure
    }

    var digest: [UInt64] {
        [UInt64(step), nowNs, UInt64(acknowledged), UInt64(kills), UInt64(drops), UInt64(groupCloses),
         UInt64(landed[0].count), UInt64(landed[1].count)]
    }

    // MARK: Events

    private func handle(_ event: Event) {
        switch event {
        case .issueNext: issueNext()
        case let .primaryWriteDone(member, sequence): primary(member, .localWriteCompleted(sequence: sequence))
        case let .primaryFlushDone(member): primary(member, .localFlushCompleted)
        case let .toSecondary(member, link, message):
            guard links[member] == link else { return }
            secondary(member, .message(message))
        case let .toPrimary(member, link, message):
            guard links[member] == link else { return }
            primary(member, .peerMessage(message))
        case let .secondaryWriteDone(member, life, sequence):
            guard life == self.life, let index = onDisk[member].removeValue(forKey: sequence) else { return }
            landed[member].insert(index)
            secondary(member, .writeCompleted(sequence: sequence))
        case let .secondaryFlushDone(member, life):
            guard life == self.life else { return }
            secondary(member, .flushCompleted)
        case let .secondaryRecordDone(member, life, epoch):
            guard life == self.life else { return }
            recordedEpoch[member] = epoch
            secondary(member, .durableEpochRecorded(epoch))
        case .tick:
            for member in 0..<2 { secondary(member, .tick) }
            if ticking { queue.schedule(.tick, atNs: nowNs + 100_000) }
        case let .linkDrop(member):
            guard links[member] != 0 else { return }
            drops += 1
            disconnect(member)
            queue.schedule(.reconnect(member: member), atNs: nowNs + random.between(10_000, 500_000))
        case let .reconnect(member):
            guard links[member] == 0 else { return }
            connect(member)
        case .killSecondary:
            killSecondary()
        }
    }

    private func issueNext() {
        guard issued < chainLength, issued == acknowledged else { return }
        let previous = chainMember.last ?? 1
        let member = random.chance(perMille: 700) ? 1 - previous : previous
        chainMember.append(member)
        let index = issued
        issued += 1
        // The chain's blocks: write k at block k of its volume (each a block of its own).
        primary(member, .writeSubmitted(request: RequestID(index), offsetBytes: UInt64(index) * Self.blockBytes,
                                        lengthBytes: UInt32(Self.blockBytes), fua: false))
    }

    // MARK: The machines and their actions

    private func primary(_ member: Int, _ event: PrimaryEvent) {
        var actions: [PrimaryAction] = []
        primaries[member].handle(event, nowNs: nowNs, into: &actions)
        perform(primary: member, actions)
    }

    private func perform(primary member: Int, _ actions: [PrimaryAction]) {
        for action in actions {
            switch action {
            case let .submitLocalWrite(write):
                chainOfSequence[member][write.sequence] = Int(write.request)
                queue.schedule(.primaryWriteDone(member: member, sequence: write.sequence), atNs: nowNs + random.between(5_000, 200_000))
            case .submitLocalFlush:
                queue.schedule(.primaryFlushDone(member: member), atNs: nowNs + random.between(5_000, 300_000))
            case let .send(message):
                send(member, toSecondary: true) { .toSecondary(member: member, link: $0, message) }
            case .acknowledgeWrite(let request):
                precondition(Int(request) == acknowledged, "the chain's writes are acknowledged in order")
                acknowledged += 1
                queue.schedule(.issueNext, atNs: nowNs + random.between(0, 50_000))
            case .acknowledgeFlush, .writesBlocked, .writesUnblocked:
                break
            case .protocolViolation(let reason):
                fail("member \(member)'s primary refused its peer: \(reason)")
            case let .groupEpochClosed(epoch):
                guard fault != .epochsNotShared, let through = clock.memberClosed(epoch) else { break }
                groupCloses += 1
                let other = 1 - member
                var more: [PrimaryAction] = []
                primaries[other].closeGroupEpoch(through: through, into: &more)
                perform(primary: other, more)
            }
        }
    }

    private func secondary(_ member: Int, _ event: SecondaryEvent) {
        var actions: [SecondaryAction] = []
        secondaries[member].handle(event, nowNs: nowNs, into: &actions)
        perform(secondary: member, actions)
        barrier()
    }

    private func perform(secondary member: Int, _ actions: [SecondaryAction]) {
        for action in actions {
            switch action {
            case let .submitWrite(write):
                // The payload is the chain write the primary admitted under this sequence.
                guard let index = chainOfSequence[member][write.sequence] else {
                    fail("member \(member)'s secondary wrote sequence \(write.sequence), which its primary never admitted")
                    return
                }
                onDisk[member][write.sequence] = index
                queue.schedule(.secondaryWriteDone(member: member, life: life, sequence: write.sequence), atNs: nowNs + random.between(5_000, 400_000))
            case .submitFlush:
                queue.schedule(.secondaryFlushDone(member: member, life: life), atNs: nowNs + random.between(5_000, 300_000))
            case let .recordDurableEpoch(epoch):
                queue.schedule(.secondaryRecordDone(member: member, life: life, epoch), atNs: nowNs + random.between(5_000, 100_000))
            case let .send(message):
                send(member, toSecondary: false) { .toPrimary(member: member, link: $0, message) }
            case .protocolViolation(let reason):
                fail("member \(member)'s secondary refused its primary: \(reason)")
            }
        }
    }

    /// The secondary node's group barrier: every member may issue one epoch past the lowest
    /// completed one (fed only when it changes, as the daemon does).
    private func barrier() {
        let limit = fault == .barrierIgnored ? Epoch.max : ConsistencyGroup.issueLimit(completedThrough: secondaries.map(\.completedThroughEpoch))
        for member in 0..<2 where secondaries[member].groupIssueLimit != limit {
            var actions: [SecondaryAction] = []
            secondaries[member].handle(.groupIssueLimit(limit), nowNs: nowNs, into: &actions)
            perform(secondary: member, actions)
        }
    }

    private func send(_ member: Int, toSecondary: Bool, _ event: (UInt64) -> Event) {
        guard links[member] != 0 else { return }
        let direction = toSecondary ? 0 : 1
        let slow = random.chance(perMille: 30)
        let at = max(lastDeliveryNs[member][direction], nowNs + (slow ? random.between(100_000, 1_000_000) : random.between(2_000, 60_000)))
        lastDeliveryNs[member][direction] = at
        queue.schedule(event(links[member]), atNs: at)
    }

    private func connect(_ member: Int) {
        links[member] = nextLink
        nextLink += 1
        primary(member, .connectionUp)
        secondary(member, .connectionUp)
    }

    private func disconnect(_ member: Int) {
        guard links[member] != 0 else { return }
        links[member] = 0
        primary(member, .connectionDown)
        secondary(member, .connectionDown)
    }

    /// kill -9 of the secondary node: its volumes keep what completed; each write on a disk
    /// lands or not; both members restart from their recorded epochs and their primaries
    /// re-send the rest once the links are back.
    private func killSecondary() {
        kills += 1
        for member in 0..<2 {
            disconnect(member)
            for (_, index) in onDisk[member].sorted(by: { $0.key < $1.key }) where random.chance(perMille: 500) {
                landed[member].insert(index)
            }
            onDisk[member] = [:]
        }
        life += 1
        secondaries = (0..<2).map { ReplicationSecondary(config: secondaryConfig, durableThroughEpoch: recordedEpoch[$0], restarted: true) }
        barrier()
        for member in 0..<2 { queue.schedule(.reconnect(member: member), atNs: nowNs + random.between(10_000, 300_000)) }
    }

    // MARK: The check

    private func check() {
        guard failure == nil else { return }
        if issued == chainLength, acknowledged == chainLength, secondaries.allSatisfy(\.isIdle),
            landed[0].count + landed[1].count == chainLength {
            ticking = false
        }
        var present = Set<Int>()
        for member in 0..<2 {
            present.formUnion(landed[member])
            present.formUnion(onDisk[member].values)
        }
        guard let newest = present.max() else { return }
        for index in 0..<newest where !landed[chainMember[index]].contains(index) {
            let newestWhere = landed[chainMember[newest]].contains(newest) ? "holds" : "has on its disk"
            fail("the group's secondaries are not a prefix of the chain: volume \(chainMember[newest]) \(newestWhere) chain write "
                + "\(newest), but volume \(chainMember[index]) lacks write \(index)")
            return
        }
    }

    private func fail(_ message: String) {
        guard failure == nil else { return }
        failure = GroupFailure(seed: seed, step: step, message: message, scenario: scenario)
    }
}
