// LinkProxy: a real TCP proxy inside the test process, put between a dialling node (alpha)
// and the address it dials (beta's listen address), so a test can break and shape the link
// the way networks do: `cut` (every connection closed, new ones refused until `heal`),
// `stall`/`resume` one direction (nothing forwarded; the data waits in the kernel's socket
// buffers, so TCP's windows close as on a link that went silent), a token-bucket cap and a
// delay per direction. It counts the bytes it forwards in each direction, which is how the
// catch-up tests measure what crossed the wire.
//
// Threads: one accepts; each accepted connection gets a reader and a writer per direction,
// with a bounded line of chunks between them (what `delay` holds back). All state sits
// behind one NSCondition; waits (a stalled direction, an empty token bucket, a chunk not due
// yet, a test waiting for a connection or for bytes) are waits on that condition, never
// sleeps. Bounded: at most `connectionsMax` pairs at once, `lineBytesMax` held per
// direction and pair; `stop()` (or deinit) closes every descriptor and joins every thread.
import Foundation

final class LinkProxy {
    /// `toTarget`: from the node that dials (alpha) to the target (beta); `fromTarget`: back.
    enum Direction: CaseIterable, Sendable { case toTarget, fromTarget }

    static let chunkBytes = 64 << 10
    /// What a direction holds read and not yet written (its delay line) before the reader
    /// waits: 4 MiB is 100 ms at 40 MB/s.
    static let lineBytesMax = 4 << 20
    static let connectionsMax = 64
    static let defaultBurstBytes = 64 << 10
    static let stopTimeoutSeconds: Double = 10

    let port: Int
    let targetPort: Int
    /// What the dialling node is told to dial instead of the target.
    var address: String { "127.0.0.1:\(port)" }
    private let engine: Engine

    /// Listens on a free 127.0.0.1 port and forwards every connection to `target`
    /// ("127.0.0.1:port"; the target need not listen yet: a connection it refuses is closed).
    init(target: String) throws {
        guard let targetPort = target.split(separator: ":").last.flatMap({ Int($0) }) else {
            throw HarnessError("proxy target \(target) has no port")
        }
        self.targetPort = targetPort
        port = try ReplicatedPair.freePort()
        engine = try Engine(listenPort: port, targetPort: targetPort)
        engine.startAccepting()
    }

    deinit { engine.stop() }

    // MARK: Controls

    /// Closes every connection through the proxy now (both peers read end-of-file) and,
    /// until `heal()`, accepts new ones only to close them at once. Returns once every
    /// closed connection's descriptors are gone.
    func cut() { engine.cut() }

    /// Forwards new connections again.
    func heal() { engine.heal() }

    /// Stops forwarding `directions`: nothing more is read, so bytes stay in the kernel and
    /// the sender's TCP window closes (what the proxy had already read — a chunk, or a delay
    /// line's worth — waits inside it). The connections stay open.
    func stall(_ directions: Set<Direction> = Set(Direction.allCases)) { engine.setStalled(true, directions) }

    func resume(_ directions: Set<Direction> = Set(Direction.allCases)) { engine.setStalled(false, directions) }

    /// Paces `directions` (all their connections together) with a token bucket: bytes
    /// forwarded by time t after this call ≤ rate × t + burst. nil removes the cap.
    func capBytesPerSecond(_ rateBytesPerSecond: Int?, burstBytes: Int = LinkProxy.defaultBurstBytes,
                           _ directions: Set<Direction> = Set(Direction.allCases)) {
        precondition(rateBytesPerSecond.map { $0 > 0 } ?? true && burstBytes > 0, "a cap needs a positive rate and burst")
        engine.setCap(rateBytesPerSecond.map { (rate: $0, burst: burstBytes) }, directions)
    }

    /// Holds every chunk of `directions` for `milliseconds` after it was read (0: none), as
    /// a longer wire would; throughput is unchanged up to `lineBytesMax` per delay. Applies
    /// to bytes read from now on.
    func delay(milliseconds: Int, _ directions: Set<Direction> = Set(Direction.allCases)) {
        precondition(milliseconds >= 0 && milliseconds <= 60_000, "delay \(milliseconds) ms")
        engine.update { state in
            for direction in directions { state.delaysNs[direction] = UInt64(milliseconds) * 1_000_000 }
        }
    }

