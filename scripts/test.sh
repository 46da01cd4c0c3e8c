#!/usr/bin/env bash
# The test suite: installs what is missing, builds, runs the tests, prints the slowest ten.
#
#   scripts/test.sh            everything (what CI runs through .ci/run): unit suites, the
#                              simulator's 3 800 seeds, the real-process integration suite, and
#                              the decoders again under AddressSanitizer, and a bounded
#                              libFuzzer run of each decoder (scripts/fuzz.sh, TANDEM_FUZZ_S).
#   scripts/test.sh --quick    the inner loop: unit suites, 300 simulator seeds and one real
#                              replicated pair (a sync pair under fio); no ASan build.
#   scripts/test.sh ARGS...    `swift test ARGS...` after the build, e.g. `--filter NBDBadInput`.
#
# Why it is shaped this way: the integration suite is serialised (its tests start real
# daemons; see Tests/TandemIntegrationTests/Support/Integration.swift) and spends most of its
# time waiting on daemons and clients, not computing. In a full run it is split over
# TANDEM_INTEGRATION_PROCESSES processes (3 unless set) that run side by side, each
# serialised in itself (every test has its own directory, ports and daemons). The split is by
# leaf suite, balanced by the seconds each took (scripts/integration-suite-seconds): heaviest
# first, each to the process with the fewest seconds so far. A suite the file does not list
# counts as its `default` and so lands in the lightest process without being listed. The
# suites come from `swift test list`, and the run fails if the processes together ran fewer
# tests than it lists. The first process runs in the foreground, shown as it runs, while the
# CPU-bound rest — every other test target in another `swift test` process (`--ignore-lock`:
# all only read the build directory), and beside it the ASan build and run and the fuzz
# builds and run (scratch paths of their own) — runs beside them at a lower priority. The
# ASan and fuzz parts need nothing from the debug build, so they start with the script, beside
# that build, at the lowest priority (background_part). Anything outside the `Integration`
# suite counts as a unit test and runs in a units process (units, and units-2 for the suite
# named by $units_apart: two cores for the units), so a real-process test must live in
# `Integration` to stay serialised.
#
# Each part's log goes to .build/test-logs/ (and to the terminal: the foreground part as it
# runs, the background part when it ends); the closing lines of every `swift test` and the
# simulator's step count are repeated in the summary, and each part's line there gives its
# wall seconds, the CPU seconds its processes used and when it started (seconds after the
# script's start), the debug build's line included; then how much of the machine's CPU time
# was idle in each stretch of the run ($logs/timeline). The script exits non-zero if any part
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
# The integration suite's processes in a full run, and the seconds each leaf suite took.
readonly integration_processes="${TANDEM_INTEGRATION_PROCESSES:-3}"
readonly suite_seconds=scripts/integration-suite-seconds
readonly asan_filter='WireDecoderErrorTests|LZ4Tests|WireCodecTests|MetadataFormatTests'
# The unit suite that runs in a process of its own (units-2) beside the other unit suites (units),
# so that two cores work on them: the node simulator's RPO pacing classes, about half of the
# units' time (176 of 359 s in a --quick run at load 12, 2026-12-08), the next suite a fifth.
readonly units_apart='^TandemSimulationTests\.PacingNodeSimulationTests/'
if ! [[ $integration_processes =~ ^[1-9][0-9]*$ ]]; then
    echo "test.sh: TANDEM_INTEGRATION_PROCESSES must be a whole number from 1 up" \
        "(got '$integration_processes')" >&2
    exit 2
fi

scripts/setup.sh

