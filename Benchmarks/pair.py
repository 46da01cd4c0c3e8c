#!/usr/bin/env python3
"""Helpers for Benchmarks/pair.sh.

usage:
  pair.py free-port                          print a free TCP port on 127.0.0.1
  pair.py cpu-ticks PID                      print utime+stime of PID (clock ticks)
  pair.py fio-write-bytes FIO_JSON           print the bytes the job wrote
  pair.py fio-mib-s FIO_JSON                 print the job's write MiB/s
  pair.py control CONTROL_SOCKET JSON        send one request, print the reply line
  pair.py wait-connected CONTROL_SOCKET NAME TIMEOUT_S
                                             poll status until connection_state is
                                             Connected (exit 1 and print the last status
                                             on timeout)
  pair.py rpo-sample CONTROL_SOCKET NAME OUT [INTERVAL_S]
                                             every INTERVAL_S (0.1) append status' rpo_ms to
                                             OUT, one value a line ("null" when absent),
                                             until SIGTERM
  pair.py summary JSON_DIR REPEAT TARGET...  the markdown report (tables and targets)
"""
import json, math, os, signal, socket, statistics, sys, time


# ---------------------------------------------------------------- small helpers

def fio_job(path):
    with open(path) as f:
        text = f.read()
    # fio may print warnings before the JSON document.
    return json.loads(text[text.index("{"):])["jobs"][0]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


class Control:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        self.next_id = 1

    def request(self, message):
        message = dict(message, id=self.next_id)
        self.next_id += 1
        self.file.write(json.dumps(message).encode() + b"\n")
        self.file.flush()
        line = self.file.readline()
        if not line:
            raise ConnectionError("control socket closed")
        return json.loads(line)


def connection_state(reply):
    value = reply.get("connection_state")
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------- summary

WORKLOADS = [
    # workload, metric, label, higher is better
    ("seqwrite", "mib_s", "seq write 1 MiB QD16 (MiB/s)", True),
    ("randwrite_qd1", "p50_us", "4 KiB randwrite QD1 p50 clat (µs)", False),
    ("randwrite_qd1", "p99_us", "4 KiB randwrite QD1 p99 clat (µs)", False),
    ("randwrite_qd32", "iops", "4 KiB randwrite QD32 (IOPS)", True),
]
NAMES = {
    "raw": "raw file, io_uring O_DIRECT",
    "rawpair": "raw, both files at once (per file)",
    "rawtgt": "raw secondary copy (TGT), io_uring O_DIRECT",
    "qemu": "QEMU active mirror (write-blocking)",
    "standalone": "tandemd standalone",
    "sync": "tandemd pair, sync",
    "async": "tandemd pair, async",
}


def metric(path, name):
    job = fio_job(path)["write"]
    if name == "mib_s":
        return job["bw_bytes"] / (1 << 20)
    if name == "iops":
        return job["iops"]
    key = "50.000000" if name == "p50_us" else "99.000000"
    return job["clat_ns"]["percentile"][key] / 1000.0


def values(directory, target, workload, name, repeat):
    out = []
    for round_ in range(1, repeat + 1):
        path = os.path.join(directory, f"{target}.{workload}.{round_}.json")
        if os.path.exists(path):
            value = metric(path, name)
            # rawpair runs one job per file, reported together: per file is half of it.
            if target == "rawpair" and name in ("mib_s", "iops"):
                value /= 2
            out.append(value)
    return out


def median_or_none(xs):
    return statistics.median(xs) if xs else None


def fmt(value):
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(xs)))
    return xs[rank - 1]


