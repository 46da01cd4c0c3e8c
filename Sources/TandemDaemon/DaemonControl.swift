// DaemonControl: executes control commands. Runs on control-server threads; every state
// change happens on the loop thread through EventLoop.execute, so commands are serialised
// with the data path without locks. Reads (`status`, the `events` dump) share one snapshot
// per wave of readers (SnapshotCoalescer), so pollers do not each take a turn of the loop.
import Logging
import TandemControl
import TandemCore
import TandemIO

final class DaemonControl: ControlHandler {
    let registry: ResourceRegistry
    let loop: EventLoop
    let config: DaemonConfig
    let logger: Logger
    let events: EventHub
    static let version = "0.1.0"
    /// Commands DESIGN.md names that arrive with later issues (bitmap, resync, split brain).
    static let laterCommands: Set<String> = []
    /// Shortest time between two status snapshots of the loop (docs/control-protocol.md,
    /// "Staleness"): under a storm of pollers each waits at most this long for its answer.
    static let statusIntervalNs: UInt64 = 10_000_000
    /// Every resource's status, taken on the loop for the readers waiting at once.
    let statusSnapshots: SnapshotCoalescer<[String: JSONValue]>

    init(registry: ResourceRegistry, loop: EventLoop, config: DaemonConfig, events: EventHub, logger: Logger) {
        self.registry = registry
        self.loop = loop
        self.config = config
        self.events = events
        self.logger = logger
        statusSnapshots = SnapshotCoalescer(loop: loop, intervalNs: Self.statusIntervalNs) { [registry] in
            registry.statusAll()
        }
    }

    func handle(_ request: ControlRequest, credentials: PeerCredentials) -> ControlReply {
        let result: Result<[String: JSONValue], ControlError>
        switch request.cmd {
        case "ping":
            result = .success([
                "node": .string(config.nodeName), "version": .string(Self.version),
                "protocol_version": .int(ControlProtocol.version),
            ])
        case "capabilities":
            result = .success(capabilities)
        case "create":
            result = create(request.args)
        case "status":
            result = status(request.args)
        case "delete":
            result = delete(request.args)
        case "trace":
            result = trace(request.args)
        case "enable", "disable", "failover", "demote":
            result = transition(request.cmd, request.args)
        case "reload-tls":
            let registry = self.registry
            result = loop.submitAndWait { Result { () throws(ControlError) in try registry.context.reloadTLS() } }
        case "create-md":
            result = createMetadata(request.args)
        case "outdate-peer", "verify", "outdate":
            result = resourceCommand(request.cmd, request.args)
        case "set":
            result = set(request.args)
        case "resolve":
            result = resolve(request.args)
        case "resize":
            result = resize(request.args)
        case let command where Self.laterCommands.contains(command):
            result = .failure(ControlError(.unsupported, "'\(command)' is not supported by this version yet"))
        default:
            result = .failure(ControlError(.unknownCommand, "unknown command '\(request.cmd)'"))
        }
        if case .failure(let error) = result {
            logger.notice("control command refused", metadata: [
                "cmd": "\(request.cmd)", "error": "\(error.code.rawValue)", "message": "\(error.message)",
            ])
        }
        return ControlReply(id: request.id, result: result)
    }

    private func create(_ args: [String: JSONValue]) -> Result<[String: JSONValue], ControlError> {
        let spec: ResourceSpec
        do {
            spec = try ResourceSpec.parse(createArgs: args, defaultNBDSocketDirectory: runtimeDirectory)
        } catch {
            return .failure(error)
        }
        let registry = self.registry
        return loop.submitAndWait { Result { () throws(ControlError) in try registry.create(spec) } }
    }

    /// `status`: from a snapshot taken after the request arrived (`statusSnapshots`), with
    /// `status_age_ms`, how long before the reply it was taken.
    private func status(_ args: [String: JSONValue]) -> Result<[String: JSONValue], ControlError> {
        var name: String?
        if let nameValue = args["name"] {
            guard case .string(let named) = nameValue else {
                return .failure(ControlError(.invalidArgument, "name: must be a string"))
            }
            name = named
        }
        let snapshot = statusSnapshots.read()
        let ageMs = Int64((MonotonicClock.nowNs() - snapshot.takenAtNs) / 1_000_000)
        var fields: [String: JSONValue]
        if let name {
            guard case .array(let resources)? = snapshot.value["resources"],
                let found = resources.first(where: { $0.objectValue?["name"] == .string(name) })?.objectValue
            else { return .failure(ControlError(.notFound, "no resource '\(name)'")) }
            fields = found
        } else {
            fields = snapshot.value
        }
        fields["status_age_ms"] = .int(ageMs)
        return .success(fields)
    }

