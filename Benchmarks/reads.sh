#!/usr/bin/env bash
# NBD reads against the disk (issue 15 item 3): 4 KiB QD32 random reads and 1 MiB QD16
# sequential reads, through tandemd (standalone, and a sync pair's primary with
# read_balancing prefer-local) against fio on the file itself, with the CPU each side spends
# per read. Release builds; on backing files in BENCH_DIR.
#
# Targets, all run in every round, in this order (so that drift in a loaded machine hits all):
#   raw          fio --ioengine=io_uring --direct=1 --filename=SRC (the disk's limit)
#   null         nbdkit -U SOCK null size=SIZE, fio --ioengine=nbd: the same NBD client and
#                socket with a server that does no I/O at all (skipped without nbdkit). No
#                NBD server can serve fio's nbd engine faster than this on the same machine.
#   standalone   tandemd, resource r0 on SRC, fio --ioengine=nbd --uri=nbd+unix:///r0?socket=...
#   pair         a sync pair on loopback with TLS, started as Benchmarks/pair.sh starts it
#                (initial_sync none; alpha's volume SRC, beta's a copy), fio against alpha's
#                export; read_balancing prefer-local (the default), so alpha reads its own disk
# With BENCH_BASE_BIN (a directory holding another build's tandemd and tandemctl, e.g. the
# base commit's), standalone and pair run once per build in every round (base, then this
# tree): the A/B alternated.
# Each fio run: --rw=randread --bs=4k --iodepth=32 --randrepeat=0 or --rw=read --bs=1m
#   --iodepth=16, --size=SIZE --time_based --runtime=RUNTIME, after an unmeasured warm-up of
#   RAMP seconds, --output-format=json.
# CPU per I/O: the daemons' utime+stime (/proc/PID/stat; both nodes of a pair) over the
# measured run, and fio's own usr+sys (its JSON usr_cpu/sys_cpu × job_runtime), divided by
# the run's I/Os. Less sensitive to a loaded machine than IOPS: the lead's quiet rerun decides
# the ratios. The load average is recorded at the start of every round.
# Settings: BENCH_DIR, BENCH_SIZE (default 1G), BENCH_RUNTIME (default 10), BENCH_RAMP (2),
#   BENCH_REPEAT (3), BENCH_BASE_BIN, BENCH_WORKLOADS (default "randread seqread"),
#   BENCH_RESULTS (default Benchmarks/results/reads-<UTC timestamp>.md).
# Rerun: BENCH_DIR=/var/tmp/bench-reads BENCH_BASE_BIN=/path/to/base/release Benchmarks/reads.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
BENCH_RUNTIME="${BENCH_RUNTIME:-10}"
source Benchmarks/lib/settings.sh
source Benchmarks/lib/processes.sh
results="${BENCH_RESULTS:-$repo/Benchmarks/results/reads-$stamp.md}"
helper=(python3 "$repo/Benchmarks/pair.py")
connect_timeout="${BENCH_CONNECT_TIMEOUT:-30}"
workloads="${BENCH_WORKLOADS:-randread seqread}"

bench_prepare reads "$results"
swift build -c release
builds=("new=$(swift build -c release --show-bin-path)")
if [[ -n "${BENCH_BASE_BIN:-}" ]]; then
    [[ -x "$BENCH_BASE_BIN/tandemd" && -x "$BENCH_BASE_BIN/tandemctl" ]] || {
        echo "reads: $BENCH_BASE_BIN lacks tandemd or tandemctl" >&2
        exit 1
    }
    builds=("base=$BENCH_BASE_BIN" "${builds[@]}")
fi
work="$(mktemp -d "$bench_dir/reads.XXXXXX")"
src="$work/src.img"
nbdkit_pid=""
trap 'stop_all; [[ -n "$nbdkit_pid" ]] && kill "$nbdkit_pid" 2>/dev/null; rm -f "$work"/*.img' EXIT

echo "reads: filling a $size backing file in $work" >&2
fio --name=fill --filename="$src" --size="$size" --rw=write --bs=1m --iodepth=16 \
    --ioengine=io_uring --direct=1 --output=/dev/null
sync

ctl() { local bin="$1" socket="$2"; shift 2; "$bin/tandemctl" --socket "$socket" "$@"; }

