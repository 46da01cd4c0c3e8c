# Two release tandemd processes, alpha and beta, on loopback with TLS, for the scripts that
# measure one pair (readbalance.sh, crc-datapath.sh). Source it from the repository root after
# `repo` is set, then call `tls_pair_start NAME SIZE`: it makes WORK (a fresh
# BENCH_DIR/NAME.XXXXXX, default .bench/, removed at exit unless BENCH_KEEP is set) with
# certificates and WORK/src.img, SIZE of random data, and WORK/tgt.img, a copy; starts
# both daemons (their PIDs in `pid_of[alpha]`, `pid_of[beta]`; ports `port_a`, `port_b`),
# waits for their control sockets, and defines `ctl NODE ARGS...` (tandemctl on NODE's socket).
bench_dir="${BENCH_DIR:-$repo/.bench}"
mkdir -p "$bench_dir"
bin="$(swift build -c release --show-bin-path)"
[[ -x "$bin/tandemd" && -x "$bin/tandemctl" ]] || swift build -c release --product tandemd --product tandemctl
pids=()
declare -A pid_of
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -n "${BENCH_KEEP:-}" ]] || rm -rf "$work"
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ctl() { "$bin/tandemctl" --socket "$work/$1.ctl" "${@:2}"; }
tls_pair_start() {
    work="$(mktemp -d "$bench_dir/$1.XXXXXX")"
    trap cleanup EXIT
    scripts/make-certs.sh "$work/certs" alpha beta >/dev/null 2>&1
    head -c "$2" /dev/urandom > "$work/src.img"
    cp "$work/src.img" "$work/tgt.img"
    port_a="$(port)"; port_b="$(port)"
    local node listen
    for node in alpha beta; do
        listen="$port_a"; [[ "$node" == beta ]] && listen="$port_b"
        "$bin/tandemd" --node-name "$node" --state-dir "$work/$node" --control-socket "$work/$node.ctl" \
            --listen "127.0.0.1:$listen" --tls-ca "$work/certs/ca.crt" --tls-cert "$work/certs/$node.crt" \
            --tls-key "$work/certs/$node.key" > "$work/$node.log" 2>&1 &
        pids+=("$!"); pid_of[$node]="$!"
    done
    for node in alpha beta; do
        for _ in $(seq 100); do [[ -S "$work/$node.ctl" ]] && break; sleep 0.1; done
    done
}
# tls_pair_create MODE: resource r0 in MODE, beta's volume WORK/tgt.img (secondary), alpha's
# WORK/src.img (primary), --initial-sync none, NBD sockets WORK/NODE-r0.sock; enabled on both
# (a refusal is ignored: create may have enabled it already).
tls_pair_create() {
    ctl beta create r0 --volume "$work/tgt.img" --role secondary --peer-name alpha --peer-address "127.0.0.1:$port_a" \
        --mode "$1" --initial-sync none --nbd-socket "$work/beta-r0.sock" >/dev/null
    ctl alpha create r0 --volume "$work/src.img" --role primary --peer-name beta --peer-address "127.0.0.1:$port_b" \
        --mode "$1" --initial-sync none --nbd-socket "$work/alpha-r0.sock" >/dev/null
    ctl beta enable r0 >/dev/null 2>&1 || true
    ctl alpha enable r0 >/dev/null 2>&1 || true
}
