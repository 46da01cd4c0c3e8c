// PrimaryNode's admission: every application request enters one bounded FIFO and its head is
// admitted when ReplicationPrimary has room beside what the copy's reads reserved, it overlaps
// no admitted unanswered write (the overlap rule) and no region the copy is reading or waits
// to read (PrimaryNode+Copy). A WRITE_ZEROES is admitted chunk by
// chunk; TRIM is answered at once. An admitted request is a ticket until it is answered.

extension PrimaryNode {
    // MARK: Admission

    mutating func receive(
        _ id: RequestID, _ request: ApplicationRequest, into actions: inout [PrimaryNodeAction]
    ) {
        if stopping || draining {
            // Planned failover: read-only from now on; a stopping node: EIO.
            return actions.append(.answer(id, errno: stopping ? PrimaryErrno.eio : PrimaryErrno.erofs))
        }
        // A failed disk: EIO unless the peer takes the writes (+Diskless decides).
        if case .refused = mutationPath { return actions.append(.answer(id, errno: PrimaryErrno.eio)) }
        switch request {
        case .trim:
            // Trimmed blocks may read back as anything; doing nothing on both nodes keeps
            // the replicas identical, which a local-only discard would not.
            return actions.append(.answer(id, errno: 0))
        case let .write(_, length, _):
            if length == 0 || UInt64(length) > config.primary.bufferBytesMax {
                return actions.append(.answer(id, errno: PrimaryErrno.eio))
            }
            invalidateCleanStop(into: &actions)
        case let .writeZeroes(_, length, _):
            if length == 0 { return actions.append(.answer(id, errno: 0)) }
            invalidateCleanStop(into: &actions)
        case .flush:
            break
        }
        guard !queue.isFull else { return actions.append(.answer(id, errno: PrimaryErrno.enomem)) }
        queue.append(Queued(request: id, kind: request))
    }

    mutating func invalidateCleanStop(into actions: inout [PrimaryNodeAction]) {
        guard !cleanStopInvalidated else { return }
        cleanStopInvalidated = true
        actions.append(.invalidateCleanStop)
    }

    /// Admits queued requests in order while there is room and nothing overlaps.
    mutating func admitQueued(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) {
        isBlocked = false
        pacingHoldsHead = false
        while !stopping && !admissionHeldForStop {  // a disable's drain holds it (+PeerDrain)
            let path = mutationPath
            if !mutationsAdmitted {
                // The failed request and every later mutation (and flush) fail; while the
                // record that this disk lacks writes is being written, later ones wait.
                if let zeroes = zeroing {
                    tickets[zeroes.ticket].failed = true
                    tickets[zeroes.ticket].issuedAll = true
                    zeroing = nil
                    if tickets[zeroes.ticket].writesOutstanding == 0 {
                        // Diskless: answered already when the peer it needed went away.
                        if !tickets[zeroes.ticket].answered {
                            actions.append(.answer(tickets[zeroes.ticket].request, errno: PrimaryErrno.eio))
                        }
                        freeTicket(zeroes.ticket)
                    }
                }
                guard case .refused = path else {
                    // Asked for by the first mutation that would go through the peer.
                    if !queue.isEmpty { awaitLocalLacksRecord(into: &actions) }
                    return
                }
                while !queue.isEmpty {
                    actions.append(.answer(queue.removeFirst().request, errno: PrimaryErrno.eio))
                }
                return
            }
            if zeroing != nil {
                guard admitZeroChunks(nowNs: nowNs, into: &actions) else { return }
                continue
            }
            // A catch-up's new stream waits for the old one to go quiet.
            if restartPending { return }
            guard let head = queue.first else { return }
            switch head.kind {
            case .flush:
                guard primary.canAdmitFlush else { isBlocked = true; return }
                queue.removeFirst()
                let ticket = allocateTicket(.flush, request: head.request, start: 0, end: 0)
                admitOnPath(ticket, path)
                drive(.flushSubmitted(request: RequestID(ticket)), nowNs: nowNs, into: &actions)
            case let .write(offset, length, fua):
                let end = offset + UInt64(length)
                if mutationWaitsForRegion(start: offset, end: end, into: &actions) { return }
                guard hasRoomBesideCopyReads(length) else { isBlocked = true; return }
                guard pacingAdmits(PacedHead(request: head.request, offsetBytes: offset), UInt64(length), nowNs: nowNs)
                else { return }
                // A write that skips this disk needs no activity log: a crash restart pulls it all.
                guard path == .throughPeer || activityLogAdmits(offset, UInt64(length)) else { return }
                // Through the peer: its region durable in the record first (+DisklessRegions).
                guard path != .throughPeer || lackingRegionsAdmit(start: offset, end: end, into: &actions) else { return }
                queue.removeFirst()
                pacingPassedHead = nil
                trackIfAhead(offset, UInt64(length), nowNs: nowNs)
                let ticket = allocateTicket(.write, request: head.request, start: offset, end: offset + UInt64(length))
                admitOnPath(ticket, path)
                tickets[ticket].writesOutstanding = 1
                drive(.writeSubmitted(request: RequestID(ticket), offsetBytes: offset, lengthBytes: length, fua: fua),
                      nowNs: nowNs, into: &actions)
            case let .writeZeroes(offset, length, fua):
                if mutationWaitsForRegion(start: offset, end: offset + length, into: &actions) { return }
                guard path != .throughPeer || lackingRegionsAdmit(start: offset, end: offset + length, into: &actions) else {
                    return
                }
                guard hasRoomBesideCopyReads(UInt32(min(UInt64(config.chunkBytes), length))) else {
                    isBlocked = true
                    return
                }
                queue.removeFirst()
                let ticket = allocateTicket(.zeroes, request: head.request, start: offset, end: offset + length)
                admitOnPath(ticket, path)
                zeroing = Zeroing(ticket: ticket, cursor: offset, end: offset + length, fua: fua)
            case .trim:
                preconditionFailure("TRIM is answered on arrival")
            }
        }
    }

