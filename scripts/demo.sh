#!/usr/bin/env bash
# The main job, end to end on one machine: a replicated pair. Two tandemd daemons (alpha and
# beta) on loopback with mutual TLS and certificates made here, file-backed volumes in a
# temporary directory, one sync resource. Writes go through alpha's NBD export; both nodes
# report UpToDate; a planned failover makes beta primary; more writes go through beta; the
# content read back through NBD and both volume files have the same checksum.
# Environment: DEMO_DIR (default: a new directory under /var/tmp, a real disk so that
# O_DIRECT is used), DEMO_SIZE (default 256MiB), DEMO_KEEP=1 keeps the directory.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
swift build -c release
bin="$(swift build -c release --show-bin-path)"
tandemd="$bin/tandemd"
tandemctl="$bin/tandemctl"

work="${DEMO_DIR:-$(mktemp -d /var/tmp/tandem-demo.XXXXXX)}"
mkdir -p "$work"
size="${DEMO_SIZE:-256MiB}"
size_mib="${size%MiB}"
pids=()

cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            timeout 30 tail --pid="$pid" -f /dev/null || kill -KILL "$pid"
        fi
    done
    if ((status != 0)); then
        for node in alpha beta; do
            [[ -f "$work/$node/tandemd.log" ]] || continue
            echo "--- $node log" >&2
            tail -n 30 "$work/$node/tandemd.log" >&2
        done
    fi
    if [[ -z "${DEMO_KEEP:-}" ]]; then rm -rf "$work"; fi
    exit "$status"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ctl() { local node=$1; shift; "$tandemctl" --socket "$work/$node/control.sock" "$@"; }
wait_for() { local node=$1; shift; python3 scripts/lib/wait-status.py --socket "$work/$node/control.sock" --name r0 "$@" >/dev/null; }
uri() { echo "nbd+unix:///r0?socket=$work/$1/r0.sock"; }

step "making a CA and certificates for alpha and beta"
scripts/make-certs.sh "$work/tls" alpha beta >/dev/null
declare -A port=([alpha]="$(free_port)" [beta]="$(free_port)")

for node in alpha beta; do
    step "starting tandemd $node (replication on 127.0.0.1:${port[$node]})"
    mkdir -p "$work/$node"
    pids+=("$(python3 scripts/lib/start-tandemd.py --log "$work/$node/tandemd.log" -- \
        "$tandemd" --node-name "$node" --state-dir "$work/$node/state" \
        --control-socket "$work/$node/control.sock" --listen "127.0.0.1:${port[$node]}" \
        --tls-ca "$work/tls/ca.crt" --tls-cert "$work/tls/$node.crt" --tls-key "$work/tls/$node.key")")
done

step "creating r0: sync, $size volumes, beta secondary, alpha primary"
ctl beta create r0 --volume "$work/beta/r0.img" --size "$size" --role secondary \
    --peer-name alpha --peer-address "127.0.0.1:${port[alpha]}" --mode sync --nbd-socket "$work/beta/r0.sock"
ctl alpha create r0 --volume "$work/alpha/r0.img" --size "$size" --role primary \
    --peer-name beta --peer-address "127.0.0.1:${port[beta]}" --mode sync --nbd-socket "$work/alpha/r0.sock"
ctl beta enable r0
ctl alpha enable r0
wait_for beta connection_state=Connected disk_state=UpToDate
echo "connected; initial copy done"

step "writing $size of random data through alpha's NBD export (nbdcopy), unaligned patterns (qemu-io)"
head -c "$((size_mib << 20))" /dev/urandom >"$work/expected.raw"
nbdcopy --flush "$work/expected.raw" "$(uri alpha)"
for target in "$(uri alpha)" "$work/expected.raw"; do
    qemu-io -f raw -c "write -P 0xab 1000 3000" -c "write -P 0xcd 8191 2" -c "flush" "$target" >/dev/null
done

step "status on both nodes"
wait_for alpha connection_state=Connected lag_bytes=0
ctl alpha status
ctl beta status

step "planned failover: beta becomes primary"
ctl beta failover r0
wait_for beta role=primary connection_state=Connected
wait_for alpha role=secondary connection_state=Connected
ctl beta status

step "writing through beta's NBD export, now the primary"
for target in "$(uri beta)" "$work/expected.raw"; do
    qemu-io -f raw -c "write -P 0x5a 65536 131072" -c "flush" "$target" >/dev/null
done
wait_for beta lag_bytes=0

step "comparing checksums: expected, read back through beta's NBD, alpha's and beta's volumes"
nbdcopy "$(uri beta)" "$work/read-back.raw"
expected="$(sha256sum <"$work/expected.raw" | cut -d' ' -f1)"
read_back="$(sha256sum <"$work/read-back.raw" | cut -d' ' -f1)"
alpha_volume="$(sha256sum <"$work/alpha/r0.img" | cut -d' ' -f1)"
beta_volume="$(sha256sum <"$work/beta/r0.img" | cut -d' ' -f1)"
printf 'expected     %s\nread back    %s\nalpha volume %s\nbeta volume  %s\n' \
    "$expected" "$read_back" "$alpha_volume" "$beta_volume"
if [[ "$expected" != "$read_back" || "$expected" != "$alpha_volume" || "$expected" != "$beta_volume" ]]; then
    echo "demo: FAILED: checksums differ" >&2
    exit 1
fi
echo "checksums equal on both nodes"

step "stopping both daemons"
for pid in "${pids[@]}"; do
    kill -TERM "$pid"
    timeout 30 tail --pid="$pid" -f /dev/null
done
pids=()
echo "demo: OK"
