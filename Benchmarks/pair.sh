#!/usr/bin/env bash
# Replicated-write benchmark, in one run, on backing files in BENCH_DIR:
#   raw         fio io_uring O_DIRECT on the source file itself (the limit; a pair writes
#               both copies to this one disk, so compare pairs against raw / 2)
#   rawtgt      the same on the secondary's copy (TGT): with BENCH_LAYOUT=separate, what the
#               secondary's own device gives
#   rawpair     the same workload on both files at once (two fio jobs, one per file, each
#               at the workload's queue depth), reported per file: what each copy of a pair
#               can get from this disk when both are written together
#   qemu        QEMU's synchronous active mirror: qemu-storage-daemon exports the source over
#               NBD to fio; blockdev-mirror copy-mode=write-blocking copies every write to a
#               target served by a separate qemu-nbd before completing it
#   standalone  tandemd (release build), resource r0 standalone on the source file
#   sync        two tandemd processes (alpha primary, beta secondary), TLS on, loopback,
#               mode sync; fio writes to alpha's NBD export
#   async       the same pair in mode async; additionally rpo_ms is sampled every 100 ms
#               while fio writes 1 MiB QD16 at half the sync seq write throughput
# Workloads (fio, each time-based, after an unmeasured warm-up run of BENCH_RAMP seconds):
#   seqwrite        --rw=write     --bs=1m --iodepth=16   MiB/s
#   randwrite_qd1   --rw=randwrite --bs=4k --iodepth=1    p50 / p99 completion latency
#   randwrite_qd32  --rw=randwrite --bs=4k --iodepth=32   IOPS
# Also CPU seconds (utime+stime from /proc/PID/stat, sampled around each measured fio run)
# per GiB written, for each daemon process. A target the tandemd build cannot run (create
# answers `unsupported`) gets a "not measured" line with the daemon's message, not numbers.
#
# Exact commands (WORK = a fresh BENCH_DIR/pair.XXXXXX; SRC = WORK/src.img, TGT = WORK/tgt.img,
# both filled, TGT a copy of SRC):
#   raw:
#     fio --ioengine=io_uring --direct=1 --filename=SRC <workload> --size=SIZE
#   rawpair (WORK/copy.0.img and copy.1.img are hard links to SRC and TGT):
#     fio --ioengine=io_uring --direct=1 --group_reporting --filename_format='WORK/copy.$jobnum.img' \
#       --numjobs=2 <workload> --size=SIZE        (MiB/s and IOPS halved: per file)
#   qemu (AIO = BENCH_QEMU_AIO, default io_uring):
#     qemu-nbd -f raw --cache=none --aio=AIO -k WORK/tgt.sock -x tgt --fork --pid-file=... TGT
#     qemu-storage-daemon \
#       --blockdev driver=file,node-name=src,filename=SRC,cache.direct=on,aio=AIO \
#       --blockdev driver=nbd,node-name=tgt,server.type=unix,server.path=WORK/tgt.sock,export=tgt \
#       --nbd-server addr.type=unix,addr.path=WORK/src.sock \
#       --export type=nbd,id=e0,node-name=src,name=src,writable=on \
#       --chardev socket,id=qmp,path=WORK/qmp.sock,server=on,wait=off --monitor chardev=qmp \
#       --pidfile ... --daemonize
#     QMP (Benchmarks/qmp.py): qmp_capabilities; blockdev-mirror {job-id m0, device src,
#       target tgt, sync full, copy-mode write-blocking, filter-node-name mirror-top}; poll
#       query-block-jobs until ready: true. Inserting the filter moves the export's backend
#       from src onto mirror-top; the script checks query-block-exports says e0 is on
#       mirror-top, so fio's writes pass through the mirror.
#     fio --ioengine=nbd --uri='nbd+unix:///src?socket=WORK/src.sock' <workload> --size=SIZE
#     After the workloads: block-job-cancel m0 force=true (a ready mirror then stops at once,
#       without a final copy pass), quit, and `cmp SRC TGT` must find them identical —
#       proof that every write was mirrored synchronously. (Checked by hand: an export added
#       on node src after the mirror started bypasses the filter, and cmp then differs.)
#   standalone:
#     tandemd --node-name bench --state-dir WORK/standalone --control-socket WORK/standalone.ctl
#     tandemctl --socket WORK/standalone.ctl create r0 --volume SRC --nbd-socket WORK/standalone-r0.sock
#     fio --ioengine=nbd --uri='nbd+unix:///r0?socket=WORK/standalone-r0.sock' ...
#   sync / async (MODE), certificates from scripts/make-certs.sh WORK/certs alpha beta:
#     tandemd --node-name beta  --state-dir WORK/MODE-beta  --control-socket WORK/MODE-beta.ctl \
#       --listen 127.0.0.1:PORT_B --tls-ca WORK/certs/ca.crt --tls-cert WORK/certs/beta.crt \
#       --tls-key WORK/certs/beta.key            (alpha likewise, PORT_A, alpha.crt/alpha.key)
#     tandemctl --socket WORK/MODE-beta.ctl create r0 --volume TGT --role secondary \
#       --peer-name alpha --peer-address 127.0.0.1:PORT_A --mode MODE --initial-sync none \
#       --nbd-socket WORK/MODE-beta-r0.sock
#     tandemctl --socket WORK/MODE-alpha.ctl create r0 --volume SRC --role primary \
#       --peer-name beta --peer-address 127.0.0.1:PORT_B --mode MODE --initial-sync none \
#       --nbd-socket WORK/MODE-alpha-r0.sock
#     tandemctl --socket ... enable r0 (both; a refusal is logged and ignored, as create may
#       already have enabled it),
#     then wait until status r0 shows connection_state Connected on both (BENCH_CONNECT_TIMEOUT)
#     fio --ioengine=nbd --uri='nbd+unix:///r0?socket=WORK/MODE-alpha-r0.sock' ...
#     async only: fio --rw=write --bs=1m --iodepth=16 --rate=<sync seq MiB/s / 2> while
#       Benchmarks/pair.py rpo-sample polls {"cmd":"status","name":"r0"} every 100 ms.
#
# Settings (environment):
#   BENCH_DIR      where the backing files live; must be a real disk, not tmpfs
#                  (default: .bench/ in the repository)
#   BENCH_SIZE     backing file size (default 1G)
#   BENCH_RUNTIME  seconds per measured fio run (default 15); BENCH_RAMP warm-up seconds (2)
#   BENCH_REPEAT   repetitions, medians reported (default 3)
#   BENCH_TARGETS  subset of "raw rawpair rawtgt qemu standalone sync async" (default all, in that order;
#                  async's rate comes from sync, so keep sync before async)
#   BENCH_QEMU_AIO io_uring or native (default io_uring)
#   BENCH_AL_EXTENTS  the sync/async primary's `al_extents` (default unset: the metadata's
#                  512; 0: no activity log), for the activity log's cost (docs/benchmarks.md)
#   BENCH_LAYOUT   shared (default): both copies on BENCH_DIR's disk, so every pair figure
#                  is bounded by one disk writing twice; separate: the secondary's copy (TGT)
#                  is a loop device over a file in /dev/shm (tmpfs: RAM), so the primary's disk
#                  writes once and async can be judged against standalone, sync against
#                  min(primary disk, secondary device, link). Needs root (losetup).
#   BENCH_SPARSE   1: the backing files are sparse (truncate, both all zeros, so identical)
#                  instead of filled, for volumes larger than the disk's room (the activity
#                  log's cost over a 64 GiB volume: docs/benchmarks.md); with BENCH_LAYOUT=
#                  separate the secondary's loop device is over a sparse /dev/shm file (RAM
#                  holds only what the run writes). Default 0.
#   BENCH_WORKLOADS  comma-separated subset of seqwrite,randwrite_qd1,randwrite_qd32
#                  (default all)
#   BENCH_RESULTS  markdown output (default Benchmarks/results/pair-<UTC timestamp>.md)
#   BENCH_SECONDARY_ARGS  extra words for the secondary's `tandemctl create` (e.g.
#                  `--group-commit-us 50000`: how the secondary's flushes on the same disk
#                  weigh on the primary's activity-log transactions)
#   BENCH_PRIMARY_ARGS  extra words for the primary's `tandemctl create` (e.g.
#                  `--metadata-path /dev/shm/x.md`: the metadata file, and so the activity
#                  log's transactions and their flushes, on another device than the volume)
#   BENCH_SECONDARY_STATE  a directory for the secondary's state directory (its metadata file,
#                  whose record a group commit writes durably) instead of WORK: with
#                  BENCH_LAYOUT=separate and a tmpfs here, nothing of the secondary's touches
#                  the primary's disk
#   BENCH_BIN      a directory holding tandemd and tandemctl built elsewhere (e.g. a release
#                  build of another commit, for an interleaved A/B); default: this tree's
#                  release build (`swift build -c release`)
# Rerun: Benchmarks/pair.sh   (prints the table and writes it to the results file)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

