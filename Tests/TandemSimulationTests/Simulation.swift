import Glibc
import TandemCore

// Simulation: one seeded run of a primary and a secondary state machine against fake disks,
// a fake network (one ordered stream per connection, random delays, disconnects) and a
// simulated clock, under an application workload and the scenario's faults. After every
// event it checks the guarantees; the first violation ends the run.

struct SimulationFailure: Error, CustomStringConvertible {
    var seed: UInt64
    var scenario: String
    var step: Int
    var timeNs: UInt64
    var message: String

    var description: String {
        "simulation seed \(seed) failed at step \(step) (t=\(timeNs / 1000)µs): \(message)\n"
            + "  scenario: \(scenario)\n"
            + "  replay: TANDEM_SIM_SEED=\(seed) swift test --filter TandemSimulationTests"
    }
}

final class Simulation {
    enum Event {
        case appIssue
        case appDependentWrite
        case primaryWriteDone(WriteSequence)
        case primaryFlushDone
        case secondaryWriteDone(WriteSequence, incarnation: Int)
        case secondaryFlushDone(incarnation: Int)
        case secondaryRecordDone(Epoch, incarnation: Int)
        case toSecondary(PrimaryMessage, connection: Int)
        case toPrimary(SecondaryMessage, connection: Int)
        case reconnect
        case secondaryRestart
        case tick
        case fault(SimulationScenario.Fault)
    }

    enum AppRequest {
        case write(blocks: Range<Int>, fua: Bool, sequence: WriteSequence?)
        case flush(snapshot: [WriteSequence])
    }

    let scenario: SimulationScenario
    var random: SimRandom
    var nowNs: UInt64 = 0
    var events = EventQueue<Event>()
    var step = 0
    var failure: String?

    var primary: ReplicationPrimary
    var secondary: ReplicationSecondary
    let primaryDisk: FakeDisk
    let secondaryDisk: FakeDisk
    var primaryAlive = true
    var secondaryAlive = true
    var secondaryIncarnation = 0
    /// The secondary's persisted metadata: its recorded durable epoch.
    var secondaryRecordedEpoch: Epoch = 0
    var resendCompletedSinceRestart = true
    var secondaryWasConsistent = true

    var connection = 0
    var connected = false
    var lastToSecondaryNs: UInt64 = 0
    var lastToPrimaryNs: UInt64 = 0

    var checker: GuaranteeChecker
    var rpo: RPOReference
    var requests: [RequestID: AppRequest] = [:]
    var outstanding: [(request: RequestID, blocks: Range<Int>)] = []
    var nextRequest: RequestID = 1
    var requestsIssued = 0
    /// TANDEM_SIM_TRACE=1 prints every event and action of a run (use with TANDEM_SIM_SEED).
    let tracing = getenv("TANDEM_SIM_TRACE") != nil
    var primaryActions: [PrimaryAction] = []
    var secondaryActions: [SecondaryAction] = []

    init(scenario: SimulationScenario) {
        self.scenario = scenario
        random = SimRandom(seed: scenario.seed)
        primary = ReplicationPrimary(config: scenario.primaryConfig)
        secondary = ReplicationSecondary(config: scenario.secondaryConfig)
        primaryDisk = FakeDisk(blockCount: scenario.blockCount)
        secondaryDisk = FakeDisk(blockCount: scenario.blockCount)
        checker = GuaranteeChecker(mode: scenario.mode, blockCount: scenario.blockCount)
        rpo = RPOReference()
    }

    func run() -> SimulationFailure? {
        events.schedule(.reconnect, atNs: 0)
        events.schedule(.appIssue, atNs: 1000)
        events.schedule(.tick, atNs: 100_000)
        for (atNs, fault) in scenario.faults { events.schedule(.fault(fault), atNs: atNs) }
        while failure == nil, let (timeNs, event) = events.popFirst() {
            precondition(timeNs >= nowNs, "simulated time went backwards")
            guard timeNs <= scenario.runEndNs else { break }
            nowNs = timeNs
            step += 1
            if tracing { print("\(nowNs / 1000)µs #\(step) \(event)") }
            handle(event)
            if failure == nil { checkInvariants() }
            if step > 2_000_000 { fail("the run did not settle") }
        }
        if failure == nil { checkSettled() }
        guard let failure else { return nil }
        return SimulationFailure(
            seed: scenario.seed, scenario: scenario.description, step: step, timeNs: nowNs,
            message: failure)
    }

