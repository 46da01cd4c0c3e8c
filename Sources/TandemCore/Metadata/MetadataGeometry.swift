// MetadataGeometry: where each part of a metadata file lies (docs/metadata.md, *Layout*):
// two superblock slots, the activity-log ring, the bitmap pages. Pure arithmetic.

public struct MetadataGeometry: Equatable, Sendable {
    public static let slotBytes = 4096
    /// Bits of one bitmap page: 4096 bytes minus a 32-byte header.
    public static let bitsPerPage = (4096 - BitmapPageHeader.headerBytes) * 8
    /// An internal metadata area is rounded up to this (the exported size shrinks by it).
    public static let internalAlignmentBytes: UInt64 = 1 << 20
    public static let bitmapBlockBytesRange: ClosedRange<UInt32> = 4096...(1 << 20)
    public static let alSlotsRange: ClosedRange<UInt32> = 2...64
    public static let alExtentsMaxRange: ClosedRange<UInt32> = 0...ActivityLogTransaction.extentsMax
    public static let alExtentBytesMax: UInt32 = 1 << 30
    /// No Linux volume is larger (file and device offsets are signed 64-bit), and every
    /// size up to it keeps the geometry's arithmetic within 64 bits.
    public static let volumeSizeBytesMax = UInt64(Int64.max)

    public var volumeSizeBytes: UInt64
    public var bitmapBlockBytes: UInt32
    public var alSlots: UInt32

    public init(volumeSizeBytes: UInt64, bitmapBlockBytes: UInt32, alSlots: UInt32) {
        self.volumeSizeBytes = volumeSizeBytes
        self.bitmapBlockBytes = bitmapBlockBytes
        self.alSlots = alSlots
    }

    public var activityLogOffset: UInt64 { UInt64(2 * Self.slotBytes) }

    /// Offset of activity-log slot `slot` (0 ..< alSlots).
    public func activityLogSlotOffset(_ slot: UInt32) -> UInt64 {
        precondition(slot < alSlots)
        return activityLogOffset + UInt64(slot) * UInt64(Self.slotBytes)
    }

    public var bitmapOffset: UInt64 { activityLogOffset + UInt64(alSlots) * UInt64(Self.slotBytes) }

    /// Bits in the bitmap: one per `bitmapBlockBytes` of the volume, the last one partial.
    public var bitmapBits: UInt64 {
        (volumeSizeBytes + UInt64(bitmapBlockBytes) - 1) / UInt64(bitmapBlockBytes)
    }

    public var bitmapPages: UInt64 { (bitmapBits + UInt64(Self.bitsPerPage) - 1) / UInt64(Self.bitsPerPage) }

    public func bitmapPageOffset(_ page: UInt64) -> UInt64 {
        precondition(page < bitmapPages)
        return bitmapOffset + page * UInt64(Self.slotBytes)
    }

    /// Bytes of the whole file, every unit preallocated.
    public var fileBytes: UInt64 { bitmapOffset + bitmapPages * UInt64(Self.slotBytes) }

    /// Bytes an internal metadata area takes from the end of the device.
    public var internalAreaBytes: UInt64 {
        let align = Self.internalAlignmentBytes
        return (fileBytes + align - 1) / align * align
    }
}