    private func delete(_ args: [String: JSONValue]) -> Result<[String: JSONValue], ControlError> {
        guard let nameValue = args["name"] else { return .failure(ControlError(.missingArgument, "name: required")) }
        guard case .string(let name) = nameValue else {
            return .failure(ControlError(.invalidArgument, "name: must be a string"))
        }
        let registry = self.registry
        let error: ControlError? = loop.awaitOnLoop { done in registry.delete(name, done) }
        if let error { return .failure(error) }
        return .success(["name": .string(name)])
    }

    /// `set`: `name` and the settings to change (ResourceSettingChange), all validated before
    /// any changes; applied, persisted and answered with the resource's status.
    private func set(_ args: [String: JSONValue]) -> Result<[String: JSONValue], ControlError> {
        if args["resync_concurrency_max"] != nil {
            guard args["name"] == nil else {
                return .failure(ControlError(.invalidArgument,
                    "'resync_concurrency_max' is a daemon setting: set it without 'name' (e.g. {\"cmd\":\"set\",\"resync_concurrency_max\":8})"))
            }
            return setDaemon(args)
        }
        let change: ResourceSettingChange
        do { change = try ResourceSettingChange.parse(args) } catch { return .failure(error) }
        let registry = self.registry
        return loop.submitAndWait { Result { () throws(ControlError) in try registry.change(change) } }
    }

    /// `set` without `name`: the daemon's live settings (`resync_concurrency_max`, 1-1024),
    /// validated before anything changes; not persisted (the configuration file is the
    /// daemon's start-up state).
    private func setDaemon(_ args: [String: JSONValue]) -> Result<[String: JSONValue], ControlError> {
        var reader = ArgumentReader(args)
        let count: Int64
        do throws(ControlError) {
            count = try reader.optionalInteger("resync_concurrency_max", in: 1...1024, unit: "resources") ?? 0
            try reader.finish()
        } catch {
            return .failure(error)
        }
        let registry = self.registry
        return loop.submitAndWait { .success(registry.changeDaemon(resyncConcurrencyMax: Int(count))) }
    }

    /// `verify`, `outdate-peer` and `outdate`: `name`, nothing else; answered with the status.
    private func resourceCommand(_ command: String, _ args: [String: JSONValue]) -> Result<[String: JSONValue], ControlError> {
        let name: String
        switch resourceName(args) {
        case .success(let found): name = found
        case .failure(let error): return .failure(error)
        }
        if let unknown = args.keys.first(where: { $0 != "name" }) {
            return .failure(ControlError(.invalidArgument, "unknown argument '\(unknown)' for \(command) (it takes name)"))
        }
        let registry = self.registry
        return loop.submitAndWait {
            Result { () throws(ControlError) in
                let resource = try registry.resource(name)
                switch command {
                case "verify": try resource.verify()
                case "outdate-peer": try resource.outdatePeer()
                default: try resource.outdate()
                }
                return try registry.status(name)
            }
        }
    }

    /// `create-md`: `name`, `force` (required true).
    private func createMetadata(_ args: [String: JSONValue]) -> Result<[String: JSONValue], ControlError> {
        let name: String
        switch resourceName(args) {
        case .success(let found): name = found
        case .failure(let error): return .failure(error)
        }
        let forced: Bool
        switch flag(args, "force") {
        case .success(let value): forced = value ?? false
        case .failure(let error): return .failure(error)
        }
        if let unknown = args.keys.first(where: { !["name", "force"].contains($0) }) {
            return .failure(ControlError(.invalidArgument, "unknown argument '\(unknown)'"))
        }
        let registry = self.registry
        return loop.submitAndWait { Result { () throws(ControlError) in try registry.createMetadata(name, force: forced) } }
    }

