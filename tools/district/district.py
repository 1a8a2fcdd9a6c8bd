#!/usr/bin/python3
"""A district of gateways against one upstream broker (issue #18, docs/district.md).

Runs N hgj-gateway processes (default 143), each with its own small generated compound (the
example compound's shape scaled down: 40 parking spaces on B1 in zones A-D, 2 e-bike sheds of
10 ports, 3 EV piles), its own database and HTTP port, all reading one local mosquitto (each
compound's devices publish under their own topic prefix, `{site}/compound/...`, through
generated copies of the MQTT profiles) and all syncing to one upstream mosquitto. A generator
plays a light load (parking changes, e-bike and EV reports, now and then an overheating e-bike
port, which raises an alert and clears it). After a warm-up the upstream is stopped for the
outage, then started again on the same port, and the tool measures:

- catch-up: from the upstream's return until every gateway is connected with an empty outbox;
- the upstream's message rate per second (PUBLISH packets the broker received, from its $SYS
  counters, and what a counting subscriber received) and its connections per second (from its
  log), with their peaks;
- lost messages: every alert and summary each gateway put into its outbox (its
  hgj_outbox_messages_total, minus the summaries it coalesced or dropped while full) against the
  msg_ids the counting subscriber received; must be 0;
- each gateway's RSS (VmRSS, VmHWM).

It prints a table, writes result.json and samples.csv, and draws a PNG of the district's outbox
depth over time. Loopback only (127.0.0.1), every port chosen free at run time; every loop is
bounded in count and time (--max-catchup-s, --max-load-messages).

Usage: tools/district/district.py [--gateways 143] [--outage-s 600] [--warmup-s 60]
         [--rate 0.5] [--hot-every 40] [--no-pacing] [--no-coalesce] [--set key=value ...]
         [--build build] [--out DIR] [--chart FILE] [--check]
"""
import argparse
import collections
import concurrent.futures
import json
import os
import pwd
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "lib"))
from loopback import free_ports, port_open, wait_until  # noqa: E402
PROFILES = ["parking_sensor_mqtt", "ebike_port_mqtt", "ebike_shed_mqtt", "ev_pile_mqtt"]
PARKING = 40     # P-B1-0001..0040, zones A-D of 10 (the example: 1,000 in 8 zones of 125)
SHEDS = 2        # S01..S02 of 10 ports (the example: 37)
PILES = 3        # EV-01..EV-03 (the example: 65)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Mosquitto:
    def __init__(self, work, name, port, extra=""):
        self.port = port
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir, exist_ok=True)
        self.log = os.path.join(self.dir, "mosquitto.log")
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            # mosquitto started as root drops to the user "mosquitto", which could not write
            # this folder: stay the user who runs the tool.
            f.write(f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
                    f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    f"persistence true\npersistence_location {self.dir}/\nautosave_interval 0\n"
                    f"max_queued_messages 0\nmax_inflight_messages 0\n"
                    f"log_dest file {self.log}\nlog_type notice\nlog_type information\n"
                    f"log_timestamp true\nlog_timestamp_format %s\n{extra}")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        if not wait_until(lambda: port_open(self.port), 10):
            raise RuntimeError(f"mosquitto on {self.port} did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def connects_per_second(self):
        """{unix second: connections} from the log's 'New client connected' lines."""
        out = collections.Counter()
        try:
            with open(self.log, errors="replace") as f:
                for line in f:
                    if "New client connected" in line and " as hgj-" in line:
                        out[int(line.split(":", 1)[0])] += 1
        except OSError:
            pass
        return out


# --- the generated compounds -------------------------------------------------------------

def write_compound(d, site, rules_text):
    os.makedirs(os.path.join(d, "profiles"), exist_ok=True)
    for p in PROFILES:
        with open(os.path.join(ROOT, "conf", "profiles", p + ".yaml")) as f:
            text = f.read()
        text = text.replace("topic: compound/", f"topic: {site}/compound/")
        with open(os.path.join(d, "profiles", p + ".yaml"), "w") as f:
            f.write(text)
    devices = ["devices:"]
    for z, zone in enumerate("ABCD"):
        lo, hi = z * 10 + 1, z * 10 + 10
        devices.append(f'  - {{id: "P-B1-{{n:04}}", range: [{lo}, {hi}], profile: parking_sensor_mqtt,'
                       f' grid: G1, location: {{building: 地库, level: B1, zone: {zone},'
                       f' space: "{{n:04}}"}}}}')
    devices.append(f'  - {{id: "EV-{{n:02}}", range: [1, {PILES}], profile: ev_pile_mqtt, grid: G1,'
                   f' location: {{building: 地库, level: B1, zone: D}}}}')
    devices.append(f'  - {{id: "S{{n:02}}", range: [1, {SHEDS}], profile: ebike_shed_mqtt, grid: G2,'
                   f' ports: 10, location: {{building: "1号车棚区", space: "S{{n:02}}"}}}}')
    files = {
        "devices.yaml": "\n".join(devices) + "\n",
        "grids.yaml": "grids:\n"
                      "  - id: G1\n    name: 地库网格\n    staff:\n"
                      '      - {name: 张伟, phone: "13800000001"}\n    channels: [upstream]\n'
                      "  - id: G2\n    name: 车棚网格\n    staff:\n"
                      '      - {name: 刘强, phone: "13800000003"}\n    channels: [upstream]\n',
        "alerts.yaml": "alerts:\n  default_channels: [upstream]\n"
                       "  channels:\n    - {id: upstream, type: upstream}\n",
        "rules.yaml": rules_text,
        "gateway.yaml": f"site: {{id: {site}, name: {site}}}\n"
                        "parking:\n  levels:\n    - {id: B1, name: 地下一层}\n"
                        "include:\n  grids: grids.yaml\n  devices: devices.yaml\n"
                        "  rules: rules.yaml\n  alerts: alerts.yaml\n  profiles: profiles\n"
                        "storage:\n  path: hgj.db\n"
                        "http:\n  bind: 127.0.0.1\n  port: 8080\n"
                        "uplink:\n  enabled: true\n  mode: native\n"
                        "log:\n  level: warn\n",
    }
    for name, text in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)


