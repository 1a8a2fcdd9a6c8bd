#!/usr/bin/python3
"""Soak of the gateway with churn (docs/reliability.md row 21): N minutes of the simulated compound
through a local mosquitto, the uplink to a second mosquitto, and churn every few seconds: local
broker restarts (SIGTERM or SIGKILL), upstream outages, device flaps (the simulator stopped and
started), SIGHUP reloads, HTTP and SSE clients coming and going. Every 10 s it samples the
gateway's RSS, file descriptors, threads, WAL and database size; at the end it draws a PNG chart
and passes only if, after warm-up, the heap in use (hgj_heap_in_use_bytes, glibc's mallinfo2)
grew < 1 MiB, in runs of 15 minutes or more RSS outside SQLite's page caches also grew < 1 MiB
(hgj_sqlite_memory_bytes; SQLite itself stays under 16 MiB), fds and threads did not grow, the WAL
stayed bounded, and nothing was lost: every probe reading a broker acknowledged is stored, and
the platform saw every outbox message id (msg_id seq without a gap).

Usage: tools/soak/soak.py --minutes N [--build build] [--out DIR] [--seed S]
Loopback only; every port chosen free at run time; bounded by --minutes (plus a drain).
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "lib"))
from loopback import free_port, port_open, wait_until  # noqa: E402
SITE = "hgj-demo-001"
PROBE = "P-B2-0500"  # a parking sensor of the example the simulator does not play below
PROBE_BASE_TS = 1764252000000


class Broker:
    """mosquitto on a free loopback port with persistence (saved on every change: the soak
    tests the gateway, not the broker's own crash window)."""

    def __init__(self, work, name):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                    f"persistence true\npersistence_location {self.dir}/\n"
                    "autosave_interval 1\nautosave_on_changes true\n"
                    "max_queued_messages 0\nmax_inflight_messages 100\n"
                    f"user {os.environ.get('USER', 'root')}\nlog_dest stderr\n"
                    "log_type error\nlog_type warning\n")
        self.proc = None
        self.start()

    def url(self):
        return f"tcp://127.0.0.1:{self.port}"

    def start(self):
        log = open(os.path.join(self.dir, "mosquitto.log"), "a")
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=log, stderr=log)
        if not wait_until(lambda: port_open(self.port), 15):
            raise RuntimeError(f"mosquitto did not start on {self.port}")

    def stop(self, sig=signal.SIGTERM):
        if self.proc:
            self.proc.send_signal(sig)
            self.proc.wait(30)
            self.proc = None


def ingest_ok(port):
    """Whether /healthz (200 or 503: some other subsystem may still be starting) reports the
    local broker's ingest subscribed."""
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
    except urllib.error.HTTPError as e:
        body = e.read()
    except OSError:
        return False
    try:
        return json.loads(body).get("ingest") == "ok"
    except ValueError:
        return False


class Robots:
    """The alert channels' robots (WeCom, DingTalk, the webhook): the demo's stand-in
    (tools/demo-robot.py), answering every message as a reachable robot does, so notifications
    are delivered as in a compound whose robots are up. Without them every notification of the
    run stays pending (kept for delivery.expire_after, 24 h): a robot outage, not the steady
    state the soak measures."""

    def __init__(self, work):
        self.log = os.path.join(work, "robots.log")
        port_file = os.path.join(work, "robots.port")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tools/demo-robot.py"), "--port-file", port_file,
             "--log", self.log], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_until(lambda: os.path.exists(port_file) and
                          open(port_file).read().strip() != "", 15):
            raise RuntimeError("the robots did not start")
        self.port = int(open(port_file).read())

    def messages(self):
        with open(self.log, encoding="utf-8") as f:
            return sum(1 for _ in f)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def config_for(work, robots_port):
    """A copy of conf/ whose alert channels post to the soak's robots (the alerts section comes
    from an included file, which --set does not reach)."""
    conf = os.path.join(work, "conf")
    shutil.copytree(os.path.join(ROOT, "conf"), conf)
    path = os.path.join(conf, "alerts.yaml")
    with open(path) as f:
        text = f.read()
    text = re.sub(r"http://127\.0\.0\.1:1808[0-9]/", f"http://127.0.0.1:{robots_port}/", text)
    with open(path, "w") as f:
        f.write(text)
    return os.path.join(conf, "gateway.yaml")


