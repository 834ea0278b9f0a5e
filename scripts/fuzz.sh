#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and fuzzes each for a while.
#
#   scripts/fuzz.sh [-t SECONDS] [-j JOBS] [NAME...]
#
# NAME is a target's stem: fuzz/<NAME>_fuzz.cpp (default: every fuzz/*_fuzz.cpp),
# fuzzed one after another for SECONDS each (default 60, or $FUZZ_SECONDS), each
# input limited to 512 MB of RSS ($FUZZ_RSS_MB) and 10 s ($FUZZ_TIMEOUT).
# Seeds come from fuzz/corpus/<NAME>/ when it exists (committed, keep them tiny);
# what the fuzzer finds grows fuzz/corpus-<NAME>/ (git-ignored, kept between runs).
# fuzz/<NAME>.dict, when present, is passed as a libFuzzer dictionary.
# Crashes are saved as build-fuzz/artifacts/<NAME>-crash-*; reproduce one with
#   build-fuzz/fuzz/<NAME>_fuzz build-fuzz/artifacts/<NAME>-crash-...
# Exits non-zero when any target crashed. BUILD_DIR overrides build-fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
jobs=$(nproc)
while getopts "t:j:h" opt; do
  case $opt in
    t) seconds=$OPTARG ;;
    j) jobs=$OPTARG ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in fuzz/*_fuzz.cpp; do n=$(basename "$f" .cpp); names+=("${n%_fuzz}"); done
fi
for n in "${names[@]}"; do
  [ -f "fuzz/${n}_fuzz.cpp" ] || { echo "fuzz.sh: no fuzz/${n}_fuzz.cpp" >&2; exit 2; }
done

build=${BUILD_DIR:-build-fuzz}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DTINYEMO_FUZZ=ON -DTINYEMO_BUILD_TESTS=OFF -DTINYEMO_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$jobs" --target "${names[@]/%/_fuzz}"
mkdir -p "$build/artifacts"

failed=()
for n in "${names[@]}"; do
  corpus="fuzz/corpus-$n"
  mkdir -p "$corpus"
  # Memory and time bounded per input: a parser that allocates by what a
  # header claims (or spins on a short file) is a finding, not a slow run.
  args=(-max_total_time="$seconds" -rss_limit_mb="${FUZZ_RSS_MB:-512}" -timeout="${FUZZ_TIMEOUT:-10}"
        -print_final_stats=1
        -artifact_prefix="$build/artifacts/$n-")
  [ -f "fuzz/$n.dict" ] && args+=(-dict="fuzz/$n.dict")
  dirs=("$corpus")
  [ -d "fuzz/corpus/$n" ] && dirs+=("fuzz/corpus/$n")
  log="$build/artifacts/$n.log"
  echo "== $n: ${seconds}s, corpus ${dirs[*]} (log: $log)"
  if "$build/fuzz/${n}_fuzz" "${args[@]}" "${dirs[@]}" >"$log" 2>&1; then
    # The last status line (executions, coverage, corpus) and the final stats.
    grep -E '^#[0-9]+' "$log" | tail -1
    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$log" | tr '\n' ' '
    echo
  else
    echo "!! $n FAILED; the tail of $log:"
    tail -30 "$log"
    failed+=("$n")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: crashes in: ${failed[*]}" >&2
  exit 1
fi
