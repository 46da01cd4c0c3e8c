#!/usr/bin/env bash
# Resync benchmark (issue 13, "Benchmarks"), in one run, with release builds of tandemd as
# separate processes (TLS on, loopback):
#
# Part 1, an unthrottled full resync against the limits it cannot beat, all measured here:
#   read     fio --rw=read --bs=1m --iodepth=16 --ioengine=io_uring --direct=1 on SRC (the
#            primary's disk, a file in BENCH_DIR), the whole volume, MiB/s
#   write    the same with --rw=write on TGT (the secondary's own device: a loop device over a
#            file in /dev/shm unless BENCH_LAYOUT=shared puts TGT beside SRC)
#   tls      Benchmarks/lib/tlsloop.py: TLS 1.3 with the pair's certificates over loopback,
#            1 MiB sends for BENCH_RUNTIME seconds, MiB/s
#   resync   beta secondary on TGT, alpha primary on SRC (mode sync, --initial-sync full,
#            --resync-rate 1TiB: no cap), timed from `enable` on alpha until its status shows
#            peer_disk_state UpToDate and out_of_sync_bytes 0; MiB/s = volume / time; then
#            `cmp SRC TGT` (after stopping both) must find them identical
#   The ratio resync / min(read, write, tls) is the issue's figure (target >= 0.9).
#   Each limit runs alone with every CPU to itself; the resync runs all three stages at
#   once, on the same CPUs when both nodes share a host. So the run also reports what each
#   limit cost in CPU per GiB (fio's usr+sys of its job; tlsloop.py's process, sender and
#   receiver together) and the bound they imply together on this host: nproc / (read + write
#   + tls CPU s/GiB) GiB/s, capped by min(read, write, tls). It leaves out work no limit
#   measures in its own process (the loop device's copy into /dev/shm runs in kernel
#   workers), so it is an upper bound. The daemons' CPU per GiB of the resync (utime+stime
#   of both, from /proc) is reported beside it.
#
# Part 2, time to redundancy under a steady application load (resync_rate 0: the dynamic
# controller, its floor resync_rate_min at the default 32 MiB/s):
#   `disable` on alpha; fio writes RESYNC_DIRTY_PERCENT (default 10) % of the volume as random
#   4 KiB blocks (each once) through alpha's export; then, with fio writing 4 KiB random blocks
#   at RESYNC_LOAD_IOPS (default 1000) through the export all along, `enable` on alpha, timed
#   until peer_disk_state UpToDate and out_of_sync_bytes 0. Reported: dirty bytes at the enable,
#   the time, the achieved rate, and the extrapolation to a 100 GiB volume with the same share
#   dirty (dirty ÷ rate), against DRBD's default c-min-rate floor (250 KiB/s).
#   RESYNC_CATCHUP=0 skips part 2 (repeats of part 1 for a median).
#
# Settings (environment): BENCH_DIR (a real disk; default .bench/), RESYNC_VOLUME (default 4G),
# BENCH_LAYOUT (separate | shared, default separate; separate needs root for losetup and
# RESYNC_VOLUME of RAM), BENCH_RUNTIME (tls seconds, default 10), RESYNC_DIRTY_PERCENT,
# RESYNC_LOAD_IOPS, BENCH_RESULTS (markdown output, default
# Benchmarks/results/resync-<UTC timestamp>.md), BENCH_BIN (a directory holding tandemd and
# tandemctl built elsewhere, e.g. another commit's release build for an interleaved A/B;
# default: this tree's release build), RESYNC_TRACE=1 (the request trace on both nodes during
# the resync, `tandemctl trace r0` of both appended to the results and alpha's reply with the
# copy's depth samples saved beside them as `.trace.json`; docs/metrics.md, *Copy trace*).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

BENCH_RUNTIME="${BENCH_RUNTIME:-10}"
source Benchmarks/lib/settings.sh
volume_size="${RESYNC_VOLUME:-4G}"
layout="${BENCH_LAYOUT:-separate}"
dirty_percent="${RESYNC_DIRTY_PERCENT:-10}"
load_iops="${RESYNC_LOAD_IOPS:-1000}"
catchup="${RESYNC_CATCHUP:-1}"
trace="${RESYNC_TRACE:-0}"
results="${BENCH_RESULTS:-$repo/Benchmarks/results/resync-$stamp.md}"
helper=(python3 "$repo/Benchmarks/catchup.py")
free_port=(python3 "$repo/Benchmarks/pair.py" free-port)
case "$layout" in separate | shared) ;;
    *) echo "resync: unknown BENCH_LAYOUT '$layout' (separate shared)" >&2; exit 2 ;;
