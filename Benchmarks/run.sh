#!/usr/bin/env bash
# The benchmark matrix, in one run, on one backing file:
#   raw      fio io_uring, O_DIRECT, on the file itself (the limit)
#   nbdkit   fio nbd against `nbdkit file FILE cache=none` (the unreplicated peer)
#   tandemd  fio nbd against tandemd (release build), resource r0 standalone on the file
# Workloads: sequential write and read 1 MiB QD16 (MiB/s); 4 KiB random write QD1 (p50 and
# p99 completion latency); 4 KiB random write and read QD32 (IOPS). Each is a short
# time-based fio run, repeated; the table shows medians and tandemd/nbdkit ratios, and
# tandemd's peak RSS (VmHWM) under that load.
#
# Settings (environment):
#   BENCH_DIR      where the backing file lives; must be a real disk, not tmpfs
#                  (default: .bench/ in the repository)
#   BENCH_SIZE     backing file size (default 1G)
#   BENCH_RUNTIME  seconds per fio run (default 15); BENCH_RAMP seconds of ramp (default 2)
#   BENCH_REPEAT   repetitions, medians reported (default 3)
#   BENCH_TARGETS  subset of "raw nbdkit tandemd" (default all three)
#   BENCH_RESULTS  markdown output file (default Benchmarks/results/<UTC timestamp>.md)
# Rerun: Benchmarks/run.sh   (prints the table and writes it to the results file)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

source Benchmarks/lib/settings.sh
targets="${BENCH_TARGETS:-raw nbdkit tandemd}"
# The commit measured: taken before the build, marked when the tree has local changes.
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- Sources Package.swift 2>/dev/null; then commit="$commit+local-changes"; fi
results="${BENCH_RESULTS:-$repo/Benchmarks/results/$stamp.md}"

bench_prepare bench "$results"
if [[ " $targets " == *" tandemd "* ]]; then
    swift build -c release
    bin="$(swift build -c release --show-bin-path)"
fi

work="$(mktemp -d "$bench_dir/run.XXXXXX")"
raw_dir="$work/json"
mkdir -p "$raw_dir"
file="$work/volume.img"
server_pid=""
cleanup() {
    stop_server
    rm -f "$file"
}
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        timeout 30 tail --pid="$server_pid" -f /dev/null || kill -KILL "$server_pid"
    fi
    server_pid=""
}
trap cleanup EXIT

echo "bench: filling $size backing file $file" >&2
fio --name=fill --filename="$file" --size="$size" --rw=write --bs=1m --iodepth=16 \
    --ioengine=io_uring --direct=1 --output=/dev/null

# name | fio arguments
workloads=(
    "seqwrite|--rw=write --bs=1m --iodepth=16"
    "seqread|--rw=read --bs=1m --iodepth=16"
    "randwrite_qd1|--rw=randwrite --bs=4k --iodepth=1"
    "randwrite_qd32|--rw=randwrite --bs=4k --iodepth=32"
    "randread_qd32|--rw=randread --bs=4k --iodepth=32"
)

start_nbdkit() {
    local sock="$work/nbdkit.sock" pidfile="$work/nbdkit.pid"
    # nbdkit leaves its socket behind when it stops; the next round binds it again.
    rm -f "$pidfile" "$sock"
    nbdkit -U "$sock" -P "$pidfile" file "$file" cache=none
    for _ in $(seq 500); do [[ -s "$pidfile" ]] && break; sleep 0.01; done
    server_pid="$(cat "$pidfile")"
    target_args=(--ioengine=nbd "--uri=nbd+unix:///?socket=$sock")
}

start_tandemd() {
    local state="$work/state" control="$work/control.sock" sock="$work/r0.sock"
    rm -rf "$state" "$control" "$sock"
    server_pid="$(python3 scripts/lib/start-tandemd.py --log "$work/tandemd.log" -- \
        "$bin/tandemd" --node-name bench --state-dir "$state" --control-socket "$control")"
    "$bin/tandemctl" --socket "$control" create r0 --volume "$file" --nbd-socket "$sock" >/dev/null
    target_args=(--ioengine=nbd "--uri=nbd+unix:///r0?socket=$sock")
}

start_raw() {
    server_pid=""
    target_args=(--ioengine=io_uring --direct=1 "--filename=$file")
}

peak_rss_kib() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

for round in $(seq "$repeat"); do
    for target in $targets; do
        "start_$target"
        for entry in "${workloads[@]}"; do
            name="${entry%%|*}"
            read -r -a args <<<"${entry#*|}"
            out="$raw_dir/$target.$name.$round.json"
            echo "bench: round $round/$repeat $target $name" >&2
            if ! fio --name="$name" "${target_args[@]}" "${args[@]}" --size="$size" --numjobs=1 \
                --time_based --runtime="$runtime" --ramp_time="$ramp" --randrepeat=0 \
                --output-format=json --output="$out" 2>"$out.stderr"; then
                echo "bench: fio failed: $target $name (round $round); $(head -c 600 "$out.stderr")" >&2
                if [[ -n "$server_pid" ]] && ! kill -0 "$server_pid" 2>/dev/null; then
                    echo "bench: the $target server (pid $server_pid) is gone" >&2
                    [[ -f "$work/tandemd.log" ]] && tail -n 20 "$work/tandemd.log" >&2
                fi
                exit 1
            fi
        done
        if [[ -n "$server_pid" ]]; then
            echo "$(peak_rss_kib "$server_pid")" >"$raw_dir/$target.rss_kib.$round"
        fi
        stop_server
    done
done

{
    echo "## Benchmark $stamp"
    echo
    echo "Command: \`BENCH_SIZE=$size BENCH_RUNTIME=$runtime BENCH_REPEAT=$repeat BENCH_TARGETS=\"$targets\" Benchmarks/run.sh\`"
    echo "Commit: $commit; kernel $(uname -r);" \
        "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs));" \
        "$(fio --version); nbdkit $(nbdkit --version | cut -d' ' -f2);" \
        "filesystem $(stat -f -c %T "$bench_dir") at $bench_dir"
    echo
    python3 "$repo/Benchmarks/summarize.py" "$raw_dir" "$repeat" $targets
} | tee "$results"
echo "bench: results in $results (raw fio JSON in $raw_dir)" >&2
