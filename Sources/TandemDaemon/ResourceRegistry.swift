// ResourceRegistry: the resources this node serves, by name. Confined to the loop thread
// (hence `@unchecked Sendable`: other threads only reach it through EventLoop.execute).
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
        loop.onTick { [unowned self] in
            for resource in self.resources.values { resource.primary?.tick() }
        }
    }

    func resource(_ name: String) throws(ControlError) -> Resource {
        guard let resource = resources[name] else { throw ControlError(.notFound, "no resource '\(name)'") }
        return resource
    }

    var count: Int { resources.count }

    /// Brings back every persisted resource; one that fails to open is logged and skipped.
    func restore() {
        let (specs, problems) = store.loadAll()
        for problem in problems { logger.error("persisted resource unreadable", metadata: ["problem": "\(problem)"]) }
        for spec in specs {
            do {
                try open(spec)
            } catch {
                logger.error("resource could not be restored", metadata: ["resource": "\(spec.name)", "error": "\(error.message)"])
            }
        }
    }

    func create(_ spec: ResourceSpec) throws(ControlError) -> [String: JSONValue] {
        guard resources[spec.name] == nil else { throw ControlError(.exists, "resource '\(spec.name)' exists") }
        if let other = resources.values.first(where: { $0.spec.nbd.socket == spec.nbd.socket || $0.spec.volume == spec.volume }) {
            throw ControlError(.exists, "resource '\(other.spec.name)' already uses this volume or NBD socket")
        }
        var spec = spec
        try open(spec)
        spec.sizeBytes = resources[spec.name]!.volume.sizeBytes
        do {
            try store.save(spec)
        } catch {
            remove(spec.name) {}
            throw ControlError(.ioError, "persisting the resource failed: \(error)")
        }
        return resources[spec.name]!.status
    }

    func status(_ name: String) throws(ControlError) -> [String: JSONValue] {
        guard let resource = resources[name] else { throw ControlError(.notFound, "no resource '\(name)'") }
        return resource.status
    }

    func statusAll() -> [String: JSONValue] {
        ["resources": .array(resources.keys.sorted().map { .object(resources[$0]!.status) })]
    }

    func delete(_ name: String, _ done: @escaping (ControlError?) -> Void) {
        guard let resource = resources[name] else { return done(ControlError(.notFound, "no resource '\(name)'")) }
        guard !resource.enabled else {
            return done(ControlError(.wrongState, "resource '\(name)' is enabled; disable it before deleting it"))
        }
        resource.removeReplicationFiles()
        remove(name) { [store] in
            do {
                try store.remove(name: name)
                done(nil)
            } catch {
                done(ControlError(.ioError, "removing the persisted resource failed: \(error)"))
            }
        }
    }

    /// Stops every resource at shutdown (their persisted specs stay).
    func stopAll() {
        acceptor.stop()
        for resource in resources.values { resource.stop(loop: loop) {} }
        resources.removeAll()
    }

    private func open(_ spec: ResourceSpec) throws(ControlError) {
        var resourceLogger = logger
        resourceLogger[metadataKey: "resource"] = "\(spec.name)"
        let resource = try Resource(spec: spec, loop: loop, buffers: buffers, config: config, context: context,
                                    logger: resourceLogger)
        resource.persist = { [store, resourceLogger] spec in
            do { try store.save(spec) } catch {
                resourceLogger.error("persisting the resource failed", metadata: ["error": "\(error)"])
            }
        }
        resources[spec.name] = resource
        if resource.markerSaysEnabled {
            do { try resource.enable() } catch {
                resourceLogger.error("re-enabling replication failed", metadata: ["error": "\(error.message)"])
            }
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
