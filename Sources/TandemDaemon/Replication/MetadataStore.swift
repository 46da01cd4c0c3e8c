// MetadataStore: how a resource comes to hold a proven metadata file (docs/metadata.md):
// created at `create`, converted once from format 2's three files for a resource file of
// before format 3, re-initialised by `create-md --force`, or loaded and checked by
// TandemCore's verdict. A file that cannot be proven is an error naming the file and the
// reason, never a fresh record. Blocking I/O: resource open and operator commands only.
import Glibc
import Logging
import TandemCore
import TandemIO

enum MetadataStore {
    /// What opening found besides the file.
    struct Opened {
        var file: MetadataFile
        /// One slot was bad and the other used (event `metadata-slot-recovered`).
        var recovered: (slot: Int, reason: MetadataUnitError)?
        /// Format 2's files were converted (event `metadata-converted`).
        var converted = false
    }

    static func defaultPath(stateDir: String, name: String) -> String { "\(stateDir)/\(name).md" }

    static func legacyPaths(stateDir: String, name: String) -> (meta: String, enabled: String, peerFailed: String) {
        ("\(stateDir)/\(name).meta", "\(stateDir)/\(name).enabled", "\(stateDir)/\(name).peer-failed")
    }

    /// `creating`: a new resource (a new file replaces whatever is at the path).
    /// `legacy`: the resource file predates format 3 (no `metadata_path`): convert.
    /// `internalLayout`: the metadata lives in the volume at `path` (`metadata: internal`).
    static func open(spec: ResourceSpec, path: String, volumeSizeBytes: UInt64, stateDir: String, creating: Bool,
                     legacy: Bool, internalLayout: MetadataInternalLayout? = nil, loop: EventLoop,
                     logger: Logger) throws(MetadataOpenError) -> Opened {
        var converted = false
        do throws(IOError) {
            if creating, let layout = internalLayout {
                let superblock = try MetadataFileIO.createInternal(path: path, layout: layout,
                                                                   fresh(spec, volumeSizeBytes: layout.dataBytes))
                return Opened(file: try MetadataFile(path: path, baseOffsetBytes: layout.metadataOffsetBytes,
                                                     superblock: superblock, loop: loop, logger: logger))
            }
            if creating {
                let superblock = try MetadataFileIO.create(path: path, fresh(spec, volumeSizeBytes: volumeSizeBytes))
                return Opened(file: try MetadataFile(path: path, superblock: superblock, loop: loop, logger: logger))
            }
            if legacy { converted = try convert(spec, path: path, volumeSizeBytes: volumeSizeBytes, stateDir: stateDir) }
        } catch {
            throw MetadataOpenError(path: path, reason: "\(error)", errno: error.errno)
        }
        var opened = try load(spec, path: path, volumeSizeBytes: volumeSizeBytes, internalLayout: internalLayout, loop: loop,
                              logger: logger)
        opened.converted = converted
        return opened
    }

    static func load(_ spec: ResourceSpec, path: String, volumeSizeBytes: UInt64,
                     internalLayout: MetadataInternalLayout? = nil, loop: EventLoop,
                     logger: Logger) throws(MetadataOpenError) -> Opened {
        let found: (fileBytes: UInt64, slotA: [UInt8], slotB: [UInt8])?
        do throws(IOError) {
            if let layout = internalLayout {
                found = try MetadataFileIO.readInternalSlots(path: path, layout: layout)
            } else {
                found = try MetadataFileIO.readSlots(path: path)
            }
        } catch {
            throw MetadataOpenError(path: path, reason: "\(error)", errno: error.errno)
        }
        let expected = MetadataExpectation(resourceName: spec.name, volumeSizeBytes: volumeSizeBytes)
        let verdict = MetadataLoad.decide(fileBytes: found?.fileBytes, slotA: found?.slotA ?? [], slotB: found?.slotB ?? [],
                                          expected: expected)
        switch verdict {
        case .failure(let failure):
            throw MetadataOpenError(path: path, reason: failure.description, errno: failure == .missing ? ENOENT : EIO)
        case .success(let loaded):
            do throws(IOError) {
                let file = try MetadataFile(path: path, baseOffsetBytes: internalLayout?.metadataOffsetBytes ?? 0,
                                            superblock: loaded.superblock, loop: loop, logger: logger)
                return Opened(file: file, recovered: loaded.recovered)
            } catch {
                throw MetadataOpenError(path: path, reason: "\(error)", errno: error.errno)
            }
        }
    }

