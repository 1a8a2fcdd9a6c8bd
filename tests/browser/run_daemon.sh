#!/bin/sh
# The dashboard test against the real daemon fed by the simulator: its own mosquitto on a free
# loopback port, hgj-gateway on the example compound, hgj-sim playing it (quiet parking, one port
# overheating so that there is a critical alert to acknowledge), then dashboard.test.mjs with
# HGJ_DASHBOARD_URL; before the simulator, a week of seeded readings rebuilt into history
# (seed_history.py, `hgj-gateway history rebuild`) for history.test.mjs, run last. Skips (77) like run.sh when the browser or the npm packages are missing.
# Usage: run_daemon.sh BUILD_DIR
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:?usage: run_daemon.sh BUILD_DIR}
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "SKIPPED: $chromium not found"; exit 77; }
command -v node >/dev/null 2>&1 || { echo "SKIPPED: node not found"; exit 77; }
[ -d "$here/node_modules/playwright-core" ] || { echo "SKIPPED: playwright-core missing (cd tests/browser && npm ci)"; exit 77; }

tmp=$(mktemp -d /tmp/hgj-browser-XXXXXX)
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null; done
  for p in $pids; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # seconds, command...
  n=$(($1 * 20)); shift
  while [ "$n" -gt 0 ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; n=$((n - 1)); done
  return 1
}

mport=$(free_port)
hport=$(free_port)
# The example's Modbus lines move to free ports (a running demo may hold the configured ones);
# the gateway polls and the simulator serves the same ones.
line_sets_gw=""
line_sets_sim=""
for line in shed-bus meter-bus garage-bus; do
  p=$(free_port)
  line_sets_gw="$line_sets_gw --set modbus.lines.$line.port=$p"
  line_sets_sim="$line_sets_sim --set modbus.lines.$line=$p"
done
cat > "$tmp/mosquitto.conf" <<CONF
listener $mport 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
user $(id -un)
CONF
mosquitto -c "$tmp/mosquitto.conf" > "$tmp/mosquitto.log" 2>&1 &
pids="$pids $!"
wait_for 10 mosquitto_pub -h 127.0.0.1 -p "$mport" -t hgj/probe -m x || { echo "FAIL: mosquitto did not start"; cat "$tmp/mosquitto.log"; exit 1; }

# Acks need the operator token even on loopback.
operator_token=operator-token-browser-daemon-0123
printf '%s\n' "$operator_token" > "$tmp/operator.token"
start_gateway() {
  "$build/hgj-gateway" run -c "$root/conf/gateway.yaml" --set "mqtt.url=tcp://127.0.0.1:$mport" \
    --set "storage.path=$tmp/hgj.db" --set "http.port=$hport" \
    --set "http.operator_token_file=$tmp/operator.token" $line_sets_gw >> "$tmp/gateway.log" 2>&1 &
  gateway_pid=$!
  pids="$pids $gateway_pid"
  wait_for 20 curl -sf "http://127.0.0.1:$hport/healthz" || { echo "FAIL: gateway did not start"; cat "$tmp/gateway.log"; exit 1; }
}
start_gateway

# History for the history page (history.test.mjs): the gateway's first run made the database;
# stopped, it gets a week of readings ending yesterday (local, +08:00) and its rollups are
# rebuilt from them by the command an installer runs after an upgrade; then it runs again.
history_day=$(python3 -c 'import datetime as d; print((d.datetime.now(d.timezone(d.timedelta(hours=8))) - d.timedelta(days=1)).date())')
kill -TERM "$gateway_pid"
wait "$gateway_pid" || { echo "FAIL: the gateway did not stop cleanly"; tail -20 "$tmp/gateway.log"; exit 1; }
python3 "$here/seed_history.py" "$tmp/hgj.db" "$history_day" 480 || { echo "FAIL: seeding the readings"; exit 1; }
"$build/hgj-gateway" history rebuild -c "$root/conf/gateway.yaml" --set "storage.path=$tmp/hgj.db" \
  --set "http.port=$hport" || { echo "FAIL: hgj-gateway history rebuild"; exit 1; }
start_gateway

cat > "$tmp/scenario.yaml" <<SCEN
gateway: $root/conf/gateway.yaml
speed: 1
realistic: false
timestamps: wall
mqtt: {url: "tcp://127.0.0.1:$mport", client_id: hgj-sim-browser}
events:
  - {at: 1s, type: port_overheat, device: S03/P07, temp_c: 75, ramp: 1s}
SCEN
"$build/tools/sim/hgj-sim" -c "$tmp/scenario.yaml" $line_sets_sim > "$tmp/sim.log" 2>&1 &
pids="$pids $!"

# Every space reported, and the overheating port's critical alert raised (after its 10 s hold).
has_alert() { curl -sf "http://127.0.0.1:$hport/api/v1/alerts?state=active" | grep -q port_over_temperature; }
all_known() { curl -sf "http://127.0.0.1:$hport/api/v1/parking" | grep -q '"unknown":0,"levels"'; }
wait_for 60 has_alert || { echo "FAIL: no alert from the simulated overheating port"; tail -20 "$tmp/gateway.log"; exit 1; }
wait_for 30 all_known || { echo "FAIL: not every space reported"; exit 1; }

# conf/rules.yaml counts a space change after its 5 s occupancy debounce.
HGJ_DASHBOARD_URL="http://127.0.0.1:$hport" HGJ_DASHBOARD_TOKEN="$operator_token" HGJ_DEBOUNCE_MS=5000 \
HGJ_CHANGE_SPACE_CMD="mosquitto_pub -h 127.0.0.1 -p $mport -q 1 -t compound/parking/{id}/state -m '{\"occupied\":{occupied},\"ts\":{ts}}'" \
  node "$here/dashboard.test.mjs"
live=$?
HGJ_DASHBOARD_URL="http://127.0.0.1:$hport" HGJ_DASHBOARD_TOKEN="$operator_token" HGJ_HISTORY_DAY="$history_day" \
  node "$here/history.test.mjs"
history=$?
[ "$live" -eq 0 ] && [ "$history" -eq 0 ]
