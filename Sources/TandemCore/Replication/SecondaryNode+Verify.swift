// SecondaryNode's part of online verify (the primary's PrimaryNode+Verify decides): a
// DigestRequest is checked and turned into a read, whose digest the driver reports back.

extension SecondaryNode {
    /// A DigestRequest: the region is read and digested as it is now. The primary asks only
    /// for a region no write it still holds overlaps, so this copy already applied every
    /// write to it. Refused as a violation outside the volume or beyond the reads allowed.
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
        digestRegionsInFlight.append(offset)
        lastDigestRequestNs = nowNs
        // After a staged catch-up's SyncComplete the journal is committed and applied before
        // the volume holds what the primary verifies: the read waits (SecondaryNode+Staging).
        // While the catch-up is still being staged it does not: the primary's checksum resync
        // after its crash asks during the catch-up, which cannot end before its answers (a
        // region staged but not applied then reads as differing and is sent again).
        if staging.holds { return staging.digestsHeld.append((offset, length)) }
        actions.append(.readForDigest(offsetBytes: offset, lengthBytes: length))
    }
}
