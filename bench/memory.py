#!/usr/bin/env python3
"""Memory of a worker at its defaults against Celery prefork -c 4 (issue #23, target 7).

  .run/venv/bin/python bench/memory.py --broker amqp://guest:guest@127.0.0.1:5682/%2F \\
      --celeriac .build/release/celeriac-demo --n 20000

For each side: start the worker in its own session (Celeriac: `celeriac-demo worker` with no flags but -b, -Q, -n,
so the process pool with -c 4; Celery: bench/celery_app.py, `-P prefork -c 4`), wait until it answers a ping, send
N `demo.noop` (no result) and one `demo.add(0, 0)`, wait for that result, then sum the proportional set size
(PSS, /proc/PID/smaps_rollup) over the worker and every process of its session.

stdout: "name value unit" lines; diagnostics on stderr.
  memory.celeriac_default_pss_mb   the Celeriac worker and its pool children
  memory.celery_prefork4_pss_mb    the Celery worker and its prefork children
  ratio.memory.celeriac_vs_celery  target: <= 0.25
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def note(msg):
    print(f"memory: {msg}", file=sys.stderr, flush=True)


def emit(name, value, unit, digits=1):
    print(f"{name} {value:.{digits}f} {unit}", flush=True)


def session_pids(sid):
    """Every live process whose session id is `sid`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # after "(comm)": state ppid pgrp session
                pids.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return pids


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(label, cmd, env, app, queue, node, n):
    log = open(os.path.join(HERE, "..", ".run", f"memory-{label}.log"), "w")
    proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[node], timeout=1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"memory: the {label} worker did not answer a ping (log .run/memory-{label}.log)")
        note(f"{label}: ready; sending {n} tasks")
        for _ in range(n):
            app.send_task("demo.noop", queue=queue, ignore_result=True)
        app.send_task("demo.add", args=[0, 0], queue=queue).get(timeout=300)
        pids = session_pids(proc.pid)
        total = sum(pss_kib(p) for p in pids)
        note(f"{label}: {len(pids)} processes, PSS {total} KiB")
        return total / 1024
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5682/%2F")
    ap.add_argument("--celeriac", required=True, help="path to celeriac-demo")
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    import celery_app
    env = dict(os.environ, CELERIAC_BENCH_BROKER=args.broker)
    os.environ["CELERIAC_BENCH_BROKER"] = args.broker
    app = celery_app.make_app(broker=args.broker)
    host = socket.gethostname()

    queue = f"memory-celeriac-{os.getpid()}"
    node = f"memory-celeriac-{os.getpid()}@{host}"
    ours = measure("celeriac", [os.path.abspath(os.path.join(HERE, "..", args.celeriac)) if not os.path.isabs(
        args.celeriac) else args.celeriac, "worker", "-b", args.broker, "-Q", queue, "-n", node], env, app, queue,
        node, args.n)
    emit("memory.celeriac_default_pss_mb", ours, "MB")

    queue = f"memory-celery-{os.getpid()}"
    node = f"memory-celery-{os.getpid()}@{host}"
    cmd = [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "-P", "prefork", "-c", "4",
           "--without-mingle", "--without-gossip", "-Q", queue, "-n", node, "--loglevel", "WARNING"]
    theirs = measure("celery", cmd, env, app, queue, node, args.n)
    emit("memory.celery_prefork4_pss_mb", theirs, "MB")
    emit("ratio.memory.celeriac_vs_celery", ours / theirs, "x", digits=3)


if __name__ == "__main__":
    main()
