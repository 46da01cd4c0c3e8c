// LinkProxy's engine: the listening socket, the accept thread, and each connection's reader
// and writer threads. It is a separate object from LinkProxy so that the threads hold the engine, not
// the handle: dropping the last LinkProxy runs its deinit, which stops the engine.
import Foundation

extension LinkProxy {
    final class Engine: @unchecked Sendable {
        private let condition = NSCondition()
        private var state = State()
        private let listenFd: Int32
        private let wakeFds: [Int32]  // a pipe: a byte written to [1] ends the accept loop
        private let targetPort: Int
        private var closed = false

        init(listenPort: Int, targetPort: Int) throws {
            self.targetPort = targetPort
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw HarnessError("proxy socket: errno \(errno)") }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var address = Self.loopback(port: listenPort)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0, listen(fd, 16) == 0 else {
                let code = errno
                close(fd)
                throw HarnessError("proxy bind/listen on port \(listenPort): errno \(code)")
            }
            var fds: [Int32] = [-1, -1]
            guard pipe(&fds) == 0 else {
                close(fd)
                throw HarnessError("proxy pipe: errno \(errno)")
            }
            for end in fds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
            listenFd = fd
            wakeFds = fds
        }

        static func loopback(port: Int) -> sockaddr_in {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            return address
        }

        /// accept4(2) with SOCK_CLOEXEC: the Glibc module does not export it (no _GNU_SOURCE),
        /// and a plain accept then fcntl would let a daemon spawned in between inherit the
        /// socket and hold the connection open past a `cut`.
        static func acceptCloseOnExec(_ fd: Int32) -> Int32 {
            typealias Accept4 = @convention(c) (Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32) -> Int32
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "accept4") else {
                preconditionFailure("no accept4 in libc")
            }
            return unsafeBitCast(symbol, to: Accept4.self)(fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
        }

        static func monotonicNs() -> UInt64 {
            var time = timespec()
            clock_gettime(CLOCK_MONOTONIC, &time)
            return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
        }

        // MARK: State access

        func read<T>(_ body: (State) -> T) -> T {
            condition.lock()
            defer { condition.unlock() }
            return body(state)
        }

        func update(_ body: (inout State) -> Void) {
            condition.lock()
            body(&state)
            condition.broadcast()
            condition.unlock()
        }

        /// Waits until `predicate` holds (re-checked on every change); false on the timeout.
        func wait(timeoutSeconds: Double, _ predicate: (State) -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(timeoutSeconds)
            condition.lock()
            defer { condition.unlock() }
            while !predicate(state) {
                if !condition.wait(until: deadline) { return predicate(state) }
            }
            return true
        }

        // MARK: Controls

        func cut() {
            condition.lock()
            state.isCut = true
            for pair in state.pairs.values { pair.tearDown() }
            condition.broadcast()
            // Its threads see the shutdown at once; the last of each pair closes it.
            let deadline = Date().addingTimeInterval(stopTimeoutSeconds)
            while !state.pairs.isEmpty, condition.wait(until: deadline) {}
            let left = state.pairs.count
            condition.unlock()
            precondition(left == 0, "proxy: \(left) connections still open after cut")
        }

        func heal() { update { $0.isCut = false } }

        func setStalled(_ stalled: Bool, _ directions: Set<Direction>) {
            update { stalled ? $0.stalled.formUnion(directions) : $0.stalled.subtract(directions) }
        }

        func setCap(_ cap: (rate: Int, burst: Int)?, _ directions: Set<Direction>) {
            update { state in
                for direction in directions { state.caps[direction] = cap.map { TokenBucket(rate: $0.rate, burst: $0.burst) } }
            }
        }

        func stop() {
            condition.lock()
            if closed {
                condition.unlock()
                return
            }
            closed = true
            state.stopped = true
            for pair in state.pairs.values { pair.tearDown() }
            condition.broadcast()
            var byte: UInt8 = 1
            _ = write(wakeFds[1], &byte, 1)
            let deadline = Date().addingTimeInterval(stopTimeoutSeconds)
            while state.threadsRunning > 0, condition.wait(until: deadline) {}
            let running = state.threadsRunning
            condition.unlock()
            precondition(running == 0, "proxy: \(running) threads still running after stop")
            close(listenFd)
            close(wakeFds[0])
            close(wakeFds[1])
        }

        // MARK: Accepting

        func startAccepting() {
            update { $0.threadsRunning += 1 }
            Thread.detachNewThread { [self] in
                acceptLoop()
                update { $0.threadsRunning -= 1 }
            }
        }

        private func acceptLoop() {
            while true {
                var fds = [pollfd(fd: listenFd, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: wakeFds[0], events: Int16(POLLIN), revents: 0)]
                let ready = poll(&fds, 2, -1)
                if ready < 0 && errno == EINTR { continue }
                guard ready > 0, fds[1].revents == 0 else { return }
                let client = Self.acceptCloseOnExec(listenFd)
                if client < 0 {
                    // ECONNABORTED and the like: that one connection is gone, the socket is not.
                    if [EINTR, ECONNABORTED, EAGAIN, EPROTO, EPERM].contains(errno) { continue }
                    return
                }
                admit(client)
            }
        }

