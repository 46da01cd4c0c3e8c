#!/usr/bin/env bash
# NBD latency under a control-socket and metrics-scrape storm (issue 15 item 7): does the
# control plane slow the data path, and is `ping` answered under the storm?
#
# For each round and each build (alternated, A/B), a fresh daemon (or pair) with one 1 GiB
# resource r0, then Benchmarks/lib/control_storm.py: 10 s quiet, then 10 s under the storm.
#   probe   a 4 KiB NBD write then a flush (one round trip each) every 10 ms on r0's export:
#           latency from the write's send to the flush's reply
#   ping    a new control connection every 50 ms sends `ping`: latency, or `busy`
#   storm   CLIENTS control connections each sending `status` back to back, and SCRAPERS
#           connections fetching /metrics back to back
# The table: medians over rounds, but `status_age_ms max` is the largest any reply carried.
# Commands (WORK = a fresh BENCH_DIR/storm.XXXXXX):
#   standalone: tandemd --node-name alpha --state-dir WORK/state-alpha --control-socket WORK/alpha.ctl
#                 --metrics-listen 127.0.0.1:PORT_M
#               tandemctl --socket WORK/alpha.ctl create r0 --volume WORK/alpha.img --size 1GiB
#                 --nbd-socket WORK/alpha-r0.sock
#   pair:       beta likewise with --listen 127.0.0.1:PORT_B and TLS (scripts/make-certs.sh),
#               r0 --role secondary --peer-name alpha; alpha with r0 --role primary --mode sync
#               --peer-name beta --peer-address 127.0.0.1:PORT_B --initial-sync none; enable
#               both; wait for Connected. The probe and the storm go to alpha (the primary).
#   python3 Benchmarks/lib/control_storm.py run --ctl WORK/alpha.ctl --nbd WORK/alpha-r0.sock
#     --export r0 --pid ALPHA_PID --metrics 127.0.0.1:PORT_M --clients CLIENTS
#     --scrapers SCRAPERS --seconds SECONDS --out WORK/LABEL-N.json
#
# Settings (environment):
#   STORM_LAYOUT    standalone or pair (default standalone)
#   STORM_CLIENTS   status pollers (default 60; 200 shows the connection limit)
#   STORM_SCRAPERS  metrics scrapers (default 1)
#   STORM_SECONDS   length of each phase (default 10)
#   STORM_ROUNDS    rounds per build (default 3); the table shows medians over rounds
#   STORM_BINS      "label=DIR label=DIR ..." builds to compare, each DIR holding tandemd and
#                   tandemctl, alternated round by round (default: this checkout's release
#                   build, labelled "this")
#   BENCH_DIR       where the volumes live (default /dev/shm: the probe measures what the
#                   control plane adds to a request, and a disk's flush, milliseconds on a
#                   shared machine, would hide it; set it to a disk to see both)
# Rerun: Benchmarks/control-storm.sh      (prints a markdown table on stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
layout="${STORM_LAYOUT:-standalone}"
clients="${STORM_CLIENTS:-60}"
scrapers="${STORM_SCRAPERS:-1}"
seconds="${STORM_SECONDS:-10}"
rounds="${STORM_ROUNDS:-3}"
bench_dir="${BENCH_DIR:-/dev/shm}"

die() {
    echo "control-storm: $*" >&2
    exit 1
}
[[ $layout == standalone || $layout == pair ]] || die "STORM_LAYOUT must be standalone or pair, not '$layout'"
for value in "$clients" "$scrapers" "$seconds" "$rounds"; do
    [[ $value =~ ^[0-9]+$ ]] || die "STORM_CLIENTS, STORM_SCRAPERS, STORM_SECONDS, STORM_ROUNDS: integers, not '$value'"
done
scripts/setup.sh >/dev/null
mkdir -p "$bench_dir"
if [[ -n ${STORM_BINS:-} ]]; then
    read -r -a bins <<<"$STORM_BINS"
else
    swift build -c release >/dev/null || die "swift build -c release failed"
    bins=("this=$(swift build -c release --show-bin-path)")
