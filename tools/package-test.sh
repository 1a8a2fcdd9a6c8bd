#!/usr/bin/env bash
# The Debian package's life on a box, in a fresh Debian 12 root (tools/debroot.sh):
#   install   apt install ./hgj-gateway_*.deb: binaries, the hgj user, /etc/hgj root:hgj 0750,
#             tokens generated (0640 root:hgj), `hgj-gateway check` passes as hgj with no warning,
#             the daemon runs as hgj against a broker and writes only /var/lib/hgj (database 0640)
#   upgrade   to a newer build: the edited config, the tokens and the database are kept
#   remove    the database, the tokens and the config stay
#   purge     nothing is left (files, user, group), no question asked
#
#   tools/package-test.sh [OLD.deb NEW.deb]
#
# Without arguments both packages are built from HEAD by tools/build-deb.sh (the newer one with
# a higher version). Needs root. Prints "package-test: N passed, 0 failed" at the end.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tools/debroot.sh
source "$here/debroot.sh"
[[ $(id -u) -eq 0 ]] || { echo "package-test: needs root" >&2; exit 2; }

if (($# == 2)); then
  old=$(readlink -f "$1")
  new=$(readlink -f "$2")
else
  old=$("$here/build-deb.sh" | tail -n1)
  new=$("$here/build-deb.sh" --no-lintian --version "0.1.0-1+upgrade1" | tail -n1)
fi

passed=0
failed=0
check() { # description command...
  local what=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "ok: $what"
  else
    failed=$((failed + 1))
    echo "FAILED: $what"
  fi
}

work=$(mktemp -d "$HGJ_CACHE/pkgtest.XXXXXX")
dir="$work/root"
trap 'debroot_destroy "$dir" && rm -rf "$work"' EXIT
debroot_new "$dir" amd64
cp "$old" "$dir/tmp/old.deb"
cp "$new" "$dir/tmp/new.deb"
in_root() { debroot_run "$dir" "$@"; }
sh_root() { debroot_run "$dir" sh -c "$1"; }
apt_opts="-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"

echo "package-test: installing $(basename "$old")"
in_root apt-get update -q >"$work/apt.log" 2>&1
sh_root "apt-get install $apt_opts /tmp/old.deb" >>"$work/apt.log" 2>&1 ||
  { tail -n 30 "$work/apt.log"; exit 1; }

check "hgj-gateway and hgj-sim in /usr/bin" sh_root 'test -x /usr/bin/hgj-gateway && test -x /usr/bin/hgj-sim'
check "the unit runs /usr/bin/hgj-gateway as hgj with UMask=0027 and a state directory" \
  sh_root 'u=$(ls /lib/systemd/system/hgj-gateway.service /usr/lib/systemd/system/hgj-gateway.service 2>/dev/null | head -n1) &&
    grep -q "^ExecStart=/usr/bin/hgj-gateway run -c /etc/hgj/gateway.yaml$" "$u" &&
    grep -q "^User=hgj$" "$u" && grep -q "^UMask=0027$" "$u" && grep -q "^StateDirectory=hgj$" "$u" &&
    ! grep -q /usr/local "$u"'
check "the hgj system user and group exist" sh_root 'id -u hgj >/dev/null && test "$(id -u hgj)" -lt 1000 && getent group hgj >/dev/null'
check "/etc/hgj is root:hgj 0750, its files 0640" \
  sh_root 'test "$(stat -c %U:%G:%a /etc/hgj)" = root:hgj:750 && test "$(stat -c %U:%G:%a /etc/hgj/gateway.yaml)" = root:hgj:640 && test "$(stat -c %a /etc/hgj/alerts.yaml)" = 640'
check "the example compound is conffiles" sh_root 'grep -q "^/etc/hgj/gateway.yaml$" /var/lib/dpkg/info/hgj-gateway.conffiles && grep -q "^/etc/hgj/profiles/" /var/lib/dpkg/info/hgj-gateway.conffiles'
check "tokens generated: 64 hex digits, root:hgj 0640, viewer and operator differ" \
  sh_root 'for t in viewer operator; do f=/etc/hgj/tokens/$t; test "$(stat -c %U:%G:%a $f)" = root:hgj:640 || exit 1; grep -Eqx "[0-9a-f]{64}" $f || exit 1; done; ! cmp -s /etc/hgj/tokens/viewer /etc/hgj/tokens/operator'
check "the config points at the tokens and at /var/lib/hgj/hgj.db" \
  sh_root 'grep -q "operator_token_file: /etc/hgj/tokens/operator" /etc/hgj/gateway.yaml && grep -q "path: /var/lib/hgj/hgj.db" /etc/hgj/gateway.yaml'
check "/var/lib/hgj is hgj:hgj 0750" sh_root 'test "$(stat -c %U:%G:%a /var/lib/hgj)" = hgj:hgj:750'
check "docs, man pages and the broker examples are installed" \
  sh_root 'test -f /usr/share/man/man8/hgj-gateway.8.gz && test -f /usr/share/man/man1/hgj-sim.1.gz && { test -f /usr/share/doc/hgj-gateway/operations.md || test -f /usr/share/doc/hgj-gateway/operations.md.gz; } && test -f /usr/share/doc/hgj-gateway/examples/mosquitto/hgj-local.conf'
sh_root 'runuser -u hgj -- hgj-gateway check -c /etc/hgj/gateway.yaml' >"$work/check.log" 2>&1 || true
check "hgj-gateway check -c /etc/hgj/gateway.yaml passes as hgj, without warnings" \
  sh -c "grep -q ': ok (' '$work/check.log' && ! grep -q warning '$work/check.log'"
cat "$work/check.log"

# The daemon as the unit runs it: user hgj, umask 0027, working directory /var/lib/hgj, its own
# broker on a free loopback port (policy-rc.d keeps the package's mosquitto service stopped).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mport=$(free_port)
hport=$(free_port)
# The test's own tools (not the package's dependencies): a broker, curl, python3 for SQLite.
sh_root "apt-get install $apt_opts --no-install-recommends mosquitto curl python3" >>"$work/apt.log" 2>&1
sh_root "printf 'listener $mport 127.0.0.1\nallow_anonymous true\n' >/tmp/m.conf; chmod 644 /tmp/m.conf"
debroot_run "$dir" runuser -u mosquitto -- mosquitto -c /tmp/m.conf >"$work/mosquitto.log" 2>&1 &
sleep_until() { for _ in $(seq 200); do "$@" && return 0; sleep 0.1; done; return 1; }
sleep_until bash -c "exec 3<>/dev/tcp/127.0.0.1/$mport" 2>/dev/null
touch "$dir/tmp/start-mark"
debroot_run "$dir" sh -c "cd /var/lib/hgj && umask 0027 && exec runuser -u hgj -- hgj-gateway run -c /etc/hgj/gateway.yaml --set mqtt.url=tcp://127.0.0.1:$mport --set http.port=$hport" \
  >"$work/gateway.log" 2>&1 &
# /healthz answers 200, or 503 when a subsystem is down: in this root no Modbus device answers,
# so the example compound's health is honestly not ok. The daemon is up when it answers at all.
healthz_answers() {
  local code
  # With the generated viewer token reads need it, /healthz included (docs/api.md).
  code=$(curl -s -o "$work/healthz.json" -w '%{http_code}' \
    -H "Authorization: Bearer $(cat "$dir/etc/hgj/tokens/viewer")" "http://127.0.0.1:$hport/healthz")
  [[ $code == 200 || $code == 503 ]] && grep -q '"storage"' "$work/healthz.json"
}
check "the daemon runs as hgj and answers /healthz" sleep_until healthz_answers
hgj_uid=$(chroot "$dir" id -u hgj)
gateway_uids() {
  local p
  for p in $(debroot_pids "$dir"); do
    [[ "$(cat /proc/"$p"/comm 2>/dev/null)" == hgj-gateway ]] && awk '/^Uid:/ {print $2}' /proc/"$p"/status
  done
}
check "the daemon's process runs as user hgj" test "$(gateway_uids | sort -u)" = "$hgj_uid"
ack_status() { # token header or nothing
  curl -s -o /dev/null -w '%{http_code}' -X POST "$@" -H 'Content-Type: application/json' \
    -d '{"by":"package-test"}' "http://127.0.0.1:$hport/api/v1/alerts/999999999/ack"
}
no_token=$(ack_status)
check "an operator action without the token is refused (got $no_token)" \
  bash -c "[[ $no_token == 401 || $no_token == 403 ]]"
with_token=$(ack_status -H "Authorization: Bearer $(cat "$dir/etc/hgj/tokens/operator")")
check "with the generated operator token it gets past authentication (got $with_token: no such alert)" \
  test "$with_token" = 404
check "the database is /var/lib/hgj/hgj.db, hgj:hgj 0640" \
  sleep_until sh_root 'test "$(stat -c %U:%G:%a /var/lib/hgj/hgj.db)" = hgj:hgj:640'
for p in $(debroot_pids "$dir"); do
  [[ "$(cat /proc/"$p"/comm 2>/dev/null)" == hgj-gateway ]] && kill -TERM "$p"
done
sleep_until test -z "$(gateway_uids)" || true
check "the daemon wrote nothing outside /var/lib/hgj" \
  sh_root 'test -z "$(find / -xdev -newer /tmp/start-mark -user hgj ! -path "/var/lib/hgj/*" ! -path /var/lib/hgj ! -path "/proc/*" 2>/dev/null)"'
rows=$(sh_root 'echo "SELECT COUNT(*) FROM schema_versions;" | python3 -c "import sqlite3,sys; print(sqlite3.connect(\"/var/lib/hgj/hgj.db\").execute(sys.stdin.read()).fetchone()[0])"')
check "the database has its schema" test "${rows:-0}" -gt 0

# Edits the operator makes, then the upgrade.
sh_root 'printf "# edited on the box\n" >>/etc/hgj/gateway.yaml; sed -i "s/level: info/level: warn/" /etc/hgj/gateway.yaml'
sh_root 'echo "CREATE TABLE box_marker(x); INSERT INTO box_marker VALUES (42);" | python3 -c "import sqlite3,sys; c=sqlite3.connect(\"/var/lib/hgj/hgj.db\"); c.executescript(sys.stdin.read()); c.commit()"'
tokens_before=$(sh_root 'cat /etc/hgj/tokens/viewer /etc/hgj/tokens/operator | sha256sum')
echo "package-test: upgrading to $(basename "$new")"
sh_root "apt-get install $apt_opts /tmp/new.deb" >>"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log"; exit 1; }
check "upgrade: the newer version is installed" \
  sh -c "test \"\$(chroot '$dir' dpkg-query -W -f '\${Version}' hgj-gateway)\" = \"\$(dpkg-deb -f '$new' Version)\""
check "upgrade: the edited config is kept" sh_root 'grep -q "^# edited on the box$" /etc/hgj/gateway.yaml && grep -q "level: warn" /etc/hgj/gateway.yaml'
check "upgrade: the tokens are kept" test "$tokens_before" = "$(sh_root 'cat /etc/hgj/tokens/viewer /etc/hgj/tokens/operator | sha256sum')"
marker() { sh_root 'python3 -c "import sqlite3; print(sqlite3.connect(\"/var/lib/hgj/hgj.db\").execute(\"SELECT x FROM box_marker\").fetchone()[0])"' 2>/dev/null; }
check "upgrade: the database is kept" test "$(marker)" = 42
check "upgrade: check still passes as hgj" sh_root 'runuser -u hgj -- hgj-gateway check -c /etc/hgj/gateway.yaml >/dev/null'

sh_root "apt-get remove $apt_opts hgj-gateway" >>"$work/apt.log" 2>&1
check "remove: the program is gone" sh_root '! test -e /usr/bin/hgj-gateway'
check "remove: the database, the tokens and the config stay" \
  sh -c "test \"\$(chroot '$dir' python3 -c 'import sqlite3; print(sqlite3.connect(\"/var/lib/hgj/hgj.db\").execute(\"SELECT x FROM box_marker\").fetchone()[0])')\" = 42 && test -s '$dir/etc/hgj/tokens/operator' && test -f '$dir/etc/hgj/gateway.yaml'"

sh_root "apt-get purge $apt_opts hgj-gateway </dev/null" >>"$work/apt.log" 2>&1
check "purge: /etc/hgj and /var/lib/hgj are gone" sh_root '! test -e /etc/hgj && ! test -e /var/lib/hgj'
check "purge: the hgj user and group are gone" sh_root '! getent passwd hgj && ! getent group hgj'
check "purge: dpkg knows the package no more" sh_root '! dpkg-query -W -f "\${Status}" hgj-gateway 2>/dev/null | grep -q installed'

echo "package-test: $passed passed, $failed failed"
((failed == 0))
