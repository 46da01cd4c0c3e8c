// GlobalOptions: what every subcommand shares: where the daemon is, how to print, and the
// single place where a request is sent and its reply turned into output and an exit status.
import ArgumentParser
import TandemControl

#if canImport(Glibc)
import Glibc
#endif

struct GlobalOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The daemon's control socket.", valueName: "path"))
    var socket: String = "/run/tandem/control.sock"

    @Flag(help: "Print the daemon's reply object as JSON, one line, instead of a table.")
    var json = false

    func connect() throws -> ControlClient {
        do {
            return try ControlClient(socketPath: socket)
        } catch {
            printError("tandemctl: \(error)")
            throw ExitCode(2)
        }
    }

    /// Sends one request; prints the reply (JSON, or `human` for success); exit 1 on ok:false.
    /// `flags` names the command-line option of a request argument, so that an error naming the
    /// argument (`period_s`) also names what the operator typed (`--period`).
    func call(
        _ cmd: String, _ args: [String: JSONValue] = [:], flags: [String: String] = [:],
        human: ([String: JSONValue]) -> Void = { _ in print("ok") }
    ) throws {
        let client = try connect()
        let reply: ControlReply
        do {
            reply = try client.request(cmd: cmd, args: args)
        } catch {
            printError("tandemctl: \(error)")
            throw ExitCode(2)
        }
        try show(reply, flags: flags, human: human)
    }

    func show(_ reply: ControlReply, flags: [String: String] = [:], human: ([String: JSONValue]) -> Void) throws {
        if json { print(String(decoding: ControlCodec.encode(reply).dropLast(), as: UTF8.self)) }
        switch reply.result {
        case .success(let fields):
            if !json { human(fields) }
        case .failure(let error):
            printError("tandemctl: \(error.code.rawValue): \(error.message)" + Self.flagHint(error.message, flags))
            throw ExitCode(1)
        }
    }
}

extension GlobalOptions {
    /// " (option --period)" when `message` names an argument `flags` knows, else "".
    static func flagHint(_ message: String, _ flags: [String: String]) -> String {
        let named = flags.keys.sorted().filter { message.contains("argument '\($0)'") }
        guard !named.isEmpty else { return "" }
        let options = named.compactMap { flags[$0] }.joined(separator: ", ")
        return " (tandemctl option \(options))"
    }
}

func printError(_ message: String) {
    let bytes = Array((message + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// Sizes and rates on the command line: "1073741824", "1GiB", "100M".
struct ByteCount: ExpressibleByArgument {
    var bytes: UInt64
    init?(argument: String) {
        guard let bytes = ByteSize.parse(argument), bytes <= UInt64(Int64.max) else { return nil }
        self.bytes = bytes
    }
    var json: JSONValue { .int(Int64(bytes)) }
}
