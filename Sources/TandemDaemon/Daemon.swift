// Daemon: composition. The main thread runs the event loop (the ring is created on it and
// only it submits); the control server runs its own threads and hands every command to the
// loop; a signal thread turns SIGTERM/SIGINT into a clean stop.
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
        try server.start()
        let notify = SystemdNotify.fromProcessEnvironment()
        if notify.watchdogIntervalNs != nil { loop.onTick { notify.send("WATCHDOG=1") } }
        startSignalThread(loop: loop)
        logger.info("tandemd ready", metadata: [
            "node": "\(config.nodeName)", "control": "\(config.controlSocket)",
            "resources": "\(registry.count)", "registered_buffers": "\(loop.pool.registered)",
        ])
        notify.send("READY=1\nSTATUS=serving \(registry.count) resources")
        loop.run()
        notify.send("STOPPING=1")
        server.stop()
        registry.stopAll()
        logger.info("tandemd stopped")
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

    private func startSignalThread(loop: EventLoop) {
        let logger = self.logger
        var thread = pthread_t()
        let context = Unmanaged.passRetained(SignalContext(loop: loop, logger: logger)).toOpaque()
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
                if signalNumber == SIGHUP { continue }
                context.logger.info("stopping on signal", metadata: ["signal": "\(signalNumber)"])
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
    init(loop: EventLoop, logger: Logger) {
        self.loop = loop
        self.logger = logger
    }
}
