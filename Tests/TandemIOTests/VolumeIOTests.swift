import CShims
import Glibc
import Logging
import Testing
@testable import TandemIO

/// Real io_uring I/O against a file on disk (not tmpfs, so O_DIRECT is exercised).
final class Collector: IOHandler {
    var results: [UInt32: Int32] = [:]
    func ioCompleted(tag: UInt32, result: Int32, flags: UInt32) { results[tag] = result }
}

struct VolumeIOTests {
    func scratchPath() -> String {
        let dir = "/var/tmp/tandem-tests"
        mkdir(dir, 0o700)
        return "\(dir)/volume-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).img"
    }

    @Test func writtenBlocksReadBackThroughTheRingWithRegisteredBuffers() throws {
        let logger = Logger(label: "test")
        let path = scratchPath()
        defer { unlink(path) }
        let loop = try EventLoop(ringEntries: 64, poolBytes: 1 << 20, logger: logger)
        let volume = try Volume(path: path, createSizeBytes: 1 << 20, logger: logger)
        #expect(volume.sizeBytes == 1 << 20)
        // /var/tmp is on a real disk here: the volume must really bypass the page cache.
        #expect(volume.direct)
        #expect(fcntl(volume.fd, F_GETFL) & tandem_O_DIRECT != 0, "the volume's descriptor lacks O_DIRECT")
        #expect(volume.alignment == 4096)
        try volume.attach(to: loop)
        let collector = Collector()
        let id = loop.register(collector)
        let out = try #require(loop.pool.allocate(bytes: 8192))
        let back = try #require(loop.pool.allocate(bytes: 8192))
        for index in 0..<8192 { out.pointer.storeBytes(of: UInt8(truncatingIfNeeded: index * 7), toByteOffset: index, as: UInt8.self) }
        loop.prepareVolumeIO(write: true, volume: volume, buffer: out.pointer, length: 8192, offset: 65536,
                             dsync: true, handler: id, tag: 1)
        loop.prepareFlush(volume: volume, handler: id, tag: 2)
        try runUntil(loop) { collector.results.count == 2 }
        #expect(collector.results[1] == 8192)
        #expect(collector.results[2] == 0)
        loop.prepareVolumeIO(write: false, volume: volume, buffer: back.pointer, length: 8192, offset: 65536,
                             dsync: false, handler: id, tag: 3)
        try runUntil(loop) { collector.results.count == 3 }
        #expect(collector.results[3] == 8192)
        #expect(memcmp(out.pointer, back.pointer, 8192) == 0)
    }

    @Test func crossThreadWorkRunsOnTheLoopAndStopEndsIt() throws {
        let loop = try EventLoop(ringEntries: 64, poolBytes: 1 << 20, logger: Logger(label: "test"))
        let done = ResultBox<Int>()
        var thread = pthread_t()
        let context = Unmanaged.passRetained(LoopRef(loop)).toOpaque()
        pthread_create(&thread, nil, { raw in
            let ref = Unmanaged<LoopRef>.fromOpaque(raw!).takeRetainedValue()
            let answer = ref.loop.submitAndWait { 42 }
            ref.loop.stop()
            _ = answer
            return nil
        }, context)
        loop.execute { done.put(1) }
        loop.run()
        pthread_join(thread, nil)
        #expect(done.take() == 1)
    }

    /// The fixed-file table is sized from RLIMIT_NOFILE, bounded; a volume that finds it
    /// full is still served, through its plain descriptor.
    @Test func aVolumeBeyondTheFixedFileTableIsServedThroughItsDescriptor() throws {
        #expect(EventLoop.fileSlots(openFilesLimit: 20_000) == 20_000)
        #expect(EventLoop.fileSlots(openFilesLimit: UInt64.max) == EventLoop.fileSlotsMax)
        #expect(EventLoop.fileSlots(openFilesLimit: 0) == 1)
        let logger = Logger(label: "test")
        let loop = try EventLoop(ringEntries: 64, poolBytes: 1 << 20, fileSlots: 1, logger: logger)
        let paths = [scratchPath(), scratchPath()]
        defer { for path in paths { unlink(path) } }
        let volumes = try paths.map { path throws(IOError) in try Volume(path: path, createSizeBytes: 1 << 20, logger: logger) }
        for volume in volumes { try volume.attach(to: loop) }
        #expect(volumes[0].fixedSlot == 0)
        #expect(volumes[1].fixedSlot == nil, "a second slot in a table of one")
        let collector = Collector()
        let id = loop.register(collector)
        let out = try #require(loop.pool.allocate(bytes: 4096))
        let back = try #require(loop.pool.allocate(bytes: 4096))
        memset(out.pointer, 0x5A, 4096)
        loop.prepareVolumeIO(write: true, volume: volumes[1], buffer: out.pointer, length: 4096, offset: 8192,
                             dsync: false, handler: id, tag: 1)
        try runUntil(loop) { collector.results.count == 1 }
        loop.prepareVolumeIO(write: false, volume: volumes[1], buffer: back.pointer, length: 4096, offset: 8192,
                             dsync: false, handler: id, tag: 2)
        try runUntil(loop) { collector.results.count == 2 }
        #expect(collector.results[1] == 4096 && collector.results[2] == 4096)
        #expect(memcmp(out.pointer, back.pointer, 4096) == 0)
        // Detaching the first frees its slot for the next volume.
        volumes[0].detach(from: loop)
        try volumes[1].attach(to: loop)
        #expect(volumes[1].fixedSlot == 0)
    }

    /// A volume file the open created is removed when the open then fails, and on request
    /// by a resource refused later; an existing file is never removed.
    @Test func onlyAFileTheOpenCreatedIsDiscarded() throws {
        let logger = Logger(label: "test")
        let path = scratchPath()
        defer { unlink(path) }
        let created = try Volume(path: path, createSizeBytes: 1 << 20, logger: logger)
        #expect(created.createdFile)
        let reopened = try Volume(path: path, createSizeBytes: 1 << 20, logger: logger)
        #expect(!reopened.createdFile)
        reopened.discardCreatedFile()
        #expect(access(path, F_OK) == 0, "an existing volume file was removed")
        created.discardCreatedFile()
        #expect(access(path, F_OK) != 0, "the created file is still there")
    }

    /// Runs the loop's reaping until `condition` holds, bounded by a turn count.
    func runUntil(_ loop: EventLoop, _ condition: () -> Bool) throws {
        for _ in 0..<1000 where !condition() {
            loop.runOnce()
        }
        #expect(condition(), "condition not met within 1000 loop turns")
    }
}

final class LoopRef: @unchecked Sendable {
    let loop: EventLoop
    init(_ loop: EventLoop) { self.loop = loop }
}
