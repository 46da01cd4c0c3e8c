// Resource's part of a crash restart's digest compare across a second crash, a stop that ends
// it early and a failed flush (docs/replication.md, *Checksum resync of the extents*). The
// plan is TandemCore's (ChecksumResync.plan(…resuming:), plan(afterStop:…)); here the record
// of the compare is kept and read (CrashCompareRecordFile), the next session's regions are
// taken from it, and a failed flush before the compare fails the disk.
#if canImport(Glibc)
import Glibc
#endif
import Logging
import TandemControl
import TandemCore

extension Resource {
    var crashCompareRecordPath: String { CrashCompareRecordFile.path(stateDir: context.config.stateDir, name: spec.name) }

    /// At a crash restart: the regions of the compare this crash interrupted (nil: none ran,
    /// or its record cannot be proven — then what it had left is copied whole, and the log
    /// and an event say why).
    func loadCrashCompareRecord(newest: UInt64, geometry: DirtyBitmap) -> DirtyBitmap? {
        do throws(ResourceStoreError) {
            return try CrashCompareRecordFile.load(from: crashCompareRecordPath, newest: newest, geometry: geometry)
        } catch {
            // What to do is nothing: the regions it named are still marked, so they are copied
            // whole instead of compared; nothing is lost, and the file is replaced or removed.
            let message = "\(error): the record of an interrupted digest compare cannot be read; it is dropped and the "
                + "regions it named are copied whole instead of compared (nothing is lost, nothing to do)"
            logger.error("the record of the interrupted compare cannot be proven", metadata: ["error": "\(message)"])
            context.events.publish(resource: spec.name, "checksum-resync-record-unreadable", ["message": .string(message)])
            return nil
        }
    }

    /// The compare's regions, durable before the session that compares them starts. A write
    /// that fails costs a second crash a copy of them, nothing more: the compare runs, and the
    /// log and an event say what a crash before its end would cost (and why: a full state
    /// directory, one that refuses new files).
    func keepCrashCompareRecord(_ regions: [ChecksumRegion], transaction: UInt64, geometry: DirtyBitmap) {
        do throws(ResourceStoreError) {
            try CrashCompareRecordFile.write(regions, transaction: transaction, geometry: geometry, to: crashCompareRecordPath)
        } catch {
            let message = "\(error): the record of the digest compare could not be kept; the compare runs, but a crash "
                + "before it ends copies its regions whole instead of comparing them again (nothing is lost)"
            logger.warning("the compare's record could not be kept: a crash before it ends copies its regions whole",
                           metadata: ["error": "\(error)"])
            context.events.publish(resource: spec.name, "checksum-resync-record-not-kept", [
                "message": .string(message),
                "checksum_bytes": .int(Int64(clamping: ChecksumResync.bytes(of: regions))),
            ])
            removeCrashCompareRecord()
        }
    }

    func removeCrashCompareRecord() { CrashCompareRecordFile.remove(crashCompareRecordPath, logger: logger) }

    /// The regions the primary session about to start compares by digest. A crash restart's
    /// plan was made at open (Resource+ActivityLog). A catch-up from what a stop left (its
    /// seal, or the bitmap tracked since in this process) resumes a compare that stop ended
    /// early — a `disable`, a daemon stop, any stop of the session — from its record
    /// (`ChecksumResync.plan(afterStop:…)`): what the compare still owed is compared, not
    /// copied. The volume is flushed first (again, after a crash restart's open): a region
    /// found the same is cleared with no later local flush, and writes while disabled may
    /// still be only in a cache. A failed flush fails the disk and the start. Any other start
    /// ends the record. Called once the ring's start transaction is written (its newest
    /// proves the record's key).
    func compareRegionsForStart(_ tracked: TrackedBitmap?, basis: SessionBasis) throws(ControlError) -> [ChecksumRegion] {
        guard basis.isCatchUp, let tracked else {
            removeCrashCompareRecord()
            return []
        }
        let regions = tracked.fromCrash ? tracked.checksumRegions : regionsAfterStop(tracked.bitmap)
        guard !regions.isEmpty else {
            removeCrashCompareRecord()
            return []
        }
        if let code = flushVolumeForCompare() {
            failDiskAtCompareFlush(code)
            throw ControlError(.ioError, "this node's disk failed: flush: \(String(cString: strerror(code)))")
        }
        return regions
    }

    /// The regions of the compare's record that `tracked` (what a stop left) still marks whole.
    private func regionsAfterStop(_ tracked: DirtyBitmap) -> [ChecksumRegion] {
        guard access(crashCompareRecordPath, F_OK) == 0,
            let record = loadCrashCompareRecord(newest: metadata.activityLogNewest, geometry: tracked)
        else { return [] }
        let regionBytes = max(ChecksumResync.regionBytesDefault, tracked.blockBytes)
        let regions = ChecksumResync.plan(afterStop: tracked, regionBytes: regionBytes, resuming: record)
        guard !regions.isEmpty else { return [] }
        let bytes = ChecksumResync.bytes(of: regions)
        logger.notice("a compare a stop ended early resumes: its regions are compared, not copied",
                      metadata: ["checksum_bytes": "\(bytes)", "out_of_sync_bytes": "\(tracked.outOfSyncBytes)"])
        context.events.publish(resource: spec.name, "checksum-resync-resumed", [
            "checksum_bytes": .int(Int64(clamping: bytes)),
            "out_of_sync_bytes": .int(Int64(clamping: tracked.outOfSyncBytes)),
        ])
        return regions
    }

    /// Test-only: kills this process (as kill -9 would) once a primary session's start record
    /// is durable, before its node runs — after the session's start transaction, before the
    /// node's own first one — when the environment variable `TANDEM_TEST_START_CRASH` says
    /// `start-recorded` (integration tests of a crash in that window). Unset in production.
    static let startCrashVariable = "TANDEM_TEST_START_CRASH"

    func crashAfterStartRecordForTest() {
        guard let value = getenv(Self.startCrashVariable), String(cString: value) == "start-recorded" else { return }
        logger.critical("test hook: killed once the session's start was recorded")
        kill(getpid(), SIGKILL)
    }

    /// The volume made durable before a compare: nil, or the errno of a failed fdatasync.
    func flushVolumeForCompare() -> Int32? {
        while fdatasync(volume.fd) != 0 {
            guard errno == EINTR else { return errno }
        }
        return nil
    }

    /// The flush before the compare failed. On Linux a failed fdatasync may have dropped dirty
    /// pages (marked clean, never written): this copy may then not hold what it acknowledged,
    /// and a second flush would succeed without bringing them back. So the disk fails, as at
    /// any failed flush (disk_state Failed, `disk_error`, event `disk-failed`): replication does
    /// not start from it. No compare is planned; should the operator re-enable this disk, its
    /// extents are copied whole, as they read.
    /// The daemon's start does not re-enable a disk whose flush failed as it opened (an
    /// `enable` would clear the failure: that is the operator's word that the disk is fixed).
    /// A flush is the only I/O on the volume at open: a failure named so is this one.
    func refuseEnableAfterFailedCompareFlush() throws(ControlError) {
        guard let failure = health.failure, failure.operation == "flush" else { return }
        throw ControlError(.ioError, "this node's disk failed: \(failure.operation): \(failure.message)")
    }

    func failDiskAtCompareFlush(_ code: Int32) {
        let reason = String(cString: strerror(code))
        health.record("flush", errno: code, detail:
            "flushing the volume before the crash restart's compare failed: \(reason); this copy may not hold what it acknowledged")
    }
}
