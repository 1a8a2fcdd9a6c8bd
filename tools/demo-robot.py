#!/usr/bin/env python3
"""The demo's stand-in for the WeCom / DingTalk robots and the ops webhook.

Listens on 127.0.0.1 (a free port unless --port is given), answers every POST as a robot that
accepted the message ({"errcode":0}), and appends one line per message to --log: time, path
without its query (the robot key stays out of the log) and the message's first line. Writes the
port it listens on to --port-file once it accepts connections. Stops on SIGTERM / SIGINT.
"""
import argparse
import http.server
import json
import signal
import sys
import time


def first_line(body: bytes) -> str:
    try:
        msg = json.loads(body)
    except ValueError:
        return "(not JSON)"
    text = ""
    if isinstance(msg, dict):
        for key in ("markdown", "text"):
            part = msg.get(key)
            if isinstance(part, dict):
                text = part.get("content") or part.get("text") or ""
                break
        if not text:
            text = msg.get("message") or msg.get("title") or json.dumps(msg, ensure_ascii=False)
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return line[:200].encode("unicode_escape").decode("ascii") if not line.isprintable() else line[:200]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    log = open(args.log, "a", encoding="utf-8", buffering=1)

    class Robot(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(n, 1 << 20))
            path = self.path.split("?", 1)[0]
            log.write("%s %s %s\n" % (time.strftime("%H:%M:%S"), path, first_line(body)))
            reply = b'{"errcode":0,"errmsg":"ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, fmt, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Robot)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(args.port_file, "w") as f:
        f.write("%d\n" % server.server_address[1])
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
