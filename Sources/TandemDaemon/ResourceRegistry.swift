// ResourceRegistry: the resources this node serves, by name. Confined to the loop thread
// (hence `@unchecked Sendable`: other threads only reach it through EventLoop.execute).
import Glibc
import Logging
import TandemControl
import TandemCore
import TandemIO

final class ResourceRegistry: @unchecked Sendable {
    let loop: EventLoop
    let buffers: DataBuffers
    let store: ResourceStore
    let config: DaemonConfig
    let logger: Logger
    let events: EventHub
    let context: ReplicationContext
    private var resources: [String: Resource] = [:]
    /// Persisted resources whose volume could not be opened at start: reported Failed (and
    /// deletable) so that one bad disk neither stops the daemon nor hides the resource.
    private var unopened: [String: (spec: ResourceSpec, failure: DiskFailure)] = [:]
    private(set) var acceptor: PeerAcceptor!

    init(loop: EventLoop, buffers: DataBuffers, store: ResourceStore, config: DaemonConfig, events: EventHub,
         logger: Logger) {
        self.loop = loop
        self.buffers = buffers
        self.store = store
        self.config = config
        self.logger = logger
        self.events = events
        context = ReplicationContext(loop: loop, config: config, events: events, logger: logger)
        acceptor = PeerAcceptor(context: context) { [unowned self] name in self.resources[name] }
        acceptor.unopenedReason = { [unowned self] name in self.unopened[name].map { "\($0.failure.operation): \($0.failure.message)" } }
        loop.onTick { [unowned self] in
            for resource in self.resources.values {
                resource.primary?.tick()
                resource.secondary?.tick()
            }
        }
    }

    // groups (issue 16 §3)
    /// `resource` and the other resources of its consistency group here, by name (just
    /// `resource` when it is in none).
    func groupMembers(of resource: Resource) -> [Resource] {
        guard let group = resource.spec.group else { return [resource] }
        let others = resources.values.filter { $0 !== resource && $0.spec.group == group }
        return [resource] + others.sorted { $0.spec.name < $1.spec.name }
    }

    func resource(_ name: String) throws(ControlError) -> Resource {
        if let entry = unopened[name] {
            throw ControlError(.wrongState, "resource '\(name)' could not open its volume at start (\(entry.failure.message)); fix the disk and restart the daemon, or delete the resource")
        }
        guard let resource = resources[name] else { throw ControlError(.notFound, "no resource '\(name)'") }
        return resource
    }

    var count: Int { resources.count + unopened.count }

    /// Every resource, by name (metrics).
    var sortedResources: [Resource] { resources.keys.sorted().map { resources[$0]! } }

    /// Brings back every persisted resource; one whose volume fails to open is logged and
    /// listed as Failed (`unopened`), and the others are served.
    func restore() {
        let (specs, problems, fencingDefaulted) = store.loadAll()
        for problem in problems { logger.error("persisted resource unreadable", metadata: ["problem": "\(problem)"]) }
        for spec in specs {
            if fencingDefaulted.contains(spec.name) { announceFencingDefaulted(spec) }
            do {
                // A volume missing at start is reported, never re-created empty.
                try open(spec, creating: false)
            } catch {
                recordUnopened(spec, error)
            }
        }
    }

    /// A resource file from before `fencing` existed: it keeps the behaviour it was created
    /// with (`suspend-io`), says so, and is rewritten with the setting named.
    private func announceFencingDefaulted(_ spec: ResourceSpec) {
        let reason = "the resource file predates the fencing setting; kept the behaviour it was created with"
        logger.notice("fencing defaulted", metadata: [
            "resource": "\(spec.name)", "fencing": "\(spec.fencing.rawValue)", "reason": "\(reason)",
        ])
        events.publish(resource: spec.name, "fencing-defaulted", [
            "fencing": .string(spec.fencing.rawValue), "reason": .string(reason),
        ])
        do { try store.save(spec) } catch {
            logger.error("rewriting the resource file failed", metadata: ["resource": "\(spec.name)", "error": "\(error)"])
        }
    }

