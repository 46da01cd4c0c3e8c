// TandemIO owns the real world: the io_uring engine, the registered buffer pool, volumes,
// sockets, the TLS transport and the clock. It holds no replication policy.