# start_node BIN LABEL [extra args...]: prints the pid. The node's name is LABEL up to its
# first "-" (alpha-base is node alpha, as its certificate says).
start_node() {
    local bin="$1" label="$2"
    shift 2
    python3 scripts/lib/start-tandemd.py --log "$work/$label.log" -- \
        "$bin/tandemd" --node-name "${label%%-*}" --state-dir "$work/$label" --control-socket "$work/$label.ctl" "$@"
}

# pids of each target's daemons, "target=pid pid"
declare -A daemons

start_standalone() { # build bin
    local build="$1" bin="$2" pid
    pid="$(start_node "$bin" "sa-$build")"
    procs+=("sa-$build=$pid")
    ctl "$bin" "$work/sa-$build.ctl" create r0 --volume "$src" --nbd-socket "$work/sa-$build-r0.sock" >/dev/null
    daemons["standalone-$build"]="$pid"
}

start_pair() { # build bin
    local build="$1" bin="$2" port_a port_b certs="$work/certs" alpha beta node tgt
    tgt="$work/tgt-$build.img"
    [[ -d "$certs" ]] || scripts/make-certs.sh "$certs" alpha beta >/dev/null
    cp --sparse=never "$src" "$tgt"
    port_a="$("${helper[@]}" free-port)"
    port_b="$("${helper[@]}" free-port)"
    beta="$(start_node "$bin" "beta-$build" --listen "127.0.0.1:$port_b" --tls-ca "$certs/ca.crt" \
        --tls-cert "$certs/beta.crt" --tls-key "$certs/beta.key")"
    procs+=("beta-$build=$beta")
    alpha="$(start_node "$bin" "alpha-$build" --listen "127.0.0.1:$port_a" --tls-ca "$certs/ca.crt" \
        --tls-cert "$certs/alpha.crt" --tls-key "$certs/alpha.key")"
    procs+=("alpha-$build=$alpha")
    ctl "$bin" "$work/beta-$build.ctl" create r0 --volume "$tgt" --role secondary --peer-name alpha \
        --peer-address "127.0.0.1:$port_a" --mode sync --initial-sync none \
        --nbd-socket "$work/beta-$build-r0.sock" >/dev/null
    ctl "$bin" "$work/alpha-$build.ctl" create r0 --volume "$src" --role primary --peer-name beta \
        --peer-address "127.0.0.1:$port_b" --mode sync --initial-sync none --read-balancing prefer-local \
        --nbd-socket "$work/alpha-$build-r0.sock" >/dev/null
    for node in beta alpha; do ctl "$bin" "$work/$node-$build.ctl" enable r0 >/dev/null 2>&1 || true; done
    for node in alpha beta; do "${helper[@]}" wait-connected "$work/$node-$build.ctl" r0 "$connect_timeout" >/dev/null; done
    daemons["pair-$build"]="$alpha $beta"
}

ticks_of() { # pids... -> sum of utime+stime
    local pid total=0
    for pid in "$@"; do total=$((total + $("${helper[@]}" cpu-ticks "$pid"))); done
    echo "$total"
}

