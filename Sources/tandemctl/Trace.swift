// Trace: `tandemctl trace NAME [--on | --off]`: turns a resource's request phase trace on
// (counts reset) or off, and prints its summary per phase (TraceReport).
import ArgumentParser
import TandemControl

struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Trace where a resource's requests spend their time, phase by phase.",
        discussion: """
            --on starts counting (from zero), --off stops; either way, and without them, the \
            summary so far is printed: for reads and writes, each phase from NBD receive \
            through admission, local I/O, the hand-over to the peer and its acknowledgement to \
            the reply, with its count, mean, p50/p90/p99 and the event-loop turns it spans. \
            On a secondary the phases are its own receive, write and acknowledgement of each \
            replicated write and of its group commit (flush, DurableAck). On a primary that \
            copies (a resync, a catch-up) each copy chunk's hops from its read to its release \
            are phases of op "copy", and under the table the mean number of chunks in each \
            stage of the copy (reading, admitting, unsent, unacknowledged, undurable). The same figures are published as histograms in the metrics \
            (tandem_trace_phase_seconds, tandem_trace_phase_loop_turns; docs/metrics.md). \
            Off, each hop costs one branch; on, a clock read and a few additions.
            """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Resource name.") var name: String
    @Flag(help: "Start tracing (counts reset).") var on = false
    @Flag(help: "Stop tracing (counts kept until the next --on).") var off = false

    func validate() throws {
        if on && off { throw ValidationError("--on and --off together") }
    }

    func run() throws {
        var args: [String: JSONValue] = ["name": .string(name)]
        if on || off { args["enable"] = .bool(on) }
        try options.call("trace", args) { print(TraceReport.render($0)) }
    }
}
