#!/bin/sh
# refresh.sh: copies the dashboard's charting library (uPlot) from the npm package pinned in
# package-lock.json into gateway/api/static/, and records the files' sha256 in uplot.sha256.
# The copies are committed (see README.md beside this file): the C++ build, CI and the Debian
# package build embed them without node or the network. To move to another version:
#   (cd gateway/api/vendor && npm install --package-lock-only --ignore-scripts uplot@X.Y.Z)
#   sh gateway/api/vendor/refresh.sh && sh gateway/api/vendor/check.sh
# then commit package.json, package-lock.json, uplot.sha256 and the three static files.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
static=$(cd "$here/../static" && pwd)
cd "$here"
npm ci --ignore-scripts --no-audit --no-fund
pinned=$(sed -n '/"node_modules\/uplot"/,/}/s/.*"version": *"\([^"]*\)".*/\1/p' package-lock.json)
installed=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' node_modules/uplot/package.json | head -n1)
if [ -z "$pinned" ] || [ "$pinned" != "$installed" ]; then
  echo "refresh.sh: package-lock.json pins uplot '$pinned' but npm installed '$installed'" >&2
  exit 1
fi
cp node_modules/uplot/dist/uPlot.iife.min.js "$static/uplot.min.js"
cp node_modules/uplot/dist/uPlot.min.css "$static/uplot.min.css"
cp node_modules/uplot/LICENSE "$static/uplot.LICENSE.txt"
(cd "$static" && sha256sum uplot.min.js uplot.min.css uplot.LICENSE.txt) > uplot.sha256
echo "refresh.sh: uplot $pinned copied into $static"
cat uplot.sha256
