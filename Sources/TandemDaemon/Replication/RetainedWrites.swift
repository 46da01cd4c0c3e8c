// RetentionLog: the primary's copy of every write the secondary has not yet confirmed
// durable, so that it can be re-sent after a reconnect. A circular byte log allocated once
// (the replication buffer bound plus slack for wrap-around), with a FIFO of entries in
// admission order. Entries are released from the front once the state machine no longer
// holds their write. Loop thread only.
import Glibc
import TandemCore

final class RetentionLog {
    struct Entry {
        var offset: Int
        var length: Int
        /// 0 until the state machine admitted the write and assigned its sequence.
        var sequence: WriteSequence
    }

    let capacityBytes: Int
    let base: UnsafeMutableRawPointer
    private var entries: [Entry?]
    private var head = 0  // index of the oldest entry
    private(set) var count = 0
    private var tailOffset = 0

    init(bufferBytes: Int, writeBytesMax: Int, entriesMax: Int) {
        capacityBytes = bufferBytes + 2 * writeBytesMax
        var memory: UnsafeMutableRawPointer? = nil
        precondition(posix_memalign(&memory, 4096, capacityBytes) == 0 && memory != nil, "retention log allocation")
        base = memory!
        entries = Array(repeating: nil, count: entriesMax)
    }

    deinit { free(base) }

    var isFull: Bool { count == entries.count }

    private func entry(at position: Int) -> Entry {
        entries[(head + position) % entries.count]!
    }

    /// Space for `length` bytes at the tail, or nil when there is none now.
    func append(length: Int) -> (index: Int, pointer: UnsafeMutableRawPointer)? {
        precondition(length > 0)
        guard !isFull, let offset = place(length) else { return nil }
        let index = (head + count) % entries.count
        entries[index] = Entry(offset: offset, length: length, sequence: 0)
        count += 1
        tailOffset = offset + length
        return (index, base + offset)
    }

    private func place(_ length: Int) -> Int? {
        guard count > 0 else { return length <= capacityBytes ? 0 : nil }
        let headOffset = entry(at: 0).offset
        if tailOffset > headOffset {
            if capacityBytes - tailOffset >= length { return tailOffset }
            return headOffset > length ? 0 : nil
        }
        return headOffset - tailOffset > length ? tailOffset : nil
    }

    func assign(index: Int, sequence: WriteSequence) {
        precondition(entries[index] != nil && entries[index]!.sequence == 0)
        entries[index]!.sequence = sequence
    }

    /// The bytes of the write with `sequence`, if still held.
    func payload(sequence: WriteSequence) -> UnsafeRawBufferPointer? {
        guard count > 0 else { return nil }
        let first = entry(at: 0).sequence
        guard first != 0, sequence >= first, sequence - first < UInt64(count) else { return nil }
        let found = entry(at: Int(sequence - first))
        precondition(found.sequence == sequence, "retention log out of sequence order")
        return UnsafeRawBufferPointer(start: base + found.offset, count: found.length)
    }

    func pointer(index: Int) -> UnsafeMutableRawPointer {
        base + entries[index]!.offset
    }

    /// Drops entries from the front while `released(sequence)` says the state machine has
    /// let go of them.
    func releaseFront(_ released: (WriteSequence) -> Bool) {
        while count > 0 {
            let front = entry(at: 0)
            guard front.sequence != 0, released(front.sequence) else { return }
            entries[head] = nil
            head = (head + 1) % entries.count
            count -= 1
        }
        if count == 0 { tailOffset = 0 }
    }

    /// Drops the newest entry (its write was refused before admission).
    func dropLast(index: Int) {
        precondition(count > 0 && (head + count - 1) % entries.count == index)
        entries[index] = nil
        count -= 1
        tailOffset = count > 0 ? entry(at: count - 1).offset + entry(at: count - 1).length : 0
    }
}
