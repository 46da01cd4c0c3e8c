// SecondaryNode's part of online verify (the primary's PrimaryNode+Verify decides): a
// DigestRequest is checked and turned into a read, whose digest the driver reports back.
// Status says `VerifyT` from a DigestRequest until the primary's VerifyEnd (protocol 10), or
// for an older primary until two seconds after its last DigestRequest; and never past the link.

extension SecondaryNode {
    /// A DigestRequest: the region is read and digested as it is now. The primary asks only
    /// for a region no write it still holds overlaps, so this copy already applied every
    /// write of the current session to it (to the volume, or to a journal whose records of
    /// this session it sent again after them); a resumed journal's earlier records are
    /// another matter (`resumedJournalCarriesEarlierWrites`). Refused as a violation outside the volume or beyond the reads allowed.
    mutating func digestRequested(
        _ offset: UInt64, _ length: UInt64, nowNs: UInt64, into actions: inout [SecondaryNodeAction]
    ) {
        guard link == .established, machine.isConnected, diskFault == nil, !isStopping else { return }
        guard offset <= config.volumeSizeBytes, length <= config.volumeSizeBytes - offset else {
            return actions.append(.closeForViolation("protocol violation: verify region \(offset)+\(length) is outside the volume"))
        }
        guard digestReadsInFlight < Self.digestReadsMax, !digestRegionsInFlight.contains(offset) else {
            return actions.append(.closeForViolation(
                "protocol violation: more than \(Self.digestReadsMax) verify regions at once, or one asked twice"))
        }
        lastDigestRequestNs = nowNs
        // A staged journal resumed from an earlier session holds writes this volume lacks and
        // its commit will apply, writes the primary may have lost since (a crash before they
        // were durable there; it never acknowledged them). A digest of the volume could then
        // agree with the primary's and clear a region the commit later overwrites with the
        // lost write: such a region is answered `unvouched` (the primary copies it, and the
        // copy lands in the journal after the stale record). The journal's regions are not
        // known here (the driver holds its records, also across a restart), so every region
        // is: the crash restart's compare falls back to copying its extents whole.
        if resumedJournalCarriesEarlierWrites {
            return actions.append(.sendDigest(offsetBytes: offset, lengthBytes: length, digest: .unvouched))
        }
        digestRegionsInFlight.append(offset)
        // After a staged catch-up's SyncComplete the journal is committed and applied before
        // the volume holds what the primary verifies: the read waits (SecondaryNode+Staging).
        // While the catch-up is still being staged it does not: the primary's checksum resync
        // after its crash asks during the catch-up, which cannot end before its answers (a
        // region staged but not applied then reads as differing and is sent again).
        if staging.holds { return staging.digestsHeld.append((offset, length)) }
        readForDigestOnceDurable(offset, length, into: &actions)
    }

    /// A digest vouches that this copy holds the region: the primary clears the region's bits
    /// when the digests agree and never sends it again. So the bytes read must be durable, not
    /// only in the page cache or the device's volatile cache: a power loss here after an
    /// "equal" would take a write from this copy that nothing marks any more. The primary asks
    /// a region only once every write of its session to it is confirmed durable here, but
    /// writes of an earlier link — a crashed primary's last epoch, one never completed and so
    /// never group-committed — may still be volatile. The first digest read of each link waits
    /// for a volume flush (one fdatasync per link that digests; those after it go at once).
    mutating func readForDigestOnceDurable(_ offset: UInt64, _ length: UInt64, into actions: inout [SecondaryNodeAction]) {
        switch digestFlush {
        case .done:
            actions.append(.readForDigest(offsetBytes: offset, lengthBytes: length))
        case .inFlight, .inFlightForEarlierLink:
            digestsAwaitingFlush.append((offset, length))
        case .needed:
            digestsAwaitingFlush.append((offset, length))
            digestFlush = .inFlight
            actions.append(.flushForDigests)
        }
    }

    /// The flush of `.flushForDigests` ended: the reads waiting for it go (or, for a flush
    /// submitted on an earlier link, another flush first: writes of that link may have
    /// completed after it was submitted). A failed flush fails the disk, as any failed flush.
    mutating func digestFlushCompleted(_ errno: Int32, nowNs: UInt64, into actions: inout [SecondaryNodeAction]) {
        let forThisLink = digestFlush == .inFlight
        digestFlush = .needed
        guard errno == 0 else {
            dropDigestsAwaitingFlush()
            return fail(SecondaryDiskFault(operation: "flush", errno: errno), nowNs: nowNs, into: &actions)
        }
        if forThisLink { digestFlush = .done }
        let waiting = digestsAwaitingFlush
        digestsAwaitingFlush.removeAll()
        for digest in waiting { readForDigestOnceDurable(digest.offsetBytes, digest.lengthBytes, into: &actions) }
    }

    /// The link ended: the next link flushes again before its first digest read, and no
    /// verify runs on it until its primary asks.
    mutating func endDigestFlush() {
        lastDigestRequestNs = nil
        dropDigestsAwaitingFlush()
        switch digestFlush {
        case .done: digestFlush = .needed
        case .inFlight: digestFlush = .inFlightForEarlierLink
        case .needed, .inFlightForEarlierLink: break
        }
    }

    private mutating func dropDigestsAwaitingFlush() {
        for digest in digestsAwaitingFlush {
            if let index = digestRegionsInFlight.firstIndex(of: digest.offsetBytes) { digestRegionsInFlight.remove(at: index) }
        }
        digestsAwaitingFlush.removeAll()
    }
}

/// Whether this link's digests may be read: the volume was flushed since the link came up.
enum DigestFlush: Sendable, Equatable {
    case needed
    case inFlight
    /// A flush submitted on a link that has ended since: it does not count for this one.
    case inFlightForEarlierLink
    case done
}

extension SecondaryNode {
    /// A catch-up is being staged into a journal that an earlier session began and filled
    /// (resumed by this session, or to be by the one connecting): its records are not on the
    /// volume, and the primary that sent them may have lost them since.
    var resumedJournalCarriesEarlierWrites: Bool {
        guard staging.phase == .staging, let staged = record.staging else { return false }
        return staged.session != session && staging.endBytes > 0
    }
}
