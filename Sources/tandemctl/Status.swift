// Status: `tandemctl status [NAME] [--watch]`: a table of all resources in human units, the
// reasons for every state that is not healthy, and a progress bar for a running copy; or one
// resource in detail. `--watch` refreshes in place on a terminal, and prints one report per
// refresh otherwise.
import ArgumentParser
import TandemControl

#if canImport(Glibc)
import Glibc
#endif

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show resources: role, connection, disk and replication state, lag, and what is wrong.",
        discussion: """
            Under the table, each resource that is not healthy gets a line per reason \
            ('peer not connected: ...', 'secondary is Inconsistent: full copy 42% done'), and \
            a running copy or verify a progress bar with its rate and time to completion.

            With --watch the report is refreshed every --interval seconds: in place when the \
            output is a terminal, one report after another otherwise (each headed by the time). \
            The rate comes from the daemon, or else from the change between two refreshes.
            """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Only this resource, with every field (all resources when omitted).")
    var name: String?
    @Flag(help: "Refresh until interrupted.")
    var watch = false
    @Option(help: ArgumentHelp("Seconds between refreshes with --watch.", valueName: "seconds"))
    var interval: Double = 2
    @Option(help: ArgumentHelp("Stop after this many refreshes with --watch (default: never).", valueName: "n"))
    var count: Int?

    func validate() throws {
        guard interval >= 0.1, interval <= 3600 else { throw ValidationError("--interval: 0.1 to 3600 seconds") }
        if let count, count < 1 { throw ValidationError("--count: at least 1") }
    }

    func run() throws {
        var args: [String: JSONValue] = [:]
        if let name { args["name"] = .string(name) }
        guard watch else { return try options.call("status", args) { print(report($0, rates: [:])) } }
        let client = try options.connect()
        var sampler = RateSampler()
        var refreshes = 0
        let terminal = isatty(1) == 1
        while count.map({ refreshes < $0 }) ?? true {
            if refreshes > 0 { usleep(useconds_t(interval * 1_000_000)) }
            refreshes += 1
            let reply: ControlReply
            do { reply = try client.request(cmd: "status", args: args) } catch {
                printError("tandemctl: \(error)")
                throw ExitCode(2)
            }
            let now = RateSampler.nowMs()
            if terminal && !options.json { print("\u{1B}[H\u{1B}[2J", terminator: "") }
            if !options.json { print("tandemctl status, every \(interval)s: \(EventText.timestamp(now))\n") }
            try options.show(reply) { fields in
                print(report(fields, rates: sampler.update(resources(fields), nowMs: now)))
                if !terminal { print("") }
            }
            fflush(nil)
        }
    }

    func resources(_ fields: [String: JSONValue]) -> [[String: JSONValue]] {
        name == nil ? (fields["resources"]?.arrayValue ?? []).compactMap(\.objectValue) : [fields]
    }

    func report(_ fields: [String: JSONValue], rates: StatusReport.MeasuredRates) -> String {
        let text = StatusReport.render(resources(fields), measuredRates: rates)
        return name == nil ? text : text + "\n\n" + StatusReport.details(fields)
    }
}

/// Copy rate per resource from the change of `out_of_sync_bytes` between two refreshes.
struct RateSampler {
    var last: [String: (remaining: Int64, timeMs: Int64)] = [:]

    mutating func update(_ resources: [[String: JSONValue]], nowMs: Int64) -> StatusReport.MeasuredRates {
        var rates: StatusReport.MeasuredRates = [:]
        for fields in resources {
            guard let name = fields["name"]?.stringValue, let remaining = fields["out_of_sync_bytes"]?.intValue else {
                continue
            }
            if let previous = last[name], nowMs > previous.timeMs, previous.remaining > remaining {
                rates[name] = UInt64((previous.remaining - remaining) * 1000 / (nowMs - previous.timeMs))
            }
            last[name] = (remaining, nowMs)
        }
        return rates
    }

    static func nowMs() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }
}
