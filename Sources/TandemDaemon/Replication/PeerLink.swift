// PeerLink: one replication connection — a PeerSocket carrying a TLSWireChannel, and the
// session handshake (Hello, HelloReply) of docs/protocol.md. After the handshake every frame
// goes to the delegate (the resource's replicator). Messages sent during a loop turn are
// staged and encrypted together at the turn's end, then handed to the socket in one send.
// Any TLS failure or protocol violation closes the link with a reason; nothing of an
// offending frame reaches the delegate. The owner calls `checkLiveness` once per tick: a
// link whose handshake has not finished within ping_timeout_ms, or on which nothing has
// arrived for that long, is closed; an idle one is pinged (LinkLiveness). The delegate may
// pause delivery (backpressure): the frame it could not take is held, no further frame is
// decoded and no receive is armed until `resumeDelivery`; a paused link is not judged dead
// for the silence its own pause causes. Frames are taken between decrypted pieces, so a
// pause also stops decryption: what is left of a receive waits as ciphertext. A Data frame
// whose payload the channel placed in a pool buffer (the secondary's links) comes with that
// buffer: the delegate takes it (`takePlacedPayload`), or the link holds it with the frame
// on pause and releases it otherwise and on close. A link idle for a whole tick gives its
// buffers back. Loop thread only.
import Logging
import TandemCore
import TandemIO

enum PeerLinkVerdict {
    /// Accept the peer: from now on frames go to `delegate`; `hello` is ours, sent first by a
    /// listening side (nil on the dialling side, which sent its Hello already).
    case accept(delegate: PeerLinkDelegate, hello: WireHello?)
    case refuse(WireRefusal, String)
}

protocol PeerLinkDelegate: AnyObject {
    /// The peer's Hello arrived: accept or refuse it.
    func peerLink(_ link: PeerLink, validate hello: WireHello) -> PeerLinkVerdict
    /// Both sides accepted: the replication stream may flow.
    func peerLinkEstablished(_ link: PeerLink)
    func peerLink(_ link: PeerLink, received message: WireMessage)
    /// Called once; `refusal` when the session was refused by either side.
    func peerLinkClosed(_ link: PeerLink, reason: String)
    /// A frame's header carried a promotion number above the peer's Hello's: what this node
    /// does (FramePromotionCheck). The frame itself is not delivered.
    func peerLink(_ link: PeerLink, promotionRose framePromotion: UInt64, helloPromotion: UInt64) -> FramePromotionVerdict
}

extension PeerLinkDelegate {
    /// Links that belong to no replicating primary drop a link whose peer claims a later
    /// promotion mid-session.
    func peerLink(_ link: PeerLink, promotionRose framePromotion: UInt64, helloPromotion: UInt64) -> FramePromotionVerdict {
        FramePromotionCheck.judge(framePromotion: framePromotion, helloPromotion: helloPromotion, ownRole: .secondary,
                                  ownPromotion: 0)
    }
}

final class PeerLink: PeerSocketDelegate, TurnEndHandler {
    enum Phase { case connecting, tls, awaitingHello, awaitingReply, established, closed }

    let socket: PeerSocket
    let channel: TLSWireChannel
    weak var delegate: PeerLinkDelegate?
    private(set) var phase: Phase
    private let ownHello: WireHello?
    private var peerHelloAccepted = false
    let logger: Logger
    private(set) var peerNodeName = ""
    /// The code the peer refused this session with, if it did.
    private(set) var peerRefusal: WireRefusal?
    /// This side refused the peer's Hello (the owner reported why when it refused).
    private(set) var refusedThePeer = false
    /// This side sent its Hello (it dialled and TLS is up).
    private(set) var sentOwnHello = false
    /// The peer answered that Hello (its Hello or a refusal): it could read it.
    private(set) var peerAnsweredHello = false
    private var flushScheduled = false
    /// Daemon-wide TLS handshake counts (metrics).
    private let counters: DaemonCounters
    /// Why the link ended badly, if it did: the owner counts it (tandem_errors_total).
    private(set) var failure: PeerLinkFailure?
    private var liveness: LinkLiveness
    /// Bytes arrived since the last `checkLiveness`: a flag, not a clock read per receive.
    private var heardSinceCheck = false
    /// Delivery was paused at some moment since the last `checkLiveness`: a pause that
    /// began and ended between two checks silenced the link too.
    private var pausedSinceCheck = false
    /// A frame was queued to the peer since the last liveness check.
    private var sentSinceCheck = false
    private var pingNonce: UInt64 = 0
    /// Delivery paused by the delegate (backpressure): the frame it gave back, first on resume.
    private var heldMessage: WireMessage?
    private var resuming = false
    /// The placed payload of the frame being delivered, until the delegate takes it.
    private var framePayload: PlacedPayload?
    /// The placed payload of the held frame.
    private var heldPayload: PlacedPayload?
    /// Inside `receiveCiphertext`: a nested decryption would lend ciphertext twice.
    private var decrypting = false
    /// The promotion number of the peer's Hello: a later frame's header above it is judged
    /// (FramePromotionCheck).
    private var peerHelloPromotion: UInt64 = 0

