// PairState: the states a replicating pair can be in when a fault hits, and how a scenario
// gets a fresh pair into each one — every time waiting on what both nodes report, never on
// time alone. Shared by the kill, link and disk tables of the fault campaign.
import Foundation
import Testing

enum PairState: String, CaseIterable, Sendable {
    /// alpha enabled and dialling, the link cut: alpha `Connecting`, beta `WFConnection`.
    case connecting
    /// A full copy of 8 MiB of random data under way at 2 MiB/s: beta `Inconsistent`.
    case initialSync
    /// A sync pair with the writer running: every write acknowledged after beta applied it.
    case streamingSync
    /// An async pair with the writer running.
    case streamingAsync
    /// An async pair whose 4 MiB buffer overflowed on a link capped at 256 KiB/s: `Ahead`.
    case aheadAsyncOverflow
    /// A sync pair with `fencing: dont-care` whose link was cut under the writer: `Ahead`.
    case aheadSyncCut
    /// After 8 MiB written Ahead, the catch-up under way at 512 KiB/s: `SyncSource`, beta
    /// `Inconsistent`.
    case catchingUp
    /// A sync pair with `fencing: suspend-io` whose link was cut: a write held, not
    /// acknowledged.
    case suspended

    /// Blocks the writer writes in the states that run one.
    static let writerBlocks = 2048

    var setup: CampaignRun.Setup {
        var setup = CampaignRun.Setup()
        switch self {
        case .connecting:
            setup.sizeBytes = 8 << 20
            setup.initialSync = "full"
            setup.randomMiB = 8
        case .initialSync:
            setup.sizeBytes = 8 << 20
            setup.initialSync = "full"
            setup.randomMiB = 8
            setup.settings["resync_rate"] = 2 << 20
        case .streamingSync, .aheadSyncCut:
            break
        case .streamingAsync:
            setup.mode = "async"
        case .aheadAsyncOverflow, .catchingUp:
            setup.mode = "async"
            setup.primaryBufferBytes = 4 << 20
            setup.alphaArguments = ["--max-request-bytes", "1MiB"]
        case .suspended:
            setup.fencing = "suspend-io"
        }
        return setup
    }

    /// Whether the nodes still exchange writes in this state (a kill of either is then a
    /// loss of a live link, not of one already gone).
    var linkIsUp: Bool { ![.connecting, .aheadSyncCut, .suspended].contains(self) }

    /// Daemon flags for the link-fault scenarios: a silent link is given up after 2 s.
    static let quickLivenessArguments = ["--ping-interval-ms", "1000", "--ping-timeout-ms", "2000"]

    /// A fresh pair brought into this state; `adjust` changes the setup first.
    func reach(_ adjust: (inout CampaignRun.Setup) -> Void = { _ in }) throws -> CampaignRun {
        var setup = setup
        adjust(&setup)
        let run = try CampaignRun(setup)
        switch self {
        case .connecting:
            run.proxy.cut()
            try run.enable(run.pair.beta)
            try run.enable(run.pair.alpha)
            try run.waitFor(run.pair.alpha, "alpha dialling") { $0["connection_state"] as? String == "Connecting" }
            try run.waitFor(run.pair.beta, "beta waiting") { $0["connection_state"] as? String == "WFConnection" }
        case .initialSync:
            try run.enable(run.pair.beta)
            try run.enable(run.pair.alpha)
            try run.waitFor(run.pair.alpha, "alpha copying") {
                $0["replication_state"] as? String == "SyncSource" && ($0["resync_progress"] as? Double ?? 0) > 0
            }
            try run.waitFor(run.pair.beta, "beta a copy target") { $0["disk_state"] as? String == "Inconsistent" }
        case .streamingSync, .streamingAsync:
            try run.enableBothInSync()
            run.startWriter(blocks: Self.writerBlocks)
            try run.waitForAcknowledged(300)
            run.observe("writer running")
        default:
            try reachWithoutThePeer(run)
        }
        return run
    }

    /// The states in which alpha works without its peer: Ahead, catching up, suspended.
    private func reachWithoutThePeer(_ run: CampaignRun) throws {
        try run.enableBothInSync()
        switch self {
        case .aheadAsyncOverflow:
            run.proxy.capBytesPerSecond(256 << 10, [.toTarget])
            run.startWriter(blocks: Self.writerBlocks)
            try Self.waitAhead(run)
        case .aheadSyncCut:
            run.startWriter(blocks: Self.writerBlocks)
            try run.waitForAcknowledged(300)
            run.proxy.cut()
            try Self.waitAhead(run)
        case .catchingUp:
            run.startWriter(blocks: 2048)
            try run.waitForAcknowledged(100)
            run.proxy.cut()
            try Self.waitAhead(run)
            #expect(run.joinWriter().count == 2048, "an async primary alone acknowledges every write")
            try run.set(run.pair.alpha, ["resync_rate": 512 << 10])
            run.proxy.heal()
            try run.waitFor(run.pair.alpha, "alpha catching up") {
                $0["replication_state"] as? String == "SyncSource" && ($0["resync_progress"] as? Double ?? 0) > 0
            }
            // A staged catch-up keeps beta's image (Consistent, or Outdated once it knows it
            // lacks writes); one too large for its journal is Inconsistent (the DRBD way).
            try run.waitFor(run.pair.beta, "beta a catch-up target") { $0["replication_state"] as? String == "SyncTarget" }
        case .suspended:
            run.startWriter(blocks: Self.writerBlocks)
            try run.waitForAcknowledged(100)
            run.proxy.cut()
            try run.waitFor(run.pair.alpha, "alpha holding a write for its gone peer") {
                $0["connection_state"] as? String != "Connected" && ($0["unconfirmed_bytes"] as? Int ?? 0) > 0
            }
            #expect(run.observe("suspended").alpha?["replication_state"] as? String != "Ahead")
        default:
            preconditionFailure("\(self) is reached in reach()")
        }
    }

    static func waitAhead(_ run: CampaignRun) throws {
        let ahead = try run.waitFor(run.pair.alpha, "alpha Ahead, tracking in its bitmap") {
            $0["replication_state"] as? String == "Ahead" && ($0["out_of_sync_bytes"] as? Int ?? 0) > 0
        }
        #expect(ahead["redundant"] as? Bool == false, "a primary Ahead says redundant: \(ahead)")
    }
}
