#!/usr/bin/env bash
# Idle memory and CPU per connected pair: two tandemd processes (release build, TLS on
# loopback, started as Benchmarks/pair.sh's start_pair does), N resources replicated from
# alpha (primary) to beta (secondary), all Connected and idle. Reports, for each daemon:
# RSS (VmRSS) before any resource and with N connected pairs, the difference per pair and
# how much of it is anonymous memory (RssAnon: the daemon's own heap and buffers; the rest
# is library code paged in once, by the first pair, whatever N), the CPU it used over
# IDLE_SECONDS of idleness (utime+stime from /proc/PID/stat), per pair, and its open
# descriptors.
#
# Commands (WORK = a fresh BENCH_DIR/pairs.XXXXXX):
#   scripts/make-certs.sh WORK/certs alpha beta
#   tandemd --node-name beta --state-dir WORK/beta --control-socket WORK/beta.ctl \
#     --listen 127.0.0.1:PORT_B --tls-ca WORK/certs/ca.crt --tls-cert WORK/certs/beta.crt \
#     --tls-key WORK/certs/beta.key                  (alpha likewise, PORT_A)
#   sample RSS (VmRSS) of both: the baseline
#   for I in 0..N-1 (Benchmarks/lib/pairs.py create, one control connection per node):
#     beta:  create rI --volume WORK/beta/rI.img --size SIZE --role secondary --mode MODE \
#              --peer-name alpha --peer-address 127.0.0.1:PORT_A --initial-sync none \
#              --nbd-socket WORK/beta-rI.sock
#     alpha: the same with --role primary, peer beta at PORT_B
#     enable rI on beta, then on alpha
#   wait until all N report connection_state Connected on both (status of all, every 0.5 s)
#   wait SETTLE_SECONDS, sample RSS, CPU ticks and descriptors; wait IDLE_SECONDS; sample CPU
# The volume files are created sparse by the daemon (all zero on both nodes, so identical
# and fit for --initial-sync none); nothing writes to them.
#
# Settings (environment):
#   PAIRS            number of pairs (default 256); also the first argument
#   PAIRS_MODE       sync or async (default async)
#   PAIRS_SIZE       volume size (default 1GiB, sparse)
#   IDLE_SECONDS     idle CPU window (default 10)
#   SETTLE_SECONDS   wait after the last pair connected, before sampling (default 3)
#   BENCH_DIR        where the volumes live (default .bench/ in the repository)
#   BENCH_CONNECT_TIMEOUT  seconds to wait for all pairs to connect (default 120)
#   PAIRS_KEEP=1     keep WORK (logs) after a successful run
#   PAIRS_ALLOCS=1   also count heap allocations (malloc/calloc/realloc) over the idle
#                    window, with Benchmarks/tools/malloccount.c preloaded into both daemons
#                    as Benchmarks/allocations-pair.sh does (the counter adds a little RSS)
#   PAIRS_BIN        a directory holding tandemd to measure instead of this checkout's release
#                    build (for a before/after of another commit)
# Rerun: Benchmarks/pairs-memory.sh 256    (prints a markdown table on stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

pairs="${1:-${PAIRS:-256}}"
mode="${PAIRS_MODE:-async}"
size="${PAIRS_SIZE:-1GiB}"
idle_seconds="${IDLE_SECONDS:-10}"
settle_seconds="${SETTLE_SECONDS:-3}"
bench_dir="${BENCH_DIR:-$repo/.bench}"
connect_timeout="${BENCH_CONNECT_TIMEOUT:-120}"

die() {
    echo "pairs-memory: $*" >&2
    exit 1
}
[[ "$pairs" =~ ^[0-9]+$ ]] && ((pairs > 0)) || die "PAIRS must be a positive integer, not '$pairs'"
[[ "$mode" == sync || "$mode" == async ]] || die "PAIRS_MODE must be sync or async, not '$mode'"
size_bytes="$(numfmt --from=iec "${size%iB}")" || die "PAIRS_SIZE '$size' is not a size"
# Three descriptors per resource (volume, NBD socket, peer link) and some for the daemon.
needed_fds=$((pairs * 3 + 256))
(($(ulimit -Hn) >= needed_fds)) || die "$pairs pairs need $needed_fds descriptors; the hard limit is $(ulimit -Hn)"
(($(ulimit -Sn) >= needed_fds)) || ulimit -Sn "$needed_fds"

scripts/setup.sh
mkdir -p "$bench_dir"
if [[ -n "${PAIRS_BIN:-}" ]]; then
    bin="$PAIRS_BIN"
    [[ -x "$bin/tandemd" ]] || die "PAIRS_BIN: no tandemd in $bin"
else
    swift build -c release >/dev/null || die "swift build -c release failed"
    bin="$(swift build -c release --show-bin-path)"
fi
work="$(mktemp -d "$bench_dir/pairs.XXXXXX")"

