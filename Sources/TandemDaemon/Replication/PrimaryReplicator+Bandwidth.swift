// PrimaryReplicator's `bandwidth` cap: every frame of the stream (writes, copy chunks,
// barriers, flush requests, re-send markers) and every digest request goes through a
// BandwidthGate in the order the node emitted it; a frame the cap holds back waits there, and
// a loop timer at the gate's retry time sends it. Frames waiting for a link that closes are
// dropped with it: they are unconfirmed, and the stream re-sends what is unconfirmed on the
// next link. SyncComplete and Demoted (they name writes the peer confirmed, so never pass one
// it lacks), pongs and the handshake go around the gate: a few bytes each, a few per link.
// Loop thread only.
import TandemCore

extension PrimaryReplicator {
    /// A frame for the link, as the node emitted it.
    enum OutgoingFrame: Sendable {
        case stream(PrimaryMessage)
        case control(WireMessage)
    }

    /// What a frame costs against the cap: its payload before compression (a compressed one
    /// costs less on the wire, never more) plus a header and TLS record allowance.
    static let frameOverheadBytes: UInt64 = 64

    static func makeBandwidthGate(_ spec: ResourceSpec, writeBytesMax: Int, framesMax: Int) -> BandwidthGate<OutgoingFrame> {
        BandwidthGate(rateBytesPerSecond: spec.bandwidthBytesPerSecond,
                      burstBytes: max(1 << 20, UInt64(writeBytesMax) + frameOverheadBytes), framesMax: framesMax)
    }

    /// `set bandwidth`: the cap from now on (0: none); what waits goes as the new cap allows.
    func setBandwidth(_ bytesPerSecond: UInt64) {
        bandwidthGate.setRate(bytesPerSecond, nowNs: ReplicationContext.nowNs())
        sendReadyFrames()
    }

    /// Hands a frame to the link through the cap (dropped, as before, when no link is up).
    func transmit(_ frame: OutgoingFrame) {
        guard let link, link.isEstablished else { return }
        var bytes = Self.frameOverheadBytes
        if case .stream(.data(let data)) = frame { bytes += UInt64(data.lengthBytes) }
        // A ReadRequest costs the bytes its reply brings back over the same link.
        if case .control(.readRequest(let request)) = frame { bytes += UInt64(request.lengthBytes) }
        switch bandwidthGate.offer(frame, bytes: bytes, nowNs: ReplicationContext.nowNs()) {
        case .send:
            deliver(frame)
        case .waiting:
            armBandwidthTimer()
        case .full:
            logger.error("bandwidth: more frames wait for the cap than the stream can hold; the link is dropped",
                         metadata: ["resource": "\(resource)", "frames": "\(bandwidthGate.waitingFrames)"])
            bandwidthGate.dropWaiting()
            link.close("bandwidth: the frames waiting for the cap overflowed")
        }
    }

    /// The link is gone: frames that waited for it are dropped (the stream re-sends).
    func dropWaitingFrames() { bandwidthGate.dropWaiting() }

    private func deliver(_ frame: OutgoingFrame) {
        switch frame {
        case .stream(let message): send(message)
        case .control(let message): _ = link?.send(message)
        }
    }

    /// Sends what the cap lets go now, in order; re-arms the timer for the rest.
    private func sendReadyFrames() {
        while let frame = bandwidthGate.nextReady(nowNs: ReplicationContext.nowNs()) { deliver(frame) }
        armBandwidthTimer()
    }

    private func armBandwidthTimer() {
        guard let retryNs = bandwidthGate.retryAtNs(nowNs: ReplicationContext.nowNs()) else { return }
        guard bandwidthTimerArmedNs == 0 || retryNs < bandwidthTimerArmedNs else { return }
        bandwidthTimerArmedNs = retryNs
        context.loop.runAt(deadlineNs: retryNs) { [weak self] in
            guard let self, self.bandwidthTimerArmedNs == retryNs else { return }
            self.bandwidthTimerArmedNs = 0
            self.sendReadyFrames()
        }
    }
}