    private func resourceName(_ args: [String: JSONValue]) -> Result<String, ControlError> {
        guard let nameValue = args["name"] else { return .failure(ControlError(.missingArgument, "name: required")) }
        guard case .string(let name) = nameValue else {
            return .failure(ControlError(.invalidArgument, "name: must be a string"))
        }
        return .success(name)
    }

    /// A boolean argument: nil when absent, `invalid-argument` when not a boolean.
    private func flag(_ args: [String: JSONValue], _ key: String) -> Result<Bool?, ControlError> {
        guard let value = args[key] else { return .success(nil) }
        guard case .bool(let flag) = value else { return .failure(ControlError(.invalidArgument, "\(key): must be true or false")) }
        return .success(flag)
    }

    /// enable, disable, failover (force), demote: each waits on the loop until the change is
    /// done or refused.
    private func transition(_ command: String, _ args: [String: JSONValue]) -> Result<[String: JSONValue], ControlError> {
        let name: String
        switch resourceName(args) {
        case .success(let found): name = found
        case .failure(let error): return .failure(error)
        }
        var force = false
        switch flag(args, "force") {
        case .success(nil): break
        case .success(let value?):
            guard command == "failover" else { return .failure(ControlError(.invalidArgument, "force: only for failover")) }
            force = value
        case .failure(let error): return .failure(error)
        }
        var allowInconsistent = false
        switch flag(args, "allow_inconsistent") {
        case .success(nil): break
        case .success(let flag?):
            guard command == "failover" else {
                return .failure(ControlError(.invalidArgument, "allow_inconsistent: only for failover"))
            }
            guard !flag || force else {
                return .failure(ControlError(.invalidArgument, "allow_inconsistent: only together with force: true"))
            }
            allowInconsistent = flag
        case .failure(let error): return .failure(error)
        }
        // Diskless regions (Resource+DisklessRegions): a replaced disk pulls the whole volume.
        var wholeVolume = false
        switch flag(args, "whole_volume") {
        case .success(nil): break
        case .success(let flag?):
            guard command == "enable" else { return .failure(ControlError(.invalidArgument, "whole_volume: only for enable")) }
            wholeVolume = flag
        case .failure(let error): return .failure(error)
        }
        let pullsWholeVolume = wholeVolume
        let registry = self.registry
        let forced = force
        let acceptsInconsistent = allowInconsistent
        let error: ControlError? = loop.awaitOnLoop { done in
            let resource: Resource
            do throws(ControlError) { resource = try registry.resource(name) } catch { return done(error) }
            switch command {
            case "enable":
                if pullsWholeVolume {
                    do throws(ControlError) { try resource.pullWholeVolumeAtEnable() } catch { return done(error) }
                }
                // A group's members replicate together (docs/groups.md): enable starts them all.
                Self.onGroup(registry.groupMembers(of: resource).filter { $0 === resource || !$0.enabled }, done) {
                    member, finished in
                    do throws(ControlError) { try member.enable() } catch { return finished(error) }
                    finished(nil)
                }
            case "disable":
                Self.onGroup(registry.groupMembers(of: resource).filter { $0 === resource || $0.enabled }, done) {
                    $0.disable($1)
                }
            case "failover":
                let role = resource.spec.role
                Self.onGroup(registry.groupMembers(of: resource).filter { $0 === resource || $0.spec.role == role }, done) {
                    $0.failover(force: forced, allowInconsistent: acceptsInconsistent, $1)
                }
            default:
                // demote hands the whole group over (docs/groups.md).
                let role = resource.spec.role
                Self.onGroup(registry.groupMembers(of: resource).filter { $0 === resource || $0.spec.role == role }, done) {
                    $0.demote($1)
                }
            }
        }
        if let error { return .failure(error) }
        return loop.submitAndWait { Result { () throws(ControlError) in try registry.status(name) } }
    }

