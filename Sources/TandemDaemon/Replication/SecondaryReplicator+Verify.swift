// SecondaryReplicator's part of online verify: a region the primary asked for
// (SecondaryNode `.readForDigest`) is read into a buffer of its own and digested
// (RegionHasher), and the node sends the answer; the volume is flushed before a link's first
// such read (`.flushForDigests`). Loop thread only.
import Glibc
import TandemCore
import TandemIO

extension SecondaryReplicator {
    /// The volume made durable before a link's first digest read (SecondaryNode+Verify: what
    /// a digest vouches for must survive a power loss here); `.digestFlushCompleted` answers.
    func flushForDigests() {
        ioInFlight += 1
        context.loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.digestFlushTag)
    }

    func readForDigest(offset: UInt64, length: UInt64) {
        let (slot, pointer) = digestBuffers.reserve(offset: offset)
        digestReads[slot] = (offset, length)
        ioInFlight += 1
        context.loop.prepareVolumeIO(write: false, volume: volume, buffer: pointer, length: Int(length), offset: offset,
                                     dsync: false, handler: handlerID, tag: Self.digestReadTagBase | UInt32(slot))
    }

    func digestRead(slot: Int, result: Int32) {
        guard let (offset, length) = digestReads[slot] else { preconditionFailure("a digest read nobody asked for") }
        digestReads[slot] = nil
        let (_, pointer) = digestBuffers.buffer(offset: offset)
        let digest = result == Int32(length) ? RegionHasher.digest(pointer, count: Int(length)) : nil
        digestBuffers.release(slot: slot)
        let errno = result == Int32(length) ? (digest == nil ? EIO : 0) : (result < 0 ? -result : EIO)
        feed(.digestRead(offsetBytes: offset, lengthBytes: length, digest: digest, errno: errno))
    }
}
