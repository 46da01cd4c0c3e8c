// ReplicationRecordFile: a resource's replication record as it is on disk (the superblock
// slots of `<state dir>/<resource>.md`, docs/metadata.md), decoded here independently of the
// daemon's metadata codec, so a test can see what a daemon recorded rather than what it says
// in status. Two 4 KiB slots at offsets 0 and 4096, written alternately; each holds,
// little-endian, the magic "TNDMMD03" (8 bytes at 0), the format version 3 (u32 at 8), a
// CRC32C of the whole slot with its own field zeroed (u32 at 12), the sequence (u64 at 16),
// the flags (u32 at 132: bit 1 synced, bit 3 primary-started, bit 4 promoted-inconsistent),
// and the stream's session (u64 at 192), durable epoch (200), continued-from (208), clean stop
// (216) and record writes (320). The valid slot with the higher sequence is the record.
import Foundation
import TandemCore

struct ReplicationRecordFile: Equatable {
    static let slotBytes = 4096
    static let magic: [UInt8] = Array("TNDMMD03".utf8)

    /// Both superblock slots' bytes: a write of either slot changes them.
    let bytes: [UInt8]
    /// Each slot's sequence and record, nil where the slot is empty or torn.
    let slots: [Slot?]

    struct Slot: Equatable {
        var sequence: UInt64
        var record: ReplicationRecord
    }

    /// Reads the superblock slots of the metadata file at `path`.
    init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw HarnessError("cannot read \(path)") }
        let all = Array(data)
        guard all.count >= 2 * Self.slotBytes else {
            throw HarnessError("\(path) has \(all.count) bytes, not two slots of \(Self.slotBytes)")
        }
        bytes = Array(all[0..<(2 * Self.slotBytes)])
        slots = (0..<2).map { Self.decode(Array(all[($0 * Self.slotBytes)..<(($0 + 1) * Self.slotBytes)])) }
    }

    /// The metadata file of `resource` in `daemon`'s state dir (the default `metadata_path`).
    init(_ daemon: DaemonProcess, resource: String = ReplicatedPair.resource) throws {
        try self.init(path: "\(daemon.stateDir)/\(resource).md")
    }

    /// The record the daemon loads at start: the valid slot with the higher sequence.
    var record: ReplicationRecord? {
        slots.compactMap { $0 }.max { $0.sequence < $1.sequence }?.record
    }

    static func decode(_ slot: [UInt8]) -> Slot? {
        func u64(_ offset: Int) -> UInt64 {
            (0..<8).reduce(UInt64(0)) { $0 | UInt64(slot[offset + $1]) << (8 * UInt64($1)) }
        }
        func u32(_ offset: Int) -> UInt32 {
            (0..<4).reduce(UInt32(0)) { $0 | UInt32(slot[offset + $1]) << (8 * UInt32($1)) }
        }
        var zeroed = slot
        for index in 12..<16 { zeroed[index] = 0 }
        guard Array(slot[0..<8]) == magic, u32(8) == 3, CRC32C.checksum(zeroed[...]) == u32(12) else { return nil }
        let flags = u32(132)
        return Slot(sequence: u64(16), record: ReplicationRecord(
            generation: u64(320), session: u64(192), durableThroughEpoch: u64(200), synced: flags & (1 << 1) != 0,
            continuedFrom: u64(208), cleanStop: u64(216), primaryStarted: flags & (1 << 3) != 0,
            promotedInconsistent: flags & (1 << 4) != 0))
    }
}
