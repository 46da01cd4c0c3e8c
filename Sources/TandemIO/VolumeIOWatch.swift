// VolumeIOWatch: the age of every volume I/O in flight on a volume with a disk timeout
// (`Volume.ioTimeoutNs`, from disk_timeout_ms). Such an I/O is submitted under the loop's
// own handler with a slot of this table as its tag; the slot remembers the real handler and
// tag, the operation and when it was prepared. Its completion frees the
// slot and goes on to the real handler, however late: the owner of the buffer keeps it
// until then, so a disk that answers after the resource gave up on it writes into memory
// that is still its request's, never into a reused buffer. Once per tick `check` reports
// each overdue I/O once to its volume (`onIOOverdue`), which fails the resource's disk.
//
// No allocation per I/O: slots are reused through a free list, and the table only grows
// when more I/Os are in flight than ever before (bounded by `slotsMax`). `check` walks the
// dense list of slots in flight, O(in flight), not the table. Loop thread only.
import TandemCore

/// What a volume I/O does, as a disk failure names it.
public enum VolumeOperation: UInt8, Sendable {
    case read, write, flush, fallocate, fadvise

    public var name: String {
        switch self {
        case .read: "read"
        case .write: "write"
        case .flush: "flush"
        case .fallocate: "fallocate"
        case .fadvise: "fadvise"
        }
    }
}

final class VolumeIOWatch {
    private struct Slot {
        var volume: Volume?
        var handler: UInt32 = 0
        var tag: UInt32 = 0
        var submittedNs: UInt64 = 0
        var operation: VolumeOperation = .read
        /// Reported overdue: the late completion is logged when it comes.
        var reported = false
        /// Where this slot sits in `inFlight` (for removal in O(1)).
        var position = 0
    }

    /// Tags of the loop's own handler at and above this bit are watch slots.
    static let tagBit: UInt32 = 0x8000_0000
    /// More volume I/Os in flight than this are submitted unwatched (the ring could not hold
    /// them anyway: io_uring's completion queue is a few times the ring's entries).
    static let slotsMax = 1 << 20

    private var slots: [Slot] = []
    private var free: [UInt32] = []
    /// Slots in flight, densely: what `check` walks.
    private var inFlight: [UInt32] = []
    private var fullNoticed = false
    /// I/Os that completed after they were reported overdue (logged; tests read it).
    private(set) var lateCompletions: UInt64 = 0

    init(initialSlots: Int) {
        slots.reserveCapacity(initialSlots)
        free.reserveCapacity(initialSlots)
        inFlight.reserveCapacity(initialSlots)
    }

    var inFlightCount: Int { inFlight.count }
    /// The table's size: the most I/Os ever in flight at once.
    var slotCount: Int { slots.count }

    /// A slot for an I/O of `volume` going to `handler`/`tag`; nil when the table is full
    /// (the caller then submits it unwatched: it completes, only its age is not checked).
    func begin(volume: Volume, handler: UInt32, tag: UInt32, operation: VolumeOperation, nowNs: UInt64) -> UInt32? {
        let index: UInt32
        if let reused = free.popLast() {
            index = reused
        } else {
            guard slots.count < Self.slotsMax else { return nil }
            index = UInt32(slots.count)
            slots.append(Slot())
        }
        slots[Int(index)] = Slot(volume: volume, handler: handler, tag: tag, submittedNs: nowNs, operation: operation,
                                 reported: false, position: inFlight.count)
        inFlight.append(index)
        return index
    }

    /// The completion of slot `index`: frees it and names where the completion goes, and,
    /// when it had been reported overdue, its volume, operation and submission stamp.
    func end(_ index: UInt32) -> (handler: UInt32, tag: UInt32, late: (Volume, VolumeOperation, UInt64)?) {
        precondition(Int(index) < slots.count && slots[Int(index)].volume != nil, "completion of a free watch slot \(index)")
        let slot = slots[Int(index)]
        let last = inFlight.removeLast()
        if last != index {
            inFlight[slot.position] = last
            slots[Int(last)].position = slot.position
        }
        slots[Int(index)].volume = nil
        free.append(index)
        guard slot.reported, let volume = slot.volume else { return (slot.handler, slot.tag, nil) }
        lateCompletions &+= 1
        return (slot.handler, slot.tag, (volume, slot.operation, slot.submittedNs))
    }

    /// Reports each I/O in flight that `DiskTimeout` says is overdue, once. A report may
    /// submit more I/O (a failing resource writes its record): those slots join the walk,
    /// and are not overdue.
    func check(nowNs: UInt64) {
        var position = 0
        while position < inFlight.count {
            let index = Int(inFlight[position])
            position += 1
            guard !slots[index].reported, let volume = slots[index].volume else { continue }
            let timeoutNs = volume.ioTimeoutNs
            guard DiskTimeout.isOverdue(submittedNs: slots[index].submittedNs, nowNs: nowNs, timeoutNs: timeoutNs) else {
                continue
            }
            slots[index].reported = true
            volume.onIOOverdue?(slots[index].operation, nowNs - slots[index].submittedNs, timeoutNs)
        }
    }

    /// Logged once: the table is full and further I/Os go unwatched.
    func noticeFull() -> Bool {
        defer { fullNoticed = true }
        return !fullNoticed
    }
}
