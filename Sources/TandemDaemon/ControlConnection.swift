// ControlConnection: one control client's session on the ControlServer: credentials check,
// bounded line reading, decode, dispatch, reply. Runs on the connection's own thread.
import CShims
import Logging
import TandemControl
import TandemIO

#if canImport(Glibc)
import Glibc
#endif

extension ControlServer {
    /// Serves one client; ConnectionThreads closes the descriptor when this returns.
    func runSession(_ descriptor: Int32) {
        guard let credentials = Self.peerCredentials(descriptor) else {
            logger.warning("control connection without peer credentials, closing")
            return
        }
        // Without a send timeout a client that stops reading would hold this thread forever.
        do throws(IOError) { try Self.setSendTimeout(descriptor, seconds: Self.sendTimeoutSeconds) } catch {
            logger.warning("control connection closed: \(error)")
            return
        }
        let policy = self.policy.withLock { $0 }
        guard policy.allows(credentials) else {
            logger.notice(
                "control connection refused",
                metadata: ["uid": "\(credentials.uid)", "gid": "\(credentials.gid)", "pid": "\(credentials.pid)"])
            refuse(descriptor, ControlError(.permissionDenied, "uid \(credentials.uid) is not root and not in the control group"))
            return
        }
        readLoop(descriptor, credentials: credentials)
    }

    /// Answers the client's first request (or after 2 s without one, unprompted) with
    /// `error`, then closes. Waiting for the request lets the reply carry its id, and closing
    /// with the request still unread would make the kernel reset the connection, so the
    /// client might never see why it was refused. For the same reason what the client sends
    /// after it (pipelined requests, the rest of an over-long line) is read and dropped until
    /// it closes, bounded as a refusal past the connection limit is
    /// (`ConnectionThreads.discardInput`).
    func refuse(_ descriptor: Int32, _ error: ControlError) {
        do throws(IOError) { try Self.setReceiveTimeout(descriptor, seconds: 2) } catch let optionError {
            // Reading for the request's id could then wait forever: answer without it.
            logger.warning("control refusal sent without waiting for the request: \(optionError)")
            _ = Self.sendAll(descriptor, ControlCodec.encode(.failure(.null, error)))
            shutdown(descriptor, Int32(SHUT_WR))
            ConnectionThreads.discardInput(descriptor, bytesMax: ConnectionThreads.refusalLingerBytesMax,
                                           timeoutMs: ConnectionThreads.refusalLingerMs)
            return
        }
        var lines = LineBuffer(lineBytesMax: Self.lineBytesMax)
        var chunk = [UInt8](repeating: 0, count: 4096)
        var id = JSONValue.null
        reading: while true {
            switch lines.next() {
            case .line(let line): id = ControlCodec.decodeRequestWithID(line: line).id; break reading
            case .tooLong: break reading
            case nil: break
            }
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            lines.append(chunk[..<count])
        }
        _ = Self.sendAll(descriptor, ControlCodec.encode(.failure(id, error)))
        shutdown(descriptor, Int32(SHUT_WR))
        ConnectionThreads.discardInput(descriptor, bytesMax: ConnectionThreads.refusalLingerBytesMax,
                                       timeoutMs: ConnectionThreads.refusalLingerMs)
    }

    func readLoop(_ descriptor: Int32, credentials: PeerCredentials) {
        var lines = LineBuffer(lineBytesMax: Self.lineBytesMax)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return }  // EOF, reset, or shut down by stop()
            lines.append(chunk[..<count])
            while let event = lines.next() {
                guard serve(event, descriptor, credentials) else { return }
            }
        }
    }

    /// Answers one line; false when the client can no longer be written to.
    func serve(_ event: LineBuffer.Event, _ descriptor: Int32, _ credentials: PeerCredentials) -> Bool {
        let reply: ControlReply
        switch event {
        case .tooLong:
            reply = .failure(.null, ControlError(.lineTooLong, "request line longer than \(Self.lineBytesMax) bytes"))
        case .line(let line):
            // Blank lines are ignored, so interactive `nc` sessions are pleasant.
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return true }
            let (id, decoded) = ControlCodec.decodeRequestWithID(line: line)
            switch decoded {
            case .failure(let error):
                logger.debug("control request refused", metadata: ["error": "\(error.code.rawValue)"])
                reply = .failure(id, error)
            case .success(let request) where request.cmd == "events":
                return streamEvents(request, descriptor, credentials)
            case .success(let request):
                var handled = handler.handle(request, credentials: credentials)
                handled.id = request.id
                reply = handled
            }
        }
        return Self.sendAll(descriptor, ControlCodec.encode(reply))
    }

    /// Hands the connection to the handler's stream; false when the client went away.
    func streamEvents(_ request: ControlRequest, _ descriptor: Int32, _ credentials: PeerCredentials) -> Bool {
        var connected = true
        handler.stream(request, credentials: credentials) { reply in
            guard connected, !connections.isStopping else { return false }
            var reply = reply
            reply.id = request.id
            connected = Self.sendAll(descriptor, ControlCodec.encode(reply))
            return connected
        }
        return connected
    }

    static func peerCredentials(_ descriptor: Int32) -> PeerCredentials? {
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        guard tandem_peer_cred(descriptor, &pid, &uid, &gid) == 0 else { return nil }
        return PeerCredentials(pid: pid, uid: uid, gid: gid)
    }

    static func setReceiveTimeout(_ descriptor: Int32, seconds: Int) throws(IOError) {
        try Sockets.setOption(descriptor, SOL_SOCKET, SO_RCVTIMEO, timeval(tv_sec: seconds, tv_usec: 0), "SO_RCVTIMEO")
    }

    static func setSendTimeout(_ descriptor: Int32, seconds: Int) throws(IOError) {
        try Sockets.setOption(descriptor, SOL_SOCKET, SO_SNDTIMEO, timeval(tv_sec: seconds, tv_usec: 0), "SO_SNDTIMEO")
    }

    /// Writes everything or reports failure (peer gone, or not reading within the timeout).
    static func sendAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { raw in
                send(descriptor, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += written
        }
        return true
    }
}
