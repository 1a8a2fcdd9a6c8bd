#!/usr/bin/env python3
"""Writes a week of readings of the example compound into the `readings` table of a stopped
gateway's database, for the history page's browser test (run_daemon.sh then rebuilds the
history from them with `hgj-gateway history rebuild`, as an installer would after an upgrade).

Usage: seed_history.py DB LAST_DAY [UTC_OFFSET_MINUTES]

The seven local days ending with LAST_DAY (YYYY-MM-DD): every parking space of B1, B2 and G
(residents leave in the morning and come back in the evening, more of them on B2; visitors on
G around midday) and the first ten EV piles (an evening charging session each, its energy
counter starting at 0); and cleared alerts over the 8 weeks before it. Deterministic: the same arguments give the same rows.
"""
import datetime
import sqlite3
import sys

MIN = 60_000
DAY = 24 * 60 * MIN


def midnight(day, offset_min):
    d = datetime.date.fromisoformat(day)
    epoch = datetime.date(1970, 1, 1)
    return (d - epoch).days * DAY - offset_min * MIN


def space_rows(level, n, first_midnight, days):
    rows = []
    dev = f"P-{level}-{n:04d}"
    occupied = n % 3 == 0 if level != "G" else False
    for d in range(days):
        m = first_midnight + d * DAY
        events = [(m, occupied)]
        if level == "G":
            # Visitors: some spaces taken from late morning to the afternoon.
            if (n * 7 + d * 3) % 10 < 6:
                events.append((m + 10 * 60 * MIN + ((n * 23 + d) % 120) * MIN, True))
                events.append((m + 15 * 60 * MIN + ((n * 11 + d) % 90) * MIN, False))
        else:
            if occupied:
                events.append((m + 7 * 60 * MIN + (n % 120) * MIN, False))
            # Back in the evening: most on B2, fewer on B1, a different share each day.
            share = 88 if level == "B2" else 70
            back = (n * 13 + d * 7) % 100 < share - d
            events.append((m + 12 * 60 * MIN, events[-1][1]))  # a midday heartbeat
            events.sort()
            if back:
                events.append((m + (17 * 60 + 30) * MIN + ((n * 37 + d * 11) % 240) * MIN, True))
        for ts, occ in events:
            rows.append((dev, "occupied", 1 if occ else 0, "good", ts, ts))
        occupied = events[-1][1]
    return rows


def pile_rows(p, first_midnight, days):
    rows = []
    dev = f"EV-{p:02d}"
    for d in range(days):
        m = first_midnight + d * DAY
        start = m + 19 * 60 * MIN + ((p * 13 + d * 5) % 120) * MIN
        kwh = 0.0
        for step in range(0, 24 * 4):
            ts = m + step * 15 * MIN + p * MIN
            charging = start <= ts < start + 3 * 60 * MIN
            if charging:
                kwh += 1.7 + ((p + step + d) % 5) * 0.1
            rows.append((dev, "state", "charging" if charging else "idle", "good", ts, ts))
            rows.append((dev, "energy_kwh", round(kwh, 3), "good", ts, ts))
            if not charging and ts >= start + 3 * 60 * MIN:
                kwh = 0.0
    return rows


def alert_rows(last_midnight):
    """Cleared over-temperature alerts of e-bike ports over the 8 weeks before, a different
    number each week, for the alerts-per-week chart."""
    rows = []
    for week in range(8):
        for k in range((week * 3) % 5 + 1):
            raised = last_midnight - week * 7 * DAY - (k + 1) * 20 * 60 * MIN
            port = f"S{(week + k) % 37 + 1:02d}/P{k % 10 + 1:02d}"
            rows.append(("port_over_temperature", port, "G3", "critical", "cleared",
                         f"{port} 端口温度 75°C", "75", raised, raised, raised + 30 * MIN))
    return rows


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    db, last_day = sys.argv[1], sys.argv[2]
    offset = int(sys.argv[3]) if len(sys.argv) == 4 else 480
    days = 7
    first = midnight(last_day, offset) - (days - 1) * DAY
    rows = []
    for level, count in (("B1", 500), ("B2", 500), ("G", 24)):
        for n in range(1, count + 1):
            rows += space_rows(level, n, first, days)
    for p in range(1, 11):
        rows += pile_rows(p, first, days)
    alerts = alert_rows(midnight(last_day, offset))
    con = sqlite3.connect(db)
    with con:
        con.executemany(
            "INSERT INTO readings(device, point, value, quality, ts_ms, ingest_ms) "
            "VALUES (?, ?, ?, ?, ?, ?)", rows)
        con.executemany(
            "INSERT INTO alerts(rule, device, grid, severity, state, message, value, source_ts, "
            "raised_at, cleared_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", alerts)
    con.close()
    print(f"seed_history: {len(rows)} readings over {days} days ending {last_day}, "
          f"{len(alerts)} cleared alerts over 8 weeks")


if __name__ == "__main__":
    main()