esac

bench_prepare resync "$results"
bench_bin resync

work="$(mktemp -d "$bench_dir/resync.XXXXXX")"
src="$work/src.img"
tgt="$work/tgt.img"
source Benchmarks/lib/secondary-device.sh
volume_bytes="$(numfmt --from=iec "$volume_size")"

source Benchmarks/lib/processes.sh
cleanup() {
    stop_all
    rm -f "$src"
    tgt_cleanup
}
trap cleanup EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }
ctl() { # node args...
    local node="$1"
    shift
    "$bin/tandemctl" --socket "$work/$node.ctl" "$@"
}
start_node() { # name port: prints the pid
    python3 scripts/lib/start-tandemd.py --log "$work/$1.log" -- \
        "$bin/tandemd" --node-name "$1" --state-dir "$work/$1" --control-socket "$work/$1.ctl" \
        --listen "127.0.0.1:$2" --tls-ca "$work/certs/ca.crt" --tls-cert "$work/certs/$1.crt" \
        --tls-key "$work/certs/$1.key"
}
fio_mib_s() { # json file: MiB/s of its first job (read or write, whichever moved bytes)
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]; d=j["read"] if j["read"]["io_bytes"] else j["write"]; print(round(d["bw_bytes"]/1048576,1))' "$1"
}
fio_cpu_s_per_gib() { # json file: usr+sys CPU seconds of its first job per GiB it moved
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]; d=j["read"] if j["read"]["io_bytes"] else j["write"]; print(round((j["usr_cpu"]+j["sys_cpu"])/100*j["job_runtime"]/1000/(d["io_bytes"]/2**30),3))' "$1"
}
daemon_cpu_ticks() { # pids...: utime+stime of the processes, in clock ticks
    local pid fields total=0
    for pid in "$@"; do
        read -ra fields <<<"$(cut -d')' -f2- "/proc/$pid/stat")"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}
# The whole machine's CPU time so far, in ticks: "total idle iowait" (every process and kernel
# thread: the loop worker's copy into tmpfs, softirqs, the daemons, the benchmark itself).
machine_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $5, $6 }' /proc/stat; }
seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

echo "resync: $volume_size volumes in $work (layout $layout)" >&2
fio --name=fill --filename="$src" --size="$volume_size" --rw=write --bs=1m --iodepth=16 \
    --ioengine=io_uring --direct=1 --refill_buffers --output=/dev/null
if [[ "$layout" == separate ]]; then
    tgt_device_make "$volume_size" tandem-resync-tgt
else
    truncate -s "$volume_size" "$tgt"
fi
scripts/make-certs.sh "$work/certs" alpha beta >/dev/null

# ------------------------------------------------------------------ part 1: the limits
echo "load average before the limits: $(load)" >"$work/loads"
fio --name=read --filename="$src" --size="$volume_size" --rw=read --bs=1m --iodepth=16 \
    --ioengine=io_uring --direct=1 --output-format=json --output="$work/read.json"
fio --name=write --filename="$tgt" --size="$volume_size" --rw=write --bs=1m --iodepth=16 \
    --ioengine=io_uring --direct=1 --output-format=json --output="$work/write.json"
read_mib="$(fio_mib_s "$work/read.json")"
write_mib="$(fio_mib_s "$work/write.json")"
tls_json="$(python3 Benchmarks/lib/tlsloop.py "$work/certs" "$runtime")"
tls_mib="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["mib_s"])' "$tls_json")"
read_cpu="$(fio_cpu_s_per_gib "$work/read.json")"
write_cpu="$(fio_cpu_s_per_gib "$work/write.json")"
tls_cpu="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["cpu_s_per_gib"])' "$tls_json")"
# The write test left TGT full of fio's data: start the resync from zeros again.
if [[ "$layout" == separate ]]; then
    blkdiscard "$tgt" 2>/dev/null || dd if=/dev/zero of="$tgt" bs=1M oflag=direct status=none || true
else
    truncate -s 0 "$tgt" && truncate -s "$volume_size" "$tgt"
fi

