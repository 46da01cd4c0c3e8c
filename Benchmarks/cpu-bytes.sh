#!/usr/bin/env bash
# CPU per payload byte on both nodes of a sync pair (issue 15 item 4, issue 13's resync),
# counted rather than timed, so that a loaded machine still gives comparable figures:
# `perf stat -e task-clock,instructions -p PID` of each tandemd around each phase, per GiB.
# Phases, on one pair (release build in BIN, TLS on, loopback; SRC a file in BENCH_DIR, TGT a
# loop device over a file in /dev/shm, as Benchmarks/resync.sh's separate layout):
#   resync     alpha primary --initial-sync full --resync-rate 1TiB, beta secondary; from
#              `enable` on alpha until peer_disk_state UpToDate and out_of_sync_bytes 0
#              (also reported: wall seconds and MiB/s, which the load of the machine moves)
#   seqwrite   fio --ioengine=nbd --rw=write --bs=1m --iodepth=16 over the whole volume
#   randwrite  fio --ioengine=nbd --rw=randwrite --bs=4k --iodepth=32, CPU_RAND_BYTES of it
# then both daemons stop and `cmp SRC TGT` must find the copies identical (exit 1 otherwise).
# PERF_RECORD=1 also writes `perf record -g` profiles of each daemon per phase into WORK.
# SCHED=1 also prints, per phase, each daemon thread's CPU, run-queue wait and sleep (from
# /proc/PID/task/TID/schedstat: sleep is time waiting for work, run-queue wait is time
# runnable with no CPU free) and the CPU of the machine's kernel worker threads (kworker,
# ksoftirqd, loop: the loop device's copy into /dev/shm runs there; an upper bound, since
# it counts every kworker of the machine).
#
# usage: Benchmarks/cpu-bytes.sh BIN LABEL   (BIN holds tandemd and tandemctl)
# Settings: BENCH_DIR (default .bench/), CPU_VOLUME (default 1G), CPU_RAND_BYTES (default
# 256M), PERF_RECORD. Prints one line: LABEL, then per phase and node s/GiB and Ginstr/GiB.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
bin="$1"
label="$2"
bench_dir="${BENCH_DIR:-$repo/.bench}"
volume_size="${CPU_VOLUME:-1G}"
rand_bytes="${CPU_RAND_BYTES:-256M}"
volume_bytes="$(numfmt --from=iec "$volume_size")"
rand_bytes_n="$(numfmt --from=iec "$rand_bytes")"
helper=(python3 "$repo/Benchmarks/catchup.py")
free_port=(python3 "$repo/Benchmarks/pair.py" free-port)

mkdir -p "$bench_dir"
work="$(mktemp -d "$bench_dir/cpu.XXXXXX")"
src="$work/src.img"
source Benchmarks/lib/secondary-device.sh
source Benchmarks/lib/processes.sh
perf_pids=()
cleanup() {
    local pid
    for pid in "${perf_pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    stop_all
    rm -f "$src"
    tgt_cleanup
}
trap cleanup EXIT

ctl() { local node="$1"; shift; "$bin/tandemctl" --socket "$work/$node.ctl" "$@"; }
start_node() { # name port: prints the pid
    python3 scripts/lib/start-tandemd.py --log "$work/$1.log" -- \
        "$bin/tandemd" --node-name "$1" --state-dir "$work/$1" --control-socket "$work/$1.ctl" \
        --listen "127.0.0.1:$2" --tls-ca "$work/certs/ca.crt" --tls-cert "$work/certs/$1.crt" \
        --tls-key "$work/certs/$1.key"
}
# perf_start PHASE: perf stat (and perf record with PERF_RECORD=1) on both daemons.
perf_start() {
    local node pid
    perf_pids=()
    for node in alpha beta; do
        pid="$(eval echo "\$pid_$node")"
        # Also the loop's turns (io_uring_enter) and submissions, per phase in WORK/PHASE-NODE.stat.
        perf stat -x, -e task-clock,instructions,syscalls:sys_enter_io_uring_enter,io_uring:io_uring_submit_req \
            -p "$pid" -o "$work/$1-$node.stat" &
        perf_pids+=($!)
        if [[ "${PERF_RECORD:-0}" == 1 ]]; then
            perf record -q -g -F 999 -p "$pid" -o "$work/$1-$node.perf" >/dev/null 2>&1 &
            perf_pids+=($!)
        fi
    done
}
perf_stop() {
    local pid
    # A perf of a short phase may have ended already (with PERF_RECORD=1 the randwrite
    # phase's often had): that is not a failure of the run.
    for pid in "${perf_pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${perf_pids[@]}"; do wait "$pid" || true; done
    perf_pids=()
}
# sched_snap PHASE start|end: the daemons' threads' schedstat and the kernel workers' CPU ticks.
sched_snap() {
    [[ "${SCHED:-0}" == 1 ]] || return 0
    local out="$work/$1-$2.sched" node pid task comm line fields ticks=0
    for node in alpha beta; do
        pid="$(eval echo "\$pid_$node")"
        for task in /proc/"$pid"/task/*; do
            { echo "$node ${task##*/} $(cat "$task/comm") $(cat "$task/schedstat")"; } 2>/dev/null || true
        done
    done >"$out"
    for task in /proc/[0-9]*/task/[0-9]*/stat; do
        { read -r line <"$task"; } 2>/dev/null || continue
        comm="${line#*(}"
        comm="${comm%%)*}"
        case "$comm" in kworker* | ksoftirqd* | loop*)
            read -ra fields <<<"${line##*) }"
            ticks=$((ticks + fields[11] + fields[12])) ;;
        esac
    done
    echo "kernel-workers $ticks $(getconf CLK_TCK) $(date +%s.%N)" >>"$out"
}
# sched_report PHASE: what sched_snap saw between start and end.
sched_report() {
    [[ "${SCHED:-0}" == 1 ]] || return 0
    awk -v phase="$1" '
        FNR == 1 { file++ }
        $1 == "kernel-workers" { workers[file] = $2 / $3 * 1000; at[file] = $4; next }
        NF == 6 { key = $1 " " $3 " " $2; cpu[file, key] = $4 / 1e6; wait[file, key] = $5 / 1e6; keys[key] = 1 }
        END {
            wall = (at[2] - at[1]) * 1000
            printf "%s: wall %.0f ms; kernel workers %.0f ms CPU\n", phase, wall, workers[2] - workers[1]
            for (key in keys) {
                if (!((1, key) in cpu) || !((2, key) in cpu)) continue
                c = cpu[2, key] - cpu[1, key]; w = wait[2, key] - wait[1, key]
                if (c < 1) continue
                printf "  %s: cpu %.0f ms (%.0f %%), run-queue wait %.0f ms (%.0f %%), sleep %.0f ms (%.0f %%)\n",
                    key, c, 100 * c / wall, w, 100 * w / wall, wall - c - w, 100 * (wall - c - w) / wall
            }
        }' "$work/$1-start.sched" "$work/$1-end.sched" >&2
}
# per_gib PHASE NODE BYTES: "s/GiB Ginstr/GiB" from the phase's perf stat.
per_gib() {
    awk -F, -v b="$3" '
        $3 == "task-clock" { ms = $1 }
        $3 ~ /^instructions/ { ins = $1 }
        END { g = b / 1073741824; printf "%.3f %.2f", ms / 1000 / g, ins / 1e9 / g }' "$work/$1-$2.stat"
}

