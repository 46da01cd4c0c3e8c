// BandwidthGate: frames leave in the order offered, never more than rate × elapsed + burst
// from the moment the cap was set (also across a live change), and a lifted cap lets what
// waits go at once.
import TandemCore
import Testing

@Suite struct BandwidthGateTests {
    /// Offers 64 KiB frames as fast as they are taken, for 3 s of 1 ms steps, and checks the
    /// bound at every step (the rate doubles at 1.5 s).
    @Test func framesSentNeverExceedRateTimesTimePlusBurstAlsoAfterALiveChange() {
        let frameBytes: UInt64 = 64 << 10
        var gate = BandwidthGate<Int>(rateBytesPerSecond: 4 << 20, burstBytes: 1 << 20, framesMax: 64)
        var sent: [Int] = []
        var nextFrame = 0
        var sentBytes: UInt64 = 0
        var sinceChangeBytes: UInt64 = 0
        let changeNs: UInt64 = 1_500_000_000
        for stepNs in stride(from: UInt64(0), through: 3_000_000_000, by: 1_000_000) {
            if stepNs == changeNs { gate.setRate(8 << 20, nowNs: stepNs) }
            while gate.waitingFrames < 8 {
                if gate.offer(nextFrame, bytes: frameBytes, nowNs: stepNs) == .send {
                    sent.append(nextFrame)
                    sentBytes += frameBytes
                    if stepNs >= changeNs { sinceChangeBytes += frameBytes }
                }
                nextFrame += 1
            }
            while let frame = gate.nextReady(nowNs: stepNs) {
                sent.append(frame)
                sentBytes += frameBytes
                if stepNs >= changeNs { sinceChangeBytes += frameBytes }
            }
            if stepNs < changeNs {
                let boundBytes = stepNs * (4 << 20) / 1_000_000_000 + (1 << 20)
                #expect(sentBytes <= boundBytes, "\(sentBytes) bytes by \(stepNs) ns")
            } else {
                let sinceBound = (stepNs - changeNs) * (8 << 20) / 1_000_000_000 + (1 << 20)
                #expect(sinceChangeBytes <= sinceBound, "\(sinceChangeBytes) bytes \(stepNs - changeNs) ns after the change")
            }
        }
        #expect(sent == Array(0..<sent.count), "frames left out of order")
        // About 4 MiB/s for 1.5 s and 8 MiB/s for 1.5 s, plus the burst: the cap is not idle.
        #expect(sentBytes >= 17 << 20, "\(sentBytes)")
        #expect(gate.admittedBytes == sentBytes)
    }

    @Test func aWaitingFrameIsRetriedWhenTheBucketHoldsItsBytesAndALiftedCapSendsAtOnce() {
        var gate = BandwidthGate<String>(rateBytesPerSecond: 1 << 20, burstBytes: 1 << 20, framesMax: 2)
        #expect(gate.offer("a", bytes: 1 << 20, nowNs: 0) == .send)
        #expect(gate.offer("b", bytes: 512 << 10, nowNs: 0) == .waiting)
        #expect(gate.offer("c", bytes: 64, nowNs: 0) == .waiting, "a small frame never passes one that waits")
        #expect(gate.offer("d", bytes: 64, nowNs: 0) == .full)
        #expect(gate.retryAtNs(nowNs: 0) == 500_000_000)
        #expect(gate.nextReady(nowNs: 499_000_000) == nil)
        #expect(gate.nextReady(nowNs: 500_000_000) == "b")
        gate.setRate(0, nowNs: 500_000_000)
        #expect(gate.nextReady(nowNs: 500_000_000) == "c" && gate.isIdle)
        #expect(gate.offer("e", bytes: 1 << 20, nowNs: 500_000_000) == .send, "no cap")
        gate.setRate(1 << 20, nowNs: 600_000_000)
        #expect(gate.offer("f", bytes: 1 << 20, nowNs: 600_000_000) == .send, "a new bucket starts full")
        #expect(gate.offer("g", bytes: 1, nowNs: 600_000_000) == .waiting)
        gate.dropWaiting()
        #expect(gate.isIdle && gate.retryAtNs(nowNs: 600_000_000) == nil)
    }
}