source Benchmarks/lib/processes.sh
cleanup() {
    local status=$?
    stop_all
    rm -rf "$work/alpha" "$work/beta"
    if ((status != 0)); then
        echo "pairs-memory: failed; daemon logs kept in $work" >&2
    elif [[ "${PAIRS_KEEP:-0}" == 1 ]]; then
        echo "pairs-memory: logs kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

scripts/make-certs.sh "$work/certs" alpha beta >/dev/null || die "scripts/make-certs.sh failed"
preload=()
if [[ "${PAIRS_ALLOCS:-0}" == 1 ]]; then
    source Benchmarks/lib/alloc-common.sh
    alloc_build_counter "$work/malloccount.so" || die "cannot compile Benchmarks/tools/malloccount.c"
    preload=(env LD_PRELOAD="$work/malloccount.so")
fi
mkdir -p "$work/alpha" "$work/beta"

start_node() { # node port
    local node="$1" port="$2" pid
    # env (when preloading) execs tandemd, so the pid start-tandemd.py prints is tandemd's.
    pid="$(python3 scripts/lib/start-tandemd.py --log "$work/$node.log" -- \
        "${preload[@]}" "$bin/tandemd" --node-name "$node" --state-dir "$work/state-$node" \
        --control-socket "$work/$node.ctl" --listen "127.0.0.1:$port" \
        --tls-ca "$work/certs/ca.crt" --tls-cert "$work/certs/$node.crt" --tls-key "$work/certs/$node.key")" ||
        die "tandemd $node did not start; see $work/$node.log"
    procs+=("$node=$pid")
    eval "pid_$node=$pid"
}

port_a="$(python3 Benchmarks/pair.py free-port)"
port_b="$(python3 Benchmarks/pair.py free-port)"
start_node beta "$port_b"
start_node alpha "$port_a"
read -r base_rss_alpha base_anon_alpha _ base_fds_alpha < <(python3 Benchmarks/lib/pairs.py sample "$pid_alpha")
read -r base_rss_beta base_anon_beta _ base_fds_beta < <(python3 Benchmarks/lib/pairs.py sample "$pid_beta")

started=$SECONDS
python3 Benchmarks/lib/pairs.py create "$work/alpha.ctl" "$work/beta.ctl" "$work" "$pairs" "$mode" \
    "$size_bytes" "$port_a" "$port_b" || die "creating the pairs failed"
for node in alpha beta; do
    python3 Benchmarks/lib/pairs.py wait-connected "$work/$node.ctl" "$pairs" "$connect_timeout" ||
        die "not all pairs Connected on $node"
done
echo "pairs-memory: $pairs $mode pairs Connected after $((SECONDS - started)) s" >&2
sleep "$settle_seconds"

read -r rss_alpha anon_alpha ticks0_alpha fds_alpha < <(python3 Benchmarks/lib/pairs.py sample "$pid_alpha")
read -r rss_beta anon_beta ticks0_beta fds_beta < <(python3 Benchmarks/lib/pairs.py sample "$pid_beta")
if ((${#preload[@]} > 0)); then
    allocs0_alpha="$(alloc_count "$pid_alpha" "$work/alpha.log")"
    allocs0_beta="$(alloc_count "$pid_beta" "$work/beta.log")"
fi
sleep "$idle_seconds"
if ((${#preload[@]} > 0)); then
    allocs1_alpha="$(alloc_count "$pid_alpha" "$work/alpha.log")"
    allocs1_beta="$(alloc_count "$pid_beta" "$work/beta.log")"
    echo "pairs-memory: heap allocations over ${idle_seconds} s idle: alpha $((allocs1_alpha - allocs0_alpha)), beta $((allocs1_beta - allocs0_beta))" >&2
fi
read -r _ _ ticks1_alpha _ < <(python3 Benchmarks/lib/pairs.py sample "$pid_alpha")
read -r _ _ ticks1_beta _ < <(python3 Benchmarks/lib/pairs.py sample "$pid_beta")
hz="$(getconf CLK_TCK)"

echo "| node | RSS, no resource (MiB) | RSS, $pairs pairs Connected (MiB) | RSS per pair (MiB) | of which anonymous (MiB) | idle CPU over ${idle_seconds} s (%) | per pair (µs/s) | descriptors (per pair) |"
echo "|---|---|---|---|---|---|---|---|"
for node in alpha beta; do
    eval "base=\$base_rss_$node rss=\$rss_$node banon=\$base_anon_$node anon=\$anon_$node"
    eval "t0=\$ticks0_$node t1=\$ticks1_$node fds=\$fds_$node bfds=\$base_fds_$node"
    python3 - "$node" "$base" "$rss" "$banon" "$anon" "$t0" "$t1" "$hz" "$idle_seconds" "$pairs" "$fds" "$bfds" <<'PY'
import sys
node, base, rss, banon, anon, t0, t1, hz, idle, pairs, fds, bfds = sys.argv[1], *map(float, sys.argv[2:])
role = "alpha (primary)" if node == "alpha" else "beta (secondary)"
cpu = (t1 - t0) / hz / idle
print(f"| {role} | {base / 1024:.1f} | {rss / 1024:.1f} | {(rss - base) / 1024 / pairs:.3f} | "
      f"{(anon - banon) / 1024 / pairs:.3f} | {cpu * 100:.2f} | {cpu * 1e6 / pairs:.1f} | {int(fds)} ({(fds - bfds) / pairs:.1f}) |")
PY
done
