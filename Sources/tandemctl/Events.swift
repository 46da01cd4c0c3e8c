// Events: `tandemctl events [NAME] [--json]`: the daemon's event stream, one line per event
// with its time. It starts, as DRBD's `events2` does, with one `exists` line per resource
// giving its current state and an `initial-done` line; changes follow.
import ArgumentParser
import TandemControl

#if canImport(Glibc)
import Glibc
#endif

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow state changes until interrupted, one line per event.",
        discussion: """
            Each line is '<time UTC> <resource> <event> key=value ...'; the stream starts \
            with one 'exists' line per resource (its current state) and an 'initial-done' \
            line, then one line per change. With --json every object is printed as the \
            daemon sent it, one per line, heartbeats included.
            """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Only this resource's events (all when omitted).") var name: String?
    @Option(help: ArgumentHelp("Exit after this many events (heartbeats not counted).", valueName: "n"))
    var count: Int?

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count: at least 1") }
    }

    func run() throws {
        let client = try options.connect()
        var args: [String: JSONValue] = [:]
        if let name { args["name"] = .string(name) }
        var shown = 0
        do {
            try client.send(ControlRequest(id: .int(1), cmd: "events", args: args))
            while count.map({ shown < $0 }) ?? true {
                let reply = try client.readReply()
                try options.show(reply) { fields in
                    guard let line = EventText.line(fields) else { return }
                    print(line)
                    shown += 1
                }
                if options.json, case .success(let fields) = reply.result,
                    !["heartbeat", "subscribed"].contains(fields["event"]?.stringValue ?? "")
                {
                    shown += 1
                }
                fflush(nil)  // every event reaches a pipe at once
            }
        } catch let error as ControlClientError {
            if case .connectionLost = error { return }
            printError("tandemctl: \(error)")
            throw ExitCode(2)
        }
    }
}
