#!/usr/bin/env bash
# The OpenSDS host-based replication calls, one after the other, as a control plane makes
# them through `tandemctl --json` against two real daemons (alpha and beta) on loopback:
# create (and what is refused), enable, disable, planned failover, forced failover after
# the primary dies, delete. Prints every command and the daemon's reply.
# With --write-doc, also renders docs/integration.md from scripts/lib/integration.md.template,
# putting this run's output where the template names each step ({{label}}).
# Environment: WALK_DIR (default: a new directory under /var/tmp), WALK_KEEP=1 keeps it,
# TANDEM_BIN (default: the debug build's directory, built if needed).
set -uo pipefail
cd "$(dirname "$0")/.."
write_doc=""
[[ "${1:-}" == "--write-doc" ]] && write_doc=1

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
# Prints the command as the control plane runs it on that node, the reply and exit status;
# with --write-doc also records it under the step's label for the page.
ctl() {
    local label=$1 node=$2; shift 2
    local reply status block
    reply="$("$tandemctl" --socket "$work/$node/control.sock" --json "$@" 2>&1)"
    status=$?
    block="$(printf '[%s]$ tandemctl --json %s\n%s\n(exit %s)' "$node" "$*" "$reply" "$status")"
    printf '\n%s\n' "$block"
    if [[ -n "$write_doc" ]]; then printf '@@ %s\n%s\n' "$label" "$block" >>"$work/steps.out"; fi
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
ctl ping alpha ping
ctl capabilities alpha capabilities

echo; echo "## create: what this version refuses"
ctl create-periodic beta create r0 --volume "$work/beta/r0.img" --size 64MiB --role secondary \
    --peer-name alpha --peer-address "127.0.0.1:${port[alpha]}" --mode periodic --period 300
ctl create-bandwidth beta create r0 --volume "$work/beta/r0.img" --size 64MiB --role secondary \
    --peer-name alpha --peer-address "127.0.0.1:${port[alpha]}" --mode async --bandwidth 10MiB

echo; echo "## create: secondary first, then primary"
ctl create-secondary beta create r0 --volume "$work/beta/r0.img" --size 64MiB --role secondary \
    --peer-name alpha --peer-address "127.0.0.1:${port[alpha]}" --mode async --nbd-socket "$work/beta/r0.sock"
ctl create-primary alpha create r0 --volume "$work/alpha/r0.img" --size 64MiB --role primary \
    --peer-name beta --peer-address "127.0.0.1:${port[beta]}" --mode async --nbd-socket "$work/alpha/r0.sock"

echo; echo "## enable"
ctl enable-secondary beta enable r0
ctl enable-primary alpha enable r0
wait_for beta connection_state=Connected disk_state=UpToDate
head -c 16M /dev/urandom | nbdcopy --flush - "nbd+unix:///r0?socket=$work/alpha/r0.sock"
wait_for alpha connection_state=Connected lag_bytes=0
ctl status-primary alpha status r0
ctl status-secondary beta status r0

echo; echo "## delete while enabled"
ctl delete-enabled beta delete r0

echo; echo "## disable, then enable again"
ctl disable-primary alpha disable r0
ctl disable-secondary beta disable r0
ctl reenable-secondary beta enable r0
ctl reenable-primary alpha enable r0
wait_for beta connection_state=Connected disk_state=UpToDate

echo; echo "## planned failover (run on the secondary)"
ctl failover-on-primary alpha failover r0
ctl failover-planned beta failover r0
wait_for alpha role=secondary connection_state=Connected
ctl status-after-failover alpha status r0

echo; echo "## forced failover: the primary (beta) dies"
kill -KILL "${pid[beta]}"; timeout 30 tail --pid="${pid[beta]}" -f /dev/null; unset 'pid[beta]'
wait_for alpha connection_state=WFConnection
ctl failover-unforced alpha failover r0
ctl failover-forced alpha failover r0 --force
ctl status-after-forced alpha status r0

echo; echo "## delete on both nodes"
ctl delete-alpha alpha delete r0
start beta
ctl delete-beta-enabled beta delete r0
ctl disable-beta beta disable r0
ctl delete-beta beta delete r0
ctl status-beta-empty beta status

if [[ -n "$write_doc" ]]; then
    python3 scripts/lib/render-walkthrough.py scripts/lib/integration.md.template "$work/steps.out" \
        >docs/integration.md.tmp && mv docs/integration.md.tmp docs/integration.md || exit 1
    echo; echo "wrote docs/integration.md"
fi
