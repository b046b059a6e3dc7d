#!/usr/bin/env bash
# Builds, then runs the whole test suite (unit, e2e and root tests; root tests
# are RUN_SERIAL and fail loudly when not run as root). ctest's summary
# ("N% tests passed, M tests failed out of K") is the last line; the exit code
# is ctest's. Extra arguments go to ctest, e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build.sh
exec ctest --test-dir build --output-on-failure -j2 "$@"
