// Ring: one io_uring instance. Owned by one EventLoop and confined to its thread.
import CURing
import Glibc

/// `user_data` layout: the high 32 bits name the handler registered with the loop, the low
/// 32 bits are the handler's own tag (a slot index and an operation kind). No lookup by
/// dictionary and no closure per I/O.
@inline(__always)
func packUserData(handler: UInt32, tag: UInt32) -> UInt64 { UInt64(handler) << 32 | UInt64(tag) }

public final class Ring {
    var ring = io_uring()
    public let submissionEntries: UInt32
    public let completionEntries: UInt32
    /// The kernel keeps completions that do not fit the CQ instead of dropping them.
    public let keepsOverflow: Bool

    public init(entries: UInt32) throws(IOError) {
        var params = io_uring_params()
        params.flags = UInt32(IORING_SETUP_CQSIZE) | UInt32(IORING_SETUP_SINGLE_ISSUER)
            | UInt32(IORING_SETUP_COOP_TASKRUN)
        params.cq_entries = entries * 4
        var rc = io_uring_queue_init_params(entries, &ring, &params)
        if rc == -EINVAL {
            // Older kernels lack SINGLE_ISSUER / COOP_TASKRUN.
            params = io_uring_params()
            params.flags = UInt32(IORING_SETUP_CQSIZE)
            params.cq_entries = entries * 4
            rc = io_uring_queue_init_params(entries, &ring, &params)
        }
        guard rc == 0 else { throw IOError(errno: -rc, "io_uring_queue_init") }
        submissionEntries = params.sq_entries
        completionEntries = params.cq_entries
        keepsOverflow = params.features & UInt32(IORING_FEAT_NODROP) != 0
    }

    deinit { io_uring_queue_exit(&ring) }

    /// A free submission entry; flushes the queue to the kernel when it is full.
    @inline(__always)
    public func sqe() -> UnsafeMutablePointer<io_uring_sqe> {
        if let sqe = io_uring_get_sqe(&ring) { return sqe }
        while true {
            let rc = io_uring_submit(&ring)
            if rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY {
                preconditionFailure("io_uring_submit failed: errno \(-rc)")
            }
            if let sqe = io_uring_get_sqe(&ring) { return sqe }
            if rc == -EBUSY { drainOverflowHint() }
        }
    }

    /// With a full CQ the kernel refuses submissions (EBUSY) until completions are reaped;
    /// the loop reaps at the next turn, so here we only make the kernel flush its backlog.
    func drainOverflowHint() {
        _ = io_uring_get_events(&ring)
    }

    public func registerBuffer(_ base: UnsafeMutableRawPointer, length: Int) throws(IOError) {
        var iov = iovec(iov_base: base, iov_len: length)
        let rc = io_uring_register_buffers(&ring, &iov, 1)
        guard rc == 0 else { throw IOError(errno: -rc, "io_uring_register_buffers") }
    }

    public func registerSparseFiles(count: UInt32) throws(IOError) {
        let rc = io_uring_register_files_sparse(&ring, count)
        guard rc == 0 else { throw IOError(errno: -rc, "io_uring_register_files_sparse") }
    }

    public func updateFile(slot: UInt32, fd: Int32) throws(IOError) {
        var value = fd
        let rc = io_uring_register_files_update(&ring, slot, &value, 1)
        guard rc >= 0 else { throw IOError(errno: -rc, "io_uring_register_files_update") }
    }
}
