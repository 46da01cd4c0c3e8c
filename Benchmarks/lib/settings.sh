# The settings every fio benchmark script shares, from the environment (see each script's
# header), and the check that the backing files go to a real disk. Source it from the
# repository root after `repo` is set: source Benchmarks/lib/settings.sh
bench_dir="${BENCH_DIR:-$repo/.bench}"
size="${BENCH_SIZE:-1G}"
runtime="${BENCH_RUNTIME:-15}"
ramp="${BENCH_RAMP:-2}"
repeat="${BENCH_REPEAT:-3}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

# bench_prepare NAME RESULTS: installs what the benchmarks need, makes the directories, and
# refuses a tmpfs BENCH_DIR (the page cache would be measured, not a disk).
bench_prepare() {
    scripts/setup.sh
    mkdir -p "$bench_dir" "$(dirname "$2")"
    if [[ "$(stat -f -c %T "$bench_dir")" == "tmpfs" ]]; then
        echo "$1: $bench_dir is tmpfs; set BENCH_DIR to a directory on a real disk" >&2
        exit 1
    fi
}

# bench_bin NAME: sets `bin` to BENCH_BIN (another build's tandemd and tandemctl, for an A/B)
# or to this tree's release build, built now.
bench_bin() {
    if [[ -n "${BENCH_BIN:-}" ]]; then
        bin="$BENCH_BIN"
        [[ -x "$bin/tandemd" && -x "$bin/tandemctl" ]] || { echo "$1: no tandemd/tandemctl in $bin" >&2; exit 2; }
    else
        swift build -c release
        bin="$(swift build -c release --show-bin-path)"
    fi
}
