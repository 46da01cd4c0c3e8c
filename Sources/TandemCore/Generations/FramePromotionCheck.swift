// FramePromotionCheck: what a node makes of the promotion number in a frame header (bytes
// 12-19, docs/protocol.md *Frame header*) once the link is established. The peer's Hello
// stated its number; every later frame carries the sender's number as persisted when it was
// sent. One above the Hello's means the peer was promoted while this link lived: a primary
// that sees it stops accepting writes (`demoted-by-promotion`, its data left as it is), any
// other node drops the link (the session's premise is gone). A lower number is no claim:
// builds before this one write 0 in every header. Pure: no I/O.

public enum FramePromotionVerdict: Equatable, Sendable {
    case accept
    /// This primary stops accepting writes and says why; the link is dropped.
    case demoteByPromotion(reason: String)
    /// The link is dropped with this reason.
    case closeLink(reason: String)
}

public enum FramePromotionCheck {
    /// - `framePromotion`: the header's number; `helloPromotion`: the peer's Hello's.
    /// - `ownRole`, `ownPromotion`: this node's role and promotion number now.
    public static func judge(framePromotion: UInt64, helloPromotion: UInt64, ownRole: ResourceRole,
                             ownPromotion: UInt64) -> FramePromotionVerdict {
        guard framePromotion > helloPromotion else { return .accept }
        let claim = "a frame from the peer carries promotion number \(framePromotion), above the \(helloPromotion) "
            + "of its Hello: the peer was promoted while this link was up"
        guard ownRole == .primary, framePromotion > ownPromotion else { return .closeLink(reason: claim) }
        return .demoteByPromotion(reason: claim + " (this node has \(ownPromotion)); this node stops accepting writes "
            + "(data left as it is)")
    }
}
