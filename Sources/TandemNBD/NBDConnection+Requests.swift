// NBDConnection+Requests: request decoding and validation in transmission. Parses headers off
// the staging buffer, answers what will not run (the payload of a refused write is read and
// dropped), takes a slot and its buffers all or nothing, and routes a write payload into the
// request's buffer before the backend admits the request. Loop thread only.
import Glibc
import TandemCore
import TandemIO

extension NBDConnection {
    func processRequests() {
        // While a payload streams into its request buffer the staging buffer holds nothing.
        while state == .transmission && payloadRequest == nil && !isStalled {
            if discardBytes > 0 {
                let take = min(discardBytes, stagingEnd - stagingStart)
                stagingStart += take
                discardBytes -= take
                if discardBytes > 0 { return }
            }
            guard stagingEnd - stagingStart >= NBD.requestHeaderBytes else { return }
            let bytes = UnsafeRawBufferPointer(rebasing: staging[stagingStart..<(stagingStart + NBD.requestHeaderBytes)])
            guard let header = NBDRequestHeader.parse(bytes) else {
                close("request with bad magic")
                return
            }
            guard begin(header) else { return }
        }
    }

    /// Takes one request off the staging buffer; false when it must wait for buffers.
    private func begin(_ header: NBDRequestHeader) -> Bool {
        guard let command = NBD.Command(rawValue: header.type) else {
            return reject(header, NBD.Errno.einval, payload: false)
        }
        let hasPayload = command == .write
        if let error = validate(header, command) {
            return reject(header, error, payload: hasPayload)
        }
        if command == .disconnect {
            stagingStart += NBD.requestHeaderBytes
            disconnectRequested = true
            closeWhenDrained()
            return true
        }
        let request = requests[Int(freeSlots.last!)]
        request.header = header
        request.command = command
        request.traceStart = receiveStamp
        if !prepareBuffers(request) { return false }
        freeSlots.removeLast()
        stagingStart += NBD.requestHeaderBytes
        if hasPayload {
            takePayload(request)
        } else if header.length == 0 && command != .flush {
            complete(request, error: 0)  // nothing to read, trim, zero or cache
        } else {
            backend.admit(request)
        }
        return true
    }

    private func validate(_ header: NBDRequestHeader, _ command: NBD.Command) -> UInt32? {
        let known = NBD.CommandFlag.fua | NBD.CommandFlag.noHole
        if header.flags & ~known != 0 { return NBD.Errno.einval }
        switch command {
        case .read, .write, .trim, .writeZeroes, .cache:
            if header.length > backend.maxRequestBytes && (command == .read || command == .write) {
                return command == .write ? NBD.Errno.eoverflow : NBD.Errno.einval
            }
            let (end, overflow) = header.offset.addingReportingOverflow(UInt64(header.length))
            if overflow || end > backend.volume.sizeBytes {
                return command == .read || command == .cache ? NBD.Errno.einval : NBD.Errno.enospc
            }
            if backend.readOnly && command != .read && command != .cache { return NBD.Errno.eperm }
            return nil
        case .flush, .disconnect:
            return nil
        case .blockStatus, .resize:
            return NBD.Errno.einval
        }
    }

    /// Answers a request that will not run; a write's payload is read and dropped.
    private func reject(_ header: NBDRequestHeader, _ error: UInt32, payload: Bool) -> Bool {
        guard let slot = freeSlots.popLast() else { return false }
        stagingStart += NBD.requestHeaderBytes
        if payload { discardBytes = Int(header.length) }
        let request = requests[Int(slot)]
        request.header = header
        request.command = NBD.Command(rawValue: header.type) ?? .flush
        complete(request, error: error)
        return true
    }

    /// Chooses the aligned disk range and takes the buffers it needs, all or nothing.
    private func prepareBuffers(_ request: NBDRequest) -> Bool {
        let command = request.command
        guard command == .read || command == .write else { return true }
        let alignment = UInt64(backend.volume.alignment)
        let start = request.header.offset / alignment * alignment
        let end = (request.endOffset + alignment - 1) / alignment * alignment
        request.diskOffset = start
        request.diskLength = Int(end - start)
        request.dataOffset = Int(request.header.offset - start)
        request.isReadModifyWrite = command == .write && (start != request.header.offset || end != request.endOffset)
        guard request.diskLength > 0 else { return true }
        guard let buffer = backend.buffers.allocate(bytes: request.diskLength, for: self) else {
            waitingForBuffers = true
            return false
        }
        if request.isReadModifyWrite {
            guard let edges = backend.buffers.allocate(bytes: 2 * Int(alignment), for: self) else {
                backend.buffers.release(buffer)
                waitingForBuffers = true
                return false
            }
            request.edges = edges
        }
        request.buffer = buffer
        waitingForBuffers = false
        return true
    }

    public func buffersAvailable() {
        guard waitingForBuffers, state == .transmission else { return }
        waitingForBuffers = false
        process()
    }

    private func takePayload(_ request: NBDRequest) {
        let length = Int(request.header.length)
        let available = min(length, stagingEnd - stagingStart)
        if available > 0 {
            (request.buffer!.pointer + request.dataOffset).copyMemory(
                from: staging.baseAddress! + stagingStart, byteCount: available)
            stagingStart += available
        }
        request.payloadReceived = available
        if available == length {
            if length == 0 { complete(request, error: 0) } else { backend.admit(request) }
        } else {
            request.phase = .receiving
            payloadRequest = request
        }
    }
}
