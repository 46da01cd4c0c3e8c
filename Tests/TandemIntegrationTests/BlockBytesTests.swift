// The harness's bulk byte helpers against the per-byte definitions they replace: a pattern or
// a compare that went wrong here would make every volume check of the integration suite pass
// or fail for the wrong reason. Pure computation, outside `Integration`: no daemon.
import Foundation
import Testing

@Suite struct BlockBytesTests {
    /// The definition the writer's blocks had as a per-byte loop.
    static func patternByDefinition(_ index: Int) -> [UInt8] {
        var bytes = (0..<BlockBytes.count).map { UInt8(truncatingIfNeeded: index &* 31 &+ $0 &* 7) }
        withUnsafeBytes(of: UInt64(index).littleEndian) { for (offset, byte) in $0.enumerated() { bytes[offset] = byte } }
        return bytes
    }

    @Test func everyBlockPatternIsItsDefinition() {
        for index in Array(0..<600) + [4095, 65_535, 1 << 20, (1 << 40) + 77] {
            #expect(BlockBytes.pattern(index) == Self.patternByDefinition(index), "block \(index)")
        }
    }

    @Test func countingBytesAreTheirDefinition() {
        for start in [0, 1, 255, 256, 31 * 977, -5] {
            for length in [0, 1, 4076, 4096] {
                let expected = (0..<length).map { UInt8(truncatingIfNeeded: start &+ $0) }
                #expect(Array(BlockBytes.counting(from: start, count: length)) == expected, "from \(start), \(length)")
            }
        }
    }

    @Test func comparesFindASingleChangedByteAnywhere() {
        let volume = (0..<8).flatMap { BlockBytes.pattern($0) }
        for position in [0, 1, 4095, 4096, 20_000, volume.count - 1] {
            var changed = volume
            changed[position] ^= 0x10
            let block = position / BlockBytes.count
            let holds = changed.withUnsafeBytes { BlockBytes.holdsPattern($0, block: block) }
            #expect(!holds, "a change at \(position) in block \(block)")
            #expect(BlockBytes.firstDifference(volume, changed) == position)
            let equal = volume.withUnsafeBytes { one in changed.withUnsafeBytes { BlockBytes.equal(one, $0) } }
            #expect(!equal)
            var zero = [UInt8](repeating: 0, count: volume.count)
            zero[position] = 1
            #expect(!zero.withUnsafeBytes { BlockBytes.all($0, are: 0) }, "a non-zero byte at \(position)")
        }
        #expect(volume.withUnsafeBytes { bytes in (0..<8).allSatisfy { BlockBytes.holdsPattern(bytes, block: $0) } })
        #expect(!volume.withUnsafeBytes { BlockBytes.holdsPattern($0, block: 8) }, "a block past the end is not there")
        #expect(BlockBytes.firstDifference(volume, volume) == nil)
        #expect([UInt8](repeating: 0x5e, count: 9000).withUnsafeBytes { BlockBytes.all($0, are: 0x5e) })
    }
}
