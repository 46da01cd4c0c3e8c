// TandemDaemon owns a node's running state: its resources (volume, NBD export, replication
// drivers that carry out TandemCore's decisions on the ring and the TLS link, the persisted
// record and marker files), the control server, the metrics endpoint, the config and the
// resource store. It decides no replication rule itself (TandemCore does), and never lets a
// client, peer or disk failure crash the process: a failure stays with its resource.
//
// Daemon: composition. The main thread runs the event loop (the ring is created on it and
// only it submits); the control server and the metrics endpoint run their own threads and hand
// every command or scrape to the loop; a signal thread turns SIGTERM/SIGINT into a clean stop.
import Glibc
import Logging
import TandemControl
import TandemCore
import TandemIO
import TandemNBD

public final class Daemon {
    public let config: DaemonConfig
    let logger: Logger

    public init(config: DaemonConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
    }

    /// Runs until SIGTERM/SIGINT; returns after a clean shutdown.
    public func run() throws {
        blockTerminationSignals()
        try makeDirectory(config.stateDir)
        let loop = try EventLoop(ringEntries: config.ringEntries, poolBytes: Int(config.bufferPoolBytes), logger: logger)
        let buffers = DataBuffers(pool: loop.pool, heapBudgetBytes: 2 * Int(config.maxRequestBytes))
        let store = ResourceStore(stateDir: config.stateDir)
        let events = EventHub(logger: logger)
        let registry = ResourceRegistry(loop: loop, buffers: buffers, store: store, config: config, events: events,
                                        logger: logger)
        if config.tlsCA != nil {
            try registry.acceptor.start()
        } else {
            logger.notice("no tls_ca configured: the replication listener is off")
        }
        registry.restore()
        let control = DaemonControl(registry: registry, loop: loop, config: config, events: events, logger: logger)
        let server = ControlServer(path: config.controlSocket, group: config.controlGroup, handler: control, logger: logger)
        let metrics = try startMetrics(registry: registry, loop: loop)
        do {
            try server.start()
        } catch {
            metrics?.stop()
            throw error
        }
        let notify = SystemdNotify.fromProcessEnvironment()
        if notify.watchdogIntervalNs != nil { loop.onTick { notify.send("WATCHDOG=1") } }
        startSignalThread(loop: loop, beforeStop: { metrics?.stop() }, onHangUp: {
            // reloadTLS logs and publishes the outcome itself.
            _ = loop.submitAndWait { Result { () throws(ControlError) in try registry.context.reloadTLS() } }
        })
        logger.info("tandemd ready", metadata: [
            "node": "\(config.nodeName)", "control": "\(config.controlSocket)",
            "resources": "\(registry.count)", "registered_buffers": "\(loop.pool.registered)",
        ])
        notify.send("READY=1\nSTATUS=serving \(registry.count) resources")
        loop.run()
        notify.send("STOPPING=1")
        server.stop()
        stopResources(registry, loop: loop)
        logger.info("tandemd stopped")
    }

    /// How long a start tries again an address that is in use (`Sockets.listenTCP`'s
    /// patience): a restart right after a kill -9 can find the dead daemon's listener not yet
    /// released by the kernel. A port some other process holds fails the start after it.
    static let bindPatienceNs: UInt64 = 5_000_000_000

    /// The start's line for an address in use that it tries again.
    static func logBindWait(_ logger: Logger, _ setting: String, _ address: String, _ error: IOError) {
        logger.notice("address in use; trying again", metadata: [
            "setting": "\(setting)", "address": "\(address)", "error": "\(error)",
            "patience_s": "\(bindPatienceNs / 1_000_000_000)",
        ])
    }

    /// How long shutdown waits for the resources to stop (their local I/O, a primary's stop
    /// flush), beside a diskless primary's drain of its peer (up to `ping_timeout_ms`:
    /// PrimaryNode+PeerDrain); beyond it the process exits and the next start treats the stop as unclean.
    static let shutdownTimeoutNs: UInt64 = 20_000_000_000

    /// Stops every resource with the loop still turning: a primary's stop flushes its disk
    /// and only then records a clean stop (PrimaryNode), which needs the flush's completion.
    private func stopResources(_ registry: ResourceRegistry, loop: EventLoop) {
        var stopped = false
        registry.stopAll { stopped = true }
        let timeoutNs = Self.shutdownTimeoutNs + UInt64(config.pingTimeoutMs) * 1_000_000
        loop.runWhile(deadlineNs: MonotonicClock.nowNs() + timeoutNs) { !stopped }
        if !stopped {
            logger.warning("shutdown: resources still stopping after the timeout; their next start copies",
                           metadata: ["timeout_s": "\(timeoutNs / 1_000_000_000)"])
        }
    }

    /// The Prometheus endpoint, when `metrics_listen` is set; a bind failure stops start-up.
    private func startMetrics(registry: ResourceRegistry, loop: EventLoop) throws -> MetricsServer? {
        guard let address = config.metricsListen else { return nil }
        let version = DaemonControl.version
        // Scrapes at once share one snapshot of the loop, as `status` readers do.
        let snapshots = SnapshotCoalescer(loop: loop, intervalNs: DaemonControl.statusIntervalNs) {
            registry.metrics(version: version)
        }
        let server = MetricsServer(address: address, logger: logger) {
            MetricsExposition.render(snapshots.read().value, process: ProcessMetrics.current())
        }
        try server.start()
        return server
    }

    private func makeDirectory(_ path: String) throws {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o700) != 0 && errno != EEXIST {
                throw IOError(errno: errno, "mkdir \(current)")
            }
        }
    }

    /// Blocked in every thread created after this, so only the signal thread receives them.
    private func blockTerminationSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    /// `beforeStop` runs on the signal thread while the loop still runs (the metrics threads
    /// may be waiting for it), then the loop is told to stop. SIGHUP runs `onHangUp` (the TLS
    /// material is reloaded) and the daemon goes on.
    private func startSignalThread(loop: EventLoop, beforeStop: @escaping @Sendable () -> Void,
                                   onHangUp: @escaping @Sendable () -> Void) {
        let logger = self.logger
        var thread = pthread_t()
        let context = Unmanaged.passRetained(
            SignalContext(loop: loop, logger: logger, beforeStop: beforeStop, onHangUp: onHangUp)).toOpaque()
        pthread_create(&thread, nil, { raw in
            let context = Unmanaged<SignalContext>.fromOpaque(raw!).takeRetainedValue()
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, SIGTERM)
            sigaddset(&set, SIGINT)
            sigaddset(&set, SIGHUP)
            while true {
                var signalNumber: Int32 = 0
                guard sigwait(&set, &signalNumber) == 0 else { continue }
                if signalNumber == SIGHUP {
                    context.logger.info("reloading TLS material on SIGHUP")
                    context.onHangUp()
                    continue
                }
                context.logger.info("stopping on signal", metadata: ["signal": "\(signalNumber)"])
                context.beforeStop()
                context.loop.stop()
                return nil
            }
        }, context)
        pthread_detach(thread)
    }
}

private final class SignalContext: @unchecked Sendable {
    let loop: EventLoop
    let logger: Logger
    let beforeStop: @Sendable () -> Void
    let onHangUp: @Sendable () -> Void
    init(loop: EventLoop, logger: Logger, beforeStop: @escaping @Sendable () -> Void,
         onHangUp: @escaping @Sendable () -> Void) {
        self.loop = loop
        self.logger = logger
        self.beforeStop = beforeStop
        self.onHangUp = onHangUp
    }
}