    /// `resolve`: `name` and `discard` (`local` or `peer`): ends a split brain
    /// (Resource+Generations), then answers with the status.
    private func resolve(_ args: [String: JSONValue]) -> Result<[String: JSONValue], ControlError> {
        let name: String
        switch resourceName(args) {
        case .success(let found): name = found
        case .failure(let error): return .failure(error)
        }
        let discardLocal: Bool
        switch args["discard"] {
        case .string("local")?: discardLocal = true
        case .string("peer")?: discardLocal = false
        case nil: return .failure(ControlError(.missingArgument, "discard: local or peer (whose changes since the split are dropped)"))
        default: return .failure(ControlError(.invalidArgument, "discard: must be local or peer"))
        }
        if args.keys.contains(where: { $0 != "name" && $0 != "discard" }) {
            return .failure(ControlError(.invalidArgument, "unknown argument for resolve (it takes name and discard)"))
        }
        let registry = self.registry
        let error: ControlError? = loop.awaitOnLoop { done in
            let resource: Resource
            do throws(ControlError) { resource = try registry.resource(name) } catch { return done(error) }
            resource.resolve(discardLocal: discardLocal, done)
        }
        if let error { return .failure(error) }
        return loop.submitAndWait { Result { () throws(ControlError) in try registry.status(name) } }
    }


    /// `resize`: `name`, `size_bytes` (a positive multiple of 4096), `force` (to shrink):
    /// waits until both nodes (or this one, alone) have the new size, then answers with the
    /// status (Resource+Resize).
    private func resize(_ args: [String: JSONValue]) -> Result<[String: JSONValue], ControlError> {
        let name: String
        switch resourceName(args) {
        case .success(let found): name = found
        case .failure(let error): return .failure(error)
        }
        guard let sizeValue = args["size_bytes"] else {
            return .failure(ControlError(.missingArgument, "size_bytes: required (the new size in bytes)"))
        }
        guard case .int(let sizeInt) = sizeValue, sizeInt > 0 else {
            return .failure(ControlError(.invalidArgument, "size_bytes: must be a positive integer"))
        }
        let forced: Bool
        switch flag(args, "force") {
        case .success(let value): forced = value ?? false
        case .failure(let error): return .failure(error)
        }
        if let unknown = args.keys.first(where: { !["name", "size_bytes", "force"].contains($0) }) {
            return .failure(ControlError(.invalidArgument, "unknown argument '\(unknown)' for resize (it takes name, size_bytes, force)"))
        }
        let registry = self.registry
        let size = UInt64(sizeInt)
        let error: ControlError? = loop.awaitOnLoop { done in
            let resource: Resource
            do throws(ControlError) { resource = try registry.resource(name) } catch { return done(error) }
            resource.resize(toBytes: size, force: forced, done)
        }
        if let error { return .failure(error) }
        return loop.submitAndWait { Result { () throws(ControlError) in try registry.status(name) } }
    }

    /// `events`: one JSON line per state change until the client goes away. Optional `name`
    /// filters by resource.
    func stream(_ request: ControlRequest, credentials: PeerCredentials, emit: (ControlReply) -> Bool) {
        guard request.cmd == "events" else { return _ = emit(handle(request, credentials: credentials)) }
        var filter: String?
        if let value = request.args["name"] {
            guard case .string(let name) = value else {
                return _ = emit(ControlReply.failure(request.id, ControlError(.invalidArgument, "name: must be a string")))
            }
            filter = name
        }
        let subscriber = events.subscribe()
        defer { events.unsubscribe(subscriber) }
        guard emit(.ok(request.id, ["event": .string("subscribed")])) else { return }
        // Subscribed first, then the snapshot: a change racing the dump comes after it, so
        // the reader's picture is never older than the daemon's.
        for event in EventHub.existsEvents(statusSnapshots.read().value, only: filter) {
            guard emit(.ok(request.id, event)) else { return }
        }
        guard emit(.ok(request.id, ["event": .string("initial-done"), "time_ms": .int(EventHub.wallClockMs())])) else {
            return
        }
        while true {
            let (batch, dropped) = events.take(subscriber, timeoutMs: 1000)
            if dropped > 0, !emit(.ok(request.id, ["event": .string("events-dropped"), "count": .int(Int64(dropped))])) {
                return
            }
            for event in batch {
                if let filter, case .string(let resource)? = event["resource"], resource != filter { continue }
                guard emit(.ok(request.id, event)) else { return }
            }
            if batch.isEmpty, !emit(.ok(request.id, ["event": .string("heartbeat"), "time_ms": .int(EventHub.wallClockMs())])) {
                return
            }
        }
    }

    /// Where NBD sockets go when `create` names none: beside the control socket.
    private var runtimeDirectory: String {
        let path = config.controlSocket
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }
}
