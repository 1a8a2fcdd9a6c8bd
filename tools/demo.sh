#!/usr/bin/env bash
# The demo, from a fresh clone on Debian 12: installs what is missing, builds, starts a local
# mosquitto of its own (loopback, persistence under var/demo/), a stand-in for the alert robots
# (tools/demo-robot.py), the simulator playing conf/scenarios/demo.yaml and the gateway with a
# copy of conf/ in var/demo/conf/ (the demo's ports and robot), and prints the dashboard URL and
# the database path. Every port it uses is checked free, or the next free one is picked.
# Ctrl-C stops everything it started (and nothing else).
#
#   tools/demo.sh [--speed N] [--seed S] [--scenario FILE] [--mqtt-port P] [--http-port P]
#                 [--duration SECONDS] [--no-install] [--no-build]
#
# Installing packages needs root (run with sudo, or as root); with --no-install nothing is
# installed. Logs: var/demo/{mosquitto,sim,gateway}.log.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

speed=""
seed=""
scenario="conf/scenarios/demo.yaml"
mqtt_port="${HGJ_DEMO_MQTT_PORT:-}"
http_port="${HGJ_DEMO_HTTP_PORT:-}"
duration=0
install=1
build=1
jobs="${HGJ_DEMO_JOBS:-2}"

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

while (($#)); do
  case "$1" in
    --speed) speed="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --scenario) scenario="$2"; shift 2 ;;
    --mqtt-port) mqtt_port="$2"; shift 2 ;;
    --http-port) http_port="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --no-install) install=0; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "demo: unknown argument \"$1\" (see --help)" >&2; exit 2 ;;
  esac
done

# Bold only on a terminal: a log file or a CI transcript gets plain text.
if [[ -t 1 ]]; then
  say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }
else
  say() { printf 'demo: %s\n' "$*"; }
fi

# 1. Packages.
if ((install)); then
  if [[ $(id -u) -eq 0 ]]; then
    tools/install-deps.sh
  elif command -v sudo >/dev/null; then
    missing=0
    while read -r p; do
      dpkg -s "$p" >/dev/null 2>&1 || missing=1
    done < <(grep -v '^\s*#' tools/packages.txt | grep -v '^\s*$')
    if ((missing)); then
      say "installing the missing Debian packages (sudo)"
      sudo tools/install-deps.sh
    fi
  else
    say "not root and no sudo: skipping package installation"
  fi
fi

# 2. Build.
if ((build)); then
  if [[ ! -f build/build.ninja ]]; then
    say "configuring the build"
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  say "building hgj-gateway and hgj-sim (ninja -j$jobs)"
  ninja -C build -j"$jobs" hgj-gateway hgj-sim
fi
gateway_bin="$root/build/hgj-gateway"
sim_bin="$root/build/tools/sim/hgj-sim"
for b in "$gateway_bin" "$sim_bin"; do
  [[ -x "$b" ]] || { echo "demo: $b is missing (build first)" >&2; exit 1; }
done

# 3. Ports. Debian's mosquitto package runs a system broker on 1883; never touch it. A port
# given on the command line must be free; any other is the default or the next free one above.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
taken=" "
pick_port() { # default -> $picked: the first free port from default on not taken by this run
  picked=$1
  while ! port_free "$picked" || [[ "$taken" == *" $picked "* ]]; do picked=$((picked + 1)); done
  taken+="$picked "
}
need_port() { # port what
  if ! port_free "$1"; then
    echo "demo: port $1 ($2) is already in use" >&2
    exit 1
  fi
  taken+="$1 "
}
if [[ -z "$mqtt_port" ]]; then pick_port 1884; mqtt_port=$picked; else need_port "$mqtt_port" broker; fi
if [[ -z "$http_port" ]]; then pick_port 8080; http_port=$picked; else need_port "$http_port" dashboard; fi

var="$root/var/demo"
mkdir -p "$var/mosquitto"
mosq_conf="$var/mosquitto.conf"
cat >"$mosq_conf" <<EOF
# Written by tools/demo.sh: the local device bus of the demo, loopback only.
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $var/mosquitto/
autosave_interval 30
# mosquitto silently drops a client's messages past this many queued (default 1000): size it
# for the whole compound replaying while the gateway restarts.
max_queued_messages 200000
max_inflight_messages 0
log_dest file $var/mosquitto/mosquitto.log
log_type error
log_type warning
log_type notice
EOF
# Run as root, mosquitto drops to its own user: let it write its data dir.
if [[ $(id -u) -eq 0 ]] && id mosquitto >/dev/null 2>&1; then
  chown -R mosquitto: "$var/mosquitto"
fi

