#!/usr/bin/env python3
"""Summarizes Benchmarks/run.sh's fio JSON files into a markdown table of medians.

usage: summarize.py JSON_DIR REPEAT TARGET...
"""
import json, os, statistics, sys

ROWS = [
    # workload, direction, metric, label, higher is better
    ("seqwrite", "write", "mib_s", "seq write 1 MiB QD16 (MiB/s)", True),
    ("seqread", "read", "mib_s", "seq read 1 MiB QD16 (MiB/s)", True),
    ("randwrite_qd1", "write", "p50_us", "4 KiB randwrite QD1 p50 clat (µs)", False),
    ("randwrite_qd1", "write", "p99_us", "4 KiB randwrite QD1 p99 clat (µs)", False),
    ("randwrite_qd32", "write", "iops", "4 KiB randwrite QD32 (IOPS)", True),
    ("randread_qd32", "read", "iops", "4 KiB randread QD32 (IOPS)", True),
]
NAMES = {"raw": "file, io_uring O_DIRECT", "nbdkit": "nbdkit file cache=none", "tandemd": "tandemd"}


def metric(path, direction, name):
    with open(path) as f:
        text = f.read()
    # fio may print warnings before the JSON document.
    job = json.loads(text[text.index("{"):])["jobs"][0][direction]
    if name == "mib_s":
        return job["bw_bytes"] / (1 << 20)
    if name == "iops":
        return job["iops"]
    percentiles = job["clat_ns"].get("percentile", {})
    key = "50.000000" if name == "p50_us" else "99.000000"
    return percentiles[key] / 1000.0


def median(directory, target, workload, direction, name, repeat):
    values = []
    for round_ in range(1, repeat + 1):
        path = os.path.join(directory, f"{target}.{workload}.{round_}.json")
        if os.path.exists(path):
            values.append(metric(path, direction, name))
    return statistics.median(values) if values else None


def fmt(value):
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def main():
    directory, repeat, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    header = ["workload"] + [NAMES[t] for t in targets]
    ratio = "nbdkit" in targets and "tandemd" in targets
    if ratio:
        header.append("tandemd / nbdkit")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for workload, direction, name, label, higher_better in ROWS:
        values = {t: median(directory, t, workload, direction, name, repeat) for t in targets}
        cells = [label] + [fmt(values[t]) for t in targets]
        if ratio:
            a, b = values["tandemd"], values["nbdkit"]
            cells.append(f"{a / b:.2f}" if a and b else "–")
        print("| " + " | ".join(cells) + " |")
    print()
    print(f"Medians of {repeat} runs. Latency rows: lower is better (a ratio below 1.00 means tandemd is faster).")
    for target in targets:
        if target == "raw":
            continue
        peaks = []
        for round_ in range(1, repeat + 1):
            path = os.path.join(directory, f"{target}.rss_kib.{round_}")
            if os.path.exists(path):
                with open(path) as f:
                    text = f.read().strip()
                if text.isdigit():
                    peaks.append(int(text))
        if peaks:
            print(f"{NAMES[target]} peak RSS (VmHWM) under this load: {max(peaks) / 1024:.1f} MiB (max of {len(peaks)} runs)")


if __name__ == "__main__":
    main()
