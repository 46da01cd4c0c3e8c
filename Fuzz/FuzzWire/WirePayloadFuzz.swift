// WirePayloadFuzz: the receiver's restore of a decoded Data payload (LZ4 and CRC32C in
// TandemIO, no I/O), then the sender's prepare of the restored block and a second restore.
import TandemCore
import TandemIO
import FuzzSupport

enum WirePayloadFuzz {
    /// Blocks larger than this are not restored here: the fuzzer's inputs are small, and a
    /// compressed frame may claim up to 32 MiB, which would only measure `memset`.
    static let restoreBytesMax = 1 << 20

    static func check(_ data: WireData) {
        let header = data.header
        let length = Int(header.lengthBytes)
        guard length <= restoreBytesMax else { return }
        var block = [UInt8](repeating: 0xA5, count: length)
        let failure: WirePayloadError? = data.payload.withUnsafeBytes { payload in
            block.withUnsafeMutableBytes { destination in
                do throws(WirePayloadError) {
                    try WirePayload.restore(header, payload: payload, into: destination)
                    return nil
                } catch {
                    return error
                }
            }
        }
        let softwareCRC = CRC32C.checksum(block)
        if header.flags.contains(.compressed) {
            checkCompressed(data, block: block, failure: failure)
        } else {
            fuzzCheck((failure == nil) == (softwareCRC == header.crc32c), "restore disagrees with the software CRC32C")
            fuzzCheck(failure != nil || block[...] == data.payload, "an uncompressed restore changed the bytes")
            let verified = data.payload.withUnsafeBytes { payload in
                (try? WirePayload.verify(header, payload: payload)) != nil
            }
            fuzzCheck(verified == (failure == nil), "verify and restore disagree")
        }
        guard failure == nil else { return }
        fuzzCheck(softwareCRC == header.crc32c, "a restored block does not have the carried CRC32C")
        checkPrepareRestores(block, header: header)
    }

    /// A compressed block restores only if liblz4 yields exactly the block's length; then the
    /// CRC32C decides.
    static func checkCompressed(_ data: WireData, block: [UInt8], failure: WirePayloadError?) {
        var again = [UInt8](repeating: 0, count: block.count)
        let decompressed = data.payload.withUnsafeBytes { payload in
            again.withUnsafeMutableBytes { destination in
                (try? LZ4.decompress(payload, into: destination)) != nil
            }
        }
        switch failure {
        case nil:
            fuzzCheck(decompressed && again == block, "restore succeeded where decompression does not")
        case .decompression?:
            fuzzCheck(!decompressed, "restore reports a decompression failure liblz4 does not")
        case .checksumMismatch?:
            fuzzCheck(decompressed && CRC32C.checksum(again) != data.header.crc32c, "a checksum mismatch that is not one")
        case .bufferSizeMismatch?:
            fuzzCheck(false, "restore refused the buffer sized from the header")
        case .implausibleLength?:
            // Refused before liblz4 is asked: LZ4 cannot expand the payload that far.
            fuzzCheck(!decompressed, "restore calls a length implausible that liblz4 restores")
        }
    }

    /// What a primary would send for this block restores to the same block.
    static func checkPrepareRestores(_ block: [UInt8], header: WireDataHeader) {
        var scratch = [UInt8](repeating: 0, count: block.count)
        var restored = [UInt8](repeating: 0, count: block.count)
        block.withUnsafeBytes { source in
            scratch.withUnsafeMutableBytes { scratchBuffer in
                let (prepared, compressedBytes) = WirePayload.prepare(
                    block: source, epoch: header.epoch, sequence: header.sequence, offsetBytes: header.offsetBytes,
                    fua: header.flags.contains(.fua), compress: true, scratch: scratchBuffer)
                fuzzCheck(prepared.crc32c == header.crc32c, "prepare computes a different CRC32C")
                let payload = compressedBytes.map { UnsafeRawBufferPointer(rebasing: scratchBuffer[0..<$0]) } ?? source
                restored.withUnsafeMutableBytes { destination in
                    do throws(WirePayloadError) {
                        try WirePayload.restore(prepared, payload: payload, into: destination)
                    } catch {
                        fuzzCheck(false, "a prepared block does not restore: \(error)")
                    }
                }
            }
        }
        fuzzCheck(restored == block, "prepare then restore changed the block")
    }
}
