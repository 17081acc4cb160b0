"""Flower (PyPI) against a Celeriac worker started with -E: its API lists the worker as online and shows its tasks.

Starts Flower on 127.0.0.1:CELERIAC_INTEROP_FLOWER_PORT, checks, stops it. Prints one JSON line per check.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

from interop_app import app

NODE = os.environ["CELERIAC_INTEROP_NODE"]
PORT = int(os.environ["CELERIAC_INTEROP_FLOWER_PORT"])
QUEUE = app.conf.task_default_queue
ARTIFACTS = os.environ.get("CELERIAC_TEST_ARTIFACTS", os.path.join(os.path.dirname(__file__), "..", "..", ".run", "artifacts"))
os.makedirs(ARTIFACTS, exist_ok=True)
results = {}
screenshot_detail = "not reached"


def get(path):
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=10) as r:
        return json.loads(r.read().decode())


env = dict(os.environ, FLOWER_UNAUTHENTICATED_API="1")
flower = subprocess.Popen([sys.executable, "-m", "celery", "-A", "interop_app", "flower", "--address=127.0.0.1",
                           f"--port={PORT}", "--logging=warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    task_id = app.send_task("it.add", args=(20, 22), queue=QUEUE).id
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            status = get("/api/workers?status=true")
            workers = get("/api/workers?refresh=1")
            tasks = get("/api/tasks")
        except Exception:
            time.sleep(0.5)
            continue
        results = {
            "online": status.get(NODE) is True,
            "listed_with_stats": NODE in workers and "stats" in workers.get(NODE, {}),
            "registered": "it.add" in workers.get(NODE, {}).get("registered", []),
            "task_seen": tasks.get(task_id, {}).get("state") == "SUCCESS",
            "processed_count": sum(workers.get(NODE, {}).get("stats", {}).get("total", {}).values()) >= 1,
        }
        if all(results.values()):
            break
        time.sleep(0.5)
    # A screenshot of Flower's worker page (headless Chromium), kept as a test artifact to check by eye.
    shot = os.path.join(ARTIFACTS, "flower-worker.png")
    browser = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    detail = "no headless Chromium (scripts/bootstrap.sh installs chromium-headless-shell)"
    if browser:
        if os.path.exists(shot):
            os.remove(shot)
        run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                              "--window-size=1280,900", f"--screenshot={shot}", f"http://127.0.0.1:{PORT}/worker/{NODE}"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=90)
        ok = os.path.exists(shot) and os.path.getsize(shot) > 10_000 and open(shot, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
        detail = shot if ok else f"exit {run.returncode}: {run.stdout.decode(errors='replace')[-800:]}"
        results["screenshot"] = ok
    else:
        results["screenshot"] = False
    screenshot_detail = detail
finally:
    flower.terminate()
    try:
        flower.wait(timeout=10)
    except subprocess.TimeoutExpired:
        flower.kill()

for name in ("online", "listed_with_stats", "registered", "task_seen", "processed_count", "screenshot"):
    detail = screenshot_detail if name == "screenshot" else ""
    print(json.dumps({"check": name, "ok": bool(results.get(name)), "detail": detail}), flush=True)
sys.exit(0 if results and all(results.values()) else 1)