def read_text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def summary(directory, repeat, targets):
    tick = os.sysconf("SC_CLK_TCK")
    unavailable = {t: read_text(os.path.join(directory, f"{t}.unavailable")) for t in targets}
    measured = [t for t in targets if not unavailable[t]]
    med = {}
    header = ["workload"] + [NAMES[t] for t in targets]
    ratio = "sync" in targets and "qemu" in targets
    if ratio:
        header.append("tandemd-sync / qemu-mirror")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for workload, name, label, _ in WORKLOADS:
        row = [label]
        for t in targets:
            if unavailable[t]:
                row.append("n/a")
                continue
            xs = values(directory, t, workload, name, repeat)
            med[(t, workload, name)] = median_or_none(xs)
            cell = fmt(med[(t, workload, name)])
            if len(xs) > 1:
                cell += f" ({fmt(min(xs))}–{fmt(max(xs))})"
            row.append(cell)
        if ratio:
            a, b = med.get(("sync", workload, name)), med.get(("qemu", workload, name))
            row.append(f"{a / b:.2f}" if a and b else "–")
        print("| " + " | ".join(row) + " |")
    print()
    print(f"Medians of {repeat} runs, (min–max) in brackets. Latency rows: lower is better.")
    for t in targets:
        if unavailable[t]:
            print(f"- {NAMES[t]}: **not measured** — {unavailable[t]}")
    for t in targets:
        notes = read_text(os.path.join(directory, f"{t}.notes"))
        if notes:
            for line in notes.splitlines():
                print(f"- {NAMES[t]}: {line}")

    # RPO under rate-limited async load.
    rpo = []
    rates = []
    achieved = []
    for round_ in range(1, repeat + 1):
        text = read_text(os.path.join(directory, f"async.rpo.{round_}.samples"))
        if text:
            rpo += [float(x) for x in text.split() if x != "null"]
        rate = read_text(os.path.join(directory, f"async.rpo.{round_}.rate"))
        if rate:
            rates.append(int(rate))
        path = os.path.join(directory, f"async.rpo.{round_}.json")
        if os.path.exists(path):
            achieved.append(fio_job(path)["write"]["bw_bytes"] / (1 << 20))
    if "async" in targets and not unavailable["async"]:
        print()
        if rpo:
            print(f"Async `rpo_ms` while writing 1 MiB QD16 at {statistics.median(rates) / (1 << 20):.0f} MiB/s "
                  f"(half the sync seq write figure; fio achieved {statistics.median(achieved):.0f} MiB/s): p50 {percentile(rpo, 50):.1f} ms, "
                  f"p99 {percentile(rpo, 99):.1f} ms, max {max(rpo):.1f} ms ({len(rpo)} samples, every 100 ms).")
        else:
            print("Async `rpo_ms`: not measured (no sync throughput to derive the rate from, "
                  "or status carried no rpo_ms).")

    # CPU per GiB written.
    print()
    print("CPU seconds (user+system, /proc/PID/stat) per GiB written by fio, per daemon process:")
    print()
    cpu_header = ["process", "seq write 1 MiB QD16", "4 KiB QD1", "4 KiB QD32", "all writes"]
    print("| " + " | ".join(cpu_header) + " |")
    print("|" + "---|" * len(cpu_header))
    for t in measured:
        per = {}  # label -> workload -> [ticks, bytes]
        for workload in ("seqwrite", "randwrite_qd1", "randwrite_qd32"):
            for round_ in range(1, repeat + 1):
                base = os.path.join(directory, f"{t}.{workload}.{round_}")
                text = read_text(base + ".cpu")
                if text is None or not os.path.exists(base + ".json"):
                    continue
                written = fio_job(base + ".json")["write"]["io_bytes"]
                for line in text.splitlines():
                    label, ticks = line.rsplit(" ", 1)
                    entry = per.setdefault(label, {}).setdefault(workload, [0, 0])
                    entry[0] += int(ticks)
                    entry[1] += written
        for label, by_workload in per.items():
            cells = [f"{NAMES[t]}: {label}"]
            total = [0, 0]
            for workload in ("seqwrite", "randwrite_qd1", "randwrite_qd32"):
                ticks, written = by_workload.get(workload, [0, 0])
                total[0] += ticks
                total[1] += written
                cells.append(f"{ticks / tick / (written / (1 << 30)):.2f}" if written else "–")
            cells.append(f"{total[0] / tick / (total[1] / (1 << 30)):.2f}" if total[1] else "–")
            print("| " + " | ".join(cells) + " |")

    # The targets.
    print()
    print("Targets (issue 3):")
    print()

    def check(label, value, goal, higher_better):
        if value is None:
            print(f"- {label}: not measured")
            return
        ok = value >= goal if higher_better else value <= goal
        print(f"- {label}: {value:.2f} (target {'≥' if higher_better else '≤'} {goal:g}) — {'met' if ok else '**short**'}")

    def ratio_of(a, b):
        return a / b if a is not None and b else None

    g = lambda t, w, n: med.get((t, w, n))
    check("sync seq write / QEMU mirror", ratio_of(g("sync", "seqwrite", "mib_s"), g("qemu", "seqwrite", "mib_s")), 2.0, True)
    raw_seq = g("raw", "seqwrite", "mib_s")
    check("sync seq write / (raw / 2)", ratio_of(g("sync", "seqwrite", "mib_s"), raw_seq / 2 if raw_seq else None), 0.8, True)
    check("sync 4 KiB QD1 p50 / QEMU mirror", ratio_of(g("sync", "randwrite_qd1", "p50_us"), g("qemu", "randwrite_qd1", "p50_us")), 0.6, False)
    check("sync 4 KiB QD32 IOPS / QEMU mirror", ratio_of(g("sync", "randwrite_qd32", "iops"), g("qemu", "randwrite_qd32", "iops")), 2.0, True)
    check("async seq write / standalone", ratio_of(g("async", "seqwrite", "mib_s"), g("standalone", "seqwrite", "mib_s")), 0.9, True)
    check("async 4 KiB QD32 IOPS / standalone", ratio_of(g("async", "randwrite_qd32", "iops"), g("standalone", "randwrite_qd32", "iops")), 0.9, True)
    check("async rpo_ms p99 (ms)", percentile(rpo, 99) if rpo else None, 5.0, False)
    # Separate layout (BENCH_LAYOUT=separate): the secondary has a device of its own, so a
    # pair is bounded by the slower of the two devices (and the link), not by one disk / 2.
    tgt_seq = g("rawtgt", "seqwrite", "mib_s")
    if raw_seq and tgt_seq:
        bound = min(raw_seq, tgt_seq)
        check("sync seq write / min(raw, rawtgt)", ratio_of(g("sync", "seqwrite", "mib_s"), bound), 0.9, True)
        check("async seq write / standalone (separate devices)",
              ratio_of(g("async", "seqwrite", "mib_s"), g("standalone", "seqwrite", "mib_s")), 0.95, True)
    print()
    pair_seq, pair_iops = g("rawpair", "seqwrite", "mib_s"), g("rawpair", "randwrite_qd32", "iops")
    r2 = lambda v: f"{v:.2f}" if v is not None else "–"
    print("Against what this disk gives each file when both are written at once (rawpair): "
          f"sync seq write {r2(ratio_of(g('sync', 'seqwrite', 'mib_s'), pair_seq))}×, "
          f"sync 4 KiB QD32 {r2(ratio_of(g('sync', 'randwrite_qd32', 'iops'), pair_iops))}×, "
          f"QEMU mirror 4 KiB QD32 {r2(ratio_of(g('qemu', 'randwrite_qd32', 'iops'), pair_iops))}×.")
    print("For reference, the QEMU mirror against the raw limit: seq write / (raw / 2) = "
          + (f"{g('qemu', 'seqwrite', 'mib_s') / (raw_seq / 2):.2f}" if raw_seq and g('qemu', 'seqwrite', 'mib_s') else "–") + ".")