    /// Closes everything and joins the threads; the proxy cannot be used afterwards.
    func stop() { engine.stop() }

    // MARK: Counters

    /// Bytes written to the far side in `direction` since start or `resetCounters()`.
    func forwardedBytes(_ direction: Direction) -> Int { engine.read { $0.forwardedBytes[direction]! } }

    /// Connections accepted and connected to the target (since start or `resetCounters()`).
    var connectionsAccepted: Int { engine.read { $0.connectionsAccepted } }

    /// Connections accepted and closed at once: while cut, or when the target refused.
    var connectionsRefused: Int { engine.read { $0.connectionsRefused } }

    /// Why the last refused connection was refused (for failure messages).
    var lastRefusal: String { engine.read { $0.lastRefusal } }

    /// Connections open through the proxy now.
    var connectionsOpen: Int { engine.read { $0.pairs.count } }

    func resetCounters() {
        engine.update {
            for direction in Direction.allCases { $0.forwardedBytes[direction] = 0 }
            $0.connectionsAccepted = 0
            $0.connectionsRefused = 0
        }
    }

    // MARK: Waits on real conditions

    /// Waits until at least `count` connections were established through the proxy (since
    /// start or the last reset); false on the timeout.
    @discardableResult
    func waitForConnections(_ count: Int, timeoutSeconds: Double) -> Bool {
        engine.wait(timeoutSeconds: timeoutSeconds) { $0.connectionsAccepted >= count }
    }

    /// Waits until at least `bytes` were forwarded in `direction`; false on the timeout.
    @discardableResult
    func waitForForwarded(_ direction: Direction, atLeast bytes: Int, timeoutSeconds: Double) -> Bool {
        engine.wait(timeoutSeconds: timeoutSeconds) { $0.forwardedBytes[direction]! >= bytes }
    }
}

extension LinkProxy {
    /// One accepted connection and its connection to the target. Its descriptors are fixed at
    /// init; everything else changes only under the engine's lock.
    final class Pair: @unchecked Sendable {
        /// A reader and a writer per direction.
        static let threads = 4
        let client: Int32
        let target: Int32
        let lines: [Direction: Line] = [.toTarget: Line(), .fromTarget: Line()]
        var threadsRunning = Pair.threads
        var torn = false

        init(client: Int32, target: Int32) {
            self.client = client
            self.target = target
        }

        func source(_ direction: Direction) -> Int32 { direction == .toTarget ? client : target }
        func sink(_ direction: Direction) -> Int32 { direction == .toTarget ? target : client }

        /// Both peers see the end; threads blocked on either descriptor wake up.
        func tearDown() {
            torn = true
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(target, Int32(SHUT_RDWR))
        }
    }

    /// One direction of a pair: chunks read from the source, not yet written to the sink.
    final class Line {
        var chunks: [(dueNs: UInt64, bytes: [UInt8])] = []
        var queuedBytes = 0
        /// The source ended: pass the end on once the chunks are written.
        var ended = false
    }

    /// Everything the threads share; only touched with the engine's condition locked.
    struct State {
        var pairs: [ObjectIdentifier: Pair] = [:]
        var isCut = false
        var stopped = false
        var threadsRunning = 0
        var connectionsAccepted = 0
        var connectionsRefused = 0
        var lastRefusal = ""
        var forwardedBytes: [Direction: Int] = [.toTarget: 0, .fromTarget: 0]
        var stalled: Set<Direction> = []
        var caps: [Direction: TokenBucket] = [:]
        var delaysNs: [Direction: UInt64] = [:]
    }

    /// bytes ≤ rate × t + burst: the bucket holds at most `burst` tokens and fills at `rate`.
    struct TokenBucket {
        let rate: Int
        let burst: Int
        var tokens: Double
        var refilledNs: UInt64

        init(rate: Int, burst: Int) {
            self.rate = rate
            self.burst = burst
            tokens = Double(burst)
            refilledNs = Engine.monotonicNs()
        }

        mutating func refill() {
            let now = Engine.monotonicNs()
            tokens = min(Double(burst), tokens + Double(now - refilledNs) * Double(rate) / 1e9)
            refilledNs = now
        }

        /// Seconds until `bytes` tokens are there (0: now).
        func secondsUntil(_ bytes: Int) -> Double { max(0, (Double(bytes) - tokens) / Double(rate)) }
    }
}
