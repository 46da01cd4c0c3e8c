// The CPU cost of one request-trace hop, on and off (docs/benchmarks.md, "Where a request's
// time goes"). Not a package target: Benchmarks/trace-cost.sh compiles it with -O together
// with the very RequestTrace source the daemon uses, and times loops on this thread's CPU
// clock, so that other processes on a shared machine do not inflate the figures.
import Glibc

func cpuNs() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

@inline(never) func stampNow(_ turn: UInt64) -> TraceStamp { TraceStamp(ns: MonotonicClock.nowNs(), turn: turn) }

let trace = RequestTrace()
let iterations = 5_000_000
var sink: UInt64 = 0

var start = cpuNs()
for index in 0..<iterations { sink &+= stampNow(UInt64(index)).ns }
print("stamp (CLOCK_MONOTONIC read):    \(Double(cpuNs() - start) / Double(iterations)) ns")

trace.enable()
var previous = stampNow(0)
start = cpuNs()
for index in 0..<iterations {
    let now = stampNow(UInt64(index))
    trace.record(.write, TracePhase(rawValue: index % 8)!, from: previous, to: now)
    previous = now
}
print("hop, trace on (stamp + record):  \(Double(cpuNs() - start) / Double(iterations)) ns")

trace.disable()
start = cpuNs()
for index in 0..<iterations {
    if trace.enabled { sink &+= stampNow(UInt64(index)).ns } else { sink &+= 1 }
}
print("hop, trace off (the branch):     \(Double(cpuNs() - start) / Double(iterations)) ns (loop included)")
if sink == 42 { print("") }  // keeps the loops from being optimised away
