// PeerAcceptor: the daemon's one replication listener. Each accepted connection gets a TLS
// session (chain verified in the handshake) and a PeerLink whose first Hello names the
// resource; the resource then checks role, peer name and size, or the link is refused with a
// reason and an event. Until its Hello is accepted a connection holds one of a bounded number
// of slots, for at most a short deadline; connections that have not yet authenticated are
// evicted, oldest first, to make room for new ones, so that idle or half-open connections
// can never keep the configured peer out. Loop thread only.
import CURing
import Glibc
import Logging
import TandemControl
import TandemCore
import TandemIO

final class PeerAcceptor: PeerLinkDelegate, IOHandler {
    struct Pending {
        let link: PeerLink
        let acceptedNs: UInt64
        /// The remote address without its port: what the per-source bound counts.
        let source: String
    }

    /// Connections between accept and an accepted Hello, at most.
    static let pendingMax = 64
    /// Of those, from one remote address. A flood from one host then evicts only its own
    /// connections, and when all slots are taken the host holding the most gives one up.
    /// Eviction is oldest first and spares connections past TLS (they showed a certificate
    /// of this cluster's CA): a real peer whose address floods too still gets in, since its
    /// TLS handshake and Hello take a few round trips, after which it leaves the set.
    static let pendingPerSourceMax = 16
    /// A connection that has not had its Hello accepted by then is dropped. Two seconds
    /// leave a real peer ten round trips of 200 ms for TLS 1.3 and the Hello exchange.
    static let handshakeDeadlineNs: UInt64 = 2_000_000_000
    /// How often the deadline is checked while connections are pending: a connection is
    /// dropped between 2 and 2.25 s after it was accepted.
    static let deadlineCheckNs: UInt64 = 250_000_000
    /// At most one warning per this interval about dropped or evicted connections.
    static let warningIntervalNs: UInt64 = 10_000_000_000
    private static let timerTag: UInt32 = 1

    let context: ReplicationContext
    let lookup: (String) -> Resource?
    /// Why a persisted resource that could not be opened at start (its volume or metadata)
    /// is not served: a peer is told that instead of "no resource".
    var unopenedReason: (String) -> String? = { _ in nil }
    private var listener: PeerSocketListener?
    /// Links still in their handshake (owned here until a resource takes them).
    private var pending: [ObjectIdentifier: Pending] = [:]
    private var handlerID: UInt32 = 0
    private var timerArmed = false
    private var stopped = false
    private let timeout = UnsafeMutablePointer<__kernel_timespec>.allocate(capacity: 1)
    private var droppedSinceWarning = 0
    private var lastWarningNs: UInt64 = 0

    init(context: ReplicationContext, lookup: @escaping (String) -> Resource?) {
        self.context = context
        self.lookup = lookup
        timeout.pointee = __kernel_timespec(tv_sec: 0, tv_nsec: Int64(Self.deadlineCheckNs))
    }

    deinit { timeout.deallocate() }

    func start() throws(IOError) {
        handlerID = context.loop.register(self)
        listener = try PeerSocketListener(
            loop: context.loop, address: context.config.listen, bindPatienceNs: Daemon.bindPatienceNs,
            waiting: { [context] error in Daemon.logBindWait(context.logger, "listen", context.config.listen, error) },
            onAccept: { [unowned self] fd in self.accepted(fd) },
            onError: { [unowned self] message in self.context.logger.warning("peer listener", metadata: ["error": "\(message)"]) })
        context.logger.info("replication listener", metadata: ["listen": "\(context.config.listen)"])
    }

    func stop() {
        stopped = true
        listener?.stop()
        listener = nil
        for entry in pending.values { entry.link.close("daemon stopping") }
        if !timerArmed && handlerID != 0 { context.loop.unregister(handlerID); handlerID = 0 }
    }

    // MARK: deadline

    private func armTimer() {
        guard !timerArmed, !stopped, !pending.isEmpty else { return }
        let sqe = context.loop.sqe(handler: handlerID, tag: Self.timerTag)
        io_uring_prep_timeout(sqe, timeout, 0, 0)
        timerArmed = true
    }

    func ioCompleted(tag: UInt32, result: Int32, flags: UInt32) {
        timerArmed = false
        if stopped {
            context.loop.unregister(handlerID)
            handlerID = 0
            return
        }
        dropExpired()
        armTimer()
    }

    private func dropExpired() {
        let now = ReplicationContext.nowNs()
        var expired: [PeerLink] = []
        for entry in pending.values where now - entry.acceptedNs > Self.handshakeDeadlineNs {
            expired.append(entry.link)
        }
        for link in expired {
            drop(link, "no accepted Hello within \(Self.handshakeDeadlineNs / 1_000_000) ms")
        }
    }

    // MARK: slots

