// Daemon: composition of resources, the event loop and the control server.
// (Owned by the data-path work; this is the entry point tandemd calls.)
import Logging

public final class Daemon {
    public let config: DaemonConfig
    let logger: Logger

    public init(config: DaemonConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
    }

    /// Runs until SIGTERM/SIGINT; returns after a clean shutdown.
    public func run() throws {
        fatalError("Daemon.run is not wired yet")
    }
}
