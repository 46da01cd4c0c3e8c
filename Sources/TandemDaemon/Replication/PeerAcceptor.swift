// PeerAcceptor: the daemon's one replication listener. Each accepted connection gets a TLS
// session (chain verified in the handshake) and a PeerLink whose first Hello names the
// resource; the resource then checks role, peer name and size, or the link is refused with a
// reason and an event. Loop thread only.
import Glibc
import Logging
import TandemControl
import TandemCore
import TandemIO

final class PeerAcceptor: PeerLinkDelegate {
    let context: ReplicationContext
    let lookup: (String) -> Resource?
    private var listener: PeerSocketListener?
    /// Links still in their handshake (owned here until a resource takes them).
    private var pending: [ObjectIdentifier: (link: PeerLink, acceptedNs: UInt64)] = [:]
    static let pendingMax = 64
    /// A connection that has not sent its Hello by then is dropped (it holds a pending slot).
    static let handshakeTimeoutNs: UInt64 = 10_000_000_000

    init(context: ReplicationContext, lookup: @escaping (String) -> Resource?) {
        self.context = context
        self.lookup = lookup
    }

    func start() throws(IOError) {
        listener = try PeerSocketListener(
            loop: context.loop, address: context.config.listen,
            onAccept: { [unowned self] fd in self.accepted(fd) },
            onError: { [unowned self] message in self.context.logger.warning("peer listener", metadata: ["error": "\(message)"]) })
        context.logger.info("replication listener", metadata: ["listen": "\(context.config.listen)"])
    }

    func stop() {
        listener?.stop()
        listener = nil
        for entry in pending.values { entry.link.close("daemon stopping") }
    }

    /// Drops connections stuck in their handshake (called from the loop's tick).
    func tick() {
        let now = ReplicationContext.nowNs()
        for entry in pending.values where now - entry.acceptedNs > Self.handshakeTimeoutNs {
            entry.link.close("no Hello within \(Self.handshakeTimeoutNs / 1_000_000_000) s")
        }
    }

    private func accepted(_ fd: Int32) {
        guard pending.count < Self.pendingMax else {
            close(fd)
            return context.logger.warning("too many peer connections in their handshake; refused one")
        }
        let connection: TLSConnection
        do {
            connection = try context.serverConnection()
        } catch {
            close(fd)
            return context.events.publish(resource: nil, "peer-refused", ["message": .string(error.message)])
        }
        let socket = PeerSocket(loop: context.loop, connectedFD: fd)
        let link = PeerLink(socket: socket, connection: connection, hello: nil, delegate: self, logger: context.logger)
        pending[ObjectIdentifier(link)] = (link, ReplicationContext.nowNs())
    }

    func peerLink(_ link: PeerLink, validate hello: WireHello) -> PeerLinkVerdict {
        let verdict: PeerLinkVerdict
        if let resource = lookup(hello.resourceName) {
            verdict = resource.validateIncoming(hello, link: link)
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
        context.events.publish(resource: nil, "peer-refused", ["message": .string(reason)])
    }
}
