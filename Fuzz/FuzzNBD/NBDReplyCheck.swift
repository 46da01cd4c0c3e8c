// NBDReplyCheck: reads the client's options again (the part the handshake consumed) and the
// server's replies, and checks that they pair up as the NBD protocol (proto.md) requires.
import FuzzSupport
import TandemCore

struct NBDReplyCheck {
    struct Option {
        var code: UInt32
        var dataBytes: Int
        /// The header announced more than NBDHandshake.maxOptionBytes: refused unanswered.
        var refused: Bool
    }

    struct Reply {
        var option: UInt32
        var type: UInt32
        var payloadBytes: Int
    }

    /// A reply's payload may echo the option's data (an unknown export name) beside the
    /// export's own fields; beyond that it is a fixed-size message.
    static let replyOverheadBytesMax = 256

    let stream: [UInt8]
    let run: HandshakeRun
    let export: NBDExport

    func check() {
        guard run.consumed >= 4 else {
            fuzzCheck(run.output.isEmpty, "replies before the client flags")
            return
        }
        let flags = stream.withUnsafeBytes { $0.loadBE(UInt32.self, at: 0) }
        let options = clientOptions()
        var output = run.output[...]
        if case .transmission = run.outcome, let last = options.last, last.code == NBD.Option.exportName.rawValue {
            let tailBytes = flags & NBD.ClientFlag.noZeroes != 0 ? 10 : 134
            fuzzCheck(output.count >= tailBytes, "EXPORT_NAME entered transmission without the export data")
            checkExportData(Array(output.suffix(tailBytes)))
            output = output.dropLast(tailBytes)
        }
        var replies = parseReplies(Array(output))[...]
        for (index, option) in options.enumerated() {
            let isLast = index == options.count - 1
            if option.refused || option.code == NBD.Option.exportName.rawValue {
                fuzzCheck(isLast && run.outcome != .needMore, "an unanswered option that did not end the handshake")
                continue
            }
            let final = answer(option, &replies)
            if option.code == NBD.Option.go.rawValue && final == NBD.OptionReply.ack.rawValue {
                fuzzCheck(isLast && run.outcome != .needMore, "GO was acknowledged but the handshake went on")
            }
            if case .transmission = run.outcome, isLast {
                fuzzCheck(option.code == NBD.Option.go.rawValue && final == NBD.OptionReply.ack.rawValue, "transmission without GO's ACK")
            }
        }
        fuzzCheck(replies.isEmpty, "\(replies.count) replies answer no option")
    }

    /// The replies to one option: INFO or SERVER replies, then its one ACK or error.
    private func answer(_ option: Option, _ replies: inout ArraySlice<Reply>) -> UInt32 {
        while let reply = replies.popFirst() {
            fuzzCheck(reply.option == option.code, "a reply names option \(reply.option) while answering \(option.code)")
            let bound = option.dataBytes + export.name.utf8.count + export.description.utf8.count + Self.replyOverheadBytesMax
            fuzzCheck(reply.payloadBytes <= bound, "a reply of \(reply.payloadBytes) bytes to \(option.dataBytes) bytes of option")
            if reply.type == NBD.OptionReply.info.rawValue || reply.type == NBD.OptionReply.server.rawValue { continue }
            fuzzCheck(reply.type == NBD.OptionReply.ack.rawValue || reply.type & 0x8000_0000 != 0, "option reply type \(reply.type)")
            return reply.type
        }
        fuzzCheck(false, "option \(option.code) got no ACK or error")
        return 0
    }

    /// The options in the consumed part of the stream, after the 4 flag bytes.
    private func clientOptions() -> [Option] {
        var options: [Option] = []
        var offset = 4
        stream.withUnsafeBytes { raw in
            while offset + 16 <= run.consumed {
                let code = raw.loadBE(UInt32.self, at: offset + 8)
                let length = Int(raw.loadBE(UInt32.self, at: offset + 12))
                let refused = length > NBDHandshake.maxOptionBytes
                options.append(Option(code: code, dataBytes: refused ? 0 : length, refused: refused))
                offset += 16 + (refused ? 0 : length)
            }
        }
        fuzzCheck(offset == run.consumed, "the handshake consumed part of an option")
        return options
    }

    private func parseReplies(_ bytes: [UInt8]) -> [Reply] {
        var replies: [Reply] = []
        var offset = 0
        bytes.withUnsafeBytes { raw in
            while offset + 20 <= raw.count {
                fuzzCheck(raw.loadBE(UInt64.self, at: offset) == NBD.optionReplyMagic, "an option reply without its magic")
                let length = Int(raw.loadBE(UInt32.self, at: offset + 16))
                replies.append(
                    Reply(option: raw.loadBE(UInt32.self, at: offset + 8), type: raw.loadBE(UInt32.self, at: offset + 12),
                          payloadBytes: length))
                offset += 20 + length
            }
        }
        fuzzCheck(offset == bytes.count, "option replies do not fill the output exactly")
        return replies
    }

    private func checkExportData(_ tail: [UInt8]) {
        tail.withUnsafeBytes { raw in
            fuzzCheck(raw.loadBE(UInt64.self, at: 0) == export.sizeBytes, "EXPORT_NAME sent the wrong size")
            fuzzCheck(raw.loadBE(UInt16.self, at: 8) == export.transmissionFlags, "EXPORT_NAME sent the wrong flags")
        }
        fuzzCheck(tail.dropFirst(10).allSatisfy { $0 == 0 }, "EXPORT_NAME padding is not zero")
    }
}