fi
for entry in "${bins[@]}"; do
    [[ -x ${entry#*=}/tandemd && -x ${entry#*=}/tandemctl ]] || die "no tandemd and tandemctl in ${entry#*=}"
done
work="$(mktemp -d "$bench_dir/tandem-storm.XXXXXX")"
source Benchmarks/lib/processes.sh
cleanup() {
    local status=$?
    stop_all
    rm -f "$work"/*.img
    if ((status != 0)); then echo "control-storm: failed; logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
[[ $layout == standalone ]] || scripts/make-certs.sh "$work/certs" alpha beta >/dev/null

start_node() { # bin node [extra tandemd args...]
    local bin="$1" node="$2" pid
    shift 2
    pid="$(python3 scripts/lib/start-tandemd.py --log "$work/$node.log" -- "$bin/tandemd" --node-name "$node" \
        --state-dir "$work/state-$node" --control-socket "$work/$node.ctl" "$@")" ||
        die "tandemd $node did not start; see $work/$node.log"
    procs+=("$node=$pid")
    eval "pid_$node=$pid"
}

# start BIN: a fresh daemon (or pair) with r0; sets pid_alpha and metrics_port.
start() {
    local bin="$1" port_b
    rm -rf "$work"/state-* "$work"/*.img "$work"/*.ctl "$work"/*.sock
    metrics_port="$(python3 Benchmarks/pair.py free-port)"
    if [[ $layout == standalone ]]; then
        start_node "$bin" alpha --metrics-listen "127.0.0.1:$metrics_port"
        "$bin/tandemctl" --socket "$work/alpha.ctl" create r0 --volume "$work/alpha.img" --size 1GiB \
            --nbd-socket "$work/alpha-r0.sock" >/dev/null
        return
    fi
    port_b="$(python3 Benchmarks/pair.py free-port)"
    local tls=(--tls-ca "$work/certs/ca.crt")
    start_node "$bin" beta --listen "127.0.0.1:$port_b" "${tls[@]}" --tls-cert "$work/certs/beta.crt" \
        --tls-key "$work/certs/beta.key"
    start_node "$bin" alpha --metrics-listen "127.0.0.1:$metrics_port" "${tls[@]}" \
        --tls-cert "$work/certs/alpha.crt" --tls-key "$work/certs/alpha.key"
    "$bin/tandemctl" --socket "$work/beta.ctl" create r0 --volume "$work/beta.img" --size 1GiB --role secondary \
        --peer-name alpha --peer-address 127.0.0.1:1 --nbd-socket "$work/beta-r0.sock" >/dev/null
    "$bin/tandemctl" --socket "$work/alpha.ctl" create r0 --volume "$work/alpha.img" --size 1GiB --role primary \
        --mode sync --peer-name beta --peer-address "127.0.0.1:$port_b" --initial-sync none \
        --nbd-socket "$work/alpha-r0.sock" >/dev/null
    "$bin/tandemctl" --socket "$work/beta.ctl" enable r0 >/dev/null
    "$bin/tandemctl" --socket "$work/alpha.ctl" enable r0 >/dev/null
    python3 Benchmarks/pair.py wait-connected "$work/alpha.ctl" r0 30 >/dev/null || die "the pair did not connect"
}

for round in $(seq "$rounds"); do
    for entry in "${bins[@]}"; do
        label="${entry%%=*}"
        start "${entry#*=}"
        python3 Benchmarks/lib/control_storm.py run --ctl "$work/alpha.ctl" --nbd "$work/alpha-r0.sock" \
            --export r0 --pid "$pid_alpha" --metrics "127.0.0.1:$metrics_port" --clients "$clients" \
            --scrapers "$scrapers" --seconds "$seconds" --out "$work/$label-$round.json" ||
            die "round $round of $label failed"
        stop_all
        echo "control-storm: round $round of $label done" >&2
    done
done

labels=()
for entry in "${bins[@]}"; do labels+=("${entry%%=*}"); done
python3 - "$work" "$layout" "$clients" "$scrapers" "$rounds" "${labels[@]}" <<'PY'
import glob, json, statistics, sys
work, layout, clients, scrapers, rounds, *labels = sys.argv[1:]
def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")
print(f"{layout}, {clients} status pollers and {scrapers} metrics scraper(s); medians of {rounds} rounds")
print()
print("| build | phase | write+flush p50 (ms) | p99 (ms) | max (ms) | daemon CPU (%) | ping p50 (ms) | ping max (ms) | ping busy | status/s | status busy | status_age_ms max | scrapes/s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for label in labels:
    runs = [json.load(open(path)) for path in sorted(glob.glob(f"{work}/{label}-*.json"))]
    for phase in ("quiet", "storm"):
        p = [run[phase] for run in runs]
        print(f"| {label} | {phase} | {med([x['probe_ms']['p50'] for x in p]):.2f} | {med([x['probe_ms']['p99'] for x in p]):.2f} "
              f"| {med([x['probe_ms']['max'] for x in p]):.2f} | {med([x['daemon_cpu_percent'] for x in p]):.0f} "
              f"| {med([x['ping_ms']['p50'] for x in p]):.2f} | {med([x['ping_ms']['max'] for x in p]):.2f} "
              f"| {med([x['ping_ms']['busy'] for x in p]):.0f} | {med([x['status_per_s'] for x in p]):.0f} "
              f"| {med([x['status_busy'] for x in p]):.0f} | {max(x['status_age_ms_max'] for x in p)} "
              f"| {med([x['scrapes_per_s'] for x in p]):.0f} |")
PY
