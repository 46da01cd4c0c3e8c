import TandemCore

/// Every random test is reproducible by seed.
typealias WireTestRandom = SplitMix64

enum WireFixtures {
    static let hello = WireHello(
        role: .primary, nodeName: "alpha", resourceName: "r0", volumeSizeBytes: 1 << 30,
        generations: WireGenerations(current: 0xAAAA, bitmap: 0xBBBB, history: [1, 2, 3, 4]),
        promotionNumber: 7)

    static func data(sequence: UInt64, epoch: UInt64, payload: [UInt8] = [1, 2, 3, 4]) -> WireMessage {
        .data(
            WireData(
                header: WireDataHeader(
                    epoch: epoch, sequence: sequence, offsetBytes: 4096, lengthBytes: UInt32(payload.count),
                    flags: [], crc32c: CRC32C.checksum(payload)),
                payload: payload[...]))
    }

    /// A frame with a hand-made header and body; the header CRC is computed unless given.
    static func rawFrame(
        type: UInt8, body: [UInt8], version: UInt8 = WireFormat.currentVersion, flags: UInt16 = 0, bodyLength: UInt32? = nil,
        magic: UInt32 = WireFormat.magic, promotion: UInt64 = 0
    ) -> [UInt8] {
        var header: [UInt8] = []
        header += le(magic)
        header += [version, type]
        header += le(flags)
        header += le(bodyLength ?? UInt32(body.count))
        header += le(promotion)
        header += le(CRC32C.checksum(header))
        return header + body
    }

    static func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    static func decodeAll(_ bytes: [UInt8], checksOrdering: Bool = true) throws(WireError) -> [WireFrame] {
        var decoder = WireDecoder(checksOrdering: checksOrdering)
        decoder.feed(bytes)
        var frames: [WireFrame] = []
        while let frame = try decoder.next() { frames.append(frame) }
        try decoder.finish()
        return frames
    }

    static func firstError(_ bytes: [UInt8]) -> WireError? {
        do {
            _ = try decodeAll(bytes)
            return nil
        } catch {
            return error
        }
    }
}
