// Resource: one replicated volume on this node: its spec, its open volume, and its NBD
// front end. Until the peer link exists (DESIGN.md write path) a resource serves its local
// volume. Loop thread only.
import Glibc
import Logging
import TandemControl
import TandemCore
import TandemIO
import TandemNBD

final class Resource {
    var spec: ResourceSpec
    let volume: Volume
    let context: ReplicationContext
    /// Persists a changed spec (role after failover/demote).
    var persist: ((ResourceSpec) -> Void)?
    var primary: PrimaryReplicator?
    var secondary: SecondaryReplicator?
    /// `enable` was issued (persisted as the metadata's `enabled` flag).
    var enabled = false
    /// The resource's metadata file (docs/metadata.md): every durable fact of this node.
    var metadata: MetadataFile {
        didSet { applyDiskTimeout() }  // a reopened file is watched as the old one was
    }
    /// `metadata: internal`: where the metadata lies in the volume (fixed at open: the
    /// volume serves `dataBytes`); nil for an external file.
    let internalLayout: MetadataInternalLayout?
    /// A failover, demote, enable or disable is under way.
    var transitioning = false
    /// A resize is under way (Resource+Resize); a second one is refused `busy`.
    var resizing = false
    /// Secondary: its metadata took the size its primary asked for; the replicator restarts
    /// at that size once the primary closes the link (Resource+Resize).
    var resizedAwaitingRestartBytes: UInt64?
    /// This process demoted the resource and its volume holds every acknowledged write: the
    /// next secondary replicator starts consistent (not "restarted"). Not persisted.
    var demotedInProcess = false
    /// Export mutations counted when the primary's record last promised that the peer holds
    /// this volume (a clean stop, or creation); nil: no such promise in this process.
    var mutationsAtCleanStop: UInt64?
    /// Primary, replication stopped: the bitmap its last stop left (sealed in the metadata,
    /// or tracked in memory since a clean stop) and the bases it covers; writes while
    /// disabled are marked in it (Resource+Tracking).
    var trackedSinceStop: TrackedBitmap?
    /// Primary, its replicator stopping: the writes that reached the volume around it (the
    /// node no longer sees them, its bitmap is not back yet), and the mutation count when the
    /// stop began (Resource+Tracking).
    var trackedWhileStopping: (bitmap: DirtyBitmap, mutationsAtStart: UInt64)?
    /// A refusal met while no replicator runs (status `last_error`).
    var refusalError: String?
    /// Diskless (Resource+Diskless): what this disk lacked when its last replicator of this
    /// process stopped, while the record says it lacks writes.
    var lackingAtStop: DirtyBitmap?
    /// Diskless regions (Resource+DisklessRegions): the record's lacking pages as last written
    /// or loaded (the metadata file's geometry); nil when the record keeps none.
    var lackingRecord: DirtyBitmap?
    /// `enable` with `whole_volume` (a replaced disk): the next start pulls the whole volume.
    var lackingWholeVolumeAsked = false
    /// Promoted with `allow_inconsistent` (persisted in the record).
    var promotedInconsistent = false
    let backend: NBDExportBackend
    /// Metrics counters, kept across enable/disable and role changes.
    let counters = ResourceCounters()
    /// This node's disk: once failed, the resource stops using it (DiskHealth).
    let health: DiskHealth
    /// The peer refused the link because its disk failed: replication is detached and this
    /// primary serves alone until the operator re-enables it.
    var peerDiskFailure: String?
    /// Two primaries found they both wrote since they parted (Resource+Generations);
    /// persisted as the flag `split-brain` until a verdict or `resolve` clears it.
    var splitBrain: SplitBrainState?
    /// Why this primary stopped accepting writes: it met a primary promoted after it.
    var demotedByPromotion: String?
    /// This node survived a split brain and waits for the peer to become secondary.
    var resolvingAsSurvivor = false
    /// Regions changed since parting and the resolve by the union of both bitmaps
    /// (Resource+SplitBrainResync, Resource+SplitBrainUnion).
    var splitBrainResync = SplitBrainResyncState()
    /// Bytes this primary wrote since it parted from its peer (metadata `changed bytes`,
    /// persisted at stops and split brains; a block written twice counts twice).
    lazy var changedBytesWhileParted: UInt64 = metadata.latest.changedBytes
    /// The link on which a peer primary's Hello was answered with ours so that it can compare
    /// generations too (PrimaryHelloProbe); held until it closes.
    var primaryProbe: PrimaryHelloProbe?
    private var listeners: [NBDListener] = []
    private let config: DaemonConfig
    let logger: Logger