# ------------------------------------------------------------------ part 1: the resync
port_a="$("${free_port[@]}")"
port_b="$("${free_port[@]}")"
pid_beta="$(start_node beta "$port_b")"
procs+=("beta=$pid_beta")
pid_alpha="$(start_node alpha "$port_a")"
procs+=("alpha=$pid_alpha")
ctl beta create r0 --volume "$tgt" --role secondary --peer-name alpha --peer-address "127.0.0.1:$port_a" \
    --mode sync --nbd-socket "$work/beta-r0.sock" >/dev/null
ctl alpha create r0 --volume "$src" --role primary --peer-name beta --peer-address "127.0.0.1:$port_b" \
    --mode sync --initial-sync full --resync-rate 1099511627776 --nbd-socket "$work/alpha-r0.sock" >/dev/null
ctl beta enable r0 >/dev/null 2>&1 || true
if [[ "$trace" != 0 ]]; then
    ctl alpha trace r0 --on >/dev/null
    ctl beta trace r0 --on >/dev/null
fi
echo "load average before the resync: $(load)" >>"$work/loads"
ticks0="$(daemon_cpu_ticks "$pid_alpha" "$pid_beta")"
machine0="$(machine_ticks)"
t0="$(date +%s.%N)"
ctl alpha enable r0 >/dev/null 2>&1 || true
"${helper[@]}" wait "$work/alpha.ctl" r0 3600 peer_disk_state=UpToDate out_of_sync_bytes=0 >/dev/null
resync_s="$(seconds_since "$t0")"
ticks1="$(daemon_cpu_ticks "$pid_alpha" "$pid_beta")"
machine1="$(machine_ticks)"
if [[ "$trace" != 0 ]]; then
    { echo "alpha:"; ctl alpha trace r0 --off; echo; echo "beta:"; ctl beta trace r0 --off; } >"$work/trace.txt"
    ctl alpha trace r0 --json >"${results%.md}.trace.json"
fi
# CPUs busy and CPUs waiting for I/O (idle with I/O outstanding) over the resync, of nproc.
machine_busy="$(awk -v a="$machine0" -v b="$machine1" -v n="$(nproc)" 'BEGIN {
    split(a, x, " "); split(b, y, " "); t = y[1] - x[1]; i = y[2] - x[2]; w = y[3] - x[3]
    printf "%.2f busy, %.2f waiting for I/O", (t - i - w) / t * n, w / t * n }')"
resync_cpu="$(awk -v t="$((ticks1 - ticks0))" -v hz="$(getconf CLK_TCK)" -v b="$volume_bytes" \
    'BEGIN { printf "%.3f", t / hz / (b / 1073741824) }')"
resync_mib="$(awk -v b="$volume_bytes" -v s="$resync_s" 'BEGIN { printf "%.1f", b / 1048576 / s }')"
bound_mib="$(printf '%s\n' "$read_mib" "$write_mib" "$tls_mib" | sort -g | head -1)"
ratio="$(awk -v r="$resync_mib" -v b="$bound_mib" 'BEGIN { printf "%.2f", r / b }')"
limits_cpu="$(awk -v a="$read_cpu" -v b="$write_cpu" -v c="$tls_cpu" 'BEGIN { printf "%.3f", a + b + c }')"
shared_mib="$(awk -v n="$(nproc)" -v c="$limits_cpu" -v m="$bound_mib" \
    'BEGIN { s = n / c * 1024; if (s > m) s = m; printf "%.1f", s }')"
shared_ratio="$(awk -v r="$resync_mib" -v b="$shared_mib" 'BEGIN { printf "%.2f", r / b }')"

