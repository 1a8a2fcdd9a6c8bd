# Fresh Debian 12 roots for the checks that must run on a machine with nothing but Debian:
# tools/fresh-debian.sh (the README's two commands), debian/tests/package-lifecycle.sh (install,
# upgrade, purge) and tools/arm64.sh. Sourced, not run.
#
# A root is a debootstrapped bookworm (minbase plus git and sudo, as a newcomer's machine) kept
# as a tarball in $HGJ_CACHE (default /work/cache) and unpacked anew for every run. It gets what
# an installed system has: /etc/hosts, a resolver, /proc, /sys, a small /dev of its own with
# /dev/pts and a /dev/shm tmpfs, the host's apt sources and trusted CA certificates (package
# registries may present certificates only the host trusts). Daemons that packages would start
# are held back by a policy-rc.d, so nothing the root installs listens on the host's ports.
#
#   debroot_base ARCH          -> prints the base tarball's path (debootstraps it once)
#   debroot_new DIR ARCH       unpacks a root into DIR and mounts what it needs
#   debroot_run DIR CMD...     runs CMD in the root as root, with a clean environment
#   debroot_destroy DIR        ends what still runs in the root, unmounts, removes DIR

HGJ_CACHE=${HGJ_CACHE:-/work/cache}
DEBROOT_SUITE=bookworm
DEBROOT_MIRROR=${DEBROOT_MIRROR:-}

debroot_say() { echo "debroot: $*" >&2; }

# The first URI of the host's apt sources, so that debootstrap uses the mirror the host uses.
debroot_mirror() {
  if [[ -n "$DEBROOT_MIRROR" ]]; then
    echo "$DEBROOT_MIRROR"
    return
  fi
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1)
  [[ -n "$uri" ]] || uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | head -n1)
  echo "${uri:-http://deb.debian.org/debian}"
}

