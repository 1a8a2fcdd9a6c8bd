#!/bin/sh
# Runs the dashboard browser test, or skips (exit 77, which ctest reports as skipped) when the
# browser or the npm packages are not installed.
here=$(cd "$(dirname "$0")" && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  echo "SKIPPED: $chromium not found (apt-get install -y chromium)"
  exit 77
fi
if ! command -v node >/dev/null 2>&1; then
  echo "SKIPPED: node not found (apt-get install -y nodejs npm)"
  exit 77
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  echo "SKIPPED: $here/node_modules/playwright-core missing (cd tests/browser && npm ci)"
  exit 77
fi
exec node "$here/dashboard.test.mjs" "$@"
