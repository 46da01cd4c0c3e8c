#!/usr/bin/env bash
# Where a request's time goes: the request phase trace (tandemctl trace) under two loads,
# and what the trace costs. On backing files in BENCH_DIR:
#   1. sync pair (alpha primary, beta secondary, TLS, loopback; started as Benchmarks/pair.sh
#      starts it, initial_sync none), fio 4 KiB QD1 randwrite through alpha's NBD export:
#      a) overhead: BENCH_REPEAT rounds, each one run with the trace off and one with it on
#         (alternated, so drift hits both alike): fio p50 / p99 completion latency, IOPS, and
#         the daemons' CPU time (utime+stime from /proc/PID/stat, both nodes) per I/O; medians
#      b) the breakdown: trace on (counts reset), one run, then `tandemctl trace r0` on alpha
#         and on beta (the secondary's own receive/apply/ack)
#   2. standalone resource on the same source file, fio 4 KiB QD32 randread: the same
#      alternation with a third run per round, fio io_uring O_DIRECT on the file itself
#      (raw: what the trace's local_io phase can be compared with), then the breakdown.
# Each fio run: --ioengine=nbd --uri=nbd+unix:///r0?socket=... --rw=randwrite|randread
#   --bs=4k --iodepth=1|32 --size=SIZE --time_based --runtime=RUNTIME --randrepeat=0,
#   after an unmeasured warm-up of BENCH_RAMP seconds.
#   TRACE_SEQ=1 adds, after 1b, the breakdown of a sequential write (1 MiB, QD16) through
#      the same pair: where a throughput-bound request waits (receive, local I/O, the round
#      trip), with the daemons' CPU per I/O.
# Trace switching: tandemctl --socket CTL trace r0 --on | --off (on both nodes of the pair).
# BENCH_LAYOUT=ram puts both copies on loop devices (O_DIRECT) over files in /dev/shm, so that
#   no disk bounds the pair: what is left is the daemons, the link and the loop devices' copies
#   (needs root; the default, disk, keeps both as files in BENCH_DIR).
# Settings: BENCH_DIR, BENCH_SIZE (default 1G), BENCH_RUNTIME (default 10), BENCH_RAMP (2),
#   BENCH_REPEAT (3), BENCH_RESULTS (default Benchmarks/results/trace-<UTC timestamp>.md).
# Rerun: BENCH_DIR=/var/tmp/bench-trace Benchmarks/trace.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
BENCH_RUNTIME="${BENCH_RUNTIME:-10}"
source Benchmarks/lib/settings.sh
source Benchmarks/lib/processes.sh
results="${BENCH_RESULTS:-$repo/Benchmarks/results/trace-$stamp.md}"
helper=(python3 "$repo/Benchmarks/pair.py")
connect_timeout="${BENCH_CONNECT_TIMEOUT:-30}"

bench_prepare trace "$results"
swift build -c release
bin="$(swift build -c release --show-bin-path)"
work="$(mktemp -d "$bench_dir/trace.XXXXXX")"
src="$work/src.img"
tgt="$work/tgt.img"
ram_files=()
ram_devices=()
cleanup() {
    local device
    stop_all
    for device in "${ram_devices[@]}"; do losetup -d "$device" 2>/dev/null || true; done
    rm -f "${ram_files[@]}"
    [[ "${BENCH_LAYOUT:-disk}" == ram ]] || rm -f "$src" "$tgt"
}
trap cleanup EXIT
if [[ "${BENCH_LAYOUT:-disk}" == ram ]]; then
    for copy in src tgt; do
        ram_files+=("$(mktemp "/dev/shm/trace-$copy.XXXXXX")")
        truncate -s "$size" "${ram_files[-1]}"
        ram_devices+=("$(losetup --show -f --direct-io=on "${ram_files[-1]}")")
    done
    src="${ram_devices[0]}"
    tgt="${ram_devices[1]}"
fi

echo "trace: filling $size backing files in $work" >&2
fio --name=fill --filename="$src" --size="$size" --rw=write --bs=1m --iodepth=16 \
    --ioengine=io_uring --direct=1 --output=/dev/null
