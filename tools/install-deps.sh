#!/usr/bin/env bash
# Installs the Debian 12 packages listed in tools/packages.txt (skips the apt calls when they are
# all present already). Needs root, as on the box and in CI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mapfile -t pkgs < <(grep -v '^\s*#' "$here/packages.txt" | grep -v '^\s*$')
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Node.js runs the browser test. Debian's nodejs (18 on Debian 12) is installed where none is;
# a machine that ships its own Node.js keeps it (Debian's nodejs and npm conflict with such an
# install), but whichever Node.js runs must satisfy tests/browser/package.json "engines", so a
# newer Node.js on a build machine cannot hide a pin that Debian's would reject.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends nodejs npm
fi
need=$(sed -n 's/.*"node": *">=\([0-9]*\)".*/\1/p' "$here/../tests/browser/package.json" | head -n1)
have=$(node -p 'process.versions.node.split(".")[0]')
echo "node: $(command -v node) $(node --version) (the browser test needs >= ${need:-?})"
if [[ -n "$need" && "$have" -lt "$need" ]]; then
  echo "install-deps: Node.js $(node --version) is older than the browser test's engines (>= $need)" >&2
  exit 1
fi
# The Debian package enables a system mosquitto on port 1883; the demo and the tests start their
# own brokers on other ports and never use it.