    /// Opens the volume and starts serving; undoes everything it did when it fails.
    /// `creatingVolume`: a missing volume file may be created (at `create`, not at restart).
    init(spec: ResourceSpec, loop: EventLoop, buffers: DataBuffers, config: DaemonConfig, context: ReplicationContext,
         creatingVolume: Bool = true, logger: Logger) throws(ControlError) {
        self.spec = spec
        self.context = context
        self.config = config
        self.logger = logger
        // Internal metadata: `size_bytes` is the data area's, the file is made larger by its area.
        let createBytes = spec.metadataInternal
            ? spec.sizeBytes.map { MetadataInternalLayout.volumeBytes(forDataBytes: $0) } : spec.sizeBytes
        do {
            volume = try Volume(path: spec.volume, createSizeBytes: creatingVolume ? createBytes : nil, logger: logger)
        } catch {
            throw ControlError(error.errno == ENOENT ? .notFound : .ioError, "volume: \(Self.describe(error))")
        }
        do {
            try Self.checkSize(volume, spec, creating: creatingVolume)
            internalLayout = try Self.internalLayout(volume, spec, creating: creatingVolume)
        } catch {
            volume.discardCreatedFile()
            throw error
        }
        if let internalLayout { volume.use(bytes: internalLayout.dataBytes) }
        let metadataPath = spec.metadataInternal
            ? spec.volume : spec.metadataPath ?? MetadataStore.defaultPath(stateDir: config.stateDir, name: spec.name)
        let opened: MetadataStore.Opened
        do {
            opened = try MetadataStore.open(
                spec: spec, path: metadataPath, volumeSizeBytes: volume.sizeBytes, stateDir: config.stateDir,
                creating: creatingVolume, legacy: spec.metadataPath == nil && !spec.metadataInternal,
                internalLayout: internalLayout, loop: loop, logger: logger)
        } catch {
            logger.error("metadata cannot be used", metadata: ["metadata": "\(metadataPath)", "reason": "\(error.reason)"])
            volume.discardCreatedFile()
            throw ControlError(.ioError, Self.describe(error))
        }
        metadata = opened.file
        if !spec.metadataInternal { self.spec.metadataPath = metadataPath }
        // The metadata's size is the resource's: a volume grown before `resize` (or by a
        // resize a crash interrupted) serves no more than it describes until the next one.
        let describedBytes = opened.file.latest.volumeSizeBytes
        if describedBytes < volume.sizeBytes {
            logger.notice("the volume is larger than its metadata describes: serving the metadata's size until resize",
                          metadata: ["volume_bytes": "\(volume.sizeBytes)", "size_bytes": "\(describedBytes)"])
            context.events.publish(resource: spec.name, "volume-not-resized", [
                "volume_bytes": .int(Int64(clamping: volume.sizeBytes)), "size_bytes": .int(Int64(clamping: describedBytes)),
            ])
            volume.use(bytes: describedBytes)
        }
        if self.spec.sizeBytes != nil { self.spec.sizeBytes = describedBytes }
        do {
            try volume.attach(to: loop)
        } catch {
            metadata.close()
            if creatingVolume { Self.discardCreatedMetadata(path: metadataPath, internalLayout: internalLayout) }
            volume.discardCreatedFile()
            throw ControlError(.ioError, Self.describe(error))
        }
        backend = NBDExportBackend(
            name: spec.name, volume: volume, loop: loop, buffers: buffers, readOnly: spec.role == .secondary,
            maxRequestBytes: config.maxRequestBytes, localWriteLatency: counters.localWriteLatency,
            trace: counters.trace, logger: logger)
        health = DiskHealth(resource: spec.name, events: context.events, logger: logger)
        let health = self.health
        backend.onDiskError = { operation, errno in health.record(operation, errno: errno) }
        backend.onUnreplicatedMutation = { [unowned self] offset, length in
            // A primary writing without replication: the peer will not get it. It may have to
            // wait for the parted-bitmap file (write-ahead, once per turn).
            var held = false
            if self.spec.role == .primary {
                self.startTrackingGeneration()
                self.changedBytesWhileParted += length
                held = self.notePartedWriteAlone(offsetBytes: offset, lengthBytes: length)
            }
            self.trackUnreplicated(offset, length)
            return held
        }
        health.onFailed = { [unowned self] in self.diskFailed() }
        applyDiskTimeout()
        announce(opened)
        promotedInconsistent = spec.role == .primary && record.promotedInconsistent
        // Before the open marks writes while disabled: the log speaks only for what came before.
        loadActivityLogAtOpen()
        prepareRecordAtOpen(creating: creatingVolume)
        loadTrackedBitmapAtOpen()
        completeYieldAtOpen()  // before the demotion and the parted set: Resource+ReturnedPrimary
        restoreDemotionAtOpen()
        restoreSplitBrainAtOpen()
        loadSplitBrainFilesAtOpen()
        refuseLackingDiskWhileStopped()  // diskless: a disk that lacks writes serves nothing alone
        // A secondary serves nothing until it is promoted (DESIGN.md, issue 3): no client
        // can read a volume that may be between two consistent states.
        guard spec.role != .secondary else { return }
        do {
            // A restore may find the export's TCP port still held by this daemon's killed
            // predecessor for a moment (Daemon.bindPatienceNs); a create answers at once.
            try listen(bindPatienceNs: creatingVolume ? 0 : Daemon.bindPatienceNs)
        } catch {
            // A refused create leaves nothing behind: the metadata file it made goes too.
            metadata.close()
            if creatingVolume { Self.discardCreatedMetadata(path: metadataPath, internalLayout: internalLayout) }
            volume.detach(from: loop)
            volume.discardCreatedFile()
            throw error
        }
    }

