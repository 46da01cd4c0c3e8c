#!/usr/bin/env bash
# The parted-bitmap write-ahead's cost on a disabled primary (issues 13/14: a primary that an
# ordinary `disable` stopped keeps `<name>.parted-bitmap` covering its writes, one durable
# rewrite per event-loop turn that brings new 4 MiB extents; docs/replication.md, *The union
# resync*), A/B interleaved: every round runs each build once per workload, the builds'
# order alternating round by round, each run on a fresh pair (the cost falls on a write to an
# extent the file does not cover yet, so every run starts from an empty set).
#
#   Benchmarks/parted-ab.sh ROUNDS A_BIN_DIR B_BIN_DIR
#
# A run (WORK = a fresh directory under BENCH_DIR; BIN = the build's tandemd/tandemctl):
#   truncate -s VOLUME WORK/alpha.img WORK/beta.img          (sparse)
#   tandemd --node-name beta|alpha --state-dir WORK/NODE --control-socket WORK/NODE.ctl \
#     --listen 127.0.0.1:PORT --tls-ca ... --tls-cert ... --tls-key ...
#   tandemctl create r0 (beta secondary, alpha primary) --mode sync --initial-sync none
#   enable both; wait for Connected, UpToDate; tandemctl --socket WORK/alpha.ctl disable r0
#   fio --name=w --ioengine=nbd --uri='nbd+unix:///r0?socket=WORK/alpha-r0.sock' \
#     --rw=randwrite --bs=4k --iodepth=QD --size=VOLUME --norandommap --randrepeat=0 \
#     --time_based --runtime=BENCH_RUNTIME --ramp_time=BENCH_RAMP
#   alpha's status after it (parted_file_writes, parted_held_writes, io.write_requests).
# QD is each of PARTED_QDS (default "1 32"). Settings (environment): PARTED_VOLUME (default 64G), BENCH_RUNTIME (10),
# BENCH_RAMP (0: the first writes after the disable, where the cost is, are measured),
# BENCH_DIR (a real disk; default .bench/). Results: BENCH_AB_DIR (default
# Benchmarks/results/parted-ab-<UTC timestamp>/): fio JSON and status per run, summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
(($# == 3)) || { sed -n '2,24p' "$0" >&2; exit 2; }
rounds="$1"
bins=("$(cd "$2" && pwd)" "$(cd "$3" && pwd)")
labels=(A B)
BENCH_RUNTIME="${BENCH_RUNTIME:-10}"
BENCH_RAMP="${BENCH_RAMP:-0}"
source Benchmarks/lib/settings.sh
volume="${PARTED_VOLUME:-64G}"
read -r -a qds <<<"${PARTED_QDS:-1 32}"
out="${BENCH_AB_DIR:-$repo/Benchmarks/results/parted-ab-$stamp}"
helper=(python3 "$repo/Benchmarks/catchup.py")
free_port=(python3 "$repo/Benchmarks/pair.py" free-port)
mkdir -p "$bench_dir" "$out"
work="$(mktemp -d "$bench_dir/parted.XXXXXX")"
scripts/make-certs.sh "$work/certs" alpha beta >/dev/null
source Benchmarks/lib/processes.sh
trap 'stop_all; rm -rf "$work"' EXIT
printf 'A=%s\nB=%s\nvolume=%s\nruntime=%s\nramp=%s\n' "${bins[0]}" "${bins[1]}" "$volume" "$runtime" "$ramp" >"$out/settings.env"

run_one() { # label bin qd round
    local label="$1" bin="$2" qd="$3" round="$4"
    local dir="$work/$label-qd$qd-r$round" name="$out/$label-qd$qd-r$round"
    mkdir -p "$dir"
    truncate -s "$volume" "$dir/alpha.img" "$dir/beta.img"
    local port_a port_b node pid
    port_a="$("${free_port[@]}")"; port_b="$("${free_port[@]}")"
    for node in beta alpha; do
        local port="$port_a"
        [[ "$node" == beta ]] && port="$port_b"
        pid="$(python3 scripts/lib/start-tandemd.py --log "$dir/$node.log" -- "$bin/tandemd" --node-name "$node" \
            --state-dir "$dir/$node" --control-socket "$dir/$node.ctl" --listen "127.0.0.1:$port" \
            --tls-ca "$work/certs/ca.crt" --tls-cert "$work/certs/$node.crt" --tls-key "$work/certs/$node.key")"
        procs+=("tandemd $node=$pid")
    done
    "$bin/tandemctl" --socket "$dir/beta.ctl" create r0 --volume "$dir/beta.img" --role secondary --peer-name alpha \
        --peer-address "127.0.0.1:$port_a" --mode sync --initial-sync none --nbd-socket "$dir/beta-r0.sock" >/dev/null
    "$bin/tandemctl" --socket "$dir/alpha.ctl" create r0 --volume "$dir/alpha.img" --role primary --peer-name beta \
        --peer-address "127.0.0.1:$port_b" --mode sync --initial-sync none --nbd-socket "$dir/alpha-r0.sock" >/dev/null
    for node in beta alpha; do "$bin/tandemctl" --socket "$dir/$node.ctl" enable r0 >/dev/null 2>&1 || true; done
    "${helper[@]}" wait "$dir/alpha.ctl" r0 60 connection_state=Connected peer_disk_state=UpToDate >/dev/null
    "$bin/tandemctl" --socket "$dir/alpha.ctl" disable r0 >/dev/null
    echo "parted-ab: round $round $label QD$qd (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    cut -d' ' -f1-3 /proc/loadavg >"$name.load"
    fio --name=w --ioengine=nbd "--uri=nbd+unix:///r0?socket=$dir/alpha-r0.sock" --rw=randwrite --bs=4k \
        --iodepth="$qd" --size="$volume" --norandommap --randrepeat=0 --time_based --runtime="$runtime" \
        --ramp_time="$ramp" --output-format=json --output="$name.fio.json" >/dev/null
    "${helper[@]}" status "$dir/alpha.ctl" r0 >"$name.status.json"
    stop_all
    rm -rf "$dir"
}

for round in $(seq "$rounds"); do
    order=(0 1)
    ((round % 2 == 0)) && order=(1 0)
    for qd in "${qds[@]}"; do
        for index in "${order[@]}"; do run_one "${labels[$index]}" "${bins[$index]}" "$qd" "$round"; done
    done
done

python3 - "$out" "$rounds" "${qds[@]}" <<'PY' | tee "$out/summary.md"
import json, statistics, sys
out, rounds, qds = sys.argv[1], int(sys.argv[2]), [int(q) for q in sys.argv[3:]]
def run(label, qd, r):
    fio = json.load(open(f"{out}/{label}-qd{qd}-r{r}.fio.json"))["jobs"][0]["write"]
    status = json.load(open(f"{out}/{label}-qd{qd}-r{r}.status.json"))
    pct = fio["clat_ns"]["percentile"]
    return {"iops": fio["iops"], "p50": pct["50.000000"] / 1000, "p99": pct["99.000000"] / 1000,
            "file_writes": status.get("parted_file_writes", 0), "held": status.get("parted_held_writes", 0),
            "writes": status["io"]["write_requests"], "parted": status.get("parted_bytes", 0)}
print("| QD | build | IOPS median (rounds) | p50 µs median | p99 µs median | file rewrites / held writes / writes (median) |")
print("|---|---|---|---|---|---|")
medians = {}
for qd in qds:
    for label in ("A", "B"):
        runs = [run(label, qd, r) for r in range(1, rounds + 1)]
        med = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
        medians[(qd, label)] = med
        iops = ", ".join(f"{x['iops']:,.0f}" for x in runs)
        print(f"| {qd} | {label} | {med['iops']:,.0f} ({iops}) | {med['p50']:,.0f} | {med['p99']:,.0f} | "
              f"{med['file_writes']:,.0f} / {med['held']:,.0f} / {med['writes']:,.0f} |")
for qd in qds:
    a, b = medians[(qd, "A")], medians[(qd, "B")]
    print(f"\nQD{qd}: B/A IOPS {b['iops'] / a['iops']:.2f}x, p50 {b['p50'] / a['p50']:.2f}x, p99 {b['p99'] / a['p99']:.2f}x")
PY
