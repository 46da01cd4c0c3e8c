#!/usr/bin/env bash
# Read balancing benchmark (issue 16 §4): sync 4 KiB random read IOPS of a pair's primary with
# read_balancing prefer-local, then round-robin, then prefer-remote (switched live with `set`
# on the same pair, so both copies hold the same data and the same cache state).
#
# Exact commands (WORK = a fresh BENCH_DIR/readbalance.XXXXXX, SRC/TGT = WORK/src.img and
# WORK/tgt.img, each BENCH_SIZE of random data, TGT a copy of SRC; certificates from
# scripts/make-certs.sh WORK/certs alpha beta; release build):
#   tandemd --node-name beta  --state-dir WORK/beta  --control-socket WORK/beta.ctl \
#     --listen 127.0.0.1:PORT_B --tls-ca WORK/certs/ca.crt --tls-cert WORK/certs/beta.crt --tls-key WORK/certs/beta.key
#   (alpha likewise on PORT_A)
#   tandemctl --socket WORK/beta.ctl create r0 --volume TGT --role secondary --peer-name alpha \
#     --peer-address 127.0.0.1:PORT_A --mode sync --initial-sync none --nbd-socket WORK/beta-r0.sock
#   tandemctl --socket WORK/alpha.ctl create r0 --volume SRC --role primary --peer-name beta \
#     --peer-address 127.0.0.1:PORT_B --mode sync --initial-sync none --nbd-socket WORK/alpha-r0.sock
#   tandemctl ... enable r0 (both), wait for Connected
#   for POLICY in prefer-local round-robin prefer-remote:
#     tandemctl --socket WORK/alpha.ctl set r0 read_balancing=POLICY
#     fio --name=rr --ioengine=nbd --uri='nbd+unix:///r0?socket=WORK/alpha-r0.sock' \
#       --rw=randread --bs=4k --iodepth=32 --size=BENCH_SIZE --time_based --runtime=BENCH_RUNTIME \
#       --ramp_time=BENCH_RAMP --output-format=json
#   and the primary's status read_routing.reads_served_by_peer before and after.
# Settings: BENCH_DIR (real disk, default .bench/), BENCH_SIZE (default 256M), BENCH_RUNTIME
# (default 10), BENCH_RAMP (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
source Benchmarks/lib/tls-pair.sh
size="${BENCH_SIZE:-256M}"
runtime="${BENCH_RUNTIME:-10}"
ramp="${BENCH_RAMP:-2}"
tls_pair_start readbalance "$size"
tls_pair_create sync
for _ in $(seq 300); do
    ctl alpha status r0 --json 2>/dev/null | grep -q '"peer_disk_state":"UpToDate"' && break
    sleep 0.1
done
served() { ctl alpha --json status r0 > "$work/status.json"; python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["read_routing"]["reads_served_by_peer"])' "$work/status.json"; }
echo "| read_balancing | 4 KiB randread QD32 IOPS | reads served by the peer |"
echo "|---|---:|---:|"
for policy in prefer-local round-robin prefer-remote; do
    ctl alpha set r0 "read_balancing=$policy" >/dev/null
    before="$(served)"
    fio --name=rr --ioengine=nbd --uri="nbd+unix:///r0?socket=$work/alpha-r0.sock" --rw=randread --bs=4k \
        --iodepth=32 --size="$size" --time_based --runtime="$runtime" --ramp_time="$ramp" --output-format=json \
        --output="$work/fio-$policy.json" >/dev/null
    iops="$(python3 -c 'import json,sys; t=open(sys.argv[1]).read(); print(round(json.loads(t[t.index("{"):])["jobs"][0]["read"]["iops"]))' "$work/fio-$policy.json")"
    after="$(served)"
    echo "| $policy | $iops | $((after - before)) |"
done
