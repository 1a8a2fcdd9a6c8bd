#!/usr/bin/env bash
# Builds the Debian package from the committed HEAD, in a copy outside the tree, and checks it
# with lintian. Prints the .deb's path on the last line.
#
#   tools/build-deb.sh [--out DIR] [--version VERSION] [--arch ARCH] [--no-lintian]
#
# --version adds a changelog entry (for upgrade tests); --arch arm64 cross-builds (needs
# crossbuild-essential-arm64 and the :arm64 build dependencies, see tools/arm64.sh).
# Default output: $HGJ_CACHE/deb (HGJ_CACHE defaults to /work/cache).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${HGJ_CACHE:-/work/cache}/deb"
version=""
arch=""
lint=1
while (($#)); do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --no-lintian) lint=0; shift ;;
    *) echo "build-deb: unknown argument \"$1\"" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
work=$(mktemp -d "$out/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
src="$work/hgj-gateway"
mkdir -p "$src"
git -C "$repo" archive HEAD | tar -x -C "$src"
if [[ -n "$version" ]]; then
  { printf 'hgj-gateway (%s) bookworm; urgency=medium\n\n  * Build %s.\n\n' "$version" "$version"
    printf ' -- hgj-gateway developers <hgj-gateway@lists.hgj.invalid>  %s\n\n' "$(date -R)"
    cat "$src/debian/changelog"; } >"$src/debian/changelog.new"
  mv "$src/debian/changelog.new" "$src/debian/changelog"
fi
# What building and checking need: debian/control's Build-Depends (debhelper, the libraries) and
# lintian, from Debian's archive when missing (a fresh machine has neither). Cross builds get
# theirs from tools/arm64.sh.
if [[ -z "$arch" ]] && { ! (cd "$src" && dpkg-checkbuilddeps >/dev/null 2>&1) ||
  { ((lint)) && ! command -v lintian >/dev/null 2>&1; }; }; then
  [[ $(id -u) -eq 0 ]] || {
    echo "build-deb: build dependencies missing; as root: apt-get build-dep ./ && apt-get install lintian" >&2
    exit 1
  }
  echo "build-deb: installing the build dependencies and lintian" >&2
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get build-dep -y -q --no-install-recommends "$src" &&
    apt-get install -y -q --no-install-recommends lintian; } >&2
fi
args=(-us -uc -b)
[[ -n "$arch" ]] && args+=(-a"$arch" -Pcross,nocheck)
(cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=${HGJ_JOBS:-2}" nice dpkg-buildpackage "${args[@]}") \
  >"$work/build.log" 2>&1 || {
  # CMake's own error comes long before the tail of its verbose output.
  grep -n -A12 'CMake Error' "$work/build.log" | head -n 60 >&2 || true
  tail -n 40 "$work/build.log" >&2
  exit 1
}
debs=("$work"/hgj-gateway_*.deb)
deb="$out/$(basename "${debs[0]}")"
mv "${debs[0]}" "$deb"
if ((lint)); then
  lintian --fail-on error --info "$deb" || { echo "build-deb: lintian reports errors" >&2; exit 1; }
fi
echo "$deb"
