// A second crash while a crash restart's digest compare runs (issue 13 §4; docs/replication.md,
// *Checksum resync of the extents*): the restart keeps the regions it compares in a record
// (the daemon's CrashCompareRecordFile, here `SimNode.compareRecord`), the node writes the
// pages of the regions it finds the same as it goes, and the next crash restart compares again
// what the record names and the durable pages still mark (ChecksumResync.plan(…resuming:)),
// exactly as Resource+ActivityLog plans it. The fault is armed with a primary kill -9 and
// strikes either node once the restart's compare has compared a region; the checker then
// holds every guarantee through the resumed compare.
import TandemCore

/// The node a compare fault crashes, and how (`powerLoss`, else kill -9).
struct CompareFault: CustomStringConvertible {
    var role: SimulationScenario.Role
    var powerLoss: Bool
    var description: String { "\(role) \(powerLoss ? "power loss" : "kill -9") mid-compare" }
}

extension Simulation {
    /// Resource.loadActivityLogAtOpen's plan: the extents' regions the durable pages do not
    /// mark, and those of an interrupted compare's record that they still mark. The record
    /// is rewritten with the plan (the daemon's open keeps it before the session starts).
    func planCompare(_ node: SimNode, _ transaction: ActivityLogTransaction, extents: [ActivityLog.Region],
                     dirty: DirtyBitmap) -> [ChecksumRegion] {
        let regionBytes = max(ChecksumResync.regionBytesDefault, dirty.blockBytes)
        let record = node.compareRecord.flatMap { $0.transaction <= transaction.transaction ? $0.regions : nil }
        let regions = ChecksumResync.plan(extents: extents, dirty: dirty, regionBytes: regionBytes, resuming: record)
        if record != nil {
            let fresh = ChecksumResync.plan(extents: extents, dirty: dirty, regionBytes: regionBytes)
            let resumedBytes = ChecksumResync.bytes(of: regions) - ChecksumResync.bytes(of: fresh)
            if resumedBytes > 0 {
                comparesResumed += 1
                compareBytesResumed += resumedBytes
                trace("\(node.name) resumes an interrupted compare: \(resumedBytes) bytes compared again")
            }
        }
        node.compareRecord = regions.isEmpty
            ? nil : (transaction.transaction, ChecksumResync.record(regions, geometry: dirty))
        return regions
    }

    /// Resource.compareRegionsForStart: a crash restart's plan, or, catching up from what a
    /// stop left, the regions of the compare that stop ended early (its record) the tracked
    /// bitmap still marks whole — after a volume flush. Any other start ends the record.
    func compareRegionsForStart(_ node: SimNode, tracked: DirtyBitmap?, crashed: [ChecksumRegion]?,
                                basis: SessionBasis) -> [ChecksumRegion] {
        guard basis.isCatchUp, let tracked else {
            node.compareRecord = nil
            return []
        }
        let regions = crashed ?? ChecksumResync.plan(afterStop: tracked, regionBytes: max(ChecksumResync.regionBytesDefault,
                                                                                       tracked.blockBytes),
                                                     resuming: node.compareRecord?.regions)
        guard !regions.isEmpty else {
            node.compareRecord = nil
            return []
        }
        node.disk.flushNow()  // Resource.flushVolumeForCompare
        if crashed == nil {
            comparesResumedAfterStop += 1
            compareBytesResumedAfterStop += ChecksumResync.bytes(of: regions)
            trace("\(node.name) resumes a compare its stop ended early: \(ChecksumResync.bytes(of: regions)) bytes")
        }
        return regions
    }

    /// After every step while a compare fault is armed: it strikes once the live primary's
    /// compare runs and has compared (or given up) a region, or is dropped once its window passed.
    func fireArmedCompareFault() {
        guard let (fault, untilNs) = armedCompareFault else { return }
        guard nowNs <= untilNs else { return armedCompareFault = nil }
        guard let primaryNode = livePrimary, let progress = primaryNode.primary?.node.checksumResyncProgress,
            progress.running, progress.checkedBytes + progress.givenUpBytes > 0,
            let node = fault.role == .primary ? livePrimary : liveSecondary
        else { return }
        armedCompareFault = nil
        compareFaultsFired += 1
        trace("compare fault: \(fault)")
        crash(node, powerLoss: fault.powerLoss)
        events.schedule(.restart(node: node.index), atNs: nowNs + random.between(100_000, 5_000_000))
    }
}
