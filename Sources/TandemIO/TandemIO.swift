// TandemIO owns the real world: the event loop and its io_uring ring, the registered buffer
// pool and request buffers, volumes (O_DIRECT files and devices), TCP and Unix sockets, the
// TLS transport, LZ4 and the hardware CRC32C, systemd notification, the monotonic clock and
// latency histograms.
// It holds no replication policy: it carries out I/O and reports results.
