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
# Node.js runs the browser test. Machines that ship their own Node.js (as our build image does)
# keep it: Debian's nodejs and npm packages conflict with such an install.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends nodejs npm
fi
# The Debian package enables a system mosquitto on port 1883; the demo and the tests start their
# own brokers on other ports and never use it.