    private func accepted(_ fd: Int32) {
        let source = Self.remoteAddress(fd)
        if pending.values.lazy.filter({ $0.source == source }).count >= Self.pendingPerSourceMax,
            !evictOldest(from: source)
        {
            return refuse(fd, "too many connections from \(source) in their handshake")
        }
        if pending.count >= Self.pendingMax, !evictOldest(from: busiestSource()) && !evictOldest(from: nil) {
            return refuse(fd, "too many peer connections in their handshake")
        }
        let connection: TLSConnection
        do {
            connection = try context.serverConnection()
        } catch {
            close(fd)
            return context.events.publish(resource: nil, "peer-refused", ["message": .string(error.message)])
        }
        let socket: PeerSocket
        do throws(IOError) { socket = try PeerSocket(loop: context.loop, connectedFD: fd) } catch {
            close(fd)
            return context.events.publish(resource: nil, "peer-refused", ["message": .string("\(error)")])
        }
        let link = PeerLink(socket: socket, connection: connection, hello: nil, delegate: self,
                            counters: context.counters, liveness: context.liveness, logger: context.logger)
        // Accepted links carry a primary's Data: payloads are decrypted into the buffers the
        // secondary writes them from.
        link.placePayloads(in: context.loop.pool)
        pending[ObjectIdentifier(link)] = Pending(link: link, acceptedNs: ReplicationContext.nowNs(), source: source)
        armTimer()
    }

    /// The address holding the most slots: when every slot is taken, it gives one up, so a
    /// peer with a single connection in its handshake is the last to lose it.
    private func busiestSource() -> String? {
        var counts: [String: Int] = [:]
        for entry in pending.values where entry.link.phase == .tls { counts[entry.source, default: 0] += 1 }
        return counts.max { $0.value < $1.value }?.key
    }

    /// Drops the oldest connection (from `source`, if given) that has not completed its TLS
    /// handshake, i.e. has not shown a certificate of this cluster's CA. False if none.
    private func evictOldest(from source: String?) -> Bool {
        var oldest: Pending? = nil
        for entry in pending.values where entry.link.phase == .tls && (source == nil || entry.source == source) {
            if oldest == nil || entry.acceptedNs < oldest!.acceptedNs { oldest = entry }
        }
        guard let oldest else { return false }
        drop(oldest.link, "evicted: a newer connection needed its slot")
        return true
    }

    /// Ends a pending link quietly: a flood must not become a flood of events. Counted in a
    /// warning at most every `warningIntervalNs`.
    private func drop(_ link: PeerLink, _ reason: String) {
        guard pending.removeValue(forKey: ObjectIdentifier(link)) != nil else { return }
        link.close(reason)
        noteDropped(reason)
    }

    private func refuse(_ fd: Int32, _ reason: String) {
        close(fd)
        noteDropped(reason)
    }

    private func noteDropped(_ reason: String) {
        droppedSinceWarning += 1
        let now = ReplicationContext.nowNs()
        guard lastWarningNs == 0 || now - lastWarningNs >= Self.warningIntervalNs else { return }
        context.logger.warning("peer port: dropped unauthenticated connections", metadata: [
            "count": "\(droppedSinceWarning)", "last_reason": "\(reason)", "pending": "\(pending.count)",
        ])
        lastWarningNs = now
        droppedSinceWarning = 0
    }

    private static func remoteAddress(_ fd: Int32) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let family: Int32 = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getpeername(fd, $0, &length) == 0 ? Int32($0.pointee.sa_family) : -1
            }
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let ok: Bool = withUnsafePointer(to: &storage) { pointer in
            switch family {
            case AF_INET:
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    withUnsafePointer(to: address.pointee.sin_addr) { inet_ntop(AF_INET, $0, &text, socklen_t(text.count)) != nil }
                }
            case AF_INET6:
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    withUnsafePointer(to: address.pointee.sin6_addr) { inet_ntop(AF_INET6, $0, &text, socklen_t(text.count)) != nil }
                }
            default:
                return false
            }
        }
        return ok ? String(cString: text) : "unknown"
    }

    // MARK: PeerLinkDelegate

    func peerLink(_ link: PeerLink, validate hello: WireHello) -> PeerLinkVerdict {
        let verdict: PeerLinkVerdict
        if let resource = lookup(hello.resourceName) {
            verdict = resource.validateIncoming(hello, link: link)
        } else if let reason = unopenedReason(hello.resourceName) {
            verdict = .refuse(.diskFailed, "resource '\(hello.resourceName)' could not be opened here: \(reason)")
        } else {
            verdict = .refuse(.unknownResource, "no resource '\(hello.resourceName)' on this node")
        }
        // An accepted link now belongs to its resource; a refused one stays here until closed.
        if case .accept = verdict { pending[ObjectIdentifier(link)] = nil }
        if case .refuse(let code, let reason) = verdict {
            context.events.publish(resource: lookup(hello.resourceName) == nil ? nil : hello.resourceName,
                                   "peer-refused", ["code": .string("\(code)"), "message": .string(reason),
                                                    "peer": .string(hello.nodeName)])
        }
        return verdict
    }

    func peerLinkEstablished(_ link: PeerLink) {}
    func peerLink(_ link: PeerLink, received message: WireMessage) {}

    func peerLinkClosed(_ link: PeerLink, reason: String) {
        guard pending.removeValue(forKey: ObjectIdentifier(link)) != nil else { return }
        if link.refusedThePeer { return }  // published at the refusal
        // Failed before any Hello: a TLS refusal (wrong CA, no certificate) or garbage.
        context.noteHandshakeFailure(reason)
        context.events.publish(resource: nil, "peer-refused", ["message": .string(reason)])
    }
}