source Benchmarks/lib/settings.sh
targets="${BENCH_TARGETS:-raw rawpair rawtgt qemu standalone sync async}"
layout="${BENCH_LAYOUT:-shared}"
case "$layout" in shared | separate) ;;
    *) echo "pair: unknown BENCH_LAYOUT '$layout' (shared separate)" >&2; exit 2 ;;
esac
qemu_aio="${BENCH_QEMU_AIO:-io_uring}"
connect_timeout="${BENCH_CONNECT_TIMEOUT:-30}"
results="${BENCH_RESULTS:-$repo/Benchmarks/results/pair-$stamp.md}"
helper=(python3 "$repo/Benchmarks/pair.py")
qmp=(python3 "$repo/Benchmarks/qmp.py")

for target in $targets; do
    case "$target" in raw | rawpair | rawtgt | qemu | standalone | sync | async) ;;
        *) echo "pair: unknown target '$target' (raw rawpair rawtgt qemu standalone sync async)" >&2; exit 2 ;;
    esac
done

bench_prepare pair "$results"
if [[ " $targets " =~ \ (standalone|sync|async)\  ]]; then
    bench_bin pair
fi

work="$(mktemp -d "$bench_dir/pair.XXXXXX")"
raw_dir="$work/json"
mkdir -p "$raw_dir"
src="$work/src.img"
tgt="$work/tgt.img"