    /// A new resource's superblock: no record written yet (`recordWrites` 0, as a format-2
    /// resource without `.meta`), replication disabled.
    static func fresh(_ spec: ResourceSpec, volumeSizeBytes: UInt64) -> MetadataSuperblock {
        var superblock = MetadataSuperblock(resourceName: spec.name, volumeSizeBytes: volumeSizeBytes)
        superblock.resourceUUID = UInt128.random(in: 1...UInt128.max)
        superblock.roleLastTaken = MetadataRole(spec.role)
        if let extents = spec.alExtents { superblock.alExtentsMax = extents }
        if spec.metadataInternal { superblock.placement = .internal }
        return superblock
    }

    /// `create-md --force`: a new file that proves nothing about the volume. A secondary's
    /// copy is not synced and was "written" (so neither `initial_sync: none` nor a clean
    /// restart can call it in sync): its primary copies the whole volume to it. A primary's
    /// next session is a full copy to its peer (protocol 2 copies only primary → secondary).
    static func reinitialise(_ spec: ResourceSpec, path: String, volumeSizeBytes: UInt64,
                             internalLayout: MetadataInternalLayout? = nil) throws(IOError) {
        var superblock = fresh(spec, volumeSizeBytes: internalLayout?.dataBytes ?? volumeSizeBytes)
        superblock.record = ReplicationRecord(generation: 1, synced: false, primaryStarted: spec.role == .primary)
        if let layout = internalLayout {
            _ = try MetadataFileIO.createInternal(path: path, layout: layout, superblock)
        } else {
            _ = try MetadataFileIO.create(path: path, superblock)
        }
    }

    /// The layout of internal metadata in the volume at `path` as it measures now (nil
    /// when it is too small); opened only to measure it.
    static func internalLayout(volumePath path: String, logger: Logger) throws(IOError) -> MetadataInternalLayout? {
        let volume = try Volume(path: path, createSizeBytes: nil, logger: logger)
        return MetadataInternalLayout.of(volumeBytes: volume.sizeBytes)
    }

    /// `create` of internal metadata: a volume whose area already proves a superblock (a
    /// slot with a valid CRC) belongs to a resource, this one's of before or another's, and
    /// is never overwritten silently. The description of what is there, nil when nothing.
    static func foreignInternalMetadata(path: String, layout: MetadataInternalLayout) -> String? {
        guard let found = try? MetadataFileIO.readInternalSlots(path: path, layout: layout) else { return nil }
        for slot in [found.slotA, found.slotB] {
            if case .success(let superblock) = MetadataSuperblockCodec.decode(slot) {
                return "resource '\(superblock.resourceName)' (UUID \(String(superblock.resourceUUID, radix: 16)))"
            }
        }
        return nil
    }

    /// Converts format 2's files once: the new file is durable (renamed, directory synced)
    /// before the old ones go. A crash after the rename finds the new file and removes the
    /// old ones again. Returns whether anything was converted.
    private static func convert(_ spec: ResourceSpec, path: String, volumeSizeBytes: UInt64,
                                stateDir: String) throws(IOError) -> Bool {
        let old = legacyPaths(stateDir: stateDir, name: spec.name)
        if access(path, F_OK) != 0 {
            let state = MetadataConversion.LegacyState(
                metaBytes: try MetadataFileIO.readFile(path: old.meta, bytesMax: 2 * MetadataGeometry.slotBytes + 1),
                enabledMarker: access(old.enabled, F_OK) == 0, peerFailedMarker: access(old.peerFailed, F_OK) == 0)
            let uuid = UInt128.random(in: 1...UInt128.max)
            switch MetadataConversion.convert(state, role: spec.role, resourceName: spec.name,
                                              volumeSizeBytes: volumeSizeBytes, resourceUUID: uuid) {
            case .failure(let failure):
                throw IOError(errno: EIO, "convert \(old.meta): \(failure.description)")
            case .success(let superblock):
                _ = try MetadataFileIO.create(path: path, superblock)
            }
        }
        for file in [old.meta, old.enabled, old.peerFailed] { try MetadataFileIO.remove(path: file) }
        return true
    }
}
