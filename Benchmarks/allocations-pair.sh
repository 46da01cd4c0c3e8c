#!/usr/bin/env bash
# Heap allocations per replicated write on a tandemd pair, counted on both nodes.
# Like Benchmarks/allocations.sh, but with two tandemd processes (release build), each with
# the malloc counter Benchmarks/tools/malloccount.c preloaded: beta (secondary) and alpha
# (primary), TLS on loopback, started as Benchmarks/pair.sh's start_pair does:
#   scripts/make-certs.sh WORK/certs alpha beta
#   tandemd --node-name beta --state-dir WORK/MODE-beta --control-socket WORK/MODE-beta.ctl \
#     --listen 127.0.0.1:PORT_B --tls-ca WORK/certs/ca.crt --tls-cert WORK/certs/beta.crt \
#     --tls-key WORK/certs/beta.key                  (alpha likewise, PORT_A)
#   tandemctl --socket WORK/MODE-beta.ctl create r0 --volume WORK/beta.img --role secondary \
#     --peer-name alpha --peer-address 127.0.0.1:PORT_A --mode MODE --initial-sync none \
#     --nbd-socket WORK/MODE-beta-r0.sock            (alpha: --role primary, peer beta)
#   tandemctl ... enable r0 (both), then wait for connection_state Connected on both.
# The volumes are two 1 GiB files made the same way (fallocate), so identical and fit for
# --initial-sync none; they are made afresh for each mode.
#
# For each mode and workload (fio --ioengine=nbd on alpha's export, --size=1g): an unmeasured
# warm-up of 1000 requests, wait until the primary reports lag_bytes 0 and
# unconfirmed_bytes 0 (everything durable on the secondary), read both counters (SIGUSR2),
# run REQUESTS requests (--number_ios; 1 MiB sequential stops at the 1 GiB end, 1024),
# wait for the drain again, read both counters. The counts cover the whole run, including
# fio's NBD connection set-up and teardown on the primary (~300 allocations standalone).
#
# The drain wait polls `tandemctl --json status r0` on the primary, and each status request
# allocates there (JSON building). Its cost is measured once per pair (STATUS_SAMPLES requests
# while idle) and polls × cost is subtracted from the primary's count; the table shows the
# number of polls. An "idle" row per mode counts allocations over IDLE_SECONDS without I/O
# (timers, heartbeats) to compare against: work that grows with time, not with requests.
#
# Settings (environment):
#   BENCH_DIR               where the volumes live (default .bench/ in the repository)
#   REQUESTS                requests per measured run (default 50000)
#   ALLOC_MODES             subset of "sync async" (default both)
#   BENCH_CONNECT_TIMEOUT   seconds to wait for Connected (default 30)
#   ALLOC_DRAIN_TIMEOUT     seconds to wait for lag_bytes 0 (default 60)
#   IDLE_SECONDS            length of the idle row's window (default 5; 0 leaves it out)
#   STATUS_SAMPLES          status requests used to measure one's cost (default 10)
#   ALLOC_TRACE=N           also find where allocations come from: both daemons run with
#                           MALLOCCOUNT_TRACE=N, tracing is armed (SIGUSR1) around each
#                           measured fio run only, and after each mode the top call sites of
#                           each node, per workload, go to stderr: the innermost tandemd frame
#                           (addr2line, swift demangle), the library function it called and
#                           the most common stack around them. N=13 with the default REQUESTS
#                           writes ~200 MB of traces per mode and adds about a minute.
#   ALLOC_TRACE_TOP         how many sites to print per node and workload (default 8)
#   ALLOC_KEEP=1            keep WORK (logs, traces) after a successful run
# Rerun: Benchmarks/allocations-pair.sh    (prints the markdown table on stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
source Benchmarks/lib/alloc-common.sh

bench_dir="${BENCH_DIR:-$repo/.bench}"
requests="${REQUESTS:-50000}"
modes="${ALLOC_MODES:-sync async}"
connect_timeout="${BENCH_CONNECT_TIMEOUT:-30}"
drain_timeout="${ALLOC_DRAIN_TIMEOUT:-60}"
idle_seconds="${IDLE_SECONDS:-5}"
status_samples="${STATUS_SAMPLES:-10}"
trace_every="${ALLOC_TRACE:-0}"
trace_top="${ALLOC_TRACE_TOP:-8}"
workloads=("randwrite 4k 32" "write 1m 16" "randwrite 4k 1")