if [[ $mode == args ]]; then
    swift build --build-tests
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
rm -f "$logs"/*.log "$logs"/*.cpu "$logs/list" "$logs/list.err" "$logs/plan" "$logs/integration-suite-seconds" \
    "$logs/timeline" "$logs/built"
: >"$logs/parts"

# Runs one `swift test` into $logs/<name>.log (and the terminal when $SHOW_OUTPUT is set);
# the outcome is the test run's exit status. --no-parallel keeps each reported test time the
# test's own (not time spent queued behind other tests) and leaves a core to the daemons of
# the integration suite.
run_tests() {
    local name=$1
    shift
    local start=$SECONDS status=0
    with_cpu "$logs/$name.cpu" swift_test "$name" "$@" || status=$?
    echo "$name: exit $status after $((SECONDS - start)) s, $(cat "$logs/$name.cpu") CPU s (from +$start s)" >>"$logs/parts"
    return "$status"
}

# Several `swift test` processes share .build (the parts run beside each other): one that
# starts while another holds the build database open can fail before running anything
# ("unable to attach DB: ... database is locked", then "no tests found"; the fresh-clone CI
# of 2026-12-07's sixth session lost its unit part so). Such an attempt is tried again, up to
# five times; a run that started its tests is never repeated.
swift_test() {
    local name=$1 attempt offset status attempted
    shift
    for attempt in 1 2 3 4 5; do
        offset=$(stat -c %s "$logs/$name.log" 2>/dev/null || echo 0)
        status=0
        if [[ -n ${SHOW_OUTPUT:-} ]]; then
            swift test --skip-build --ignore-lock --no-parallel "$@" 2>&1 | tee -a "$logs/$name.log" || status=$?
        else
            swift test --skip-build --ignore-lock --no-parallel "$@" >>"$logs/$name.log" 2>&1 || status=$?
        fi
        ((status == 0)) && return 0
        attempted=$(tail -c +$((offset + 1)) "$logs/$name.log")
        grep -q "unable to attach DB" <<<"$attempted" || return "$status"
        grep -q "Test run started" <<<"$attempted" && return "$status"
        echo "test.sh: $name: the build database was locked before any test ran; again (attempt $((attempt + 1)))" |
            tee -a "$logs/$name.log" >&2
        sleep 2
    done
    return "$status"
}

# Runs "$@" in a subshell and writes to $1 the CPU seconds (user + system) it used: bash's
# `times` there counts every process the subshell waited for and those they waited for (the
# test runner and the daemons it started). The run is CPU-bound on two cores, so each part's
# CPU seconds, not its wall time, say what it costs.
with_cpu() {
    local file=$1
    shift
    (
        status=0
        "$@" || status=$?
        # `times` itself, not in a pipeline: a pipeline's forked copy has waited for no one.
        times >"$file.times"
        awk 'function seconds(t) { split(t, p, "m"); return p[1] * 60 + p[2] }
             NR == 2 { printf "%.0f\n", seconds($1) + seconds($2) }' "$file.times" >"$file"
        rm -f "$file.times"
        exit "$status"
    )
}

# The decoders' garbage and mutation tests again under AddressSanitizer: an overrun of a
# buffer is invisible to their assertions without it. Leak checking is off: the test runner
# leaks a few objects at exit, which would fail the run; this run is for out-of-bounds accesses.
# TANDEM_DECODER_TESTS_ONLY makes the package declare only those suites' targets (TandemCore,
# TandemIO and their C modules, TandemCoreTests, TandemTLSTests; Package.swift), and of the two
# test targets only the decoders' files (`decoderTestSources`), so the ASan build skips the
# daemon, the integration suite, the tools and the other unit suites. The run then checks that
# it ran every decoder test the debug build lists: a decoder suite's file missing from that
# list would otherwise drop out of this run unnoticed.
run_asan() {
    local start=$SECONDS status=0
    TANDEM_DECODER_TESTS_ONLY=1 with_cpu "$logs/asan-build.cpu" swift build --build-tests --sanitize=address \
        --scratch-path .build-asan >"$logs/asan.log" 2>&1 || status=$?
    echo "asan-build: exit $status after $((SECONDS - start)) s, $(cat "$logs/asan-build.cpu") CPU s (from +$start s)" >>"$logs/parts"
    ((status == 0)) || return "$status"
    TANDEM_DECODER_TESTS_ONLY=1 ASAN_OPTIONS=detect_leaks=0 run_tests asan --sanitize=address \
        --scratch-path .build-asan --filter "$asan_filter" || status=$?
    return "$status"
}

# After the ASan run and `swift test list`: fails when the ASan run did not start every decoder
# test the debug build lists.
check_asan_ran_every_decoder_test() {
    local missing
    missing=$(asan_missing_tests) || true
    if [[ -n $missing ]]; then
        echo "asan: the ASan build lacks decoder tests the debug build lists (Package.swift's" \
            "decoderTestSources):" $missing | tee -a "$logs/asan.log" >>"$logs/parts"
        return 1
    fi
}

# The decoder tests (suites named in $asan_filter) that `swift test list` names in the debug
# build and the ASan run did not start, one per line.
asan_missing_tests() {
    [[ -s $logs/list ]] || return 0
    grep -E "^(TandemCoreTests|TandemTLSTests)\.[^/]*($asan_filter)[^/]*/" "$logs/list" | sed 's#^[^/]*/##' | sort -u |
        while IFS= read -r test; do
            grep -qF "◇ Test $test started." "$logs/asan.log" || echo "$test"
        done
}

