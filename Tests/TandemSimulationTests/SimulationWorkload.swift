import TandemCore

// The application side of a simulation run: writes (some FUA), flushes, and dependent
// writes issued only once an earlier write was acknowledged. A write never overlaps a
// write still in flight (as a filesystem would not), so the primary's history is exact.

extension Simulation {
    func issueRequest(dependent: Bool) {
        guard primaryAlive, nowNs <= scenario.workloadEndNs else { return }
        if !dependent {
            guard requestsIssued < scenario.operationCount else { return }
            events.schedule(.appIssue, atNs: nowNs + random.between(1_000, 120_000))
        }
        guard outstanding.count < scenario.requestsOutstandingMax else { return }
        requestsIssued += 1
        let request = nextRequest
        nextRequest += 1
        if !dependent && random.chance(perMille: 100) {
            requests[request] = .flush(snapshot: checker.ackedRequired)
            outstanding.append((request, 0..<0))
            drivePrimary(.flushSubmitted(request: request))
            return
        }
        guard let range = freeRange() else { return }
        let fua = random.chance(perMille: 100)
        requests[request] = .write(blocks: range, fua: fua, sequence: nil)
        outstanding.append((request, range))
        drivePrimary(
            .writeSubmitted(
                request: request, offsetBytes: UInt64(range.lowerBound) * SimulationScenario.blockSizeBytes,
                lengthBytes: UInt32(UInt64(range.count) * SimulationScenario.blockSizeBytes), fua: fua))
    }

    private func freeRange() -> Range<Int>? {
        for _ in 0..<4 {
            let first = Int(random.below(UInt64(scenario.blockCount)))
            let count = min(Int(random.between(1, 3)), scenario.blockCount - first)
            let range = first..<(first + count)
            if !outstanding.contains(where: { $0.blocks.overlaps(range) }) { return range }
        }
        return nil
    }

    func acknowledged(_ request: RequestID) {
        guard let index = outstanding.firstIndex(where: { $0.request == request }) else {
            return fail("request \(request) acknowledged twice or never submitted")
        }
        outstanding.remove(at: index)
        switch requests.removeValue(forKey: request) {
        case let .write(blocks, fua, sequence?):
            checker.recordWriteAcknowledged(sequence, blocks: blocks, fua: fua)
            rpo.acknowledged(sequence, atNs: nowNs)
            // Some writes depend on this one: the application issues them only now.
            if random.chance(perMille: 400) { events.schedule(.appDependentWrite, atNs: nowNs) }
        case let .flush(snapshot):
            checker.recordFlushAcknowledged(snapshot: snapshot)
        case .write(_, _, nil), nil:
            fail("request \(request) acknowledged before it was admitted")
        }
    }

    // MARK: Checks

    func checkInvariants() {
        if primaryAlive {
            if let problem = checker.checkPrimary(primaryDisk) { return fail(problem) }
            if let problem = rpo.check(primary, nowNs: nowNs) { return fail(problem) }
        }
        if let problem = checker.checkSecondary(secondaryDisk, consistent: secondaryAlive && secondary.isConsistent) {
            return fail(problem)
        }
        if secondaryAlive && secondary.isConsistent && !secondaryWasConsistent {
            // A secondary that restarted may call itself consistent only after the re-send.
            if !resendCompletedSinceRestart {
                return fail("the secondary became consistent before the primary re-sent what followed its durable epoch")
            }
            secondaryWasConsistent = true
        }
    }

    /// At the end the pair has had time to settle: a live primary has answered everything,
    /// the secondary holds exactly the primary's content and has confirmed all of it durable.
    func checkSettled() {
        guard primaryAlive else { return }
        if !outstanding.isEmpty {
            return fail("\(outstanding.count) requests still unacknowledged after the pair settled")
        }
        guard secondaryAlive, connected else { return fail("the pair did not reconnect") }
        if !secondary.isConsistent { return fail("the secondary is still inconsistent after settling") }
        if secondaryDisk.cache != primaryDisk.cache {
            return fail("settled volumes differ: primary \(primaryDisk.cache), secondary \(secondaryDisk.cache)")
        }
        if primary.lagBytes != 0 { return fail("lag of \(primary.lagBytes) bytes after settling") }
    }
}

/// The RPO the primary should report, computed independently from what it acknowledged and
/// which durable epochs the simulator delivered to it.
struct RPOReference {
    private var epochOf: [WriteSequence: (epoch: Epoch, lengthBytes: UInt64)] = [:]
    private var unconfirmed: [(sequence: WriteSequence, epoch: Epoch, lengthBytes: UInt64, ackNs: UInt64)] = []
    private var confirmedEpoch: Epoch = 0

    mutating func admitted(_ write: LocalWrite) {
        epochOf[write.sequence] = (write.epoch, UInt64(write.lengthBytes))
    }

    mutating func acknowledged(_ sequence: WriteSequence, atNs: UInt64) {
        guard let (epoch, lengthBytes) = epochOf.removeValue(forKey: sequence) else { return }
        if epoch > confirmedEpoch { unconfirmed.append((sequence, epoch, lengthBytes, atNs)) }
    }

    mutating func confirm(through epoch: Epoch) {
        confirmedEpoch = max(confirmedEpoch, epoch)
        unconfirmed.removeAll { $0.epoch <= confirmedEpoch }
    }

    func check(_ primary: ReplicationPrimary, nowNs: UInt64) -> String? {
        let lagBytes = unconfirmed.reduce(0) { $0 + $1.lengthBytes }
        if primary.lagBytes != lagBytes {
            return "primary reports lag_bytes \(primary.lagBytes), acknowledged-but-unconfirmed writes total \(lagBytes)"
        }
        let ageNs = unconfirmed.map { nowNs - $0.ackNs }.max() ?? 0
        if primary.rpoAgeNs(nowNs: nowNs) != ageNs {
            return "primary reports rpo age \(primary.rpoAgeNs(nowNs: nowNs)) ns, the oldest unconfirmed write is \(ageNs) ns old"
        }
        return nil
    }
}