# fio_run TARGET OUT fio-args...: TARGET raw | null | standalone-BUILD | pair-BUILD
fio_run() {
    local target="$1" out="$2" socket
    shift 2
    local args=(--size="$size" --randrepeat=0 --time_based)
    case "$target" in
        raw) args+=(--ioengine=io_uring --direct=1 "--filename=$src") ;;
        null) args+=(--ioengine=nbd "--uri=nbd+unix:///?socket=$work/null.sock") ;;
        standalone-*) args+=(--ioengine=nbd "--uri=nbd+unix:///r0?socket=$work/sa-${target#standalone-}-r0.sock") ;;
        pair-*) args+=(--ioengine=nbd "--uri=nbd+unix:///r0?socket=$work/alpha-${target#pair-}-r0.sock") ;;
    esac
    fio --name=warmup "${args[@]}" "$@" --runtime="$ramp" --output=/dev/null
    local pids=(${daemons[$target]:-}) before=0
    [[ ${#pids[@]} -gt 0 ]] && before="$(ticks_of "${pids[@]}")"
    fio --name=run "${args[@]}" "$@" --runtime="$runtime" --output-format=json --output="$out"
    local after=0
    [[ ${#pids[@]} -gt 0 ]] && after="$(ticks_of "${pids[@]}")"
    echo $((after - before)) >"$out.ticks"
}

# fio JSON, daemon ticks, unit (IOPS | MiB/s) -> "rate p50_us fio_cpu_us daemon_cpu_us" (rate: IOPS for 4 KiB,
# MiB/s for 1 MiB; CPU per I/O)
fio_figures() {
    python3 - "$@" <<'EOF'
import json, os, sys
text = open(sys.argv[1]).read()
job = json.loads(text[text.index("{"):])["jobs"][0]
side = job["read"]
ios = max(side["total_ios"], 1)
rate = side["iops"] if sys.argv[3] == "IOPS" else side["bw"] / 1024
fio_cpu = (job["usr_cpu"] + job["sys_cpu"]) / 100 * job["job_runtime"] * 1000 / ios
daemon_cpu = int(sys.argv[2]) * 1e6 / os.sysconf("SC_CLK_TCK") / ios
print(f'{rate:.0f} {side["clat_ns"]["percentile"]["50.000000"] / 1000:.0f} {fio_cpu:.2f} {daemon_cpu:.2f}')
EOF
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

targets=(raw)
if command -v nbdkit >/dev/null; then
    nbdkit -f -U "$work/null.sock" null size="$size" >/dev/null 2>&1 &
    nbdkit_pid=$!
    for _ in $(seq 100); do [[ -S "$work/null.sock" ]] && break; sleep 0.1; done
    targets+=(null)
fi
for entry in "${builds[@]}"; do
    start_standalone "${entry%%=*}" "${entry#*=}"
    start_pair "${entry%%=*}" "${entry#*=}"
done
for entry in "${builds[@]}"; do targets+=("standalone-${entry%%=*}"); done
for entry in "${builds[@]}"; do targets+=("pair-${entry%%=*}"); done

{
    echo "# NBD reads against the disk, $stamp"
    echo
    echo "$(nproc) CPUs, $(uname -r); size $size, runtime ${runtime} s, warm-up ${ramp} s, $repeat rounds;" \
        "this tree $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')${BENCH_BASE_BIN:+, base build $BENCH_BASE_BIN}"
    echo
} >"$results"

for round in $(seq "$repeat"); do
    echo "round $round load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$work/load"
    for workload in $workloads; do
        case "$workload" in
            randread) fio_args=(--rw=randread --bs=4k --iodepth=32) unit=IOPS ;;
            seqread) fio_args=(--rw=read --bs=1m --iodepth=16) unit=MiB/s ;;
            *) echo "reads: unknown workload $workload" >&2; exit 1 ;;
        esac
        for target in "${targets[@]}"; do
            echo "reads: round $round/$repeat, $workload, $target" >&2
            out="$work/$workload.$target.$round.json"
            fio_run "$target" "$out" "${fio_args[@]}"
            echo "$workload $target $round $(fio_figures "$out" "$(cat "$out.ticks")" "$unit")" >>"$work/figures"
        done
    done
done

{
    echo "Load average (1, 5, 15 min) at the start of each round: $(awk '{printf "%s%s %s %s", (NR > 1 ? "; " : ""), $4, $5, $6}' "$work/load")"
    echo
    for workload in $workloads; do
        unit="IOPS"
        [[ "$workload" == seqread ]] && unit="MiB/s"
        raw_median="$(awk -v w="$workload" '$1 == w && $2 == "raw" {print $4}' "$work/figures" | median)"
        echo "| $workload | $unit (median) | / raw | p50 µs | fio CPU µs per I/O | daemon CPU µs per I/O | rounds ($unit, fio CPU, daemon CPU) |"
        echo "|---|---|---|---|---|---|---|"
        for target in "${targets[@]}"; do
            rows="$(awk -v w="$workload" -v t="$target" '$1 == w && $2 == t' "$work/figures")"
            rate="$(awk '{print $4}' <<<"$rows" | median)"
            echo "| $target | $rate | $(awk -v a="$rate" -v b="$raw_median" 'BEGIN {printf "%.2f", a / b}') |" \
                "$(awk '{print $5}' <<<"$rows" | median) | $(awk '{print $6}' <<<"$rows" | median) |" \
                "$(awk '{print $7}' <<<"$rows" | median) |" \
                "$(awk '{printf "%s%s %s %s", (NR > 1 ? "; " : ""), $4, $6, $7}' <<<"$rows") |"
        done
        echo
    done
} >>"$results"

cat "$results"
echo "reads: results in $results; fio JSON in $work" >&2
