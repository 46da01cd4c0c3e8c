#!/usr/bin/env bash
# The data path's per-byte checksums (CRC32C of ReadReply payloads and of the staging journal's
# records) measured where they run: a sequential remote read and a staged catch-up, each with
# both daemons' CPU time (utime + stime from /proc/PID/stat), on one sync pair (release build,
# TLS on, loopback). Compare two builds by running the script from each checkout in turn.
#
# Exact commands (WORK = a fresh BENCH_DIR/crcpath.XXXXXX; SRC/TGT = WORK/src.img and
# WORK/tgt.img, BENCH_SIZE of random data each, TGT a copy of SRC; certificates from
# scripts/make-certs.sh WORK/certs alpha beta):
#   tandemd --node-name beta --state-dir WORK/beta --control-socket WORK/beta.ctl \
#     --listen 127.0.0.1:PORT_B --tls-ca WORK/certs/ca.crt --tls-cert WORK/certs/beta.crt \
#     --tls-key WORK/certs/beta.key                                      (alpha likewise)
#   tandemctl --socket WORK/beta.ctl create r0 --volume TGT --role secondary --peer-name alpha \
#     --peer-address 127.0.0.1:PORT_A --mode sync --initial-sync none --nbd-socket WORK/beta-r0.sock
#     (staging_bytes default, 256 MiB: the catch-up below is staged)
#   tandemctl --socket WORK/alpha.ctl create r0 --volume SRC --role primary ... (the same, primary)
#   enable r0 on both; wait for peer_disk_state UpToDate; set r0 read_balancing=prefer-remote
#   (read balancing applies to a sync pair whose peer is UpToDate: an async pair reads locally)
#   then BENCH_REPEAT rounds of:
#     remote read: fio --name=seq --ioengine=nbd --uri='nbd+unix:///r0?socket=WORK/alpha-r0.sock' \
#       --rw=read --bs=128k --iodepth=8 --size=BENCH_SIZE          (every byte from beta, as ReadReply)
#       (a read over 128 KiB, WireFormat.readBytesMax, is always served locally)
#     staged catch-up: tandemctl --socket WORK/alpha.ctl disable r0; fio --name=dirty \
#       --ioengine=nbd --uri=... --rw=randwrite --bs=1m --iodepth=8 --size=BENCH_SIZE \
#       --io_size=CATCHUP_WRITES --randrepeat=0; enable r0 on alpha, timed until its status shows
#       peer_disk_state UpToDate (the peer's CaughtUp: the journal is on beta's volume)
#   then cmp SRC TGT.
# Settings: BENCH_DIR (real disk, default .bench/), BENCH_SIZE (default 512M), CATCHUP_WRITES
# (default 128M, under the journal's 256 MiB with its record headers), BENCH_REPEAT (default 3).
# Output: one table row per round: remote read MiB/s and CPU seconds per GiB (alpha, beta),
# catch-up seconds and CPU seconds (alpha, beta) from the enable to UpToDate.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
source Benchmarks/lib/tls-pair.sh
size="${BENCH_SIZE:-512M}"
writes="${CATCHUP_WRITES:-128M}"
repeat="${BENCH_REPEAT:-3}"
tls_pair_start crcpath "$size"
tls_pair_create sync
up_to_date() {
    for _ in $(seq 6000); do
        ctl alpha status r0 --json 2>/dev/null | grep -q '"peer_disk_state":"UpToDate"' && return 0
        sleep 0.05
    done
    echo "crc-datapath: the peer never became UpToDate" >&2; exit 1
}
up_to_date
ctl alpha set r0 read_balancing=prefer-remote >/dev/null
cpu() { awk '{ print $14 + $15 }' "/proc/${pid_of[$1]}/stat"; }  # clock ticks
ticks="$(getconf CLK_TCK)"
now() { date +%s.%N; }
uri="nbd+unix:///r0?socket=$work/alpha-r0.sock"
echo "| round | remote read MiB/s | CPU s/GiB alpha | CPU s/GiB beta | staged catch-up s | CPU s alpha | CPU s beta |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for round in $(seq "$repeat"); do
    a0="$(cpu alpha)"; b0="$(cpu beta)"; t0="$(now)"
    fio --name=seq --ioengine=nbd --uri="$uri" --rw=read --bs=128k --iodepth=8 --size="$size" >/dev/null
    t1="$(now)"; a1="$(cpu alpha)"; b1="$(cpu beta)"
    read_row="$(python3 -c 'import sys; s,t0,t1,a0,a1,b0,b1,hz=map(float,sys.argv[1:]); g=s/(1<<30)
print(f"{s/(1<<20)/(t1-t0):.0f} | {(a1-a0)/hz/g:.2f} | {(b1-b0)/hz/g:.2f}")' \
        "$(numfmt --from=iec "$size")" "$t0" "$t1" "$a0" "$a1" "$b0" "$b1" "$ticks")"
    ctl alpha disable r0 >/dev/null
    fio --name=dirty --ioengine=nbd --uri="$uri" --rw=randwrite --bs=1m --iodepth=8 --size="$size" \
        --io_size="$writes" --randrepeat=0 >/dev/null
    a0="$(cpu alpha)"; b0="$(cpu beta)"; t0="$(now)"
    ctl alpha enable r0 >/dev/null
    up_to_date
    t1="$(now)"; a1="$(cpu alpha)"; b1="$(cpu beta)"
    catch_row="$(python3 -c 'import sys; t0,t1,a0,a1,b0,b1,hz=map(float,sys.argv[1:])
print(f"{t1-t0:.2f} | {(a1-a0)/hz:.2f} | {(b1-b0)/hz:.2f}")' "$t0" "$t1" "$a0" "$a1" "$b0" "$b1" "$ticks")"
    echo "| $round | $read_row | $catch_row |"
done
ctl alpha disable r0 >/dev/null; ctl beta disable r0 >/dev/null
cmp "$work/src.img" "$work/tgt.img" && echo "cmp: the two images are equal"