    /// The delegate has paused delivery and not resumed it.
    var isPaused: Bool { heldMessage != nil }

    /// `hello`: ours, for the dialling side (sent as soon as TLS is up).
    init(socket: PeerSocket, connection: TLSConnection, hello: WireHello?, delegate: PeerLinkDelegate,
         counters: DaemonCounters, liveness: LinkLivenessConfig, logger: Logger) {
        self.liveness = LinkLiveness(config: liveness, nowNs: ReplicationContext.nowNs())
        self.socket = socket
        self.counters = counters
        // Every frame's header carries this node's promotion number, as its Hello states it
        // (persisted before the Hello was built); a listener sets it when it answers.
        self.channel = TLSWireChannel(connection: connection, promotionNumber: hello?.promotionNumber ?? 0)
        self.ownHello = hello
        self.delegate = delegate
        self.logger = logger
        phase = socket.isConnected ? .tls : .connecting
        socket.delegate = self
        // The channel, not the link: a socket may outlive its link while it finishes closing.
        socket.output = channel
        if socket.isConnected { begin() }
    }

    var isEstablished: Bool { phase == .established }

    /// Places large Data payloads in `pool` (the secondary's receive path): see PlacedPayload.
    func placePayloads(in pool: BufferPool) {
        channel.placementPool = pool
    }

    /// The placed payload of the Data frame being delivered, if the channel placed it: the
    /// caller owns it from here (releases it to the pool when done with it).
    func takePlacedPayload() -> PlacedPayload? {
        defer { framePayload = nil }
        return framePayload
    }

    /// Releases what the link holds of placed payloads (it is closing, or a frame's delivery
    /// ended without the delegate taking it).
    private func releasePlacedPayloads(includingHeld: Bool) {
        if let payload = framePayload { channel.release(payload) }
        framePayload = nil
        guard includingHeld else { return }
        if let payload = heldPayload { channel.release(payload) }
        heldPayload = nil
        channel.discardPlacedPayloads()
    }

    /// Sends a control message; false when the link is not established (the caller drops it).
    @discardableResult
    func send(_ message: WireMessage) -> Bool {
        guard phase == .established || (phase == .awaitingReply && message.type == .helloReply)
            || message.type == .hello || message.type == .helloReply
        else { return false }
        do { try channel.send(message) } catch { fail(error); return false }
        sentSinceCheck = true
        scheduleFlush()
        return true
    }

    func sendData(_ header: WireDataHeader, payload: UnsafeRawBufferPointer) -> Bool {
        guard phase == .established else { return false }
        do { try channel.sendData(header, payload: payload) } catch { fail(error); return false }
        sentSinceCheck = true
        scheduleFlush()
        return true
    }

