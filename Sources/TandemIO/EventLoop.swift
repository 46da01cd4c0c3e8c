// EventLoop: one thread, one ring. Everything submitted on the ring completes back here and
// is dispatched to the handler named in `user_data`. Work from other threads (the control
// socket) arrives through `execute`, which wakes the ring through an eventfd.
import CShims
import CURing
import Glibc
import Logging

/// The owner of in-flight operations. Called on the loop thread only.
public protocol IOHandler: AnyObject {
    func ioCompleted(tag: UInt32, result: Int32, flags: UInt32)
}

/// Work that should happen once per loop turn, after every ready completion was dispatched:
/// gathering the replies they produced into one send.
public protocol TurnEndHandler: AnyObject {
    func turnEnded()
}

/// Confined to its own thread except `execute` and `stop`, which lock; hence
/// `@unchecked Sendable`.
public final class EventLoop: @unchecked Sendable {
    public let ring: Ring
    public let pool: BufferPool
    let logger: Logger
    private var handlers: [IOHandler?] = [nil]  // 0: the loop itself
    private var freeHandlerIDs: [UInt32] = []
    /// Free slots of the ring's fixed-file table (one per open volume). The table is sized
    /// from RLIMIT_NOFILE (every slot holds an open descriptor, so more could never be used,
    /// and the kernel refuses a larger table), bounded by `fileSlotsMax`.
    private var fileSlotsFree: [UInt32]
    public let fileSlotCount: UInt32
    /// 8 bytes of kernel memory per slot: 256 KiB at the bound. A volume beyond it still
    /// works, through its plain descriptor (`registerFile` returns nil).
    public static let fileSlotsMax: UInt32 = 32_768
    private var fileTableFullLogged = false

    private let wakeFD: Int32
    private var wakeValue: UInt64 = 0
    private var lock = pthread_mutex_t()
    private var pending: [@Sendable () -> Void] = []
    private var running = true
    private var thread: pthread_t?
    /// Called once per loop turn with at least this period (systemd watchdog, timers).
    private var tickHandlers: [() -> Void] = []
    private var completions = [UnsafeMutablePointer<io_uring_cqe>?](repeating: nil, count: 256)
    private var turnEndHandlers: [TurnEndHandler] = []
    private var turnEndRunning: [TurnEndHandler] = []
    private var tickTimeout = __kernel_timespec(tv_sec: 1, tv_nsec: 0)
    /// Loop turns completed (one per `runOnce`): the request trace counts the turns between
    /// a request's hops with it (RequestTrace).
    public private(set) var turn: UInt64 = 0
    private static let wakeTag: UInt32 = 1
    private static let tickTag: UInt32 = 2
    /// Timers shorter than a tick (`runAt`; the resync pacer): deadlines (MonotonicClock ns)
    /// and what runs then. Few: one per throttled resource.
    private var timers: [(deadlineNs: UInt64, body: () -> Void)] = []
    /// The absolute deadline of each armed timer timeout (0: the slot is free). Each slot
    /// has its own timespec, which the kernel reads when the SQE is submitted.
    private var timerSlotDeadlinesNs = [UInt64](repeating: 0, count: EventLoop.timerSlots)
    private let timerSpecs = UnsafeMutablePointer<__kernel_timespec>.allocate(capacity: EventLoop.timerSlots)
    static let timerSlots = 4
    private static let timerTagBase: UInt32 = 0x100
    /// Volume I/Os under a disk timeout, with their ages (VolumeIOWatch).
    private let volumeWatch = VolumeIOWatch(initialSlots: 1024)

    /// `fileSlots`: the fixed-file table's size; by default `fileSlots(openFilesLimit:)` of
    /// this process's soft RLIMIT_NOFILE.
    public init(ringEntries: UInt32, poolBytes: Int, fileSlots: UInt32? = nil, logger: Logger) throws(IOError) {
        self.logger = logger
        ring = try Ring(entries: ringEntries)
        pool = try BufferPool(totalBytes: poolBytes)
        do {
            try ring.registerBuffer(pool.base, length: pool.totalBytes)
            pool.registered = true
        } catch {
            logger.warning("io_uring buffer registration refused; using unregistered buffers",
                           metadata: ["error": "\(error)"])
        }
        fileSlotCount = fileSlots ?? Self.fileSlots(openFilesLimit: Self.openFilesSoftLimit())
        try ring.registerSparseFiles(count: fileSlotCount)
        fileSlotsFree = Array((0..<fileSlotCount).reversed())
        wakeFD = tandem_eventfd()
        guard wakeFD >= 0 else { throw IOError(errno: errno, "eventfd") }
        pthread_mutex_init(&lock, nil)
        if !ring.keepsOverflow {
            logger.warning("kernel lacks IORING_FEAT_NODROP; completion queue sized 4x to compensate")
        }
    }

