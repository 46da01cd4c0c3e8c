import Glibc
import TandemCore

// The run's events dispatched to the nodes, and the completions of their disk I/O.

extension Simulation {
    func handle(_ event: Event) {
        switch event {
        case .appIssue: issueRequest(dependent: false)
        case .appDependentWrite: issueRequest(dependent: true)
        case let .writeDone(index, tag, incarnation):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation else { return }
            guard let io = node.io.removeValue(forKey: tag) else {
                // Reported completed at its timeout (seeded fault): it lands only now.
                if node.timedOutWrites.remove(tag) != nil { _ = node.disk.completeWrite(tag) }
                return
            }
            guard let result = node.disk.completeWrite(tag) else { return }
            ioCompleted(node, io, result: result)
        case let .writeTimedOut(index, tag, incarnation):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation, let io = node.io.removeValue(forKey: tag) else { return }
            trace("\(node.name) write tag \(tag) timed out: reported completed while still in flight")
            node.timedOutWrites.insert(tag)
            ioCompleted(node, io, result: 0)
        case let .flushDone(index, tag, incarnation):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation, let io = node.io.removeValue(forKey: tag) else { return }
            guard let result = node.disk.completeFlush(tag) else { return }
            ioCompleted(node, io, result: result)
        case let .copyReadDone(index, incarnation, session, blocks):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation, let primary = node.primary, primary.session == session
            else { return }
            copyReadCompleted(node, primary, blocks: blocks)
        case let .verifyReadDone(index, incarnation, isPrimary, blocks):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation else { return }
            verifyReadCompleted(node, primary: isPrimary, blocks: blocks)
        case let .recordDone(index, incarnation):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation else { return }
            recordDone(node)
        case let .activityLogDone(index, incarnation, transaction):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation else { return }
            activityLogDone(node, transaction: transaction)
        case let .bitmapPagesDone(index, incarnation, ticket):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation else { return }
            bitmapPagesDone(node, ticket: ticket)
        case let .toSecondary(chunk, linkID):
            guard let link, link.id == linkID, link.unaware == nil else { return }
            receiveAtSecondary(chunk, linkID: linkID)
        case let .toPrimary(chunk, linkID):
            guard let link, link.id == linkID, link.primary != nil, link.unaware == nil else { return }
            receiveAtPrimary(chunk, linkID: linkID)
        case let .dialFailed(index, incarnation, dial):
            let node = nodes[index]
            // A dial the node hung up (going Ahead) and replaced answers no later one.
            guard node.alive, incarnation == node.incarnation, dial == node.dialsStarted else { return }
            drivePrimary(node, .dialFailed("the peer does not answer"))
        case let .restart(index): restart(nodes[index])
        case .operatorCheck:
            operatorCheckPending = false
            if nodes.contains(where: { $0.alive && !$0.isPrimary && $0.primary != nil }) {
                // A demoted primary is still stopping: its resource is busy; look again later.
                events.schedule(.operatorCheck, atNs: nowNs + random.between(100_000, 1_000_000))
            } else if !nodes.contains(where: { $0.isPrimary }) {
                trace("the operator finds no primary: forced failover")
                forcedFailover(allowInconsistent: true)
            }
        case .tick:
            checkDiskTimeouts()
            checkCutLiveness()
            tryCarryOutSplitBrain()
            for node in nodes where node.alive {
                if let primary = node.primary, !primary.standalone { drivePrimary(node, .tick) }
                if node.primary?.unionCheckpoints != nil { checkpointUnion(node) }
                if node.secondary != nil { driveSecondary(node, .tick) }
            }
            // Past the scenario's end only a disk stall is awaited (DiskStalls): a coarser
            // clock then keeps seconds of waiting from costing ten thousands of steps.
            let tickNs = nowNs > scenario.runEndNs ? random.between(1_000_000, 5_000_000) : random.between(50_000, 500_000)
            events.schedule(.tick, atNs: nowNs + tickNs)
            if !operatorCheckPending && !nodes.contains(where: { $0.isPrimary }) {
                // No node is primary (a hand-over lost with its link, ...): the operator looks.
                operatorCheckPending = true
                events.schedule(.operatorCheck, atNs: nowNs + random.between(500_000, 3_000_000))
            }
        case let .fault(fault): inject(fault)
        case let .staging(stagingEvent, index, incarnation):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation else { return }
            handleStaging(stagingEvent, node: node)
        case let .splitBrain(step):
            handleSplitBrain(step)
        case .appRead:
            issueRead()
        case let .readDone(_, _, read):
            localReadDone(read)
        case let .peerReadDone(index, incarnation, linkID, request):
            let node = nodes[index]
            guard node.alive, incarnation == node.incarnation else { return }
            peerReadDone(node, linkID: linkID, request: request)
        case let .diskReplaced(index, incarnation):
            let node = nodes[index]
            guard incarnation == node.incarnation else { return }
            replaceDisk(node)
        case let .pacerWake(index, incarnation, atNs):
            pacerWake(nodes[index], incarnation: incarnation, atNs: atNs)
        }
    }

    func ioCompleted(_ node: SimNode, _ io: SimNode.IO, result: Int32) {
        if result != 0 { diskErrors += 1 }
        switch io {
        case let .primaryWrite(sequence, session):
            guard node.primary?.session == session else { return }
            drivePrimary(node, .localWriteDone(sequence: sequence, errno: result))
        case let .primaryFlush(session):
            guard node.primary?.session == session else { return }
            drivePrimary(node, .localFlushDone(errno: result))
        case let .standaloneWrite(request):
            if result != 0 { primaryDiskFailed(node, operation: "write", errno: result) }
            answer(request, errno: result)
        case let .standaloneFlush(request):
            if result != 0 { primaryDiskFailed(node, operation: "flush", errno: result) }
            answer(request, errno: node.diskFailed ? EIO : 0)
        case let .secondaryWrite(sequence):
            driveSecondary(node, .writeCompleted(sequence: sequence, errno: result))
        case .secondaryFlush:
            driveSecondary(node, .flushCompleted(errno: result))
        case .secondaryDigestFlush:
            driveSecondary(node, .digestFlushCompleted(errno: result))
        case .pullWrite, .pullFlush:
            disklessIOCompleted(node, io, result: result)
        case let .activityLogFlush(transaction):
            guard node.primary?.node.activityLog?.isInFlight(transaction.transaction) == true else { return }
            if result != 0 { return drivePrimary(node, .activityLogWritten(transaction: transaction.transaction, errno: result)) }
            writeActivityLog(node, transaction)
        }
    }
}