    /// An I/O error as a refusal's message; running out of descriptors names the limit that
    /// sets how many resources a daemon holds (docs/operations.md "How many resources").
    static func describe(_ error: any Error) -> String {
        let code = (error as? IOError)?.errno ?? (error as? ResourceStoreError)?.errno
            ?? (error as? MetadataOpenError)?.errno
        guard code == EMFILE else { return "\(error)" }
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        return "\(error); this daemon's open-file limit (RLIMIT_NOFILE \(limit.rlim_cur)) is reached: "
            + "raise LimitNOFILE (docs/operations.md, \"How many resources\")"
    }

    var isServing: Bool { !listeners.isEmpty }

    /// Opens the NBD export after a promotion; a failure is logged and the export stays shut.
    func startServing() {
        guard listeners.isEmpty else { return }
        do {
            try listen()
            logger.info("NBD export open", metadata: ["nbd": "\(spec.nbd.socket)"])
        } catch {
            logger.error("NBD export could not be opened", metadata: ["error": "\(error.message)"])
        }
    }

    /// Closes the NBD export and its clients after a demotion; the volume stays open.
    func stopServing() {
        let closing = listeners
        listeners.removeAll()
        for listener in closing { listener.stop {} }
        if !closing.isEmpty { unlink(spec.nbd.socket) }
    }

