// LineBuffer: splits a byte stream into newline-terminated lines with a hard bound on line
// length. Pure (no I/O), shared by the control server and client. An over-long line is
// reported once and the rest of it, up to its newline, is discarded, so the stream that
// follows stays usable.
//
// Work and memory are linear and bounded: every byte is searched for a newline once; a
// line taken only advances a read offset, and the consumed prefix is dropped when it is at
// least half the buffer or nothing complete is left (each byte is moved at most once more
// than it is read, amortised); bytes of an over-long line are dropped as they arrive. After
// `next()` returns nil, at most `lineBytesMax + 1` bytes are held.

public struct LineBuffer {
    public enum Event: Equatable, Sendable {
        /// A complete line without its "\n" (and without a trailing "\r").
        case line([UInt8])
        /// A line exceeded `lineBytesMax`; its remainder will be skipped.
        case tooLong
    }

    public let lineBytesMax: Int
    var buffer: [UInt8] = []
    /// Start of the bytes not yet taken: `buffer[..<start]` is consumed.
    var start = 0
    /// Bytes of `buffer` already searched for a newline (an index ≥ `start`).
    var scanned = 0
    var discarding = false
    /// Bytes moved to the front of the buffer so far: the work of dropping consumed lines
    /// (tests bound it).
    public private(set) var movedBytes = 0

    public init(lineBytesMax: Int) {
        precondition(lineBytesMax > 0)
        self.lineBytesMax = lineBytesMax
    }

    /// Bytes held that are not yet part of a complete line; once `next()` has returned nil,
    /// at most `lineBytesMax + 1` (the limit and a "\r" that may still end the line).
    public var pendingBytes: Int { buffer.count - start }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// The next complete line or over-long event; nil when more input is needed.
    public mutating func next() -> Event? {
        while true {
            let newline = buffer[scanned...].firstIndex(of: 0x0A)
            if discarding {
                guard let newline else {
                    dropAll()
                    return nil
                }
                consume(through: newline)
                discarding = false
                continue
            }
            guard let newline else {
                scanned = buffer.count
                // One byte more than the limit may still be the "\r" of a "\r\n" that ends a
                // line of exactly the limit: refusing it now would make the answer depend on
                // where the stream was cut into reads.
                guard pendingBytes > lineBytesMax + 1 else {
                    compact()
                    return nil
                }
                dropAll()
                discarding = true
                return .tooLong
            }
            var end = newline
            if end > start && buffer[end - 1] == 0x0D { end -= 1 }
            let tooLong = end - start > lineBytesMax
            let line = tooLong ? [] : Array(buffer[start..<end])
            consume(through: newline)
            return tooLong ? .tooLong : .line(line)
        }
    }

    private mutating func consume(through index: Int) {
        start = index + 1
        scanned = start
        if start >= buffer.count - start { compact() }
    }

    /// Drops the consumed prefix, moving what is left to the front.
    private mutating func compact() {
        guard start > 0 else { return }
        movedBytes += buffer.count - start
        buffer.removeFirst(start)
        scanned -= start
        start = 0
    }

    private mutating func dropAll() {
        buffer.removeAll(keepingCapacity: true)
        start = 0
        scanned = 0
    }
}
