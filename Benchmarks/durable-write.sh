#!/usr/bin/env bash
# What one durable 4 KiB record costs on BENCH_DIR's disk (issue 13, docs/tracking.md, *What a
# miss's wait protects*): an activity-log transaction is such a record. Three ways, at QD1,
# interleaved round by round, each alone and beside a data load like the pair's (fio 4 KiB
# random writes at QD32 into a sparse 16 GiB file, O_DIRECT, never flushed):
#   plain      write only (not durable: what the record would cost with no ordering at all)
#   dsync      O_DSYNC write (RWF_DSYNC's path: one FUA write where the device has FUA,
#              else the write and a flush)
#   fdatasync  write, then fdatasync (the write and a flush)
# on a file of BENCH_DIR's filesystem and on a loop device over a file there (a loop device
# passes a flush to its backing file's fsync). Prints the devices' write_cache and fua and a
# table of p50 / mean latency per way (write + sync), and the loads' IOPS.
#   Benchmarks/durable-write.sh [ROUNDS]          (default 3; BENCH_DIR as pair.sh's)
# Needs root (losetup). Writes nothing outside BENCH_DIR and removes what it made.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
dir="${BENCH_DIR:-$PWD/.bench}"
seconds="${DURABLE_SECONDS:-5}"
mkdir -p "$dir"
work="$(mktemp -d "$dir/durable.XXXXXX")"
loop=""
load_pid=""
cleanup() {
    [[ -n "$load_pid" ]] && kill "$load_pid" 2>/dev/null && wait "$load_pid" 2>/dev/null || true
    [[ -n "$loop" ]] && losetup -d "$loop" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

fallocate -l 64M "$work/record.img"
fallocate -l 64M "$work/loop-backing.img"
loop="$(losetup --show -f "$work/loop-backing.img")"
disk="$(lsblk -no PKNAME "$(df --output=source "$dir" | tail -1)" 2>/dev/null || true)"
disk="${disk:-$(basename "$(df --output=source "$dir" | tail -1)")}"
queue() { echo "write_cache $(cat "/sys/block/$1/queue/write_cache"), fua $(cat "/sys/block/$1/queue/fua")"; }
echo "disk $disk: $(queue "$disk"); $(basename "$loop") over a file on it: $(queue "$(basename "$loop")"); kernel $(uname -r)"

measure() { # target mode -> "p50_us mean_us"
    local extra=()
    case "$2" in plain) ;; dsync) extra=(--sync=dsync) ;; fdatasync) extra=(--fdatasync=1) ;; esac
    fio --name=record --filename="$1" --size=64M --rw=randwrite --bs=4k --direct=1 --ioengine=psync \
        "${extra[@]}" --time_based --runtime="$seconds" --output-format=json 2>/dev/null | python3 -c '
import json, sys
text = sys.stdin.read()
job = json.loads(text[text.index("{"):])["jobs"][0]
write, sync = job["write"], job.get("sync", {})
# Per record: the write plus, for fdatasync, its sync (fio reports them apart).
p50 = write["clat_ns"]["percentile"]["50.000000"] + sync.get("lat_ns", {}).get("percentile", {}).get("50.000000", 0)
mean = write["clat_ns"]["mean"] + sync.get("lat_ns", {}).get("mean", 0)
print(f"{p50 / 1000:.0f} {mean / 1000:.0f}")'
}

start_load() {
    truncate -s 16G "$work/data.img"
    fio --name=data --filename="$work/data.img" --size=16G --rw=randwrite --bs=4k --direct=1 --ioengine=io_uring \
        --iodepth=32 --time_based --runtime=3600 --output-format=json --output="$work/load.json" &
    load_pid=$!
    sleep 1
}
stop_load() { # appends "load-iops N" to the results
    kill -INT "$load_pid"
    wait "$load_pid" || true
    load_pid=""
    printf 'load-iops ' >>"$results"
    python3 -c '
import json, sys
text = open(sys.argv[1]).read()
print(int(json.loads(text[text.index("{"):])["jobs"][0]["write"]["iops"]))' "$work/load.json" >>"$results"
    rm -f "$work/data.img"
}

results="$work/results"
: >"$results"
for round in $(seq "$rounds"); do
    for load in alone loaded; do
        if [[ "$load" == loaded ]]; then start_load; fi
        for target in file loop; do
            path="$work/record.img"
            if [[ "$target" == loop ]]; then path="$loop"; fi
            for mode in plain dsync fdatasync; do
                echo "$load $target $mode $(measure "$path" "$mode")" >>"$results"
            done
        done
        if [[ "$load" == loaded ]]; then stop_load; fi
    done
    echo "durable-write: round $round/$rounds done ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
done

python3 - "$results" <<'PY'
import statistics, sys
rows, loads = {}, []
for line in open(sys.argv[1]):
    words = line.split()
    if words[0] == "load-iops":
        loads.append(int(words[1]))
        continue
    rows.setdefault(tuple(words[:3]), []).append((int(words[3]), int(words[4])))
print("| beside | target | way | p50 µs, median (rounds) | mean µs, median (rounds) |")
print("|---|---|---|---|---|")
for (load, target, mode), values in rows.items():
    p50s, means = [v[0] for v in values], [v[1] for v in values]
    print(f"| {'nothing' if load == 'alone' else 'QD32 data load'} | {target} | {mode} | "
          f"{statistics.median(p50s):,.0f} ({', '.join(f'{v:,}' for v in p50s)}) | "
          f"{statistics.median(means):,.0f} ({', '.join(f'{v:,}' for v in means)}) |")
if loads:
    print(f"\nThe data load's IOPS per round: {', '.join(f'{v:,}' for v in loads)}")
PY