    deinit {
        close(wakeFD)
        pthread_mutex_destroy(&lock)
        timerSpecs.deallocate()
    }

    // MARK: handlers and fixed files

    public func register(_ handler: IOHandler) -> UInt32 {
        if let id = freeHandlerIDs.popLast() {
            handlers[Int(id)] = handler
            return id
        }
        handlers.append(handler)
        return UInt32(handlers.count - 1)
    }

    /// The caller guarantees that no operation tagged with `id` is still in flight.
    public func unregister(_ id: UInt32) {
        precondition(id != 0 && handlers[Int(id)] != nil)
        handlers[Int(id)] = nil
        freeHandlerIDs.append(id)
    }

    /// The fixed-file table's size for a process allowed `openFilesLimit` descriptors.
    public static func fileSlots(openFilesLimit: UInt64) -> UInt32 {
        UInt32(max(1, min(openFilesLimit, UInt64(fileSlotsMax))))
    }

    static func openFilesSoftLimit() -> UInt64 {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return UInt64(limit.rlim_cur)  // RLIM_INFINITY is UInt64.max: the bound applies
    }

    /// Puts `fd` in a free fixed-file slot; nil when the table is full (the caller then uses
    /// the plain descriptor: one more reference count per I/O, nothing refused).
    public func registerFile(_ fd: Int32) throws(IOError) -> UInt32? {
        guard let slot = fileSlotsFree.popLast() else {
            if !fileTableFullLogged {
                fileTableFullLogged = true
                logger.notice("io_uring fixed-file table full; further volumes use plain descriptors",
                              metadata: ["slots": "\(fileSlotCount)"])
            }
            return nil
        }
        do {
            try ring.updateFile(slot: slot, fd: fd)
        } catch {
            fileSlotsFree.append(slot)
            throw error
        }
        return slot
    }

    public func unregisterFile(_ slot: UInt32) {
        try? ring.updateFile(slot: slot, fd: -1)
        fileSlotsFree.append(slot)
    }

    public func onTick(_ body: @escaping () -> Void) { tickHandlers.append(body) }

    /// Runs `body` on the loop thread once MonotonicClock reaches `deadlineNs` (at once, at
    /// the next turn, if it has passed), for pacing finer than the tick. Loop thread only.
    /// There is no cancelling: the body checks whether it is still wanted.
    public func runAt(deadlineNs: UInt64, _ body: @escaping () -> Void) {
        timers.append((deadlineNs, body))
        armTimer()
    }

    /// Arms a timeout for the earliest timer unless one fires by then. With every slot armed
    /// later, the earliest slot's completion re-arms: a timer is late, never lost.
    private func armTimer() {
        guard let earliest = timers.lazy.map(\.deadlineNs).min() else { return }
        guard !timerSlotDeadlinesNs.contains(where: { $0 != 0 && $0 <= earliest }),
            let slot = timerSlotDeadlinesNs.firstIndex(of: 0)
        else { return }
        timerSlotDeadlinesNs[slot] = max(earliest, 1)
        timerSpecs[slot] = __kernel_timespec(
            tv_sec: Int64(earliest / 1_000_000_000), tv_nsec: Int64(earliest % 1_000_000_000))
        let sqe = ring.sqe()
        io_uring_prep_timeout(sqe, timerSpecs + slot, 0, UInt32(IORING_TIMEOUT_ABS))
        io_uring_sqe_set_data64(sqe, packUserData(handler: 0, tag: Self.timerTagBase + UInt32(slot)))
    }