    /// A resource whose volume or metadata could not be opened: listed as Failed.
    private func recordUnopened(_ spec: ResourceSpec, _ error: ControlError) {
        logger.error("resource could not be restored", metadata: ["resource": "\(spec.name)", "error": "\(error.message)"])
        // Resource.init names metadata failures "metadata <path>: <reason>".
        let operation = error.message.hasPrefix("metadata ") ? "metadata open" : "open"
        let failure = DiskFailure(operation: operation, errno: Self.errno(in: error), message: error.message)
        unopened[spec.name] = (spec, failure)
        events.publish(resource: spec.name, "disk-failed", ["disk_error": failure.json, "disk_state": .string(DiskState.failed.rawValue)])
    }

    /// `create-md` with `force`: re-initialises a resource's metadata (docs/metadata.md). A
    /// resource that could not open its metadata at start is opened again with the new file.
    func createMetadata(_ name: String, force: Bool) throws(ControlError) -> [String: JSONValue] {
        guard unopened[name] != nil || resources[name] != nil else { throw ControlError(.notFound, "no resource '\(name)'") }
        guard force else {
            throw ControlError(.invalidArgument, "create-md replaces the metadata of '\(name)' with one that claims nothing: the next connection copies the whole volume; repeat with force: true")
        }
        guard let entry = unopened[name] else {
            try resources[name]!.reinitialiseMetadata()
            return resources[name]!.status
        }
        var spec = entry.spec
        guard let sizeBytes = spec.sizeBytes else {
            throw ControlError(.wrongState, "resource '\(name)' has no recorded size; delete and re-create it")
        }
        let path = spec.metadataInternal
            ? spec.volume : spec.metadataPath ?? MetadataStore.defaultPath(stateDir: config.stateDir, name: name)
        if !spec.metadataInternal { spec.metadataPath = path }
        do throws(IOError) {
            // Internal: the area of the volume as it measures now (the open that failed could not say).
            var layout: MetadataInternalLayout?
            if spec.metadataInternal {
                layout = try MetadataStore.internalLayout(volumePath: path, logger: logger)
                guard layout != nil else { throw IOError(errno: EINVAL, "the volume is too small for internal metadata") }
            }
            try MetadataStore.reinitialise(spec, path: path, volumeSizeBytes: sizeBytes, internalLayout: layout)
        } catch {
            throw ControlError(.ioError, "metadata \(path): \(error)")
        }
        Resource.publishCreated(events, name: name, path: path)
        unopened.removeValue(forKey: name)
        do throws(ControlError) { try open(spec, creating: false) } catch {
            recordUnopened(spec, error)
            throw error
        }
        return resources[name]!.status
    }

    /// `set`: persists the changed spec first (a failure changes nothing), then applies it to
    /// the running resource.
    func change(_ change: ResourceSettingChange) throws(ControlError) -> [String: JSONValue] {
        let resource = try resource(change.name)
        var spec = resource.spec
        if let rate = change.resyncRateBytesPerSecond { spec.resyncRateBytesPerSecond = rate }
        if let rate = change.resyncRateMinBytesPerSecond { spec.resyncRateMinBytesPerSecond = rate }
        if let timeout = change.diskTimeoutMs { spec.diskTimeoutMs = timeout }
        if let policy = change.afterSplitBrain { spec.afterSplitBrain = policy }
        if let rate = change.bandwidthBytesPerSecond { spec.bandwidthBytesPerSecond = rate }
        if let policy = change.readBalancing { spec.readBalancing = policy }
        if let period = change.periodS {
            guard spec.mode == .periodic else {
                throw ControlError(.invalidArgument, "argument 'period_s': is only allowed with mode periodic (mode is \(spec.mode.rawValue))")
            }
            spec.periodS = period
        }
        do { try store.save(spec) } catch {
            throw ControlError(.ioError, "persisting the resource failed, nothing changed: \(Resource.describe(error))")
        }
        resource.spec = spec
        if let rate = change.resyncRateBytesPerSecond { resource.primary?.setResyncRate(rate) }
        if let rate = change.resyncRateMinBytesPerSecond { resource.primary?.setResyncRateMin(rate) }
        if change.diskTimeoutMs != nil { resource.applyDiskTimeout() }
        if let period = change.periodS { resource.primary?.setPeriod(seconds: period) }
        if let rate = change.bandwidthBytesPerSecond { resource.primary?.setBandwidth(rate) }
        if let policy = change.readBalancing { resource.primary?.setReadBalancing(policy) }
        events.publish(resource: change.name, "settings-changed", change.jsonFields)
        logger.notice("settings changed", metadata: ["resource": "\(change.name)", "settings": "\(change.jsonFields)"])
        return resource.status
    }

