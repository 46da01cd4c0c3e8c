#!/usr/bin/env bash
# The test suite: installs what is missing, builds, runs the tests, prints the slowest ten.
#
#   scripts/test.sh            everything (what CI runs through .ci/run): unit suites, the
#                              simulator's 3 800 seeds, the real-process integration suite, and
#                              the decoders again under AddressSanitizer, then a bounded
#                              libFuzzer run of each decoder (scripts/fuzz.sh, TANDEM_FUZZ_S).
#   scripts/test.sh --quick    the inner loop: unit suites, 300 simulator seeds and one real
#                              replicated pair (a sync pair under fio); no ASan build.
#   scripts/test.sh ARGS...    `swift test ARGS...` after the build, e.g. `--filter NBDBadInput`.
#
# Why it is shaped this way: the integration suite is serialised (its tests start real
# daemons; see Tests/TandemIntegrationTests/Support/Integration.swift) and spends most of its
# time waiting on daemons and clients, not computing. In a full run it is split in two
# processes that run side by side (each serialised in itself; every test has its own
# directory, ports and daemons): the heaviest suites ($integration_heavy, about half of the
# suite's time) in one, everything else in the other — a new suite lands in the second
# without being listed. It runs in the foreground while the
# CPU-bound rest — every other test target, then the ASan build and run, then the fuzz run — runs beside it, at a
# lower priority, in a second `swift test` process (`--ignore-lock`: both only read the build
# directory; the ASan build has a scratch path of its own). Anything outside the `Integration`
# suite counts as a unit test and runs in that second process, so a real-process test must
# live in `Integration` to stay serialised.
#
# Each part's log goes to .build/test-logs/ (and to the terminal: the foreground part as it
# runs, the background part when it ends); the closing lines of every `swift test` and the
# simulator's step count are repeated in the summary. The script exits non-zero if any part
# failed.
#
# Environment: TANDEM_SIM_SEEDS (default 3800, or 300 with --quick) sets the simulator's
# seeds; the integration suite's own variables are in Integration.swift.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
if (($# > 0)) && [[ $1 == --quick ]]; then
    if (($# > 1)); then
        echo "test.sh: --quick takes no other arguments" \
            "(to pick tests, use: scripts/test.sh --filter X)" >&2
        exit 2
    fi
    mode=quick
elif (($# > 0)); then
    mode=args
fi

# The integration suite's real-process tests, and the one that stands for them in --quick.
readonly integration=TandemIntegrationTests
readonly quick_pair='ReplicationPairTests/syncPairHoldsFioVerifiedWritesOnBothVolumes'
# The heaviest real-process suites (about half of the suite's time on 2 cores: 575 s of
# 1,420 in a fresh-clone CI run on 2026-12-06, with OverlappingWriteTests and
# SplitBrainResyncTests, about 75 s, added after it): the second integration process of a
# full run.
readonly integration_heavy='/(FaultCampaign|StagedCatchUpTests|CatchUpTests|MetadataCrashTests|ActivityLogCrashTests|DiskFailureTests|OverlappingWriteTests|SplitBrainResyncTests)/'
readonly asan_filter='WireDecoderErrorTests|LZ4Tests|WireCodecTests|MetadataFormatTests'

scripts/setup.sh
swift build --build-tests

if [[ $mode == args ]]; then
    export TANDEM_SIM_SEEDS="${TANDEM_SIM_SEEDS:-3800}"
    exec swift test --skip-build "$@"
fi

# The simulator prints its total of simulated steps; 3 800 seeds are about 3.3 million steps
# (at least 3 million a run, issue 14). TandemCore and the simulator are compiled optimised
# even in a debug build (Package.swift): the units part, simulator included, took 123 s in
# the fresh-clone CI of 2026-12-07 (1,001 s unoptimised the run before).
if [[ $mode == quick ]]; then
    export TANDEM_SIM_SEEDS="${TANDEM_SIM_SEEDS:-300}"
else
    export TANDEM_SIM_SEEDS="${TANDEM_SIM_SEEDS:-3800}"
fi

logs=.build/test-logs
mkdir -p "$logs"
rm -f "$logs"/*.log

# Runs one `swift test` into $logs/<name>.log (and the terminal when $SHOW_OUTPUT is set);
# the outcome is the test run's exit status. --no-parallel keeps each reported test time the
# test's own (not time spent queued behind other tests) and leaves a core to the daemons of
# the integration suite.
run_tests() {
    local name=$1
    shift
    local start=$SECONDS status=0
    if [[ -n ${SHOW_OUTPUT:-} ]]; then
        swift test --skip-build --ignore-lock --no-parallel "$@" 2>&1 | tee -a "$logs/$name.log" || status=$?
    else
        swift test --skip-build --ignore-lock --no-parallel "$@" >>"$logs/$name.log" 2>&1 || status=$?
    fi
    echo "$name: exit $status after $((SECONDS - start)) s" >>"$logs/parts"
    return "$status"
}

# The decoders' garbage and mutation tests again under AddressSanitizer: an overrun of a
# buffer is invisible to their assertions without it. Leak checking is off: the test runner
# leaks a few objects at exit, which would fail the run; this run is for out-of-bounds accesses.
# TANDEM_DECODER_TESTS_ONLY makes the package declare only those suites' targets (TandemCore,
# TandemIO and their C modules, TandemCoreTests, TandemTLSTests; Package.swift), so the ASan
# build skips the daemon, the integration suite and the tools.
run_asan() {
    local start=$SECONDS status=0
    TANDEM_DECODER_TESTS_ONLY=1 swift build --build-tests --sanitize=address --scratch-path .build-asan \
        >"$logs/asan.log" 2>&1 || status=$?
    echo "asan-build: exit $status after $((SECONDS - start)) s" >>"$logs/parts"
    ((status == 0)) || return "$status"
    TANDEM_DECODER_TESTS_ONLY=1 ASAN_OPTIONS=detect_leaks=0 run_tests asan --sanitize=address \
        --scratch-path .build-asan --filter "$asan_filter"
}

# The decoders under libFuzzer (scripts/fuzz.sh, docs/fuzzing.md), a bounded run: TANDEM_FUZZ_S
# seconds per target (60 unless set; 0 skips it). A crash, hang or allocation over its bound
# fails the run.
run_fuzz() {
    local start=$SECONDS status=0 seconds="${TANDEM_FUZZ_S:-60}"
    ((seconds > 0)) || return 0
    scripts/fuzz.sh "$seconds" >"$logs/fuzz.log" 2>&1 || status=$?
    echo "fuzz: exit $status after $((SECONDS - start)) s ($seconds s per target)" >>"$logs/parts"
    return "$status"
}

# The CPU-bound part, in the background: every target but the integration suite, then (full
# run only) ASan and the fuzz run. All run even when one fails, so one run reports every failure. It
# runs at a lower CPU and I/O priority: the integration suite's daemons are the critical path
# and answer to timeouts, the background part only has to end before them.
background_part() {
    local status=0
    renice -n 10 -p "$BASHPID" >/dev/null 2>&1 || true
    ionice -c 2 -n 7 -p "$BASHPID" >/dev/null 2>&1 || true
    run_tests units --skip "$integration" || status=$?
    if [[ $mode == full ]]; then
        run_asan || status=$?
        run_fuzz || status=$?
    fi
    return "$status"
}

: >"$logs/parts"
background_part &
background_pid=$!

# The foreground part: the serialised real-process suite, shown as it runs; in a full run its
# heaviest suites run beside it in a second process (normal priority: its daemons answer to
# timeouts too), shown when it ends.
heavy_status=0
if [[ $mode == quick ]]; then
    foreground=(--filter "$quick_pair")
else
    foreground=(--filter "$integration" --skip "$integration_heavy")
    run_tests integration-heavy --filter "$integration_heavy" &
    heavy_pid=$!
fi
foreground_status=0
SHOW_OUTPUT=1 run_tests integration "${foreground[@]}" || foreground_status=$?
if [[ $mode == full ]]; then
    wait "$heavy_pid" || heavy_status=$?
fi

background_status=0
wait "$background_pid" || background_status=$?
for name in integration-heavy units asan fuzz; do
    if [[ -f $logs/$name.log ]]; then
        echo
        echo "==== $name ($logs/$name.log)"
        cat "$logs/$name.log"
    fi
done

# The slowest ten tests over every part, from Swift Testing's "Test X passed after N seconds"
# and XCTest's "Test Case 'X' passed (N seconds)" lines.
slowest_ten() {
    local name
    for name in integration integration-heavy units asan; do
        [[ -f $logs/$name.log ]] || continue
        sed -n -E \
            -e "s/^.* Test (.+) (passed|failed) after ([0-9.]+) seconds.*$/\3 \1 [$name]/p" \
            -e "s/^Test Case '(.+)' (passed|failed) \(([0-9.]+) seconds\).*$/\3 \1 [$name]/p" \
            "$logs/$name.log"
    done | sort -rn | awk '
        # Not "Test run with N tests" (the whole run); awk reads everything, so no SIGPIPE.
        $2 == "run" && $3 == "with" { next }
        shown < 10 { time = $1; $1 = ""; printf "%9.3f s %s\n", time, $0; shown++ }'
}

echo
echo "==== summary ($mode run, TANDEM_SIM_SEEDS=$TANDEM_SIM_SEEDS)"
cat "$logs/parts"
for name in units integration integration-heavy asan; do
    [[ -f $logs/$name.log ]] || continue
    grep -h -E "Executed [0-9]+ tests?|Test run with [0-9]+ tests?|simulated steps in total" "$logs/$name.log" |
        sed "s/^/$name: /" || true
done
echo
echo "==== slowest ten tests"
slowest_ten || true

# Every failed test and the issues it recorded, last, so a truncated CI log still names them.
for name in units integration integration-heavy asan; do
    [[ -f $logs/$name.log ]] || continue
    if grep -q -E '^✘ ' "$logs/$name.log"; then
        echo
        echo "==== failures in $name"
        grep -E '^✘ ' "$logs/$name.log" | grep -v '^✘ Test run with' | head -60 | cut -c1-600
    fi
done

# One plain closing line over every part ("N passed, N failed"): the tests Swift Testing ran
# (its "Test run with N tests" lines) and the tests it reported failed.
total=0
failed=0
for name in units integration integration-heavy asan; do
    [[ -f $logs/$name.log ]] || continue
    count=$(sed -n -E 's/^.*Test run with ([0-9]+) tests?.*$/\1/p' "$logs/$name.log" | tail -1)
    total=$((total + ${count:-0}))
    failed=$((failed + $(grep -E '^✘ Test .* failed after' "$logs/$name.log" | grep -c -v '^✘ Test run with' || true)))
done
echo
echo "test.sh: $((total - failed)) passed, $failed failed"

if ((foreground_status != 0 || heavy_status != 0 || background_status != 0)); then
    echo
    echo "test.sh: FAILED (integration part exit $foreground_status, its heavy half" \
        "exit $heavy_status, other parts exit $background_status; logs in $logs/)" >&2
    exit 1
fi