# ---------------------------------------------------------------- main

def main():
    action, args = sys.argv[1], sys.argv[2:]
    if action == "free-port":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
    elif action == "cpu-ticks":
        print(cpu_ticks(args[0]))
    elif action == "fio-write-bytes":
        print(fio_job(args[0])["write"]["io_bytes"])
    elif action == "fio-mib-s":
        print(f"{fio_job(args[0])['write']['bw_bytes'] / (1 << 20):.1f}")
    elif action == "control":
        print(json.dumps(Control(args[0]).request(json.loads(args[1]))))
    elif action == "wait-connected":
        path, name, timeout = args[0], args[1], float(args[2])
        control = Control(path)
        deadline = time.monotonic() + timeout
        reply = {}
        while time.monotonic() < deadline:
            reply = control.request({"cmd": "status", "name": name})
            if (connection_state(reply) or "").lower() == "connected":
                return
            time.sleep(0.1)
        print(json.dumps(reply))
        sys.exit(1)
    elif action == "rpo-sample":
        path, name, out = args[0], args[1], args[2]
        interval = float(args[3]) if len(args) > 3 else 0.1
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        control = Control(path)
        with open(out, "w") as f:
            next_at = time.monotonic()
            while not stop:
                reply = control.request({"cmd": "status", "name": name})
                value = reply.get("rpo_ms")
                f.write(("null" if not isinstance(value, (int, float)) else str(value)) + "\n")
                f.flush()
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
    elif action == "summary":
        summary(args[0], int(args[1]), args[2:])
    else:
        sys.exit(f"pair.py: unknown action {action}")


if __name__ == "__main__":
    main()
