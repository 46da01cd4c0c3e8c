// StagingJournalRecord: one record of a secondary's staging journal (docs/metadata.md,
// *Staging journal*): a 4096-byte checksummed header naming the write (volume offset and
// length, stream sequence and epoch, where in the journal it sits, the staging session) and
// the payload's CRC32C, followed by the payload padded to 4096 bytes. The header's CRC covers
// the header; the payload CRC covers the payload: a record is proven only if both hold. Pure:
// no I/O.

public struct StagingJournalRecord: Equatable, Sendable {
    public static let headerBytes = 4096
    /// The unit records are padded to (the journal is written with O_DIRECT).
    public static let unitBytes: UInt64 = 4096
    static let magic: [UInt8] = Array("TNDMSJ01".utf8)
    static let crcOffset = 8

    /// The staging session (`StagedCatchUp.session`): a record of another journal is refused.
    public var stagingSession: UInt64
    /// Where this record's header starts in the journal.
    public var journalOffsetBytes: UInt64
    public var sequence: WriteSequence
    public var epoch: Epoch
    public var volumeOffsetBytes: UInt64
    public var lengthBytes: UInt32
    public var payloadCRC: UInt32

    public init(stagingSession: UInt64, journalOffsetBytes: UInt64, sequence: WriteSequence, epoch: Epoch,
                volumeOffsetBytes: UInt64, lengthBytes: UInt32, payloadCRC: UInt32) {
        self.stagingSession = stagingSession
        self.journalOffsetBytes = journalOffsetBytes
        self.sequence = sequence
        self.epoch = epoch
        self.volumeOffsetBytes = volumeOffsetBytes
        self.lengthBytes = lengthBytes
        self.payloadCRC = payloadCRC
    }

    /// Journal bytes a record of a `length`-byte write takes: its header and padded payload.
    public static func recordBytes(lengthBytes: UInt32) -> UInt64 {
        let payload = (UInt64(lengthBytes) + unitBytes - 1) / unitBytes * unitBytes
        return UInt64(headerBytes) + payload
    }

    public var recordBytes: UInt64 { Self.recordBytes(lengthBytes: lengthBytes) }

    public func encode() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.headerBytes)
        for (index, byte) in Self.magic.enumerated() { bytes[index] = byte }
        MetadataBytes.put(stagingSession, &bytes, at: 16)
        MetadataBytes.put(journalOffsetBytes, &bytes, at: 24)
        MetadataBytes.put(sequence, &bytes, at: 32)
        MetadataBytes.put(epoch, &bytes, at: 40)
        MetadataBytes.put(volumeOffsetBytes, &bytes, at: 48)
        MetadataBytes.put(lengthBytes, &bytes, at: 56)
        MetadataBytes.put(payloadCRC, &bytes, at: 60)
        MetadataBytes.seal(&bytes, crcOffset: Self.crcOffset)
        return bytes
    }

    /// Why a header cannot be used where it was read.
    public enum ProofError: Error, Equatable, Sendable, CustomStringConvertible {
        case badMagic
        case checksumMismatch
        case otherJournal(session: UInt64)
        case misplaced(claimedOffset: UInt64)
        case empty

        public var description: String {
            switch self {
            case .badMagic: return "no record header (bad magic)"
            case .checksumMismatch: return "header checksum mismatch"
            case .otherJournal(let session): return "record of another staging session (\(session))"
            case .misplaced(let offset): return "record claims journal offset \(offset)"
            case .empty: return "record of 0 bytes"
            }
        }
    }

    /// The header at `journalOffsetBytes` of the journal of `stagingSession`, proven.
    public static func decode(_ bytes: [UInt8], stagingSession: UInt64, journalOffsetBytes: UInt64)
        -> Result<StagingJournalRecord, ProofError>
    {
        precondition(bytes.count >= headerBytes)
        let header = bytes.count == headerBytes ? bytes : Array(bytes[0..<headerBytes])
        guard Array(header[0..<8]) == magic else { return .failure(.badMagic) }
        guard MetadataBytes.sealed(header, crcOffset: crcOffset) else { return .failure(.checksumMismatch) }
        let record = StagingJournalRecord(
            stagingSession: MetadataBytes.get(UInt64.self, header, at: 16),
            journalOffsetBytes: MetadataBytes.get(UInt64.self, header, at: 24),
            sequence: MetadataBytes.get(UInt64.self, header, at: 32),
            epoch: MetadataBytes.get(UInt64.self, header, at: 40),
            volumeOffsetBytes: MetadataBytes.get(UInt64.self, header, at: 48),
            lengthBytes: MetadataBytes.get(UInt32.self, header, at: 56),
            payloadCRC: MetadataBytes.get(UInt32.self, header, at: 60))
        guard record.stagingSession == stagingSession else { return .failure(.otherJournal(session: record.stagingSession)) }
        guard record.journalOffsetBytes == journalOffsetBytes else {
            return .failure(.misplaced(claimedOffset: record.journalOffsetBytes))
        }
        guard record.lengthBytes > 0 else { return .failure(.empty) }
        return .success(record)
    }
}
