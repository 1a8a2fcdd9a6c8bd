#!/bin/sh
# check.sh: the committed uPlot files in gateway/api/static/ are those recorded in uplot.sha256,
# their banner names the version package-lock.json pins, and, where node_modules is installed
# (npm ci in this folder), they are byte for byte the pinned package's. Run by ctest; needs
# no network and no node.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
static=$(cd "$here/../static" && pwd)
pinned=$(sed -n '/"node_modules\/uplot"/,/}/s/.*"version": *"\([^"]*\)".*/\1/p' "$here/package-lock.json")
[ -n "$pinned" ] || { echo "FAIL: package-lock.json pins no uplot version"; exit 1; }
grep -q "\"uplot\": \"$pinned\"" "$here/package.json" ||
  { echo "FAIL: package.json does not pin uplot to exactly $pinned"; exit 1; }
(cd "$static" && sha256sum --quiet -c "$here/uplot.sha256") ||
  { echo "FAIL: gateway/api/static/ uPlot files differ from uplot.sha256 (run refresh.sh)"; exit 1; }
head -c 200 "$static/uplot.min.js" | grep -q "(v$pinned)" ||
  { echo "FAIL: uplot.min.js is not version $pinned"; exit 1; }
if [ -d "$here/node_modules/uplot" ]; then
  cmp "$here/node_modules/uplot/dist/uPlot.iife.min.js" "$static/uplot.min.js"
  cmp "$here/node_modules/uplot/dist/uPlot.min.css" "$static/uplot.min.css"
  cmp "$here/node_modules/uplot/LICENSE" "$static/uplot.LICENSE.txt"
  echo "ok - the committed files are those of the installed package"
fi
echo "ok - uplot $pinned: $(wc -l < "$here/uplot.sha256") files match uplot.sha256"
