// Simulation+DiskTimeout: `disk_timeout_ms` in the simulator, decided as production decides
// it. On every tick each node's writes and flushes still on its disk are judged by
// `DiskTimeout.isOverdue`; an overdue one fails the node's disk the way the daemon's
// DiskHealth does on the loop's tick: a secondary's node is fed `.diskFailed` (it stops
// writing and acknowledging and drops its primary, which then serves alone), a primary
// refuses later mutations with EIO. The I/O itself stays on the disk and completes to its
// owner when the stall ends, as in production (VolumeIOWatch): nothing is answered early.
// Copy reads and record writes stall too but are not judged here (the daemon judges them;
// the simulator does not keep them as in-flight I/O).
import Glibc
import TandemCore

extension Simulation {
    func checkDiskTimeouts() {
        guard let timeoutNs = scenario.diskStalls?.timeoutNs else { return }
        for node in nodes where node.alive && !node.ioSubmittedNs.isEmpty {
            // Sorted: the order of the reports (and so of the run) follows the seed alone.
            for tag in node.ioSubmittedNs.keys.sorted() {
                guard let submittedNs = node.ioSubmittedNs[tag] else { continue }
                guard let io = node.io[tag] else {
                    node.ioSubmittedNs[tag] = nil  // completed
                    continue
                }
                guard DiskTimeout.isOverdue(submittedNs: submittedNs, nowNs: nowNs, timeoutNs: timeoutNs) else { continue }
                node.ioSubmittedNs[tag] = nil  // reported once
                diskTimeouts += 1
                diskTimedOut(node, io, ageNs: nowNs - submittedNs, timeoutNs: timeoutNs)
                guard node.alive else { break }
            }
        }
    }

    private func diskTimedOut(_ node: SimNode, _ io: SimNode.IO, ageNs: UInt64, timeoutNs: UInt64) {
        let operation: String
        switch io {
        case .primaryWrite, .standaloneWrite, .secondaryWrite, .pullWrite: operation = "write"
        case .primaryFlush, .standaloneFlush, .secondaryFlush, .secondaryDigestFlush, .activityLogFlush, .pullFlush:
            operation = "flush"
        }
        trace("\(node.name) \(operation) \(DiskTimeout.message(ageNs: ageNs, timeoutNs: timeoutNs))")
        if node.secondary != nil {
            driveSecondary(node, .diskFailed(SecondaryDiskFault(operation: operation, errno: ETIMEDOUT,
                                                                message: DiskTimeout.message(ageNs: ageNs, timeoutNs: timeoutNs))))
        } else {
            primaryDiskFailed(node, operation: operation, errno: ETIMEDOUT)
        }
    }
}