jobs=1  # fio jobs per run: 2 for rawpair (one per file)

# Running daemons: "label=pid" entries; all are stopped between targets.
source Benchmarks/lib/processes.sh
source Benchmarks/lib/secondary-device.sh
cleanup() {
    stop_all
    rm -f "$src"
    tgt_cleanup
}
trap cleanup EXIT

sparse="${BENCH_SPARSE:-0}"
if [[ "$sparse" == 1 ]]; then
    echo "pair: sparse $size backing files in $work" >&2
    rm -f "$src" "$tgt"
    truncate -s "$size" "$src"
    # Separate: the secondary's copy a loop device over a sparse file in /dev/shm (all zeros
    # like SRC, so identical without a copy; RAM holds only what the run writes).
    if [[ "$layout" == separate ]]; then tgt_device_make "$size" tandem-pair-tgt; else truncate -s "$size" "$tgt"; fi
else
echo "pair: filling $size backing files in $work" >&2
fio --name=fill --filename="$src" --size="$size" --rw=write --bs=1m --iodepth=16 \
    --ioengine=io_uring --direct=1 --output=/dev/null
fi
if [[ "$sparse" == 1 ]]; then
    :
elif [[ "$layout" == separate ]]; then
    # The secondary's copy on its own device: a loop device over RAM, which the kernel
    # serves with O_DIRECT like a disk.
    tgt_device_make "$size" tandem-pair-tgt
    dd if="$src" of="$tgt" bs=1M oflag=direct status=none
