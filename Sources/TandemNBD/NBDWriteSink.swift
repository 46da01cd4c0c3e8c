// NBDWriteSink: where an export's mutations go when something other than the local volume
// must see them first — the replication driver of a primary. Reads never pass through it.
// Loop thread only.

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

    /// Answers the client: 0 for success or a Linux errno. Call exactly once.
    public func finish(errno: Int32) {
        request.connection.sinkFinished(request, errno: errno)
    }
}

public protocol NBDWriteSink: AnyObject {
    func submit(_ mutation: NBDPendingMutation)
}