    /// At `create` the volume must be exactly what was asked; reopened, it may have grown
    /// (the metadata then says how much of it the resource uses: `MetadataLoad`).
    private static func checkSize(_ volume: Volume, _ spec: ResourceSpec, creating: Bool) throws(ControlError) {
        guard creating else {
            guard volume.sizeBytes >= 4096 else {
                throw ControlError(.invalidArgument, "volume: size \(volume.sizeBytes) bytes is below 4096")
            }
            return
        }
        guard volume.sizeBytes > 0, volume.sizeBytes % 4096 == 0 else {
            throw ControlError(.invalidArgument, "volume: size \(volume.sizeBytes) bytes is not a positive multiple of 4096")
        }
        // Internal metadata: `size_bytes` is the data area's (checked by `internalLayout`).
        if !spec.metadataInternal, let wanted = spec.sizeBytes, wanted != volume.sizeBytes {
            throw ControlError(.invalidArgument,
                               "size_bytes: the volume exists with \(volume.sizeBytes) bytes, not \(wanted)")
        }
    }

    /// A refused `create` leaves no metadata: the file it made goes, and an internal area it
    /// wrote is wiped (else the volume would prove a resource that does not exist, and a
    /// second `create` would be refused for it).
    static func discardCreatedMetadata(path: String, internalLayout: MetadataInternalLayout?) {
        guard let internalLayout else { return _ = unlink(path) }
        try? MetadataFileIO.wipeInternal(path: path, layout: internalLayout)
    }

    /// `metadata: internal`: the layout of the volume as measured (nil for external). A
    /// volume too small for any data beside its area is refused, so is a `size_bytes` that
    /// is not the data area's, and at `create` a volume whose area already proves a
    /// superblock (MetadataStore.foreignInternalMetadata): never overwritten silently.
    private static func internalLayout(_ volume: Volume, _ spec: ResourceSpec,
                                       creating: Bool) throws(ControlError) -> MetadataInternalLayout? {
        guard spec.metadataInternal else { return nil }
        guard let layout = MetadataInternalLayout.of(volumeBytes: volume.sizeBytes) else {
            throw ControlError(.invalidArgument, "volume: \(volume.sizeBytes) bytes is too small for internal metadata "
                + "(at least \(MetadataInternalLayout.volumeBytesMin) bytes)")
        }
        guard creating else { return layout }
        if let wanted = spec.sizeBytes, wanted != layout.dataBytes {
            throw ControlError(.invalidArgument, "size_bytes: the volume exists with \(volume.sizeBytes) bytes: "
                + "\(layout.dataBytes) bytes of data beside its internal metadata, not \(wanted)")
        }
        if let found = MetadataStore.foreignInternalMetadata(path: spec.volume, layout: layout) {
            throw ControlError(.exists, "volume \(spec.volume) already holds internal metadata of \(found): "
                + "delete that resource (or run create-md --force on it) first; create never overwrites it")
        }
        return layout
    }

    /// Binds the export's sockets and starts accepting; on failure nothing stays open.
    private func listen(bindPatienceNs: UInt64 = 0) throws(ControlError) {
        let perConnection = Int(config.maxRequestsPerConnection)
        var opened: [(fd: Int32, description: String)] = []
        do {
            // NBD clients in the control group (e.g. a non-root qemu) may connect too.
            let group = config.controlGroup.flatMap { ControlAccessPolicy.groupID(named: $0) }
            opened.append((try Sockets.listenUnix(path: spec.nbd.socket, groupID: group), spec.nbd.socket))
            if let tcp = spec.nbd.tcp {
                opened.append((try Sockets.listenTCP(address: tcp, patienceNs: bindPatienceNs, waiting: { [logger] error in
                    Daemon.logBindWait(logger, "nbd.tcp", tcp, error)
                }), tcp))
            }
        } catch {
            for socket in opened { close(socket.fd) }
            if !opened.isEmpty { unlink(spec.nbd.socket) }
            throw ControlError(error.errno == EADDRINUSE || error.errno == EEXIST ? .exists : .ioError,
                               "nbd: \(Self.describe(error))")
        }
        for socket in opened {
            let listener = NBDListener(fd: socket.fd, description: socket.description, backend: backend,
                                       maxRequestsPerConnection: perConnection, logger: logger)
            listeners.append(listener)
            listener.start()
        }
    }

    /// Stops serving: closes clients and listeners; `done` runs once all is quiet.
    func stop(loop: EventLoop, _ done: @escaping () -> Void) {
        stopReplication { [self] in
            persistPartedBitmap()  // a restart resolves a split brain by the union still
            self.stopListeners(loop: loop, done)
        }
    }