    func fail(_ message: String) {
        if failure == nil { failure = message }
    }

    // MARK: Events

    private func handle(_ event: Event) {
        switch event {
        case .appIssue: issueRequest(dependent: false)
        case .appDependentWrite: issueRequest(dependent: true)
        case let .primaryWriteDone(sequence):
            guard primaryAlive else { return }
            primaryDisk.completeWrite(sequence)
            drivePrimary(.localWriteCompleted(sequence: sequence))
        case .primaryFlushDone:
            guard primaryAlive else { return }
            primaryDisk.completeFlush()
            drivePrimary(.localFlushCompleted)
        case let .secondaryWriteDone(sequence, incarnation):
            guard secondaryAlive, incarnation == secondaryIncarnation else { return }
            secondaryDisk.completeWrite(sequence)
            driveSecondary(.writeCompleted(sequence: sequence))
        case let .secondaryFlushDone(incarnation):
            guard secondaryAlive, incarnation == secondaryIncarnation else { return }
            secondaryDisk.completeFlush()
            driveSecondary(.flushCompleted)
        case let .secondaryRecordDone(epoch, incarnation):
            guard secondaryAlive, incarnation == secondaryIncarnation else { return }
            secondaryRecordedEpoch = epoch
            driveSecondary(.durableEpochRecorded(epoch))
        case let .toSecondary(message, connection):
            guard connected, connection == self.connection, secondaryAlive else { return }
            if case .resendComplete = message { resendCompletedSinceRestart = true }
            driveSecondary(.message(message))
        case let .toPrimary(message, connection):
            guard connected, connection == self.connection, primaryAlive else { return }
            switch message {
            case let .hello(epoch, _), let .durableThroughEpoch(epoch): rpo.confirm(through: epoch)
            case .dataAck: break
            }
            drivePrimary(.peerMessage(message))
        case .reconnect: reconnect()
        case .secondaryRestart: restartSecondary()
        case .tick:
            if primaryAlive { drivePrimary(.tick) }
            if secondaryAlive { driveSecondary(.tick) }
            events.schedule(.tick, atNs: nowNs + random.between(50_000, 500_000))
        case let .fault(fault): inject(fault)
        }
    }

    private func inject(_ fault: SimulationScenario.Fault) {
        switch fault {
        case .disconnect:
            disconnect()
        case .secondaryPowerLoss, .secondaryCrash:
            guard secondaryAlive else { return }
            disconnect()
            secondaryAlive = false
            secondaryIncarnation += 1
            if case .secondaryPowerLoss = fault {
                secondaryDisk.powerLoss(&random)
            } else {
                secondaryDisk.processCrash(&random)
            }
            events.schedule(.secondaryRestart, atNs: nowNs + random.between(100_000, 5_000_000))
        case .primaryDeath:
            guard primaryAlive else { return }
            disconnect()
            primaryAlive = false
        }
    }

    private func restartSecondary() {
        secondary = ReplicationSecondary(
            config: scenario.secondaryConfig, durableThroughEpoch: secondaryRecordedEpoch,
            restarted: true)
        secondaryAlive = true
        resendCompletedSinceRestart = false
        secondaryWasConsistent = false
        if secondary.isConsistent { fail("a restarted secondary claims to be consistent") }
        // disk_drain: flush never has two epochs unflushed, so what survived a power loss is
        // still a prefix: a forced promotion right now would expose a consistent volume.
        if scenario.diskDrain == .flush, let problem = checker.prefixViolation(secondaryDisk.cache) {
            fail("disk_drain flush, after the secondary's restart: \(problem)")
        }
        events.schedule(.reconnect, atNs: nowNs + random.between(10_000, 1_000_000))
    }

    private func disconnect() {
        guard connected else { return }
        connected = false
        if primaryAlive { drivePrimary(.connectionDown) }
        if secondaryAlive { driveSecondary(.connectionDown) }
        events.schedule(.reconnect, atNs: nowNs + random.between(10_000, 2_000_000))
    }

    private func reconnect() {
        guard !connected, primaryAlive, secondaryAlive else { return }
        connection += 1
        connected = true
        lastToSecondaryNs = nowNs
        lastToPrimaryNs = nowNs
        drivePrimary(.connectionUp)
        driveSecondary(.connectionUp)
    }

