// What a resource's replicator needs from the daemon: the loop, TLS material, node name,
// events, and the clock. One per daemon; loop thread only.
import Glibc
import Logging
import TandemControl
import TandemCore
import TandemIO

final class ReplicationContext {
    let loop: EventLoop
    let config: DaemonConfig
    let events: EventHub
    let logger: Logger
    /// Daemon-wide counters for the metrics endpoint.
    let counters = DaemonCounters()
    /// `resync_concurrency_max`: which resources may copy now.
    let resyncArbiter: ResyncArbiter
    /// Consistency groups: their members on this node (docs/groups.md).
    let groups: ConsistencyGroups
    /// Client side (the primary dials); the expected name is set per connection.
    private var clientContexts: [String: TLSContext] = [:]
    private var serverContext: TLSContext?
    /// One chunk of zeros (`PrimaryReplicator.chunkBytes`) that every primary's write-zeroes
    /// and zero chunks point at: shared per daemon rather than 1 MiB per pair, and read-only,
    /// so that a stray write into it stops the daemon instead of corrupting every resource.
    private(set) lazy var zeroChunk: UnsafeMutableRawPointer = Self.makeZeroChunk()

    init(loop: EventLoop, config: DaemonConfig, events: EventHub, logger: Logger) {
        self.loop = loop
        self.config = config
        self.events = events
        self.logger = logger
        resyncArbiter = ResyncArbiter(slotsMax: Int(config.resyncConcurrencyMax))
        groups = ConsistencyGroups(stateDir: config.stateDir, events: events, logger: logger)
    }

    /// The last connection refused before its Hello named a resource (TLS or garbage):
    /// every secondary still waiting for its primary shows it as `last_error`.
    private var handshakeFailure: (message: String, ns: UInt64)?

    func noteHandshakeFailure(_ reason: String) {
        handshakeFailure = ("a peer connection failed before it named a resource: \(reason)", Self.nowNs())
    }

    func newerHandshakeFailure(than ns: UInt64) -> String? {
        guard let handshakeFailure, handshakeFailure.ns > ns else { return nil }
        return handshakeFailure.message
    }

    /// Pings and the dead-link bound of every peer link (ping_interval_ms, ping_timeout_ms).
    var liveness: LinkLivenessConfig {
        LinkLivenessConfig(pingIntervalNs: UInt64(config.pingIntervalMs) * 1_000_000,
                           timeoutNs: UInt64(config.pingTimeoutMs) * 1_000_000)
    }

    private static func makeZeroChunk() -> UnsafeMutableRawPointer {
        var memory: UnsafeMutableRawPointer? = nil
        precondition(posix_memalign(&memory, 4096, PrimaryReplicator.chunkBytes) == 0 && memory != nil,
                     "zero chunk allocation")
        memset(memory!, 0, PrimaryReplicator.chunkBytes)
        precondition(mprotect(memory!, PrimaryReplicator.chunkBytes, PROT_READ) == 0, "zero chunk mprotect")
        return memory!  // lives as long as the daemon
    }

    static func nowNs() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    private func credentials() throws(ControlError) -> (ca: String, cert: String, key: String) {
        guard let ca = config.tlsCA, let cert = config.tlsCert, let key = config.tlsKey else {
            throw ControlError(.wrongState, "the peer link needs tls_ca, tls_cert and tls_key in the daemon's config")
        }
        return (ca, cert, key)
    }

    /// A TLS session for dialling `peerName`.
    func clientConnection(peerName: String) throws(ControlError) -> TLSConnection {
        do {
            if clientContexts[peerName] == nil {
                let (ca, cert, key) = try credentials()
                clientContexts[peerName] = try TLSContext(
                    role: .client, caFile: ca, certFile: cert, keyFile: key, expectedPeerName: peerName)
            }
            return try TLSConnection(context: clientContexts[peerName]!)
        } catch let error as ControlError {
            throw error
        } catch {
            throw ControlError(.ioError, "TLS: \(error)")
        }
    }

    /// Reads the CA, certificate and key again from the configured paths, for certificate
    /// rotation (`reload-tls`, SIGHUP). Every context in use is rebuilt first; only when all
    /// load do they replace the old ones, so a bad file changes nothing. New connections use
    /// the new material; links already up keep their sessions (each holds its own context).
    func reloadTLS() throws(ControlError) -> [String: JSONValue] {
        let (ca, cert, key) = try credentials()
        let server: TLSContext
        var clients: [String: TLSContext] = [:]
        do {
            server = try TLSContext(role: .server, caFile: ca, certFile: cert, keyFile: key, expectedPeerName: "any-peer")
            for peer in clientContexts.keys {
                clients[peer] = try TLSContext(role: .client, caFile: ca, certFile: cert, keyFile: key, expectedPeerName: peer)
            }
        } catch {
            let message = "TLS material not reloaded, the previous stays in use: \(error)"
            logger.warning("reload-tls refused", metadata: ["error": "\(error)"])
            events.publish(resource: nil, "tls-reload-refused", ["message": .string(message)])
            throw ControlError(.invalidArgument, message)
        }
        serverContext = server
        clientContexts = clients
        logger.notice("TLS material reloaded", metadata: ["ca": "\(ca)", "cert": "\(cert)", "key": "\(key)"])
        events.publish(resource: nil, "tls-reloaded", ["ca": .string(ca), "cert": .string(cert)])
        return ["tls_ca": .string(ca), "tls_cert": .string(cert), "tls_key": .string(key)]
    }

    /// A TLS session for an accepted connection: the chain is verified in the handshake, the
    /// name once the Hello says which resource (and so which peer) it is for.
    func serverConnection() throws(ControlError) -> TLSConnection {
        do {
            if serverContext == nil {
                let (ca, cert, key) = try credentials()
                serverContext = try TLSContext(
                    role: .server, caFile: ca, certFile: cert, keyFile: key, expectedPeerName: "any-peer")
            }
            return try TLSConnection(context: serverContext!, checksPeerName: false)
        } catch let error as ControlError {
            throw error
        } catch {
            throw ControlError(.ioError, "TLS: \(error)")
        }
    }
}