# ------------------------------------------------------------------ part 2: time to redundancy
if [[ "$catchup" != 0 ]]; then
    ctl alpha disable r0 >/dev/null
    dirty_bytes=$((volume_bytes * dirty_percent / 100 / 4096 * 4096))
    fio --name=dirty --ioengine=nbd --uri="nbd+unix:///r0?socket=$work/alpha-r0.sock" --rw=randwrite \
        --bs=4k --iodepth=16 --size="$volume_bytes" --io_size="$dirty_bytes" --output=/dev/null
    fio --name=load --ioengine=nbd --uri="nbd+unix:///r0?socket=$work/alpha-r0.sock" --rw=randwrite \
        --bs=4k --iodepth=4 --size="$volume_bytes" --rate_iops="$load_iops" --time_based --runtime=3600 \
        --output=/dev/null &
    load_pid=$!
    echo "load average before the catch-up: $(load)" >>"$work/loads"
    # What the disabled primary tracked (its load writes go on adding to it until the enable).
    first="$("${helper[@]}" status "$work/alpha.ctl" r0)"
    t0="$(date +%s.%N)"
    ctl alpha enable r0 >/dev/null
    "${helper[@]}" wait "$work/alpha.ctl" r0 3600 peer_disk_state=UpToDate out_of_sync_bytes=0 >/dev/null
    catchup_s="$(seconds_since "$t0")"
    kill -TERM "$load_pid"
    wait "$load_pid" || true
    marked="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("out_of_sync_bytes", -1))' "$first")"
    rate_mib="$(awk -v b="$marked" -v s="$catchup_s" 'BEGIN { printf "%.1f", b / 1048576 / s }')"
    hours_100g="$(awk -v r="$rate_mib" -v p="$dirty_percent" 'BEGIN { printf "%.2f", 102400 * p / 100 / r / 3600 }')"
    hours_drbd="$(awk -v p="$dirty_percent" 'BEGIN { printf "%.1f", 100 * 1048576 * p / 100 / 250 / 3600 }')"
fi

stop_all
if cmp -s "$src" "$tgt"; then same="identical"; else same="**DIFFERENT**"; fi

{
    echo "## Resync benchmark $stamp"
    echo
    echo "Command: \`RESYNC_VOLUME=$volume_size BENCH_LAYOUT=$layout BENCH_RUNTIME=$runtime RESYNC_DIRTY_PERCENT=$dirty_percent RESYNC_LOAD_IOPS=$load_iops RESYNC_CATCHUP=$catchup RESYNC_TRACE=$trace${BENCH_BIN:+ BENCH_BIN=$BENCH_BIN} Benchmarks/resync.sh\`"
    echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)${BENCH_BIN:+ (tandemd from $BENCH_BIN)}; kernel $(uname -r); $(nproc) CPUs;" \
        "SRC on $(stat -f -c %T "$bench_dir") at $bench_dir; TGT $([[ $layout == separate ]] && echo "on $tgt over $tgt_backing (tmpfs)" || echo "beside SRC")"
    sed 's/^/- /' "$work/loads"
    echo
    echo "| figure | value |"
    echo "|---|---|"
    echo "| primary disk read, 1 MiB QD16 O_DIRECT | $read_mib MiB/s |"
    echo "| secondary device write, 1 MiB QD16 O_DIRECT | $write_mib MiB/s |"
    echo "| TLS loopback ($(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["cipher"])' "$tls_json")) | $tls_mib MiB/s |"
    echo "| full resync of $volume_size, unthrottled | $resync_s s = $resync_mib MiB/s |"
    echo "| resync / min(read, write, TLS) | **$ratio** (target ≥ 0.9) |"
    echo "| CPU per GiB alone: read, write, TLS (sender and receiver) | $read_cpu + $write_cpu + $tls_cpu = $limits_cpu s |"
    echo "| the limits together on $(nproc) CPUs: min(limit, $(nproc) / $limits_cpu GiB/s) | $shared_mib MiB/s |"
    echo "| resync / the limits together | $shared_ratio |"
    echo "| the resync's CPU per GiB, both daemons | $resync_cpu s |"
    echo "| the whole machine during the resync, of $(nproc) CPUs | $machine_busy |"
    if [[ "$catchup" != 0 ]]; then
        echo "| catch-up of $dirty_percent % dirty ($marked bytes marked) under $load_iops IOPS of 4 KiB writes, resync_rate 0 | $catchup_s s = $rate_mib MiB/s |"
        echo "| time to redundancy, 100 GiB with $dirty_percent % dirty, at that rate | $hours_100g h |"
        echo "| the same at DRBD's default floor (c-min-rate 250 KiB/s) | $hours_drbd h |"
    fi
    echo "| cmp SRC TGT after both stopped | $same |"
    if [[ "$trace" != 0 ]]; then
        echo
        echo "Request trace of the resync (RESYNC_TRACE=1; alpha's reply in $(basename "${results%.md}.trace.json")):"
        echo
        echo '```'
        cat "$work/trace.txt"
        echo '```'
    fi
} | tee "$results"
echo "resync: results in $results (daemon logs in $work)" >&2
[[ "$same" == identical ]]