    private func timerFired(slot: Int) {
        timerSlotDeadlinesNs[slot] = 0
        let now = MonotonicClock.nowNs()
        var due: [(deadlineNs: UInt64, body: () -> Void)] = []
        timers.removeAll { timer in
            guard timer.deadlineNs <= now else { return false }
            due.append(timer)
            return true
        }
        // Several due at once (a late turn) run in deadline order, as if each had been on time.
        due.sort { $0.deadlineNs < $1.deadlineNs }
        for timer in due { timer.body() }
        armTimer()
    }

    // MARK: cross-thread work

    /// Runs `body` on the loop thread at its next turn. Safe from any thread.
    public func execute(_ body: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(&lock)
        pending.append(body)
        pthread_mutex_unlock(&lock)
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Runs `body` on the loop thread and waits for its result. Not from the loop thread.
    public func submitAndWait<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        let box = ResultBox<T>()
        execute { box.put(body()) }
        return box.take()
    }

    public func stop() {
        execute { [unowned self] in self.running = false }
    }

    // MARK: running

    public func run() {
        armWake()
        armTick()
        while running { runOnce() }
    }

    /// After `run` returned: turns again while `condition` holds, at most until `deadlineNs`
    /// (MonotonicClock), with the tick armed so that no turn waits longer than a tick (work
    /// that must finish at shutdown: a resource's last I/O and flush).
    public func runWhile(deadlineNs: UInt64, _ condition: () -> Bool) {
        running = true
        armTick()
        while condition() && MonotonicClock.nowNs() < deadlineNs { runOnce() }
        running = false
    }

    /// One turn: submit everything prepared, wait for at least one completion, dispatch all
    /// that are ready. `run` is this in a loop; tests drive it directly.
    public func runOnce() {
        let rc = io_uring_submit_and_wait(&ring.ring, 1)
        if rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME {
            preconditionFailure("io_uring_submit_and_wait failed: errno \(-rc)")
        }
        turn &+= 1
        reap(&completions)
        runTurnEnd()
    }

    /// Calls `handler.turnEnded()` once the completions of this turn are dispatched. The
    /// caller keeps its own "scheduled" flag so that it is listed once per turn; the arrays
    /// keep their capacity, so scheduling allocates nothing after warm-up.
    public func atTurnEnd(_ handler: TurnEndHandler) {
        turnEndHandlers.append(handler)
    }

    private func runTurnEnd() {
        while !turnEndHandlers.isEmpty {
            swap(&turnEndHandlers, &turnEndRunning)
            for handler in turnEndRunning { handler.turnEnded() }
            turnEndRunning.removeAll(keepingCapacity: true)
        }
    }

    private func reap(_ cqes: inout [UnsafeMutablePointer<io_uring_cqe>?]) {
        while true {
            let count = cqes.withUnsafeMutableBufferPointer { buffer in
                Int(io_uring_peek_batch_cqe(&ring.ring, buffer.baseAddress, UInt32(buffer.count)))
            }
            if count == 0 { return }
            for index in 0..<count {
                let cqe = cqes[index]!.pointee
                dispatch(userData: cqe.user_data, result: cqe.res, flags: cqe.flags)
            }
            io_uring_cq_advance(&ring.ring, UInt32(count))
        }
    }

    @inline(__always)
    private func dispatch(userData: UInt64, result: Int32, flags: UInt32) {
        let handlerID = UInt32(truncatingIfNeeded: userData >> 32)
        let tag = UInt32(truncatingIfNeeded: userData)
        if handlerID == 0 {
            guard tag & VolumeIOWatch.tagBit != 0 else { return loopCompleted(tag: tag, result: result) }
            let watched = volumeWatch.end(tag & ~VolumeIOWatch.tagBit)
            if let (volume, operation, submittedNs) = watched.late {
                lateCompletion(volume, operation, MonotonicClock.nowNs() &- submittedNs, result: result)
            }
            return deliver(handlerID: watched.handler, tag: watched.tag, result: result, flags: flags)
        }
        deliver(handlerID: handlerID, tag: tag, result: result, flags: flags)
    }

    @inline(__always)
    private func deliver(handlerID: UInt32, tag: UInt32, result: Int32, flags: UInt32) {
        guard Int(handlerID) < handlers.count, let handler = handlers[Int(handlerID)] else {
            preconditionFailure("completion for unregistered handler \(handlerID) tag \(tag)")
        }
        handler.ioCompleted(tag: tag, result: result, flags: flags)
    }

