#!/usr/bin/env bash
# Installs the dependencies (Debian packages), builds tinyemo and runs the test suite.
# BUILD_DIR (default: build) is configured and built from scratch when it does not exist.
# Then the portable configuration (-DTINYEMO_NATIVE=OFF, in $BUILD_DIR-portable)
# builds test_core alone and runs it under each kernel variant (ctest -L isa).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${BUILD_DIR:-build}
jobs=$(nproc)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$jobs"
ctest --test-dir "$build" -j"$jobs" --output-on-failure
cmake -S . -B "$build-portable" -DCMAKE_BUILD_TYPE=Release -DTINYEMO_NATIVE=OFF
cmake --build "$build-portable" --target test_core -j"$jobs"
ctest --test-dir "$build-portable" -L isa -j"$jobs" --output-on-failure
