// RegionHasher: the 128-bit digest online verify compares (TandemCore's RegionDigest):
// SHA-256 of the region through OpenSSL (SHA-NI where the CPU has it), truncated to its first
// 16 bytes. One call per region; no allocation.
import COpenSSL
import TandemCore

public enum RegionHasher {
    public static func digest(_ bytes: UnsafeRawPointer, count: Int) -> RegionDigest? {
        var md = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        var size: UInt32 = 0
        let done = withUnsafeMutableBytes(of: &md) { out in
            EVP_Digest(bytes, count, out.baseAddress!.assumingMemoryBound(to: UInt8.self), &size, EVP_sha256(), nil)
        }
        guard done == 1, size == 32 else { return nil }
        return RegionDigest(high: UInt64(bigEndian: md.0), low: UInt64(bigEndian: md.1))
    }
}
