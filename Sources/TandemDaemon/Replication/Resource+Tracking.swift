// Resource's tracked bitmap between primary sessions: what the last stop persisted, and the
// writes made while replication is off. The next primary start catches up from it
// (PrimaryStart, reason tracked-since-stop) instead of copying the volume.
//
// Durability: a stop that is flushed but not clean seals the bitmap in the metadata file
// with the bases it covers (MetadataFile.sealBitmap: pages durable before the seal). The seal
// is cleared, durably, before the first write it would not cover: the next session's first
// write (with its record), or the first write while disabled; those are then tracked only in
// memory, so a crash afterwards costs a full copy, never a missed region. A role change drops
// both: the bitmap describes what a peer lacks from this node as primary.
import TandemControl
import TandemCore
import TandemIO

/// A bitmap and the catch-up bases it covers.
struct TrackedBitmap {
    var bitmap: DirtyBitmap
    var bases: [CatchUpBase]
    /// Built from the activity log after a crash (Resource+ActivityLog), not sealed at a stop.
    var fromCrash = false
    /// After a crash: the log's regions the catch-up compares by digest before copying
    /// (ChecksumResync.plan; each is set in `bitmap`).
    var checksumRegions: [ChecksumRegion] = []
}

extension Resource {
    /// A primary opened with a sealed bitmap: load it, every page proven. One that cannot be
    /// proven is dropped (the seal cleared, an event): the next start copies the volume.
    func loadTrackedBitmapAtOpen() {
        guard spec.role == .primary, metadata.bitmapSealed else { return }
        let bases = metadata.latest.catchUpBases
        do throws(MetadataBitmapError) {
            if let bitmap = try metadata.loadBitmap(), !bases.isEmpty {
                trackedSinceStop = TrackedBitmap(bitmap: bitmap, bases: bases)
                context.events.publish(resource: spec.name, "bitmap-loaded", [
                    "out_of_sync_bytes": .int(Int64(clamping: bitmap.outOfSyncBytes)),
                ])
                return
            }
        } catch {
            logger.error("the sealed bitmap cannot be proven: the next session copies the volume",
                         metadata: ["error": "\(error)"])
            context.events.publish(resource: spec.name, MetadataBitmapError.event, ["message": .string("\(error)")])
        }
        dropTrackedBitmap()
    }

    /// What the next primary session may catch up from: tracked regions with their bases, or
    /// nil. An empty bitmap is kept: PrimaryStart lets a clean stop's record go first and
    /// otherwise catches up nothing from its bases (a crash right after a catch-up ended).
    func trackedForStart() -> TrackedBitmap? {
        guard let tracked = trackedSinceStop, !tracked.bases.isEmpty else { return nil }
        return tracked
    }

    /// The primary's replicator starts to stop: from now on the export's writes go to the
    /// volume without its node, and the bitmap the stop leaves arrives only once it drained.
    /// The writes in between are marked here and joined to that bitmap (before it is sealed),
    /// or the peer would never be sent them.
    func trackWhileStopping() {
        let bitmap = DirtyBitmap(volumeSizeBytes: volume.sizeBytes, blockBytes: UInt64(metadata.latest.bitmapBlockBytes))
        trackedWhileStopping = (bitmap, mutationCount)
    }

    /// The stop ended. Writes still held here had no bitmap to join (the stop left none: the
    /// next start copies the volume) unless one is tracked already.
    func stopTracked() {
        guard let during = trackedWhileStopping else { return }
        trackedWhileStopping = nil
        guard trackedSinceStop != nil, during.bitmap.outOfSyncBytes > 0 else { return }
        trackUnreplicatedBitmap(during.bitmap)
    }

