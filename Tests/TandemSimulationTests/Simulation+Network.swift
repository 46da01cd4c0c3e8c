import Glibc
import TandemCore

// The simulated link: messages sent as bytes on one ordered stream per direction, its
// loss, delivery delays, and the impostor's sessions.

extension Simulation {
    /// Encodes the message into the connection's bytes (Simulation+Wire); one delivery event
    /// carries one frame, or the frame an armed wire fault changed.
    func sendToSecondary(_ message: ToSecondary) {
        guard var link, link.unaware == nil else { return }  // a cut link carries nothing
        let (bytes, isData) = encodeToSecondary(message, &link.toSecondary)
        if case let .hello(_, _, _, namesPeer) = message { link.certificateNamesPeer = namesPeer }
        var isBarrier = false
        if case .message(.epochBarrier) = message { isBarrier = true }
        let chunk = tamper(bytes, isData: isData, isBarrier: isBarrier, &link.toSecondary)
            ?? WireChunk(bytes: bytes, tamper: nil)
        // (With a rate, Simulation+Pacing: after the frames before it have left the pipe.)
        link.lastToSecondaryNs = max(link.lastToSecondaryNs, linkDepartureNs(message, linkID: link.id) + networkDelayNs())
        self.link = link
        events.schedule(.toSecondary(chunk, link: link.id), atNs: link.lastToSecondaryNs)
    }

    func sendToPrimary(_ message: ToPrimary) {
        guard var link, link.unaware == nil else { return }
        let bytes = encodeToPrimary(message)
        let chunk = tamper(bytes, isData: false, isBarrier: false, &link.toPrimary)
            ?? WireChunk(bytes: bytes, tamper: nil)
        link.lastToPrimaryNs = max(link.lastToPrimaryNs, nowNs + networkDelayNs())
        self.link = link
        events.schedule(.toPrimary(chunk, link: link.id), atNs: link.lastToPrimaryNs)
    }

    /// Drops the connection; both ends notice now (the secondary not when it closed it
    /// itself). Messages in flight are never delivered.
    func disconnect(_ reason: String, notifySecondary: Bool = true) {
        guard let link else { return }
        trace("link \(link.id) down: \(reason)")
        self.link = nil
        // (A disk failure meanwhile changes `synced` itself.)
        if let before = impostorRecords.removeValue(forKey: link.id), let secondary = nodes[link.secondary].secondary,
            secondary.diskFault == nil, !sameSession(before, secondary.record) {
            let after = secondary.record
            fail("an impostor's session changed \(nodes[link.secondary].name)'s record from \(before) to \(after)")
        }
        // The side that saw an asymmetric cut was told then.
        let secondary = nodes[link.secondary]
        if secondary.alive && notifySecondary && link.unaware?.primary != true { secondaryLinkDown(secondary) }
        if let primaryIndex = link.primary, link.unaware?.primary != false {
            let node = nodes[primaryIndex]
            if node.alive, let primary = node.primary { primaryLinkDown(node, primary, reason: reason) }
        }
    }


    /// Between two real sessions, a peer with a valid certificate (or, sometimes, another
    /// node's) connects to the secondary: with a Hello for a session of its own and then
    /// garbage, or garbage at once. The secondary must drop it and keep what it had.
    func impostorSession(helloFirst: Bool) {
        guard let node = liveSecondary, node.secondary != nil else { return }
        impostors += 1
        disconnect("an impostor connects")
        let recordBefore = node.secondary!.record
        linkCount += 1
        link = Link(id: linkCount, primary: nil, secondary: node.index, lastToSecondaryNs: nowNs, lastToPrimaryNs: nowNs)
        if helloFirst {
            let session = random.between(1, UInt64.max - 1)
            let basis: SessionBasis
            switch random.below(3) {
            case 0: basis = .fullCopy
            case 1: basis = .assumeInSync
            default: basis = .continues(from: random.chance(perMille: 500) ? node.record.session : random.between(1, 1000))
            }
            let namesPeer = random.chance(perMille: 800)
            sendToSecondary(.hello(session: session, basis: basis, nodeName: namesPeer ? nodes[1 - node.index].name : "mallory",
                                   certificateNamesPeer: namesPeer))
        }
        sendToSecondary(.garbage)
        impostorRecords[linkCount] = recordBefore
    }


    /// The session fields of two records agree (the durable epoch may advance meanwhile).
    func sameSession(_ a: ReplicationRecord, _ b: ReplicationRecord) -> Bool {
        a.session == b.session && a.synced == b.synced && a.continuedFrom == b.continuedFrom
    }


    func networkDelayNs() -> UInt64 {
        random.chance(perMille: 50) ? random.between(500_000, 3_000_000) : random.between(5_000, 200_000)
    }
}
