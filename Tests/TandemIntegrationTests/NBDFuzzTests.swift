// Guarantee 6 under seeded random input: sequences of malformed and out-of-range NBD requests,
// and raw garbage, never crash the daemon, never change the volume, and never stop it
// serving a client that was connected meanwhile. A failing seed is printed; rerun one with
// TANDEM_FUZZ_SEED=<seed>.
import Foundation
import TandemCore
import Testing

extension SplitMix64 {
    mutating func pick<T>(_ choices: [T]) -> T { choices[Int(next() % UInt64(choices.count))] }
    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) } }
}

extension Integration.NBDBadInput {
    typealias Random = SplitMix64

    /// One request that must not change the volume: anything but an in-range mutation.
    static func harmlessRequest(_ random: inout Random, cookie: UInt64, volumeBytes: UInt64) -> [UInt8] {
        let type: UInt16 = random.pick([0, 0, 1, 3, 4, 5, 6, 7, 8, 9, 200, 0xFFFF])
        let isMutation = type == 1 || type == 4 || type == 6
        let offset: UInt64 = isMutation
            ? random.pick([volumeBytes, volumeBytes + 4096, UInt64.max - 100, 1 << 62])
            : random.pick([0, 4095, volumeBytes - 1, volumeBytes, 1 << 63, random.next()])
        let length: UInt32 = random.pick([0, 1, 511, 4096, 16384, UInt32.max, UInt32(truncatingIfNeeded: random.next())])
        let flags: UInt16 = random.pick([0, 1, 2, 3, 0x20, 0xFFFF])
        var request = RawNBDClient.requestHeader(type: type, flags: flags, cookie: cookie, offset: offset, length: length)
        if type == 1 && length <= 16384 { request += random.bytes(Int(length)) }
        return request
    }

    @Test func seededRandomRequestsNeverCrashOrChangeTheVolume() throws {
        let scene = try Scene()
        let seeds: [UInt64] = ProcessInfo.processInfo.environment["TANDEM_FUZZ_SEED"].flatMap(UInt64.init).map { [$0] }
            ?? Array(1...24)
        for seed in seeds {
            var random = Random(seed: seed)
            let client = try RawNBDClient(socketPath: scene.export.socketPath)
            if random.next() % 5 == 0 {
                _ = client.stream.sendUntilBlocked(random.bytes(Int(random.next() % 300) + 1))
            } else {
                try client.go(exportName: scene.export.name)
                var stream: [UInt8] = []
                for cookie in 0..<UInt64(random.next() % 48 + 1) {
                    stream += Self.harmlessRequest(&random, cookie: cookie, volumeBytes: UInt64(Self.volumeBytes))
                }
                if random.next() % 4 == 0 { stream += random.bytes(Int(random.next() % 64)) }
                _ = client.stream.sendUntilBlocked(stream)
            }
            client.stream.closeNow()
            try scene.expectUnharmed()
            if !scene.export.serverIsAlive {
                Issue.record("seed \(seed) killed the daemon; replay with TANDEM_FUZZ_SEED=\(seed)")
                return
            }
        }
    }
}
