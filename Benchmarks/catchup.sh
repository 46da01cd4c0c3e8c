#!/usr/bin/env bash
# Catch-up benchmark (issue 13, "Benchmarks"), in one run, with release builds of tandemd as
# separate processes (TLS on, loopback). The backing files are written with zeros first (fully
# allocated, so every reader below reads real blocks, not holes), in BENCH_DIR.
#
# Part 1, catch-up after writes made while the peer was away, against what people use instead.
#   An async pair (alpha primary, beta secondary, --initial-sync none: both files are zeros)
#   connects and is in sync; WORK/pre.img is a copy of beta's image then. `disable` on alpha;
#   fio writes WRITES bytes of random 4 KiB blocks (QD16, each block once) through alpha's NBD
#   export; `enable` on alpha, timed until its status shows connection_state Connected,
#   peer_disk_state UpToDate and out_of_sync_bytes 0. Recorded: that wall time, the first
#   out_of_sync_bytes after the enable, the catch-up events, alpha's
#   tandem_resynced_bytes_total / tandem_replicated_bytes_total and beta's
#   tandem_received_bytes_total deltas (payload bytes), alpha's storage reads (/proc/PID/io
#   read_bytes) and the bytes TCP acknowledged on the new link (ss bytes_acked: TLS records
#   and protocol headers included). `cmp` then checks beta's image equals alpha's. The same
#   change is then carried by:
#     rsync --inplace --no-whole-file --stats ALPHA.img WORK/pre.img   (local mode: sender and
#       receiver are two processes on a pipe; local rsync defaults to --whole-file, the flag
#       forces the delta algorithm), checked with cmp
#     nbdcopy 'nbd+unix:///r0?socket=ALPHA-NBD' WORK/full.img           (the whole volume)
#
# Part 2, async throughput while the peer is away, BENCH_REPEAT rounds of three states:
#     away        beta started again and alpha caught up (timed: the catch-up of the previous
#                 round's writes, a bitmap clean again), then beta stopped (SIGTERM); a fill
#                 (1 MiB writes to the volume's last BENCH_SIZE bytes) until alpha's status
#                 says replication_state Ahead; then the workloads
#     disabled    `disable` on alpha (replication off; writes still tracked for the next
#                 enable); the workloads; `enable` again
#     standalone  a third tandemd (node solo) with a standalone resource (no peer, nothing
#                 tracked) on its own zero-filled file of the same size; the workloads
#   Workloads, fio --ioengine=nbd --time_based --runtime=BENCH_RUNTIME after a BENCH_RAMP
#   warm-up (random offsets over the whole volume, so most writes dirty a clean bitmap block):
#     seqwrite   --rw=write --bs=1m --iodepth=16 --size=BENCH_SIZE       MiB/s
#     randwrite  --rw=randwrite --bs=4k --iodepth=16 --size=VOLUME       IOPS
#   Medians and the ratios away / disabled and away / standalone.
#
# Exact commands (WORK = a fresh BENCH_DIR/catchup.XXXXXX; A = WORK/alpha.img, B = WORK/beta.img,
# C = WORK/solo.img):
#   fio --name=zero --filename=A --rw=write --bs=1m --iodepth=16 --ioengine=io_uring --direct=1 \
#     --zero_buffers --size=VOLUME        (B and C likewise)
#   scripts/make-certs.sh WORK/certs alpha beta
#   tandemd --node-name beta --state-dir WORK/beta --control-socket WORK/beta.ctl \
#     --listen 127.0.0.1:PORT_B --tls-ca WORK/certs/ca.crt --tls-cert WORK/certs/beta.crt \
#     --tls-key WORK/certs/beta.key --metrics-listen 127.0.0.1:MPORT_B   (alpha likewise)
#   tandemctl --socket WORK/beta.ctl create r0 --volume B --role secondary --peer-name alpha \
#     --peer-address 127.0.0.1:PORT_A --mode async --initial-sync none --nbd-socket WORK/beta-r0.sock
#   tandemctl --socket WORK/alpha.ctl create r0 --volume A --role primary --peer-name beta \
#     --peer-address 127.0.0.1:PORT_B --mode async --initial-sync none --nbd-socket WORK/alpha-r0.sock
#   tandemctl ... enable r0 (both; a refusal is ignored: create may have enabled it already)
#   cp --sparse=never B WORK/pre.img
#   tandemctl --socket WORK/alpha.ctl disable r0
#   fio --name=dirty --ioengine=nbd --uri='nbd+unix:///r0?socket=WORK/alpha-r0.sock' \
#     --rw=randwrite --bs=4k --iodepth=16 --size=VOLUME --io_size=WRITES --randrepeat=0
#   enable r0 on alpha (Benchmarks/catchup.py enable-timed), then cmp A B
#   rsync --inplace --no-whole-file --stats A WORK/pre.img; cmp A WORK/pre.img
#   nbdcopy 'nbd+unix:///r0?socket=WORK/alpha-r0.sock' WORK/full.img
#   tandemd --node-name solo --state-dir WORK/solo --control-socket WORK/solo.ctl
#   tandemctl --socket WORK/solo.ctl create r0 --volume C --nbd-socket WORK/solo-r0.sock
#   part 2 as above
#
# Settings (environment):
#   BENCH_DIR       where the backing files live; a real disk, not tmpfs (default .bench/);
#                   needs 3 x VOLUME free (4 x during part 1's rsync)
#   CATCHUP_VOLUME  volume size (default 8G, the issue's figure)
#   CATCHUP_WRITES  bytes of random 4 KiB writes while the peer is away (default 1G)
#   BENCH_SIZE      part 2's seq write region and fill region (default 1G)
#   BENCH_RUNTIME   seconds per measured part 2 run (default 10); BENCH_RAMP warm-up (2)
#   BENCH_REPEAT    part 2 rounds, medians reported (default 3)
#   BENCH_RESULTS   markdown output (default Benchmarks/results/catchup-<UTC timestamp>.md)
# Rerun: Benchmarks/catchup.sh   (prints the tables and writes them to the results file)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