    /// A mutation of [start, end) must wait: an earlier overlapping request is unanswered, a
    /// pull or the copy holds the region, or the verify or the checksum compare locked it.
    /// The compare's regions not asked yet are given up instead of waited for
    /// (PrimaryNode+Checksum), once nothing else holds the mutation.
    private mutating func mutationWaitsForRegion(start: UInt64, end: UInt64, into actions: inout [PrimaryNodeAction]) -> Bool {
        if overlapsUnanswered(start: start, end: end) || overlapsPull(start: start, end: end) { return true }
        yieldChecksumRegions(start: start, end: end, into: &actions)
        return overlapsCopy(start: start, end: end)
    }

    /// Admits the zero chunks of the WRITE_ZEROES in progress while there is room; true
    /// when every chunk is admitted.
    private mutating func admitZeroChunks(nowNs: UInt64, into actions: inout [PrimaryNodeAction]) -> Bool {
        guard var zeroes = zeroing else { return true }
        while zeroes.cursor < zeroes.end {
            let length = UInt32(min(UInt64(config.chunkBytes), zeroes.end - zeroes.cursor))
            guard hasRoomBesideCopyReads(length) else {
                zeroing = zeroes
                isBlocked = true
                return false
            }
            let offset = zeroes.cursor
            guard pacingAdmits(PacedHead(request: tickets[zeroes.ticket].request, offsetBytes: offset), UInt64(length), nowNs: nowNs)
            else {
                zeroing = zeroes
                return false
            }
            guard tickets[zeroes.ticket].skipsLocal || activityLogAdmits(offset, UInt64(length)) else {
                zeroing = zeroes
                return false
            }
            pacingPassedHead = nil
            trackIfAhead(offset, UInt64(length), nowNs: nowNs)
            zeroes.cursor += UInt64(length)
            let last = zeroes.cursor == zeroes.end
            tickets[zeroes.ticket].writesOutstanding += 1
            if last { tickets[zeroes.ticket].issuedAll = true }
            zeroing = last ? nil : zeroes
            drive(.writeSubmitted(request: RequestID(zeroes.ticket), offsetBytes: offset, lengthBytes: length,
                                  fua: zeroes.fua), nowNs: nowNs, into: &actions)
        }
        return true
    }

    /// Room for a write of `length` beside what the copy reads in flight have reserved (each
    /// is admitted when its read ends).
    private func hasRoomBesideCopyReads(_ length: UInt32) -> Bool {
        primary.hasRoom(writes: copyReads.count + 1, bytes: copyReadBytes + UInt64(length))
    }

    /// Ahead: a write's region is marked before the write is admitted (before it can reach
    /// this disk), so the bitmap always covers what the peer lacks.
    /// In periodic mode the RPO age counts from the first write tracked after a cycle.
    private mutating func trackIfAhead(_ offset: UInt64, _ length: UInt64, nowNs: UInt64) {
        guard isAhead else { return }
        _ = bitmap.setRange(offsetBytes: offset, lengthBytes: length)
        if aheadSinceNs == 0, periodNs != nil { aheadSinceNs = max(nowNs, 1) }
    }

    /// The head of the queue waits for room in the buffer (not for a flush slot).
    var blockedOnBuffer: Bool {
        guard isBlocked else { return false }
        if zeroing != nil { return true }
        if case .flush = queue.first?.kind { return false }
        return true
    }

    // MARK: Tickets

    mutating func allocateTicket(_ kind: Ticket.Kind, request: RequestID, start: UInt64, end: UInt64) -> Int {
        let ticket: Int
        if let free = freeTickets.popLast() {
            ticket = free
        } else {
            precondition(tickets.count < ticketsMax, "more tickets than admitted requests")
            ticket = tickets.count
            tickets.append(Ticket())
        }
        tickets[ticket] = Ticket(kind: kind, request: request, start: start, end: end)
        if kind == .write || kind == .zeroes || kind == .copyChunk {
            tickets[ticket].activePosition = active.count
            active.append(ticket)
        }
        return ticket
    }

    mutating func freeTicket(_ ticket: Int) {
        let position = tickets[ticket].activePosition
        if position >= 0 {
            let last = active.removeLast()
            if position < active.count {
                active[position] = last
                tickets[last].activePosition = position
            }
        }
        tickets[ticket] = Ticket()
        freeTickets.append(ticket)
    }

    /// The overlap rule: a mutation that overlaps an admitted write not yet answered waits
    /// until that one is answered. NBD leaves the order of overlapping requests to the
    /// client, but two replicas may not choose differently: once the earlier is answered its
    /// epoch is closed, so the secondary applies the later one after it.
    private func overlapsUnanswered(start: UInt64, end: UInt64) -> Bool {
        for ticket in active where start < tickets[ticket].end && tickets[ticket].start < end {
            return true
        }
        return false
    }
}