pids=()
stop_all() {
  trap - EXIT
  if ((${#pids[@]})); then
    say "stopping"
    # Reverse order: simulator, gateway, then the broker (which saves its persistence).
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
      kill -TERM "${pids[i]}" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
      for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
  fi
}
# Ctrl-C reaches the whole process group; exiting runs stop_all for whatever is still running.
trap 'exit 130' INT TERM
trap stop_all EXIT

wait_port() {
  for _ in $(seq 100); do
    port_free "$1" || return 0
    sleep 0.1
  done
  return 1
}

say "starting mosquitto on 127.0.0.1:$mqtt_port (data: var/demo/mosquitto/)"
mosquitto -c "$mosq_conf" >"$var/mosquitto.log" 2>&1 &
pids+=($!)
wait_port "$mqtt_port" || { echo "demo: mosquitto did not start, see $var/mosquitto.log" >&2; exit 1; }

# The alert robots of conf/alerts.yaml are placeholders on loopback ports; the demo's robot
# answers them all, so alerts are delivered (var/demo/robot.log) instead of retried forever.
rm -f "$var/robot.port"
python3 tools/demo-robot.py --port-file "$var/robot.port" --log "$var/robot.log" \
  >"$var/robot.stderr" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s "$var/robot.port" ]] && break; sleep 0.1; done
[[ -s "$var/robot.port" ]] || { echo "demo: the alert robot did not start, see $var/robot.stderr" >&2; exit 1; }
robot_port=$(cat "$var/robot.port")
taken+="$robot_port "

# The example compound with the demo's ports: a copy of conf/ whose Modbus lines (served by the
# simulator) sit on free ports and whose alert channels point at the robot.
conf="$var/conf"
rm -rf "$conf"
cp -r conf "$conf"
# Like /etc/hgj on a box: the copy holds the robots' (placeholder) keys, so others may not read it.
chmod -R o-rwx "$conf"
modbus_note=""
for default in $(sed -n 's/.*type: tcp, host: 127\.0\.0\.1, port: \([0-9]*\)}.*/\1/p' conf/gateway.yaml); do
  pick_port "$default"
  sed -i "s/host: 127\.0\.0\.1, port: $default}/host: 127.0.0.1, port: $picked}/" "$conf/gateway.yaml"
  modbus_note+=" $picked"
done
sed -i -e "s#http://127\.0\.0\.1:1808[0-9]/#http://127.0.0.1:$robot_port/#" \
  -e "s#http://127\.0\.0\.1:8080/#http://127.0.0.1:$http_port/#" "$conf/alerts.yaml"
scenario_file="$scenario"
[[ "$scenario" == conf/* ]] && scenario_file="$var/$scenario"

url="tcp://127.0.0.1:$mqtt_port"
db="$var/hgj.db"
sim_args=(-c "$scenario_file" --set "mqtt.url=$url" --set "gateway=$conf/gateway.yaml")
[[ -n "$speed" ]] && sim_args+=(--speed "$speed")
[[ -n "$seed" ]] && sim_args+=(--seed "$seed")
say "starting the simulator: $scenario, Modbus on 127.0.0.1:${modbus_note# } (log: var/demo/sim.log)"
"$sim_bin" "${sim_args[@]}" >"$var/sim.log" 2>&1 &
pids+=($!)
# The simulator serves the Modbus lines: the gateway starts once they listen, so that the demo
# does not open with every Modbus device reported offline.
for p in $modbus_note; do
  wait_port "$p" || { echo "demo: the simulator did not open Modbus port $p, see $var/sim.log" >&2; exit 1; }
done

# Without tokens the dashboard on loopback is view-only; the demo's operator token lets the
# person trying it acknowledge alerts and switch ports (a fresh one per run, readable by us only).
operator_token_file="$var/operator.token"
(umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$operator_token_file")
operator_token=$(cat "$operator_token_file")

say "starting the gateway (config: var/demo/conf/gateway.yaml, log: var/demo/gateway.log)"
"$gateway_bin" run -c "$conf/gateway.yaml" --set "mqtt.url=$url" --set "http.port=$http_port" \
  --set "storage.path=$db" --set "http.operator_token_file=$operator_token_file" \
  >"$var/gateway.log" 2>&1 &
pids+=($!)

if wait_port "$http_port"; then
  say "dashboard: http://127.0.0.1:$http_port/"
else
  say "the dashboard (http://127.0.0.1:$http_port/) is not answering yet; see var/demo/gateway.log"
fi
say "operator token (to acknowledge alerts on the dashboard): $operator_token"
say "broker: $url   (mosquitto_sub -h 127.0.0.1 -p $mqtt_port -t 'compound/#' -v)"
say "database: $db   (sqlite3 $db \"SELECT device, point, value FROM readings ORDER BY id DESC LIMIT 5\")"
say "alerts sent to the demo's robot: var/demo/robot.log"
say "Ctrl-C stops the simulator, the gateway and the broker"

# Runs until Ctrl-C (or --duration), or until one of the three exits by itself.
start=$SECONDS
while true; do
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "demo: a process exited (pid $pid); see the logs in var/demo/" >&2
      exit 1
    fi
  done
  if ((duration > 0 && SECONDS - start >= duration)); then
    exit 0
  fi
  sleep 1
done
