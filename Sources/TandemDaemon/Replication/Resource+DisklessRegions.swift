// Resource's side of the diskless regions (PrimaryNode+DisklessRegions decides; issue 13 §4):
// the regions a diskless primary wrote through its peer are kept in the metadata file's bitmap
// pages, marked as this disk's by the flag `local-lacking-regions`, each durable before the
// write over it goes through the peer; a start whose record says this disk lacks writes loads
// them (every page proven), so a restart pulls those regions, not the whole volume.
//
// - Fresh (the first record of a failure): every page is written with only the regions given,
//   made durable, then the superblock sets the mark (the flag `local-lacks-writes` follows).
// - Later: the regions are added to the pages last written and the pages they touch are
//   written and made durable (blocking, as the activity log's page writes; a few per write
//   burst: bits are set once).
// - Internal metadata lives on the failed disk: nothing is kept (the flag is refused too).
// - The peer's bitmap (a stop's seal, the activity log's pages) is written over the same
//   pages: MetadataFile drops the mark first. A diskless primary's stop seals nothing (the
//   start after it assumes the peer in sync whatever the seal says), so its mark survives.
// Loop thread only.
import TandemControl
import TandemCore
import TandemIO

extension Resource {
    /// `.persistLackingRegions`: nil once durable, else why not (nothing is claimed then: a
    /// fresh record without its mark, or pages the node stops trusting).
    func persistLackingRegions(_ runs: [BlockRun], blockBytes: UInt64, fresh: Bool) -> String? {
        let node = metadata.latest
        if node.placement == .internal { return "the metadata is internal: it lives on the failed disk" }
        var record: DirtyBitmap
        if fresh {
            switch BitmapAreaCodec.emptyBitmap(for: node) {
            case .failure(let error): return "the metadata's bitmap cannot hold the regions: \(error)"
            case .success(let empty): record = empty
            }
        } else if let written = lackingRecord, node.flags.contains(.localLackingRegions) {
            record = written
        } else {
            // Rewriting pages this process does not hold would drop the regions they name.
            return "the record's pages of the regions are not known to this process (or no longer marked)"
        }
        var pages = Set<Int>()
        for run in runs where run.count > 0 {
            let offset = run.first * blockBytes
            guard offset < record.volumeSizeBytes else { continue }
            let length = min(run.count * blockBytes, record.volumeSizeBytes - offset)
            record.setRange(offsetBytes: offset, lengthBytes: length)
            if !fresh { pages.formUnion(record.pages(coveringOffset: offset, lengthBytes: length)) }
        }
        do throws(IOError) {
            try metadata.writeLackingPages(record, pages: fresh ? nil : pages.sorted())
        } catch {
            lackingRecord = nil
            logger.error("diskless: writing the lacking regions failed", metadata: ["metadata": "\(metadata.path)", "error": "\(error)"])
            return "the bitmap page write failed: \(error)"
        }
        if fresh {
            guard updateNode({ $0.flags.insert(.localLackingRegions) }) else {
                lackingRecord = nil
                return "the metadata write failed"
            }
            logger.notice("diskless: the record keeps the regions written through the peer",
                          metadata: ["lacking_bytes": "\(record.outOfSyncBytes)"])
        }
        lackingRecord = record
        return nil
    }

    /// `enable` with `whole_volume`: the disk was replaced, so it lacks more than the regions
    /// (and the regions this process kept): the next start pulls the whole volume. Refused
    /// where it would mean nothing.
    func pullWholeVolumeAtEnable() throws(ControlError) {
        guard spec.role == .primary, primary == nil, metadata.latest.flags.contains(.localLacksWrites) else {
            throw ControlError(.wrongState, "whole_volume: only for a disabled primary whose record says its disk lacks "
                + "writes its peer holds (a diskless primary whose disk was replaced)")
        }
        lackingWholeVolumeAsked = true
        lackingAtStop = nil
    }

    /// At a primary start: what the record says about the regions this disk lacks. Sets the
    /// mirror of its pages when they are proven.
    func lackingRecordAtStart() -> LackingRecord {
        lackingRecord = nil
        let node = metadata.latest
        if lackingWholeVolumeAsked {
            lackingWholeVolumeAsked = false
            return .wholeVolume("the operator enabled it with whole_volume (a replaced disk)")
        }
        guard node.flags.contains(.localLacksWrites), node.flags.contains(.localLackingRegions) else { return .flagOnly }
        do throws(MetadataBitmapError) {
            let pages = try metadata.loadUnsealedBitmap()
            lackingRecord = pages
            context.events.publish(resource: spec.name, "local-lacking-loaded", [
                "lacking_bytes": .int(Int64(clamping: pages.outOfSyncBytes)),
            ])
            return .regions(pages)
        } catch {
            logger.error("diskless: the record's lacking regions cannot be proven: the whole volume is pulled",
                         metadata: ["error": "\(error)"])
            context.events.publish(resource: spec.name, MetadataBitmapError.event, ["message": .string("\(error)")])
            return .unproven("\(error)")
        }
    }
}
