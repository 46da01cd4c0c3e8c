// FramePromotionCheck: the promotion number in a frame header, judged against the peer's
// Hello once the link is up.
import TandemCore
import Testing

@Suite struct FramePromotionCheckTests {
    /// Equal to the Hello's (this build) or lower (0 from builds that wrote nothing there):
    /// no claim, the frame is delivered.
    @Test func aFrameAtOrBelowTheHellosPromotionIsNoClaim() {
        for frame: UInt64 in [0, 2, 3] {
            #expect(FramePromotionCheck.judge(framePromotion: frame, helloPromotion: 3, ownRole: .primary, ownPromotion: 3)
                == .accept)
        }
    }

    /// Above the Hello's, and above this primary's own: the peer was promoted after it, so
    /// it stops accepting writes and says so; a secondary just drops the link.
    @Test func aPrimaryThatSeesAHigherPromotionInAFrameIsDemotedAndSaysWhy() {
        guard case .demoteByPromotion(let reason) = FramePromotionCheck.judge(
            framePromotion: 5, helloPromotion: 2, ownRole: .primary, ownPromotion: 2)
        else { Issue.record("a higher promotion number was not acted on"); return }
        #expect(reason.contains("promotion number 5, above the 2 of its Hello") && reason.contains("stops accepting writes"))
        guard case .closeLink(let why) = FramePromotionCheck.judge(
            framePromotion: 5, helloPromotion: 2, ownRole: .secondary, ownPromotion: 2)
        else { Issue.record("a secondary kept the link"); return }
        #expect(why.contains("promoted while this link was up"))
        // A primary already promoted past the claim keeps its writes; the link still goes.
        guard case .closeLink = FramePromotionCheck.judge(framePromotion: 5, helloPromotion: 2, ownRole: .primary,
                                                          ownPromotion: 7)
        else { Issue.record("a primary with a higher number was demoted"); return }
    }
}
