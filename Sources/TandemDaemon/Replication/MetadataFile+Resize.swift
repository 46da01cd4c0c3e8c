// MetadataFile's resize (docs/metadata.md, *Resize*): the file grows or shrinks with the
// volume it describes. Split from MetadataFile.swift; the state is the file's. Loop thread only.
import Glibc
import TandemCore
import TandemIO

extension MetadataFile {
    /// Describes a volume of `volumeSizeBytes` from now on (MetadataResize). Growing writes
    /// the new bitmap pages past the old end and makes them durable before the superblock
    /// that names the new size; shrinking writes that superblock first and cuts the file once
    /// it is durable. The superblock goes synchronously when no ring write is under way
    /// (`done(true)` before returning), else behind it (`done` once it is stable, false if
    /// the file failed). The seal goes with it: the next bitmap write rewrites every page.
    /// `also` changes other fields in the same superblock write.
    func resize(toVolumeSizeBytes size: UInt64, also: (inout MetadataSuperblock) -> Void = { _ in },
                _ done: @escaping (Bool) -> Void) throws(IOError) {
        guard !closed, !failed else { throw IOError(errno: EIO, "write \(path): the metadata file failed earlier") }
        // The area sits between the data and the volume's end: it does not move (yet).
        guard !isInternal else { throw IOError(errno: EOPNOTSUPP, "resize \(path): internal metadata") }
        let old = latest.geometry
        var next = MetadataResize.superblock(latest, volumeSizeBytes: size)
        also(&next)
        let pages = MetadataResize.pagesToWrite(from: old, to: next.geometry)
        do {
            if !pages.isEmpty {
                try MetadataFileIO.writeClearPages(fd: volume.fd, baseOffsetBytes: baseOffsetBytes, geometry: next.geometry,
                                                   pages: pages, superblock: next, path: path)
                try MetadataFileIO.dataSync(fd: volume.fd, path: path)
            }
        } catch {
            failed = true
            throw error
        }
        bitmapAreaMatches = false
        let fileBytes = next.geometry.fileBytes
        let cut = { [volume, path] in
            // Shrinking: the pages past the new end are no longer named by any superblock.
            guard fileBytes < old.fileBytes, ftruncate(volume.fd, off_t(fileBytes)) == 0 else { return }
            try? MetadataFileIO.dataSync(fd: volume.fd, path: path)
        }
        if isWriting {
            writeAsync(next)
            whenDurable({ $0.volumeSizeBytes == size }) { ok in
                if ok { cut() }
                done(ok)
            }
            return
        }
        try writeNow(next)
        cut()
        done(true)
    }
}
