// ReplicationMetadata: stores the per-resource `ReplicationRecord` (TandemCore decides what
// it says: the secondary's session, durable epoch and copy state; the primary's clean stop,
// first run and inconsistent promotion) in the state dir. The same file serves both roles,
// one at a time. Two checksummed 4 KiB slots written alternately through the ring with
// RWF_DSYNC, so a torn write leaves the other slot intact; the newest valid slot wins.
// A documented simplification of DESIGN.md's metadata layout (no bitmap, no activity log).
// Loop thread only.
import Glibc
import Logging
import TandemCore
import TandemIO

final class ReplicationMetadata: IOHandler {
    static let slotBytes = 4096
    static let magic: UInt64 = 0x4154_454D_4D44_4E54  // "TNDMMETA"

    let volume: Volume
    let loop: EventLoop
    private let buffer: UnsafeMutableRawPointer
    private var handlerID: UInt32 = 0
    private(set) var record: ReplicationRecord
    private var writing = false
    private var pending: ReplicationRecord?
    /// Runs on the loop once a written record is stable.
    var onRecorded: ((ReplicationRecord) -> Void)?
    /// Runs once if a record write fails (negated errno, or a short byte count); nothing is
    /// written after that and `onRecorded` never follows.
    var onFailed: ((Int32) -> Void)?
    private(set) var failed = false
    private var closed = false

    init(path: String, loop: EventLoop, logger: Logger) throws(IOError) {
        volume = try Volume(path: path, createSizeBytes: UInt64(2 * Self.slotBytes), logger: logger)
        self.loop = loop
        var memory: UnsafeMutableRawPointer? = nil
        precondition(posix_memalign(&memory, 4096, Self.slotBytes) == 0)
        buffer = memory!
        do {
            record = try Self.load(fd: volume.fd, buffer: buffer)
        } catch {
            free(buffer)
            throw error
        }
        handlerID = loop.register(self)
    }

    deinit { free(buffer) }

    func close() {
        guard !closed else { return }
        closed = true
        onRecorded = nil
        if !writing { loop.unregister(handlerID) }
    }

    /// A write is in flight or queued: the file changes until it is done.
    var isWriting: Bool { writing || pending != nil }

    /// The record as it will be once every requested write is done.
    var latest: ReplicationRecord { pending ?? record }

    /// Changes the latest record and writes it; `onRecorded` follows once it is stable.
    func update(_ change: (inout ReplicationRecord) -> Void) {
        var next = latest
        change(&next)
        write(next)
    }

    /// Writes `newRecord` (after the one in flight, if any); `onRecorded` follows.
    func write(_ newRecord: ReplicationRecord) {
        guard !closed, !failed else { return }
        guard !writing else { pending = newRecord; return }
        var next = newRecord
        next.generation = record.generation + 1
        encode(next)
        writing = true
        pending = nil
        record = next
        loop.prepareVolumeIO(write: true, volume: volume, buffer: buffer, length: Self.slotBytes,
                             offset: UInt64(Int(next.generation % 2) * Self.slotBytes), dsync: true,
                             handler: handlerID, tag: 1)
    }

    func ioCompleted(tag: UInt32, result: Int32, flags: UInt32) {
        writing = false
        if closed { return loop.unregister(handlerID) }
        guard result == Int32(Self.slotBytes) else {
            failed = true
            pending = nil
            onFailed?(result)
            return
        }
        onRecorded?(record)
        if let pending { write(pending) }
    }

    private func encode(_ value: ReplicationRecord) { Self.encode(value, into: buffer) }

    static func encode(_ value: ReplicationRecord, into buffer: UnsafeMutableRawPointer) {
        memset(buffer, 0, Self.slotBytes)
        buffer.storeBytes(of: Self.magic.littleEndian, toByteOffset: 0, as: UInt64.self)
        buffer.storeBytes(of: value.generation.littleEndian, toByteOffset: 8, as: UInt64.self)
        buffer.storeBytes(of: value.session.littleEndian, toByteOffset: 16, as: UInt64.self)
        buffer.storeBytes(of: value.durableThroughEpoch.littleEndian, toByteOffset: 24, as: UInt64.self)
        buffer.storeBytes(of: UInt8(value.synced ? 1 : 0), toByteOffset: 32, as: UInt8.self)
        buffer.storeBytes(of: UInt8(value.primaryStarted ? 1 : 0), toByteOffset: 33, as: UInt8.self)
        buffer.storeBytes(of: UInt8(value.promotedInconsistent ? 1 : 0), toByteOffset: 34, as: UInt8.self)
        buffer.storeBytes(of: value.continuedFrom.littleEndian, toByteOffset: 40, as: UInt64.self)
        buffer.storeBytes(of: value.cleanStop.littleEndian, toByteOffset: 48, as: UInt64.self)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: buffer, count: 60))
        buffer.storeBytes(of: crc.littleEndian, toByteOffset: 60, as: UInt32.self)
    }

    private static func decode(_ buffer: UnsafeMutableRawPointer) -> ReplicationRecord? {
        guard UInt64(littleEndian: buffer.load(fromByteOffset: 0, as: UInt64.self)) == magic else { return nil }
        let crc = UInt32(littleEndian: buffer.load(fromByteOffset: 60, as: UInt32.self))
        guard CRC32C.checksum(UnsafeRawBufferPointer(start: buffer, count: 60)) == crc else { return nil }
        return ReplicationRecord(
            generation: UInt64(littleEndian: buffer.load(fromByteOffset: 8, as: UInt64.self)),
            session: UInt64(littleEndian: buffer.load(fromByteOffset: 16, as: UInt64.self)),
            durableThroughEpoch: UInt64(littleEndian: buffer.load(fromByteOffset: 24, as: UInt64.self)),
            synced: buffer.load(fromByteOffset: 32, as: UInt8.self) == 1,
            continuedFrom: UInt64(littleEndian: buffer.load(fromByteOffset: 40, as: UInt64.self)),
            cleanStop: UInt64(littleEndian: buffer.load(fromByteOffset: 48, as: UInt64.self)),
            primaryStarted: buffer.load(fromByteOffset: 33, as: UInt8.self) == 1,
            promotedInconsistent: buffer.load(fromByteOffset: 34, as: UInt8.self) == 1)
    }

    /// The newest valid slot, read synchronously at open. A slot that cannot be read is an
    /// error (a fresh record would claim less than the disk holds); a torn or empty one is not.
    static func load(fd: Int32, buffer: UnsafeMutableRawPointer) throws(IOError) -> ReplicationRecord {
        var best = ReplicationRecord()
        for slot in 0..<2 {
            let count = pread(fd, buffer, slotBytes, off_t(slot * slotBytes))
            if count < 0 { throw IOError(errno: errno, "read metadata slot \(slot)") }
            guard count == slotBytes,
                let found = decode(buffer), found.generation >= best.generation
            else { continue }
            best = found
        }
        return best
    }
}
