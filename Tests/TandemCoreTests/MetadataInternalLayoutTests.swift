// Where internal metadata lies (docs/metadata.md, *Internal metadata*): the data area is the
// largest multiple of 4096 whose metadata area fits behind it; a volume made from a data
// size gives that data size back; too small a volume has no layout.
import TandemCore
import Testing

@Suite struct MetadataInternalLayoutTests {
    @Test(arguments: [UInt64(4096), 1 << 20, 16 << 20, 64 << 20, 1 << 30, 3 << 40, (1 << 50) + 12288] as [UInt64])
    func aVolumeMadeForADataSizeGivesItBack(dataBytes: UInt64) throws {
        let volumeBytes = MetadataInternalLayout.volumeBytes(forDataBytes: dataBytes)
        let layout = try #require(MetadataInternalLayout.of(volumeBytes: volumeBytes))
        #expect(layout.dataBytes == dataBytes)
        #expect(layout.metadataOffsetBytes == dataBytes)
        #expect(layout.areaBytes == volumeBytes - dataBytes)
        #expect(layout.areaBytes % MetadataGeometry.internalAlignmentBytes == 0)
    }

    /// Every size in a sweep across page and alignment boundaries: the metadata fits behind
    /// the data, the data is aligned, and one more 4 KiB of data would not fit.
    @Test func theDataAreaIsTheLargestThatLeavesRoomForItsMetadata() throws {
        var sizes: [UInt64] = []
        for base in [UInt64(2 << 20), 130 << 20, 1 << 30, 17 << 30] {
            for delta in stride(from: -8192, through: 8192, by: 512) { sizes.append(UInt64(Int64(base) + Int64(delta))) }
        }
        // Where a bitmap page boundary falls: 32 512 blocks of 4 KiB per page.
        let pageData = UInt64(MetadataGeometry.bitsPerPage) * 4096
        sizes += [pageData + (1 << 20), pageData + (1 << 20) + 4096, 2 * pageData + (2 << 20) - 4096]
        for volumeBytes in sizes {
            let layout = try #require(MetadataInternalLayout.of(volumeBytes: volumeBytes), "\(volumeBytes)")
            func area(_ data: UInt64) -> UInt64 {
                MetadataGeometry(volumeSizeBytes: data, bitmapBlockBytes: 4096, alSlots: 8).internalAreaBytes
            }
            #expect(layout.dataBytes % 4096 == 0)
            #expect(layout.dataBytes + area(layout.dataBytes) <= volumeBytes, "\(volumeBytes): \(layout)")
            #expect(layout.dataBytes + layout.areaBytes == volumeBytes)
            let more = layout.dataBytes + 4096
            #expect(more + area(more) > volumeBytes, "\(volumeBytes): \(more) bytes of data would fit too")
            // The metadata file's units fit in the area.
            let geometry = MetadataGeometry(volumeSizeBytes: layout.dataBytes, bitmapBlockBytes: 4096, alSlots: 8)
            #expect(geometry.fileBytes <= layout.areaBytes)
        }
    }

    @Test func aVolumeTooSmallHasNoLayout() {
        #expect(MetadataInternalLayout.of(volumeBytes: 0) == nil)
        #expect(MetadataInternalLayout.of(volumeBytes: 1 << 20) == nil)
        #expect(MetadataInternalLayout.of(volumeBytes: MetadataInternalLayout.volumeBytesMin - 1) == nil)
        #expect(MetadataInternalLayout.of(volumeBytes: MetadataInternalLayout.volumeBytesMin)?.dataBytes == 4096)
        #expect(MetadataInternalLayout.volumeBytesMin == (1 << 20) + 4096)
    }

    @Test func theLargestVolumeStillHasALayout() throws {
        let layout = try #require(MetadataInternalLayout.of(volumeBytes: UInt64.max))
        #expect(layout.dataBytes + layout.areaBytes == MetadataGeometry.volumeSizeBytesMax)
    }
}
