#!/bin/bash
# pair.sh — fio through tandemd: a sync pair, an async pair (TLS on, loopback, both volumes
# on this machine's disk), a standalone resource, and the raw file (libaio, O_DIRECT).
# Prints one markdown table; docs/benchmarks.md quotes its output.
#
# Usage: swift build -c release && Benchmarks/pair.sh [SIZE_MiB] [SECONDS]
# Needs fio with the nbd engine, openssl, python3. Runs in a fresh directory under /var/tmp.
set -euo pipefail
size_mib=${1:-1024}
seconds=${2:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
tandemd=$root/.build/release/tandemd
[ -x "$tandemd" ] || { echo "build first: swift build -c release" >&2; exit 2; }
dir=$(mktemp -d /var/tmp/tandem-bench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
sh "$root/scripts/make-certs.sh" "$dir/certs" alpha beta >/dev/null

ctl() {  # ctl SOCKET JSON → prints the reply, fails when ok is false
    python3 - "$1" "$2" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode()); data = b""
while not data.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk: break
    data += chunk
reply = json.loads(data); print(json.dumps(reply))
sys.exit(0 if reply.get("ok") else 1)
PY
}
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2]))" "$1" "$2"; }
cpu_seconds() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }

start() {  # start NODE PORT
    mkdir -p "$dir/$1"
    "$tandemd" --node-name "$1" --state-dir "$dir/$1/state" --control-socket "$dir/$1/c.sock" \
        --listen "127.0.0.1:$2" --tls-ca "$dir/certs/ca.crt" --tls-cert "$dir/certs/$1.crt" \
        --tls-key "$dir/certs/$1.key" --buffer-pool-bytes 64MiB >"$dir/$1/log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [ -S "$dir/$1/c.sock" ] && return; sleep 0.1; done
    echo "tandemd $1 did not start" >&2; exit 1
}

# Reads fio's JSON (after any warning lines) and prints one expression of the write stats.
pick() { python3 -c "import json,sys; t=sys.stdin.read(); w=json.loads(t[t.index('{'):])['jobs'][0]['write']; print($1)"; }

fio_all() {  # fio_all LABEL FIO-TARGET-ARGS... → one table row
    local label=$1; shift
    local seq qd1 qd32
    seq=$(fio --name=seq "$@" --rw=write --bs=1m --iodepth=16 --size=${size_mib}m --output-format=json 2>/dev/null |
        pick "round(w['bw'] / 1024)")
    qd1=$(fio --name=qd1 "$@" --rw=randwrite --bs=4k --iodepth=1 --size=${size_mib}m --runtime=$seconds \
        --time_based --output-format=json 2>/dev/null |
        pick "round(w['clat_ns']['percentile']['50.000000'] / 1000)")
    qd32=$(fio --name=qd32 "$@" --rw=randwrite --bs=4k --iodepth=32 --size=${size_mib}m --runtime=$seconds \
        --time_based --output-format=json 2>/dev/null |
        pick "round(w['iops'])")
    echo "| $label | $seq | $qd1 | $qd32 |"
}

echo "| target | seq write 1 MiB QD16 (MiB/s) | 4 KiB randwrite QD1 p50 (µs) | 4 KiB randwrite QD32 (IOPS) |"
echo "|---|---|---|---|"
truncate -s ${size_mib}M "$dir/raw.img"
fio_all "raw file (libaio, O_DIRECT)" --ioengine=libaio --direct=1 --filename="$dir/raw.img"

start alpha 27701
start beta 27702
ctl "$dir/alpha/c.sock" '{"cmd":"create","name":"solo","volume":"'"$dir"'/alpha/solo.img","size_bytes":'$((size_mib << 20))',"nbd":{"socket":"'"$dir"'/alpha/solo.nbd"}}' >/dev/null
fio_all "tandemd standalone" --ioengine=nbd --uri="nbd+unix:///solo?socket=$dir/alpha/solo.nbd"

for mode in sync async; do
    name=$mode
    for node in beta alpha; do
        if [ $node = alpha ]; then role=primary peer=beta port=27702; else role=secondary peer=alpha port=27701; fi
        ctl "$dir/$node/c.sock" '{"cmd":"create","name":"'$name'","volume":"'"$dir/$node/$name"'.img","size_bytes":'$((size_mib << 20))',"role":"'$role'","peer":{"name":"'$peer'","address":"127.0.0.1:'$port'"},"mode":"'$mode'","initial_sync":"none","nbd":{"socket":"'"$dir/$node/$name"'.nbd"}}' >/dev/null
        ctl "$dir/$node/c.sock" '{"cmd":"enable","name":"'$name'"}' >/dev/null
    done
    for _ in $(seq 100); do
        state=$(field "$(ctl "$dir/alpha/c.sock" '{"cmd":"status","name":"'$name'"}')" connection_state)
        [ "$state" = Connected ] && break; sleep 0.1
    done
    a0=$(cpu_seconds "${pids[0]}"); b0=$(cpu_seconds "${pids[1]}")
    fio_all "tandemd $mode pair (TLS)" --ioengine=nbd --uri="nbd+unix:///$name?socket=$dir/alpha/$name.nbd"
    a1=$(cpu_seconds "${pids[0]}"); b1=$(cpu_seconds "${pids[1]}")
    echo "|   CPU s primary / secondary | $(echo "$a1 - $a0" | bc) / $(echo "$b1 - $b0" | bc) | | |"
done
