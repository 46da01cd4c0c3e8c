// OpenSSLMemory: where OpenSSL's heap blocks come from. The daemon installs a per-thread
// cache of small blocks before anything else runs, so that the TLS record layer's
// per-record allocations are served without calling malloc (CShims.c explains the layout).
import CShims

public enum OpenSSLMemory {
    /// Installs the cache; false when OpenSSL has already allocated (then nothing changes).
    /// Call first thing in `main`.
    @discardableResult
    public static func cacheSmallBlocks() -> Bool {
        tandem_openssl_cache_small_blocks() == 1
    }

    /// Small blocks this thread reused from its cache and allocated afresh.
    public static var smallBlockCounts: (reused: UInt, allocated: UInt) {
        var reused: UInt = 0
        var allocated: UInt = 0
        tandem_openssl_small_block_counts(&reused, &allocated)
        return (reused, allocated)
    }
}
