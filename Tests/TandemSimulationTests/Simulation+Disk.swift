import Glibc
import TandemCore

// Disk operations submitted to the fake disks, with their latencies and stalls.

extension Simulation {
    func diskWriteLatencyNs() -> UInt64 {
        stalled(random.chance(perMille: 100) ? random.between(200_000, 2_000_000) : random.between(10_000, 150_000))
    }

    func diskFlushLatencyNs() -> UInt64 { stalled(random.between(50_000, 1_500_000)) }

    /// A disk operation's latency, or (DiskStalls, while the workload runs) a stall of
    /// seconds; the run then settles after the stall ends.
    func stalled(_ latencyNs: UInt64) -> UInt64 {
        guard let stalls = scenario.diskStalls, nowNs <= scenario.workloadEndNs, random.chance(perMille: stalls.perMille)
        else { return latencyNs }
        let stallNs = random.between(stalls.minNs, stalls.maxNs)
        diskStalls += 1
        trace("disk stall of \(stallNs / 1_000_000) ms")
        runEndNs = max(runEndNs, nowNs + stallNs + scenario.runEndNs - scenario.workloadEndNs)
        return latencyNs + stallNs
    }


    func submitWrite(_ node: SimNode, _ extent: FakeDisk.Extent, fua: Bool, io: SimNode.IO) {
        let tag = makeTag()
        node.io[tag] = io
        trace("\(node.name) write tag \(tag): \(io) \(extent.blocks)")
        node.disk.submitWrite(extent, fua: fua, tag: tag)
        if scenario.diskStalls?.timeoutNs != nil { node.ioSubmittedNs[tag] = nowNs }
        events.schedule(.writeDone(node: node.index, tag: tag, incarnation: node.incarnation), atNs: nowNs + diskWriteLatencyNs())
        if scenario.testingFault == .completesStuckWritesAfterTimeout {
            events.schedule(.writeTimedOut(node: node.index, tag: tag, incarnation: node.incarnation),
                            atNs: nowNs + SimulationFault.writeTimeoutNs)
        }
    }

    func submitFlush(_ node: SimNode, io: SimNode.IO) {
        let tag = makeTag()
        node.io[tag] = io
        trace("\(node.name) flush tag \(tag): \(io)")
        node.disk.submitFlush(tag: tag)
        if scenario.diskStalls?.timeoutNs != nil { node.ioSubmittedNs[tag] = nowNs }
        events.schedule(.flushDone(node: node.index, tag: tag, incarnation: node.incarnation), atNs: nowNs + diskFlushLatencyNs())
    }

    func blocks(offsetBytes: UInt64, lengthBytes: UInt32) -> Range<Int> {
        let first = Int(offsetBytes / SimulationScenario.blockSizeBytes)
        return first..<(first + Int(UInt64(lengthBytes) / SimulationScenario.blockSizeBytes))
    }
}