dd if="$src" of="$tgt" bs=1M iflag=direct oflag=direct status=none
sync

ctl() { local socket="$1"; shift; "$bin/tandemctl" --socket "$socket" "$@"; }

start_node() { # name control [extra args...]
    local name="$1" control="$2"
    shift 2
    python3 scripts/lib/start-tandemd.py --log "$work/$name.log" -- \
        "$bin/tandemd" --node-name "$name" --state-dir "$work/$name" --control-socket "$control" "$@"
}

start_pair() {
    local port_a port_b certs="$work/certs" node
    scripts/make-certs.sh "$certs" alpha beta >/dev/null
    port_a="$("${helper[@]}" free-port)"
    port_b="$("${helper[@]}" free-port)"
    procs+=("beta=$(start_node beta "$work/beta.ctl" --listen "127.0.0.1:$port_b" --tls-ca "$certs/ca.crt" \
        --tls-cert "$certs/beta.crt" --tls-key "$certs/beta.key")")
    procs+=("alpha=$(start_node alpha "$work/alpha.ctl" --listen "127.0.0.1:$port_a" --tls-ca "$certs/ca.crt" \
        --tls-cert "$certs/alpha.crt" --tls-key "$certs/alpha.key")")
    ctl "$work/beta.ctl" create r0 --volume "$tgt" --role secondary --peer-name alpha \
        --peer-address "127.0.0.1:$port_a" --mode sync --initial-sync none --nbd-socket "$work/beta-r0.sock" >/dev/null
    ctl "$work/alpha.ctl" create r0 --volume "$src" --role primary --peer-name beta \
        --peer-address "127.0.0.1:$port_b" --mode sync --initial-sync none --nbd-socket "$work/alpha-r0.sock" >/dev/null
    for node in beta alpha; do ctl "$work/$node.ctl" enable r0 >/dev/null 2>&1 || true; done
    for node in alpha beta; do "${helper[@]}" wait-connected "$work/$node.ctl" r0 "$connect_timeout" >/dev/null; done
}

fio_run() { # socket|raw out fio-args...  ("raw": fio io_uring O_DIRECT on the source file)
    local socket="$1" out="$2"
    shift 2
    local target=(--ioengine=nbd "--uri=nbd+unix:///r0?socket=$socket" --size="$size" --randrepeat=0 --time_based)
    [[ "$socket" == raw ]] && target=(--ioengine=io_uring --direct=1 "--filename=$src" --size="$size" --randrepeat=0 --time_based)
    fio --name=warmup "${target[@]}" "$@" --runtime="$ramp" --output=/dev/null
    local before
    before="$(daemon_ticks)"
    fio --name=run "${target[@]}" "$@" --runtime="$runtime" --output-format=json --output="$out"
    echo $(($(daemon_ticks) - before)) >"$out.ticks"
}

# fio JSON [daemon CPU ticks] -> "iops p50_us p99_us [cpu_us_per_io]" (completion latency of
# the run's reads or writes; CPU: utime+stime of every daemon over the measured run)
fio_figures() {
    python3 - "$@" <<'EOF'
import json, os, sys
text = open(sys.argv[1]).read()
job = json.loads(text[text.index("{"):])["jobs"][0]
side = job["write"] if job["write"]["io_bytes"] > 0 else job["read"]
pct = side["clat_ns"]["percentile"]
line = f'{side["iops"]:.0f} {pct["50.000000"] / 1000:.1f} {pct["99.000000"] / 1000:.1f}'
if len(sys.argv) > 2 and side["total_ios"] > 0:
    line += f' {int(sys.argv[2]) * 1e6 / os.sysconf("SC_CLK_TCK") / side["total_ios"]:.1f}'
print(line)
EOF
}

