#!/usr/bin/env bash
# Coverage-guided fuzzing with clang's libFuzzer under ASan and UBSan (Debian's clang-14 and
# libclang-rt-14-dev).
# Usage: tools/fuzz.sh [--cpu] [--parallel] [SECONDS] [TARGET ...]   (default 60 s, every target)
#   --cpu       SECONDS is CPU time of each target, not wall time: on a box shared with builds a
#               wall-clock run gets only part of a core, so "30 minutes of fuzzing" is counted
#               where it was spent (the target is interrupted once its CPU time reaches SECONDS).
#   --parallel  runs the targets at the same time (each still one process).
#
# Builds build-fuzz/ (-DHGJ_FUZZ=ON), then runs each target under nice -n 19 on a scratch copy
# of its seed corpus (tests/fuzz/corpus/<target>/, which it only reads) and prints executions,
# CPU time, coverage and corpus size. A crash stops that target and leaves the input in
# build-fuzz/findings/<target>/: fix the cause, then copy the input into the target's corpus
# folder as a regression input (ctest and .ci/run replay every corpus file under the sanitizers).
set -euo pipefail
cd "$(dirname "$0")/.."
cpu=0
parallel=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) cpu=1; shift ;;
    --parallel) parallel=1; shift ;;
    *) break ;;
  esac
done
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

# CPU seconds (user + system) of a running process, from /proc/PID/stat.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print int(($12 + $13) / hz) }' \
    "/proc/$1/stat" 2>/dev/null || echo 0
}

# One target: its log is $build/fuzz-<target>.log; exit 0 unless it found something.
fuzz_one() {
  local t=$1 work="$build/fuzz-corpus/$1" findings="$build/findings/$1"
  local log="$build/fuzz-$t.log" wall=$seconds
  mkdir -p "$work" "$findings"
  # With --cpu, wall time is bounded only loosely (ten times the budget); the watcher below ends
  # the run with SIGINT, which libFuzzer answers by printing its final stats and exiting 72.
  [ "$cpu" = 1 ] && wall=$((seconds * 10))
  nice -n 19 "$build/tests/fuzz/$t" "$work" "tests/fuzz/corpus/$t" \
    -max_total_time="$wall" -artifact_prefix="$findings/" -print_final_stats=1 \
    -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1 &
  local pid=$! used=0
  if [ "$cpu" = 1 ]; then
    while kill -0 "$pid" 2>/dev/null; do
      used=$(cpu_seconds "$pid")
      if [ "$used" -ge "$seconds" ]; then
        kill -INT "$pid" 2>/dev/null || true
        break
      fi
      sleep 5
    done
  fi
  local rc=0
  wait "$pid" || rc=$?
  if [ "$cpu" = 1 ] && [ "$rc" = 72 ] && grep -q "run interrupted" "$log"; then
    rc=0
  fi
  {
    echo "== $t: $seconds s ($([ "$cpu" = 1 ] && echo "CPU, $used s used" || echo wall))"
    [ "$rc" = 0 ] || echo "   FINDING: see $log and $findings/"
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$log" | sed 's/^/   /' || true
    grep -E "^#[0-9]+.*(DONE|pulse|INITED)" "$log" | tail -1 | sed 's/^/   /' || true
  }
  return "$rc"
}

status=0
if [ "$parallel" = 1 ]; then
  pids=()
  for t in "${targets[@]}"; do
    fuzz_one "$t" > "$build/fuzz-$t.summary" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || status=1
    cat "$build/fuzz-${targets[$i]}.summary"
  done
else
  for t in "${targets[@]}"; do
    fuzz_one "$t" || status=1
  done
fi
exit $status
