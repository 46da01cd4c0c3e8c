#!/usr/bin/env bash
# The CPU cost of a request-trace hop (Benchmarks/tools/trace-cost.swift), compiled with -O
# against the daemon's own RequestTrace and MonotonicClock sources. Rerun: Benchmarks/trace-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
{
    echo "import Glibc"
    sed -n '/^public enum MonotonicClock/,/^}/p' Sources/TandemIO/LatencyHistogram.swift
    sed '/^extension EventLoop/,$d' Sources/TandemIO/RequestTrace.swift | grep -v '^import'
} >"$work/trace.swift"
swiftc="$(command -v swiftc || echo /opt/swift/usr/bin/swiftc)"
cp Benchmarks/tools/trace-cost.swift "$work/main.swift"  # top-level code lives in main.swift
"$swiftc" -O "$work/trace.swift" "$work/main.swift" -o "$work/trace-cost"
for round in 1 2 3; do echo "round $round:"; "$work/trace-cost"; done
