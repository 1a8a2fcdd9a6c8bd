#!/usr/bin/env bash
# Coverage-guided fuzzing with clang's libFuzzer under ASan and UBSan (Debian's clang-14 and
# libclang-rt-14-dev). Usage: tools/fuzz.sh [SECONDS] [TARGET ...]   (default 60 s, every target)
#
# Builds build-fuzz/ (-DHGJ_FUZZ=ON), then runs each target for SECONDS under nice -n 19 on a
# scratch copy of its seed corpus (tests/fuzz/corpus/<target>/, which it only reads) and prints
# executions, coverage and corpus size. A crash stops that target and leaves the input in
# build-fuzz/findings/<target>/: fix the cause, then copy the input into the target's corpus
# folder as a regression input (ctest and .ci/run replay every corpus file under the sanitizers).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
build=build-fuzz
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DHGJ_FUZZ=ON -DHGJ_SANITIZE=address,undefined >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.cpp; do
    n=$(basename "$f" .cpp)
    [ -d "tests/fuzz/corpus/$n" ] && targets+=("$n")
  done
fi
nice -n 19 cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1
status=0
for t in "${targets[@]}"; do
  work="$build/fuzz-corpus/$t"
  findings="$build/findings/$t"
  mkdir -p "$work" "$findings"
  log="$build/fuzz-$t.log"
  echo "== $t: $seconds s"
  if ! nice -n 19 "$build/tests/fuzz/$t" "$work" "tests/fuzz/corpus/$t" \
      -max_total_time="$seconds" -artifact_prefix="$findings/" -print_final_stats=1 \
      -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
    echo "   FINDING: see $log and $findings/"
    status=1
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$log" | sed 's/^/   /' || true
  grep -E "^#[0-9]+.*(DONE|pulse)" "$log" | tail -1 | sed 's/^/   /' || true
done
exit $status
