#!/bin/bash
# The benchmark in one command (docs/benchmarks.md): builds the gateway and the bench tools,
# then runs tools/bench/bench.py on loopback, bounded in time. Arguments go to bench.py, e.g.
#   tools/bench/run.sh              # everything, 3 repetitions (~30-40 min on 2 cores)
#   tools/bench/run.sh --quick      # 1 repetition, smaller loads (~8 min)
#   tools/bench/run.sh --no-peers   # without the peers' harness
#   tools/bench/run.sh --hazard-cut [--seconds 20]   # hazard -> relay command latency only
#                                   # (tools/bench/hazard_cut.py, ~1 min)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${HGJ_BUILD_DIR:-$ROOT/build}
LIMIT_S=${HGJ_BENCH_TIMEOUT_S:-3600}
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
ninja -C "$BUILD" -j2 hgj_bench_tools
# The gateway is optional for the broker / floor / peers parts: bench.py reports what is missing.
ninja -C "$BUILD" -j2 hgj-gateway || echo "run.sh: hgj-gateway did not build; gateway parts will be skipped" >&2
if [ "${1:-}" = "--hazard-cut" ]; then
  shift
  exec timeout --kill-after=30 "$LIMIT_S" /usr/bin/python3 "$ROOT/tools/bench/hazard_cut.py" \
    --build-dir "$BUILD" "$@"
fi
exec timeout --kill-after=30 "$LIMIT_S" /usr/bin/python3 "$ROOT/tools/bench/bench.py" --build-dir "$BUILD" "$@"