BENCH_RUNTIME="${BENCH_RUNTIME:-10}"
source Benchmarks/lib/settings.sh
volume_size="${CATCHUP_VOLUME:-8G}"
writes="${CATCHUP_WRITES:-1G}"
results="${BENCH_RESULTS:-$repo/Benchmarks/results/catchup-$stamp.md}"
helper=(python3 "$repo/Benchmarks/catchup.py")
free_port=(python3 "$repo/Benchmarks/pair.py" free-port)

bench_prepare catchup "$results"
command -v rsync >/dev/null || { echo "catchup: rsync is missing (scripts/setup.sh installs it)" >&2; exit 1; }
swift build -c release
bin="$(swift build -c release --show-bin-path)"

work="$(mktemp -d "$bench_dir/catchup.XXXXXX")"
out="$work/out"
mkdir -p "$out"
a="$work/alpha.img"
b="$work/beta.img"
alpha_nbd="nbd+unix:///r0?socket=$work/alpha-r0.sock"

source Benchmarks/lib/processes.sh
cleanup() {
    stop_all
    rm -f "$a" "$b" "$work/solo.img" "$work/pre.img" "$work/full.img"
}
trap cleanup EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }
note() { echo "$1=$2" >>"$out/results.env"; echo "catchup: $1=$2" >&2; }
ctl() { # node args...
    local node="$1"
    shift
    "$bin/tandemctl" --socket "$work/$node.ctl" "$@"
}
start_node() { # name [port metrics-port]: prints the pid
    local peer=()
    if (($# > 1)); then
        peer=(--listen "127.0.0.1:$2" --tls-ca "$work/certs/ca.crt" --tls-cert "$work/certs/$1.crt"
            --tls-key "$work/certs/$1.key" --metrics-listen "127.0.0.1:$3")
    fi
    python3 scripts/lib/start-tandemd.py --log "$work/$1.log" -- \
        "$bin/tandemd" --node-name "$1" --state-dir "$work/$1" --control-socket "$work/$1.ctl" "${peer[@]}"
}
stop_pid() { # pid: SIGTERM, wait for the exit, drop it from procs (its number may be reused)
    local entry kept=()
    kill -TERM "$1"
    timeout 30 tail --pid="$1" -f /dev/null
    for entry in "${procs[@]}"; do
        [[ "${entry##*=}" == "$1" ]] || kept+=("$entry")
    done
    procs=("${kept[@]}")
}
metric() { # metrics-port family
    "${helper[@]}" metrics "http://127.0.0.1:$1/metrics" r0 | awk -v f="$2" '$1 == f { print $2 }'
}
io_read_bytes() { awk '$1 == "read_bytes:" { print $2 }' "/proc/$1/io"; }
elapsed() { # command...: runs it, prints its wall seconds to fd 3
    local t0 t1
    t0="$(date +%s.%N)"
    "$@"
    t1="$(date +%s.%N)"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >&3
}

# ------------------------------------------------------------------ the pair
note volume_size "$volume_size"
note writes "$writes"
note load_start "$(load)"
echo "catchup: writing zeros to three $volume_size files in $work" >&2
for file in "$a" "$b" "$work/solo.img"; do
    fio --name=zero --filename="$file" --rw=write --bs=1m --iodepth=16 --ioengine=io_uring \
        --direct=1 --zero_buffers --size="$volume_size" --output=/dev/null
done
scripts/make-certs.sh "$work/certs" alpha beta >/dev/null
port_a="$("${free_port[@]}")"; port_b="$("${free_port[@]}")"
mport_a="$("${free_port[@]}")"; mport_b="$("${free_port[@]}")"
pid_b="$(start_node beta "$port_b" "$mport_b")"
procs+=("tandemd beta=$pid_b")
pid_a="$(start_node alpha "$port_a" "$mport_a")"
procs+=("tandemd alpha=$pid_a")
ctl beta create r0 --volume "$b" --role secondary --peer-name alpha --peer-address "127.0.0.1:$port_a" \
    --mode async --initial-sync none --nbd-socket "$work/beta-r0.sock" >/dev/null
ctl alpha create r0 --volume "$a" --role primary --peer-name beta --peer-address "127.0.0.1:$port_b" \
    --mode async --initial-sync none --nbd-socket "$work/alpha-r0.sock" >/dev/null
for node in beta alpha; do
    ctl "$node" enable r0 >/dev/null 2>&1 || true
done
"${helper[@]}" wait "$work/alpha.ctl" r0 30 connection_state=Connected peer_disk_state=UpToDate out_of_sync_bytes=0 >/dev/null
cp --sparse=never "$b" "$work/pre.img"

# ------------------------------------------------------------------ part 1: catch-up
ctl alpha disable r0 >/dev/null
echo "catchup: writing $writes of random 4 KiB blocks on alpha (replication disabled)" >&2
fio --name=dirty --ioengine=nbd "--uri=$alpha_nbd" --rw=randwrite --bs=4k --iodepth=16 \
    --size="$volume_size" --io_size="$writes" --randrepeat=0 \
    --output-format=json --output="$out/dirty.fio.json"
"${helper[@]}" status "$work/alpha.ctl" r0 >"$out/disabled.status.json"
resynced0="$(metric "$mport_a" tandem_resynced_bytes_total)"
replicated0="$(metric "$mport_a" tandem_replicated_bytes_total)"
received0="$(metric "$mport_b" tandem_received_bytes_total)"
read0="$(io_read_bytes "$pid_a")"
note load_before_catchup "$(load)"
echo "catchup: enable on alpha, timed until peer UpToDate and out_of_sync_bytes 0" >&2
wall="$("${helper[@]}" enable-timed "$work/alpha.ctl" r0 600 "$out/catchup.json")"
note catchup_wall_s "$wall"
note catchup_primary_read_bytes "$(($(io_read_bytes "$pid_a") - read0))"
note catchup_tcp_bytes_acked "$("${helper[@]}" tcp-bytes-acked "$port_b")"
note catchup_resynced_bytes "$(($(metric "$mport_a" tandem_resynced_bytes_total) - resynced0))"
note catchup_replicated_bytes "$(($(metric "$mport_a" tandem_replicated_bytes_total) - replicated0))"
note catchup_received_bytes "$(($(metric "$mport_b" tandem_received_bytes_total) - received0))"
if cmp -s "$a" "$b"; then note catchup_cmp identical; else note catchup_cmp DIFFERENT; fi

note load_before_rsync "$(load)"
echo "catchup: rsync --inplace --no-whole-file" >&2
note rsync_wall_s "$(elapsed rsync --inplace --no-whole-file --stats "$a" "$work/pre.img" \
    3>&1 >"$out/rsync.stats" 2>&1)"
note rsync_stats "$("${helper[@]}" rsync-stats "$out/rsync.stats")"
if cmp -s "$a" "$work/pre.img"; then note rsync_cmp identical; else note rsync_cmp DIFFERENT; fi
rm -f "$work/pre.img"

note load_before_nbdcopy "$(load)"
echo "catchup: nbdcopy of the whole volume" >&2
note nbdcopy_wall_s "$(elapsed nbdcopy "$alpha_nbd" "$work/full.img" 3>&1 >&2)"
note nbdcopy_allocated_bytes "$(($(stat -c %b "$work/full.img") * 512))"
rm -f "$work/full.img"

# ------------------------------------------------------------------ part 2: throughput
alpha_status() { # field
    "${helper[@]}" status "$work/alpha.ctl" r0 | python3 -c "import json,sys; print(json.load(sys.stdin).get('$1'))"
}
wait_ahead() { # fill the volume's last BENCH_SIZE bytes until alpha reports Ahead (20 fills at most)
    local state offset
    offset="$(($("${helper[@]}" status "$work/alpha.ctl" r0 | python3 -c 'import json,sys; print(json.load(sys.stdin)["size_bytes"])') - $(numfmt --from=iec "$size")))"
    for _ in $(seq 20); do
        state="$(alpha_status replication_state)"
        [[ "$state" == Ahead ]] && return 0
        fio --name=fill --ioengine=nbd "--uri=$alpha_nbd" --rw=write --bs=1m --iodepth=16 \
            --offset="$offset" --size="$size" --output=/dev/null
    done
    echo "catchup: alpha did not report replication_state Ahead; last: $state" >&2
    return 1
}
run_workload() { # state round uri
    local name args
    for entry in "seqwrite|--rw=write --bs=1m --iodepth=16 --size=$size" \
        "randwrite|--rw=randwrite --bs=4k --iodepth=16 --size=$volume_size"; do
        name="${entry%%|*}"
        read -r -a args <<<"${entry#*|}"
        echo "catchup: round $2/$repeat $1 $name" >&2
        fio --name="$name-warmup" --ioengine=nbd "--uri=$3" "${args[@]}" \
            --time_based --runtime="$ramp" --randrepeat=0 --output=/dev/null
        fio --name="$name" --ioengine=nbd "--uri=$3" "${args[@]}" \
            --time_based --runtime="$runtime" --randrepeat=0 \
            --output-format=json --output="$out/$1.$name.$2.json"
    done
}

note load_before_throughput "$(load)"
pid_solo="$(start_node solo)"
procs+=("tandemd solo=$pid_solo")
ctl solo create r0 --volume "$work/solo.img" --nbd-socket "$work/solo-r0.sock" >/dev/null
ctl solo enable r0 >/dev/null 2>&1 || true
for round in $(seq "$repeat"); do
    # away: a clean bitmap first (beta back, alpha caught up), then beta gone and alpha Ahead
    if ! kill -0 "$pid_b" 2>/dev/null; then
        pid_b="$(start_node beta "$port_b" "$mport_b")"
        procs+=("tandemd beta=$pid_b")
    fi
    resynced0="$(metric "$mport_a" tandem_resynced_bytes_total)"
    wall="$(elapsed "${helper[@]}" wait "$work/alpha.ctl" r0 900 \
        connection_state=Connected peer_disk_state=UpToDate out_of_sync_bytes=0 3>&1 >/dev/null)"
    note "round${round}_catchup_wall_s" "$wall"
    note "round${round}_catchup_resynced_bytes" "$(($(metric "$mport_a" tandem_resynced_bytes_total) - resynced0))"
    stop_pid "$pid_b"
    wait_ahead
    "${helper[@]}" status "$work/alpha.ctl" r0 >"$out/away.$round.before.status.json"
    run_workload away "$round" "$alpha_nbd"
    "${helper[@]}" status "$work/alpha.ctl" r0 >"$out/away.$round.status.json"
    ctl alpha disable r0 >/dev/null
    run_workload disabled "$round" "$alpha_nbd"
    ctl alpha enable r0 >/dev/null
    run_workload standalone "$round" "nbd+unix:///r0?socket=$work/solo-r0.sock"
done
note load_end "$(load)"

{
    echo "## Catch-up benchmark $stamp"
    echo
    echo "Command: \`CATCHUP_VOLUME=$volume_size CATCHUP_WRITES=$writes BENCH_SIZE=$size BENCH_RUNTIME=$runtime BENCH_RAMP=$ramp BENCH_REPEAT=$repeat Benchmarks/catchup.sh\`"
    echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); kernel $(uname -r);" \
        "$(nproc) CPUs; $(fio --version); $(rsync --version | head -1 | cut -d' ' -f1-4);" \
        "nbdcopy $(nbdcopy --version | head -1 | cut -d' ' -f2); filesystem $(stat -f -c %T "$bench_dir") at $bench_dir"
    echo
    "${helper[@]}" summary "$out"
} | tee "$results"
echo "catchup: results in $results (raw files in $out)" >&2
