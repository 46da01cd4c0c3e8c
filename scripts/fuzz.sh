#!/usr/bin/env bash
# The decoders under libFuzzer (docs/fuzzing.md): builds each fuzz target of Fuzz/ with
# --sanitize=fuzzer and AddressSanitizer, runs it for a bounded time from the committed seed
# corpus, and prints the executions each ran. Fails on a crash (a trap, a broken invariant or
# an ASan report), a hang (one input longer than FUZZ_TIMEOUT_S) or the memory bound (one
# allocation over FUZZ_MALLOC_LIMIT_MB, or the process over FUZZ_RSS_LIMIT_MB).
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     default: 60 s, every target
#
# New inputs the fuzzer finds go to $SCRATCH/fuzz-work/<corpus>/, never into Fuzz/corpus/
# (merge them by hand with -merge=1 when they are worth keeping). A failing input is written
# to $SCRATCH/fuzz-artifacts/<target>/ and the command that replays it is printed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift $(($# > 0 ? 1 : 0))
targets=("$@")
((${#targets[@]} > 0)) || targets=(FuzzNBD FuzzWire FuzzControl FuzzMetadata FuzzPages FuzzBitmap)

scratch="${FUZZ_SCRATCH:-.build-fuzz}"
timeout_s="${FUZZ_TIMEOUT_S:-10}"
malloc_limit_mb="${FUZZ_MALLOC_LIMIT_MB:-32}"
rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-2048}"
max_len="${FUZZ_MAX_LEN:-8192}"

corpus_of() {
    case "$1" in
    FuzzNBD) echo nbd ;;
    FuzzWire) echo wire ;;
    FuzzControl) echo control ;;
    FuzzMetadata) echo metadata ;;
    FuzzPages) echo pages ;;
    FuzzBitmap) echo bitmap ;;
    *) echo "unknown fuzz target $1 (known: FuzzNBD FuzzWire FuzzControl FuzzMetadata FuzzPages FuzzBitmap)" >&2; return 1 ;;
    esac
}

# The longest input of a target: FUZZ_MAX_LEN, except that a metadata input is a whole pair
# of superblock slots (8 KiB) after its 8-byte seed, and a pages input an activity-log ring
# of up to 8 slots (32 KiB).
max_len_of() {
    case "$1" in
    FuzzMetadata) echo $((max_len > 8200 ? max_len : 8200)) ;;
    FuzzPages) echo $((max_len > 32776 ? max_len : 32776)) ;;
    *) echo "$max_len" ;;
    esac
}

for target in "${targets[@]}"; do corpus_of "$target" >/dev/null; done

# TANDEM_LIBFUZZER leaves out the targets' own main (the seed and replay tool of a plain
# build), so libFuzzer's main is the entry point. Both sanitizers go to swiftc in one flag:
# given `--sanitize=fuzzer --sanitize=address`, SwiftPM passes two -sanitize= flags in an
# order that changes from run to run, and the compiler keeps only the last, so modules were
# built without coverage or without ASan, and rebuilt on every run.
build() {
    swift build -c release --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xswiftc -DTANDEM_LIBFUZZER \
        --scratch-path "$scratch" --product "$1" 2>&1 | grep -v "Cannot export local symbol" || true
    [[ -x "$scratch/release/$1" ]] || { echo "fuzz.sh: $1 did not build" >&2; exit 1; }
}

# Coverage counters libFuzzer finds in a binary (each target has 10 000 to 30 000). Without
# them it mutates blindly and finds nothing, while reporting millions of executions.
counters() {
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 "$scratch/release/$1" -runs=0 2>&1 |
        sed -n 's/^INFO: Loaded [0-9]* modules* *(\([0-9]*\) inline 8-bit counters.*/\1/p' | head -1
}
counters_min=5000

for target in "${targets[@]}"; do
    build "$target"
    count="$(counters "$target")"
    if ((${count:-0} < counters_min)); then
        echo "fuzz.sh: $target has ${count:-no} coverage counters; rebuilding it from scratch"
        rm -rf "$(realpath "$scratch/release")"
        build "$target"
        count="$(counters "$target")"
        ((${count:-0} >= counters_min)) || { echo "fuzz.sh: $target is not instrumented ($count counters)" >&2; exit 1; }
    fi
done

declare -A executions coverage
failed=()
for target in "${targets[@]}"; do
    corpus="$(corpus_of "$target")"
    work="$scratch/fuzz-work/$corpus"
    artifacts="$scratch/fuzz-artifacts/$target"
    log="$scratch/fuzz-logs/$target.log"
    mkdir -p "$work" "$artifacts" "$(dirname "$log")"
    echo "== $target: ${seconds}s from Fuzz/corpus/$corpus (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    status=0
    # The Swift runtime's backtracer would hold a crashing process for seconds; libFuzzer
    # reports crashes itself. Leak checking is off: the runtime's and Foundation's caches
    # look like leaks at exit, and a real per-input leak trips the RSS bound instead.
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 \
        "$scratch/release/$target" "$work" "Fuzz/corpus/$corpus" \
        -max_total_time="$seconds" -timeout="$timeout_s" -malloc_limit_mb="$malloc_limit_mb" \
        -rss_limit_mb="$rss_limit_mb" -max_len="$(max_len_of "$target")" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
    executions[$target]="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    coverage[$target]="$(grep -oE "cov: [0-9]+ ft: [0-9]+ corp: [0-9]+" "$log" | tail -1)"
    grep -E "^#[0-9]+ +DONE|^Done [0-9]+ runs" "$log" || true
    if ((status != 0)); then
        failed+=("$target")
        grep -E "ERROR: libFuzzer|ERROR: AddressSanitizer|Fatal error|fuzz invariant broken|SUMMARY" "$log" | head -20 || true
        for artifact in "$artifacts"/*; do
            [[ -e "$artifact" ]] && echo "replay: $scratch/release/$target $artifact   (or: swift run $target $artifact)"
        done
        echo "full log: $log"
    fi
done

echo
echo "target        executions   result   coverage at the end"
for target in "${targets[@]}"; do
    result=ok
    [[ " ${failed[*]} " == *" $target "* ]] && result=FAILED
    printf '%-13s %11s   %-6s   %s\n' "$target" "${executions[$target]:-?}" "$result" "${coverage[$target]:-}"
done
((${#failed[@]} == 0)) || exit 1
