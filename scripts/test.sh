#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test (unit, simulation,
# real-client interoperability, daemon integration). Extra arguments go to `swift test`,
# e.g. `scripts/test.sh --filter NBDBadInput`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"

# The decoders' garbage and mutation tests again under AddressSanitizer: an overrun of a
# buffer is invisible to their assertions without it. (Only for the whole suite.)
if (($# == 0)); then
    swift build --build-tests --sanitize=address --scratch-path .build-asan
    # Leak checking is off: XCTest's own runner leaks a few objects at exit, which would fail
    # the run; this run is for out-of-bounds accesses.
    ASAN_OPTIONS=detect_leaks=0 swift test --skip-build --sanitize=address --scratch-path .build-asan \
        --filter 'WireDecoderErrorTests|LZ4Tests|WireCodecTests'
fi