# The decoders under libFuzzer (scripts/fuzz.sh, docs/fuzzing.md), a bounded run: TANDEM_FUZZ_S
# seconds per target (30 unless set; 0 skips it). A crash, hang or allocation over its bound
# fails the run. Why 30: each run starts from the committed corpus, and in the fresh-clone CI
# of 2026-12-07 the 60 s runs had reached by 30 s 99-100% of their final coverage, FuzzWire
# 98% (1,466 of 1,491 edges); the other 30 s a target cost 3 minutes of a core on a machine
# whose two cores the whole run keeps busy. scripts/fuzz.sh with a longer budget is the way
# to look harder.
run_fuzz() {
    local start=$SECONDS status=0 seconds="${TANDEM_FUZZ_S:-30}"
    ((seconds > 0)) || return 0
    with_cpu "$logs/fuzz.cpu" scripts/fuzz.sh "$seconds" >"$logs/fuzz.log" 2>&1 || status=$?
    echo "fuzz: exit $status after $((SECONDS - start)) s, $(cat "$logs/fuzz.cpu") CPU s ($seconds s per target, with its" \
        "builds; from +$start s)" >>"$logs/parts"
    return "$status"
}

# The machine's CPU time at a moment of the run: "NAME +S s BUSY IDLE" appended to
# $logs/timeline, BUSY and IDLE in CPU seconds since boot (/proc/stat: iowait counts as idle).
# The summary gives each stretch between two marks its wall seconds and how much of the
# machine's CPU time was idle in it: what more parallelism could still win.
cpu_mark() {
    awk -v name="$1" -v at="$SECONDS" -v hz="$(getconf CLK_TCK)" '$1 == "cpu" {
            idle = $5 + $6; busy = 0
            for (i = 2; i <= NF; i++) if (i != 5 && i != 6) busy += $i
            printf "%s +%d s %.0f %.0f\n", name, at, busy / hz, idle / hz
        }' /proc/stat >>"$logs/timeline" 2>/dev/null || true
}

# Sets the CPU niceness and I/O class of process PID and all its descendants, parent before
# children: a child forked after its parent changed inherits the new values, one forked before
# is found among the children. Lowering niceness needs root (CI runs as root); without it the
# processes keep their old niceness.
reprioritise_tree() {
    local pid=$1 niceness=$2 child
    shift 2
    renice -n "$niceness" -p "$pid" >/dev/null 2>&1 || true
    ionice "$@" -p "$pid" >/dev/null 2>&1 || true
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        reprioritise_tree "$child" "$niceness" "$@"
    done
}

