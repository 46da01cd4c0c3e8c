import Glibc

/// A precondition failure inside the state machines kills the test process; this prints the
/// seeds that were running so the crash can be replayed.
enum CrashReporter {
    nonisolated(unsafe) static let slots: UnsafeMutablePointer<UInt64> = {
        let slots = UnsafeMutablePointer<UInt64>.allocate(capacity: SimulationSeeds.shardCount)
        slots.initialize(repeating: 0, count: SimulationSeeds.shardCount)
        return slots
    }()
    nonisolated(unsafe) static var installed = false

    static func running(_ seed: UInt64, shard: Int) { slots[shard] = seed }

    static func install() {
        _ = slots
        guard !installed else { return }
        installed = true
        for signalNumber in [SIGILL, SIGTRAP, SIGABRT, SIGSEGV] {
            signal(signalNumber) { signalNumber in
                CrashReporter.writeText("\nsimulation crashed; seeds running:")
                for shard in 0..<SimulationSeeds.shardCount where CrashReporter.slots[shard] != 0 {
                    CrashReporter.writeText(" ")
                    CrashReporter.writeNumber(CrashReporter.slots[shard])
                }
                CrashReporter.writeText("\nreplay: TANDEM_SIM_SEED=<seed> swift test --filter TandemSimulationTests\n")
                signal(signalNumber, SIG_DFL)
                raise(signalNumber)
            }
        }
    }

    static func writeText(_ text: StaticString) {
        _ = write(2, text.utf8Start, text.utf8CodeUnitCount)
    }

    static func writeNumber(_ value: UInt64) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var position = buffer.count
            var remaining = value
            repeat {
                position -= 1
                buffer[position] = UInt8(48 + remaining % 10)
                remaining /= 10
            } while remaining > 0
            _ = write(2, buffer.baseAddress! + position, buffer.count - position)
        }
    }
}