    /// Sends a ReadReply (read balancing): the bytes, or an errno and none.
    @discardableResult
    func sendReadReply(tag: UInt64, errno: Int32, payload: UnsafeRawBufferPointer) -> Bool {
        guard phase == .established else { return false }
        do { try channel.sendReadReply(tag: tag, errno: errno, payload: payload) } catch { fail(error); return false }
        sentSinceCheck = true
        scheduleFlush()
        return true
    }

    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        socket.loop.atTurnEnd(self)
    }

    /// The turn's messages, encrypted together, go to the socket.
    func turnEnded() {
        flushScheduled = false
        guard phase != .closed else { return }
        do { try channel.flush() } catch { return fail(error) }
        socket.kick()
    }

    /// Closes after the peer broke the protocol: counted as a protocol error.
    func closeForViolation(_ reason: String) {
        if phase != .closed && failure == nil { failure = .protocol }
        close(reason)
    }

    /// Closes after a channel error. A connection that merely ended (the peer went away,
    /// the socket failed) is no TLS or protocol failure, unless it ended a handshake.
    private func fail(_ error: PeerChannelError) {
        var peerGone = false
        if case .tls(let tls) = error, tls.kind == .closed || tls.kind == .io { peerGone = true }
        if phase != .closed && failure == nil {
            switch error {
            case .tls where peerGone: break
            case .tls: failure = .tls
            case .wire, .encode: failure = .protocol
            }
        }
        close("\(error)", abortive: peerGone)
    }

    /// `abortive`: the peer is gone, so what is queued for it is dropped rather than waited
    /// for (PeerSocket.close).
    func close(_ reason: String, abortive: Bool = false) {
        guard phase != .closed else { return }
        countUnfinishedHandshake()
        phase = .closed
        releasePlacedPayloads(includingHeld: true)
        channel.close()
        socket.kick()
        socket.close(reason, abortive: abortive)
    }

    /// Once per tick, from the link's owner: pings an idle link, closes a dead one or one
    /// whose handshake is overdue.
    func checkLiveness(nowNs: UInt64) {
        guard phase != .closed else { return }
        // While this side holds its receives, the silence is its own doing, not the peer's.
        let heard = heardSinceCheck || isPaused || pausedSinceCheck
        // A tick with nothing received or sent: the buffers sized for traffic go back.
        if !heard && !sentSinceCheck && !flushScheduled { channel.releaseIdleMemory() }
        heardSinceCheck = false
        pausedSinceCheck = false
        let sent = sentSinceCheck
        sentSinceCheck = false
        switch liveness.check(nowNs: nowNs, heard: heard, sent: sent) {
        case .alive: break
        case .ping:
            pingNonce &+= 1
            send(.ping(nonce: pingNonce))
        case .dead(let reason):
            close(reason, abortive: true)
        }
    }

    /// From the delegate, for the frame it was just given and cannot take now: the frame is
    /// held, delivery stops and the socket's receives are held (what TLS already decrypted —
    /// at most one receive's worth — waits in the decoder).
    func pauseDelivery(holding message: WireMessage) {
        precondition(heldMessage == nil, "delivery paused twice")
        guard phase == .established else { return }
        heldMessage = message
        heldPayload = framePayload
        framePayload = nil
        pausedSinceCheck = true
        socket.holdReceives()
    }

    /// Delivers the held frame again, then what the decoder has, then receives again; the
    /// delegate may pause once more on any of them.
    func resumeDelivery() {
        guard let message = heldMessage, !resuming, phase == .established else { return }
        resuming = true
        defer { resuming = false }
        heldMessage = nil
        framePayload = heldPayload
        heldPayload = nil
        delegate?.peerLink(self, received: message)
        releasePlacedPayloads(includingHeld: false)
        guard heldMessage == nil, phase == .established else { return }
        // What the pause left undecrypted, then the socket again.
        decrypt(UnsafeRawBufferPointer(start: nil, count: 0))
        guard heldMessage == nil, phase == .established else { return }
        socket.resumeReceives()
    }

    // MARK: socket events

    func peerSocketConnected(_ socket: PeerSocket) {
        phase = .tls
        begin()
    }

    private func begin() {
        do { try channel.start() } catch { return fail(error) }
        socket.start()
    }

    func peerSocket(_ socket: PeerSocket, received bytes: UnsafeRawBufferPointer) {
        guard phase != .closed else { return }
        heardSinceCheck = true
        decrypt(bytes)
    }

    /// Decrypts `bytes` (and what waits in the session), handing frames to the delegate
    /// between pieces until it pauses delivery or the link closes.
    private func decrypt(_ bytes: UnsafeRawBufferPointer) {
        guard !decrypting else { return }  // the outer call goes on once this one returns
        decrypting = true
        defer { decrypting = false }
        do {
            let open = try channel.receiveCiphertext(bytes) { () throws(PeerChannelError) -> Bool in
                if self.phase == .tls && self.channel.isEstablished { self.tlsEstablished() }
                try self.drainFrames()
                return self.phase != .closed && self.heldMessage == nil
            }
            socket.kick()
            if phase == .tls && channel.isEstablished { tlsEstablished() }
            try drainFrames()
            if !open && phase != .closed {
                try channel.finish()
                close("peer ended the TLS session")
            }
        } catch {
            socket.kick()  // a TLS alert for the peer, if any
            fail(error)
        }
    }

    func peerSocketClosed(_ socket: PeerSocket, reason: String) {
        countUnfinishedHandshake()
        phase = .closed
        releasePlacedPayloads(includingHeld: true)
        delegate?.peerLinkClosed(self, reason: reason)
    }

    // MARK: session

    /// A link that ends while TLS is still negotiating is a failed handshake.
    private func countUnfinishedHandshake() {
        guard phase == .tls else { return }
        counters.tlsHandshakeFailures += 1
        if failure == nil { failure = .tls }
    }

    private func tlsEstablished() {
        counters.tlsHandshakes += 1
        phase = .awaitingHello
        if let ownHello {
            send(.hello(ownHello))
            sentOwnHello = true
        }
    }

    private func drainFrames() throws(PeerChannelError) {
        while phase != .closed, phase != .tls, heldMessage == nil, let frame = try channel.nextFrame() {
            framePayload = channel.takeFramePayload()
            defer { releasePlacedPayloads(includingHeld: false) }
            switch phase {
            case .awaitingHello: receivedHello(frame.message)
            case .awaitingReply: receivedReply(frame.message)
            case .established:
                if frame.header.promotionNumber > peerHelloPromotion {
                    return promotionRose(frame.header.promotionNumber)
                }
                delegate?.peerLink(self, received: frame.message)
            case .connecting, .tls, .closed: return
            }
        }
    }

    private func receivedHello(_ message: WireMessage) {
        peerAnsweredHello = true
        // A listener that refuses us answers with a refusal instead of its Hello.
        if case .helloReply(let reply) = message, let refusal = reply.refusal {
            peerRefusal = refusal
            return close("refused by the peer: \(refusal): \(reply.reason)")
        }
        guard case .hello(let hello) = message else {
            return closeForViolation("protocol violation: expected Hello, got \(message.type)")
        }
        peerNodeName = hello.nodeName
        peerHelloPromotion = hello.promotionNumber
        guard let delegate else { return close("no owner for the link") }
        switch delegate.peerLink(self, validate: hello) {
        case .refuse(let code, let reason):
            send(.helloReply(WireHelloReply(refusal: code, reason: reason)))
            refusedThePeer = true
            close("refused the peer: \(code): \(reason)")
        case .accept(let owner, let hello):
            self.delegate = owner
            if let hello {
                channel.promotionNumber = hello.promotionNumber
                send(.hello(hello))
            }
            phase = .awaitingReply
            send(.helloReply(WireHelloReply()))
        }
    }

    private func promotionRose(_ framePromotion: UInt64) {
        let verdict = delegate?.peerLink(self, promotionRose: framePromotion, helloPromotion: peerHelloPromotion)
            ?? .closeLink(reason: "a frame's promotion number \(framePromotion) is above the Hello's \(peerHelloPromotion)")
        switch verdict {
        case .accept: return
        case .demoteByPromotion(let reason), .closeLink(let reason): close(reason)
        }
    }

    private func receivedReply(_ message: WireMessage) {
        guard case .helloReply(let reply) = message else {
            return closeForViolation("protocol violation: expected HelloReply, got \(message.type)")
        }
        guard reply.isAccepted else {
            peerRefusal = reply.refusal
            return close("refused by the peer: \(reply.refusal!): \(reply.reason)")
        }
        phase = .established
        liveness.established(nowNs: ReplicationContext.nowNs())
        delegate?.peerLinkEstablished(self)
    }
}