fio --name=fill --filename="$src" --size="$volume_size" --rw=write --bs=1m --iodepth=16 \
    --ioengine=io_uring --direct=1 --refill_buffers --output=/dev/null
tgt_device_make "$volume_size" tandem-cpu-tgt
scripts/make-certs.sh "$work/certs" alpha beta >/dev/null
port_a="$("${free_port[@]}")"
port_b="$("${free_port[@]}")"
pid_b="$(start_node beta "$port_b")"
procs+=("beta=$pid_b")
pid_a="$(start_node alpha "$port_a")"
procs+=("alpha=$pid_a")
pid_alpha="$pid_a"
pid_beta="$pid_b"
ctl beta create r0 --volume "$tgt" --role secondary --peer-name alpha --peer-address "127.0.0.1:$port_a" \
    --mode sync --nbd-socket "$work/beta-r0.sock" >/dev/null
ctl alpha create r0 --volume "$src" --role primary --peer-name beta --peer-address "127.0.0.1:$port_b" \
    --mode sync --initial-sync full --resync-rate 1099511627776 --nbd-socket "$work/alpha-r0.sock" >/dev/null
ctl beta enable r0 >/dev/null 2>&1 || true

perf_start resync
sched_snap resync start
t0="$(date +%s.%N)"
ctl alpha enable r0 >/dev/null 2>&1 || true
"${helper[@]}" wait "$work/alpha.ctl" r0 3600 peer_disk_state=UpToDate out_of_sync_bytes=0 >/dev/null
t1="$(date +%s.%N)"
sched_snap resync end
perf_stop
resync_s="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
resync_mib="$(awk -v b="$volume_bytes" -v s="$resync_s" 'BEGIN { printf "%.0f", b / 1048576 / s }')"

uri="nbd+unix:///r0?socket=$work/alpha-r0.sock"
perf_start seqwrite
sched_snap seqwrite start
fio --name=seq --ioengine=nbd --uri="$uri" --rw=write --bs=1m --iodepth=16 --size="$volume_bytes" \
    --refill_buffers --output=/dev/null
sched_snap seqwrite end
perf_stop
perf_start randwrite
fio --name=rand --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k --iodepth=32 --size="$volume_bytes" \
    --io_size="$rand_bytes_n" --refill_buffers --randrepeat=0 --output=/dev/null
perf_stop

stop_all
sched_report resync
sched_report seqwrite
if cmp -s "$src" "$tgt"; then same=identical; else same=DIFFERENT; fi
printf '%s resync %ss %sMiB/s' "$label" "$resync_s" "$resync_mib"
for phase in resync seqwrite randwrite; do
    bytes="$volume_bytes"
    [[ "$phase" == randwrite ]] && bytes="$rand_bytes_n"
    printf ' | %s alpha %s beta %s' "$phase" "$(per_gib "$phase" alpha "$bytes")" "$(per_gib "$phase" beta "$bytes")"
done
printf ' | load %s | %s\n' "$(cut -d' ' -f1 /proc/loadavg)" "$same"
if [[ "${PERF_RECORD:-0}" == 1 ]]; then
    echo "profiles in $work" >&2
    trap - EXIT
    stop_all
    rm -f "$src"
    tgt_cleanup
fi
[[ "$same" == identical ]]
