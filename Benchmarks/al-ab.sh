#!/usr/bin/env bash
# Interleaved A/B of Benchmarks/pair.sh configurations (the activity log's cost, issue 13):
# every round runs each configuration once, in the order given, so that a machine whose
# load drifts hits them alike; then prints, per configuration, the rounds and the median of
# the QD1 p50/p99 and QD32 IOPS, and the primary's activity-log counters per run
# (Benchmarks/tools/al-status-delta.py).
#
#   Benchmarks/al-ab.sh ROUNDS LABEL='ENV=VALUE ...' [LABEL='ENV=VALUE ...' ...]
#
# Each configuration's words are environment settings for pair.sh (e.g. BENCH_BIN=DIR to run
# another build's tandemd, BENCH_AL_EXTENTS=0 for tracking off). Shared settings come from
# the environment; the defaults are the issue's 64 GiB benchmark: BENCH_SIZE=64G
# BENCH_SPARSE=1 BENCH_TARGETS=sync BENCH_WORKLOADS=randwrite_qd1,randwrite_qd32
# BENCH_RUNTIME=8 BENCH_RAMP=2 BENCH_REPEAT=1. Results: BENCH_AB_DIR (default
# Benchmarks/results/al-ab-<UTC timestamp>/), one pair.sh table per run, the counters beside
# each, and summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
(($# >= 2)) || { sed -n '2,16p' "$0" >&2; exit 2; }
rounds="$1"
shift
out="${BENCH_AB_DIR:-Benchmarks/results/al-ab-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
export BENCH_SIZE="${BENCH_SIZE:-64G}" BENCH_SPARSE="${BENCH_SPARSE:-1}" BENCH_TARGETS="${BENCH_TARGETS:-sync}"
export BENCH_WORKLOADS="${BENCH_WORKLOADS:-randwrite_qd1,randwrite_qd32}"
export BENCH_RUNTIME="${BENCH_RUNTIME:-8}" BENCH_RAMP="${BENCH_RAMP:-2}" BENCH_REPEAT=1
labels=()
for config in "$@"; do labels+=("${config%%=*}"); done

for round in $(seq "$rounds"); do
    for config in "$@"; do
        label="${config%%=*}"
        read -r -a settings <<<"${config#*=}"
        result="$out/$label-r$round.md"
        echo "al-ab: round $round/$rounds $label ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
        env "${settings[@]}" BENCH_RESULTS="$result" Benchmarks/pair.sh 2>"$out/$label-r$round.log" >/dev/null
        json="$(sed -n 's/^pair: results in .* (raw fio JSON in \(.*\))$/\1/p' "$out/$label-r$round.log")"
        python3 Benchmarks/tools/al-status-delta.py "$json" >"$out/$label-r$round.counters" || true
        rm -rf "$(dirname "$json")"
    done
done

python3 - "$out" "$rounds" "${labels[@]}" <<'EOF' | tee "$out/summary.md"
import re, statistics, sys
out, rounds, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = {"QD1 p50 (µs)": r"QD1 p50 clat \(µs\) \| ([\d,]+)", "QD1 p99 (µs)": r"QD1 p99 clat \(µs\) \| ([\d,]+)",
        "QD32 IOPS": r"QD32 \(IOPS\) \| ([\d,]+)"}
print("| configuration | " + " | ".join(f"{name}: median (rounds)" for name in rows) + " |")
print("|---|" + "---|" * len(rows))
for label in labels:
    cells = []
    for name, pattern in rows.items():
        values = []
        for round in range(1, rounds + 1):
            try:
                text = open(f"{out}/{label}-r{round}.md").read()
            except OSError:
                continue
            found = re.search(pattern, text)
            if found:
                values.append(int(found.group(1).replace(",", "")))
        cells.append(f"{statistics.median(values):,.0f} ({', '.join(f'{v:,}' for v in values)})" if values else "–")
    print(f"| {label} | " + " | ".join(cells) + " |")
print()
for label in labels:
    for round in range(1, rounds + 1):
        try:
            for line in open(f"{out}/{label}-r{round}.counters"):
                print(f"- {label} r{round} {line.strip()}")
        except OSError:
            pass
EOF
