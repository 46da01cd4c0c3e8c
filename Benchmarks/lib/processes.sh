# Daemons a benchmark script started, and stopping them. Source it from the repository root:
# source Benchmarks/lib/processes.sh
# Entries of `procs` are "label=pid"; stop_all sends SIGTERM, waits up to 30 s for each to
# exit, then SIGKILLs what is left, and empties the list.
procs=()
stop_all() {
    local entry pid
    for entry in "${procs[@]}"; do
        pid="${entry##*=}"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            timeout 30 tail --pid="$pid" -f /dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    procs=()
}
