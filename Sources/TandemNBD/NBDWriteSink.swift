// NBDWriteSink: where an export's mutations go when something other than the local volume
// must see them first — the replication driver of a primary. Reads never pass through it.
// Loop thread only.
import TandemIO

/// What a sink is asked to make durable or visible, and how it answers. A value over the
/// request slot: handing it out allocates nothing.
public struct NBDPendingMutation {
    public enum Kind: Sendable { case write, flush, trim, writeZeroes }

    let request: NBDRequest
    public let kind: Kind
    /// For writes: the aligned disk range and the buffer holding exactly that range (an
    /// unaligned client write has already been merged with the blocks around it).
    public let diskOffset: UInt64
    public let diskLength: Int
    public let buffer: UnsafeMutableRawPointer?
    /// Client flags: FUA asks for durability before the acknowledgement; NO_HOLE for zeroes.
    public let fua: Bool
    public let noHole: Bool

    /// Writes only, before `finish`: hands the request's buffer over when its pool can spare
    /// it for long (see `DataBuffers.canLend`). The sink then owns it and gives it back with
    /// `buffers.release`; the request no longer frees it. nil: the buffer stays with the
    /// request, so the sink must copy what it keeps.
    public func takeBufferIfSpare() -> DataBuffer? {
        precondition(kind == .write, "only a write has a buffer to hand over")
        guard let buffer = request.buffer, buffers.canLend(buffer) else { return nil }
        request.buffer = nil
        return buffer
    }

    /// Where the request's buffers come from (and a taken buffer goes back to).
    public var buffers: DataBuffers { request.connection.backend.buffers }

    /// Answers the client: 0 for success or a Linux errno. Call exactly once.
    public func finish(errno: Int32) {
        request.connection.sinkFinished(request, errno: errno)
    }
}

public protocol NBDWriteSink: AnyObject {
    func submit(_ mutation: NBDPendingMutation)
}
