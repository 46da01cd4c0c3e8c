#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test (unit, simulation,
# real-client interoperability, daemon integration). Extra arguments go to `swift test`,
# e.g. `scripts/test.sh --filter NBDBadInput`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
