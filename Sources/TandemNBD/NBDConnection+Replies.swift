// NBDConnection+Replies: encoding replies into each request's slot header and sending them.
// Replies completed in one loop turn leave together in one sendmsg at its end, made directly
// from the loop thread (the ring only takes what a full socket buffer refuses); one send is in
// flight per connection so replies stay whole on the stream. Loop thread only.
import CShims
import CURing
import Glibc
import TandemCore
import TandemIO

extension NBDConnection {
    func complete(_ request: NBDRequest, error: UInt32) {
        request.error = error
        request.phase = .replying
        if backend.trace.enabled { request.traceHop = loop.traceStamp() }
        backend.record(request)
        let handle = request.header.handle
        if request.command == .read && structuredReplies {
            if error == 0 {
                NBDReply.encodeReadChunkHeader(into: request.replyHeader, handle: handle, offset: request.header.offset,
                                               dataLength: request.header.length)
                request.replyHeaderBytes = 28
            } else {
                NBDReply.encodeStructuredError(into: request.replyHeader, handle: handle, error: error)
                request.replyHeaderBytes = NBDReply.structuredErrorBytes
            }
        } else {
            NBDReply.encodeSimple(into: request.replyHeader, error: error, handle: handle)
            request.replyHeaderBytes = NBD.simpleReplyBytes
        }
        if let tail = replyTail { tail.nextReply = request } else { replyHead = request }
        replyTail = request
        if !replyFlushScheduled {
            replyFlushScheduled = true
            loop.atTurnEnd(self)
        }
    }

    public func turnEnded() {
        replyFlushScheduled = false
        flushReplies()
    }

    func flushReplies() {
        guard !sending, replyHead != nil, isOpen else { return }
        sendBatch.removeAll(keepingCapacity: true)
        var count = 0
        while let request = replyHead, count + 2 <= iovecCapacity {
            replyHead = request.nextReply
            request.nextReply = nil
            iovecs[count] = iovec(iov_base: request.replyHeader.baseAddress, iov_len: request.replyHeaderBytes)
            count += 1
            if request.command == .read && request.error == 0 && request.header.length > 0 {
                iovecs[count] = iovec(iov_base: request.buffer!.pointer + request.dataOffset,
                                      iov_len: Int(request.header.length))
                count += 1
            }
            sendBatch.append(request)
        }
        if replyHead == nil { replyTail = nil }
        sendIovecFirst = 0
        sendIovecCount = count
        sendReplies()
    }

    /// Sends the batch: straight from the loop thread (sendmsg, MSG_DONTWAIT) while the socket
    /// takes it, so the client has its reply in the turn that answered it, with no ring
    /// operation and no turn spent on the send's completion; what the socket cannot take now
    /// goes through the ring, whose completion (`sent`) tries directly again.
    private func sendReplies() {
        while sendIovecFirst < sendIovecCount {
            prepareMessage()
            let count = sendmsg(fd, &message, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN {
                    // Before a close, what the socket cannot take now is dropped with it.
                    if !sendingBeforeClose { submitSendmsg() }
                    return
                }
                return close("send failed: errno \(code)")
            }
            advanceIovecs(by: count)
        }
        batchSent()
    }

    private func prepareMessage() {
        message = msghdr()
        message.msg_iov = iovecs + sendIovecFirst
        message.msg_iovlen = sendIovecCount - sendIovecFirst
    }

    private func submitSendmsg() {
        sending = true
        prepareMessage()
        let sqe = self.sqe(.send)
        io_uring_prep_sendmsg(sqe, fd, &message, UInt32(MSG_NOSIGNAL))
    }

    /// Skips the iovecs `count` sent bytes cover, and trims a partly sent one.
    private func advanceIovecs(by count: Int) {
        var remaining = count
        while sendIovecFirst < sendIovecCount && remaining >= iovecs[sendIovecFirst].iov_len {
            remaining -= iovecs[sendIovecFirst].iov_len
            sendIovecFirst += 1
        }
        if sendIovecFirst < sendIovecCount {
            iovecs[sendIovecFirst].iov_base += remaining
            iovecs[sendIovecFirst].iov_len -= remaining
        }
    }

    func sent(_ result: Int32) {
        sending = false
        if !isOpen { return }
        if result == -EINTR || result == -EAGAIN {
            resend()
            return
        }
        guard result >= 0 else {
            close("send failed: errno \(-result)")
            return
        }
        if sendIovecCount == 0 {
            handshakeOutput.removeFirst(Int(result))
            sendHandshakeOutput()
            flushReplies()
            return
        }
        advanceIovecs(by: Int(result))
        sendReplies()
    }

    /// Every byte of `sendBatch` is on the socket: its requests are done.
    private func batchSent() {
        if backend.trace.enabled { traceReplies() }
        for request in sendBatch { release(request) }
        sendBatch.removeAll(keepingCapacity: true)
        sendIovecCount = 0
        sendIovecFirst = 0
        if sendingBeforeClose {
            flushReplies()  // the rest of what was decided; the close follows
        } else if disconnectRequested {
            closeWhenDrained()
        } else {
            flushReplies()
            process()
        }
    }

    /// The replies of `sendBatch` are on the socket: their reply and total phases end now.
    private func traceReplies() {
        let now = loop.traceStamp()
        for request in sendBatch {
            guard let operation = request.traceOperation else { continue }
            backend.trace.record(operation, .reply, from: request.traceHop, to: now)
            backend.trace.record(operation, .total, from: request.traceStart, to: now)
        }
    }

    private func resend() {
        if sendIovecCount == 0 { sendHandshakeOutput() } else { submitSendmsg() }
    }
}
