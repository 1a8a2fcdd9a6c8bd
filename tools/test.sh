#!/usr/bin/env bash
# Builds and runs every test (unit, config cases, integration against real mosquitto and
# libmodbus servers, browser tests in headless Chromium). Usage: tools/test.sh [ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
# playwright-core for the browser test (pinned in package-lock.json); it drives the system
# Chromium and downloads no browser of its own.
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHGJ_WERROR=ON
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure --timeout 600 -j "$(nproc)" "$@"
