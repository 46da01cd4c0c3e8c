// SecondaryProbeEnd: why a secondary's probe of its peer ended, as a typed reason made where
// the probe's link is closed (or its dial fails), and what the secondary tells the operator
// about it (its `last_error`). Only an end that says something about the peer is reported:
// a probe the secondary itself called off (its primary connected, the resource stops)
// learnt nothing. Pure: no I/O.

public enum SecondaryProbeEnd: Equatable, Sendable {
    /// The primary connected to this node while the probe was under way.
    case primaryConnected
    /// The resource is stopping.
    case stopping
    /// The peer accepted the probe's secondary Hello and the probe closed the link.
    case handshakeCompleted
    /// The link ended for any other reason: the peer refused the Hello (a secondary says it
    /// is secondary too, a primary that it is primary), or TLS, the network or the liveness
    /// deadline ended it. `reason` is the link's own words.
    case linkClosed(reason: String)
    /// The probe could not be started: no TLS context, or the dial failed at once.
    case dialFailed(reason: String)

    /// The secondary's `last_error` for this end, nil when the probe learnt nothing.
    public var finding: String? {
        switch self {
        case .primaryConnected, .stopping:
            return nil
        case .handshakeCompleted:
            return "no connection from the primary; the peer answered a probe: probe done"
        case .linkClosed(let reason):
            return "no connection from the primary; the peer answered a probe: \(reason)"
        case .dialFailed(let reason):
            return "no connection from the primary; probing the peer failed: \(reason)"
        }
    }
}
