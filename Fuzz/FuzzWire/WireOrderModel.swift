// WireOrderModel: the ordering rules of docs/protocol.md ("Ordering rules the codec
// enforces"), written again from the text so that the decoder's own check can be compared
// with it.
import TandemCore

struct WireOrderModel {
    private var previousSequence: UInt64?
    private var previousDataEpoch: UInt64?
    private var previousBarrierEpoch: UInt64?
    private var previousDurableEpoch: UInt64?
    /// Data frames seen of each epoch (a barrier's write count must equal its epoch's).
    private var dataFrames: [UInt64: UInt64] = [:]

    /// Whether `message` may follow what was accepted so far; records it when it may.
    mutating func accepts(_ message: WireMessage) -> Bool {
        switch message {
        case .data(let data):
            let header = data.header
            if let previous = previousSequence {
                let (next, overflow) = previous.addingReportingOverflow(1)
                if overflow || header.sequence != next { return false }
            }
            if let previous = previousDataEpoch, header.epoch < previous { return false }
            if let barrier = previousBarrierEpoch, !(header.epoch > barrier) { return false }
            previousSequence = header.sequence
            previousDataEpoch = header.epoch
            dataFrames[header.epoch, default: 0] += 1
        case .epochBarrier(let epoch, let writeCount):
            if let barrier = previousBarrierEpoch, !(epoch > barrier) { return false }
            if let data = previousDataEpoch, epoch < data { return false }
            if UInt64(writeCount) != dataFrames[epoch, default: 0] { return false }
            previousBarrierEpoch = epoch
        case .durableAck(let epoch):
            if let previous = previousDurableEpoch, epoch < previous { return false }
            previousDurableEpoch = epoch
        default:
            break
        }
        return true
    }
}
