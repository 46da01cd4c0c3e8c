#!/usr/bin/env bash
# Heap allocations per NBD request on the data path. tandemd (release) runs with a malloc
# counter preloaded; after a warm-up, each workload issues a fixed number of requests and the
# counter is read before and after. Connection set-up (request slots, staging buffer)
# allocates once per connection; a request should allocate nothing.
# Rerun: Benchmarks/allocations.sh     (BENCH_DIR as for run.sh; REQUESTS, default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/lib/alloc-common.sh
bench_dir="${BENCH_DIR:-$PWD/.bench}"
requests="${REQUESTS:-100000}"
scripts/setup.sh
swift build -c release >/dev/null
bin="$(swift build -c release --show-bin-path)"
work="$(mktemp -d "$bench_dir/alloc.XXXXXX")"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
alloc_build_counter "$work/malloccount.so"
LD_PRELOAD="$work/malloccount.so" "$bin/tandemd" --node-name alloc --state-dir "$work/state" \
    --control-socket "$work/control.sock" 2>"$work/log" &
pid=$!
for _ in $(seq 500); do [[ -S "$work/control.sock" ]] && break; sleep 0.01; done
"$bin/tandemctl" --socket "$work/control.sock" create r0 --volume "$work/v.img" --size 1GiB \
    --nbd-socket "$work/r0.sock" >/dev/null
uri="nbd+unix:///r0?socket=$work/r0.sock"
count() { alloc_count "$pid" "$work/log"; }
fio --name=warm --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k --iodepth=32 --size=1g --number_ios=1000 >/dev/null
echo "| workload | requests | allocations (whole run, incl. connection set-up) |"
echo "|---|---|---|"
for spec in "randwrite 4k 32" "randread 4k 32" "write 1m 16" "randwrite 4k 1"; do
    set -- $spec
    before="$(count)"
    fio --name=a --ioengine=nbd --uri="$uri" --rw="$1" --bs="$2" --iodepth="$3" --size=1g \
        --number_ios="$requests" --output-format=json --output="$work/fio.json"
    after="$(count)"
    done_ios="$(fio_total_ios "$work/fio.json")"
    echo "| $1 $2 QD$3 | $done_ios | $((after - before)) |"
done
