#!/usr/bin/env bash
# Installs dependencies (if missing), then configures and builds into build/.
# The build type defaults to RelWithDebInfo (set in CMakeLists.txt); extra
# arguments are passed to the configure step, e.g. scripts/build.sh -DSIDETAP_SANITIZE=ON
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build "$@"
cmake --build build -j"$(nproc)"
