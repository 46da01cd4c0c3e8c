// PrimaryReplicator's diskless half (PrimaryNode+Diskless decides): the record that says this
// disk lacks writes (through the resource: the metadata file's flag, refused for internal
// metadata, which lives on the failed disk), and the pulls of the resync from the peer — a
// ReadRequest per region, through the `bandwidth` cap, whose ReadReply is written to this
// volume through the ring. Before the flag is cleared the volume is flushed. Loop thread only.
import Glibc
import TandemControl
import TandemCore
import TandemIO

/// The pulls in flight, by slot: the region and the ReadRequest's tag (0 once the reply came
/// and the local write runs).
struct PullSlots {
    var regions: [PulledRegion?] = Array(repeating: nil, count: LocalDiskResync.pullsInFlightMax)
    var tags: [UInt64] = Array(repeating: 0, count: LocalDiskResync.pullsInFlightMax)
    var generation: UInt64 = 0
}

extension PrimaryReplicator {
    /// A pull's ReadRequest tag has this bit (an application read's never does: RemoteReads'
    /// generation stays far below it).
    static let pullTagBit: UInt64 = 1 << 63
    /// A pull's local write: this base | its slot.
    static let pullWriteTagBase: UInt32 = 0xFFFC_0000
    /// The volume flush before the record says this disk lacks nothing.
    static let pullFlushTag: UInt32 = 0xFFFF_0005

    /// The node's diskless settings: whether the record keeps the regions written through the
    /// peer (Resource+DisklessRegions), and how long a stop waits for the peer's drain
    /// (`ping_timeout_ms`: a peer that does not answer within it is gone; PrimaryNode+PeerDrain).
    static func applyDiskless(to config: inout PrimaryNodeConfig, keepsLackingRegions: Bool, context: ReplicationContext) {
        config.keepsLackingRegions = keepsLackingRegions
        config.peerDrainTimeoutNs = context.liveness.timeoutNs
    }

