#!/usr/bin/env bash
# A QD1 write + fdatasync loop on a small file of BENCH_DIR's disk, running for the whole of one
# Benchmarks/pair.sh run (docs/benchmarks.md, *The activity log at QD32*): what flushes alone
# cost the pair (compare the pair's figures with a run without it), and how long one flush
# takes under the pair's load (fio reports the write's completion latency and the
# fdatasync's latency apart).
#   Benchmarks/flush-beside.sh OUT_DIR [ENV=VALUE ...]   (the settings are passed to pair.sh)
# Writes OUT_DIR/fio.json, OUT_DIR/pair.md, OUT_DIR/pair.log and prints one summary line.
set -euo pipefail
out="${1:?usage: Benchmarks/flush-beside.sh OUT_DIR [ENV=VALUE ...]}"
shift
cd "$(dirname "$0")/.."
dir="${BENCH_DIR:-$PWD/.bench}"
mkdir -p "$dir" "$out"
fio --name=flusher --filename="$dir/flusher.img" --size=64M --rw=randwrite --bs=4k --direct=1 \
    --ioengine=psync --fdatasync=1 --time_based --runtime=3600 --output-format=json --output="$out/fio.json" &
flusher=$!
sleep 1
env "$@" BENCH_RESULTS="$out/pair.md" Benchmarks/pair.sh >/dev/null 2>"$out/pair.log" || true
kill -INT "$flusher"
wait "$flusher" || true
rm -f "$dir/flusher.img"
python3 - "$out/fio.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
job = json.loads(text[text.index("{"):])["jobs"][0]
write, sync = job["write"], job["sync"]
us = lambda ns: int(ns // 1000)
print(f"flush loop: {write['total_ios']} writes; write clat p50/p90 {us(write['clat_ns']['percentile']['50.000000'])}/"
      f"{us(write['clat_ns']['percentile']['90.000000'])} us, mean {us(write['clat_ns']['mean'])} us; fdatasync p50/p90 "
      f"{us(sync['lat_ns']['percentile']['50.000000'])}/{us(sync['lat_ns']['percentile']['90.000000'])} us, mean {us(sync['lat_ns']['mean'])} us")
PY
grep -E 'QD1 p50|QD1 p99|QD32 \(IOPS' "$out/pair.md" || true
