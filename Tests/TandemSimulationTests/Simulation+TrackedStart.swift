// A primary killed right after a catch-up ended (issue 13 §4; docs/tracking.md, *Recovery*):
// the catch-up's end makes the activity log write a transaction with the bases the peer now
// holds and the session's active extents — none, when the application wrote nothing in the
// session — so the crash restart's tracked bitmap may set no bit. PrimaryStart then starts a
// catch-up of nothing from those bases (reason `crashRecoveryNothingDirty`), never a full copy.
// Armed here, the kill strikes within `delayMaxNs` of a catch-up's end (before or after that
// transaction is durable); the restart it causes must be a catch-up, and the checker holds
// every guarantee through it.
import TandemCore

/// A primary kill -9 armed for the end of catch-ups, with a stream of its own.
struct CatchUpEndCrash {
    var random: SimRandom
    var strikesLeft: Int
    var delayMaxNs: UInt64
    /// No strike after this (the pair then settles for the run's final checks).
    var untilNs: UInt64
    /// When the pending strike falls (a catch-up ended).
    var strikeAtNs: UInt64?
    /// The session killed: the next primary session's start is checked.
    var struckSession: UInt64?
    var struck = 0
    /// Restarts after a strike, each checked to be a catch-up.
    var restartsChecked = 0
}

extension Simulation {
    /// After every step while armed: checks the start of the session that follows a strike,
    /// and strikes once a catch-up ended and the drawn delay passed.
    func fireCatchUpEndCrash() {
        guard var armed = catchUpEndCrash else { return }
        defer { catchUpEndCrash = armed }
        if let struck = armed.struckSession {
            guard let node = livePrimary, let primary = node.primary, primary.session != struck else { return }
            armed.struckSession = nil
            guard primary.node.basis.isCatchUp else {
                return fail("\(node.name) restarted right after a catch-up ended with \(primary.node.basis), not a catch-up")
            }
            armed.restartsChecked += 1
        }
        guard armed.strikesLeft > 0, nowNs <= armed.untilNs, let node = livePrimary, let primary = node.primary,
            !primary.standalone
        else { return }
        guard let strikeAtNs = armed.strikeAtNs else {
            // A catch-up ended: its session's copy completed (`copyDone`).
            if primary.node.basis.isCatchUp, copiedSessions.contains(primary.session), armed.struckSession == nil {
                armed.strikeAtNs = nowNs + armed.random.below(armed.delayMaxNs + 1)
            }
            return
        }
        guard nowNs >= strikeAtNs else { return }
        armed.strikeAtNs = nil
        armed.strikesLeft -= 1
        armed.struck += 1
        armed.struckSession = primary.session
        trace("catch-up end crash: \(node.name) killed \((nowNs - strikeAtNs) / 1000)µs after its strike time")
        crash(node, powerLoss: false)
        events.schedule(.restart(node: node.index), atNs: nowNs + armed.random.between(100_000, 2_000_000))
    }
}
