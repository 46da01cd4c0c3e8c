// NBDRequest: one request slot of a connection, allocated when the connection opens and
// reused for every request it carries. Loop thread only.
import TandemCore
import TandemIO

final class NBDRequest {
    enum Phase {
        case free
        /// Payload still arriving from the socket.
        case receiving
        /// Waiting for an overlapping mutation to finish (NBDExportBackend.mustWait).
        case waiting
        case readingEdges
        case disk
        /// FUA on TRIM / WRITE_ZEROES: the data operation is done, the flush runs.
        case flushing
        case replying
    }

    unowned let connection: NBDConnection
    let index: UInt16
    var phase = Phase.free
    var header = NBDRequestHeader(flags: 0, type: 0, handle: 0, offset: 0, length: 0)
    var command = NBD.Command.read
    var buffer: DataBuffer?
    /// Head and tail blocks of a read-modify-write.
    var edges: DataBuffer?
    /// Where the request's bytes start inside `buffer` (the unaligned head).
    var dataOffset = 0
    /// Aligned disk range the request touches.
    var diskOffset: UInt64 = 0
    var diskLength = 0
    var diskDone = 0
    /// When the local write was submitted (MonotonicClock), for the latency histogram.
    var diskStartNs: UInt64 = 0
    var payloadReceived = 0
    /// Trace stamps (RequestTrace): the receive that carried the header, and the last hop.
    var traceStart = TraceStamp.none
    var traceHop = TraceStamp.none
    var edgeReadsPending = 0
    var error: UInt32 = 0
    /// The request's index in the export's list of active mutations; -1 when not in it.
    var activeIndex = -1
    var isReadModifyWrite = false
    /// A read the export's read router counted as local (it is told when the read ends).
    var readCountedLocal = false
    // Intrusive links (export's waiting list, connection's reply queue).
    var nextWaiting: NBDRequest?
    var nextReply: NBDRequest?
    /// Reply header bytes (simple: 16, structured data: 28, structured error: 26).
    let replyHeader: UnsafeMutableRawBufferPointer
    var replyHeaderBytes = 0

    init(connection: NBDConnection, index: UInt16, replyHeader: UnsafeMutableRawBufferPointer) {
        self.connection = connection
        self.index = index
        self.replyHeader = replyHeader
    }

    var isMutation: Bool {
        command == .write || command == .trim || command == .writeZeroes
    }

    var endOffset: UInt64 { header.offset + UInt64(header.length) }

    /// Reads and writes are traced; other commands are not.
    var traceOperation: TraceOperation? {
        switch command {
        case .read: .read
        case .write: .write
        default: nil
        }
    }

    /// The range an overlapping mutation must wait for: the aligned cover of a
    /// read-modify-write, the request's own range otherwise.
    var lockStart: UInt64 { isReadModifyWrite ? diskOffset : header.offset }
    var lockEnd: UInt64 { isReadModifyWrite ? diskOffset + UInt64(diskLength) : endOffset }

    func reset() {
        phase = .free
        buffer = nil
        edges = nil
        dataOffset = 0
        diskDone = 0
        payloadReceived = 0
        edgeReadsPending = 0
        error = 0
        isReadModifyWrite = false
        readCountedLocal = false
        nextReply = nil
        nextWaiting = nil
        replyHeaderBytes = 0
        traceStart = .none
        traceHop = .none
    }
}
