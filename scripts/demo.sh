#!/usr/bin/env bash
# The main job, end to end on one machine: build tandemd, start it, create a file-backed
# resource, write through NBD, read back, compare checksums, show status, stop, clean up.
# Environment: DEMO_DIR (default: a new directory under ${TMPDIR:-/tmp}), DEMO_SIZE (256MiB).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
swift build -c release
bin="$(swift build -c release --show-bin-path)"
tandemd="$bin/tandemd"
tandemctl="$bin/tandemctl"

work="${DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tandem-demo.XXXXXX")}"
mkdir -p "$work"
size="${DEMO_SIZE:-256MiB}"
size_mib="${size%MiB}"
control="$work/control.sock"
volume="$work/r0.img"
nbd_socket="$work/r0.sock"
uri="nbd+unix:///r0?socket=$nbd_socket"
pid=""

cleanup() {
    local status=$?
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        timeout 30 tail --pid="$pid" -f /dev/null || kill -KILL "$pid"
    fi
    if ((status != 0)) && [[ -f "$work/tandemd.log" ]]; then
        echo "--- tandemd log ($work/tandemd.log)" >&2
        tail -n 40 "$work/tandemd.log" >&2
    fi
    if [[ -z "${DEMO_KEEP:-}" ]]; then rm -rf "$work"; fi
    exit "$status"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "starting tandemd in $work"
pid="$(python3 scripts/lib/start-tandemd.py --log "$work/tandemd.log" -- \
    "$tandemd" --node-name demo --state-dir "$work/state" --control-socket "$control")"
echo "tandemd ready (pid $pid)"

step "creating resource r0: $size file-backed volume, NBD on $nbd_socket"
"$tandemctl" --socket "$control" create r0 --volume "$volume" --size "$size" --nbd-socket "$nbd_socket"
nbdinfo "$uri"

step "writing $size of random data through NBD (nbdcopy)"
head -c "$((size_mib << 20))" /dev/urandom >"$work/input.raw"
nbdcopy --flush --progress "$work/input.raw" "$uri"

step "writing unaligned patterns through NBD (qemu-io)"
qemu-io -f raw -c "write -P 0xab 1000 3000" -c "write -P 0xcd 8191 2" -c "flush" "$uri" >/dev/null
qemu-io -f raw -c "write -P 0xab 1000 3000" -c "write -P 0xcd 8191 2" "$work/input.raw" >/dev/null

step "reading back through NBD and comparing checksums"
nbdcopy "$uri" "$work/output.raw"
expected="$(sha256sum <"$work/input.raw" | cut -d' ' -f1)"
read_back="$(sha256sum <"$work/output.raw" | cut -d' ' -f1)"
on_disk="$(sha256sum <"$volume" | cut -d' ' -f1)"
printf 'written   %s\nread back %s\nvolume    %s\n' "$expected" "$read_back" "$on_disk"
if [[ "$expected" != "$read_back" || "$expected" != "$on_disk" ]]; then
    echo "demo: FAILED: checksums differ" >&2
    exit 1
fi
echo "checksums equal"

step "status"
"$tandemctl" --socket "$control" status r0

step "stopping tandemd"
kill -TERM "$pid"
timeout 30 tail --pid="$pid" -f /dev/null
pid=""
echo "demo: OK"
