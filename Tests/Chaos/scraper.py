"""Scrape /metrics of several targets every INTERVAL seconds; print one JSON line per scrape (runs inside a namespace).

usage: scraper.py INTERVAL NAME=URL...
line:  {"t": unix, "target": NAME, "ok": bool, "v": {"metric": sum over series, "metric{outcome=x}": ...}}
Counters are summed over their labels, except celeriac_tasks_finished_total (split by outcome) and
celeriac_worker_consumer_stalls_total (split by reason).
"""

import json
import re
import sys
import time
import urllib.request

KEEP = ("celeriac_tasks_received_total", "celeriac_tasks_started_total", "celeriac_tasks_finished_total",
        "celeriac_broker_reconnects_total", "celeriac_worker_consumer_stalls_total", "celeriac_broker_connected",
        "celeriac_worker_ready", "celeriac_task_redelivered_total", "celeriac_task_redeliveries_total",
        "celeriac_task_duplicates_detected_total", "celeriac_beat_is_leader", "celeriac_beat_sends_total",
        "celeriac_beat_leader_changes_total", "celeriac_beat_send_failures_total", "celeriac_result_publish_failures_total")
SPLIT = {"celeriac_tasks_finished_total": "outcome", "celeriac_worker_consumer_stalls_total": "reason"}
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def parse(text):
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = LINE.match(line)
        if not m or m.group(1) not in KEEP:
            continue
        name, labels = m.group(1), m.group(2) or ""
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        key = name
        if name in SPLIT:
            lm = re.search(SPLIT[name] + r'="([^"]*)"', labels)
            key = f"{name}{{{SPLIT[name]}={lm.group(1) if lm else ''}}}"
            out[name] = out.get(name, 0.0) + value
        out[key] = out.get(key, 0.0) + value
    return out


def main():
    interval = float(sys.argv[1])
    targets = [a.split("=", 1) for a in sys.argv[2:]]
    while True:
        t0 = time.time()
        for name, url in targets:
            rec = {"t": time.time(), "target": name, "ok": False, "v": {}}
            try:
                with urllib.request.urlopen(url, timeout=min(1.0, interval * 4)) as r:
                    rec["v"] = parse(r.read().decode("utf-8", "replace"))
                    rec["ok"] = True
            except Exception as e:
                rec["error"] = f"{type(e).__name__}: {e}"
            print(json.dumps(rec), flush=True)
        time.sleep(max(0.0, interval - (time.time() - t0)))


if __name__ == "__main__":
    main()