    // MARK: State machines

    func drivePrimary(_ event: PrimaryEvent) {
        precondition(primaryAlive)
        primaryActions.removeAll(keepingCapacity: true)
        primary.handle(event, nowNs: nowNs, into: &primaryActions)
        for action in primaryActions {
            if tracing { print("    primary: \(action)") }
            perform(action)
        }
    }

    func driveSecondary(_ event: SecondaryEvent) {
        precondition(secondaryAlive)
        secondaryActions.removeAll(keepingCapacity: true)
        secondary.handle(event, nowNs: nowNs, into: &secondaryActions)
        for action in secondaryActions {
            if tracing { print("    secondary: \(action)") }
            perform(action)
        }
    }

    private func blocks(offsetBytes: UInt64, lengthBytes: UInt32) -> Range<Int> {
        let first = Int(offsetBytes / SimulationScenario.blockSizeBytes)
        return first..<(first + Int(UInt64(lengthBytes) / SimulationScenario.blockSizeBytes))
    }

    private func perform(_ action: PrimaryAction) {
        switch action {
        case let .submitLocalWrite(write):
            let range = blocks(offsetBytes: write.offsetBytes, lengthBytes: write.lengthBytes)
            if let problem = checker.recordAdmission(write, blocks: range) { fail(problem) }
            if case let .write(blocks, fua, _) = requests[write.request] {
                requests[write.request] = .write(blocks: blocks, fua: fua, sequence: write.sequence)
            }
            rpo.admitted(write)
            primaryDisk.submitWrite(
                FakeDisk.Extent(sequence: write.sequence, firstBlock: range.lowerBound, blockCount: range.count),
                fua: write.fua)
            events.schedule(.primaryWriteDone(write.sequence), atNs: nowNs + diskWriteLatencyNs())
        case .submitLocalFlush:
            primaryDisk.submitFlush()
            events.schedule(.primaryFlushDone, atNs: nowNs + diskFlushLatencyNs())
        case let .send(message):
            guard connected else { return }
            lastToSecondaryNs = max(lastToSecondaryNs, nowNs + networkDelayNs())
            events.schedule(.toSecondary(message, connection: connection), atNs: lastToSecondaryNs)
        case let .acknowledgeWrite(request):
            acknowledged(request)
        case let .acknowledgeFlush(request):
            acknowledged(request)
        case .writesBlocked, .writesUnblocked:
            break
        case let .protocolViolation(reason):
            fail("primary reports a protocol violation: \(reason)")
        }
    }

    private func perform(_ action: SecondaryAction) {
        switch action {
        case let .submitWrite(write):
            let range = blocks(offsetBytes: write.offsetBytes, lengthBytes: write.lengthBytes)
            secondaryDisk.submitWrite(
                FakeDisk.Extent(sequence: write.sequence, firstBlock: range.lowerBound, blockCount: range.count),
                fua: false)
            events.schedule(
                .secondaryWriteDone(write.sequence, incarnation: secondaryIncarnation),
                atNs: nowNs + diskWriteLatencyNs())
        case .submitFlush:
            secondaryDisk.submitFlush()
            events.schedule(
                .secondaryFlushDone(incarnation: secondaryIncarnation), atNs: nowNs + diskFlushLatencyNs())
        case let .recordDurableEpoch(epoch):
            events.schedule(
                .secondaryRecordDone(epoch, incarnation: secondaryIncarnation),
                atNs: nowNs + diskWriteLatencyNs())
        case let .send(message):
            guard connected else { return }
            lastToPrimaryNs = max(lastToPrimaryNs, nowNs + networkDelayNs())
            events.schedule(.toPrimary(message, connection: connection), atNs: lastToPrimaryNs)
        case let .protocolViolation(reason):
            fail("secondary reports a protocol violation: \(reason)")
        }
    }

    private func diskWriteLatencyNs() -> UInt64 {
        random.chance(perMille: 100) ? random.between(200_000, 2_000_000) : random.between(10_000, 150_000)
    }

    private func diskFlushLatencyNs() -> UInt64 { random.between(50_000, 1_500_000) }

    private func networkDelayNs() -> UInt64 {
        random.chance(perMille: 50) ? random.between(500_000, 3_000_000) : random.between(5_000, 200_000)
    }
}
