// How many resources a daemon holds, and what a create refused late leaves behind: the
// ceiling is the process's open-file limit (docs/operations.md "How many resources"), not the
// io_uring fixed-file table, and a create refused after it made its volume file, NBD socket
// or spec file removes them again (guarantee 6: a refusal changes nothing).
import Foundation
import Testing

extension Integration {
    @Suite struct ResourceCeiling {
        func createArguments(_ daemon: DaemonProcess, name: String, sizeBytes: Int = 1 << 20) -> JSONObject {
            ["name": name, "volume": daemon.directory.file("\(name).img"), "size_bytes": sizeBytes,
             "nbd": ["socket": daemon.directory.file("\(name).sock")]]
        }

        func expectNothingLeft(_ daemon: DaemonProcess, _ client: ControlClient, name: String,
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
            let status = try client.request("status", ["name": name])
            #expect(status.errorCode == "not-found", "a refused create left a resource: \(status)",
                    sourceLocation: sourceLocation)
            for leftover in ["\(name).img", "\(name).sock"] {
                #expect(!FileManager.default.fileExists(atPath: daemon.directory.file(leftover)),
                        "a refused create left \(leftover)", sourceLocation: sourceLocation)
            }
            let stateFiles = (try? FileManager.default.contentsOfDirectory(atPath: daemon.stateDir)) ?? []
            #expect(!stateFiles.contains { $0.hasPrefix("\(name).") }, "state files left: \(stateFiles)",
                    sourceLocation: sourceLocation)
            let specs = (try? FileManager.default.contentsOfDirectory(atPath: daemon.stateDir + "/resources")) ?? []
            #expect(!specs.contains("\(name).json"), "a refused create left its spec: \(specs)",
                    sourceLocation: sourceLocation)
        }

        /// The NBD TCP address is taken: the volume file and the Unix socket were already
        /// made when the listen fails.
        @Test func aCreateRefusedAtItsNBDListenerRemovesTheVolumeFileItMade() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            let taken = try TCPPortHolder()
            var arguments = createArguments(daemon, name: "r0")
            arguments["nbd"] = ["socket": daemon.directory.file("r0.sock"), "tcp": "127.0.0.1:\(taken.port)"]
            let reply = try client.request("create", arguments)
            #expect(reply.ok == false && reply.errorCode == "exists", "\(reply)\n\(daemon.logTail())")
            try expectNothingLeft(daemon, client, name: "r0")
            // Nothing stale blocks the same create once the port is free.
            taken.close()
            let again = try client.request("create", arguments)
            #expect(again.ok == true, "\(again)\n\(daemon.logTail())")
        }

        /// The spec cannot be persisted (its path is a directory): the resource was serving
        /// when the refusal came, and its volume file and NBD socket go with it.
        @Test func aCreateRefusedWhenItsSpecCannotBeSavedLeavesNothingBehind() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            let blocker = daemon.stateDir + "/resources/r0.json"
            try FileManager.default.createDirectory(atPath: blocker, withIntermediateDirectories: true)
            let reply = try client.request("create", createArguments(daemon, name: "r0"))
            #expect(reply.ok == false && reply.errorCode == "io-error", "\(reply)\n\(daemon.logTail())")
            let status = try client.request("status", ["name": "r0"])
            #expect(status.errorCode == "not-found", "a refused create left a resource: \(status)")
            for leftover in ["r0.img", "r0.sock"] {
                #expect(!FileManager.default.fileExists(atPath: daemon.directory.file(leftover)),
                        "a refused create left \(leftover)")
            }
            try FileManager.default.removeItem(atPath: blocker)
            let again = try client.request("create", createArguments(daemon, name: "r0"))
            #expect(again.ok == true, "\(again)\n\(daemon.logTail())")
        }

        /// With 3,600 descriptors (3 per standalone resource: its volume, its metadata file and
        /// its NBD socket) a daemon holds more than the 1,023 resources the old fixed
        /// 1,024-slot file table allowed; the create that finds the limit is refused with
        /// the limit named, leaves nothing behind, and the daemon keeps serving.
        @Test func theOpenFileLimitNotTheRingsFileTableSetsTheCeiling() throws {
            let daemon = try DaemonProcess(extraArguments: [])
            daemon.openFilesLimit = 3600
            try daemon.start()
            let client = try daemon.control()
            var created = 0
            var refusal: JSONObject?
            while created < 3600 {
                let name = "r\(created)"
                let reply = try client.request("create", createArguments(daemon, name: name))
                guard reply.ok == true else {
                    refusal = reply
                    try expectNothingLeft(daemon, client, name: name)
                    break
                }
                created += 1
            }
            #expect(created > 1100, "only \(created) resources before \(String(describing: refusal))\n\(daemon.logTail())")
            let message = refusal?.string("message") ?? ""
            #expect(message.contains("RLIMIT_NOFILE 3600"), "the refusal does not name the limit: \(String(describing: refusal))")
            // A client that connects at the limit waits (the listener backs off instead of
            // spinning); once a resource is deleted the last one serves I/O.
            let last = "r\(created - 1)"
            let uri = "nbd+unix:///\(last)?socket=\(daemon.directory.file("\(last).sock"))"
            #expect(try client.request("delete", ["name": "r0"]).ok == true)
            expectQemuIOSucceeded(try ExternalTool.run(
                "qemu-io", ["-f", "raw", "-c", "write -P 0x5a 0 65536", "-c", "read -P 0x5a 0 65536", uri]))
            let again = try client.request("create", createArguments(daemon, name: "r0"))
            #expect(again.ok == true, "\(again)\n\(daemon.logTail())")
        }

        /// A client that connects while the daemon has no descriptor left waits in the
        /// listen backlog; the listener retries its accept every 100 ms rather than re-arming
        /// one that fails at once, which spun a core for as long as the limit held. Once a
        /// resource is deleted, the client is served.
        @Test func aClientConnectingAtTheDescriptorLimitWaitsWithoutSpinningAndIsServedLater() throws {
            let daemon = try DaemonProcess(extraArguments: [])
            daemon.openFilesLimit = 64
            try daemon.start()
            let client = try daemon.control()
            var created = 0
            while created < 64, try client.request("create", createArguments(daemon, name: "r\(created)")).ok == true {
                created += 1
            }
            #expect(created > 10, "only \(created) resources under a limit of 64\n\(daemon.logTail())")
            let last = "r\(created - 1)"
            let socket = daemon.directory.file("\(last).sock")
            let uri = "nbd+unix:///\(last)?socket=\(socket)"
            // The refused create left a descriptor or two free: these connections take them
            // and queue behind them, so that qemu-io, connecting last, has to wait.
            var fillers = try (0..<4).map { _ in try UnixStream(path: socket) }
            let qemuIO = try ChildProcess(
                executable: try ExternalTool.locate("qemu-io"),
                arguments: ["-f", "raw", "-c", "write -P 0x3c 0 4096", "-c", "read -P 0x3c 0 4096", uri],
                outputPath: daemon.directory.file("qemu-io.log"))
            defer { qemuIO.signal(SIGKILL) }
            // The daemon logs the failed accept: from then on it is at the limit with a
            // client waiting.
            let deadline = Date().addingTimeInterval(30)
            while !daemon.logTail().contains("accept: out of file descriptors"), Date() < deadline {
                Thread.sleep(forTimeInterval: 0.05)
            }
            #expect(daemon.logTail().contains("accept: out of file descriptors"), "no failed accept logged\n\(daemon.logTail())")
            let ticksBefore = try Self.cpuTicks(daemon.pid)
            Thread.sleep(forTimeInterval: 1)  // the window the CPU is measured over
            let ticksUsed = try Self.cpuTicks(daemon.pid) - ticksBefore
            #expect(ticksUsed < Int(sysconf(Int32(_SC_CLK_TCK))) / 4, "the daemon used \(ticksUsed) ticks in 1 s at the limit")
            #expect(qemuIO.exitStatus == nil, "the client did not wait")
            for filler in fillers { filler.closeNow() }
            fillers.removeAll()
            #expect(try client.request("delete", ["name": "r0"]).ok == true)
            #expect(qemuIO.wait(timeoutSeconds: 30), "the waiting client was not served after a descriptor was freed")
            let output = (try? String(contentsOfFile: daemon.directory.file("qemu-io.log"), encoding: .utf8)) ?? ""
            #expect(qemuIO.exitStatus == 0, "qemu-io: \(output)")
            #expect(!output.contains("Pattern verification failed"), "qemu-io: \(output)")
        }

        /// utime + stime of `pid`, in clock ticks.
        static func cpuTicks(_ pid: Int32) throws -> Int {
            let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
            guard let close = stat.lastIndex(of: ")") else { throw HarnessError("unreadable /proc/\(pid)/stat") }
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else {
                throw HarnessError("unreadable /proc/\(pid)/stat")
            }
            return user + system
        }
    }
}

/// A TCP port on 127.0.0.1 held open by the test, so that a daemon's bind to it fails.
final class TCPPortHolder {
    private var fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, size) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &size) == 0
            }
        }
        guard bound else {
            Glibc.close(fd)
            throw HarnessError("binding a TCP port: errno \(errno)")
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    deinit { close() }
}
