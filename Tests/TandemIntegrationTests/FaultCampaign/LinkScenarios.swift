// The fault campaign, link faults: the LinkProxy between alpha and beta cuts the link,
// stalls one direction, caps its bandwidth or delays it, in each state the pair can be in;
// both nodes' states are read at every step (the trail), what the application saw is
// checked (sync writes wait or the primary goes Ahead; async writes do not wait), and once
// the link is whole again the pair ends in sync, byte-identical, nothing acknowledged lost.
// Both daemons give a silent link up after 2 s (ping_timeout_ms), so a stall is noticed.
import Foundation
import Testing

extension Integration.FaultCampaign {
@Suite struct LinkScenarios {
    enum Fault: String, Sendable {
        case cut
        case stallToSecondary = "stall alpha→beta"
        case stallToPrimary = "stall beta→alpha"
        case stallBoth = "stall both ways"
        case cap = "cap the bandwidth"
        case delay
    }

    struct Row: Sendable, CustomTestStringConvertible {
        let state: PairState
        let fault: Fault
        var testDescription: String { "\(fault.rawValue) while \(state.rawValue)" }
    }

    static let rows: [Row] = [
        Row(state: .streamingSync, fault: .cut), Row(state: .streamingSync, fault: .stallToSecondary),
        Row(state: .streamingSync, fault: .stallToPrimary), Row(state: .streamingSync, fault: .cap),
        Row(state: .streamingSync, fault: .delay),
        Row(state: .streamingAsync, fault: .cut), Row(state: .streamingAsync, fault: .stallToSecondary),
        Row(state: .streamingAsync, fault: .stallBoth),
        Row(state: .streamingAsync, fault: .cap), Row(state: .streamingAsync, fault: .delay),
        Row(state: .initialSync, fault: .cut), Row(state: .initialSync, fault: .stallToSecondary),
        Row(state: .initialSync, fault: .cap), Row(state: .initialSync, fault: .delay),
        Row(state: .catchingUp, fault: .cut), Row(state: .catchingUp, fault: .stallToPrimary),
        Row(state: .suspended, fault: .stallToSecondary),
        Row(state: .connecting, fault: .delay),
    ]

    /// How long a stalled link may stay Connected: ping_timeout_ms (2 s), the 1 s check, and
    /// room for a loaded machine.
    static let stallNoticedSeconds: Double = 10
    static let delayMs = 100
    static let capBytesPerSecond = 512 << 10
    static let copyCapBytesPerSecond = 256 << 10

    @Test(arguments: CampaignRun.selected(rows)) func linkFaultThenHealEndsIdenticalWithEveryAcknowledgedWrite(_ row: Row) throws {
        // `suspended` here is where the fault leads: a sync pair with suspend-io, streaming.
        let start = row.state == .suspended ? PairState.streamingSync : row.state
        let run = try start.reach { setup in
            setup.alphaArguments += PairState.quickLivenessArguments
            setup.betaArguments += PairState.quickLivenessArguments
            if row.state == .suspended { setup.fencing = "suspend-io" }
            if row.fault == .cap && row.state == .streamingAsync {
                setup.primaryBufferBytes = 4 << 20  // the least with 1 MiB requests
                setup.alphaArguments += ["--max-request-bytes", "1MiB"]
            }
        }
        switch row.fault {
        case .cut: try cut(run, row.state)
        case .stallToSecondary: try stall(run, row.state, [.toTarget])
        case .stallToPrimary: try stall(run, row.state, [.fromTarget])
        case .stallBoth: try stall(run, row.state, [.toTarget, .fromTarget])
        case .cap: try cap(run, row.state)
        case .delay: try delay(run, row.state)
        }
        try run.converge()
        try run.expectIdenticalWithEveryAcknowledgedWrite(row.testDescription)
    }

