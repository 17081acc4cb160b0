"""Python Celery client against a Celeriac worker: task states while a task runs (update_state, track_started, RETRY).
Prints one JSON line per check; exits 1 if any failed.

The Celeriac worker is `celeriac-demo worker --track-started` on CELERIAC_INTEROP_QUEUE, node CELERIAC_INTEROP_NODE;
`demo.count(n, seconds)` reports PROGRESS {"current": i, "total": n} at each step.
"""
import os
import time

from interop_app import app
from interop_checks import run_checks

QUEUE = app.conf.task_default_queue
NODE = os.environ.get("CELERIAC_INTEROP_NODE", "")
def warm_up():
    v = app.send_task("demo.add", args=[1, 2], queue=QUEUE).get(timeout=30)
    return v == 3, v


def progress_polled():
    # Polling AsyncResult.state / .info: the rpc backend reads the reply queue for it, but only until the process's
    # first get() starts its result consumer (which then takes every message), so this check runs first. The worker
    # may still be starting: the loop waits for it.
    r = app.send_task("demo.count", args=[6, 1.8], queue=QUEUE)
    seen = []
    deadline = time.time() + 90
    while time.time() < deadline:
        state, info = r.state, r.info
        if state == "PROGRESS":
            seen.append(info)
        if state in ("SUCCESS", "FAILURE"):
            break
        time.sleep(0.05)
    ok = any(isinstance(i, dict) and i.get("total") == 6 and 0 <= i.get("current", -1) <= 6 for i in seen)
    return ok and r.get(timeout=30) == 6, {"progress_seen": seen[:8], "final": r.state}


def on_message_updates():
    # get(on_message=...) calls back with every state of the task, the final one last.
    r = app.send_task("demo.count", args=[4, 1.2], queue=QUEUE)
    got = []
    value = r.get(timeout=30, on_message=lambda body: got.append(body) if body.get("task_id") == r.id else None,
                  propagate=False)
    statuses = [b["status"] for b in got]
    progress = [b["result"]["current"] for b in got if b["status"] == "PROGRESS"]
    started = [b for b in got if b["status"] == "STARTED"]
    ok = (value == 4 and statuses[-1] == "SUCCESS" and len(progress) >= 3 and progress == sorted(progress)
          and progress[-1] >= 3 and statuses.index("PROGRESS") > 0)
    return ok, {"statuses": statuses, "progress": progress, "started": started}


def started_tracked():
    r = app.send_task("demo.count", args=[2, 0.4], queue=QUEUE)
    got = []
    r.get(timeout=30, on_message=lambda body: got.append(body) if body.get("task_id") == r.id else None)
    first = got[0] if got else {}
    meta = first.get("result") or {}
    ok = (first.get("status") == "STARTED" and isinstance(meta.get("pid"), int) and meta["pid"] > 0
          and meta.get("hostname") == NODE)
    return ok, first


def retry_state():
    # demo.flaky(times=1) retries once: RETRY reaches the caller in Celery's shape, then SUCCESS.
    r = app.send_task("demo.flaky", kwargs={"times": 1}, queue=QUEUE)
    got = []
    value = r.get(timeout=60, on_message=lambda body: got.append(body) if body.get("task_id") == r.id else None)
    retries = [b for b in got if b["status"] == "RETRY"]
    ok = (value == 1 and len(retries) == 1 and retries[0]["result"].get("exc_type")
          and retries[0]["children"] and got[-1]["status"] == "SUCCESS")
    return ok, [b["status"] for b in got]


run_checks([("progress_polled", progress_polled), ("warm_up", warm_up), ("on_message_updates", on_message_updates),
            ("started_tracked", started_tracked), ("retry_state", retry_state)])
