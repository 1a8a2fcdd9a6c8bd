#!/usr/bin/env bash
# The same package with another version, for upgrade tests without a second build:
#   tools/repack-deb.sh PACKAGE.deb VERSION   -> prints the path of the repacked .deb
# (next to the original, named as dpkg-buildpackage would name it).
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: tools/repack-deb.sh PACKAGE.deb VERSION" >&2; exit 2; }
deb=$(readlink -f "$1")
version=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -R "$deb" "$tmp/pkg"
sed -i "s/^Version: .*/Version: $version/" "$tmp/pkg/DEBIAN/control"
arch=$(sed -n 's/^Architecture: //p' "$tmp/pkg/DEBIAN/control")
name=$(sed -n 's/^Package: //p' "$tmp/pkg/DEBIAN/control")
out="$(dirname "$deb")/${name}_${version}_${arch}.deb"
dpkg-deb --root-owner-group -b "$tmp/pkg" "$out" >/dev/null
echo "$out"
