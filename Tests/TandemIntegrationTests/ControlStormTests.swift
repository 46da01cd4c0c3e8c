// The control plane under a storm (issue 15 item 7): pollers of `status` share the loop's
// snapshots, so they neither slow the data path nor get answers older than their request;
// `ping` is answered while more clients hold connections than one process may.
import Foundation
import Synchronization
import Testing

extension Dictionary where Key == String, Value == Any {
    /// A counter of the `io` object of a resource's status.
    fileprivate func ioCount(_ key: String) -> UInt64? { (self["io"] as? JSONObject)?.uint64(key) }
}

extension Integration {
    @Suite struct ControlStorm {
        /// Control connections polling `status` back to back until `stop()`, each on a thread of
        /// its own; every reply is checked.
        final class Pollers: @unchecked Sendable {
            private let stopping = Atomic<Bool>(false)
            private let replies = Atomic<Int>(0)
            private let problems = Mutex<[String]>([])
            private let started = DispatchGroup()
            private let finished = DispatchGroup()

            init(socketPath: String, count: Int) {
                for _ in 0..<count {
                    started.enter()
                    finished.enter()
                    Thread.detachNewThread { [self] in
                        poll(socketPath)
                        finished.leave()
                    }
                }
            }

            private func poll(_ socketPath: String) {
                var first = true
                let client: ControlClient
                do { client = try ControlClient(path: socketPath) } catch {
                    problems.withLock { $0.append("connecting: \(error)") }
                    return started.leave()
                }
                while !stopping.load(ordering: .relaxed) {
                    do {
                        let reply = try client.request("status")
                        if reply.ok != true || reply["resources"] == nil || reply.uint64("status_age_ms") == nil {
                            problems.withLock { $0.append("\(reply)") }
                        }
                        replies.add(1, ordering: .relaxed)
                    } catch {
                        problems.withLock { $0.append("\(error)") }
                        break
                    }
                    if first {
                        first = false
                        started.leave()
                    }
                }
                if first { started.leave() }
            }

            /// Returns once every poller has had its first answer.
            func awaitRunning() { started.wait() }

            /// Stops the pollers; returns the replies they had and what was wrong with any.
            func stop() -> (replies: Int, problems: [String]) {
                stopping.store(true, ordering: .relaxed)
                finished.wait()
                return (replies.load(ordering: .relaxed), problems.withLock { $0 })
            }
        }

        func createR0(_ daemon: DaemonProcess, _ client: ControlClient) throws {
            let created = try client.request("create", [
                "name": "r0", "volume": daemon.directory.file("r0.img"), "size_bytes": 64 << 20,
                "nbd": ["socket": daemon.directory.file("r0.sock")],
            ])
            #expect(created.ok == true, "\(created)\n\(daemon.logTail())")
        }

        /// Under 48 pollers, a change that completed before a `status` request is in its reply:
        /// an NBD write is counted in `io.write_requests`, a `set` shows its value, each at
        /// once, never a snapshot from before. `ping` on a new connection is answered each time.
        @Test func statusUnderAStormShowsEveryChangeCompletedBeforeTheRequest() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            try createR0(daemon, client)
            let nbd = try RawNBDClient.transmitting(socketPath: daemon.directory.file("r0.sock"), exportName: "r0")
            defer { nbd.disconnect() }
            let pollers = Pollers(socketPath: daemon.controlSocket, count: 48)
            pollers.awaitRunning()
            let reader = try daemon.control()
            var writes = try #require(try reader.request("status", ["name": "r0"]).ioCount("write_requests"))
            for round in 1...20 {
                try nbd.write(offset: UInt64(round) * 4096, data: [UInt8](repeating: UInt8(round), count: 4096))
                writes += 1
                let afterWrite = try reader.request("status", ["name": "r0"])
                #expect(afterWrite.ioCount("write_requests") == writes, "round \(round): \(afterWrite)")
                let rate = 1 << 20 + round * 4096
                #expect(try client.request("set", ["name": "r0", "resync_rate": rate]).ok == true)
                let afterSet = try reader.request("status", ["name": "r0"])
                #expect(afterSet.uint64("resync_rate") == UInt64(rate), "round \(round): \(afterSet)")
                #expect(afterSet.uint64("status_age_ms") != nil, "no status_age_ms: \(afterSet)")
                let ping = try daemon.control().request("ping")
                #expect(ping.ok == true, "ping under the storm: \(ping)")
            }
            let outcome = pollers.stop()
            #expect(outcome.problems.isEmpty, "\(outcome.problems.prefix(3))")
            #expect(outcome.replies >= 48, "the pollers were answered \(outcome.replies) times")
        }

        /// 56 pollers here and 150 more connections held by other processes: more clients than
        /// the old 64-connection limit, yet a new `ping` is answered, not refused `busy`.
        @Test func pingIsAnsweredWhileTwoHundredClientsHoldConnections() throws {
            let daemon = try DaemonProcess.started()
            let client = try daemon.control()
            try createR0(daemon, client)
            // Three processes of 50: one process may hold at most 64.
            let others = try (0..<3).map { _ in try ConnectionHolder(socketPath: daemon.controlSocket, connections: 50) }
            defer { others.forEach { $0.close() } }
            let replies = others.flatMap(\.replies)
            #expect(replies.count == 150 && replies.allSatisfy { $0 == "ok" }, "\(Set(replies))")
            let pollers = Pollers(socketPath: daemon.controlSocket, count: 56)
            pollers.awaitRunning()
            for _ in 0..<10 {
                let ping = try daemon.control().request("ping")
                #expect(ping.ok == true, "ping with 207 clients connected: \(ping)")
            }
            let outcome = pollers.stop()
            #expect(outcome.problems.isEmpty, "\(outcome.problems.prefix(3))")
        }
    }
}
