"""Where an async pair's RPO goes on the secondary: its io_uring operations, recorded with
`perf record` on the kernel's io_uring tracepoints while `tandem-bench rpo --uring-trace DIR`
runs, and read back per group-commit cycle.

The secondary's event loop tags its operations (user_data = handler << 32 | tag): the
replicator's volume flush is tag 0xFFFF0001 and its group-commit timer 0xFFFF0002, its
volume writes carry their slot (< 0xFFFF0000); the metadata file's record write is tag 1
and the flush after it tag 2 (SecondaryReplicator, MetadataFile). A cycle k is the volume
flush submitted at s_k. Its oldest write is the first volume-write completion after s_(k-1)
(the flush before it covered everything completed until then), and the cycle ends when the
record naming it is stable (the record flush's completion; the DurableAck is sent in the same
loop turn). Per cycle:

  wait    oldest write completed -> volume flush submitted (the group-commit interval, or a
          flush still in flight)
  flush   volume flush submitted -> completed (fdatasync: the disk's cache flush)
  gap     volume flush completed -> record write submitted (a loop turn, or a record in flight)
  record  record write submitted -> stable: its flush completed (a 4 KiB write, then a second
          cache flush), or the write itself where it is an RWF_DSYNC write
  hold    oldest write completed -> record stable: the secondary's share of that write's RPO

Also: every volume write's submit -> completion (apply) and the time between flushes.
No root needed to read a recording; recording needs perf and tracepoint access (root)."""
import os, re, signal, subprocess, sys

FLUSH_TAG, TIMER_TAG = 0xFFFF_0001, 0xFFFF_0002
RECORD_WRITE_TAG, RECORD_FLUSH_TAG = 1, 2
EVENTS = ["io_uring:io_uring_submit_req", "io_uring:io_uring_complete"]
LINE = re.compile(r"^\s*(\d+\.\d+):\s+io_uring:(io_uring_submit_req|io_uring_complete):.*?req (0x[0-9a-f]+), "
                  r"user_data (0x[0-9a-f]+)(?:, opcode (\w+))?")


def start(directory, run, pid):
    """Starts `perf record` of the io_uring tracepoints, system-wide (`-p` misses completions
    posted by io-wq workers the kernel starts after it attached: a flush's, say); the
    recording is read back for `pid` alone. Returns its process."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"run{run}-secondary.perf")
    command = ["perf", "record", "-q", "-a", "-o", path]
    for event in EVENTS:
        command += ["-e", event]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    process.path, process.traced_pid = path, pid
    return process


def finish(process):
    """Stops the recording and returns the cycle summary (None if perf failed)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if not os.path.exists(process.path):
        sys.stderr.write(f"uringtrace: perf recorded nothing: {process.stderr.read().decode().strip()}\n")
        return None
    return summarize(read(process.path, process.traced_pid))


def read(path, pid):
    """[(time_s, kind 'submit'|'complete', req, user_data, opcode or None)] of process `pid`
    (all its threads) from a recording."""
    text = subprocess.run(["perf", "script", "-i", path, "-F", "pid,time,event,trace"], check=True,
                          capture_output=True, text=True).stdout
    prefix = re.compile(r"^\s*(\d+)\s+")
    lines = [line[m.end():] for line in text.splitlines() if (m := prefix.match(line)) and int(m.group(1)) == pid]
    return parse(lines)


def parse(lines):
    events = []
    for line in lines:
        match = LINE.match(line)
        if match:
            time_s, event, req, user_data, opcode = match.groups()
            kind = "submit" if event == "io_uring_submit_req" else "complete"
            events.append((float(time_s), kind, req, int(user_data, 16), opcode))
    return events


def operations(events):
    """Completed operations: [(submit_s, complete_s, handler, tag, opcode)] in submit order."""
    open_ops, done = {}, []
    for time_s, kind, req, user_data, opcode in events:
        if kind == "submit":
            open_ops[req] = (time_s, user_data, opcode)
        elif req in open_ops:
            submitted, user_data, opcode = open_ops.pop(req)
            done.append((submitted, time_s, user_data >> 32, user_data & 0xFFFF_FFFF, opcode))
    return sorted(done)


def records(ops, replicator):
    """The record writes: [(write submitted, write completed, stable)]. Stable is the
    completion of the flush after the write, or the write's own with RWF_DSYNC (no flush)."""
    writes = [op for op in ops if op[2] != replicator and op[3] == RECORD_WRITE_TAG and (op[4] or "").startswith("WRITE")]
    if not writes:
        return []
    metadata = writes[0][2]
    flushes = [op for op in ops if op[2] == metadata and op[3] == RECORD_FLUSH_TAG and op[4] == "FSYNC"]
    found = []
    for index, write in enumerate(writes):
        until = writes[index + 1][0] if index + 1 < len(writes) else float("inf")
        flush = next((op for op in flushes if write[1] <= op[0] < until), None)
        found.append((write[0], write[1], flush[1] if flush else write[1]))
    return found


def summarize(events):
    ops = operations(events)
    flushes = [op for op in ops if op[3] == FLUSH_TAG]
    if not flushes:
        return {"cycles": 0}
    replicator = flushes[0][2]
    writes = [op for op in ops if op[2] == replicator and op[3] < 0xFFFF_0000 and (op[4] or "").startswith("WRITE")]
    record_ops = records(ops, replicator)
    write_done = sorted(op[1] for op in writes)
    cycles = {"wait": [], "flush": [], "gap": [], "record": [], "record_write": [], "hold": []}
    previous_submit = None
    for submitted, completed, _, _, _ in flushes:
        record = next((r for r in record_ops if r[0] >= completed), None)
        oldest = next((t for t in write_done if previous_submit is None or t > previous_submit), None)
        previous_submit = submitted
        if record is None or oldest is None or oldest > submitted:
            continue
        cycles["wait"].append(submitted - oldest)
        cycles["flush"].append(completed - submitted)
        cycles["gap"].append(record[0] - completed)
        cycles["record"].append(record[2] - record[0])
        cycles["record_write"].append(record[1] - record[0])
        cycles["hold"].append(record[2] - oldest)
    between = [b[0] - a[0] for a, b in zip(flushes, flushes[1:])]
    summary = {"cycles": len(cycles["hold"]), "writes": len(writes), "record_flushes": sum(r[2] > r[1] for r in record_ops),
               "apply_ms": spread_ms([op[1] - op[0] for op in writes]),
               "between_flushes_ms": spread_ms(between)}
    summary.update({f"{name}_ms": spread_ms(values) for name, values in cycles.items()})
    return summary


def spread_ms(values_s):
    xs = sorted(v * 1e3 for v in values_s)
    if not xs:
        return None
    pick = lambda p: xs[max(1, -(-p * len(xs) // 100)) - 1]  # nearest rank
    return {"p50": round(pick(50), 3), "p99": round(pick(99), 3), "max": round(xs[-1], 3), "count": len(xs)}


def describe(summary):
    if not summary or not summary.get("cycles"):
        return "secondary io_uring trace: no complete group-commit cycle recorded"
    pick = lambda name: summary.get(name + "_ms") or {"p50": "-", "p99": "-"}
    parts = [f"{name} {pick(name)['p50']}/{pick(name)['p99']}"
             for name in ("wait", "flush", "gap", "record", "hold", "apply", "between_flushes")]
    return f"secondary io_uring trace, {summary['cycles']} cycles, ms p50/p99: " + ", ".join(parts)


if __name__ == "__main__":
    import json
    print(json.dumps(summarize(read(sys.argv[1], int(sys.argv[2]))), indent=1))
