// BlockBytes: the 4 KiB block patterns the integration tests write, and the byte compares that
// check volumes, done in bulk. The harness is compiled unoptimised (a debug build), where a
// per-byte loop or a generic `elementsEqual`/`allSatisfy` costs tens of nanoseconds a byte;
// building each written block's pattern and comparing volumes byte by byte were the largest
// share of the fault campaign's CPU time (README, Tests). Here a pattern is one copy out of a
// table built once and a compare is one memcmp: the same bytes are compared.
import Foundation

enum BlockBytes {
    static let count = 4096

    /// UInt8(truncatingIfNeeded: 7 × q) for q in 0..<count + 256. Block `index`'s byte at
    /// `position` is UInt8(truncatingIfNeeded: 31 × index + 7 × position) = sevens[position +
    /// k] for any k with 7 × k ≡ 31 × index (mod 256): k = 41 × index mod 256 (7 × 41 = 287 ≡ 31).
    private static let sevens: [UInt8] = (0..<(count + 256)).map { UInt8(truncatingIfNeeded: $0 &* 7) }

    /// Block `index`'s content: its index (8 bytes, little-endian), then byte `position` is
    /// UInt8(truncatingIfNeeded: index × 31 + position × 7).
    static func pattern(_ index: Int) -> [UInt8] {
        let shift = (index &* 41) & 255
        var bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            sevens.withUnsafeBufferPointer { table in
                buffer.baseAddress!.initialize(from: table.baseAddress! + shift, count: count)
            }
            initialized = count
        }
        withUnsafeBytes(of: UInt64(index).littleEndian) { indexBytes in
            bytes.withUnsafeMutableBytes { $0.copyMemory(from: indexBytes) }
        }
        return bytes
    }

    /// UInt8(truncatingIfNeeded: q) for q in 0..<count + 256.
    private static let counted: [UInt8] = (0..<(count + 256)).map { UInt8(truncatingIfNeeded: $0) }

    /// `length` (at most `count`) bytes counting up from `start`: byte j is
    /// UInt8(truncatingIfNeeded: start + j). One copy out of a table.
    static func counting(from start: Int, count length: Int) -> ArraySlice<UInt8> {
        precondition(length >= 0 && length <= count, "at most a block")
        let shift = start & 255
        return counted[shift..<shift + length]
    }

    /// True when both hold the same bytes (one memcmp).
    static func equal(_ one: UnsafeRawBufferPointer, _ other: UnsafeRawBufferPointer) -> Bool {
        guard one.count == other.count else { return false }
        return one.count == 0 || memcmp(one.baseAddress!, other.baseAddress!, one.count) == 0
    }

    /// True when every byte of `bytes` is `value`: the first one is, and the bytes equal
    /// themselves shifted by one.
    static func all(_ bytes: UnsafeRawBufferPointer, are value: UInt8) -> Bool {
        guard let first = bytes.first else { return true }
        return first == value && memcmp(bytes.baseAddress!, bytes.baseAddress! + 1, bytes.count - 1) == 0
    }

    /// Block `index` (4 KiB from the start) of `volume`; nil when the volume ends before it.
    static func block(_ index: Int, of volume: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        let start = index * count
        guard start >= 0, volume.count >= start + count else { return nil }
        return UnsafeRawBufferPointer(rebasing: volume[start..<start + count])
    }

    /// True when block `index` of `volume` holds `pattern(index)`.
    static func holdsPattern(_ volume: UnsafeRawBufferPointer, block index: Int) -> Bool {
        guard let block = block(index, of: volume) else { return false }
        return pattern(index).withUnsafeBytes { equal(block, $0) }
    }

    /// True when `bytes` holds `pattern(index)`.
    static func isPattern(_ bytes: [UInt8], _ index: Int) -> Bool {
        bytes.withUnsafeBytes { one in pattern(index).withUnsafeBytes { equal(one, $0) } }
    }

    /// The first byte offset at which two buffers differ (nil: none within the shorter one),
    /// found a MiB at a time by memcmp.
    static func firstDifference(_ one: [UInt8], _ other: [UInt8]) -> Int? {
        one.withUnsafeBytes { a in
            other.withUnsafeBytes { b in
                let length = min(a.count, b.count), chunk = 1 << 20
                for start in stride(from: 0, to: length, by: chunk) {
                    let end = min(start + chunk, length)
                    guard memcmp(a.baseAddress! + start, b.baseAddress! + start, end - start) != 0 else { continue }
                    return (start..<end).first { a[$0] != b[$0] }
                }
                return nil
            }
        }
    }
}
