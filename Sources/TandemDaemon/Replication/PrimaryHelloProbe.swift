// PrimaryHelloProbe: the link on which a primary answered a peer primary's Hello with its own,
// so that the dialler compares generations too (split brain, docs/replication.md); and
// TurnEndAction, which runs a verdict reached inside a link's callback at the end of the
// loop turn. Loop thread only.
import TandemCore
import TandemIO

/// Holds a link on which this primary answered a peer primary's Hello with its own: the
/// peer compares generations and refuses (split brain); nothing else is expected on it.
final class PrimaryHelloProbe: PeerLinkDelegate {
    let link: PeerLink
    private let onClosed: () -> Void

    init(link: PeerLink, onClosed: @escaping () -> Void) {
        self.link = link
        self.onClosed = onClosed
    }

    func peerLink(_ link: PeerLink, validate hello: WireHello) -> PeerLinkVerdict { .refuse(.other, "unexpected second Hello") }
    func peerLinkEstablished(_ link: PeerLink) { link.close("two primaries: nothing to replicate") }
    func peerLink(_ link: PeerLink, received message: WireMessage) {}
    func peerLinkClosed(_ link: PeerLink, reason: String) { onClosed() }
}

/// Runs a closure at the end of the loop turn: a verdict reached while a link is judging a
/// Hello stops replicators only after that link's callback returned.
final class TurnEndAction: TurnEndHandler {
    private let action: () -> Void
    init(_ action: @escaping () -> Void) { self.action = action }
    func turnEnded() { action() }
}