    func create(_ spec: ResourceSpec) throws(ControlError) -> [String: JSONValue] {
        guard resources[spec.name] == nil, unopened[spec.name] == nil else {
            throw ControlError(.exists, "resource '\(spec.name)' exists")
        }
        if let other = resources.values.first(where: { $0.spec.nbd.socket == spec.nbd.socket || $0.spec.volume == spec.volume }) {
            throw ControlError(.exists, "resource '\(other.spec.name)' already uses this volume or NBD socket")
        }
        // groups: a group's members share their peer and mode (docs/groups.md).
        for other in resources.values {
            if let conflict = spec.groupConflict(with: other.spec) {
                throw ControlError(.invalidArgument, "argument 'group': \(conflict)")
            }
        }
        var spec = spec
        if let extents = spec.alExtents, extents != 0 {
            // One request may touch this many extents, all of which must fit in the log at once.
            let needed = ActivityLogSettings.extentsPerWrite(
                writeBytesMax: UInt64(config.maxRequestBytes), extentBytes: UInt64(MetadataSuperblock.alExtentBytesDefault))
            guard extents >= needed else {
                throw ControlError(.invalidArgument, "argument 'al_extents': must be 0 (no activity log) or at least \(needed) "
                    + "(one request of max_request_bytes \(config.maxRequestBytes) may touch that many 4 MiB extents), got \(extents)")
            }
        }
        if spec.metadataPath == nil && !spec.metadataInternal {
            spec.metadataPath = MetadataStore.defaultPath(stateDir: config.stateDir, name: spec.name)
        }
        // stage: the staging journal's place and size are fixed at create (persisted resolved).
        if spec.stagingPath == nil { spec.stagingPath = StagingJournal.defaultPath(stateDir: config.stateDir, name: spec.name) }
        if spec.stagingBytes == nil { spec.stagingBytes = StagingJournal.bytesDefault }
        // `create` writes a new metadata file there: it must not be anyone's volume or metadata.
        // Internal metadata is written into the volume, which the check above keeps unshared.
        let metadataPath = spec.metadataPath ?? spec.volume
        if !spec.metadataInternal && metadataPath == spec.volume {
            throw ControlError(.invalidArgument, "metadata_path: must not be the volume")
        }
        if let other = resources.values.first(where: { $0.metadata.path == metadataPath || $0.spec.volume == metadataPath }) {
            throw ControlError(.exists, "resource '\(other.spec.name)' already uses \(metadataPath) as its volume or metadata")
        }
        let stateFilesBefore = stateFiles(of: spec.name, metadataPath: spec.metadataInternal ? nil : metadataPath).filter { access($0, F_OK) == 0 }
        try open(spec, creating: true)
        let resource = resources[spec.name]!
        spec.sizeBytes = resource.volume.sizeBytes
        do {
            try store.save(spec)
        } catch {
            undoCreate(resource, keeping: stateFilesBefore)
            throw ControlError(.ioError, "persisting the resource failed: \(Resource.describe(error))")
        }
        return resource.status
    }

