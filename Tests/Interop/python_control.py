"""Celery's remote control (pidbox) against a Celeriac worker: inspect and control, as Flower and the CLI use them.

Prints one JSON line per check; exits 1 if any failed. Env: CELERIAC_INTEROP_NODE (the worker's node name).
"""
import json
import os
import subprocess
import sys
import time
import uuid

from celery.exceptions import TaskRevokedError

from interop_app import app
from interop_checks import run_checks

NODE = os.environ["CELERIAC_INTEROP_NODE"]
QUEUE = app.conf.task_default_queue
def inspect():
    return app.control.inspect(destination=[NODE], timeout=5)


def ping():
    r = app.control.ping(destination=[NODE], timeout=5)
    return r == [{NODE: {"ok": "pong"}}], r


def registered():
    r = inspect().registered()
    return "it.add" in (r or {}).get(NODE, []), r


def stats():
    s = (inspect().stats() or {}).get(NODE, {})
    return s.get("pool", {}).get("max-concurrency") == 8 and "pid" in s and "guest" not in json.dumps(s.get("broker", {})).replace('"userid": "guest"', ""), s.get("pool")


def active_queues():
    r = (inspect().active_queues() or {}).get(NODE, [])
    return [q["name"] for q in r] == [QUEUE], r


def revoke():
    tid = str(uuid.uuid4())
    reply = app.control.revoke(tid, destination=[NODE], reply=True, timeout=5)
    try:
        app.send_task("it.add", args=(1, 2), queue=QUEUE, task_id=tid).get(timeout=30)
    except TaskRevokedError as exc:
        return True, f"{reply} {exc!r}"
    return False, f"ran anyway; reply {reply}"


def active_then_terminate():
    """`inspect active` lists a running it.nap (a 120 s sleep); `control revoke --terminate` stops it."""
    r = app.send_task("it.nap", queue=QUEUE)
    deadline = time.time() + 30
    running = []
    while time.time() < deadline and not running:
        running = [t for t in (inspect().active() or {}).get(NODE, []) if t.get("id") == r.id]
        if not running:
            time.sleep(0.2)
    if not running:
        return False, "it.nap never showed up in inspect active"
    entry = running[0]
    reserved = (inspect().reserved() or {}).get(NODE)
    app.control.revoke(r.id, terminate=True, destination=[NODE])
    try:
        r.get(timeout=30)
    except TaskRevokedError as exc:
        ok = entry.get("name") == "it.nap" and entry.get("time_start") and isinstance(reserved, list)
        return ok, f"{entry} reserved={reserved} {exc!r}"
    return False, "it.nap finished instead of being terminated"


def rate_limit():
    r = app.control.rate_limit("it.add", "1000/s", destination=[NODE], reply=True, timeout=5)
    unknown = app.control.rate_limit("it.nope", "1/s", destination=[NODE], reply=True, timeout=5)
    return r == [{NODE: {"ok": "new rate limit set successfully"}}] and unknown == [{NODE: {"error": "unknown task"}}], (r, unknown)


def cli_ping():
    p = subprocess.run([sys.executable, "-m", "celery", "-A", "interop_app", "inspect", "ping", "-d", NODE, "--timeout", "5"],
                       capture_output=True, text=True, timeout=60)
    return p.returncode == 0 and "pong" in p.stdout, (p.returncode, p.stdout.strip()[-200:], p.stderr.strip()[-200:])


run_checks([("ping", ping), ("registered", registered), ("stats", stats), ("active_queues", active_queues),
            ("revoke", revoke), ("active_then_terminate", active_then_terminate), ("rate_limit", rate_limit),
            ("cli_ping", cli_ping)])
