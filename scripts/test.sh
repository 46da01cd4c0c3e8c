#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test (unit, simulation,
# real-client interoperability, daemon integration). Extra arguments go to `swift test`,
# e.g. `scripts/test.sh --filter NBDBadInput`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
swift build --build-tests
# The simulator runs TANDEM_SIM_SEEDS seeds (3 000 unless set: about 2.3 million simulated
# steps, under a minute on two cores) and prints the total of simulated steps.
export TANDEM_SIM_SEEDS="${TANDEM_SIM_SEEDS:-3000}"
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
