// TandemIO owns the real world: the io_uring engine, the registered buffer pool, volumes,
// sockets, the TLS transport and the clock. It holds no replication policy.
import CURing

func _probeRing() -> Int32 {
    var ring = io_uring()
    let rc = io_uring_queue_init(8, &ring, 0)
    guard rc == 0 else { return rc }
    let sqe = io_uring_get_sqe(&ring)!
    io_uring_prep_nop(sqe)
    io_uring_sqe_set_data64(sqe, 42)
    io_uring_submit(&ring)
    var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
    io_uring_wait_cqe(&ring, &cqe)
    io_uring_cqe_seen(&ring, cqe)
    io_uring_queue_exit(&ring)
    return 0
}
