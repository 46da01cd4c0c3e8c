import TandemCore

// The primary driver's account of the writes its peer will not get, as the daemon's
// PrimaryReplicator+WithoutPeer keeps it (docs/replication.md, *Split brain and promotion
// numbers*): the first of them moves B (generationsWriteWithoutPeer: the generations and the
// parted set start), and their bytes are the `changed bytes` since parting that the Hello
// carries and `discard-zero-changes` / `discard-least-changes` weigh. Three sources, as there:
// - a mutation submitted while the link is not Connected counts at submission (and one a
//   primary without replication writes alone);
// - the loss of a Connected link leaves the peer without the lag (acknowledged writes it has
//   not confirmed) and without the writes not yet acknowledged (`PrimaryNode.unacknowledgedBytes`:
//   a local write still running, a sync write waiting for the peer, a request not yet
//   admitted). With a lag, B moves at the loss and both count; without, the writes count when
//   the first of them is acknowledged alone (`PrimaryNotice.acknowledgedWithoutPeer`);
// - B's move (0 → set), a promotion and the peer's catch-up start the count at 0.
// The node's notices are read after the event, as the daemon's driver reads them.
//
// Checked (checkChangedBytes, when a split brain's partition heals): the old primary's
// changed bytes are at least the bytes of the writes it acknowledged behind the partition
// that its peer never received — else `discard-zero-changes` could discard a side that
// acknowledged writes, saying it changed nothing. The seeded fault
// `changedBytesLeaveOutWritesInFlightAtTheCut` counts the loss's lag only (the daemon before
// it counted the unacknowledged writes).

extension Simulation {
    /// A mutation submitted while the link is not Connected (PrimaryReplicator.submit), or
    /// written by a primary without replication (Resource's onUnreplicatedMutation).
    func countWrittenWithoutPeer(_ node: SimNode, blocks: Range<Int>) {
        generationsWriteWithoutPeer(node)
        node.changedBytes += UInt64(blocks.count) * SimulationScenario.blockSizeBytes
    }

    /// The node's `.connectionState` notice (PrimaryReplicator.accountConnectionState).
    func accountConnectionState(_ node: SimNode, _ primary: PrimarySide, _ state: ConnectionState) {
        guard state != .connected else {
            primary.linkConnected = true
            primary.unacknowledgedAtLossBytes = 0
            return
        }
        guard primary.linkConnected else { return }
        primary.linkConnected = false
        let unacknowledged = scenario.testingFault == .changedBytesLeaveOutWritesInFlightAtTheCut
            ? 0 : primary.node.unacknowledgedBytes
        guard primary.node.lagBytes > 0 else {
            primary.unacknowledgedAtLossBytes = unacknowledged
            return
        }
        generationsWriteWithoutPeer(node)
        node.changedBytes += primary.node.lagBytes + unacknowledged
    }

    /// `PrimaryNotice.acknowledgedWithoutPeer`: B moves before the answer that follows, and
    /// the writes the loss left unacknowledged count from here.
    func acknowledgedWithoutPeer(_ node: SimNode, _ primary: PrimarySide) {
        generationsWriteWithoutPeer(node)
        node.changedBytes += primary.unacknowledgedAtLossBytes
        primary.unacknowledgedAtLossBytes = 0
    }

    /// The partition heals: what the old primary says it changed since parting covers every
    /// write it acknowledged behind the partition that the promoted node never received.
    func checkChangedBytes(_ run: SplitBrainRun, old: SimNode, saysChangedBytes: UInt64) -> String? {
        guard saysChangedBytes < run.farAckedUnreceivedBytes else { return nil }
        return "the old primary \(old.name) acknowledged \(run.farAckedUnreceivedBytes) bytes of writes behind the partition that its peer never received, but says it changed \(saysChangedBytes) bytes since parting"
    }
}
