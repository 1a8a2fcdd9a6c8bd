#!/usr/bin/env bash
# arm64 from one script: in a fresh Debian 12 root (tools/debroot.sh; the host's packages are not
# touched) with arm64 added as a foreign architecture, cross-builds hgj-gateway, hgj-sim and the
# unit tests with crossbuild-essential-arm64 against the :arm64 dev packages, runs the unit
# tests and a short daemon smoke test under qemu-user (binfmt), and builds the arm64 .deb.
# Prints the binary sizes and the unit tests' time; the .deb and logs go to $HGJ_CACHE/arm64/.
#
#   tools/arm64.sh [--keep]
#
# Needs root and the host's binfmt_misc (it installs qemu-user-static and binfmt-support on the
# host if missing: the kernel's binfmt handler is host-wide). Slow on 2 cores: not part of CI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=tools/debroot.sh
source "$here/debroot.sh"
[[ $(id -u) -eq 0 ]] || { echo "arm64: needs root" >&2; exit 2; }
keep=0
[[ "${1:-}" == --keep ]] && keep=1
out="$HGJ_CACHE/arm64"
mkdir -p "$out"

# qemu-user with binfmt on the host, registered with the F flag (the interpreter is opened at
# registration), so that arm64 programs run inside the root too.
if ! command -v qemu-aarch64-static >/dev/null || ! command -v update-binfmts >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends qemu-user-static binfmt-support
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || update-binfmts --enable qemu-aarch64
grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
  { echo "arm64: qemu-aarch64 binfmt is registered without the F flag" >&2; exit 1; }

work=$(mktemp -d "$HGJ_CACHE/arm64.XXXXXX")
dir="$work/root"
cleanup() {
  if ((keep)); then
    awk -v d="$(readlink -f "$dir")/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r |
      while read -r m; do umount -l "$m"; done
    echo "arm64: root kept in $dir"
  else
    debroot_destroy "$dir" && rm -rf "$work"
  fi
}
trap cleanup EXIT
t0=$SECONDS
debroot_new "$dir" amd64
rev=$(git -C "$repo" rev-parse HEAD)
git clone --quiet --no-checkout "$repo" "$dir/root/src"
git -C "$dir/root/src" checkout --quiet --detach "$rev"

in_root() { debroot_run "$dir" bash -c "$1"; }
# The libraries come from the package's Build-Depends (one list to keep), as :arm64; pkgconf:arm64
# gives /usr/bin/aarch64-linux-gnu-pkg-config, which debhelper's cross build of the .deb calls.
dev_pkgs=$(sed -n '/^Build-Depends:/,/^[A-Z]/p' "$repo/debian/control" | grep -o 'lib[a-z0-9.+-]*-dev' | sort -u)
[[ -n "$dev_pkgs" ]] || { echo "arm64: no lib*-dev in debian/control's Build-Depends" >&2; exit 1; }
arm_dev=$(for p in $dev_pkgs; do printf '%s:arm64 ' "$p"; done)
echo "arm64: installing crossbuild-essential-arm64 and the :arm64 dev packages (log: $out/apt.log)"
in_root "dpkg --add-architecture arm64 && apt-get update -q && apt-get install -y -q --no-install-recommends \
  build-essential crossbuild-essential-arm64 cmake ninja-build pkg-config catch2 nlohmann-json3-dev debhelper dpkg-dev \
  mosquitto curl file pkgconf:arm64 $arm_dev" >"$out/apt.log" 2>&1 || { tail -n 30 "$out/apt.log"; exit 1; }
t_deps=$((SECONDS - t0))

cat >"$dir/root/aarch64.cmake" <<'CMAKE'
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# catch_discover_tests lists a test program's cases by running it: through qemu.
set(CMAKE_CROSSCOMPILING_EMULATOR /usr/bin/qemu-aarch64-static)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
CMAKE
cp /usr/bin/qemu-aarch64-static "$dir/usr/bin/"
unit_targets=$(cd "$repo/tests/unit" && for d in */; do printf 'unit_%s ' "${d%/}"; done)
echo "arm64: cross-building hgj-gateway, hgj-sim and $unit_targets(log: $out/build.log)"
t1=$SECONDS
in_root "cd /root/src && cmake -S . -B build-arm64 -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DHGJ_WERROR=ON -DCMAKE_TOOLCHAIN_FILE=/root/aarch64.cmake && \
  nice ninja -C build-arm64 -j${HGJ_JOBS:-2} hgj-gateway hgj-sim $unit_targets" >"$out/build.log" 2>&1 ||
  { tail -n 40 "$out/build.log"; exit 1; }