    /// `.recordLocalLacksWrites(set)`: the record's flag; before clearing it, flush the volume.
    func recordLocalLacksWrites(_ set: Bool) {
        guard !set else { return answerLocalLacksRecord(set: true) }
        context.loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.pullFlushTag)
    }

    func pullFlushCompleted(result: Int32) {
        if result == -EINTR || result == -EAGAIN {
            return context.loop.prepareFlush(volume: volume, handler: handlerID, tag: Self.pullFlushTag)
        }
        guard result >= 0 else {
            health.record("flush", errno: -result)
            return feed(.localLacksWritesRecorded(set: false, errno: -result, reason: "flush"))
        }
        answerLocalLacksRecord(set: false)
    }

    private func answerLocalLacksRecord(set: Bool) {
        let refusal = onRecordLocalLacks?(set)
        if let refusal {
            setLastError("diskless: \(refusal)")
            return feed(.localLacksWritesRecorded(set: set, errno: EIO, reason: refusal))
        }
        feed(.localLacksWritesRecorded(set: set, errno: 0, reason: nil))
    }

    /// `.persistLackingRegions`: the resource writes the record's pages, durable on return.
    func persistLackingRegions(ticket: UInt64, runs: [BlockRun], blockBytes: UInt64, fresh: Bool) {
        let refusal: String? = onPersistLackingRegions.map { $0(runs, blockBytes, fresh) } ?? "the driver keeps no regions"
        if let refusal, !fresh { setLastError("diskless: \(refusal)") }
        feed(.lackingRegionsPersisted(ticket: ticket, errno: refusal == nil ? 0 : EIO, reason: refusal))
    }

    /// `.pullRegion`: ask the peer for the region (through the cap); its reply is written here.
    func pullRegion(offset: UInt64, length: UInt32) {
        guard let slot = pulls.regions.firstIndex(where: { $0 == nil }) else { preconditionFailure("more pulls than slots") }
        pulls.generation += 1
        let tag = Self.pullTagBit | pulls.generation << 8 | UInt64(slot)
        pulls.regions[slot] = PulledRegion(offsetBytes: offset, lengthBytes: length)
        pulls.tags[slot] = tag
        guard let link, link.isEstablished else { return pullFailed(slot: slot, errno: ENOTCONN, local: false) }
        transmit(.control(.readRequest(WireReadRequest(tag: tag, offsetBytes: offset, lengthBytes: length))))
    }

    /// The peer's ReadReply for a pull: written to the volume, or the region is pulled later.
    func pullReplied(_ reply: WireReadReply, link: PeerLink) {
        let slot = Int(reply.tag & 0xFF)
        guard slot < pulls.tags.count, pulls.tags[slot] == reply.tag, let region = pulls.regions[slot] else {
            return link.closeForViolation("protocol violation: a ReadReply for tag \(reply.tag), which no pull is waiting for")
        }
        pulls.tags[slot] = 0
        guard reply.errno == 0, reply.payload.count == Int(region.lengthBytes) else {
            return pullFailed(slot: slot, errno: reply.errno == 0 ? EIO : reply.errno, local: false)
        }
        let (_, pointer) = pullBuffers.reserve(offset: region.offsetBytes)
        reply.payload.withUnsafeBytes { pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        context.loop.prepareVolumeIO(write: true, volume: volume, buffer: pointer, length: Int(region.lengthBytes),
                                     offset: region.offsetBytes, dsync: false, handler: handlerID,
                                     tag: Self.pullWriteTagBase | UInt32(slot))
    }

    /// A pull's local write completed.
    func pullWritten(slot: Int, result: Int32) {
        guard let region = pulls.regions[slot] else { preconditionFailure("a pull write nobody asked for") }
        let (_, pointer) = pullBuffers.buffer(offset: region.offsetBytes)
        if result == -EINTR || result == -EAGAIN {
            return context.loop.prepareVolumeIO(write: true, volume: volume, buffer: pointer, length: Int(region.lengthBytes),
                                                offset: region.offsetBytes, dsync: false, handler: handlerID,
                                                tag: Self.pullWriteTagBase | UInt32(slot))
        }
        pullBuffers.release(offset: region.offsetBytes)
        guard result == Int32(region.lengthBytes) else {
            let code = result < 0 ? -result : EIO
            health.record("write", errno: code)
            return pullFailed(slot: slot, errno: code, local: true)
        }
        pulls.regions[slot] = nil
        feed(.regionPulled(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes, errno: 0, local: false))
    }

    private func pullFailed(slot: Int, errno: Int32, local: Bool) {
        guard let region = pulls.regions[slot] else { return }
        pulls.regions[slot] = nil
        pulls.tags[slot] = 0
        feed(.regionPulled(offsetBytes: region.offsetBytes, lengthBytes: region.lengthBytes, errno: errno, local: local))
    }

    /// The link is gone: every pull still waiting for its reply is pulled again later.
    func failPullsAwaitingPeer() {
        for slot in pulls.tags.indices where pulls.tags[slot] != 0 { pullFailed(slot: slot, errno: ECONNRESET, local: false) }
    }

    func noticedLocalDisk(_ notice: LocalDiskNotice) {
        switch notice {
        case let .writesThroughPeer(lacking):
            logger.warning("diskless: this node's disk failed; writes go to the peer only, and the record says this disk lacks them")
            context.events.publish(resource: resource, "diskless", [
                "serving_from": .string("peer"), "local_lacking_bytes": .int(Int64(clamping: lacking)),
            ])
        case let .resyncStarted(bytes, wholeVolume):
            logger.notice("diskless: this disk is resynced from the peer", metadata: ["bytes": "\(bytes)", "whole_volume": "\(wholeVolume)"])
            var fields: [String: JSONValue] = ["bytes": .int(Int64(clamping: bytes)), "whole_volume": .bool(wholeVolume)]
            // Diskless regions: why the record could not say which regions (issue 13 §4).
            if wholeVolume, let because = node.localDisk.wholeVolumeBecause {
                fields["whole_volume_because"] = .string(because)
                logger.warning("diskless: the whole volume is pulled", metadata: ["because": "\(because)"])
            }
            context.events.publish(resource: resource, "local-resync-started", fields)
        case let .resynced(pulled):
            logger.notice("diskless: this disk holds every write again; it serves locally", metadata: ["pulled_bytes": "\(pulled)"])
            setLastError(nil)
            context.events.publish(resource: resource, "local-resync-done", ["pulled_bytes": .int(Int64(clamping: pulled))])
        case .peerDrainStarted, .peerDrained, .peerDrainFailed:
            noticedPeerDrain(notice)
        }
    }

    /// PrimaryNode+PeerDrain: the peer's drain before a stop, and what a stop that could not
    /// drain drops (an error: those acknowledged writes are then in the peer's cache only).
    private func noticedPeerDrain(_ notice: LocalDiskNotice) {
        switch notice {
        case let .peerDrainStarted(bytes, inFlight):
            logger.notice("diskless: before stopping, the peer is asked to make the writes acknowledged through it durable",
                          metadata: ["bytes": "\(bytes)", "in_flight_bytes": "\(inFlight)"])
            context.events.publish(resource: resource, "peer-drain-started",
                                   ["bytes": .int(Int64(clamping: bytes)), "in_flight_bytes": .int(Int64(clamping: inFlight))])
        case let .peerDrained(bytes):
            logger.notice("diskless: the peer holds every write acknowledged through it durably", metadata: ["bytes": "\(bytes)"])
            context.events.publish(resource: resource, "peer-drained", ["bytes": .int(Int64(clamping: bytes))])
        case let .peerDrainFailed(bytes, reason, stopping):
            let fields: [String: JSONValue] = [
                "bytes": .int(Int64(clamping: bytes)), "reason": .string(reason), "stopping": .bool(stopping),
            ]
            if stopping {
                logger.error("diskless: stopping with acknowledged writes durable nowhere: only in the peer's cache, lost if it loses power before its next flush",
                             metadata: ["bytes_only_in_memory": "\(bytes)", "reason": "\(reason)"])
                setLastError("diskless: stopped with \(bytes) bytes of acknowledged writes not durable on the peer: \(reason)")
            } else {
                logger.warning("diskless: the peer could not make the writes acknowledged through it durable; disable refused",
                               metadata: ["bytes": "\(bytes)", "reason": "\(reason)"])
            }
            context.events.publish(resource: resource, "peer-drain-failed", fields)
        default:
            break
        }
    }

    /// `.peerDrainedBeforeStop`: a disable's drain ended (nil, or why it failed).
    func peerDrainedBeforeStop(_ failure: String?) {
        guard let done = onPeerDrained else { return }
        onPeerDrained = nil
        done(failure)
    }

    /// Status `diskless` (while this disk lacks writes or failed) and `serving_from`.
    func disklessStatusFields(into fields: inout [String: JSONValue]) {
        let path = node.mutationPath
        guard path != .local else { return }
        let local = node.localDisk
        var block: [String: JSONValue] = [
            "local_lacks_writes": .bool(local.recorded),
            "local_lacking_bytes": .int(Int64(clamping: local.lackingBytes)),
            "local_lacking_whole_volume": .bool(local.wholeVolume),
            "writes_through_peer": .int(Int64(clamping: local.writesThroughPeer)),
            "bytes_through_peer": .int(Int64(clamping: local.bytesThroughPeer)),
        ]
        // Diskless regions (issue 13 §4): whether the record keeps them, and its page writes.
        block["local_lacking_regions_recorded"] = .bool(local.regionsKept == true)
        block["local_lacking_region_writes"] = .int(Int64(clamping: local.regionWrites))
        if let because = local.wholeVolumeBecause { block["local_lacking_whole_volume_because"] = .string(because) }
        // `out_of_sync_bytes` counts the regions that differ between the copies, whichever
        // lacks them: here this disk's (the peer's bitmap is empty while it serves).
        fields["out_of_sync_bytes"] = .int(Int64(clamping: node.outOfSyncBytes &+ local.lackingBytes))
        switch path {
        case .local: break
        case .throughPeer: block["writes"] = .string("through-peer")
        case .localAndPeer: block["writes"] = .string("local-and-peer")
        case .awaitingRecord: block["writes"] = .string("awaiting-record")
        case let .refused(reason):
            block["writes"] = .string("refused")
            block["writes_refused_because"] = .string(reason)
        }
        if local.resyncing {
            block["resync_bytes"] = .int(Int64(clamping: local.resyncTotalBytes))
            block["resync_pulled_bytes"] = .int(Int64(clamping: local.pulledBytes))
        }
        fields["diskless"] = .object(block)
        if node.localLacksWrites || node.diskFailed {
            fields["serving_from"] = .string(node.servesFromPeer ? "peer" : "none")
        }
    }
}
