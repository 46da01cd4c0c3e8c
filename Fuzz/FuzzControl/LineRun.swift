// LineRun: a LineBuffer fed a stream in given pieces, draining every event after each piece,
// the way ControlConnection reads the socket; and the events a plain split should give.
import FuzzSupport
import TandemControl

struct LineRun {
    var events: [LineBuffer.Event] = []

    init(_ stream: [UInt8], pieces: [Range<Int>], lineBytesMax: Int) {
        var lines = LineBuffer(lineBytesMax: lineBytesMax)
        for piece in pieces {
            lines.append(stream[piece])
            while let event = lines.next() { events.append(event) }
            // The bound the control server relies on: an unfinished line never holds more
            // than the limit plus the "\r" that may still turn out to end it.
            fuzzCheck(lines.pendingBytes <= lineBytesMax + 1, "\(lines.pendingBytes) bytes held for a \(lineBytesMax)-byte limit")
        }
    }

    /// Each "\n"-terminated line, one trailing "\r" dropped, is a line if it fits and too long
    /// otherwise; an unfinished tail is too long as soon as no "\r\n" can save it.
    static func expected(_ stream: [UInt8], lineBytesMax: Int) -> [LineBuffer.Event] {
        var segments = stream.split(separator: 0x0A, omittingEmptySubsequences: false)
        let tail = segments.removeLast()
        var events: [LineBuffer.Event] = segments.map { segment in
            let line = segment.last == 0x0D ? segment.dropLast() : segment
            return line.count > lineBytesMax ? .tooLong : .line(Array(line))
        }
        if tail.count > lineBytesMax + 1 { events.append(.tooLong) }
        return events
    }
}
