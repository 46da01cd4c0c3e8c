// PrimaryNode's stream: feeding ReplicationPrimary and carrying its actions into the node's
// (local writes and their sources, sends through the activity log's gate, acknowledgements,
// releases), and the local results the driver reports back.

extension PrimaryNode {
    // MARK: ReplicationPrimary

    /// Feeds the stream machine and carries its actions into the node's.
    mutating func drive(
        _ event: PrimaryEvent, nowNs: UInt64, into actions: inout [PrimaryNodeAction]
    ) {
        if case .connectionDown = event { activityLogDropHeldSends() }
        primary.handle(event, nowNs: nowNs, into: &inner)
        translateInner(nowNs: nowNs, into: &actions)
    }

    /// Carries the stream machine's actions (in `inner`) over into the node's.
    mutating func translateInner(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        var copyDone: WriteSequence = 0
        var skippedFlush = false
        for index in inner.indices {
            switch inner[index] {
            case var .submitLocalWrite(write):
                let ticket = Int(write.request)
                if ticketOfSequence.isEmpty {
                    ticketOfSequence = Array(repeating: -1, count: config.primary.writesInFlightMax)
                }
                ticketOfSequence[slot(write.sequence)] = ticket
                write.request = tickets[ticket].request
                switch tickets[ticket].kind {
                case .write: write.source = .request(tickets[ticket].request)
                case .zeroes: write.source = .zeroes
                case .copyChunk:
                    write.source = .copyChunk
                    copyLastSequence = write.sequence
                    copyDone = write.sequence
                default: preconditionFailure("a local write for a \(tickets[ticket].kind) ticket")
                }
                if tickets[ticket].skipsLocal {
                    // Diskless: kept for the stream, never written here; done here at once.
                    actions.append(.holdLocalWrite(write))
                    localDisk.completedAtOnce.append(write.sequence)
                    continue
                }
                if write.source != .copyChunk {
                    tickets[ticket].localPending += 1
                    localWritesInFlight += 1
                }
                actions.append(activityLogHolds(write) ? .holdLocalWrite(write) : .writeLocal(write))
            case .submitLocalFlush:
                if diskFailed && localDisk.recorded {
                    skippedFlush = true  // diskless: the peer's durability is the flush's
                    continue
                }
                precondition(!localFlushInFlight)
                localFlushInFlight = true
                actions.append(.flushLocal)
            case let .send(message):
                activityLogSend(message, into: &actions)
            case let .acknowledgeWrite(request):
                writeAcknowledged(Int(request), into: &actions)
            case let .acknowledgeFlush(request):
                let ticket = Int(request)
                precondition(tickets[ticket].kind == .flush)
                // After a disk failure no flush can promise durability, unless it went through
                // the peer alone (diskless) and the peer made it durable.
                if !tickets[ticket].answered {
                    let failed = diskFailed && !tickets[ticket].skipsLocal
                    actions.append(.answer(tickets[ticket].request, errno: failed ? PrimaryErrno.eio : 0))
                }
                freeTicket(ticket)
            case .writesBlocked, .writesUnblocked:
                break  // the node never lets the stream machine's own queue fill
            case let .protocolViolation(reason):
                actions.append(.protocolViolation(reason))
            case let .groupEpochClosed(epoch):
                groupClosedEpoch = max(groupClosedEpoch, epoch)
                actions.append(.groupEpochClosed(epoch))
            }
        }
        inner.removeAll(keepingCapacity: true)
        // Room freed by this event is released before anything admitted later reuses it:
        // the driver's store, carrying the actions out in order, holds what the node holds.
        emitRelease(into: &actions)
        // A copy chunk was read from this disk: it is complete locally at once.
        if copyDone != 0 { drive(.localWriteCompleted(sequence: copyDone), nowNs: nowNs, into: &actions) }
        // Diskless: writes and flushes that skip this disk are complete here at once.
        if !localDisk.completedAtOnce.isEmpty {
            let done = localDisk.completedAtOnce
            localDisk.completedAtOnce.removeAll(keepingCapacity: true)
            for sequence in done { drive(.localWriteCompleted(sequence: sequence), nowNs: nowNs, into: &actions) }
        }
        if skippedFlush { drive(.localFlushCompleted, nowNs: nowNs, into: &actions) }
    }

    mutating func emitRelease(into actions: inout [PrimaryNodeAction]) {
        let released = primary.oldestHeldSequence - 1
        guard released > releasedThrough else { return }
        activityLogReleased(from: releasedThrough + 1, through: released)
        releasedThrough = released
        actions.append(.release(throughSequence: released))
        releaseCopyChunks(through: released)
    }

    private func slot(_ sequence: WriteSequence) -> Int { Int(sequence % UInt64(config.primary.writesInFlightMax)) }

    private mutating func writeAcknowledged(_ ticket: Int, into actions: inout [PrimaryNodeAction]) {
        tickets[ticket].writesOutstanding -= 1
        precondition(tickets[ticket].writesOutstanding >= 0, "a write acknowledged twice")
        // Diskless: answered EIO already when the peer went away.
        let answered = tickets[ticket].answered
        switch tickets[ticket].kind {
        case .write:
            if !answered { answerAcknowledged(ticket, into: &actions) }
            freeTicket(ticket)
        case .zeroes:
            guard tickets[ticket].issuedAll, tickets[ticket].writesOutstanding == 0 else { return }
            if !answered { answerAcknowledged(ticket, into: &actions) }
            freeTicket(ticket)
        case .copyChunk:
            copyChunksOutstanding -= 1
            freeTicket(ticket)
        default:
            preconditionFailure("a write acknowledgement for a \(tickets[ticket].kind) ticket")
        }
    }

    /// The stream acknowledged the write: B moves first if the peer will not get it.
    private mutating func answerAcknowledged(_ ticket: Int, into actions: inout [PrimaryNodeAction]) {
        if !tickets[ticket].failed { noteAcknowledgedWithoutPeer(into: &actions) }
        answerApplied(ticket, into: &actions)
    }

    // MARK: Local results

    mutating func localWriteDone(
        _ sequence: WriteSequence, errno: Int32, nowNs: UInt64, into actions: inout [PrimaryNodeAction]
    ) {
        precondition(!ticketOfSequence.isEmpty, "a local write result before any local write")
        let ticket = ticketOfSequence[slot(sequence)]
        precondition(ticket >= 0 && tickets[ticket].localPending > 0, "a local write result for \(sequence)")
        tickets[ticket].localPending -= 1
        localWritesInFlight -= 1
        activityLogLocalDone(sequence)
        if errno != 0 {
            noteLocalLoss(offsetBytes: tickets[ticket].start, lengthBytes: tickets[ticket].end - tickets[ticket].start)
            failDisk("write", errno, into: &actions)
            // The peer may hold it (sync, UpToDate): its answer is the peer's (+Diskless).
            if !keepsLostWriteForPeer(ticket) { tickets[ticket].failed = true }
        }
        drive(.localWriteCompleted(sequence: sequence), nowNs: nowNs, into: &actions)
    }

    mutating func localFlushDone(errno: Int32, nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        precondition(localFlushInFlight, "a flush result without a flush")
        localFlushInFlight = false
        if errno != 0 {
            noteLocalLossOfEverything()  // what this disk cached since its last good flush
            failDisk("flush", errno, into: &actions)
        }
        if stopFlushInFlight {
            stopFlushInFlight = false
            stopFlushErrno = errno
        } else {
            drive(.localFlushCompleted, nowNs: nowNs, into: &actions)
        }
    }
}