RULES = """rules:
  - name: port_over_temperature
    kind: threshold
    select: {type: ebike_port}
    point: temp_c
    op: ">"
    value: 60
    clear: 55
    severity: critical
    message: "{device} {location}: 充电口温度 {value}°C 超过 {threshold}°C"
"""


class Gateway:
    def __init__(self, idx, work, binary, mqtt_port, upstream_port, http_port, sets):
        self.idx = idx
        self.site = f"d{idx:03d}"
        self.dir = os.path.join(work, "gw", self.site)
        self.http_port = http_port
        write_compound(self.dir, self.site, RULES)
        self.cmd = [binary, "run", "-c", os.path.join(self.dir, "gateway.yaml"),
                    "--set", f"http.port={http_port}",
                    "--set", f"mqtt.url=tcp://127.0.0.1:{mqtt_port}",
                    "--set", f"uplink.url=tcp://127.0.0.1:{upstream_port}"]
        for s in sets:
            self.cmd += ["--set", s]
        self.proc = None
        self.last = {}

    def start(self):
        self.logf = open(os.path.join(self.dir, "gateway.log"), "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self.logf, stderr=self.logf,
                                     stdin=subprocess.DEVNULL)

    def metrics(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics",
                                        timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None
        m = {}
        for line in text.splitlines():
            if not line or line[0] == "#":
                continue
            key, _, value = line.rpartition(" ")
            try:
                m[key] = float(value)
            except ValueError:
                pass
        return m

    def rss(self):
        out = {}
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith(("VmRSS:", "VmHWM:")):
                        out[line.split(":")[0]] = int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return out

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self):
        if self.proc:
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.logf.close()


# --- load ----------------------------------------------------------------------------------