# Ends process PID and all its descendants (the side builds when the debug build failed).
kill_tree() {
    local child
    kill -STOP "$1" 2>/dev/null || return 0
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$child"; done
    kill -TERM "$1" 2>/dev/null || true
    kill -CONT "$1" 2>/dev/null || true
}

# The CPU-bound part, in the background: every target but the integration suite; beside it
# (full run only) the ASan build and run, and the fuzz run with its builds. Neither of those two
# needs the debug build, so they start with the script, beside the debug build, at the lowest
# priority (niceness 19, idle I/O): they take only what that build leaves idle (its serial
# stretches: resolving packages, emitting a module others wait for, linking), and whatever
# they finish there is CPU time taken off the part after the build, where every test competes.
# Once the debug build is done (its exit status arrives through the FIFO $logs/built), they
# go up to the background's priority. The units wait for that build and `swift test list`. All
# run even when one fails, so one run reports every failure. The background runs at a lower
# CPU and I/O priority than the integration processes: their daemons are the critical path
# and answer to timeouts, the background part only has to end before them.
background_part() {
    local status=0 built=1 fuzz_pid= asan_pid= units_apart_pid=
    exec {built_fd}>&-  # only the main script writes the FIFO: its end is this part's end of waiting
    renice -n 10 -p "$BASHPID" >/dev/null 2>&1 || true
    ionice -c 2 -n 7 -p "$BASHPID" >/dev/null 2>&1 || true
    if [[ $mode == full ]]; then
        (reprioritise_tree "$BASHPID" 19 -c 3 && run_fuzz) &
        fuzz_pid=$!
        (reprioritise_tree "$BASHPID" 19 -c 3 && run_asan) &
        asan_pid=$!
    fi
    read -r built <"$logs/built" || true
    if [[ $built == 0 ]]; then
        for pid in $fuzz_pid $asan_pid; do reprioritise_tree "$pid" 10 -c 2 -n 7; done
        run_tests units-2 --filter "$units_apart" &
        units_apart_pid=$!
        run_tests units --skip "$integration" --skip "$units_apart" || status=$?
        wait "$units_apart_pid" || status=$?
    else
        for pid in $fuzz_pid $asan_pid; do kill_tree "$pid"; done
        status=1
    fi
    if [[ $mode == full ]]; then
        wait "$asan_pid" || status=$?
        check_asan_ran_every_decoder_test || status=1
        wait "$fuzz_pid" || status=$?
    fi
    cpu_mark background-end
    return "$status"
}

cpu_mark start
# The packages resolved once, before three builds (debug, ASan, fuzz) would each write a fresh
# clone's Package.resolved at the same moment; the debug build would do this first anyway.
if [[ $mode == full ]]; then
    swift package resolve
fi
# The background part waits on this FIFO for the debug build's exit status. The script holds it
# open for reading and writing (which never blocks), so the write below never waits for the
# reader, and the background part sees the end of the file if the script dies first.
mkfifo "$logs/built"
exec {built_fd}<>"$logs/built"
background_part &
background_pid=$!

build_start=$SECONDS
build_status=0
with_cpu "$logs/build.cpu" swift build --build-tests || build_status=$?
echo "build: exit $build_status after $((SECONDS - build_start)) s, $(cat "$logs/build.cpu") CPU s (from +$build_start s)" \
    >>"$logs/parts"
cpu_mark built
# Every test's name (the integration processes' plan), before any `swift test` runs beside it.
if [[ $mode == full && $build_status == 0 ]]; then
    swift test list --skip-build >"$logs/list" 2>"$logs/list.err" || true
fi
echo "$build_status" >&"$built_fd"
exec {built_fd}>&-
if ((build_status != 0)); then
    wait "$background_pid" || true
    cat "$logs/parts" >&2
    echo "test.sh: FAILED: the debug build (exit $build_status)" >&2
    exit 1
fi

# The integration suite's leaf suites (the suite holding each test `swift test list` named,
# in $logs/list), one per line.
integration_suites() {
    sed -n -E "s#^$integration\.(.*/)?([^/]+)/[^/]+\$#\2#p" "$logs/list" | sort -u
}

