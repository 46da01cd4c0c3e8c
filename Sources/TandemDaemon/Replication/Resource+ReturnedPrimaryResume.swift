// Resource's returned-primary resync across an interruption (docs/replication.md, *The old
// primary returns*, "Interrupted"). The promoted node's union resync resumes after a stop in
// order, a link that ended its session, or a crash, from what was left of the union
// (Resource+SplitBrainUnion). What it must also keep is what made it a returned primary's:
// the regions of the returned node's set that the union compares by digest
// (ReturnedPrimaryCompare). They are written once, when the union is known and before its
// first checkpoint, to `<state_dir>/<name>.returned-compare` (the parted bitmap's layout, the
// same parting generation), kept in memory beside the survivor's state, and removed with the
// union's file. A resumed resync whose compare set is known compares again what the copy still
// holds of it, and keeps the returned primary's names; without one (an older build's file, a
// write that failed) it resumes as a split brain's union, whole. Loop thread only.
#if canImport(Glibc)
import Glibc
#endif
import Logging
import TandemCore

extension Resource {
    static func returnedCompareSetPath(stateDir: String, name: String) -> String { "\(stateDir)/\(name).returned-compare" }
    var returnedCompareSetPath: String { Self.returnedCompareSetPath(stateDir: context.config.stateDir, name: spec.name) }

    /// The union of a returned primary's resync is known: keep the regions it compares, in
    /// memory and durably (an empty set too: it still names the resync a returned primary's).
    func keepReturnedCompareSet(_ set: SplitBrainResyncSet) {
        var compareSet = DirtyBitmap(volumeSizeBytes: set.bitmap.volumeSizeBytes, blockBytes: set.bitmap.blockBytes)
        for region in set.comparedRegions { _ = compareSet.setRange(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes) }
        splitBrainResync.survivor?.compareSet = compareSet
        do throws(ResourceStoreError) {
            try PartedBitmapFile.write(PartedBitmap(partingGeneration: generations.bitmap, bitmap: compareSet),
                                       to: returnedCompareSetPath)
        } catch {
            logger.warning("the returned primary's compare set could not be kept: a restart resumes its resync without the compare",
                           metadata: ["error": "\(error)"])
        }
    }

    /// At open, once the union's file was taken: the compare set, if it speaks for the same
    /// parting generation; nil (the file dropped) otherwise.
    func loadReturnedCompareSetAtOpen() -> DirtyBitmap? {
        let loaded: PartedBitmap?
        do throws(ResourceStoreError) {
            loaded = try PartedBitmapFile.load(from: returnedCompareSetPath, volumeSizeBytes: volume.sizeBytes,
                                              localBlockBytes: UInt64(metadata.latest.bitmapBlockBytes))
        } catch {
            logger.error("the returned primary's compare set cannot be proven: its resync resumes without the compare",
                         metadata: ["error": "\(error)"])
            removeReturnedCompareSetFile()
            return nil
        }
        guard let loaded else { return nil }
        guard loaded.partingGeneration == generations.bitmap else {
            removeReturnedCompareSetFile()
            return nil
        }
        return loaded.bitmap
    }

    func removeReturnedCompareSetFile() {
        guard access(returnedCompareSetPath, F_OK) == 0 else { return }
        do throws(ResourceStoreError) { try PartedBitmapFile.remove(returnedCompareSetPath) } catch {
            logger.error("removing the returned primary's compare set failed", metadata: ["error": "\(error)"])
        }
    }
}