class Load(threading.Thread):
    """The devices of every compound, on the shared local broker, QoS 0: parking changes (80%),
    e-bike port reports (15%; 1 in hot_every is over 60 C, the next one of that port cools it
    down again), EV pile status (5%). `rate` messages/s per compound; bounded by max_messages
    and by stop()."""

    def __init__(self, port, sites, rate, hot_every, max_messages, seed):
        super().__init__(daemon=True)
        import paho.mqtt.client as mqtt
        self.client = mqtt.Client(client_id=f"district-load-{os.getpid()}", clean_session=True)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self.sites = sites
        self.rate = rate
        self.hot_every = hot_every
        self.max_messages = max_messages
        self.rng = random.Random(seed)
        self.sent = 0
        self.hot = 0
        self.stopping = threading.Event()
        self.hot_ports = set()

    def run(self):
        total_rate = self.rate * len(self.sites)
        if total_rate <= 0:
            return
        start = time.monotonic()
        ebike_n = 0
        while not self.stopping.is_set() and self.sent < self.max_messages:
            due = start + self.sent / total_rate
            delay = due - time.monotonic()
            if delay > 0:
                self.stopping.wait(delay)
                continue
            site = self.sites[self.sent % len(self.sites)]
            ts = int(time.time() * 1000)
            k = self.rng.random()
            if k < 0.80:
                n = self.rng.randint(1, PARKING)
                topic = f"{site}/compound/parking/P-B1-{n:04d}/state"
                payload = json.dumps({"occupied": self.rng.random() < 0.6, "ts": ts})
            elif k < 0.95:
                ebike_n += 1
                shed, port = self.rng.randint(1, SHEDS), self.rng.randint(1, 10)
                key = (site, shed, port)
                if key in self.hot_ports:
                    temp = 30.0
                    self.hot_ports.discard(key)
                elif ebike_n % self.hot_every == 0:
                    temp = 72.0
                    self.hot_ports.add(key)
                    self.hot += 1
                else:
                    temp = round(25 + self.rng.random() * 15, 1)
                topic = f"{site}/compound/ebike/S{shed:02d}/P{port:02d}/telemetry"
                payload = json.dumps({"current_a": 1.8, "power_w": 400, "temp_c": temp,
                                      "relay": True, "ts": ts})
            else:
                n = self.rng.randint(1, PILES)
                topic = f"{site}/compound/ev/EV-{n:02d}/status"
                payload = json.dumps({"state": self.rng.choice(["charging", "idle"]),
                                      "power_kw": 6.8, "energy_kwh": 12.3, "ts": ts})
            self.client.publish(topic, payload, qos=0)
            self.sent += 1

    def stop(self):
        self.stopping.set()
        self.join(10)
        self.client.loop_stop()
        self.client.disconnect()


class Counter:
    """The platform's side: a persistent QoS 1 session on the upstream topics that records the
    msg_id of every alert and summary, and how many arrived in each second."""

    def __init__(self, port):
        import paho.mqtt.client as mqtt
        self.lock = threading.Lock()
        self.ids = collections.defaultdict(lambda: {"alert": set(), "summary": set()})
        self.received = 0
        self.duplicates = 0
        self.per_second = collections.Counter()
        self.client = mqtt.Client(client_id="district-counter", clean_session=False)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self.on_connect
        self.client.on_message = self.on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("counting subscriber: no SUBACK")

    def on_connect(self, client, userdata, flags, rc):
        client.subscribe([("hgj/+/alerts", 1), ("hgj/+/summary/+", 1)])

    def on_message(self, client, userdata, msg):
        parts = msg.topic.split("/")
        kind = "alert" if parts[2] == "alerts" else "summary"
        try:
            mid = json.loads(msg.payload)["msg_id"]
            site, seq = mid.rsplit(":", 1)
            seq = int(seq)
        except (ValueError, KeyError, TypeError):
            return
        with self.lock:
            self.received += 1
            self.per_second[int(time.time())] += 1
            bucket = self.ids[site][kind]
            if seq in bucket:
                self.duplicates += 1
            bucket.add(seq)

    def counted(self, site, kind, max_n):
        with self.lock:
            return sum(1 for s in self.ids[site][kind] if (s & 0xFFFFFFFF) <= max_n)

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


class SysRate(threading.Thread):
    """The upstream broker's own count of PUBLISH packets received, from $SYS every second."""

    def __init__(self, port):
        super().__init__(daemon=True)
        import paho.mqtt.client as mqtt
        self.samples = []  # (unix time, total since the broker started)
        self.lock = threading.Lock()
        self.client = mqtt.Client(client_id="district-sys", clean_session=True)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = lambda c, u, f, rc: c.subscribe(
            "$SYS/broker/publish/messages/received", 0)
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def on_message(self, client, userdata, msg):
        try:
            v = int(msg.payload)
        except ValueError:
            return
        with self.lock:
            self.samples.append((time.time(), v))

    def per_second(self):
        """Rates between consecutive samples of one broker run (a restart resets the total)."""
        with self.lock:
            s = list(self.samples)
        out = []
        for (t0, v0), (t1, v1) in zip(s, s[1:]):
            if v1 >= v0 and t1 > t0:
                out.append((t1, (v1 - v0) / (t1 - t0)))
        return out

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


# --- the run -----------------------------------------------------------------------------