    /// A full copy cut while chunks of it are unconfirmed (the acks held back first, so that
    /// some are): the peer is mid-copy, its content in no order, and says so itself; the
    /// primary must call it Inconsistent too, never Outdated (a consistent, older copy).
    @Test func aCopyCutWithChunksInFlightLeavesThePeerInconsistentOnBothNodes() throws {
        let run = try PairState.initialSync.reach()
        run.proxy.stall([.fromTarget])
        try run.waitFor(run.pair.alpha, "copy chunks unconfirmed") { $0["unconfirmed_bytes"] as? Int ?? 0 > 0 }
        run.proxy.cut()
        run.proxy.resume()
        let alpha = try run.waitFor(run.pair.alpha, "alpha sees the cut") { $0["connection_state"] as? String == "Connecting" }
        let beta = try run.waitFor(run.pair.beta, "beta sees the cut") { $0["connection_state"] as? String == "WFConnection" }
        #expect(beta["disk_state"] as? String == "Inconsistent", "\(beta)")
        // The unconfirmed chunks send alpha Ahead; Ahead mid-copy, the peer is Inconsistent.
        #expect(alpha["peer_disk_state"] as? String == "Inconsistent", "\(alpha)\n\(run.trailText)")
        try run.converge()
        try run.expectIdenticalWithEveryAcknowledgedWrite("cut with copy chunks in flight")
    }

    /// Cut: both sides see the link gone at once; alpha writes on (Ahead) or holds; beta keeps
    /// its copy's word (Consistent; Inconsistent mid initial copy; its old image mid staged
    /// catch-up).
    private func cut(_ run: CampaignRun, _ state: PairState) throws {
        run.proxy.cut()
        let alpha = try run.waitFor(run.pair.alpha, "alpha sees the cut") { $0["connection_state"] as? String == "Connecting" }
        let beta = try run.waitFor(run.pair.beta, "beta sees the cut") { $0["connection_state"] as? String == "WFConnection" }
        run.expectAlone(alpha, "alpha")
        run.expectAlone(beta, "beta")
        switch state {
        case .initialSync:
            #expect(beta["disk_state"] as? String == "Inconsistent", "\(beta)\n\(run.trailText)")
        case .catchingUp:
            // A staged catch-up keeps the image it held before (Outdated: it knows it lacks writes).
            #expect(["Consistent", "Outdated"].contains(beta["disk_state"] as? String ?? "-"), "\(beta)\n\(run.trailText)")
        default:
            #expect(beta["disk_state"] as? String == "Consistent", "\(beta)\n\(run.trailText)")
        }
        try expectWritesGoOn(run, state)
    }

    /// A stall: no byte moves one way, no connection closes. Within ping_timeout_ms a side
    /// that hears nothing closes the link, and alpha then works as after a cut.
    private func stall(_ run: CampaignRun, _ state: PairState, _ directions: Set<LinkProxy.Direction>) throws {
        run.proxy.stall(directions)
        let alpha = try run.waitFor(run.pair.alpha, "alpha gives the stalled link up",
                                    timeoutSeconds: Self.stallNoticedSeconds) {
            $0["connection_state"] as? String != "Connected"
        }
        run.expectAlone(alpha, "alpha")
        try expectWritesGoOn(run, state)
        run.proxy.resume(directions)
    }

    /// What the application sees while the peer is away: dont-care and async write on
    /// (Ahead once a write is tracked); suspend-io holds.
    private func expectWritesGoOn(_ run: CampaignRun, _ state: PairState) throws {
        guard let writer = run.writer else { return }
        let before = writer.acknowledged.count
        switch state {
        case .suspended:
            #expect(before < PairState.writerBlocks)
            let held = run.observe("held").alpha ?? [:]
            #expect(held["unconfirmed_bytes"] as? Int ?? 0 > 0 && held["replication_state"] as? String != "Ahead",
                    "suspend-io holds the write: \(held)")
            #expect(writer.acknowledged.count == before, "suspend-io acknowledged a write alone")
        case .streamingSync:
            // dont-care: acknowledged alone and tracked in the bitmap.
            try run.waitForAcknowledged(min(before + 200, PairState.writerBlocks))
            try PairState.waitAhead(run)
        case .streamingAsync:
            // The writes wait in the 256 MiB async buffer for the next link, not Ahead yet.
            try run.waitForAcknowledged(min(before + 200, PairState.writerBlocks))
            let alpha = run.observe("async writes buffered").alpha ?? [:]
            #expect(alpha["unconfirmed_bytes"] as? Int ?? 0 > 0, "\(alpha)")
        default:
            break
        }
    }

