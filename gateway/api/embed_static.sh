#!/bin/sh
# embed_static.sh STATIC_DIR OUT_CPP: writes the dashboard files (gateway/api/static/*) into a
# C++ source, so the daemon serves them without any install step. The build runs it (CMake
# custom command) whenever a dashboard file changes; nothing generated is kept in the tree.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 STATIC_DIR OUT_CPP" >&2; exit 2; }
static_dir=$1
out=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
  echo "// Generated at build time by gateway/api/embed_static.sh from gateway/api/static/."
  echo "#include \"gateway/api/static_assets.h\""
  echo
  echo "namespace hgj::api {"
  echo
  echo "namespace {"
  i=0
  names=""
  for f in "$static_dir"/*; do
    [ -f "$f" ] || continue
    name=$(basename "$f")
    if grep -q ')hgjasset"' "$f"; then
      echo "embed_static.sh: $name contains the raw-string delimiter" >&2
      exit 1
    fi
    rm -f "$tmp"/chunk.*
    # Chunks end at line ends and stay below the 64 KiB that -Woverlength-strings allows.
    split -C 30000 -d -a 4 "$f" "$tmp/chunk."
    echo
    echo "const char* const kFile$i[] = {"
    for c in "$tmp"/chunk.*; do
      printf 'R"hgjasset('
      cat "$c"
      printf ')hgjasset",\n'
    done
    echo "nullptr};"
    names="$names $name:$i"
    i=$((i + 1))
  done
  echo
  echo "} // namespace"
  echo
  echo "const EmbeddedFile kEmbeddedFiles[] = {"
  for n in $names; do
    echo "    {\"${n%%:*}\", kFile${n##*:}},"
  done
  echo "    {nullptr, nullptr}};"
  echo
  echo "} // namespace hgj::api"
} >"$out.tmp"
mv "$out.tmp" "$out"