class Probe(threading.Thread):
    """A parking sensor reporting once a second at QoS 1 with ts = base + seq; a report counts
    as sent only when the broker acknowledged it (mosquitto_pub -q 1 exits 0 after the PUBACK)."""

    def __init__(self, broker):
        super().__init__(daemon=True)
        self.broker = broker
        self.acked = []
        self.stop_flag = threading.Event()

    def run(self):
        seq = 0
        while not self.stop_flag.is_set():
            seq += 1
            payload = json.dumps({"occupied": seq % 2 == 1, "ts": PROBE_BASE_TS + seq})
            r = subprocess.run(["mosquitto_pub", "-p", str(self.broker.port), "-h", "127.0.0.1",
                                "-q", "1", "-i", "soak-probe", "-t",
                                f"compound/parking/{PROBE}/state", "-m", payload],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
            if r.returncode == 0:
                self.acked.append(seq)
            self.stop_flag.wait(1.0)


class Platform:
    """The district platform: mosquitto_sub on the upstream broker with a persistent session,
    recording every message (it reconnects by itself across upstream outages)."""

    def __init__(self, broker, work):
        self.broker = broker
        self.file = os.path.join(work, "platform.txt")
        self.proc = None
        self.start()

    def start(self):
        out = open(self.file, "a")
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-p", str(self.broker.port), "-h", "127.0.0.1", "-q", "1", "-c",
             "-i", "soak-platform", "-t", f"hgj/{SITE}/#"], stdout=out,
            stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def msg_seqs(self):
        seqs = set()
        with open(self.file, errors="replace") as f:
            for line in f:
                try:
                    j = json.loads(line)
                except ValueError:
                    continue
                m = j.get("msg_id") if isinstance(j, dict) else None
                if isinstance(m, str) and m.startswith(SITE + ":"):
                    seqs.add(int(m.split(":")[-1]))
        return seqs


# What SQLite may hold at most: the store's and the alerts' connections at cache_size 512 KiB,
# the outbox's and the API's readers at SQLite's default 2 MiB, statements and schemas.
# Measured 0.7-1.1 MiB in 3-minute soaks; leaked statements or connections grow past this.
SQLITE_BOUND_MIB = 16


def gauges(port, names):
    """The named gauges from /metrics (None for each that cannot be read)."""
    out = {n: None for n in names}
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except OSError:
        return out
    for line in text.decode(errors="replace").splitlines():
        name, _, value = line.partition(" ")
        if name in out:
            out[name] = float(value)
    return out


def mib(v):
    return None if v is None else v / 2**20