debroot_base() {
  local arch=${1:-amd64}
  local tarball="$HGJ_CACHE/debian12-$arch-base.tar"
  if [[ ! -s "$tarball" ]]; then
    command -v debootstrap >/dev/null || {
      debroot_say "installing debootstrap"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2
    }
    mkdir -p "$HGJ_CACHE"
    local tmp
    tmp=$(mktemp -d "$HGJ_CACHE/debootstrap.XXXXXX")
    debroot_say "debootstrapping $DEBROOT_SUITE/$arch into $tmp (once; kept as $tarball)"
    if ! nice -n 19 debootstrap --variant=minbase --arch="$arch" --include=git,sudo \
      "$DEBROOT_SUITE" "$tmp" "$(debroot_mirror)" >"$tmp.log" 2>&1; then
      debroot_say "debootstrap failed, see $tmp.log"
      rm -rf "$tmp"
      return 1
    fi
    rm -rf "$tmp"/var/cache/apt/archives/*.deb
    # mktemp -d made it 0700: as the root's "/" that would lock every user but root out.
    chmod 0755 "$tmp"
    tar -C "$tmp" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$tmp" "$tmp.log"
  fi
  echo "$tarball"
}

debroot_new() {
  local dir=$1 arch=${2:-amd64} tarball
  tarball=$(debroot_base "$arch") || return 1
  mkdir -p "$dir"
  tar -C "$dir" -xf "$tarball"
  # "/" must be 0755 whatever the tarball says (one made before the fix above says 0700): the
  # package test runs the daemon as hgj, and man-db's triggers run as man.
  chmod 0755 "$dir"

  cp /etc/hosts "$dir/etc/hosts"
  cp -L /etc/resolv.conf "$dir/etc/resolv.conf"
  # The host's apt sources and transport settings (a snapshot mirror needs Check-Valid-Until).
  rm -f "$dir/etc/apt/sources.list"
  rm -f "$dir"/etc/apt/sources.list.d/*
  [[ -f /etc/apt/sources.list ]] && cp /etc/apt/sources.list "$dir/etc/apt/"
  local f
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] && cp "$f" "$dir/etc/apt/sources.list.d/"
  done
  for f in /etc/apt/apt.conf.d/*; do
    [[ -f "$f" ]] && grep -q '^Acquire::' "$f" && cp "$f" "$dir/etc/apt/apt.conf.d/"
  done
  # The host's trusted CA certificates: the bundle now, and the local ones again whenever the
  # root's ca-certificates package rebuilds the bundle.
  mkdir -p "$dir/etc/ssl/certs" "$dir/usr/local/share/ca-certificates"
  cp -L /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/" 2>/dev/null || true
  cp -L /usr/local/share/ca-certificates/* "$dir/usr/local/share/ca-certificates/" 2>/dev/null || true
  # No daemon a package installs starts inside the root.
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 755 "$dir/usr/sbin/policy-rc.d"

  mount -t proc proc "$dir/proc"
  mount -t sysfs -o ro sysfs "$dir/sys"
  # A /dev of its own: never a bind of the host's, whose sub-mounts could propagate back.
  mount -t tmpfs -o mode=755,nosuid devtmp "$dir/dev"
  local node
  for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
    IFS=: read -r name major minor <<<"$node"
    mknod -m 666 "$dir/dev/$name" c "$major" "$minor"
  done
  mkdir -p "$dir/dev/pts" "$dir/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$dir/dev/pts"
  ln -s pts/ptmx "$dir/dev/ptmx"
  mount -t tmpfs -o mode=1777,nosuid,nodev shm "$dir/dev/shm"
  ln -s /proc/self/fd "$dir/dev/fd"
  ln -s /proc/self/fd/0 "$dir/dev/stdin"
  ln -s /proc/self/fd/1 "$dir/dev/stdout"
  ln -s /proc/self/fd/2 "$dir/dev/stderr"
  mkdir -p "$dir/run/lock" "$dir/tmp"
  chmod 1777 "$dir/tmp"
  # Downloaded .debs are kept between runs (the root stays fresh: nothing is installed from it
  # that apt would not fetch). DEBROOT_APT_CACHE=0 downloads everything anew.
  if [[ "${DEBROOT_APT_CACHE:-1}" == 1 ]]; then
    mkdir -p "$HGJ_CACHE/apt-archives-$arch/partial"
    mount --bind "$HGJ_CACHE/apt-archives-$arch" "$dir/var/cache/apt/archives"
  fi
}

debroot_run() {
  local dir=$1
  shift
  local env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
    LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive)
  # Node.js in the root trusts what the host trusts (the bundle carried in by debroot_new).
  [[ -n "${NODE_EXTRA_CA_CERTS:-}" ]] && env+=(NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt)
  chroot "$dir" /usr/bin/env -i "${env[@]}" "$@"
}

# Processes whose root is DIR: the ones this root started (daemons a test left behind).
debroot_pids() {
  local dir p root
  dir=$(readlink -f "$1")
  for p in /proc/[0-9]*; do
    root=$(readlink "$p/root" 2>/dev/null) || continue
    [[ "$root" == "$dir" ]] && echo "${p#/proc/}"
  done
}

debroot_destroy() {
  local dir=$1 pid
  [[ -d "$dir" ]] || return 0
  for pid in $(debroot_pids "$dir"); do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in $(debroot_pids "$dir"); do kill -KILL "$pid" 2>/dev/null || true; done
  local m
  for m in dev/shm dev/pts dev sys proc; do
    mountpoint -q "$dir/$m" && umount -l "$dir/$m"
  done
  # Anything still mounted below the root (a test's own mounts) goes too, deepest first.
  awk -v d="$(readlink -f "$dir")/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m"; done
  if awk -v d="$(readlink -f "$dir")/" 'index($2, d) == 1' /proc/mounts | grep -q .; then
    debroot_say "still mounted below $dir; not removing it"
    return 1
  fi
  rm -rf --one-file-system "$dir"
}