    /// A create refused after its resource opened leaves nothing it made: the volume file
    /// it created, the NBD socket, a spec file a failed save may have left, state files that
    /// were not there before. Synchronous, so that the refusal is only sent when they are gone.
    private func undoCreate(_ resource: Resource, keeping stateFilesBefore: [String]) {
        let name = resource.spec.name
        resource.stopServing()
        if let layout = resource.internalLayout {
            resource.metadata.close()
            Resource.discardCreatedMetadata(path: resource.metadata.path, internalLayout: layout)
        }
        resource.volume.discardCreatedFile()
        for path in stateFiles(of: name, metadataPath: resource.internalLayout != nil ? nil : resource.metadata.path) where !stateFilesBefore.contains(path) {
            unlink(path)
        }
        do { try store.remove(name: name) } catch {
            logger.error("removing a refused resource's spec failed", metadata: ["resource": "\(name)", "error": "\(error)"])
        }
        remove(name) {}
    }

    /// The files a resource keeps beside its volume: its metadata file, and the three files
    /// of format 2 a conversion may have left (docs/metadata.md).
    /// `metadataPath` nil: internal metadata, in the volume (never a file to remove).
    private func stateFiles(of name: String, metadataPath: String?) -> [String] {
        let old = MetadataStore.legacyPaths(stateDir: config.stateDir, name: name)
        return (metadataPath.map { [$0] } ?? []) + [old.meta, old.enabled, old.peerFailed]
    }

    func status(_ name: String) throws(ControlError) -> [String: JSONValue] {
        if let entry = unopened[name] { return Self.unopenedStatus(entry.spec, entry.failure) }
        guard let resource = resources[name] else { throw ControlError(.notFound, "no resource '\(name)'") }
        return resource.status
    }

    func statusAll() -> [String: JSONValue] {
        let names = (Array(resources.keys) + Array(unopened.keys)).sorted()
        var fields: [String: JSONValue] = ["resources": .array(names.map { name in
            if let entry = unopened[name] { return .object(Self.unopenedStatus(entry.spec, entry.failure)) }
            return .object(resources[name]!.status)
        })]
        // The daemon's resync slots (`set resync_concurrency_max` changes the count live).
        let arbiter = context.resyncArbiter
        fields["resync_concurrency_max"] = .int(Int64(arbiter.slotsMax))
        fields["resyncs_running"] = .int(Int64(arbiter.holders.count))
        fields["resyncs_waiting"] = .int(Int64(arbiter.waitingCount))
        return fields
    }

    /// `set resync_concurrency_max` (no `name`: the daemon): the count from now on, until the
    /// daemon restarts (the configuration file holds what it starts with).
    func changeDaemon(resyncConcurrencyMax count: Int) -> [String: JSONValue] {
        context.resyncArbiter.setSlotsMax(count)
        logger.notice("settings changed", metadata: ["resync_concurrency_max": "\(count)"])
        return ["resync_concurrency_max": .int(Int64(count)),
                "resyncs_running": .int(Int64(context.resyncArbiter.holders.count)),
                "resyncs_waiting": .int(Int64(context.resyncArbiter.waitingCount))]
    }

    func delete(_ name: String, _ done: @escaping (ControlError?) -> Void) {
        if let entry = unopened.removeValue(forKey: name) {
            var files = ResourceStateFiles.paths(stateDir: config.stateDir, name: name, stagingPath: entry.spec.stagingPath)
            if !entry.spec.metadataInternal {
                files.append(entry.spec.metadataPath ?? MetadataStore.defaultPath(stateDir: config.stateDir, name: name))
            }
            do {
                try ResourceStateFiles.remove(files + groupDecisionIfLastMember(entry.spec))
                try store.remove(name: name)
            } catch {
                return done(ControlError(.ioError, "removing the persisted resource failed: \(error)"))
            }
            return done(nil)
        }
        guard let resource = resources[name] else { return done(ControlError(.notFound, "no resource '\(name)'")) }
        guard !resource.enabled else {
            return done(ControlError(.wrongState, "resource '\(name)' is enabled; disable it before deleting it"))
        }
        context.groups.forget(resource.spec)  // a deleted member no longer holds its group
        // Its files go once it stopped: the stop writes its parted bitmap (Resource.stop).
        remove(name) { [store, self] in
            do {
                try resource.removeReplicationFiles()
                try ResourceStateFiles.remove(groupDecisionIfLastMember(resource.spec))
                try store.remove(name: name)
                done(nil)
            } catch {
                done(ControlError(.ioError, "removing the persisted resource failed: \(error)"))
            }
        }
    }

