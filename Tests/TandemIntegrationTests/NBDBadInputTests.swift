// Guarantee 6, NBD side: malformed requests are refused, never obeyed. The daemon answers as
// the NBD spec says (an error reply, or closing that one client), keeps serving a client that
// was connected meanwhile, and the volume's content does not change.
import Foundation
import Testing

extension Integration {
    @Suite struct NBDBadInput {
        static let volumeBytes = 64 << 20

        /// A served volume full of random bytes, a bystander connection opened before any bad
        /// input, and the volume's digest at the start.
        struct Scene {
            let export: NBDExport
            let bystander: RawNBDClient
            let digestBefore: String

            init() throws {
                export = try NBDExport(sizeBytes: NBDBadInput.volumeBytes, content: .random)
                bystander = try RawNBDClient.transmitting(socketPath: export.socketPath, exportName: export.name)
                digestBefore = try export.volumeSHA256()
            }

            /// After the bad input: the server lives, the bystander and a new client are
            /// served the right bytes, and the volume is unchanged.
            func expectUnharmed(sourceLocation: SourceLocation = #_sourceLocation) throws {
                #expect(export.serverIsAlive, "the server died", sourceLocation: sourceLocation)
                let expected = try VolumeFiles.bytes(export.volumePath, offset: 8192, count: 4096)
                #expect(try bystander.read(offset: 8192, length: 4096, cookie: 77) == expected,
                        "the bystander connection was not served", sourceLocation: sourceLocation)
                let fresh = try export.qemuIO(["read 0 65536"])
                #expect(fresh.succeeded, "a new client was not served: \(fresh)", sourceLocation: sourceLocation)
                #expect(try export.volumeSHA256() == digestBefore, "the volume changed", sourceLocation: sourceLocation)
            }
        }

        @Test func requestWithWrongMagicClosesOnlyThatClient() throws {
            let scene = try Scene()
            let bad = try RawNBDClient.transmitting(socketPath: scene.export.socketPath, exportName: scene.export.name)
            let header = RawNBDClient.requestHeader(
                type: NBDWire.cmdWrite, cookie: 1, offset: 0, length: 4096, magic: 0xdead_beef)
            try bad.stream.sendAll(header + [UInt8](repeating: 0x5a, count: 4096))
            // The stream cannot be resynchronised after a bad magic: the server must hang up.
            #expect(bad.stream.awaitPeerClose(), "the server kept a connection with a bad request magic open")
            try scene.expectUnharmed()
        }

        @Test func optionWithHugeLengthIsRefusedWithoutReadingIt() throws {
            let scene = try Scene()
            let bad = try RawNBDClient(socketPath: scene.export.socketPath, timeoutSeconds: 10)
            try bad.sendOption(NBDWire.optGo, length: 0xFFFF_FFF0, data: [UInt8](repeating: 0, count: 64))
            // Either an error reply (then the server may close) or an immediate close; never a
            // wait for four gigabytes (the read times out and throws), and never success.
            if let reply = try bad.readOptionReply() {
                #expect(reply.type & NBDWire.repErrorBit != 0, "huge option got a non-error reply type \(reply.type)")
            }
            bad.stream.closeNow()
            if let daemon = scene.export.daemon, let peak = daemon.peakResidentBytes() {
                #expect(peak < 512 << 20, "the daemon allocated for the claimed option length (VmHWM \(peak))")
            }
            try scene.expectUnharmed()
        }

