// FuzzControl: the control socket's decoding under libFuzzer: LineBuffer (the stream into
// lines), ControlCodec and JSONCodec (a line into a request, or a reply on the client side)
// and ResourceSpec.parse (`create`'s arguments into a spec). Invariants, beyond "no trap":
// - lines come out the same whether the stream arrives whole or in random pieces, and as an
//   independent split of the stream on "\n" says they should;
// - a decoded request or reply encodes to one line that decodes to the same value, and the
//   id of a request that is an object is echoed even when the request is refused;
// - an error reply to a hostile line stays small (ControlFuzz.messageBytesMax);
// - a spec that `create` accepts gives back, through `jsonFields`, arguments that parse to
//   the same spec; a refused one is refused with missing-argument, invalid-argument or
//   unsupported.
import FuzzSupport
import TandemControl
import TandemCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzControlTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    ControlFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if !TANDEM_LIBFUZZER
@main
enum FuzzControlTool {
    static func main() {
        FuzzTool.main(name: "FuzzControl", seeds: ControlSeeds.all, check: ControlFuzz.check)
    }
}
#endif

enum ControlFuzz {
    /// Longest error message a reply to one line may carry.
    static let messageBytesMax = 1024
    static let socketDirectory = "/run/tandem"

    static func check(_ bytes: UnsafeRawBufferPointer) {
        let input = FuzzInput(bytes)
        let lineBytesMax = [64, 4096][input.choice(0x11E, below: 2)]
        let whole = LineRun(input.stream, pieces: input.stream.isEmpty ? [] : [0..<input.stream.count], lineBytesMax: lineBytesMax)
        let pieces = LineRun(input.stream, pieces: input.chunks(), lineBytesMax: lineBytesMax)
        fuzzCheck(whole.events == pieces.events, "fed in pieces, the lines differ")
        fuzzCheck(whole.events == LineRun.expected(input.stream, lineBytesMax: lineBytesMax), "lines differ from a plain split on newlines")
        for case .line(let line) in whole.events {
            checkRequest(line)
            checkReply(line)
        }
    }

    static func checkRequest(_ line: [UInt8]) {
        let (id, result) = ControlCodec.decodeRequestWithID(line: line)
        if case .success(.object(let fields)) = JSONCodec.parse(line) {
            fuzzCheck(id == fields["id"] ?? .null, "the request's id is not echoed")
        } else {
            fuzzCheck(id == .null, "an id from a line that is not a JSON object")
        }
        switch result {
        case .failure(let error):
            fuzzCheck(error.message.utf8.count <= messageBytesMax, "a \(error.message.utf8.count)-byte error message")
            checkReplyRoundTrip(.failure(id, error))
        case .success(let request):
            fuzzCheck(ControlCodec.commands.contains(request.cmd), "an unknown command decoded")
            fuzzCheck(request.args["id"] == nil && request.args["cmd"] == nil, "id or cmd left in the arguments")
            let encoded = ControlCodec.encode(request)
            let again = ControlCodec.decodeRequest(line: oneLine(encoded))
            fuzzCheck(again.map(JSONNormal.request) == .success(JSONNormal.request(request)), "a request does not survive encode and decode")
            checkReplyRoundTrip(.ok(id, request.args))
            if request.cmd == "create" { ResourceSpecFuzz.check(request.args) }
        }
    }

    /// The client's side: any line as a reply.
    static func checkReply(_ line: [UInt8]) {
        guard case .success(let reply) = ControlCodec.decodeReply(line: line) else { return }
        checkReplyRoundTrip(reply)
    }

    static func checkReplyRoundTrip(_ reply: ControlReply) {
        let decoded = ControlCodec.decodeReply(line: oneLine(ControlCodec.encode(reply)))
        guard case .success(let again) = decoded else {
            fuzzCheck(false, "an encoded reply does not decode: \(decoded)")
            return
        }
        fuzzCheck(JSONNormal.reply(again) == JSONNormal.reply(reply), "a reply does not survive encode and decode")
    }

    /// An encoded message is exactly one line: a newline at the end and nowhere else.
    static func oneLine(_ bytes: [UInt8]) -> ArraySlice<UInt8> {
        fuzzCheck(bytes.last == 0x0A, "an encoded message without its newline")
        let line = bytes.dropLast()
        fuzzCheck(!line.contains(0x0A), "an encoded message spans lines")
        return line
    }
}

enum ResourceSpecFuzz {
    static func check(_ args: [String: JSONValue]) {
        let spec: ResourceSpec
        do {
            spec = try ResourceSpec.parse(createArgs: args, defaultNBDSocketDirectory: ControlFuzz.socketDirectory)
        } catch {
            let allowed: Set<ControlErrorCode> = [.missingArgument, .invalidArgument, .unsupported]
            fuzzCheck(allowed.contains(error.code), "create refused with \(error.code)")
            fuzzCheck(error.message.utf8.count <= ControlFuzz.messageBytesMax, "a \(error.message.utf8.count)-byte refusal")
            return
        }
        do {
            let again = try ResourceSpec.parse(createArgs: spec.jsonFields, defaultNBDSocketDirectory: "/elsewhere")
            fuzzCheck(again == spec, "a spec's jsonFields parse to a different spec")
        } catch {
            fuzzCheck(false, "a spec's own jsonFields are refused: \(error.message)")
        }
    }
}