    /// An SQE for a volume I/O under a disk timeout: tagged with a watch slot, which sends
    /// the completion on to `handler`/`tag`. Unwatched when the table is full (logged once).
    /// One clock read per watched I/O (vDSO, no system call); none when the timeout is off.
    func watchedSQE(_ volume: Volume, handler: UInt32, tag: UInt32, operation: VolumeOperation)
        -> UnsafeMutablePointer<io_uring_sqe>
    {
        guard let slot = volumeWatch.begin(volume: volume, handler: handler, tag: tag, operation: operation,
                                           nowNs: MonotonicClock.nowNs()) else {
            if volumeWatch.noticeFull() {
                logger.warning("more volume I/Os in flight than the disk-timeout watch holds; the rest go unwatched",
                               metadata: ["slots": "\(VolumeIOWatch.slotsMax)"])
            }
            return sqe(handler: handler, tag: tag)
        }
        return sqe(handler: 0, tag: VolumeIOWatch.tagBit | slot)
    }

    /// The disk answered an I/O it had been given up on; its owner gets the result as usual.
    private func lateCompletion(_ volume: Volume, _ operation: VolumeOperation, _ ageNs: UInt64, result: Int32) {
        logger.notice("a volume I/O reported overdue completed late", metadata: [
            "volume": "\(volume.path)", "operation": "\(operation.name)", "after_ms": "\(ageNs / 1_000_000)",
            "result": "\(result)",
        ])
    }

    /// Volume I/Os in flight under a disk timeout, and those that completed after they were
    /// reported overdue (tests).
    public var watchedVolumeIO: (inFlight: Int, lateCompletions: UInt64) {
        (volumeWatch.inFlightCount, volumeWatch.lateCompletions)
    }

    private func loopCompleted(tag: UInt32, result: Int32) {
        switch tag {
        case Self.wakeTag:
            runPending()
            if running { armWake() }
        case Self.tickTag:
            volumeWatch.check(nowNs: MonotonicClock.nowNs())
            for tick in tickHandlers { tick() }
            if running { armTick() }
        case Self.timerTagBase..<Self.timerTagBase + UInt32(Self.timerSlots):
            timerFired(slot: Int(tag - Self.timerTagBase))
        default:
            break  // cancellations and other loop-internal completions carry no work
        }
    }

    private func runPending() {
        pthread_mutex_lock(&lock)
        let work = pending
        pending.removeAll(keepingCapacity: true)
        pthread_mutex_unlock(&lock)
        for body in work { body() }
    }

    private func armWake() {
        let sqe = ring.sqe()
        io_uring_prep_read(sqe, wakeFD, &wakeValue, 8, 0)
        io_uring_sqe_set_data64(sqe, packUserData(handler: 0, tag: Self.wakeTag))
    }

    private func armTick() {
        let sqe = ring.sqe()
        io_uring_prep_timeout(sqe, &tickTimeout, 0, 0)
        io_uring_sqe_set_data64(sqe, packUserData(handler: 0, tag: Self.tickTag))
    }

    /// Prepares an SQE whose completion goes to `handler` with `tag`.
    @inline(__always)
    public func sqe(handler: UInt32, tag: UInt32) -> UnsafeMutablePointer<io_uring_sqe> {
        let sqe = ring.sqe()
        sqe.pointee.user_data = packUserData(handler: handler, tag: tag)
        return sqe
    }
}

/// A one-shot hand-over of a value between two threads.
final class ResultBox<T>: @unchecked Sendable {
    private var value: T?
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
    }
    deinit {
        pthread_mutex_destroy(&mutex)
        pthread_cond_destroy(&cond)
    }
    func put(_ newValue: T) {
        pthread_mutex_lock(&mutex)
        value = newValue
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
    }
    func take() -> T {
        pthread_mutex_lock(&mutex)
        while value == nil { pthread_cond_wait(&cond, &mutex) }
        let result = value!
        pthread_mutex_unlock(&mutex)
        return result
    }
}

extension EventLoop {
    /// Starts `body` on the loop thread and waits until it calls its completion, which may
    /// happen in a later loop turn. Not from the loop thread.
    public func awaitOnLoop<T: Sendable>(_ body: @escaping @Sendable (@escaping (T) -> Void) -> Void) -> T {
        let box = ResultBox<T>()
        execute { body { box.put($0) } }
        return box.take()
    }
}