    /// A capped link: the pair stays connected on the one connection (a slow link is not a
    /// dead one); sync writes run at the link's pace, async ones overflow their buffer and
    /// go Ahead; a copy is `capACopy`.
    private func cap(_ run: CampaignRun, _ state: PairState) throws {
        run.proxy.resetCounters()
        let start = Date()
        run.proxy.capBytesPerSecond(Self.capBytesPerSecond, [.toTarget])
        switch state {
        case .streamingSync:
            let before = run.writer!.acknowledged.count
            try run.waitForAcknowledged(before + 256)  // 1 MiB: ≥ 2 s at the cap, less the burst
            let seconds = Date().timeIntervalSince(start)
            #expect(seconds >= 1.5, "256 sync writes through a 512 KiB/s link in \(seconds) s")
            let alpha = run.observe("capped").alpha ?? [:]
            #expect(alpha["connection_state"] as? String == "Connected" && run.proxy.connectionsAccepted == 0,
                    "a slow link was dropped: \(alpha)\n\(run.trailText)")
        case .streamingAsync:
            try run.writeUntilAhead()
        case .initialSync:
            try capACopy(run)
        default:
            preconditionFailure("no cap row for \(state)")
        }
    }

    /// The copy's own cap off and the link capped at 256 KiB/s: a 1 MiB chunk then takes 4 s
    /// to cross, so the secondary, which answers a chunk only once it has all of it, says
    /// nothing for 4 s while it receives all the time (so it sends no Ping either), and the
    /// primary's Ping waits behind megabytes of queued copy. A slow link is not a dead one:
    /// the pair must stay on its connection (a bounded look of 8 s: an absence has no event).
    /// The secondary, which only receives meanwhile, pings on its free direction (LinkLiveness),
    /// so the primary keeps hearing it; once the cap is gone the copy completes.
    private func capACopy(_ run: CampaignRun) throws {
        try run.set(run.pair.alpha, ["resync_rate": 0])
        run.proxy.resetCounters()
        run.proxy.capBytesPerSecond(Self.copyCapBytesPerSecond, [.toTarget])
        let redialled = run.proxy.waitForConnections(1, timeoutSeconds: 8)
        let alpha = run.observe("a copy on a slow link").alpha ?? [:]
        #expect(!redialled, "the slow link was dropped: \(alpha)\n\(run.trailText)\n\(run.pair.alpha.logTail())")
    }

    /// A longer wire: sync writes wait for it, async ones do not; a copy and a handshake
    /// cross it.
    private func delay(_ run: CampaignRun, _ state: PairState) throws {
        run.proxy.delay(milliseconds: Self.delayMs)
        let writes = 20
        let start = Date()
        switch state {
        case .streamingSync:
            try run.waitForAcknowledged(run.writer!.acknowledged.count + writes)
            let seconds = Date().timeIntervalSince(start)
            #expect(seconds >= Double(writes * Self.delayMs) / 1000 * 0.9,
                    "\(writes) sync writes over a \(Self.delayMs) ms link in \(seconds) s")
        case .streamingAsync:
            try run.waitForAcknowledged(min(run.writer!.acknowledged.count + writes * 10, PairState.writerBlocks))
            let seconds = Date().timeIntervalSince(start)
            #expect(seconds < Double(writes * 10 * Self.delayMs) / 1000 / 4,
                    "\(writes * 10) async writes waited for a \(Self.delayMs) ms link: \(seconds) s")
        case .initialSync:
            try run.set(run.pair.alpha, ["resync_rate": 0])
        case .connecting:
            run.proxy.heal()
            try run.waitFor(run.pair.alpha, "alpha connected over the slow link") {
                $0["connection_state"] as? String == "Connected"
            }
        default:
            preconditionFailure("no delay row for \(state)")
        }
        #expect(run.proxy.connectionsOpen == 1, "the delayed link stays up\n\(run.trailText)")
    }
}
}
