// The metadata side of a Resource: the events of opening its file (a slot recovered, format
// 2 converted) and `create-md --force`, which replaces a file that cannot be proven (or one
// the operator wants gone) with one that claims nothing, so that the next connection copies
// the whole volume. Loop thread only.
import Glibc
import TandemControl
import TandemCore
import TandemIO

extension Resource {
    /// Says what opening the metadata found besides a good file.
    func announce(_ opened: MetadataStore.Opened) {
        if let recovered = opened.recovered {
            let bad = MetadataLoaded.slotName(recovered.slot)
            let used = MetadataLoaded.slotName(1 - recovered.slot)
            logger.warning("metadata slot unreadable; the other slot is used", metadata: [
                "metadata": "\(metadata.path)", "slot": "\(bad)", "reason": "\(recovered.reason)",
            ])
            context.events.publish(resource: spec.name, "metadata-slot-recovered", [
                "path": .string(metadata.path), "bad_slot": .string(bad), "used_slot": .string(used),
                "reason": .string(recovered.reason.description), "sequence": .int(Int64(clamping: metadata.superblock.sequence)),
            ])
        }
        if opened.converted {
            logger.notice("format-2 metadata converted", metadata: ["metadata": "\(metadata.path)"])
            context.events.publish(resource: spec.name, "metadata-converted", [
                "path": .string(metadata.path), "enabled": .bool(metadata.superblock.enabled),
                "peer_lacks_writes": .bool(metadata.superblock.peerLacksWrites),
            ])
        }
    }

    /// `create-md --force` on an open resource: refused while it is enabled or changing.
    func reinitialiseMetadata() throws(ControlError) {
        guard !enabled, !transitioning else {
            throw ControlError(.wrongState, "resource '\(spec.name)' is enabled; disable it before create-md")
        }
        let path = metadata.path
        metadata.close()
        do throws(IOError) {
            try MetadataStore.reinitialise(spec, path: path, volumeSizeBytes: volume.sizeBytes, internalLayout: internalLayout)
        } catch {
            health.record("metadata create", errno: error.errno)
            throw ControlError(.ioError, "metadata \(path): \(error)")
        }
        try loadMetadata(path: path)
        promotedInconsistent = false
        mutationsAtCleanStop = nil
        // A re-initialised node has no history with its peer: the next session copies all.
        trackedSinceStop = nil
        Self.publishCreated(context.events, name: spec.name, path: path)
    }

    /// After a failed metadata write the file takes no more writes; `enable` (the operator
    /// says the disk is fixed) opens and proves it again, or fails with "metadata open".
    func reopenMetadataIfFailed() throws(ControlError) {
        guard metadata.failed else { return }
        let path = metadata.path
        metadata.close()
        try loadMetadata(path: path)
    }

    /// Opens and proves the file at `path` as this resource's metadata; a failure is a
    /// "metadata open" disk failure.
    private func loadMetadata(path: String) throws(ControlError) {
        do throws(MetadataOpenError) {
            metadata = try MetadataStore.load(spec, path: path, volumeSizeBytes: volume.sizeBytes,
                                              internalLayout: internalLayout, loop: context.loop, logger: logger).file
        } catch {
            health.record("metadata open", errno: error.errno)
            throw ControlError(.ioError, error.description)
        }
    }

    static func publishCreated(_ events: EventHub, name: String, path: String) {
        events.publish(resource: name, "metadata-created", [
            "path": .string(path), "forced": .bool(true),
            "message": .string("metadata re-initialised: the next connection copies the whole volume"),
        ])
    }
}
