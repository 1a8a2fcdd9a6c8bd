#!/usr/bin/env bash
# The whole test suite, several times in a row, on a busy box: `ctest -j2` ROUNDS times while a
# CPU hog keeps every core busy (one busy loop per core, at the tests' own priority) and the demo
# compound runs beside it (tools/demo.sh --no-install --no-build: its own broker, simulator,
# robots and gateway on free ports). A test that leans on an idle machine, a wall-clock bound or
# a fixed port fails here. Prints one line per round and a verdict; exits 1 if any round failed.
#
#   tools/ctest-under-load.sh [--rounds N] [--build DIR] [--hogs N] [-- CTEST_ARGS...]
#
# Defaults: 5 rounds, build/, one hog per core. Bounded: each round by ctest's own per-test
# timeouts and by ROUND_LIMIT seconds (default 3600), the hog and the demo by the whole run's
# bound. The sanitizer builds are not run here (tools/test.sh --asan / --tsan).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
rounds=5
build="$root/build"
hogs="$(nproc)"
round_limit="${ROUND_LIMIT:-3600}"
ctest_args=()
while (($#)); do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --build) build="$(cd "$2" && pwd)"; shift 2 ;;
    --hogs) hogs="$2"; shift 2 ;;
    --) shift; ctest_args=("$@"); break ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ctest-under-load: unknown argument \"$1\" (see --help)" >&2; exit 2 ;;
  esac
done
[[ -f "$build/CTestTestfile.cmake" ]] || { echo "ctest-under-load: no tests in $build" >&2; exit 2; }

out="$build/under-load"
mkdir -p "$out"
bound=$((rounds * round_limit + 300))
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT

for ((i = 0; i < hogs; i++)); do
  setsid timeout "$bound" bash -c 'while :; do :; done' &
  pids+=($!)
done
# The demo builds nothing here (--no-build) and uses the binaries of build/ in the tree.
setsid "$root/tools/demo.sh" --no-install --no-build --duration "$bound" >"$out/demo.log" 2>&1 &
pids+=($!)
# The rounds start once the demo's gateway answers: its dashboard URL, once printed, must say
# /healthz (200, or 503 while a part is still starting: it runs).
url=""
for ((i = 0; i < 240; i++)); do
  url="$(grep -oE 'dashboard: http://[0-9.:]+/' "$out/demo.log" | head -1 | cut -d' ' -f2 || true)"
  if [[ -n "$url" ]] && curl -s -o /dev/null -w '%{http_code}' "${url}healthz" | grep -qE '200|503'
  then
    break
  fi
  url=""
  kill -0 "${pids[-1]}" 2>/dev/null || break
  sleep 0.5
done
[[ -n "$url" ]] || { echo "ctest-under-load: the demo did not start (see $out/demo.log)" >&2; exit 1; }
echo "ctest-under-load: the demo runs at $url; $hogs CPU hogs"

failed_rounds=0
for ((r = 1; r <= rounds; r++)); do
  start=$SECONDS
  rc=0
  (cd "$build" && timeout "$round_limit" ctest -j2 --output-on-failure "${ctest_args[@]}" \
     >"$out/round-$r.log" 2>&1) || rc=$?
  summary="$(grep -E "tests passed|tests failed" "$out/round-$r.log" | tail -1 || true)"
  printf 'round %d: %s in %d s (exit %d)\n' "$r" "${summary:-no summary}" $((SECONDS - start)) "$rc"
  if ((rc != 0)); then
    failed_rounds=$((failed_rounds + 1))
    sed -n '/The following tests FAILED/,$p' "$out/round-$r.log" | sed 's/^/  /'
  fi
  if ! kill -0 "${pids[-1]}" 2>/dev/null; then
    echo "ctest-under-load: the demo stopped during round $r (see $out/demo.log)"
    failed_rounds=$((failed_rounds + 1))
    break
  fi
done
echo "ctest-under-load: $((rounds - failed_rounds)) of $rounds rounds passed beside $hogs CPU hogs" \
     "and the demo (logs in $out/)"
((failed_rounds == 0))