    /// The writes made while the replicator stopped, taken for the bitmap its stop left.
    /// Later writes are tracked against that bitmap as any write while disabled (the seal
    /// cleared before the first), so a crash never finds a seal that misses one.
    private func takeWritesWhileStopping(into bitmap: inout DirtyBitmap) {
        guard let during = trackedWhileStopping else { return }
        trackedWhileStopping = nil
        // By byte ranges, not formUnion: the node's bitmap need not share this one's geometry.
        var block: UInt64 = 0
        while let run = during.bitmap.nextDirtyRun(from: block) {
            _ = bitmap.setRange(offsetBytes: run.first * during.bitmap.blockBytes,
                                lengthBytes: run.count * during.bitmap.blockBytes)
            block = run.end
        }
    }

    /// The node's stop was flushed but not clean: seal its bitmap, keep it for the next start.
    func persistTrackedBitmap(_ bitmap: DirtyBitmap, bases: [CatchUpBase]) {
        // Diskless (Resource+DisklessRegions): the pages hold the regions this disk lacks, and
        // the next start assumes the peer in sync whatever a seal says: seal nothing.
        if metadata.latest.flags.contains(.localLacksWrites) {
            trackedSinceStop = TrackedBitmap(bitmap: bitmap, bases: bases)
            return
        }
        var sealed = bitmap
        takeWritesWhileStopping(into: &sealed)
        do throws(IOError) {
            try metadata.sealBitmap(&sealed, bases: bases)
            logger.notice("bitmap sealed: the next session catches up", metadata: [
                "out_of_sync_bytes": "\(sealed.outOfSyncBytes)",
            ])
        } catch {
            // Without a seal a restart copies the volume; this process still catches up.
            logger.warning("sealing the bitmap failed: a restart copies the volume", metadata: ["error": "\(error)"])
        }
        trackedSinceStop = TrackedBitmap(bitmap: sealed, bases: bases)
    }

    /// A clean stop (`cleanStop` its value): nothing is out of sync, but writes while
    /// disabled are tracked from now on against what the peer holds.
    func trackFromCleanStop(_ cleanStop: UInt64) {
        let bases = SessionBasis.basesAfterCleanStop(cleanStop)
        guard !bases.isEmpty else { return }
        var bitmap = DirtyBitmap(volumeSizeBytes: volume.sizeBytes, blockBytes: UInt64(metadata.latest.bitmapBlockBytes))
        takeWritesWhileStopping(into: &bitmap)
        trackedSinceStop = TrackedBitmap(bitmap: bitmap, bases: bases)
    }

    /// A write that goes to the volume while no replicator runs: the seal goes first (the
    /// on-disk bitmap would not cover it), then its blocks are marked.
    func trackUnreplicated(_ offset: UInt64, _ length: UInt64) {
        if trackedWhileStopping != nil {
            _ = trackedWhileStopping!.bitmap.setRange(offsetBytes: offset, lengthBytes: length)
            return
        }
        guard trackedSinceStop != nil else { return }
        if metadata.bitmapSealed {
            do throws(IOError) { try metadata.invalidateBitmap() } catch {
                logger.error("clearing the bitmap seal failed: the next session copies the volume",
                             metadata: ["error": "\(error)"])
                trackedSinceStop = nil
                return
            }
        }
        _ = trackedSinceStop!.bitmap.setRange(offsetBytes: offset, lengthBytes: length)
    }

    /// Joins `bitmap`'s regions to the tracked one, clearing the seal first (as a write would).
    private func trackUnreplicatedBitmap(_ bitmap: DirtyBitmap) {
        var block: UInt64 = 0
        while let run = bitmap.nextDirtyRun(from: block) {
            trackUnreplicated(run.first * bitmap.blockBytes, run.count * bitmap.blockBytes)
            block = run.end
        }
    }

    /// The tracked bitmap no longer describes what the peer lacks (a role change, or it
    /// could not be proven): forget it and clear the seal.
    func dropTrackedBitmap() {
        trackedSinceStop = nil
        guard metadata.bitmapSealed else { return }
        do throws(IOError) { try metadata.invalidateBitmap() } catch {
            logger.error("clearing the bitmap seal failed", metadata: ["error": "\(error)"])
        }
    }
}
