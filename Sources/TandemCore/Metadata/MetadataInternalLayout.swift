// MetadataInternalLayout: where `metadata: internal` puts the metadata in a volume
// (docs/metadata.md, *Internal metadata*): the data area first, then the metadata area,
// rounded up to `MetadataGeometry.internalAlignmentBytes`. The bitmap covers only the data
// area, so the area's size depends on the data size it serves; the layout is the largest
// data area (a multiple of 4096) whose metadata area still fits behind it. Pure arithmetic,
// a function of the volume's size alone, so that every open finds the metadata again.

public struct MetadataInternalLayout: Equatable, Sendable {
    /// Bytes the resource serves (export, Hello, status `size_bytes`); the metadata's
    /// `volume size`. A multiple of 4096.
    public var dataBytes: UInt64
    /// Bytes from `dataBytes` to the end of the volume: the metadata area (the file's
    /// units from its start, then unused bytes up to the alignment and the volume's end).
    public var areaBytes: UInt64

    /// Where the metadata's byte 0 lies in the volume: right behind the data area.
    public var metadataOffsetBytes: UInt64 { dataBytes }

    /// The layout of a volume of `volumeBytes`; nil when not even 4096 bytes of data fit
    /// beside their metadata area.
    public static func of(volumeBytes: UInt64, bitmapBlockBytes: UInt32 = MetadataSuperblock.bitmapBlockBytesDefault,
                          alSlots: UInt32 = MetadataSuperblock.alSlotsDefault) -> MetadataInternalLayout? {
        let volumeBytes = min(volumeBytes, MetadataGeometry.volumeSizeBytesMax)
        func area(_ data: UInt64) -> UInt64 {
            MetadataGeometry(volumeSizeBytes: data, bitmapBlockBytes: bitmapBlockBytes, alSlots: alSlots).internalAreaBytes
        }
        // area() never decreases as data grows, so "fits" is true up to a bound: binary
        // search over 4096-byte units (at most 51 steps for 2^63 bytes).
        var low: UInt64 = 0  // units known to fit (0: none yet)
        var high = volumeBytes / 4096 + 1  // units known not to fit
        while high - low > 1 {
            let middle = low + (high - low) / 2
            let data = middle * 4096
            if data <= volumeBytes && area(data) <= volumeBytes - data { low = middle } else { high = middle }
        }
        guard low > 0 else { return nil }
        let data = low * 4096
        return MetadataInternalLayout(dataBytes: data, areaBytes: volumeBytes - data)
    }

    /// The volume size a resource with `dataBytes` of data and internal metadata needs
    /// (creating a volume file from `size_bytes`): `of(volumeBytes:)` of it gives back
    /// `dataBytes` (a multiple of 4096), since the area only grows with the data.
    public static func volumeBytes(forDataBytes dataBytes: UInt64,
                                   bitmapBlockBytes: UInt32 = MetadataSuperblock.bitmapBlockBytesDefault,
                                   alSlots: UInt32 = MetadataSuperblock.alSlotsDefault) -> UInt64 {
        dataBytes + MetadataGeometry(volumeSizeBytes: dataBytes, bitmapBlockBytes: bitmapBlockBytes,
                                     alSlots: alSlots).internalAreaBytes
    }

    /// The smallest volume internal metadata fits on: 4096 bytes of data and their area.
    public static var volumeBytesMin: UInt64 { volumeBytes(forDataBytes: 4096) }
}
