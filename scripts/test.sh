#!/usr/bin/env bash
# Installs the dependencies (Debian packages), builds tinyemo and runs the test suite.
# BUILD_DIR (default: build) is configured and built from scratch when it does not exist.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${BUILD_DIR:-build}
jobs=$(nproc)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$jobs"
ctest --test-dir "$build" -j"$jobs" --output-on-failure
