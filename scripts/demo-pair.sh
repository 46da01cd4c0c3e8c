#!/usr/bin/env bash
# The main job, a replicated pair on one machine: two tandemd (alpha, beta) on loopback with
# TLS certificates from scripts/make-certs.sh and file-backed volumes, one sync resource r0;
# write through alpha's NBD export, show both UpToDate, fail over to beta (planned), write
# through beta, and check both volumes are equal.
# Environment: DEMO_DIR (default: a new directory under /var/tmp), DEMO_SIZE (64MiB),
# DEMO_KEEP=1 keeps the directory.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
swift build -c release
bin="$(swift build -c release --show-bin-path)"
tandemd="$bin/tandemd"
tandemctl="$bin/tandemctl"

work="${DEMO_DIR:-$(mktemp -d /var/tmp/tandem-pair.XXXXXX)}"
mkdir -p "$work"
size="${DEMO_SIZE:-64MiB}"
size_mib="${size%MiB}"
declare -A pid port
port[alpha]=17801
port[beta]=17802

cleanup() {
    local status=$?
    for node in alpha beta; do
        if [[ -n "${pid[$node]:-}" ]] && kill -0 "${pid[$node]}" 2>/dev/null; then
            kill -TERM "${pid[$node]}"
            timeout 30 tail --pid="${pid[$node]}" -f /dev/null || kill -KILL "${pid[$node]}"
        fi
        if ((status != 0)) && [[ -f "$work/$node.log" ]]; then
            echo "--- $node log" >&2
            tail -n 30 "$work/$node.log" >&2
        fi
    done
    if [[ -z "${DEMO_KEEP:-}" ]]; then rm -rf "$work"; fi
    exit "$status"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
ctl() { local node=$1; shift; "$tandemctl" --socket "$work/$node.ctl" "$@"; }
peer_of() { [[ $1 == alpha ]] && echo beta || echo alpha; }
wait_for() {  # wait_for NODE FIELD VALUE
    for _ in $(seq 600); do
        ctl "$1" --json status r0 | grep -q "\"$2\":\"$3\"" && return
        sleep 0.1
    done
    echo "demo: $1 never reported $2 = $3" >&2
    ctl "$1" status r0 >&2
    exit 1
}

step "certificates for alpha and beta (one CA)"
sh scripts/make-certs.sh "$work/certs" alpha beta

for node in alpha beta; do
    step "starting tandemd $node, replication listener 127.0.0.1:${port[$node]}"
    pid[$node]="$(python3 scripts/lib/start-tandemd.py --log "$work/$node.log" -- \
        "$tandemd" --node-name "$node" --state-dir "$work/$node-state" --control-socket "$work/$node.ctl" \
        --listen "127.0.0.1:${port[$node]}" --tls-ca "$work/certs/ca.crt" \
        --tls-cert "$work/certs/$node.crt" --tls-key "$work/certs/$node.key")"
done

step "creating r0 ($size, sync): beta secondary, alpha primary; enabling both"
for node in beta alpha; do
    role=$([[ $node == alpha ]] && echo primary || echo secondary)
    peer=$(peer_of $node)
    ctl $node create r0 --volume "$work/$node.img" --size "$size" --role "$role" \
        --peer-name "$peer" --peer-address "127.0.0.1:${port[$peer]}" --mode sync \
        --nbd-socket "$work/$node.nbd"
    ctl $node enable r0
done
wait_for alpha peer_disk_state UpToDate
ctl alpha status r0
ctl beta status r0

step "writing $size of random data through alpha's NBD export"
head -c "$((size_mib << 20))" /dev/urandom >"$work/input.raw"
nbdcopy --flush "$work/input.raw" "nbd+unix:///r0?socket=$work/alpha.nbd"

step "planned failover: beta becomes primary, alpha secondary"
ctl beta failover r0
wait_for beta connection_state Connected
ctl alpha status r0
ctl beta status r0

step "writing a pattern through beta, reading everything back through beta"
qemu-io -f raw -c "write -P 0x5a 1M 1M" -c flush "nbd+unix:///r0?socket=$work/beta.nbd" >/dev/null
qemu-io -f raw -c "write -P 0x5a 1M 1M" "$work/input.raw" >/dev/null
nbdcopy "nbd+unix:///r0?socket=$work/beta.nbd" "$work/output.raw"

step "stopping both daemons and comparing"
for node in alpha beta; do
    kill -TERM "${pid[$node]}"
    timeout 30 tail --pid="${pid[$node]}" -f /dev/null
    pid[$node]=""
done
expected="$(sha256sum <"$work/input.raw" | cut -d' ' -f1)"
printf 'written        %s\nread via beta  %s\nalpha volume   %s\nbeta volume    %s\n' "$expected" \
    "$(sha256sum <"$work/output.raw" | cut -d' ' -f1)" "$(sha256sum <"$work/alpha.img" | cut -d' ' -f1)" \
    "$(sha256sum <"$work/beta.img" | cut -d' ' -f1)"
for file in output.raw alpha.img beta.img; do
    [[ "$(sha256sum <"$work/$file" | cut -d' ' -f1)" == "$expected" ]] || { echo "demo: FAILED: $file differs" >&2; exit 1; }
done
echo "demo-pair: OK"