daemon_ticks() { # sum of utime+stime of every running daemon
    local entry total=0
    for entry in "${procs[@]}"; do total=$((total + $("${helper[@]}" cpu-ticks "${entry##*=}"))); done
    echo "$total"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

alternate() { # label socket "ctl sockets" "states" fio-args...  (states: off on [raw])
    local label="$1" socket="$2" controls="$3" states="$4" round state control
    shift 4
    for round in $(seq "$repeat"); do
        for state in $states; do
            echo "trace: $label round $round/$repeat, $state" >&2
            if [[ "$state" == raw ]]; then
                fio_run raw "$work/$label.$state.$round.json" "$@"
            else
                for control in $controls; do ctl "$control" trace r0 "--$state" >/dev/null; done
                fio_run "$socket" "$work/$label.$state.$round.json" "$@"
            fi
            echo "$state $round $(fio_figures "$work/$label.$state.$round.json" "$(cat "$work/$label.$state.$round.json.ticks")")" \
                >>"$work/$label.figures"
        done
    done
    {
        echo "| $label: trace off / on (raw: fio on the file) | IOPS | p50 µs | p99 µs | daemon CPU µs per I/O | rounds (IOPS p50 p99 CPU) |"
        echo "|---|---|---|---|---|---|"
        for state in $states; do
            local rows
            rows="$(grep "^$state " "$work/$label.figures")"
            echo "| $state | $(awk '{print $3}' <<<"$rows" | median) | $(awk '{print $4}' <<<"$rows" | median) |" \
                "$(awk '{print $5}' <<<"$rows" | median) | $(awk '{print $6}' <<<"$rows" | median) |" \
                "$(awk '{printf "%s%s %s %s %s", (NR > 1 ? "; " : ""), $3, $4, $5, $6}' <<<"$rows") |"
        done
        echo
    } >>"$results"
}

breakdown() { # label socket "node=ctl ..." fio-args...
    local label="$1" socket="$2" nodes="$3" entry
    shift 3
    for entry in $nodes; do ctl "${entry#*=}" trace r0 --on >/dev/null; done
    echo "trace: $label breakdown" >&2
    fio_run "$socket" "$work/$label.breakdown.json" "$@"
    {
        echo "$label with the trace on, fio: IOPS p50 µs p99 µs CPU µs/I/O = $(fio_figures "$work/$label.breakdown.json" "$(cat "$work/$label.breakdown.json.ticks")")"
        echo
        for entry in $nodes; do
            echo "\`tandemctl trace r0\` on ${entry%%=*}:"
            echo '```'
            ctl "${entry#*=}" trace r0
            echo '```'
            ctl "${entry#*=}" --json trace r0 >"$work/$label.${entry%%=*}.trace.json"
        done
        echo
    } >>"$results"
}

{
    echo "# Request phase trace, $stamp"
    echo
    echo "$(nproc) CPUs, $(uname -r); layout ${BENCH_LAYOUT:-disk}; size $size, runtime ${runtime} s, warm-up ${ramp} s, $repeat rounds; $(git rev-parse --short HEAD)"
    echo
} >"$results"

start_pair
qd1=(--rw=randwrite --bs=4k --iodepth=1)
alternate sync_qd1_randwrite "$work/alpha-r0.sock" "$work/alpha.ctl $work/beta.ctl" "off on" "${qd1[@]}"
breakdown sync_qd1_randwrite "$work/alpha-r0.sock" "alpha=$work/alpha.ctl beta=$work/beta.ctl" "${qd1[@]}"
if [[ "${TRACE_SEQ:-0}" == 1 ]]; then
    breakdown sync_qd16_seqwrite "$work/alpha-r0.sock" "alpha=$work/alpha.ctl beta=$work/beta.ctl" \
        --rw=write --bs=1m --iodepth=16
fi
stop_all

procs+=("standalone=$(start_node standalone "$work/standalone.ctl")")
ctl "$work/standalone.ctl" create r0 --volume "$src" --nbd-socket "$work/standalone-r0.sock" >/dev/null
qd32=(--rw=randread --bs=4k --iodepth=32)
alternate standalone_qd32_randread "$work/standalone-r0.sock" "$work/standalone.ctl" "off on raw" "${qd32[@]}"
breakdown standalone_qd32_randread "$work/standalone-r0.sock" "standalone=$work/standalone.ctl" "${qd32[@]}"
stop_all

cat "$results"
echo "trace: results in $results; raw fio and trace JSON in $work" >&2