        /// Connects `client` to the target and starts its threads, or closes it: while cut, when
        /// the target refuses (it is down), or beyond `connectionsMax`.
        private func admit(_ client: Int32) {
            let refusing = read { $0.isCut || $0.stopped || $0.pairs.count >= connectionsMax }
            let target = refusing ? -1 : connectToTarget()
            condition.lock()
            guard target >= 0, !state.isCut, !state.stopped else {
                state.connectionsRefused += 1
                if refusing { state.lastRefusal = state.isCut ? "cut" : "stopped or \(connectionsMax) open" }
                condition.broadcast()
                condition.unlock()
                close(client)
                if target >= 0 { close(target) }
                return
            }
            Self.setNoDelay(client)
            Self.setNoDelay(target)
            let pair = Pair(client: client, target: target)
            state.pairs[ObjectIdentifier(pair)] = pair
            state.connectionsAccepted += 1
            state.threadsRunning += Pair.threads
            condition.broadcast()
            condition.unlock()
            for direction in Direction.allCases {
                Thread.detachNewThread { [self] in reader(pair, direction) }
                Thread.detachNewThread { [self] in writer(pair, direction) }
            }
        }

        private func connectToTarget() -> Int32 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return -1 }
            var address = Self.loopback(port: targetPort)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                let code = errno
                close(fd)
                update { $0.lastRefusal = "connect to the target: errno \(code)" }
                return -1
            }
            return fd
        }

        /// Small frames (acks, pings) must not wait for Nagle: the proxy must add no delay of
        /// its own beyond a thread hop.
        private static func setNoDelay(_ fd: Int32) {
            var one: Int32 = 1
            let status = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            precondition(status == 0, "proxy: setsockopt TCP_NODELAY: errno \(errno)")
        }

        // MARK: Forwarding

        /// Reads one direction of `pair` into its line until the source ends or the pair is
        /// torn down. It reads nothing while the direction is stalled or its line is full, so
        /// what the proxy has not read waits in the kernel and the sender's window closes.
        private func reader(_ pair: Pair, _ direction: Direction) {
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunkBytes, alignment: 16)
            defer {
                buffer.deallocate()
                finish(pair)
            }
            let line = pair.lines[direction]!
            while true {
                guard awaitRoomToRead(pair, direction) else { return }
                let count = Glibc.read(pair.source(direction), buffer, chunkBytes)
                if count < 0 && errno == EINTR { continue }
                if count <= 0 {
                    update { _ in count == 0 ? (line.ended = true) : pair.tearDown() }
                    return
                }
                let bytes = Array(UnsafeRawBufferPointer(start: buffer, count: count))
                update { state in
                    line.chunks.append((dueNs: Self.monotonicNs() + state.delaysNs[direction, default: 0], bytes: bytes))
                    line.queuedBytes += count
                }
            }
        }

        /// False when the pair was torn down while waiting.
        private func awaitRoomToRead(_ pair: Pair, _ direction: Direction) -> Bool {
            let line = pair.lines[direction]!
            condition.lock()
            defer { condition.unlock() }
            while state.stalled.contains(direction) || line.queuedBytes >= lineBytesMax {
                if pair.torn || state.stopped { return false }
                condition.wait()
            }
            return !pair.torn && !state.stopped
        }

        /// Writes one direction of `pair` from its line: each chunk once its delay has passed,
        /// the direction is not stalled and the bucket holds its tokens. Passes the source's
        /// end on once everything before it is written; the other direction goes on.
        private func writer(_ pair: Pair, _ direction: Direction) {
            defer { finish(pair) }
            let sink = pair.sink(direction)
            while let bytes = nextToWrite(pair, direction) {
                guard sendAll(sink, bytes) else {
                    update { _ in pair.tearDown() }
                    return
                }
                update { $0.forwardedBytes[direction]! += bytes.count }
            }
        }

        /// The next bytes `direction` may write now (waiting until it may); nil at the end of
        /// the line (its end is passed on first) or when the pair was torn down.
        private func nextToWrite(_ pair: Pair, _ direction: Direction) -> [UInt8]? {
            let line = pair.lines[direction]!
            condition.lock()
            defer { condition.unlock() }
            while true {
                if pair.torn || state.stopped { return nil }
                guard let head = line.chunks.first else {
                    if line.ended {
                        shutdown(pair.sink(direction), Int32(SHUT_WR))
                        return nil
                    }
                    condition.wait()
                    continue
                }
                if state.stalled.contains(direction) {
                    condition.wait()
                    continue
                }
                let now = Self.monotonicNs()
                if head.dueNs > now {
                    _ = condition.wait(until: Date().addingTimeInterval(Double(head.dueNs - now) / 1e9))
                    continue
                }
                // Never more than a burst at once, or a capped direction could never send.
                var take = head.bytes.count
                if var bucket = state.caps[direction] {
                    take = min(take, bucket.burst)
                    bucket.refill()
                    let waitSeconds = bucket.secondsUntil(take)
                    if waitSeconds > 0 {
                        state.caps[direction] = bucket
                        _ = condition.wait(until: Date().addingTimeInterval(waitSeconds))
                        continue
                    }
                    bucket.tokens -= Double(take)
                    state.caps[direction] = bucket
                }
                let bytes = Array(head.bytes[0..<take])
                if take == head.bytes.count {
                    line.chunks.removeFirst()
                } else {
                    line.chunks[0].bytes.removeFirst(take)
                }
                line.queuedBytes -= take
                condition.broadcast()  // room for the reader
                return bytes
            }
        }

        private func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
            var sent = 0
            while sent < bytes.count {
                let written = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return false }
                sent += written
            }
            return true
        }

        /// The last thread of a pair closes its descriptors, under the lock, so that no
        /// `tearDown` can shut down a descriptor number already reused.
        private func finish(_ pair: Pair) {
            update { state in
                pair.threadsRunning -= 1
                if pair.threadsRunning == 0 {
                    close(pair.client)
                    close(pair.target)
                    state.pairs[ObjectIdentifier(pair)] = nil
                }
                state.threadsRunning -= 1
            }
        }
    }
}
