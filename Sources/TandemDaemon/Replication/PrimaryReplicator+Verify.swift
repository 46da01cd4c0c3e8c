// PrimaryReplicator's part of online verify (PrimaryNode+Verify decides): the control
// command, this node's region read and digest, and the verify's events and status. The
// digest (SHA-256 of up to 1 MiB) runs on the loop thread after the read, about 0.5 ms a region
// here; the peer's is asked in the same turn, so the two overlap.
import Glibc
import TandemControl
import TandemCore
import TandemIO

extension PrimaryReplicator {
    /// `verify`: starts the walk, or says why it cannot (`wrong-state`; `unsupported` for a
    /// peer too old to answer).
    func startVerify() throws(ControlError) {
        if let refusal = node.verifyRefusal {
            let code: ControlErrorCode = node.peerVersion != 0 && node.peerVersion < WireFormat.verifyVersion
                && node.isPeerReady ? .unsupported : .wrongState
            throw ControlError(code, "verify refused: \(refusal)")
        }
        feed(.startVerify)
    }

    /// A region read for a digest: a verify's (one at a time) or a crash's checksum resync's
    /// (up to `ChecksumResync.regionsInFlightMax`), each in a buffer slot of its own.
    func readVerifyRegion(offset: UInt64, length: UInt64) {
        let (slot, pointer) = verifyBuffer.reserve(offset: offset)
        verifyReads[slot] = (offset, length)
        context.loop.prepareVolumeIO(write: false, volume: volume, buffer: pointer, length: Int(length), offset: offset,
                                     dsync: false, handler: handlerID, tag: Self.verifyReadTagBase | UInt32(slot))
    }

    func verifyReadCompleted(slot: Int, result: Int32) {
        guard let (offset, length) = verifyReads[slot] else { preconditionFailure("a verify read nobody asked for") }
        verifyReads[slot] = nil
        let (_, pointer) = verifyBuffer.buffer(offset: offset)
        let digest = result == Int32(length) ? RegionHasher.digest(pointer, count: Int(length)) : nil
        verifyBuffer.release(slot: slot)
        let errno = result == Int32(length) ? (digest == nil ? EIO : 0) : (result < 0 ? -result : EIO)
        feed(.verifyRegionRead(offsetBytes: offset, digest: digest, errno: errno))
    }

    func noticedVerify(_ notice: PrimaryNotice) {
        switch notice {
        case let .verifyStarted(bytes):
            logger.notice("verify starts", metadata: ["bytes": "\(bytes)"])
            context.events.publish(resource: resource, "verify-started", ["bytes": .int(Int64(clamping: bytes))])
        case let .verifyMismatch(offset, length):
            logger.warning("verify: the peer's copy differs", metadata: ["offset": "\(offset)", "length": "\(length)"])
            context.events.publish(resource: resource, "verify-mismatch", [
                "offset": .int(Int64(clamping: offset)), "length": .int(Int64(clamping: length)),
            ])
        case let .verifyEnded(checked, mismatched, reason):
            var fields: [String: JSONValue] = [
                "checked_bytes": .int(Int64(clamping: checked)), "mismatched_bytes": .int(Int64(clamping: mismatched)),
            ]
            if let reason { fields["aborted"] = .string(reason) }
            logger.notice("verify ends", metadata: ["checked_bytes": "\(checked)", "mismatched_bytes": "\(mismatched)",
                                                    "aborted": "\(reason ?? "no")"])
            context.events.publish(resource: resource, "verify-done", fields)
        case let .verifyRepairStarted(bytes):
            copyRepairsVerify = true
            logger.warning("verify: copying the regions that differ to the peer", metadata: ["bytes": "\(bytes)"])
            context.events.publish(resource: resource, "verify-repair-started", ["bytes": .int(Int64(clamping: bytes))])
            publishPeerDiskState()
        default:
            preconditionFailure("not a verify notice: \(notice)")
        }
    }

    static func verifyFields(_ verify: VerifyProgress) -> JSONValue {
        var fields: [String: JSONValue] = [
            "running": .bool(verify.running), "total_bytes": .int(Int64(clamping: verify.totalBytes)),
            "checked_bytes": .int(Int64(clamping: verify.checkedBytes)),
            "mismatched_bytes": .int(Int64(clamping: verify.mismatchedBytes)),
            "progress": .double(verify.totalBytes == 0 ? 1 : Double(verify.checkedBytes) / Double(verify.totalBytes)),
        ]
        if let reason = verify.abortedBecause { fields["aborted"] = .string(reason) }
        return .object(fields)
    }
}