# The tests `swift test list` named in the integration suite.
integration_test_count() {
    grep -c "^$integration\." "$logs/list" || true
}

# One line per integration process: its planned seconds, then its leaf suites joined by '|'.
# Longest first: the suites sorted by their seconds in $suite_seconds (one not listed counts
# as the file's `default`), each given to the process with the fewest seconds so far.
plan_integration() {
    integration_suites |
        awk 'FNR == NR { if ($1 !~ /^#/ && NF == 2) seconds[$1] = $2; next }
             { print (($1 in seconds) ? seconds[$1] : seconds["default"]) + 0, $1 }' "$suite_seconds" - |
        sort -k1,1nr -k2,2 |
        awk -v processes="$integration_processes" '
            {
                best = 1
                for (p = 2; p <= processes; p++) if (load[p] < load[best]) best = p
                load[best] += $1
                suites[best] = suites[best] (suites[best] == "" ? "" : "|") $2
            }
            END { for (p = 1; p <= processes; p++) if (suites[p] != "") print load[p] + 0, suites[p] }'
}

# The seconds each leaf suite of the integration suite took in this run's logs, in
# $suite_seconds' format (copy it there to rebalance): a suite's line is the one that closes
# it, and it counts when a test started inside it (not through a nested suite).
measured_suite_seconds() {
    awk '
        /^◇ Suite .* started\.$/ { depth++; name[depth] = $3; sub(/\.$/, "", name[depth]); tests[depth] = 0; next }
        /^◇ Test .* started\.$/ && !/^◇ Test case / { tests[depth] = 1; next }
        /^[✔✘] Suite .* after [0-9.]+ seconds/ {
            if (tests[depth] && match($0, /after [0-9.]+ seconds/))
                printf "%s %d\n", name[depth], substr($0, RSTART + 6, RLENGTH - 14) + 0.5
            depth--
        }' "$@" | sort -k2,2nr -k1,1
}

# Process INDEX's ports for its daemons (TANDEM_TEST_PORTS, ReplicatedPair.freePort): a slice
# of 20000–32767 of its own, so that no two processes hand out the same port.
integration_ports() {
    local slice=$((12768 / integration_processes))
    echo "$((20000 + $1 * slice))-$((20000 + ($1 + 1) * slice - 1))"
}

# The integration part: in --quick the one pair in the foreground; in a full run the planned
# processes, the first in the foreground (shown as it runs), the others beside it (normal
# priority: their daemons answer to timeouts too), shown when they end. Each process is
# named integration, integration-2, ... after its log.
integration_names=(integration)
integration_status=0
if [[ $mode == quick ]]; then
    SHOW_OUTPUT=1 run_tests integration --filter "$quick_pair" || integration_status=$?
