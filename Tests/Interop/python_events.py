"""Celery's event receiver (as `celery events` and Flower use it) against a Celeriac worker started with -E.

Prints one JSON line per check; exits 1 if any failed. Env: CELERIAC_INTEROP_NODE.
"""
import json
import os
import sys
import threading
import time

from celery.events.state import State

from interop_app import app

NODE = os.environ["CELERIAC_INTEROP_NODE"]
QUEUE = app.conf.task_default_queue
state = State()
seen = []
lock = threading.Lock()


def on_event(event):
    with lock:
        seen.append(event)
        state.event(event)


def capture(receiver):
    receiver.capture(limit=None, timeout=None, wakeup=False)


with app.connection() as conn:
    receiver = app.events.Receiver(conn, handlers={"*": on_event})
    thread = threading.Thread(target=capture, args=(receiver,), daemon=True)
    thread.start()
    time.sleep(0.5)  # let the receiver's queue bind before the task is sent
    ok_id = app.send_task("it.add", args=(2, 3), queue=QUEUE).id
    bad_id = app.send_task("it.fail", args=("boom",), queue=QUEUE).id
    deadline = time.time() + 20
    results = {}
    while time.time() < deadline:
        with lock:
            types = {(e.get("type"), e.get("uuid")) for e in seen}
            results = {
                "heartbeat": any(e.get("type") in ("worker-heartbeat", "worker-online") and e.get("hostname") == NODE for e in seen),
                "received": ("task-received", ok_id) in types,
                "started": ("task-started", ok_id) in types,
                "succeeded": ("task-succeeded", ok_id) in types,
                "failed": ("task-failed", bad_id) in types,
            }
        if all(results.values()):
            break
        time.sleep(0.1)
    receiver.should_stop = True

with lock:
    worker = state.workers.get(NODE)
    task = state.tasks.get(ok_id)
    results["worker_alive_in_state"] = bool(worker and worker.alive)
    results["task_state_success"] = bool(task and task.state == "SUCCESS" and task.result == "5")
    failed = state.tasks.get(bad_id)
    results["failed_exception"] = bool(failed and failed.state == "FAILURE" and "ValueError" in (failed.exception or ""))

for name, ok in results.items():
    print(json.dumps({"check": name, "ok": bool(ok), "detail": ""}), flush=True)
sys.exit(0 if all(results.values()) else 1)
