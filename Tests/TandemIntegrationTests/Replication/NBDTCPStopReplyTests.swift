// The export's last replies over TCP (NBDConnection.closeAfterDecidedReplies): a client that
// still has requests the server never read when the export ends. Closing a TCP socket with
// unread input makes the kernel send a reset instead of an orderly end; the replies the stop
// decided must still reach the client before it, as they do over a Unix socket
// (FencedStopTests). A sync pair under `fencing: suspend-io` whose secondary crashed: alpha
// holds every write for its peer, a TCP connection fills its 128 request slots (127 writes and
// a FLUSH) and sends 32 more writes the server does not read; a shutdown then fails the held
// requests with EIO (the node serves nothing after it) and closes the export.
import Foundation
import Testing

extension Replication {
@Suite(.serialized) struct NBDTCPStopReplyTests {
    static let slots = 128  // max_requests_per_connection's default: the requests one connection holds
    static let unreadWrites = 32
    static let eio: UInt32 = 5

    static func write(_ block: Int, cookie: UInt64) -> [UInt8] {
        RawNBDClient.requestHeader(type: NBDWire.cmdWrite, cookie: cookie, offset: UInt64(block) * 4096, length: 4096)
            + AcknowledgedWriter.pattern(block)
    }

    @Test func theRepliesAStopDecidedReachATCPClientThatLeftRequestsUnread() throws {
        let pair = try ReplicatedPair(sizeBytes: 16 << 20)
        let tcpPort = try ReplicatedPair.freePort()
        let nbd: [String: Any] = ["socket": pair.nbdSocket(pair.alpha), "tcp": "127.0.0.1:\(tcpPort)"]
        try pair.create(on: pair.beta, role: "secondary", peer: ("alpha", pair.alphaAddress), mode: "sync",
                        initialSync: "none", compression: "none", fencing: "suspend-io")
        try pair.create(on: pair.alpha, role: "primary", peer: ("beta", pair.betaAddressForAlpha), mode: "sync",
                        initialSync: "none", compression: "none", fencing: "suspend-io", settings: ["nbd": nbd])
        for daemon in [pair.beta, pair.alpha] {
            try pair.expectOK(try daemon.control().request("enable", ["name": ReplicatedPair.resource]))
        }
        try pair.waitInSync()
        pair.beta.crash()

        let client = try RawNBDClient.transmitting(tcpPort: tcpPort, exportName: ReplicatedPair.resource)
        defer { client.disconnect() }
        let held = Self.slots - 1
        var requests: [UInt8] = []
        for block in 0..<held { requests += Self.write(block, cookie: UInt64(block + 1)) }
        let flushCookie = UInt64(held + 1)
        requests += RawNBDClient.requestHeader(type: NBDWire.cmdFlush, cookie: flushCookie, offset: 0, length: 0)
        try client.sendWithoutWaiting(requests)
        try pair.waitFor(pair.alpha, "every write held for the crashed peer") {
            $0["connection_state"] as? String != "Connected" && $0["unconfirmed_bytes"] as? Int == held * 4096
        }
        // The connection's slots are full: these stay in the socket, unread by the server
        // (more than its 64 KiB staging read takes).
        var unread: [UInt8] = []
        for index in 0..<Self.unreadWrites { unread += Self.write(held + index, cookie: flushCookie + 1 + UInt64(index)) }
        try client.sendWithoutWaiting(unread)

        #expect(try pair.alpha.stop() == 0, "a clean shutdown")
        let replies = try client.readReplies(Self.slots)
        let expected = Dictionary(uniqueKeysWithValues: (1...UInt64(Self.slots)).map { ($0, Self.eio) })
        #expect(replies == expected, "every request read got its answer: \(replies.filter { $0.value != Self.eio })")
        errno = 0
        let (outcome, reply) = client.readSimpleReply(dataBytes: 0)
        let end = errno == ECONNRESET ? "a reset" : "an orderly end"
        FileHandle.standardError.write(Data("TCP export's end after \(replies.count) replies: \(end)\n".utf8))
        #expect(outcome == .closed && reply == nil, "no reply to a request the server never read, then the end")
    }
}
}
