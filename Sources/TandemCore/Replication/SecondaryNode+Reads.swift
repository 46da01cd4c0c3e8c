// SecondaryNode's part of read balancing (PrimaryNode+Reads decides what to ask): whether a
// ReadRequest is served from this volume or answered with an errno, after which the primary
// reads the region itself. The primary asks only for regions no unanswered write overlaps, so
// an UpToDate copy already applied every write it could be asked about.

/// What the secondary does with one ReadRequest.
public enum PeerReadVerdict: Sendable, Equatable {
    /// Read the region from the volume and answer with its bytes.
    case serve
    /// Answer with this errno and no bytes (the primary serves the read itself).
    case refuse(errno: Int32)
    /// The request is outside the volume: the primary broke the protocol.
    case violation(String)
}

extension SecondaryNode {
    /// Reads served for the primary in flight at most; beyond it they are refused (EBUSY) and
    /// the primary reads locally.
    public static let peerReadsMax = 32

    /// The verdict on a ReadRequest while `readsInFlight` earlier ones are being read.
    public func judgePeerRead(_ request: WireReadRequest, readsInFlight: Int) -> PeerReadVerdict {
        let length = UInt64(request.lengthBytes)
        guard request.offsetBytes <= config.volumeSizeBytes, length <= config.volumeSizeBytes - request.offsetBytes else {
            return .violation("protocol violation: read region \(request.offsetBytes)+\(length) is outside the volume")
        }
        // EAGAIN: not now (this copy is not the primary's image yet, or the link is ending);
        // EBUSY: the bound; EIO: this disk failed.
        if diskFault != nil { return .refuse(errno: 5) }
        guard link == .established, machine.isConnected, !isStopping, diskState == .upToDate else {
            return .refuse(errno: 11)
        }
        guard readsInFlight < Self.peerReadsMax else { return .refuse(errno: 16) }
        return .serve
    }
}
