// The retention log is the only copy a re-send after a reconnect can use: a live entry must
// never be overwritten by a later one, whatever the sizes and however it wraps.
import Testing
import TandemCore
@testable import TandemDaemon

extension Replication {
@Suite struct RetentionLogTests {
    struct Live {
        var sequence: WriteSequence
        var length: Int
        var fill: UInt8
    }

    @Test(arguments: [1, 2, 3, 4, 5])
    func liveEntriesSurviveWrapAroundUnderRandomSizes(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let bufferBytes = 64 << 10
        let writeBytesMax = 16 << 10
        let log = RetentionLog(bufferBytes: bufferBytes, writeBytesMax: writeBytesMax, entriesMax: 64)
        var live: [Live] = []
        var liveBytes = 0
        var nextSequence: WriteSequence = 1
        for _ in 0..<4_000 {
            let length = 512 * Int(1 + random.next() % UInt64(writeBytesMax / 512))
            let releasing = liveBytes + length > bufferBytes || random.next() % 3 == 0
            if releasing, !live.isEmpty {
                let count = Int(1 + random.next() % UInt64(live.count))
                let releasedThrough = live[count - 1].sequence
                log.releaseFront { $0 <= releasedThrough }
                for entry in live.prefix(count) { liveBytes -= entry.length }
                live.removeFirst(count)
                continue
            }
            // The state machine admits a write only while the buffer bound holds.
            guard liveBytes + length <= bufferBytes else { continue }
            guard let (index, pointer) = log.append(length: length) else {
                Issue.record("no room for \(length) bytes with \(liveBytes) live in a \(log.capacityBytes)-byte log")
                return
            }
            let fill = UInt8(truncatingIfNeeded: nextSequence)
            pointer.initializeMemory(as: UInt8.self, repeating: fill, count: length)
            log.assign(index: index, sequence: nextSequence)
            live.append(Live(sequence: nextSequence, length: length, fill: fill))
            liveBytes += length
            nextSequence += 1
            for entry in live {
                guard let payload = log.payload(sequence: entry.sequence), payload.count == entry.length,
                    payload.allSatisfy({ $0 == entry.fill })
                else {
                    Issue.record("entry \(entry.sequence) was overwritten or lost")
                    return
                }
            }
        }
    }
}
}
