// NBDConnection+ReadModifyWrite: writes the client did not align to the volume's O_DIRECT
// block. Reads the partial head and tail blocks into the request's edge buffer and merges them
// around the payload, which was received in place; the aligned write then goes to the disk or
// the write sink like any other. Loop thread only.
import Glibc
import TandemCore
import TandemIO

extension NBDConnection {
    func readEdges(_ request: NBDRequest) {
        request.phase = .readingEdges
        let alignment = backend.volume.alignment
        let edges = request.edges!.pointer
        let headPartial = request.dataOffset != 0
        let tailStart = request.diskOffset + UInt64(request.diskLength - alignment)
        let tailPartial = request.endOffset != request.diskOffset + UInt64(request.diskLength)
        if headPartial {
            loop.prepareVolumeIO(write: false, volume: backend.volume, buffer: edges, length: alignment,
                                 offset: request.diskOffset, dsync: false, handler: handlerID, tag: tag(.edgeHead, request))
            operationsInFlight += 1
            request.edgeReadsPending += 1
        }
        if tailPartial && !(headPartial && tailStart == request.diskOffset) {
            loop.prepareVolumeIO(write: false, volume: backend.volume, buffer: edges + alignment, length: alignment,
                                 offset: tailStart, dsync: false, handler: handlerID, tag: tag(.edgeTail, request))
            operationsInFlight += 1
            request.edgeReadsPending += 1
        }
    }

    func edgeCompleted(_ request: NBDRequest, _ result: Int32) {
        request.edgeReadsPending -= 1
        if result != Int32(backend.volume.alignment) && request.error == 0 {
            request.error = result < 0 ? NBD.Errno.wire(-result) : NBD.Errno.eio
            backend.onDiskError?("read", result < 0 ? -result : EIO)
        }
        guard request.edgeReadsPending == 0 else { return }
        guard request.error == 0, isOpen else {
            backend.finished(request)
            if !isOpen { release(request) } else { complete(request, error: request.error) }
            return
        }
        mergeEdges(request)
        if backend.sink != nil { handToSink(request) } else { submitData(request, write: true) }
    }

    /// Fills the parts of the aligned buffer the client did not send from the edge blocks.
    private func mergeEdges(_ request: NBDRequest) {
        let alignment = backend.volume.alignment
        let buffer = request.buffer!.pointer
        let edges = request.edges!.pointer
        if request.dataOffset != 0 {
            buffer.copyMemory(from: edges, byteCount: request.dataOffset)
        }
        let dataEnd = request.dataOffset + Int(request.header.length)
        if dataEnd != request.diskLength {
            let tailBlock = request.diskLength - alignment
            let singleBlock = tailBlock == 0 && request.dataOffset != 0
            let source = singleBlock ? edges : edges + alignment
            (buffer + dataEnd).copyMemory(from: source + (dataEnd - tailBlock), byteCount: request.diskLength - dataEnd)
        }
    }
}