def proc_sample(pid, db, port):
    g = gauges(port, ("hgj_sqlite_memory_bytes", "hgj_heap_in_use_bytes", "hgj_uplink_connected"))
    s = {"t": time.monotonic(), "sqlite_mib": mib(g["hgj_sqlite_memory_bytes"]),
         "heap_mib": mib(g["hgj_heap_in_use_bytes"]),
         "uplink_connected": g["hgj_uplink_connected"] == 1, "ingest_ok": ingest_ok(port)}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                s["rss_mib"] = int(line.split()[1]) / 1024.0
            elif line.startswith("Threads:"):
                s["threads"] = int(line.split()[1])
    s["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    names = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue  # the thread ended between the listing and the read
        names[name] = names.get(name, 0) + 1
    s["thread_names"] = names
    s["wal_mib"] = (os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0) / 2**20
    s["db_mib"] = os.path.getsize(db) / 2**20 if os.path.exists(db) else 0
    return s


def links_up(samples):
    """The samples taken with both links up (all of them if none was). Sockets and threads come
    and go with the links: Paho's two threads (MQTTAsync_send, MQTTAsync_rcv) and the upstream
    socket exist only while the uplink is connected, the ingest's socket only while the local
    broker is up; a sample taken during an outage has fewer, which is not a leak."""
    return [x for x in samples if x.get("uplink_connected") and x.get("ingest_ok")] or samples


def growth(first, last, key):
    """How much `key` (fds, threads) grew from the first third to the last: the fewest in each,
    on the samples taken with the links up, so one sample taken during an SSE burst or an
    outage does not decide."""
    return min(x[key] for x in links_up(last)) - min(x[key] for x in links_up(first))


def thread_names_grown(first, last):
    """Which thread names the last samples hold more of than the first ones did (the fewest of
    each name per third, as the count itself is judged)."""
    def fewest(samples):
        names = set().union(*(x.get("thread_names", {}) for x in samples))
        return {n: min(x.get("thread_names", {}).get(n, 0) for x in samples) for n in names}
    a, b = fewest(first), fewest(last)
    grown = {n: b[n] - a.get(n, 0) for n in b if b[n] > a.get(n, 0)}
    return ", ".join(f"{n} +{k}" for n, k in sorted(grown.items())) or "(names unchanged)"


def http_clients(port, seconds):
    """A burst of API reads and an SSE client held open for `seconds`, then closed."""
    for path in ("/api/v1/parking", "/api/v1/devices", "/api/v1/ebike", "/metrics", "/healthz",
                 "/api/v1/alerts?state=active"):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read()
        except OSError:
            pass
    try:
        r = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/events", timeout=10)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            r.read1(4096)
        r.close()
    except OSError:
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=3)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default=None, help="where the samples, chart and logs go")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--churn-every", type=float, default=None,
                    help="seconds between churn events (default: 20, 8 for runs under 10 min)")
    ap.add_argument("--redraw", metavar="SAMPLES_JSON", default=None,
                    help="only draw the chart of an earlier run's samples.json (into --out)")
    args = ap.parse_args()
    if args.redraw:
        with open(args.redraw) as f:
            run = json.load(f)
        minutes = run["verdict"]["minutes"]
        warmup = 300.0 if minutes >= 15 else minutes * 60 * 0.6
        out = args.out or os.path.dirname(os.path.abspath(args.redraw))
        draw(run["samples"], run["events"], run["t0"], warmup, os.path.join(out, "soak.png"),
             run["verdict"])
        return 0
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="hgj-soak-")
    out = args.out or work
    os.makedirs(out, exist_ok=True)
    duration = args.minutes * 60
    # SQLite's page caches (512 KiB per connection) and the allocator's arenas fill during the
    # first minutes: in a 3-minute run RSS still climbs by about 0.5 MiB between 100 s and 120 s
    # and is flat after (build/soak/samples.json of the CI runs), so short runs judge the last
    # 40 % (8 samples) only.
    warmup = 300.0 if args.minutes >= 15 else duration * 0.6
    churn_every = args.churn_every or (20.0 if args.minutes >= 10 else 8.0)
    print(f"soak: {args.minutes} min, warm-up {warmup:.0f} s, churn every {churn_every} s, "
          f"seed {args.seed}, work dir {work}", flush=True)

    local = Broker(work, "local")
    upstream = Broker(work, "upstream")
    platform = Platform(upstream, work)
    robots = Robots(work)
    gateway_yaml = config_for(work, robots.port)
    db = os.path.join(work, "hgj.db")
    http_port = free_port()
    lines = {"shed-bus": free_port(), "meter-bus": free_port(), "garage-bus": free_port()}
    gw_cmd = [os.path.join(args.build, "hgj-gateway"), "run", "-c", gateway_yaml,
              "--set", f"mqtt.url={local.url()}", "--set", f"storage.path={db}",
              "--set", f"http.port={http_port}", "--set", "uplink.enabled=true",
              "--set", f"uplink.url={upstream.url()}", "--set", "modbus.enabled=true",
              "--set", "mqtt.reconnect_max=2s", "--set", "uplink.backoff.max=2s",
              # "nothing lost" is checked as msg_ids without a gap: coalesced summaries would
              # leave (counted) gaps, tools/district/ accounts for those instead
              "--set", "uplink.summaries.coalesce=false"]
    for line, port in lines.items():
        gw_cmd += ["--set", f"modbus.lines.{line}.port={port}"]
    gw_log = open(os.path.join(out, "gateway.log"), "w")
    gw = subprocess.Popen(gw_cmd, stdout=gw_log, stderr=gw_log)
    # Ready means subscribed: a reading the broker acknowledges before the gateway's first
    # SUBSCRIBE has no session to be queued in (the broker drops it), so the probe starts only
    # once /healthz says the ingest is "ok" (the HTTP port opens before that).
    if not wait_until(lambda: ingest_ok(http_port), 60):
        print("soak: FAIL: the gateway did not subscribe (see gateway.log)")
        gw.terminate()
        gw.wait(30)
        for part in (robots, platform, local, upstream):
            part.stop()
        return 1
    sim_cmd = [os.path.join(args.build, "tools/sim/hgj-sim"), "-c",
               os.path.join(ROOT, "conf/scenarios/demo.yaml"), "--seed", str(args.seed),
               "--set", f"mqtt.url={local.url()}", "--set", "mqtt.client_id=hgj-soak-sim"]
    for line, port in lines.items():
        sim_cmd += ["--set", f"modbus.lines.{line}={port}"]
    sim_log = open(os.path.join(out, "sim.log"), "w")

    def start_sim():
        return subprocess.Popen(sim_cmd, stdout=sim_log, stderr=sim_log)

    sim = start_sim()
    probe = Probe(local)
    probe.start()

    samples, events = [], []
    t0 = time.monotonic()
    next_sample = t0
    next_churn = t0 + churn_every
    kinds = ["broker_restart", "broker_kill", "upstream_outage", "device_flap", "sighup",
             "http_clients"]
    upstream_back_at = None
    failed = None
    while time.monotonic() - t0 < duration:
        now = time.monotonic()
        if gw.poll() is not None:
            failed = f"the gateway exited with {gw.returncode}"
            break
        if now >= next_sample:
            samples.append(proc_sample(gw.pid, db, http_port))
            next_sample += 10
        if upstream_back_at and now >= upstream_back_at:
            upstream.start()
            upstream_back_at = None
        if now >= next_churn:
            kind = kinds[len(events) % len(kinds)] if rng.random() < 0.7 else rng.choice(kinds)
            events.append((now - t0, kind))
            if kind == "broker_restart":
                local.stop(signal.SIGTERM)
                local.start()
            elif kind == "broker_kill":
                local.stop(signal.SIGKILL)
                local.start()
            elif kind == "upstream_outage" and upstream_back_at is None:
                upstream.stop()
                upstream_back_at = now + rng.uniform(5, churn_every * 1.5)
            elif kind == "device_flap":
                sim.terminate()
                sim.wait(30)
                sim = start_sim()
            elif kind == "sighup":
                gw.send_signal(signal.SIGHUP)
            elif kind == "http_clients":
                threading.Thread(target=http_clients, args=(http_port, rng.uniform(2, 6)),
                                 daemon=True).start()
            next_churn += churn_every
        time.sleep(0.1)

    # Drain: the upstream back, the probe stopped; everything acknowledged must arrive.
    if upstream_back_at:
        upstream.start()
    probe.stop_flag.set()
    probe.join(60)
    sim.terminate()
    sim.wait(30)
    lost_probe, missing_ids, drained = [], [], False
    if failed is None:
        def probe_stored():
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as c:
                rows = c.execute("SELECT DISTINCT ts_ms FROM readings WHERE device=?",
                                 (PROBE,)).fetchall()
            return {r[0] - PROBE_BASE_TS for r in rows}

        wait_until(lambda: set(probe.acked) <= probe_stored(), 60)
        lost_probe = sorted(set(probe.acked) - probe_stored())

        def outbox_depth():
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as c:
                return c.execute("SELECT count(*) FROM outbox").fetchone()[0]

        drained = wait_until(lambda: outbox_depth() == 0, 120)
        time.sleep(2)  # the last deliveries reach the platform's file
        seqs = platform.msg_seqs()
        if seqs:
            missing_ids = sorted(set(range(min(seqs), max(seqs) + 1)) - seqs)
        samples.append(proc_sample(gw.pid, db, http_port))
        gw.send_signal(signal.SIGTERM)
        try:
            rc = gw.wait(60)
        except subprocess.TimeoutExpired:
            gw.kill()
            rc = "timeout"
        if rc != 0:
            failed = f"SIGTERM: the gateway exited with {rc}"
    else:
        gw.kill()
    platform.stop()
    local.stop()
    upstream.stop()

    # Verdict on the samples after warm-up: thirds compared, so one sample taken during an SSE
    # burst does not decide.
    steady = [s for s in samples if s["t"] - t0 >= warmup]
    verdict = {"minutes": args.minutes, "seed": args.seed, "samples": len(samples),
               "events": len(events), "probe_acked": len(probe.acked),
               "probe_lost": len(lost_probe), "platform_msg_ids": 0, "platform_missing": 0}
    verdict["robot_messages"] = robots.messages()
    robots.stop()
    problems = []
    if failed:
        problems.append(failed)
    if len(steady) >= 6:
        third = max(2, len(steady) // 3)
        first, last = steady[:third], steady[-third:]
        rss_growth = statistics.median(x["rss_mib"] for x in last) - \
            statistics.median(x["rss_mib"] for x in first)
        # SQLite's page caches grow with the database until each connection's cache_size is
        # full (bounded, not a leak): judge the rest of the resident set, and SQLite against
        # its own bound.
        sq = [x for x in steady if x.get("sqlite_mib") is not None]
        sq_first = [x for x in first if x.get("sqlite_mib") is not None]
        sq_last = [x for x in last if x.get("sqlite_mib") is not None]
        sqlite_growth = 0.0
        if sq_first and sq_last:
            sqlite_growth = statistics.median(x["sqlite_mib"] for x in sq_last) - \
                statistics.median(x["sqlite_mib"] for x in sq_first)
        sqlite_max = max((x["sqlite_mib"] for x in sq), default=None)
        other_growth = rss_growth - max(0.0, sqlite_growth)
        hp_first = [x["heap_mib"] for x in first if x.get("heap_mib") is not None]
        hp_last = [x["heap_mib"] for x in last if x.get("heap_mib") is not None]
        heap_growth = (statistics.median(hp_last) - statistics.median(hp_first)
                       if hp_first and hp_last else None)
        fd_growth = growth(first, last, "fds")
        thread_growth = growth(first, last, "threads")
        wal_max = max(x["wal_mib"] for x in steady)
        verdict.update({"rss_first_mib": round(statistics.median(x["rss_mib"] for x in first), 2),
                        "rss_growth_mib": round(rss_growth, 2),
                        "sqlite_growth_mib": round(sqlite_growth, 2),
                        "sqlite_max_mib": round(sqlite_max, 2) if sqlite_max is not None
                        else None,
                        "rss_growth_without_sqlite_mib": round(other_growth, 2),
                        "heap_growth_mib": round(heap_growth, 2) if heap_growth is not None
                        else None,
                        "fd_growth": fd_growth,
                        "thread_growth": thread_growth, "wal_max_mib": round(wal_max, 2),
                        "db_mib": round(steady[-1]["db_mib"], 2)})
        if not sq or heap_growth is None:
            problems.append("hgj_sqlite_memory_bytes / hgj_heap_in_use_bytes not in /metrics")
        # A leak grows what the allocator has handed out (heap in use). The resident set also
        # grows by what the allocator keeps after a free (glibc's per-thread arenas), in steps
        # at churn events that settle within tens of minutes (docs/reliability.md): a long run
        # (15 min or more, 5-min warm-up) judges RSS itself, a short one the heap in use.
        if heap_growth is not None and heap_growth >= 1.0:
            problems.append(f"heap in use grew {heap_growth:.2f} MiB after warm-up")
        if args.minutes >= 15 and other_growth >= 1.0:
            problems.append(f"RSS grew {rss_growth:.2f} MiB after warm-up, "
                            f"{other_growth:.2f} MiB of it outside SQLite")
        if sqlite_max is not None and sqlite_max > SQLITE_BOUND_MIB:
            problems.append(f"SQLite held {sqlite_max:.1f} MiB (bound {SQLITE_BOUND_MIB} MiB)")
        if fd_growth > 0:
            problems.append(f"file descriptors grew by {fd_growth}")
        if thread_growth > 0:
            problems.append(f"threads grew by {thread_growth}: "
                            f"{thread_names_grown(links_up(first), links_up(last))}")
        if wal_max > 64:
            problems.append(f"WAL reached {wal_max:.1f} MiB")
    else:
        problems.append("too few samples after warm-up")
    if lost_probe:
        problems.append(f"{len(lost_probe)} acknowledged probe readings not stored: "
                        f"{lost_probe[:10]}")
    if failed is None:
        seqs = platform.msg_seqs()
        verdict["platform_msg_ids"] = len(seqs)
        verdict["platform_missing"] = len(missing_ids)
        if not drained:
            problems.append("the outbox did not drain")
        if missing_ids:
            problems.append(f"{len(missing_ids)} outbox messages never reached the platform: "
                            f"{missing_ids[:10]}")
        if not seqs:
            problems.append("the platform received nothing")
    verdict["pass"] = not problems
    verdict["problems"] = problems
    with open(os.path.join(out, "samples.json"), "w") as f:
        json.dump({"t0": t0, "samples": samples, "events": events, "verdict": verdict}, f)
    draw(samples, events, t0, warmup, os.path.join(out, "soak.png"), verdict)
    print(json.dumps(verdict), flush=True)
    return 0 if not problems else 1


def draw(samples, events, t0, warmup, path, verdict):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("soak: no chart (python3-matplotlib is not installed)")
        return
    t = [(s["t"] - t0) / 60 for s in samples]
    fig, ax = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
    series = [("rss_mib", "RSS (MiB)"), ("fds", "open fds"), ("threads", "threads"),
              ("wal_mib", "WAL / DB (MiB)")]
    for a, (key, label) in zip(ax, series):
        a.plot(t, [s[key] for s in samples], label=label)
        if key == "rss_mib":
            a.plot(t, [s.get("heap_mib") for s in samples], label="heap in use (mallinfo2)")
            a.plot(t, [s.get("sqlite_mib") for s in samples], label="of which SQLite")
            a.legend(loc="upper left")
        if key == "wal_mib":
            a.plot(t, [s["db_mib"] for s in samples], label="database")
            a.legend(loc="upper left")
        a.set_ylabel(label)
        a.axvspan(0, warmup / 60, color="0.9")
        a.grid(True, alpha=0.3)
    colors = {"broker_restart": "tab:blue", "broker_kill": "tab:red",
              "upstream_outage": "tab:orange", "device_flap": "tab:green", "sighup": "tab:purple",
              "http_clients": "tab:gray"}
    for at, kind in events:
        ax[0].axvline(at / 60, color=colors.get(kind, "k"), alpha=0.25, lw=0.8)
    ax[-1].set_xlabel("minutes (grey: warm-up; lines on top: churn events)")
    fig.suptitle(f"hgj-gateway soak, {verdict['minutes']} min, {len(events)} churn events: "
                 f"{'pass' if verdict.get('pass') else 'FAIL'}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    sys.exit(main())