        @Test(arguments: [NBDWire.cmdRead, NBDWire.cmdWrite])
        func requestPastTheEndGetsAnErrorAndTheConnectionStaysUsable(_ command: UInt16) throws {
            let scene = try Scene()
            let client = try RawNBDClient.transmitting(socketPath: scene.export.socketPath, exportName: scene.export.name)
            #expect(client.exportSizeBytes == UInt64(Self.volumeBytes))
            let cases: [(offset: UInt64, length: UInt32)] = [
                (UInt64(Self.volumeBytes) - 4096, 8192),  // straddles the end
                (UInt64(Self.volumeBytes), 512),  // starts at the end
                (UInt64.max - 4095, 8192),  // offset + length wraps around 2^64
            ]
            for (index, bad) in cases.enumerated() {
                let cookie = UInt64(100 + index)
                let header = RawNBDClient.requestHeader(type: command, cookie: cookie, offset: bad.offset, length: bad.length)
                let payload = command == NBDWire.cmdWrite ? [UInt8](repeating: 0xee, count: Int(bad.length)) : []
                try client.stream.sendAll(header + payload)
                let (outcome, reply) = client.readSimpleReply(dataBytes: 0)
                #expect(outcome == .data, "no reply to an out-of-range request at \(bad.offset)")
                #expect(reply?.cookie == cookie)
                #expect([NBDWire.errnoEINVAL, NBDWire.errnoENOSPC].contains(reply?.error ?? 0),
                        "out-of-range request at \(bad.offset)+\(bad.length): error \(reply?.error ?? 0), want EINVAL or ENOSPC")
            }
            // The same connection still works.
            let expected = try VolumeFiles.bytes(scene.export.volumePath, offset: 0, count: 4096)
            #expect(try client.read(offset: 0, length: 4096, cookie: 200) == expected)
            try scene.expectUnharmed()
        }

        @Test func writeWithCutShortPayloadChangesNothing() throws {
            let scene = try Scene()
            let bad = try RawNBDClient.transmitting(socketPath: scene.export.socketPath, exportName: scene.export.name)
            let header = RawNBDClient.requestHeader(type: NBDWire.cmdWrite, cookie: 5, offset: 65536, length: 65536)
            try bad.stream.sendAll(header + [UInt8](repeating: 0xc3, count: 1000))
            bad.stream.closeNow()
            // The disconnect is the only event; make sure the server has seen it before checking,
            // by completing a full request on the bystander (served by the same daemon).
            _ = try scene.bystander.read(offset: 0, length: 512, cookie: 6)
            try scene.expectUnharmed()
        }

        @Test(.enabled(if: NBDExport.server == .tandemd))
        func badInputOnOneResourceDoesNotDisturbAnother() throws {
            let scene = try Scene()
            let daemon = try #require(scene.export.daemon)
            let other = NBDTarget(directory: daemon.directory, name: "r1")
            try VolumeFiles.makeRandom(other.volumePath, sizeBytes: 16 << 20)
            try NBDExport.create(on: daemon, name: "r1", volume: other.volumePath, socket: other.socketPath, sizeBytes: nil)
            let otherDigest = try VolumeFiles.sha256(other.volumePath)
            let otherClient = try RawNBDClient.transmitting(socketPath: other.socketPath, exportName: "r1")

            let bad = try RawNBDClient.transmitting(socketPath: scene.export.socketPath, exportName: scene.export.name)
            try bad.stream.sendAll(RawNBDClient.requestHeader(type: NBDWire.cmdWrite, cookie: 1, offset: 0, length: 1 << 20, magic: 0x0bad_0bad))
            #expect(bad.stream.awaitPeerClose(), "the server kept a connection with a bad request magic open")

            let expected = try VolumeFiles.bytes(other.volumePath, offset: 4096, count: 4096)
            #expect(try otherClient.read(offset: 4096, length: 4096, cookie: 3) == expected, "r1 was not served")
            expectQemuIOSucceeded(try other.qemuIO(["read 0 1M"]))
            #expect(try VolumeFiles.sha256(other.volumePath) == otherDigest)
            try scene.expectUnharmed()
        }

        @Test func floodOfUnreadRepliesDoesNotStarveOtherClients() throws {
            let scene = try Scene()
            let flooder = try RawNBDClient.transmitting(socketPath: scene.export.socketPath, exportName: scene.export.name)
            flooder.stream.setTimeouts(seconds: 2)
            // 64 Ki pipelined 4 KiB READs (256 MiB of replies) and never read a reply: the server
            // must stop reading this client rather than buffer without bound.
            var flood: [UInt8] = []
            let requestCount = 65_536
            flood.reserveCapacity(requestCount * 28)
            for index in 0..<requestCount {
                flood += RawNBDClient.requestHeader(
                    type: NBDWire.cmdRead, cookie: UInt64(index), offset: UInt64(index % 16_384) * 4096, length: 4096)
            }
            let sent = flooder.stream.sendUntilBlocked(flood)
            // The server stopped reading requests whose replies it could not send: the kernel's
            // socket buffers took the rest, far less than the whole flood.
            #expect(sent > 0 && sent < flood.count, "the server took \(sent) of \(flood.count) request bytes")
            // While the flooder is stuck, everyone else is still served.
            try scene.expectUnharmed()
            if let daemon = scene.export.daemon, let peak = daemon.peakResidentBytes() {
                #expect(peak < 256 << 20, "the daemon buffered the flood (VmHWM \(peak) bytes)")
            }
            flooder.stream.closeNow()
            try scene.expectUnharmed()
        }
    }
}
