// A replicated primary's own disk loses power: what it acknowledged as durable (FUA writes,
// FLUSHed writes) must be on that disk, as on a standalone volume (RestartTests). The volume
// is a PowerLossVolume, which forgets every write that was not flushed.
import Foundation
import Testing

extension Replication {
@Suite struct PowerCutTests {
    @Test(arguments: ["sync", "async"])
    func primarysFUAAndFlushedWritesSurviveAPowerCutOfItsDisk(_ mode: String) throws {
        let pair = try ReplicatedPair(sizeBytes: 16 << 20)
        let disk = try PowerLossVolume(sizeBytes: 16 << 20)
        // alpha's volume path leads to the power-loss volume.
        try pair.useAsVolume(disk.path, of: pair.alpha)
        try pair.createAndEnable(mode: mode)
        try pair.waitInSync()

        let raw = try RawNBDClient.transmitting(socketPath: pair.nbdSocket(pair.alpha), exportName: ReplicatedPair.resource)
        try raw.write(offset: 1 << 20, data: [UInt8](repeating: 0x5e, count: 64 << 10))
        try raw.flush()
        try raw.write(offset: 0, data: [UInt8](repeating: 0x91, count: 64 << 10), fua: true)
        try raw.write(offset: 8192, data: [UInt8](repeating: 0x92, count: 4096), fua: true)
        try raw.write(offset: 4 << 20, data: [UInt8](repeating: 0x94, count: 64 << 10))  // never flushed

        pair.alpha.crash()
        disk.cutPower()
        #expect(try disk.backingBytes(offset: 4 << 20, count: 4096).allSatisfy { $0 == 0 },
                "the unflushed write reached the backing file: the power cut lost nothing")
        #expect(try disk.backingBytes(offset: 1 << 20, count: 64 << 10).allSatisfy { $0 == 0x5e }, "a flushed write was lost")
        #expect(try disk.backingBytes(offset: 0, count: 8192).allSatisfy { $0 == 0x91 }, "a FUA write was lost")
        #expect(try disk.backingBytes(offset: 8192, count: 4096).allSatisfy { $0 == 0x92 }, "a FUA write was lost")
        #expect(try disk.backingBytes(offset: 12288, count: 53248).allSatisfy { $0 == 0x91 }, "a FUA write was lost")
    }
}
}