die() {
    echo "allocations-pair: $*" >&2
    exit 1
}
for mode in $modes; do
    [[ "$mode" == sync || "$mode" == async ]] || die "unknown mode '$mode' (sync async)"
done

scripts/setup.sh
mkdir -p "$bench_dir"
swift build -c release >/dev/null || die "swift build -c release failed"
bin="$(swift build -c release --show-bin-path)"
work="$(mktemp -d "$bench_dir/alloc-pair.XXXXXX")"

# Running daemons, "name=pid"; stopped by stop_all (between modes and on exit).
source Benchmarks/lib/processes.sh
cleanup() {
    local status=$?
    stop_all
    rm -f "$work"/*.img
    if ((status != 0)); then
        echo "allocations-pair: failed; daemon logs kept in $work" >&2
    elif [[ "${ALLOC_KEEP:-0}" == 1 ]]; then
        echo "allocations-pair: logs kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

alloc_build_counter "$work/malloccount.so" || die "cannot compile Benchmarks/tools/malloccount.c"
scripts/make-certs.sh "$work/certs" alpha beta >/dev/null || die "scripts/make-certs.sh failed"
certs="$work/certs"

ctl() { # node args...
    local node="$1"
    shift
    "$bin/tandemctl" --socket "$work/$mode-$node.ctl" "$@"
}
pid_of() { # node
    local entry
    for entry in "${procs[@]}"; do
        [[ "${entry%%=*}" == "$1" ]] && { echo "${entry##*=}"; return 0; }
    done
    return 1
}
count() { alloc_count "$(pid_of "$1")" "$work/$mode-$1.log"; }

start_node() { # node port
    local node="$1" port="$2" pid
    local env=(LD_PRELOAD="$work/malloccount.so")
    if ((trace_every > 0)); then
        env+=(MALLOCCOUNT_TRACE="$trace_every" MALLOCCOUNT_TRACE_FILE="$work/$mode-$node.trace")
    fi
    # env execs tandemd, so the pid start-tandemd.py prints is tandemd's.
    pid="$(python3 scripts/lib/start-tandemd.py --log "$work/$mode-$node.log" -- \
        env "${env[@]}" "$bin/tandemd" --node-name "$node" --state-dir "$work/$mode-$node" \
        --control-socket "$work/$mode-$node.ctl" --listen "127.0.0.1:$port" \
        --tls-ca "$certs/ca.crt" --tls-cert "$certs/$node.crt" --tls-key "$certs/$node.key")" ||
        die "$mode: tandemd $node did not start; see $work/$mode-$node.log"
    procs+=("$node=$pid")
}

start_pair() {
    local port_a port_b node out
    rm -f "$work"/*.img
    for node in alpha beta; do
        fallocate -l 1GiB "$work/$node.img" || truncate -s 1GiB "$work/$node.img"
    done
    port_a="$(python3 Benchmarks/pair.py free-port)"
    port_b="$(python3 Benchmarks/pair.py free-port)"
    start_node beta "$port_b"
    start_node alpha "$port_a"
    out="$(ctl beta create r0 --volume "$work/beta.img" --role secondary \
        --peer-name alpha --peer-address "127.0.0.1:$port_a" --mode "$mode" \
        --initial-sync none --nbd-socket "$work/$mode-beta-r0.sock" 2>&1)" ||
        die "$mode: tandemctl create --role secondary on beta failed: $out"
    out="$(ctl alpha create r0 --volume "$work/alpha.img" --role primary \
        --peer-name beta --peer-address "127.0.0.1:$port_b" --mode "$mode" \
        --initial-sync none --nbd-socket "$work/$mode-alpha-r0.sock" 2>&1)" ||
        die "$mode: tandemctl create --role primary on alpha failed: $out"
    for node in beta alpha; do
        # create may already have enabled it; the wait below decides.
        out="$(ctl "$node" enable r0 2>&1)" ||
            echo "allocations-pair: $mode: enable r0 on $node answered (ignored): $out" >&2
    done
    for node in alpha beta; do
        python3 scripts/lib/wait-status.py --socket "$work/$mode-$node.ctl" --name r0 \
            --timeout "$connect_timeout" connection_state=Connected >/dev/null ||
            die "$mode: r0 on $node not Connected within $connect_timeout s (last status above)"
    done
}

# Polls the primary's status until lag_bytes and unconfirmed_bytes are 0; prints the number
# of status requests it made. Fails after ALLOC_DRAIN_TIMEOUT seconds.
drain() {
    local polls=0 deadline=$((SECONDS + drain_timeout)) status
    while :; do
        status="$(ctl alpha --json status r0)" || die "$mode: status r0 on alpha failed"
        polls=$((polls + 1))
        if python3 -c 'import json, sys
s = json.loads(sys.argv[1])
sys.exit(0 if s.get("lag_bytes") == 0 and s.get("unconfirmed_bytes", 0) == 0 else 1)' "$status"; then
            echo "$polls"
            return 0
        fi
        ((SECONDS < deadline)) || die "$mode: lag_bytes not 0 within $drain_timeout s; last status: $status"
        sleep 0.05
    done
}

# Allocations of one status request on the primary, averaged over STATUS_SAMPLES (rounded).
status_cost() {
    local before after
    ctl alpha --json status r0 >/dev/null # first request: any lazy set-up
    before="$(count alpha)"
    for _ in $(seq "$status_samples"); do ctl alpha --json status r0 >/dev/null; done
    after="$(count alpha)"
    echo $(((after - before + status_samples / 2) / status_samples))
}

trace_arm() { # [section title]: toggle tracing on both nodes; a title starts a section
    local node
    ((trace_every > 0)) || return 0
    if (($# > 0)); then
        # Tracing is off here and the counter appends, so the line lands between records.
        for node in alpha beta; do echo "malloc-trace-section $*" >>"$work/$mode-$node.trace"; done
    fi
    kill -USR1 "$(pid_of alpha)" "$(pid_of beta)"
}

# Top call sites in a trace file, grouped by the innermost tandemd frame and the library
# function it called (swift_allocObject, SSL_write_ex, ...). tandemd frames are resolved with
# addr2line (function, file:line) and demangled with swift demangle --simplified.
trace_sites() { # node
    local trace="$work/$mode-$1.trace"
    [[ -s "$trace" ]] || { echo "(no allocations traced on $1)"; return 0; }
    python3 - "$trace" "$(readlink -f "$bin/tandemd")" "$trace_top" <<'PY'
import collections, re, subprocess, sys
trace, exe, top = sys.argv[1], sys.argv[2], int(sys.argv[3])
sections, records, current = [], None, None  # [(title, records)]
for line in open(trace, errors="replace"):
    if line.startswith("malloc-trace-section "):
        records, current = [], None
        sections.append((line.split(" ", 1)[1].strip(), records))
    elif line.startswith("malloc-trace #"):
        if records is None:
            records = []
            sections.append(("(whole run)", records))
        current = []
        records.append(current)
    elif current is not None:
        current.append(line.strip())
# backtrace_symbols_fd: "path(symbol+0xOFF)[0xADDR]" or "path(+0xOFF)[0xADDR]"
frame_re = re.compile(r"^(.*)\(([^)]*)\) ?\[0x[0-9a-f]+\]$")
offsets, parsed = set(), []
def parse(record):
    frames = []
    for text in record:
        m = frame_re.match(text)
        if not m:
            frames.append(("?", text))
            continue
        lib, sym = m.group(1).rsplit("/", 1)[-1], m.group(2)
        # The main program shows as its argv[0]; without exported symbols, as "(+0xOFF)".
        if lib == "tandemd" and sym.startswith("+0x"):
            off = int(sym[1:], 16) - 1  # a return address: the call is just before it
            offsets.add(off)
            frames.append(("exe", off))
        else:
            frames.append((lib, sym))
    return frames
parsed = [(title, [parse(record) for record in records]) for title, records in sections]
names = {}
if offsets:
    ordered = sorted(offsets)
    out = subprocess.run(["addr2line", "-f", "-e", exe] + [hex(o) for o in ordered],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    demangled = subprocess.run(["swift", "demangle", "--simplified"], input="\n".join(out[0::2]) + "\n",
                               capture_output=True, text=True, check=True).stdout.splitlines()
    for off, name, where in zip(ordered, demangled, out[1::2]):
        where = where.split(" (")[0]
        where = "?" if where.startswith("?") else "/".join(where.split("/")[-2:])
        names[off] = f"{name} [{where}]"
def label(frame):
    kind, value = frame
    if kind == "exe":
        return names.get(value, f"tandemd+{value:#x}")
    if value.startswith("+"):
        return f"{kind}{value}"
    return f"{kind}:{value.split('+')[0]}"
for title, records in parsed:
    sites = collections.Counter()
    detail = {}
    for frames in records:
        inside = [i for i, f in enumerate(frames) if f[0] == "exe"]
        if inside:
            t = inside[0]
            entry = label(frames[t - 1]) if t > 0 else "(direct)"
            key = f"{label(frames[t])}  -> {entry}"
            alloc = " <- ".join(label(f) for f in frames[:min(t, 3)])
            callers = " <- ".join(label(f) for f in frames[t + 1:t + 4] if f[0] == "exe")
        else:
            key = " <- ".join(label(f) for f in frames[:4])
            alloc, callers = "", ""
        sites[key] += 1
        detail.setdefault(key, collections.Counter())[(alloc, callers)] += 1
    total = sum(sites.values())
    print(f"{title}: {total} sampled allocations, by innermost tandemd frame -> the library function it called:")
    for key, n in sites.most_common(top):
        (alloc, callers), _ = detail[key].most_common(1)[0]
        print(f"  {n:7d} ({100 * n / total:5.1f}%)  {key}")
        if alloc:
            print(f"                     allocating frames: {alloc}")
        if callers:
            print(f"                     called from: {callers}")
PY
}

echo "| mode | workload | requests | allocations, primary (alpha) | allocations, secondary (beta) | status polls subtracted (primary) |"
echo "|---|---|---|---|---|---|"
for mode in $modes; do
    echo "allocations-pair: $mode: starting the pair" >&2
    start_pair
    uri="nbd+unix:///r0?socket=$work/$mode-alpha-r0.sock"
    cost="$(status_cost)"
    echo "allocations-pair: $mode: one status request allocates $cost times on the primary" >&2
    if ((idle_seconds > 0)); then
        drain >/dev/null
        a0="$(count alpha)"
        b0="$(count beta)"
        sleep "$idle_seconds"
        a1="$(count alpha)"
        b1="$(count beta)"
        echo "| $mode | idle ${idle_seconds} s | 0 | $((a1 - a0)) | $((b1 - b0)) | 0 |"
    fi
    for spec in "${workloads[@]}"; do
        set -- $spec
        echo "allocations-pair: $mode: $1 $2 QD$3" >&2
        fio --name=warm --ioengine=nbd --uri="$uri" --rw="$1" --bs="$2" --iodepth="$3" --size=1g \
            --number_ios=1000 --output=/dev/null || die "$mode: fio warm-up failed"
        drain >/dev/null
        a0="$(count alpha)"
        b0="$(count beta)"
        trace_arm "$mode $1 $2 QD$3"
        fio --name=a --ioengine=nbd --uri="$uri" --rw="$1" --bs="$2" --iodepth="$3" --size=1g \
            --number_ios="$requests" --output-format=json --output="$work/fio.json" ||
            die "$mode: fio $1 $2 QD$3 failed"
        trace_arm
        polls="$(drain)"
        a1="$(count alpha)"
        b1="$(count beta)"
        done_ios="$(fio_total_ios "$work/fio.json")"
        echo "| $mode | $1 $2 QD$3 | $done_ios | $((a1 - a0 - polls * cost)) | $((b1 - b0)) | $polls × $cost |"
    done
    stop_all
    if ((trace_every > 0)); then
        for node in alpha beta; do
            echo "allocations-pair: $mode: where $node allocates (every ${trace_every}th allocation during the measured runs)" >&2
            trace_sites "$node" >&2
        done
    fi
done
