#!/usr/bin/env bash
# Runs the README's two commands in a fresh Debian 12 root, as a newcomer would on a new
# machine: a debootstrapped bookworm with nothing but git and sudo (tools/debroot.sh), the
# committed HEAD of this checkout cloned into /root/hgj-gateway, then
#   sudo tools/demo.sh --duration N   the dashboard must answer (checked with curl) and the demo
#                                     must stop cleanly
#   sudo tools/test.sh                every ctest test must pass
# with Debian's own packages only (Node.js 18 included). Prints the time of each step; the logs
# stay in $HGJ_CACHE/fresh-logs/ (default /work/cache). Needs root (debootstrap, chroot, mounts).
#
#   tools/fresh-debian.sh [--only demo|test] [--demo-seconds N] [--keep]
#
# --keep leaves the root in $HGJ_CACHE/fresh.*/root for a look (mounts are removed all the same).
# The root shares the host's network (apt and the npm registry); the demo and the tests pick free
# loopback ports.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=tools/debroot.sh
source "$here/debroot.sh"

only=""
demo_seconds=90
keep=0
while (($#)); do
  case "$1" in
    --only) only="$2"; shift 2 ;;
    --demo-seconds) demo_seconds="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fresh-debian: unknown argument \"$1\"" >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "fresh-debian: needs root (debootstrap, chroot)" >&2; exit 2; }

rev=$(git -C "$repo" rev-parse HEAD)
if [[ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]]; then
  echo "fresh-debian: note: uncommitted changes are not part of the run (it clones $rev)" >&2
fi
logs="$HGJ_CACHE/fresh-logs"
mkdir -p "$logs"
work=$(mktemp -d "$HGJ_CACHE/fresh.XXXXXX")
dir="$work/root"
cleanup() {
  local rc=$?
  if ((keep)); then
    debroot_pids "$dir" | xargs -r kill -TERM 2>/dev/null || true
    awk -v d="$(readlink -f "$dir")/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r |
      while read -r m; do umount -l "$m"; done
    echo "fresh-debian: root kept in $dir"
  else
    debroot_destroy "$dir" && rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$SECONDS
debroot_new "$dir" amd64
git clone --quiet --no-checkout "$repo" "$dir/root/hgj-gateway"
git -C "$dir/root/hgj-gateway" checkout --quiet --detach "$rev"
echo "fresh-debian: Debian $(cat "$dir/etc/debian_version") root ready in $((SECONDS - t0)) s, $rev"

declare -A took
status=0
step() { # name command...
  local name=$1 start=$SECONDS rc=0
  shift
  echo "fresh-debian: $name: $* (log: $logs/$name.log)"
  debroot_run "$dir" bash -c "cd /root/hgj-gateway && $*" >"$logs/$name.log" 2>&1 || rc=$?
  took[$name]=$((SECONDS - start))
  echo "fresh-debian: $name: exit $rc after ${took[$name]} s"
  return "$rc"
}

if [[ "$only" != test ]]; then
  # The demo runs in the background; its dashboard is checked from here once it prints the URL.
  start=$SECONDS
  echo "fresh-debian: demo: sudo tools/demo.sh --duration $demo_seconds (log: $logs/demo.log)"
  debroot_run "$dir" bash -c "cd /root/hgj-gateway && sudo tools/demo.sh --duration $demo_seconds" \
    >"$logs/demo.log" 2>&1 &
  demo_pid=$!
  url=""
  while kill -0 "$demo_pid" 2>/dev/null; do
    url=$(sed -n 's/^demo: dashboard: \(http[^ ]*\).*/\1/p' "$logs/demo.log" | head -n1)
    [[ -n "$url" ]] && break
    sleep 2
  done
  took[demo-build]=$((SECONDS - start))
  demo_ok=0
  if [[ -n "$url" ]]; then
    echo "fresh-debian: demo: dashboard at $url after ${took[demo-build]} s"
    for _ in $(seq 60); do
      if curl -sf "$url" | grep -q '<html' && curl -sf "${url}healthz" >/dev/null &&
        curl -sf "${url}api/v1/parking" | grep -q '"levels"'; then
        demo_ok=1
        break
      fi
      sleep 1
    done
  fi
  rc=0
  wait "$demo_pid" || rc=$?
  took[demo]=$((SECONDS - start))
  if ((demo_ok && rc == 0)) && grep -q '^demo: stopping' "$logs/demo.log"; then
    echo "fresh-debian: demo: dashboard, /healthz and /api/v1/parking answered; stopped cleanly"
  else
    echo "fresh-debian: demo: FAILED (dashboard checked: $demo_ok, exit $rc); see $logs/demo.log"
    tail -n 20 "$logs/demo.log"
    status=1
  fi
fi

if [[ "$only" != demo ]]; then
  if step test "sudo tools/test.sh"; then
    grep -E 'tests passed|tests failed' "$logs/test.log" | tail -n1
  else
    grep -E 'tests passed|tests failed|\*\*\*Failed|Not Run' "$logs/test.log" | tail -n 20
    status=1
  fi
fi

echo "fresh-debian: node in the root: $(debroot_run "$dir" sh -c 'node --version 2>/dev/null || echo none')"
for k in demo-build demo test; do
  [[ -n "${took[$k]:-}" ]] && echo "fresh-debian: time $k: ${took[$k]} s"
done
echo "fresh-debian: total $((SECONDS - t0)) s: $([[ $status -eq 0 ]] && echo PASSED || echo FAILED)"
exit "$status"