else
    cp --sparse=never "$src" "$tgt"
fi
sync

# name | fio arguments
workloads=(
    "seqwrite|--rw=write --bs=1m --iodepth=16"
    "randwrite_qd1|--rw=randwrite --bs=4k --iodepth=1"
    "randwrite_qd32|--rw=randwrite --bs=4k --iodepth=32"
)
if [[ -n "${BENCH_WORKLOADS:-}" ]]; then
    chosen=()
    for entry in "${workloads[@]}"; do
        [[ ",$BENCH_WORKLOADS," == *",${entry%%|*},"* ]] && chosen+=("$entry")
    done
    ((${#chosen[@]} > 0)) || { echo "pair: BENCH_WORKLOADS '$BENCH_WORKLOADS' names no workload (seqwrite randwrite_qd1 randwrite_qd32)" >&2; exit 2; }
    workloads=("${chosen[@]}")
fi

unavailable() { # target message
    echo "$2" >"$raw_dir/$1.unavailable"
    echo "pair: $1: not measured — $2" >&2
}

# ------------------------------------------------------------------ raw
start_raw() {
    target_args=(--ioengine=io_uring --direct=1 "--filename=$src")
}

start_rawtgt() {
    target_args=(--ioengine=io_uring --direct=1 "--filename=$tgt")
}

start_rawpair() {
    ln -f "$src" "$work/copy.0.img"
    ln -sf "$tgt" "$work/copy.1.img"  # a symbolic link: TGT may be a device
    target_args=(--ioengine=io_uring --direct=1 --group_reporting "--filename_format=$work/copy.\$jobnum.img")
    jobs=2
}

# ------------------------------------------------------------------ QEMU active mirror
start_qemu() {
    local nbd_pid qsd_pid node
    rm -f "$work"/qemu-*.pid "$work/tgt.sock" "$work/src.sock" "$work/qmp.sock"
    qemu-nbd -f raw --cache=none --aio="$qemu_aio" -k "$work/tgt.sock" -x tgt \
        --fork --pid-file="$work/qemu-nbd.pid" "$tgt"
    nbd_pid="$(cat "$work/qemu-nbd.pid")"
    procs+=("qemu-nbd (target)=$nbd_pid")
    qemu-storage-daemon \
        --blockdev "driver=file,node-name=src,filename=$src,cache.direct=on,aio=$qemu_aio" \
        --blockdev "driver=nbd,node-name=tgt,server.type=unix,server.path=$work/tgt.sock,export=tgt" \
        --nbd-server "addr.type=unix,addr.path=$work/src.sock" \
        --export type=nbd,id=e0,node-name=src,name=src,writable=on \
        --chardev "socket,id=qmp,path=$work/qmp.sock,server=on,wait=off" --monitor chardev=qmp \
        --pidfile "$work/qemu-qsd.pid" --daemonize
    qsd_pid="$(cat "$work/qemu-qsd.pid")"
    procs+=("qemu-storage-daemon (source, mirror)=$qsd_pid")
    echo "pair: qemu: mirroring $size (sync full) until ready" >&2
    "${qmp[@]}" "$work/qmp.sock" mirror-start src tgt mirror-top 600
    node="$("${qmp[@]}" "$work/qmp.sock" export-node e0)"
    if [[ "$node" != "mirror-top" ]]; then
        echo "pair: qemu: export e0 is on node '$node', not above the mirror filter" >&2
        exit 1
    fi
    target_args=(--ioengine=nbd "--uri=nbd+unix:///src?socket=$work/src.sock")
}

finish_qemu() { # round
    local job
    job="$("${qmp[@]}" "$work/qmp.sock" job)"
    "${qmp[@]}" "$work/qmp.sock" mirror-abandon
    "${qmp[@]}" "$work/qmp.sock" quit
    stop_all
    if cmp -s "$src" "$tgt"; then
        echo "round $1: after block-job-cancel force=true, cmp finds source and target identical (every write mirrored); last job state: $job" >>"$raw_dir/qemu.notes"
    else
        echo "round $1: **source and target DIFFER** after the mirror was abandoned; the mirror was not synchronous. Job state: $job" >>"$raw_dir/qemu.notes"
        echo "pair: qemu: source and target differ after abandoning the mirror" >&2
    fi
}

# ------------------------------------------------------------------ tandemd
ctl() { # socket args...
    local socket="$1"
    shift
    "$bin/tandemctl" --socket "$socket" "$@"
}

start_tandemd_node() { # name state control [extra args...]
    local name="$1" state="$2" control="$3"
    shift 3
    rm -rf "$state"
    python3 scripts/lib/start-tandemd.py --log "$work/$name.log" -- \
        "$bin/tandemd" --node-name "$name" --state-dir "$state" --control-socket "$control" "$@"
}

start_standalone() {
    local pid control="$work/standalone.ctl" out
    pid="$(start_tandemd_node bench "$work/standalone" "$control")" ||
        { unavailable standalone "tandemd did not start; see $work/bench.log"; return 1; }
    procs+=("tandemd=$pid")
    if ! out="$(ctl "$control" create r0 --volume "$src" --nbd-socket "$work/standalone-r0.sock" 2>&1)"; then
        unavailable standalone "tandemctl create answered: $out"
        return 1
    fi
    target_args=(--ioengine=nbd "--uri=nbd+unix:///r0?socket=$work/standalone-r0.sock")
}

start_pair() { # mode
    local mode="$1" port_a port_b pid_a pid_b out node
    local certs="$work/certs"
    if [[ ! -f "$certs/beta.key" ]]; then
        scripts/make-certs.sh "$certs" alpha beta >/dev/null ||
            { unavailable "$mode" "scripts/make-certs.sh failed"; return 1; }
    fi
    port_a="$("${helper[@]}" free-port)"
    port_b="$("${helper[@]}" free-port)"
    local beta_state="$work/$mode-beta"
    [[ -n "${BENCH_SECONDARY_STATE:-}" ]] && beta_state="$BENCH_SECONDARY_STATE/$mode-beta"
    pid_b="$(start_tandemd_node beta "$beta_state" "$work/$mode-beta.ctl" \
        --listen "127.0.0.1:$port_b" --tls-ca "$certs/ca.crt" \
        --tls-cert "$certs/beta.crt" --tls-key "$certs/beta.key")" ||
        { unavailable "$mode" "tandemd beta did not start; see $work/beta.log"; return 1; }
    procs+=("tandemd beta (secondary)=$pid_b")
    pid_a="$(start_tandemd_node alpha "$work/$mode-alpha" "$work/$mode-alpha.ctl" \
        --listen "127.0.0.1:$port_a" --tls-ca "$certs/ca.crt" \
        --tls-cert "$certs/alpha.crt" --tls-key "$certs/alpha.key")" ||
        { unavailable "$mode" "tandemd alpha did not start; see $work/alpha.log"; return 1; }
    procs+=("tandemd alpha (primary)=$pid_a")
    local beta_args=()
    [[ -n "${BENCH_SECONDARY_ARGS:-}" ]] && read -r -a beta_args <<<"$BENCH_SECONDARY_ARGS"
    if ! out="$(ctl "$work/$mode-beta.ctl" create r0 --volume "$tgt" --role secondary \
        --peer-name alpha --peer-address "127.0.0.1:$port_a" --mode "$mode" \
        --initial-sync none --nbd-socket "$work/$mode-beta-r0.sock" "${beta_args[@]}" 2>&1)"; then
        if [[ "$out" == *unsupported* ]]; then
            unavailable "$mode" "not available in this build: \`tandemctl create --role secondary\` answered: $out"
        else
            unavailable "$mode" "\`tandemctl create --role secondary\` failed: $out"
        fi
        return 1
    fi
    local al_args=()
    [[ -n "${BENCH_AL_EXTENTS:-}" ]] && al_args=(--al-extents "$BENCH_AL_EXTENTS")
    local primary_args=()
    [[ -n "${BENCH_PRIMARY_ARGS:-}" ]] && read -r -a primary_args <<<"$BENCH_PRIMARY_ARGS"
    al_args+=("${primary_args[@]}")
    if ! out="$(ctl "$work/$mode-alpha.ctl" create r0 --volume "$src" --role primary \
        --peer-name beta --peer-address "127.0.0.1:$port_b" --mode "$mode" \
        --initial-sync none --nbd-socket "$work/$mode-alpha-r0.sock" "${al_args[@]}" 2>&1)"; then
        if [[ "$out" == *unsupported* ]]; then
            unavailable "$mode" "not available in this build: \`tandemctl create --role primary\` answered: $out"
        else
            unavailable "$mode" "\`tandemctl create --role primary\` failed: $out"
        fi
        return 1
    fi
    for node in beta alpha; do
        if ! out="$(ctl "$work/$mode-$node.ctl" enable r0 2>&1)"; then
            # create may already have enabled it; the wait below decides.
            echo "pair: $mode: enable r0 on $node answered (ignored): $out" >&2
        fi
    done
    for node in alpha beta; do
        if ! out="$("${helper[@]}" wait-connected "$work/$mode-$node.ctl" r0 "$connect_timeout")"; then
            unavailable "$mode" "r0 on $node not Connected within ${connect_timeout} s; last status: $out"
            return 1
        fi
    done
    target_args=(--ioengine=nbd "--uri=nbd+unix:///r0?socket=$work/$mode-alpha-r0.sock")
}
start_sync() { start_pair sync; }
start_async() { start_pair async; }

# ------------------------------------------------------------------ measuring
cpu_snapshot() { # prints "label ticks" per process
    local entry
    for entry in "${procs[@]}"; do
        echo "${entry%=*} $("${helper[@]}" cpu-ticks "${entry##*=}")"
    done
}

# The primary's status around a measured run (sync/async: activity_log_writes,
# activity_log_held_writes and the transactions' latency are read from the difference).
save_status() { # target file
    [[ "$1" == sync || "$1" == async ]] || return 0
    "${helper[@]}" control "$work/$1-alpha.ctl" '{"cmd": "status", "name": "r0"}' >"$2" 2>/dev/null || true
}

run_fio() { # target name round fio-args...
    local target="$1" name="$2" round="$3"
    shift 3
    local out="$raw_dir/$target.$name.$round.json" before after
    echo "pair: round $round/$repeat $target $name" >&2
    fio --name="$name-warmup" "${target_args[@]}" "$@" --size="$size" --numjobs="$jobs" \
        --time_based --runtime="$ramp" --randrepeat=0 --output=/dev/null
    before="$(cpu_snapshot)"
    save_status "$target" "$raw_dir/$target.$name.$round.status-before.json"
    fio --name="$name" "${target_args[@]}" "$@" --size="$size" --numjobs="$jobs" \
        --time_based --runtime="$runtime" --randrepeat=0 \
        --output-format=json --output="$out"
    save_status "$target" "$raw_dir/$target.$name.$round.status-after.json"
    after="$(cpu_snapshot)"
    if [[ -n "$before" ]]; then
        # "label ticks" lines, same order: print label and the difference.
        paste -d '\n' <(echo "$before") <(echo "$after") |
            awk '{ t = $NF; $NF = ""; sub(/ $/, ""); if (NR % 2) { b = t } else { print $0, t - b } }' \
                >"$raw_dir/$target.$name.$round.cpu"
    fi
}

measure_rpo() { # round
    local round="$1" sync_mib rate sampler
    # Only fio's own output: the status snapshots beside it (sync.seqwrite.N.status-*.json)
    # match the same glob.
    sync_mib="$(for f in "$raw_dir"/sync.seqwrite.*.json; do
        if [[ -f "$f" && "$f" != *.status-*.json ]]; then "${helper[@]}" fio-mib-s "$f"; fi
    done | sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')"
    if [[ -z "$sync_mib" ]]; then
        echo "pair: async: no sync seq write figure measured; rpo_ms not sampled" >&2
        return 0
    fi
    rate="$(awk -v m="$sync_mib" 'BEGIN { printf "%d", m * 1048576 / 2 }')"
    echo "$rate" >"$raw_dir/async.rpo.$round.rate"
    echo "pair: round $round/$repeat async rpo_ms at $((rate >> 20)) MiB/s" >&2
    "${helper[@]}" rpo-sample "$work/async-alpha.ctl" r0 "$raw_dir/async.rpo.$round.samples" 0.1 &
    sampler=$!
    fio --name=rpo "${target_args[@]}" --rw=write --bs=1m --iodepth=16 --rate="$rate" \
        --size="$size" --numjobs="$jobs" --time_based --runtime="$runtime" \
        --output-format=json --output="$raw_dir/async.rpo.$round.json"
    kill -TERM "$sampler"
    wait "$sampler" || true
}

for round in $(seq "$repeat"); do
    for target in $targets; do
        [[ -f "$raw_dir/$target.unavailable" ]] && continue
        case "$target" in
            raw | rawpair | rawtgt | qemu) "start_$target" ;; # any failure here ends the run (set -e)
            *) # tandemd targets may be unavailable in this build; they return 1 then
                if ! "start_$target"; then
                    stop_all
                    continue
                fi
                ;;
        esac
        for entry in "${workloads[@]}"; do
            name="${entry%%|*}"
            read -r -a args <<<"${entry#*|}"
            run_fio "$target" "$name" "$round" "${args[@]}"
        done
        [[ "$target" == async ]] && measure_rpo "$round"
        if [[ "$target" == qemu ]]; then
            finish_qemu "$round"
        fi
        stop_all
        jobs=1
    done
done

{
    echo "## Pair benchmark $stamp"
    echo
    echo "Command: \`BENCH_SIZE=$size BENCH_RUNTIME=$runtime BENCH_RAMP=$ramp BENCH_REPEAT=$repeat BENCH_TARGETS=\"$targets\" BENCH_QEMU_AIO=$qemu_aio BENCH_LAYOUT=$layout BENCH_SPARSE=$sparse BENCH_WORKLOADS=${BENCH_WORKLOADS:-all} BENCH_AL_EXTENTS=${BENCH_AL_EXTENTS:-default}${BENCH_SECONDARY_STATE:+ BENCH_SECONDARY_STATE=$BENCH_SECONDARY_STATE}${BENCH_SECONDARY_ARGS:+ BENCH_SECONDARY_ARGS=\"$BENCH_SECONDARY_ARGS\"}${BENCH_PRIMARY_ARGS:+ BENCH_PRIMARY_ARGS=\"$BENCH_PRIMARY_ARGS\"} Benchmarks/pair.sh\`"
    echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)${BENCH_BIN:+ (tandemd from $BENCH_BIN)}; kernel $(uname -r);" \
        "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs));" \
        "$(fio --version); $(qemu-storage-daemon --version | head -1);" \
        "filesystem $(stat -f -c %T "$bench_dir") at $bench_dir;" \
        "layout $layout$([[ $layout == separate ]] && echo " (secondary on $tgt over $tgt_backing)"); load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    "${helper[@]}" summary "$raw_dir" "$repeat" $targets
} | tee "$results"
echo "pair: results in $results (raw fio JSON in $raw_dir)" >&2