else
    mapfile -t plan < <(plan_integration)
    if ((${#plan[@]} == 0)); then
        echo "test.sh: swift test list names no $integration suite ($logs/list.err)" >&2
        integration_status=1
    fi
    # Each process runs the suites of its plan line: "^TandemIntegrationTests.(…/)?(A|B|…)/".
    pids=()
    for index in "${!plan[@]}"; do
        ((index == 0)) || integration_names+=("integration-$((index + 1))")
        echo "${integration_names[index]}: planned ${plan[index]%% *} s: ${plan[index]#* }" >>"$logs/plan"
        ((index == 0)) && continue
        TANDEM_TEST_PORTS="$(integration_ports "$index")" \
            run_tests "${integration_names[index]}" --filter "^$integration\.(.*/)?(${plan[index]#* })/" &
        pids+=($!)
    done
    if ((${#plan[@]} > 0)); then
        TANDEM_TEST_PORTS="$(integration_ports 0)" SHOW_OUTPUT=1 \
            run_tests integration --filter "^$integration\.(.*/)?(${plan[0]#* })/" || integration_status=$?
    fi
    for pid in "${pids[@]}"; do
        wait "$pid" || integration_status=$?
    done
fi

cpu_mark integration-end
background_status=0
wait "$background_pid" || background_status=$?
cpu_mark end
# Every part's log but the first integration process's, which was shown as it ran.
shown_parts=("${integration_names[@]:1}" units units-2 asan fuzz)
# The parts whose logs hold tests.
test_parts=(units units-2 "${integration_names[@]}" asan)
for name in "${shown_parts[@]}"; do
    if [[ -f $logs/$name.log ]]; then
        echo
        echo "==== $name ($logs/$name.log)"
        cat "$logs/$name.log"
    fi
done

# Each stretch between two marks of $logs/timeline (cpu_mark): its wall seconds and the share of
# the machine's CPU time that was idle in it.
machine_idle() {
    [[ -s $logs/timeline ]] || return 0
    echo "machine CPU ($(nproc) CPUs; the whole machine, not only this run):"
    # The marks are appended as they happen, so the file is in time order.
    awk '
        NR > 1 {
            wall = $2 - at; busy = $4 - b; idle = $5 - i
            share = (busy + idle > 0) ? 100 * idle / (busy + idle) : 0
            printf "  %-16s -> %-16s %5d s wall, %6d CPU s busy, %6d idle (%d%% idle)\n", name, $1, wall, busy, idle, share
        }
        { name = $1; at = $2; b = $4; i = $5 }' "$logs/timeline"
}

# The slowest ten tests over every part, from Swift Testing's "Test X passed after N seconds"
# and XCTest's "Test Case 'X' passed (N seconds)" lines.
slowest_ten() {
    local name
    for name in "${test_parts[@]}"; do
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
[[ -f $logs/plan ]] && cut -c1-100 "$logs/plan"
cat "$logs/parts"
machine_idle || true
for name in "${test_parts[@]}"; do
    [[ -f $logs/$name.log ]] || continue
    grep -h -E "Executed [0-9]+ tests?|Test run with [0-9]+ tests?|simulated steps in total" "$logs/$name.log" |
        sed "s/^/$name: /" || true
done
echo
echo "==== slowest ten tests"
slowest_ten || true

# Every failed test and the issues it recorded, last, so a truncated CI log still names them.
for name in "${test_parts[@]}"; do
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
integration_ran=0
for name in "${test_parts[@]}"; do
    [[ -f $logs/$name.log ]] || continue
    count=$(sed -n -E 's/^.*Test run with ([0-9]+) tests?.*$/\1/p' "$logs/$name.log" | tail -1)
    total=$((total + ${count:-0}))
    [[ $name == integration* ]] && integration_ran=$((integration_ran + ${count:-0}))
    failed=$((failed + $(grep -E '^✘ Test .* failed after' "$logs/$name.log" | grep -c -v '^✘ Test run with' || true)))
done
echo
echo "test.sh: $((total - failed)) passed, $failed failed"

# A full run's integration processes together ran every test the suite lists (a suite no
# process's filter matched would be missing), and their suites' seconds are kept for a rebalance.
if [[ $mode == full ]]; then
    integration_listed=$(integration_test_count)
    if ((integration_ran != integration_listed)); then
        echo "test.sh: the integration processes ran $integration_ran tests; swift test list names" \
            "$integration_listed" >&2
        integration_status=1
    fi
    integration_logs=()
    for name in "${integration_names[@]}"; do
        [[ -f $logs/$name.log ]] && integration_logs+=("$logs/$name.log")
    done
    measured_suite_seconds "${integration_logs[@]}" </dev/null >"$logs/integration-suite-seconds" || true
    echo "test.sh: the integration suites' seconds in this run: $logs/integration-suite-seconds"
fi

if ((integration_status != 0 || background_status != 0)); then
    echo
    echo "test.sh: FAILED (integration processes exit $integration_status, other parts" \
        "exit $background_status; logs in $logs/)" >&2
    exit 1
fi
