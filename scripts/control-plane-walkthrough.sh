#!/usr/bin/env bash
# The OpenSDS host-based replication calls, one after the other, as a control plane makes
# them through `tandemctl --json` against two real daemons (alpha and beta) on loopback:
# create (and what is refused), enable, disable, planned failover, forced failover after
# the primary dies, delete. Prints every command and the daemon's reply; docs/integration.md
# quotes this output.
# Environment: WALK_DIR (default: a new directory under /var/tmp), WALK_KEEP=1 keeps it,
# TANDEM_BIN (default: the debug build's directory, built if needed).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${TANDEM_BIN:-}" ]]; then
    swift build >/dev/null || exit 1
    TANDEM_BIN="$(swift build --show-bin-path)"
fi
tandemd="$TANDEM_BIN/tandemd"
tandemctl="$TANDEM_BIN/tandemctl"
work="${WALK_DIR:-$(mktemp -d /var/tmp/tandem-walk.XXXXXX)}"
mkdir -p "$work"
declare -A pid=()

cleanup() {
    for node in "${!pid[@]}"; do
        kill -TERM "${pid[$node]}" 2>/dev/null && timeout 30 tail --pid="${pid[$node]}" -f /dev/null
    done
    if [[ -z "${WALK_KEEP:-}" ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Prints the command as the control plane runs it on that node, then the reply and exit status.
ctl() {
    local node=$1; shift
    printf '\n[%s]$ tandemctl --json %s\n' "$node" "$*"
    "$tandemctl" --socket "$work/$node/control.sock" --json "$@" 2>&1
    printf '(exit %s)\n' "$?"
}
wait_for() {
    local node=$1; shift
    python3 scripts/lib/wait-status.py --socket "$work/$node/control.sock" --name r0 "$@" >/dev/null \
        || { echo "walkthrough: timed out waiting for $node $*" >&2; exit 1; }
}
start() {
    local node=$1
    pid[$node]="$(python3 scripts/lib/start-tandemd.py --log "$work/$node/tandemd.log" -- \
        "$tandemd" --node-name "$node" --state-dir "$work/$node/state" \
        --control-socket "$work/$node/control.sock" --listen "127.0.0.1:${port[$node]}" \
        --tls-ca "$work/tls/ca.crt" --tls-cert "$work/tls/$node.crt" --tls-key "$work/tls/$node.key")" || exit 1
}

scripts/make-certs.sh "$work/tls" alpha beta >/dev/null
declare -A port=([alpha]="$(free_port)" [beta]="$(free_port)")
for node in alpha beta; do mkdir -p "$work/$node"; start "$node"; done
echo "# work directory $work; alpha replicates on 127.0.0.1:${port[alpha]}, beta on 127.0.0.1:${port[beta]}"

echo; echo "## discovery"
ctl alpha ping
ctl alpha capabilities

echo; echo "## create: what this version refuses"
ctl beta create r0 --volume "$work/beta/r0.img" --size 64MiB --role secondary \
    --peer-name alpha --peer-address "127.0.0.1:${port[alpha]}" --mode periodic --period 300
ctl beta create r0 --volume "$work/beta/r0.img" --size 64MiB --role secondary \
    --peer-name alpha --peer-address "127.0.0.1:${port[alpha]}" --mode async --bandwidth 10MiB

echo; echo "## create: secondary first, then primary"
ctl beta create r0 --volume "$work/beta/r0.img" --size 64MiB --role secondary \
    --peer-name alpha --peer-address "127.0.0.1:${port[alpha]}" --mode async --nbd-socket "$work/beta/r0.sock"
ctl alpha create r0 --volume "$work/alpha/r0.img" --size 64MiB --role primary \
    --peer-name beta --peer-address "127.0.0.1:${port[beta]}" --mode async --nbd-socket "$work/alpha/r0.sock"

echo; echo "## enable"
ctl beta enable r0
ctl alpha enable r0
wait_for beta connection_state=Connected disk_state=UpToDate
head -c 16M /dev/urandom | nbdcopy --flush - "nbd+unix:///r0?socket=$work/alpha/r0.sock"
wait_for alpha connection_state=Connected lag_bytes=0
ctl alpha status r0
ctl beta status r0

echo; echo "## delete while enabled"
ctl beta delete r0

echo; echo "## disable, then enable again"
ctl alpha disable r0
ctl beta disable r0
ctl beta enable r0
ctl alpha enable r0
wait_for beta connection_state=Connected disk_state=UpToDate

echo; echo "## planned failover (run on the secondary)"
ctl alpha failover r0
ctl beta failover r0
wait_for alpha role=secondary connection_state=Connected
ctl alpha status r0

echo; echo "## forced failover: the primary (beta) dies"
kill -KILL "${pid[beta]}"; timeout 30 tail --pid="${pid[beta]}" -f /dev/null; unset 'pid[beta]'
wait_for alpha connection_state=Connecting
ctl alpha failover r0
ctl alpha failover r0 --force
ctl alpha status r0

echo; echo "## delete on both nodes"
ctl alpha delete r0
start beta
ctl beta delete r0
ctl beta disable r0
ctl beta delete r0
ctl beta status
