// MetadataResize: a metadata file at a new volume size (docs/metadata.md, *Resize*). The
// bitmap pages are the file's last part, so the file grows and shrinks at its end and every
// unit before it stays where it was: growing writes the new pages past the old end first
// (durably), then the superblock with the new size is the commit point; shrinking writes the
// superblock first and cuts the file after. Either way a crash leaves a file that loads with
// the old geometry or the new one. Pure: the daemon writes what this says.

public enum MetadataResize {
    /// The superblock at `volumeSizeBytes`: the seal goes (the bitmap area's pages are
    /// rewritten whole by the next bitmap write), everything else stays.
    public static func superblock(_ superblock: MetadataSuperblock, volumeSizeBytes: UInt64) -> MetadataSuperblock {
        precondition(volumeSizeBytes > 0 && volumeSizeBytes <= MetadataGeometry.volumeSizeBytesMax,
                     "a volume size of \(volumeSizeBytes) bytes")
        var resized = superblock
        resized.volumeSizeBytes = volumeSizeBytes
        resized.bitmapSealedSequence = 0
        resized.catchUpBases = []
        return resized
    }

    /// The bitmap pages to write before the superblock that grows `old` to `new`: the pages
    /// past the old file's end (none when shrinking or when the page count stays).
    public static func pagesToWrite(from old: MetadataGeometry, to new: MetadataGeometry) -> Range<UInt64> {
        precondition(old.bitmapOffset == new.bitmapOffset, "a resize never moves the bitmap")
        return old.bitmapPages..<max(old.bitmapPages, new.bitmapPages)
    }
}