t_build=$((SECONDS - t1))
in_root "file /root/src/build-arm64/hgj-gateway" | tee "$out/file.txt"

echo "arm64: unit tests under qemu-user (log: $out/unit.log)"
t2=$SECONDS
rc=0
in_root "cd /root/src && ctest --test-dir build-arm64 -L unit -j2 --timeout 900 --output-on-failure" \
  >"$out/unit.log" 2>&1 || rc=$?
t_unit=$((SECONDS - t2))
grep -E 'tests passed|tests failed' "$out/unit.log" | tail -n1
((rc == 0)) || { grep -E '\*\*\*Failed|Not Run|Timeout' "$out/unit.log" | head -n 20; }

echo "arm64: daemon smoke test under qemu-user (log: $out/smoke.log)"
smoke=0
in_root "cd /root/src && set -e
  port() { python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])' 2>/dev/null || shuf -i 20000-60000 -n1; }
  m=\$(port); h=\$(port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser root\n' \$m > /tmp/m.conf
  mosquitto -c /tmp/m.conf & mp=\$!
  build-arm64/hgj-gateway --version
  build-arm64/hgj-gateway check -c conf/gateway.yaml
  build-arm64/hgj-gateway run -c conf/gateway.yaml --set mqtt.url=tcp://127.0.0.1:\$m \
    --set http.port=\$h --set storage.path=/tmp/smoke.db & gp=\$!
  ok=1
  for i in \$(seq 600); do curl -sf http://127.0.0.1:\$h/healthz && { ok=0; break; }; sleep 0.1; done
  echo; curl -sf http://127.0.0.1:\$h/api/v1/parking | head -c 200; echo
  kill -TERM \$gp; wait \$gp; echo gateway exit \$?
  kill \$mp; wait \$mp || true
  exit \$ok" >"$out/smoke.log" 2>&1 || smoke=1
tail -n 4 "$out/smoke.log"

echo "arm64: building the arm64 .deb (log: $out/deb.log)"
in_root "cd /root/src && HGJ_CACHE=/root/deb tools/build-deb.sh --arch arm64 --no-lintian --out /root/deb" \
  >"$out/deb.log" 2>&1 || { tail -n 30 "$out/deb.log"; exit 1; }
cp "$dir"/root/deb/hgj-gateway_*_arm64.deb "$out/"
deb=$(ls "$out"/hgj-gateway_*_arm64.deb | tail -n1)

size() { stat -c %s "$1"; }
b="$dir/root/src/build-arm64"
in_root "aarch64-linux-gnu-strip -o /tmp/gw.stripped /root/src/build-arm64/hgj-gateway && \
  aarch64-linux-gnu-strip -o /tmp/sim.stripped /root/src/build-arm64/tools/sim/hgj-sim"
{
  echo "arm64 build of $rev"
  echo "hgj-gateway: $(size "$b/hgj-gateway") bytes with debug info, $(size "$dir/tmp/gw.stripped") stripped"
  echo "hgj-sim: $(size "$b/tools/sim/hgj-sim") bytes with debug info, $(size "$dir/tmp/sim.stripped") stripped"
  echo "package: $(basename "$deb") $(size "$deb") bytes"
  echo "times: dependencies ${t_deps} s, cross-build ${t_build} s, unit tests under qemu ${t_unit} s"
  echo "unit tests: $(grep -E 'tests passed|tests failed' "$out/unit.log" | tail -n1)"
  echo "smoke test: $([[ $smoke -eq 0 ]] && echo passed || echo FAILED)"
} | tee "$out/summary.txt"
((rc == 0 && smoke == 0))
