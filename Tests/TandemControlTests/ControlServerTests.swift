import Testing
import TandemControl
import TandemDaemon

#if canImport(Glibc)
import Glibc
#endif

/// Answers ping, reports the caller's uid for whoami, refuses everything else as unsupported.
final class TestHandler: ControlHandler {
    func handle(_ request: ControlRequest, credentials: PeerCredentials) -> ControlReply {
        switch request.cmd {
        case "ping": return .ok(request.id, ["pong": .bool(true)])
        default: return .failure(request.id, ControlError(.unsupported, "'\(request.cmd)' is not supported"))
        }
    }

    /// Two events, then the stream ends and the connection takes requests again.
    func stream(_ request: ControlRequest, credentials: PeerCredentials, emit: (ControlReply) -> Bool) {
        for sequence in 1...2 {
            guard emit(.ok(.null, ["sequence": .int(Int64(sequence))])) else { return }
        }
    }
}

/// A server on a socket in a fresh temporary directory, stopped and removed by `close()`.
struct RunningServer {
    let directory: String
    let server: ControlServer
    var path: String { server.path }

    init(connectionsMax: Int = ControlServer.connectionsMax,
         connectionsPerProcessMax: Int = ControlServer.connectionsPerProcessMax) throws {
        directory = makeTemporaryDirectory()
        server = ControlServer(path: directory + "/run/control.sock", group: nil, handler: TestHandler(), logger: quietLogger,
                               connectionsMax: connectionsMax, connectionsPerProcessMax: connectionsPerProcessMax)
        try server.start()
    }

    func close() {
        server.stop()
        removeTree(directory)
    }
}

@Suite(.serialized) struct ControlServerTests {
    func expectPingWorks(_ client: ControlClient) throws {
        let reply = try client.request(cmd: "ping")
        #expect(reply.result == .success(["pong": .bool(true)]))
    }

    func sendLine(_ client: ControlClient, _ line: [UInt8]) throws -> ControlReply {
        try client.sendRaw(line + [0x0A])
        return try client.readReply()
    }

    @Test func pingAnswersOverARealSocketWithTheIdEchoed() throws {
        let running = try RunningServer()
        defer { running.close() }
        let client = try ControlClient(socketPath: running.path)
        let reply = try client.request(cmd: "ping")
        #expect(reply == .ok(.int(1), ["pong": .bool(true)]))
        #expect(try client.request(cmd: "ping").id == .int(2))
    }

    @Test(arguments: [
        ("{\"id\":1,\"cmd\":", ControlErrorCode.badJSON), ("[1,2,3]", .badRequest), ("{\"id\":4}", .badRequest),
        ("{\"id\":5,\"cmd\":\"launch\"}", .unknownCommand), ("{\"id\":6,\"cmd\":\"verify\"}", .unsupported),
    ])
    func aBadLineGetsItsOwnErrorAndTheConnectionStaysUsable(line: String, code: ControlErrorCode) throws {
        let running = try RunningServer()
        defer { running.close() }
        let client = try ControlClient(socketPath: running.path)
        let reply = try sendLine(client, bytes(line))
        guard case .failure(let error) = reply.result else {
            Issue.record("accepted: \(line)")
            return
        }
        #expect(error.code == code)
        try expectPingWorks(client)
    }

    @Test func anOverLongLineGetsLineTooLongAndTheConnectionStaysUsable() throws {
        let running = try RunningServer()
        defer { running.close() }
        let client = try ControlClient(socketPath: running.path)
        var huge = bytes("{\"id\":1,\"cmd\":\"ping\",\"pad\":\"")
        huge += [UInt8](repeating: UInt8(ascii: "x"), count: ControlServer.lineBytesMax + 4096)
        huge += bytes("\"}")
        let reply = try sendLine(client, huge)
        #expect(reply.result == .failure(ControlError(.lineTooLong, "request line longer than \(ControlServer.lineBytesMax) bytes")))
        try expectPingWorks(client)
    }

    @Test func severalRequestsInOneWriteAreAnsweredInOrder() throws {
        let running = try RunningServer()
        defer { running.close() }
        let client = try ControlClient(socketPath: running.path)
        try client.sendRaw(bytes("{\"id\":1,\"cmd\":\"ping\"}\n\n{\"id\":2,\"cmd\":\"nope\"}\n{\"id\":3,\"cmd\":\"ping\"}\n"))
        #expect(try client.readReply().id == .int(1))
        #expect(try client.readReply() == .failure(.int(2), ControlError(.unknownCommand, "unknown command 'nope'")))
        #expect(try client.readReply().id == .int(3))
    }