def scrape(gws, pool):
    return dict(zip([g.site for g in gws], pool.map(lambda g: g.metrics(), gws)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gateways", type=int, default=143)
    ap.add_argument("--outage-s", type=float, default=600)
    ap.add_argument("--warmup-s", type=float, default=60)
    ap.add_argument("--rate", type=float, default=0.5, help="load messages/s per compound")
    ap.add_argument("--hot-every", type=int, default=40,
                    help="1 in N e-bike reports is over 60 C (raises an alert)")
    ap.add_argument("--max-load-messages", type=int, default=5_000_000)
    ap.add_argument("--max-catchup-s", type=float, default=900)
    ap.add_argument("--sample-s", type=float, default=2.0)
    ap.add_argument("--start-per-s", type=float, default=20, help="gateways started per second")
    ap.add_argument("--no-pacing", action="store_true", help="uplink.replay.max_rate=0")
    ap.add_argument("--no-coalesce", action="store_true", help="uplink.summaries.coalesce=false")
    ap.add_argument("--set", action="append", default=[], help="more --set for every gateway")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--chart", default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless nothing was lost and the district caught up")
    a = ap.parse_args()
    if a.gateways < 1 or a.gateways > 500:
        ap.error("--gateways must be 1..500")
    work = a.out or os.path.join(ROOT, "var", "district", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(work, exist_ok=True)
    binary = os.path.join(a.build, "hgj-gateway")
    sets = list(a.set)
    if a.no_pacing:
        sets.append("uplink.replay.max_rate=0")
    if a.no_coalesce:
        sets.append("uplink.summaries.coalesce=false")

    ports = free_ports(2 + a.gateways)
    local = Mosquitto(work, "local", ports[0])
    upstream = Mosquitto(work, "upstream", ports[1], "sys_interval 1\n")
    gws = [Gateway(i + 1, work, binary, ports[0], ports[1], ports[2 + i], sets)
           for i in range(a.gateways)]
    pool = concurrent.futures.ThreadPoolExecutor(8)
    samples = []  # (t, depth_sum, connected, rss_sum_mib, per-site depth)
    events = {}
    counter = sysrate = load = None
    result = {"gateways": a.gateways, "outage_s": a.outage_s, "warmup_s": a.warmup_s,
              "rate_per_compound": a.rate, "hot_every": a.hot_every,
              "pacing": not a.no_pacing, "coalesce": not a.no_coalesce, "sets": sets,
              "loadavg_start": os.getloadavg()}
    stop_sampling = threading.Event()
    peak_rss = {}

    def sampler():
        while not stop_sampling.is_set():
            t = time.time()
            m = scrape(gws, pool)
            depth = {s: (v or {}).get("hgj_outbox_depth") for s, v in m.items()}
            connected = sum(1 for v in m.values() if v and v.get("hgj_uplink_connected") == 1)
            rss = 0.0
            for g in gws:
                r = g.rss()
                rss += r.get("VmRSS", 0)
                peak_rss[g.site] = max(peak_rss.get(g.site, 0), r.get("VmHWM", 0))
            samples.append((t, sum(d for d in depth.values() if d is not None), connected, rss,
                            depth, m))
            stop_sampling.wait(max(0.1, a.sample_s - (time.time() - t)))

    try:
        local.start()
        upstream.start()
        counter = Counter(upstream.port)
        sysrate = SysRate(upstream.port)
        log(f"{a.gateways} gateways, local broker :{local.port}, upstream :{upstream.port}, "
            f"work {work}")
        for i, g in enumerate(gws):
            g.start()
            time.sleep(1.0 / a.start_per_s)
        if not wait_until(lambda: all(g.metrics() is not None for g in gws), 120, 1.0):
            bad = [g.site for g in gws if g.metrics() is None]
            raise RuntimeError(f"gateways not answering: {bad[:10]}")
        log("every gateway answers; starting the load")
        load = Load(local.port, [g.site for g in gws], a.rate, a.hot_every,
                    a.max_load_messages, a.seed)
        load.start()
        threading.Thread(target=sampler, daemon=True).start()
        time.sleep(a.warmup_s)

        events["outage_start"] = time.time()
        log(f"upstream down for {a.outage_s:.0f} s")
        upstream.stop()
        time.sleep(a.outage_s)
        upstream.start()
        events["outage_end"] = time.time()
        log("upstream back; waiting for every outbox to empty")

        def caught_up():
            if not samples or samples[-1][0] < events["outage_end"] + a.sample_s:
                return False
            last = samples[-1]
            return last[2] == a.gateways and all(d == 0 for d in last[4].values())
        ok = wait_until(caught_up, a.max_catchup_s, 0.5)
        events["caught_up"] = samples[-1][0] if ok else None
        result["catchup_s"] = (events["caught_up"] - events["outage_end"]) if ok else None
        log(f"caught up: {ok} after {result['catchup_s']}")
        time.sleep(min(10.0, a.warmup_s))  # the district after the storm, in the chart
        load.stop()
        result["load_messages"] = load.sent
        result["hot_readings"] = load.hot

        # Accounting: a scrape in which a gateway's outbox is empty fixes what it must have
        # delivered (every message given a msg_id up to then); wait for the counter to have it.
        expected = {}
        deadline = time.monotonic() + 120
        while len(expected) < a.gateways and time.monotonic() < deadline:
            for site, m in scrape(gws, pool).items():
                if site in expected or not m or m.get("hgj_outbox_depth") != 0:
                    continue
                total = sum(v for k, v in m.items() if k.startswith("hgj_outbox_messages_total"))
                expected[site] = {
                    "max_n": int(total),
                    "alert": int(m.get('hgj_outbox_messages_total{kind="alert"}', 0)),
                    "summary": int(m.get('hgj_outbox_messages_total{kind="summary"}', 0)
                                   - m.get("hgj_outbox_coalesced_total", 0)
                                   - m.get('hgj_outbox_dropped_total{kind="summary"}', 0)),
                    "coalesced": int(m.get("hgj_outbox_coalesced_total", 0)),
                    "dropped": int(sum(v for k, v in m.items()
                                       if k.startswith("hgj_outbox_dropped_total"))),
                    "connects": int(m.get("hgj_uplink_connects_total", 0)),
                    "backoffs": int(m.get("hgj_uplink_replay_backoffs_total", 0)),
                }
            time.sleep(0.5)

        def missing():
            lost = {"alert": 0, "summary": 0}
            for site, e in expected.items():
                for kind in ("alert", "summary"):
                    lost[kind] += max(0, e[kind] - counter.counted(site, kind, e["max_n"]))
            return lost
        wait_until(lambda: sum(missing().values()) == 0, 60, 0.5)
        lost = missing()
        stop_sampling.set()
        result["accounted_gateways"] = len(expected)
        result["expected"] = {k: sum(e[k] for e in expected.values())
                              for k in ("alert", "summary", "coalesced", "dropped", "connects",
                                        "backoffs")}
        result["lost"] = lost
        result["duplicates"] = counter.duplicates
        result["received"] = counter.received
    finally:
        stop_sampling.set()
        if load:
            load.stopping.set()
        for g in gws:
            g.stop()
        for g in gws:
            g.wait()
        for c in (counter, sysrate):
            if c:
                c.stop()
        upstream.stop()
        local.stop()
        pool.shutdown()

    # --- figures ---
    sys_rates = sysrate.per_second() if sysrate else []
    after = [(t, r) for t, r in sys_rates if t >= events.get("outage_end", 0)]
    result["peak_upstream_publish_rate"] = round(max((r for _, r in after), default=0), 1)
    before = [r for t, r in sys_rates if t < events.get("outage_start", 0)]
    result["steady_upstream_publish_rate"] = round(statistics.median(before), 1) if before else None
    delivered = counter.per_second if counter else {}
    result["peak_delivered_rate"] = max((v for t, v in delivered.items()
                                         if t >= events.get("outage_end", 0)), default=0)
    cps = upstream.connects_per_second()
    after_cps = {t: n for t, n in cps.items() if t >= int(events.get("outage_end", 0))}
    result["peak_connects_per_s"] = max(after_cps.values(), default=0)
    if after_cps:
        result["reconnect_spread_s"] = max(after_cps) - min(after_cps) + 1
    rss_now = [s for s in samples]
    per_gw_hwm = sorted(peak_rss.values())
    if per_gw_hwm:
        result["rss_peak_mib"] = {"min": round(per_gw_hwm[0], 1),
                                  "median": round(statistics.median(per_gw_hwm), 1),
                                  "max": round(per_gw_hwm[-1], 1),
                                  "sum": round(sum(per_gw_hwm), 1)}
    result["peak_outbox_depth_sum"] = max((s[1] for s in rss_now), default=0)
    result["loadavg_end"] = os.getloadavg()
    result["events"] = events
    result["upstream_rate_series"] = [[round(t, 2), round(r, 1)] for t, r in sys_rates]

    with open(os.path.join(work, "samples.csv"), "w") as f:
        f.write("t_s,outbox_depth_sum,connected,rss_sum_mib\n")
        t0 = samples[0][0] if samples else 0
        for s in samples:
            f.write(f"{s[0] - t0:.1f},{s[1]:.0f},{s[2]},{s[3]:.1f}\n")
    with open(os.path.join(work, "result.json"), "w") as f:
        json.dump(result, f, indent=1)

    rows = [
        ("gateways", a.gateways),
        ("outage", f"{a.outage_s:.0f} s"),
        ("pacing / coalescing", f"{'on' if not a.no_pacing else 'off'} / "
                                f"{'on' if not a.no_coalesce else 'off'}"),
        ("load", f"{a.rate} msg/s per compound, {result.get('load_messages')} messages, "
                 f"{result.get('hot_readings')} hot readings"),
        ("catch-up (upstream back -> every outbox empty)",
         f"{round(result['catchup_s'], 1) if result.get('catchup_s') else None} s"),
        ("peak outbox depth, district", result["peak_outbox_depth_sum"]),
        ("upstream PUBLISH rate before the outage (median)",
         f"{result['steady_upstream_publish_rate']} msg/s"),
        ("upstream PUBLISH rate after, peak ($SYS)", f"{result['peak_upstream_publish_rate']} msg/s"),
        ("delivered to the platform, peak", f"{result['peak_delivered_rate']} msg/s"),
        ("connections per second after, peak", result["peak_connects_per_s"]),
        ("reconnects spread over", f"{result.get('reconnect_spread_s')} s"),
        ("alerts / summaries expected", f"{result.get('expected', {}).get('alert')} / "
                                        f"{result.get('expected', {}).get('summary')}"),
        ("summaries coalesced / dropped", f"{result.get('expected', {}).get('coalesced')} / "
                                          f"{result.get('expected', {}).get('dropped')}"),
        ("lost (alerts + summaries)", sum(result.get("lost", {"x": -1}).values())),
        ("duplicates received", result.get("duplicates")),
        ("RSS per gateway, peak (min / median / max)",
         "{min} / {median} / {max} MiB".format(**result.get("rss_peak_mib",
                                                             {"min": 0, "median": 0, "max": 0}))),
        ("load average start -> end", f"{result['loadavg_start'][0]:.1f} -> "
                                      f"{result['loadavg_end'][0]:.1f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}")
    print(f"\n  {os.path.join(work, 'result.json')}")

    chart = a.chart or os.path.join(work, "district.png")
    draw(samples, events, sys_rates, chart, result)
    print(f"  {chart}")
    if a.check:
        good = (result.get("catchup_s") is not None and sum(result["lost"].values()) == 0
                and result["accounted_gateways"] == a.gateways)
        return 0 if good else 1
    return 0


def draw(samples, events, sys_rates, path, result):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if not samples:
        return
    t0 = events.get("outage_start", samples[0][0])
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.plot([(s[0] - t0) / 60 for s in samples], [s[1] for s in samples], color="tab:blue",
            label="outbox depth, all gateways (messages)")
    ax.set_xlabel("minutes since the upstream went down")
    ax.set_ylabel("messages waiting in the outboxes")
    if "outage_start" in events and "outage_end" in events:
        ax.axvspan(0, (events["outage_end"] - t0) / 60, color="tab:red", alpha=0.08,
                   label="upstream down")
    ax2 = ax.twinx()
    xs, ys = [], []
    for t, r in sys_rates:
        if xs and (t - t0) / 60 - xs[-1] > 5 / 60:
            xs.append(float("nan"))  # no line across the outage
            ys.append(float("nan"))
        xs.append((t - t0) / 60)
        ys.append(r)
    ax2.plot(xs, ys, color="tab:orange",
             alpha=0.7, linewidth=0.8, label="upstream PUBLISH rate (msg/s, $SYS)")
    ax2.set_ylabel("upstream msg/s")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    lost = sum(result.get("lost", {"x": -1}).values())
    ax.set_title(f"{result['gateways']} gateways, {result['outage_s'] / 60:.1f}-min outage, "
                 f"pacing {'on' if result['pacing'] else 'off'}, coalescing "
                 f"{'on' if result['coalesce'] else 'off'}: catch-up "
                 f"{round(result['catchup_s'], 1) if result.get('catchup_s') else None} s, "
                 f"peak {result['peak_upstream_publish_rate']} msg/s, lost {lost}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
