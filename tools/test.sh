#!/usr/bin/env bash
# Builds and runs the tests.
#   Usage: tools/test.sh [--asan | --tsan] [--build-only | --test-only] [ctest args]
#   (no flag)  the release build (build/, GCC): every test (unit, config cases, integration
#              against real mosquitto and libmodbus servers, fault matrix, fuzz corpora, the
#              3-minute soak, browser tests in headless Chromium)
#   --asan     ASan + UBSan build (build-asan/, clang): unit, integration and fault tests, and
#              every fuzz corpus replayed (with bounded mutations)
#   --tsan     TSan build (build-tsan/, clang): the ingest, pipeline, storage and uplink tests
#   --build-only / --test-only   one half (.ci/run builds one variant while another's tests run)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=release
phase=all
while (($#)); do
  case "$1" in
  --asan) mode=asan; shift ;;
  --tsan) mode=tsan; shift ;;
  --build-only) phase=build; shift ;;
  --test-only) phase=test; shift ;;
  *) break ;;
  esac
done
building() { [ "$phase" != test ]; }
testing() { [ "$phase" != build ]; }
building && tools/install-deps.sh
jobs=$(nproc)
# The sanitizer variants are built by clang 14: it compiles them in half GCC 12's time
# (ASan+UBSan: http_api_test.cpp 51 s against 102 s, alert_manager.cpp 32 s against 73 s), which
# keeps CI's three builds inside its hour. The release build stays GCC's, the compiler of the
# Debian package, so both compilers check the code with warnings as errors. -O1 -g1 (line
# tables): the sanitizers need no more to name the file and line, and the build takes less than
# half the time of -O2 -g.
sanflags=(-DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG"
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG")
case $mode in
release)
  if building; then
    # playwright-core for the browser test, pinned in package-lock.json to a version that runs
    # on Debian 12's Node.js 18 (from the npm registry: this step needs it once); it drives the
    # system Chromium and downloads no browser of its own. --engine-strict: a Node.js the pin
    # does not accept fails here, not as a confusing browser-test failure later.
    pinned=$(sed -n '/"node_modules\/playwright-core"/,/}/s/.*"version": *"\([^"]*\)".*/\1/p' \
      tests/browser/package-lock.json)
    installed=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
      tests/browser/node_modules/playwright-core/package.json 2>/dev/null | head -n1 || true)
    if [ "$installed" != "$pinned" ]; then
      (cd tests/browser && npm ci --engine-strict --no-audit --no-fund)
    fi
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHGJ_WERROR=ON
    cmake --build build -j "$jobs"
  fi
  if testing; then
    ctest --test-dir build --output-on-failure --timeout 600 -j "$jobs" "$@"
  fi
  ;;
asan)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  export LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0
  if building; then
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHGJ_WERROR=ON \
      -DHGJ_SANITIZE=address,undefined "${sanflags[@]}"
    cmake --build build-asan -j "$jobs"
  fi
  # Tests that measure the resident set are left out: ASan's allocator (shadow memory, the
  # quarantine of freed blocks) makes RSS grow by design, and the release run checks them. So
  # is the district simulation (ten daemons at once: a load test, run by the release job).
  if testing; then
    ctest --test-dir build-asan --output-on-failure --timeout 900 -j "$jobs" \
      -L '^(unit|integration|faults|fuzz)$' -LE '^(soak|browser|district)$' \
      -E 'memory stays flat|bounded memory' "$@"
  fi
  ;;
tsan)
  # TSan does not model std::atomic_thread_fence, which Boost.Asio's handler memory recycling
  # uses; our own code uses none under TSan (core/sanitizers.h).
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/sanitizers/tsan.supp"
  areas='ingest|pipeline|storage|uplink'
  if building; then
    cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHGJ_WERROR=ON \
      -DHGJ_SANITIZE=thread "${sanflags[@]}"
    # Every test program of those areas (unit_, integration_, faults_): a program left unbuilt
    # has no tests for ctest to select, and its area would pass unchecked.
    targets=$(cd tests && ls -d unit/* integration/* faults/* | grep -E "/($areas)\$" | tr / _)
    cmake --build build-tsan -j "$jobs" --target hgj-gateway hgj-sim $targets
  fi
  if testing; then
    ctest --test-dir build-tsan --output-on-failure --timeout 900 -j "$jobs" \
      -R "^(faults )?($areas)" "$@"
  fi
  ;;
esac
