// NBDConnection+Handshake: the option haggling before transmission. NBDHandshake (TandemCore)
// decides every reply; this file feeds it the staging buffer, sends what it answers (a plain
// non-blocking send, the ring only when the socket is full) and switches the connection to
// transmission or closes it. Loop thread only.
import CURing
import Glibc
import TandemCore

extension NBDConnection {
    func processHandshake() {
        let (used, outcome) = handshake.feed(UnsafeRawBufferPointer(rebasing: staging[stagingStart..<stagingEnd]))
        stagingStart += used
        handshakeOutput += handshake.takeOutput()
        switch outcome {
        case .needMore:
            sendHandshakeOutput()
        case .transmission(let structured):
            structuredReplies = structured
            state = .transmission
            sendHandshakeOutput()
            processRequests()
        case .close(let reason):
            // Deliver any final reply (e.g. ABORT's ACK) before closing, best effort.
            if !handshakeOutput.isEmpty {
                _ = handshakeOutput.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            }
            close(reason)
        }
    }

    /// Handshake replies are small and rare: a plain non-blocking send, falling back to the
    /// ring only if the socket buffer is full.
    func sendHandshakeOutput() {
        guard !handshakeOutput.isEmpty, !sending else { return }
        let sent = handshakeOutput.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
        if sent > 0 { handshakeOutput.removeFirst(sent) }
        if sent < 0 && errno != EAGAIN && errno != EINTR {
            close("send failed during handshake: errno \(errno)")
            return
        }
        if !handshakeOutput.isEmpty {
            sending = true
            let sqe = self.sqe(.send)
            handshakeOutput.withUnsafeBytes { io_uring_prep_send(sqe, fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            sendBatch.removeAll(keepingCapacity: true)
            sendIovecCount = 0
        }
    }
}
