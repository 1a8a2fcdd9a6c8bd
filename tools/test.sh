#!/usr/bin/env bash
# Builds and runs every test (unit, config cases, integration against real mosquitto and
# libmodbus servers, browser tests in headless Chromium). Usage: tools/test.sh [ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
# playwright-core for the browser test, pinned in package-lock.json to a version that runs on
# Debian 12's Node.js 18 (from the npm registry: this step needs it once); it drives the system
# Chromium and downloads no browser of its own. --engine-strict: a Node.js the pin does not accept
# fails here, not as a confusing browser-test failure later.
pinned=$(sed -n '/"node_modules\/playwright-core"/,/}/s/.*"version": *"\([^"]*\)".*/\1/p' \
  tests/browser/package-lock.json)
installed=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
  tests/browser/node_modules/playwright-core/package.json 2>/dev/null | head -n1 || true)
if [ "$installed" != "$pinned" ]; then
  (cd tests/browser && npm ci --engine-strict --no-audit --no-fund)
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHGJ_WERROR=ON
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure --timeout 600 -j "$(nproc)" "$@"
