// SecondaryProbe: only a primary dials, so a secondary whose peer never connects cannot tell
// "the primary is slow to come" from "nobody is primary". When SecondaryNode says a probe is
// due (no session for a quiet period, then at most every interval: its `.probe` action), the
// secondary dials its peer itself, with a secondary Hello.
// It never takes a session this way: the peer refuses (a secondary says it is secondary too,
// a primary says it is primary), and the refusal or the dial error becomes the secondary's
// `last_error`. Each end is typed where the probe ends it (`SecondaryProbeEnd`), which also
// decides what is reported. Loop thread only.
import Logging
import TandemControl
import TandemCore
import TandemIO

final class SecondaryProbe: PeerLinkDelegate {
    let resource: String
    let volumeSizeBytes: UInt64
    let context: ReplicationContext
    let logger: Logger
    private var link: PeerLink?
    /// Why this side closed the current link, set where it closes it; nil: the link ended on
    /// its own (the peer, TLS, the network or the liveness deadline).
    private var closing: SecondaryProbeEnd?
    /// Runs with what the probe learnt (a refusal or an error).
    var onResult: ((String) -> Void)?

    init(resource: String, volumeSizeBytes: UInt64, context: ReplicationContext, logger: Logger) {
        self.resource = resource
        self.volumeSizeBytes = volumeSizeBytes
        self.context = context
        self.logger = logger
    }

    /// The primary connected: a probe in progress ends.
    func sessionSeen() {
        end(.primaryConnected, "the primary connected")
    }

    func stop() {
        onResult = nil
        end(.stopping, "resource stopping")
    }

    /// Closes the link for `cause`, unless it is already closing for a reason of its own
    /// (which is then the one reported).
    private func end(_ cause: SecondaryProbeEnd, _ words: String) {
        guard let link, link.phase != .closed else { return }
        closing = cause
        link.close(words)
    }

    /// Once per tick: a probe whose peer stalls is ended like any link's handshake.
    func checkLiveness(nowNs: UInt64) { link?.checkLiveness(nowNs: nowNs) }

    /// Dials the peer unless a probe is still under way.
    func start(peer: PeerSpec?) {
        guard link == nil, !resolver.isResolving, onResult != nil, let peer else { return }
        // A name is looked up off the loop thread, as the primary's dial does.
        resolver.resolve(peer.address) { [weak self] result in self?.probe(peer, result) }
    }

    private lazy var resolver = PeerAddressResolver(loop: context.loop)

    private func probe(_ peer: PeerSpec, _ addresses: Result<[SocketAddress], AddressLookupError>) {
        guard link == nil, onResult != nil else { return }
        do {
            let connection = try context.clientConnection(peerName: peer.name)
            let socket = try PeerSocket(loop: context.loop, connectTo: addresses.get())
            // Version 3 (no generation tail): the probe carries no generations, and a primary
            // of an older build reads it (docs/protocol.md, *Versions*).
            let hello = WireHello(protocolVersion: WireFormat.catchUpVersion, role: .secondary,
                                  nodeName: context.config.nodeName, resourceName: resource,
                                  volumeSizeBytes: volumeSizeBytes, generations: WireGenerations(current: 0, bitmap: 0),
                                  promotionNumber: 0)
            link = PeerLink(socket: socket, connection: connection, hello: hello, delegate: self,
                            counters: context.counters, liveness: context.liveness, logger: logger)
        } catch let error as ControlError {
            report(.dialFailed(reason: error.message))
        } catch {
            report(.dialFailed(reason: "\(error)"))
        }
    }

    func peerLink(_ link: PeerLink, validate hello: WireHello) -> PeerLinkVerdict {
        .refuse(.roleConflict, "'\(context.config.nodeName)' is secondary for '\(resource)' and only probed")
    }

    func peerLinkEstablished(_ link: PeerLink) { end(.handshakeCompleted, "probe done") }
    func peerLink(_ link: PeerLink, received message: WireMessage) {}

    func peerLinkClosed(_ link: PeerLink, reason: String) {
        guard link === self.link else { return }
        self.link = nil
        let cause = closing ?? .linkClosed(reason: reason)
        closing = nil
        report(cause)
    }

    private func report(_ end: SecondaryProbeEnd) {
        guard let finding = end.finding else { return }
        onResult?(finding)
    }
}