    @Test func eventsStreamRepliesWithTheRequestsId() throws {
        let running = try RunningServer()
        defer { running.close() }
        let client = try ControlClient(socketPath: running.path)
        try client.send(ControlRequest(id: .string("ev"), cmd: "events", args: [:]))
        #expect(try client.readReply() == .ok(.string("ev"), ["sequence": .int(1)]))
        #expect(try client.readReply() == .ok(.string("ev"), ["sequence": .int(2)]))
        try expectPingWorks(client)
    }

    /// The busy refusal's message, or nil when `reply` is not a `busy` refusal.
    func busyMessage(_ reply: ControlReply) -> String? {
        guard case .failure(let error) = reply.result, error.code == .busy else { return nil }
        return error.message
    }

    @Test func oneProcessHoldsAtMostItsShareAndAnotherProcessStillGetsIn() throws {
        let running = try RunningServer(connectionsMax: 8, connectionsPerProcessMax: 4)
        defer { running.close() }
        var clients: [ControlClient] = []
        for _ in 0..<4 {
            let client = try ControlClient(socketPath: running.path)
            try expectPingWorks(client)
            clients.append(client)
        }
        let extra = try ControlClient(socketPath: running.path)
        let message = busyMessage(try extra.request(cmd: "ping"))
        #expect(message == "too many control connections from this process (4)")
        // The flooding process (this one) holds its share; another client is served.
        let other = try ConnectionHolder(socketPath: running.path, connections: 1)
        defer { other.close() }
        #expect(other.replies == ["ok"])
        clients.removeAll()
    }

    @Test func connectionsBeyondTheTotalLimitAreToldBusy() throws {
        let running = try RunningServer(connectionsMax: 6, connectionsPerProcessMax: 4)
        defer { running.close() }
        var clients: [ControlClient] = []
        for _ in 0..<4 {
            let client = try ControlClient(socketPath: running.path)
            try expectPingWorks(client)
            clients.append(client)
        }
        let other = try ConnectionHolder(socketPath: running.path, connections: 3)
        defer { other.close() }
        #expect(other.replies == ["ok", "ok", "busy: too many control connections (6)"])
        clients.removeAll()
    }

    @Test func theDefaultLimitsLeaveRoomBeyondOneProcess() {
        #expect(ControlServer.connectionsPerProcessMax < ControlServer.connectionsMax)
        #expect(ControlServer.connectionsMax >= 200)
    }

    @Test func theSocketIsCreatedWithMode0660() throws {
        let running = try RunningServer()
        defer { running.close() }
        var info = stat()
        #expect(stat(running.path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o660)
    }

    @Test func aStaleSocketIsReplacedButALiveOneIsNot() throws {
        let running = try RunningServer()
        defer { running.close() }
        let second = ControlServer(path: running.path, group: nil, handler: TestHandler(), logger: quietLogger)
        #expect(throws: ControlServerError.self) { try second.start() }
        running.server.stop()
        // Leave a socket file behind, as a crashed daemon would.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(stale) }
        if let address = UnixSocketAddress.make(running.path) {
            _ = UnixSocketAddress.withSockaddr(address) { bind(stale, $0, $1) }
        }
        let third = ControlServer(path: running.path, group: nil, handler: TestHandler(), logger: quietLogger)
        try third.start()
        defer { third.stop() }
        try expectPingWorks(try ControlClient(socketPath: running.path))
    }

    @Test func anUnknownControlGroupIsRefusedAtStart() {
        let directory = makeTemporaryDirectory()
        defer { removeTree(directory) }
        let server = ControlServer(path: directory + "/c.sock", group: "no-such-group-tandem", handler: TestHandler(), logger: quietLogger)
        #expect(throws: ControlServerError.self) { try server.start() }
    }
}

@Suite struct ControlAccessPolicyTests {
    let policy = ControlAccessPolicy(groupID: 500, daemonUID: 990, groupsOfUser: { uid in uid == 1001 ? [100, 500] : [100] })

    @Test func rootAndTheDaemonsOwnUserAreAllowed() {
        #expect(policy.allows(PeerCredentials(pid: 1, uid: 0, gid: 0)))
        #expect(policy.allows(PeerCredentials(pid: 1, uid: 990, gid: 990)))
    }

    @Test func membersOfTheControlGroupAreAllowedByPrimaryOrSupplementaryGroup() {
        #expect(policy.allows(PeerCredentials(pid: 1, uid: 1000, gid: 500)))
        #expect(policy.allows(PeerCredentials(pid: 1, uid: 1001, gid: 100)))
    }

    @Test func everyoneElseIsRefused() {
        #expect(!policy.allows(PeerCredentials(pid: 1, uid: 1002, gid: 100)))
        let rootOnly = ControlAccessPolicy(groupID: nil, daemonUID: 0, groupsOfUser: { _ in [500] })
        #expect(!rootOnly.allows(PeerCredentials(pid: 1, uid: 1001, gid: 500)))
    }
}
