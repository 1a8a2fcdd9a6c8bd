#!/usr/bin/env python3
"""Hazard to cut: from the publish of the deciding hot e-bike reading to the relay command on
the broker, at a fixed rate, with and without a stalled disk.

For each case: a fresh mosquitto on loopback, hgj-gateway on the example compound with
tools/bench/rules-bench-cut.yaml (over 60 C -> cut, no hold), hgj_alert_listener recording every
compound/ebike/+/+/set, hgj_loadgen at --rate msg/s for --seconds with 1 in --hot-every e-bike
readings hot. Latency of a hot reading = arrival of the first relay:false command for its port
after it - the reading's ts (whole ms at publish, so +0..1 ms bias). A port already cut whose
command is still unconfirmed (the load generator never reports the relay) joins that command:
such hot readings have no command of their own and are counted as `joined`, not measured.

Cases: `normal`; `stall`: HGJ_FAULTS=commit_stall_ms=1000 (every storage commit stalls 1 s).
Prints one JSON line per case and a Markdown row for docs/benchmarks.md. Loopback only,
bounded in time. Usage: tools/bench/hazard_cut.py --build-dir build [--rate 2000] [--seconds 20]
"""
import argparse
import bisect
import json
import os
import subprocess
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (Broker, Gateway, helpers)

ROOT = bench.ROOT


def run_case(args, name, faults):
    rundir = tempfile.mkdtemp(prefix="hgj-cut-%s-" % name)
    b = types.SimpleNamespace(
        port=bench.free_port(19900), rules=os.path.join(ROOT, "tools", "bench", "rules-bench-cut.yaml"),
        site="bench", a=types.SimpleNamespace(gw_set=[]),
        gateway=os.path.join(args.build_dir, "hgj-gateway"),
        config=os.path.join(ROOT, "conf", "gateway.yaml"))
    tool = lambda t: os.path.join(args.build_dir, "tools", "bench", t)  # noqa: E731
    broker = bench.Broker(rundir, None, name)
    gw = al = None
    old = os.environ.get("HGJ_FAULTS")
    try:
        if faults:
            os.environ["HGJ_FAULTS"] = faults
        gw = bench.Gateway(b, rundir, name, broker, broker.port, os.path.join(rundir, "gw.db"))
        if old is None:
            os.environ.pop("HGJ_FAULTS", None)
        else:
            os.environ["HGJ_FAULTS"] = old
        gw.wait_ready()
        stopf = os.path.join(rundir, "stop")
        readyf = os.path.join(rundir, "listener")
        cutf = os.path.join(rundir, "cuts")
        al = subprocess.Popen([tool("hgj_alert_listener"), "--port", str(broker.port), "--site",
                               "bench", "--stop-file", stopf, "--grace-s", "2", "--seconds",
                               str(args.seconds + 120), "--ready-file", readyf, "--cut-file", cutf],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        bench.wait_for(lambda: os.path.exists(readyf), 10)
        n = args.rate * args.seconds
        r = subprocess.run([tool("hgj_loadgen"), "--port", str(broker.port), "--count", str(n),
                            "--rate", str(args.rate), "--qos", "1", "--hot-every",
                            str(args.hot_every), "--seconds", str(args.seconds + 30), "--list-hot"],
                           capture_output=True, text=True, timeout=args.seconds + 120)
        g = bench.last_json(r.stdout) or {}
        time.sleep(1.0)  # the last cuts may trail the last publish by a pipeline hop
        open(stopf, "w").close()
        al.communicate(timeout=30)
        cuts = {}
        with open(cutf) as f:
            for line in f:
                dev, t, relay = line.split()
                if relay == "0":
                    cuts.setdefault(dev, []).append(float(t))
        for v in cuts.values():
            v.sort()
        hots = {}
        for dev, ts in g.get("hot_list", []):
            hots.setdefault(dev, []).append(ts)
        lat, joined = [], 0
        for dev, tss in hots.items():
            tss.sort()
            c = cuts.get(dev, [])
            used = -1
            for k, ts in enumerate(tss):
                nxt = tss[k + 1] if k + 1 < len(tss) else float("inf")
                i = bisect.bisect_left(c, ts)
                if i < len(c) and c[i] < nxt and i != used:
                    lat.append(c[i] - ts)
                    used = i
                else:
                    joined += 1
        res = {"case": name, "rate": args.rate, "sent": g.get("sent"), "gen_rate": g.get("rate"),
               "hot": len(sum(hots.values(), [])), "measured": len(lat), "joined": joined,
               "p50_ms": round(bench.nearest_rank(lat, 50), 2) if lat else None,
               "p99_ms": round(bench.nearest_rank(lat, 99), 2) if lat else None,
               "max_ms": round(max(lat), 2) if lat else None, "faults": faults or "",
               "rundir": rundir}
        print(json.dumps(res), flush=True)
        return res
    finally:
        if al is not None and al.poll() is None:
            bench.stop_proc(al)
        if gw is not None:
            bench.stop_proc(gw.p)
        broker.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--hot-every", type=int, default=100)
    a = ap.parse_args()
    rows = [run_case(a, "normal", ""), run_case(a, "stall", "commit_stall_ms=1000")]
    print("| hazard to cut @ %d msg/s | p50 ms | p99 ms | max ms | measured / hot |" % a.rate)
    print("|---|---|---|---|---|")
    for r in rows:
        label = "every storage commit stalled 1 s" if r["case"] == "stall" else "normal disk"
        print("| %s | %s | %s | %s | %s / %s |" % (label, r["p50_ms"], r["p99_ms"], r["max_ms"],
                                               r["measured"], r["hot"]))


if __name__ == "__main__":
    main()
