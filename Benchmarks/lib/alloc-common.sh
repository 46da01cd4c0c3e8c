# Shell helpers shared by Benchmarks/allocations.sh and Benchmarks/allocations-pair.sh, which
# run tandemd with the malloc counter Benchmarks/tools/malloccount.c preloaded.
# Source it from the repository root: source Benchmarks/lib/alloc-common.sh

# alloc_build_counter OUT.so: compile the counter into a preloadable library.
alloc_build_counter() {
    cc -O2 -shared -fPIC -o "$1" Benchmarks/tools/malloccount.c
}

# alloc_count PID LOG: make the counter in PID print its count (SIGUSR2) to its stderr, which
# goes to LOG, and print that count. Waits for the new line (at most 5 s) rather than for a
# fixed time; fails if the process is gone or does not answer.
alloc_count() {
    local pid="$1" log="$2" seen lines
    seen="$(grep -c 'mallocs=[0-9]*' "$log" || true)"
    kill -USR2 "$pid" || { echo "alloc_count: process $pid is not running" >&2; return 1; }
    for _ in $(seq 500); do
        lines="$(grep -c 'mallocs=[0-9]*' "$log" || true)"
        if ((lines > seen)); then
            grep -o 'mallocs=[0-9]*' "$log" | tail -1 | cut -d= -f2
            return 0
        fi
        sleep 0.01
    done
    echo "alloc_count: process $pid printed no count to $log within 5 s" >&2
    return 1
}

# fio_total_ios FIO_JSON: requests the (single) job completed, reads plus writes.
fio_total_ios() {
    python3 -c 'import json,sys
text = open(sys.argv[1]).read()
j = json.loads(text[text.index("{"):])["jobs"][0]  # fio may print warnings before the JSON
print(j["read"]["total_ios"] + j["write"]["total_ios"])' "$1"
}
