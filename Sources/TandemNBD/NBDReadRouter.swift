// NBDReadRouter: where an export's reads go when something other than the local volume may
// serve them — the replication driver of a primary, which asks PrimaryNode (read balancing,
// and the reads of a failed disk). A read the router does not take is read from the volume
// here, and the router is told when it ends (it counts reads in flight on each side). Loop
// thread only.
import TandemIO

/// A read handed to the router: the aligned disk range and the buffer for exactly that range.
/// A value over the request slot: handing it out allocates nothing.
public struct NBDPendingRead {
    let request: NBDRequest
    public let diskOffset: UInt64
    public let diskLength: Int
    public let buffer: UnsafeMutableRawPointer

    /// The buffer holds the range: answer the client. Call exactly one of the three once.
    public func finish() {
        request.connection.routedReadEnded(request, outcome: .served)
    }

    /// The router could not serve it after all (the peer refused, the link went down): read it
    /// from the local volume (the router counts it as a local read from now on).
    public func readLocally() {
        request.connection.routedReadEnded(request, outcome: .readLocally)
    }

    /// Fail the read with this Linux errno.
    public func fail(errno: Int32) {
        request.connection.routedReadEnded(request, outcome: .failed(errno))
    }
}

public protocol NBDReadRouter: AnyObject {
    /// true: the router took the read and answers it through `read`; false: it is read from
    /// the local volume, and `localReadEnded` follows when it ends.
    func route(_ read: NBDPendingRead) -> Bool
    /// A read the router left (or gave back) to the local volume ended.
    func localReadEnded()
}

enum NBDRoutedReadOutcome {
    case served
    case readLocally
    case failed(Int32)
}
