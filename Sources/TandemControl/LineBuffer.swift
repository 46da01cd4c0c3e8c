// LineBuffer: splits a byte stream into newline-terminated lines with a hard bound on line
// length. Pure (no I/O), shared by the control server and client. An over-long line is
// reported once and the rest of it, up to its newline, is discarded, so the stream that
// follows stays usable.

public struct LineBuffer {
    public enum Event: Equatable, Sendable {
        /// A complete line without its "\n" (and without a trailing "\r").
        case line([UInt8])
        /// A line exceeded `lineBytesMax`; its remainder will be skipped.
        case tooLong
    }

    public let lineBytesMax: Int
    var buffer: [UInt8] = []
    /// Bytes of `buffer` already searched for a newline.
    var scanned = 0
    var discarding = false

    public init(lineBytesMax: Int) {
        precondition(lineBytesMax > 0)
        self.lineBytesMax = lineBytesMax
    }

    /// Bytes held that are not yet part of a complete line; once `next()` has returned nil,
    /// at most `lineBytesMax + 1` (the limit and a "\r" that may still end the line).
    public var pendingBytes: Int { buffer.count }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// The next complete line or over-long event; nil when more input is needed.
    public mutating func next() -> Event? {
        while true {
            let newline = buffer[scanned...].firstIndex(of: 0x0A)
            if discarding {
                guard let newline else {
                    buffer.removeAll(keepingCapacity: true)
                    scanned = 0
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
                guard buffer.count > lineBytesMax + 1 else { return nil }
                buffer.removeAll(keepingCapacity: true)
                scanned = 0
                discarding = true
                return .tooLong
            }
            var line = Array(buffer[..<newline])
            consume(through: newline)
            if line.last == 0x0D { line.removeLast() }
            return line.count > lineBytesMax ? .tooLong : .line(line)
        }
    }

    mutating func consume(through index: Int) {
        buffer.removeFirst(index + 1)
        scanned = 0
    }
}
