// GroupEpochReservation: a consistency group's epoch numbers never go back across primary
// runs (docs/groups.md, *Across a primary restart*). The secondary node's barrier compares
// the members' "completed through" epochs; a member whose stream has not started again since
// the primary restarted still holds the numbers of the run before. Were the new run to
// number from 1 again, the first member back would issue its new writes under that stale,
// high number while its sibling's new writes are still to come: a gap in the group's
// history. So each primary run takes its numbers from a block the run before never used:
// the primary node stores, durably and before the run's first epoch, the first number the
// *next* run may use (`<state_dir>/<group>.group-epochs`), and starts its clock at the
// number the file held. When a long run nears the end of its block it stores the next block
// first. Pure: the daemon's GroupEpochFile reads and writes the bytes.

public enum GroupEpochReservation {
    /// Epochs reserved at a time. A run closes at most one group epoch per acknowledged write
    /// (or flush), so 2^40 lasts days at millions of writes a second; a run that passes it
    /// stores the next block first (`extension`). 2^64 / 2^40 leaves 2^24 blocks.
    public static let blockEpochs: Epoch = 1 << 40
    /// How far before the block's end the next block is stored (so the store, a blocking
    /// write of a few bytes on the loop thread, happens once per block, not per epoch).
    public static let renewMarginEpochs: Epoch = 1 << 32
    /// The highest floor this code stores: past it a group cannot start again (its numbers
    /// would wrap). Reached only after 2^23 blocks.
    public static let floorMax: Epoch = Epoch.max / 2

    /// A run's start: the clock starts at `stored` (0: no file, the group's first run), and
    /// `reserveThrough` is stored before any epoch is used. Nil: the numbers are spent.
    public static func start(stored: Epoch) -> (clockStart: Epoch, reserveThrough: Epoch)? {
        guard stored <= floorMax else { return nil }
        return (stored, stored + blockEpochs)
    }

    /// With the group closed through `closed` and `reserved` stored: the next floor to store
    /// now (nil: the block lasts).
    public static func renewal(closed: Epoch, reserved: Epoch) -> Epoch? {
        guard closed + renewMarginEpochs >= reserved, reserved <= floorMax else { return nil }
        return reserved + blockEpochs
    }

    static let magic = "tandem-group-epochs 1"

    /// Text: the magic, `next <floor>`, then the CRC32C of the lines before.
    public static func encode(floor: Epoch) -> [UInt8] {
        let body = Array("\(magic)\nnext \(floor)\n".utf8)
        return body + Array("crc \(CRC32C.checksum(body))\n".utf8)
    }

    /// The stored floor; nil for anything this code did not write whole (the store renames a
    /// synced file, so a crash leaves the old file or the new one: a bad file is damage).
    public static func decode(_ bytes: [UInt8]) -> Epoch? {
        guard bytes.count <= 256, let text = String(validating: bytes, as: UTF8.self) else { return nil }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count == 4, lines[3] == "", lines[0] == magic, lines[1].hasPrefix("next "),
            let floor = Epoch(lines[1].dropFirst(5)), lines[2].hasPrefix("crc "), let crc = UInt32(lines[2].dropFirst(4)),
            CRC32C.checksum(Array("\(lines[0])\n\(lines[1])\n".utf8)) == crc
        else { return nil }
        return floor
    }
}