    private func stopListeners(loop: EventLoop, _ done: @escaping () -> Void) {
        var remaining = listeners.count
        let serving = isServing
        let finish = { [volume, spec, metadata] in
            metadata.close()
            volume.detach(from: loop)
            if serving { unlink(spec.nbd.socket) }
            done()
        }
        guard remaining > 0 else { finish(); return }
        for listener in listeners {
            listener.stop {
                remaining -= 1
                if remaining == 0 { finish() }
            }
        }
    }

    /// What status says of both copies: TandemCore decides from the role, the running
    /// replicator's words and the disk failures.
    var reportedDiskStates: ReportedDiskStates {
        let facts: ResourceCopyFacts
        switch spec.role {
        case .standalone: facts = .standalone
        case .primary: facts = .primary(promotedInconsistent: promotedInconsistent, replicator: primary?.peerView)
        case .secondary: facts = .secondary(atRest: secondaryDiskStateAtRest, replicator: secondary?.copyView)
        }
        return ReportedDiskStates.decide(facts, ownDiskFailed: health.isFailed, peerDiskFailed: peerDiskFailure != nil,
                                         ownOutdated: metadata.latest.flags.contains(.outdated))
    }

    /// The fields `status` reports (DESIGN.md "Control socket").
    var status: [String: JSONValue] {
        var fields = spec.jsonFields
        let stats = backend.stats
        fields["role"] = .string(spec.role.rawValue)
        fields["connection_state"] = .string(ConnectionState.standAlone.rawValue)
        fields["replication_state"] = .string(ReplicationStreamState.off.rawValue)
        fields["enabled"] = .bool(enabled)
        fields["size_bytes"] = .int(Int64(volume.sizeBytes))
        fields["metadata_path"] = .string(metadata.path)
        // Internal: the area taken from the volume's end; external: the file's bytes.
        fields["metadata_bytes"] = .int(Int64(clamping: internalLayout?.areaBytes ?? metadata.latest.geometry.fileBytes))
        fields["direct_io"] = .bool(volume.direct)
        fields["nbd_clients"] = .int(Int64(backend.connectionCount))
        fields["nbd_serving"] = .bool(isServing)
        // A stopped primary's tracked regions: what the next session will catch up.
        let tracked = Int64(clamping: trackedSinceStop?.bitmap.outOfSyncBytes ?? 0)
        fields["out_of_sync_bytes"] = .int(tracked)
        fields["lag_bytes"] = .int(tracked)
        fields["rpo_ms"] = .int(0)
        if spec.role == .primary { fields["promoted_inconsistent"] = .bool(promotedInconsistent) }
        mergeGenerationStatus(into: &fields)
        if let primary { fields.merge(primary.statusFields) { $1 } }
        if let secondary { fields.merge(secondary.statusFields) { $1 } }
        mergeSplitBrainResyncStatus(into: &fields)  // after the replicator's: it names the session's start
        let states = reportedDiskStates
        fields["disk_state"] = .string(states.diskState.rawValue)
        if let peer = states.peerDiskState { fields["peer_disk_state"] = .string(peer.rawValue) }
        if let redundant = states.redundant { fields["redundant"] = .bool(redundant) }
        mergeDisklessDiskState(into: &fields)
        if fields["last_error"] == nil, let refusalError { fields["last_error"] = .string(refusalError) }
        if let peerDiskFailure { fields["last_error"] = .string(peerDiskFailure) }
        health.merge(into: &fields)
        fields["io"] = .object([
            "read_requests": .int(Int64(stats.readRequests)), "read_bytes": .int(Int64(stats.readBytes)),
            "write_requests": .int(Int64(stats.writeRequests)), "write_bytes": .int(Int64(stats.writeBytes)),
            "flush_requests": .int(Int64(stats.flushRequests)), "other_requests": .int(Int64(stats.otherRequests)),
            "errors": .int(Int64(stats.errors)),
        ])
        return fields
    }
}
