// ReplicationRecordFile: a resource's replication record as it is on disk
// (`<state dir>/<resource>.meta`), decoded here independently of the daemon's
// ReplicationMetadata, so a test can see what a daemon recorded rather than what it says in
// status. The layout (docs/replication.md, ReplicationMetadata.swift): two 4 KiB slots,
// written alternately; each holds, little-endian, the magic "TNDMMETA" (u64 at 0), the
// generation (8), session (16), durable epoch (24), synced (u8 at 32), primaryStarted (33),
// promotedInconsistent (34), continuedFrom (u64 at 40), cleanStop (48) and a CRC32C of bytes
// 0..<60 (u32 at 60). The valid slot with the higher generation is the record.
import Foundation
import TandemCore

struct ReplicationRecordFile: Equatable {
    static let slotBytes = 4096
    static let magic: UInt64 = 0x4154_454D_4D44_4E54

    /// Every byte of the file: a write of either slot changes them.
    let bytes: [UInt8]
    /// Each slot's record, nil where the slot is empty or torn.
    let slots: [ReplicationRecord?]

    /// Reads `path`, which must hold both slots.
    init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw HarnessError("cannot read \(path)") }
        let all = Array(data)
        guard all.count == 2 * Self.slotBytes else {
            throw HarnessError("\(path) has \(all.count) bytes, not two slots of \(Self.slotBytes)")
        }
        bytes = all
        slots = (0..<2).map { Self.decode(Array(all[($0 * Self.slotBytes)..<(($0 + 1) * Self.slotBytes)])) }
    }

    /// The record file of `resource` in `daemon`'s state dir.
    init(_ daemon: DaemonProcess, resource: String = ReplicatedPair.resource) throws {
        try self.init(path: "\(daemon.stateDir)/\(resource).meta")
    }

    /// The record the daemon loads at start: the valid slot with the higher generation.
    var record: ReplicationRecord? {
        slots.compactMap { $0 }.max { $0.generation < $1.generation }
    }

    static func decode(_ slot: [UInt8]) -> ReplicationRecord? {
        func u64(_ offset: Int) -> UInt64 {
            (0..<8).reduce(UInt64(0)) { $0 | UInt64(slot[offset + $1]) << (8 * UInt64($1)) }
        }
        let storedCRC = (0..<4).reduce(UInt32(0)) { $0 | UInt32(slot[60 + $1]) << (8 * UInt32($1)) }
        guard u64(0) == magic, CRC32C.checksum(slot[0..<60]) == storedCRC else { return nil }
        return ReplicationRecord(
            generation: u64(8), session: u64(16), durableThroughEpoch: u64(24), synced: slot[32] == 1,
            continuedFrom: u64(40), cleanStop: u64(48), primaryStarted: slot[33] == 1,
            promotedInconsistent: slot[34] == 1)
    }
}