    /// The group's decision file (GroupCommitFile) when `spec` is its last member here (the
    /// spec is already out of the registry): deleted with it, so that a group created later
    /// under the same name rolls forward nothing of the old one's. Empty otherwise.
    private func groupDecisionIfLastMember(_ spec: ResourceSpec) -> [String] {
        guard let group = spec.group else { return [] }
        let others = resources.values.contains { $0.spec.group == group && $0.spec.name != spec.name }
            || unopened.values.contains { $0.spec.group == group && $0.spec.name != spec.name }
        let path = GroupCommitFile.path(stateDir: config.stateDir, group: group)
        return others ? [] : [path, path + ".new"]
    }

    /// Stops every resource at shutdown (their persisted specs stay); `done` runs on the
    /// loop once each has stopped (its primary flushed its disk and recorded its stop).
    func stopAll(_ done: @escaping () -> Void) {
        acceptor.stop()
        var remaining = resources.count
        guard remaining > 0 else { return done() }
        for resource in resources.values {
            resource.stop(loop: loop) {
                remaining -= 1
                if remaining == 0 { done() }
            }
        }
        resources.removeAll()
    }

    /// What `status` says of a resource whose volume could not be opened.
    private static func unopenedStatus(_ spec: ResourceSpec, _ failure: DiskFailure) -> [String: JSONValue] {
        var fields = spec.jsonFields
        fields["role"] = .string(spec.role.rawValue)
        fields["connection_state"] = .string(ConnectionState.standAlone.rawValue)
        let states = ReportedDiskStates.unopened
        fields["disk_state"] = .string(states.diskState.rawValue)
        if let redundant = states.redundant { fields["redundant"] = .bool(redundant) }
        fields["disk_error"] = failure.json
        fields["replication_state"] = .string(ReplicationStreamState.off.rawValue)
        fields["enabled"] = .bool(false)
        fields["nbd_serving"] = .bool(false)
        fields["last_error"] = .string(failure.message)
        return fields
    }

    /// The errno an open failure carried ("... (errno N)"), EIO when it names none.
    private static func errno(in error: ControlError) -> Int32 {
        guard let range = error.message.ranges(of: "(errno ").last,
            let end = error.message[range.upperBound...].firstIndex(of: ")"),
            let value = Int32(error.message[range.upperBound..<end])
        else { return EIO }
        return value
    }

    private func open(_ spec: ResourceSpec, creating: Bool) throws(ControlError) {
        var resourceLogger = logger
        resourceLogger[metadataKey: "resource"] = "\(spec.name)"
        let resource = try Resource(spec: spec, loop: loop, buffers: buffers, config: config, context: context,
                                    creatingVolume: creating, logger: resourceLogger)
        resource.persist = { [store, resourceLogger] spec in
            do { try store.save(spec) } catch {
                resourceLogger.error("persisting the resource failed", metadata: ["error": "\(error)"])
            }
        }
        resources[spec.name] = resource
        if (spec.metadataPath == nil && !spec.metadataInternal) || resource.spec.role != spec.role {
            // Converted from format 2: the resource file now names its metadata. Or a yield
            // killed half-way was completed at open (Resource.completeYieldAtOpen): secondary.
            resource.persist?(resource.spec)
        }
        if resource.recordSaysEnabled {
            do { try resource.enableAtOpen() } catch { resource.enableFailedAtOpen(error) }
        }
        resourceLogger.info("resource serving", metadata: [
            "volume": "\(spec.volume)", "nbd": "\(spec.nbd.socket)", "size_bytes": "\(resource.volume.sizeBytes)",
            "direct_io": "\(resource.volume.direct)",
        ])
    }

    private func remove(_ name: String, _ done: @escaping () -> Void) {
        guard let resource = resources.removeValue(forKey: name) else { return done() }
        resource.stop(loop: loop, done)
    }
}
