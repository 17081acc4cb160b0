#!/usr/bin/env python3
"""Memory of a worker at its defaults against Celery prefork -c 4 (issue #23, target 7), and a soak of the former.

  .run/venv/bin/python bench/memory.py --broker amqp://guest:guest@127.0.0.1:5682/%2F \\
      --celeriac .build/release/celeriac-demo --n 20000
  .run/venv/bin/python bench/memory.py --broker ... --celeriac ... --soak 1000000

For each side: start the worker in its own session (Celeriac: `celeriac-demo worker` with no flags but -b, -Q, -n,
so the process pool with -c 4; Celery: bench/celery_app.py, `-P prefork -c 4`), wait until it answers a ping, send
N `demo.noop` (no result) and one `demo.add(0, 0)`, wait for that result, then sum the proportional set size
(PSS, /proc/PID/smaps_rollup) over the worker and every process of its session.

stdout: "name value unit" lines; diagnostics on stderr.
  memory.celeriac_default_pss_mb   the Celeriac worker and its pool children
  memory.celery_prefork4_pss_mb    the Celery worker and its prefork children
  ratio.memory.celeriac_vs_celery  target: <= 0.25
With --celeriac-static PATH (celeriac-demo built with --static-swift-stdlib, as Deploy/Dockerfile builds it), the
same measurement of that build too, after the first:
  memory.celeriac_static_pss_mb           the statically linked worker and its pool children
  ratio.memory.celeriac_static_vs_celery  the same target, for the form the Dockerfile deploys

--soak N: the Celeriac worker only, at the same defaults. Its PSS idle (2 s after it answers a ping), then N
`demo.noop` (no result) in four equal quarters. Each quarter is published over one channel without publisher
confirms: the message `app.send_task("demo.noop", ignore_result=True)` builds, captured once and re-sent with a
fresh task id (so byte for byte Celery protocol v2, body serialized once). After each quarter, the worker's
`inspect stats` total for demo.noop must reach the number sent so far (every body has run, not merely been
delivered) and the queue be empty; the wait fails if the total stops moving for --stall-timeout seconds or the
quarter takes longer than 60 s + quarter / 200 tasks/s. Then the summed PSS as above. Each quarter's publish rate
and end-to-end rate (quarter / time from its first publish to its barrier) go to stderr, with each PSS split
into anonymous (the worker's own) and file-backed (shared libraries: moves when other processes map them).
  memory.soak_idle_pss_mb               before the first task
  memory.soak_q1_pss_mb .. _q4_pss_mb   after each quarter
  memory.soak_qN_anon_mb                the anonymous part (the worker's own memory; what a leak grows)
  memory.soak_growth_q1_to_q4_mb        q4 - q1 of the PSS
  memory.soak_anon_growth_q1_to_q4_mb   q4 - q1 of the anonymous part: what the last three quarters left behind
  memory.soak_tasks                     N (rounded down to a multiple of 4)

Each worker's output goes to memory-<label>.log (celeriac, static, celery, soak) in --log-dir, .run by default.
"""
import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
LOG_DIR = os.path.join(HERE, "..", ".run")  # the workers' logs, memory-<label>.log; --log-dir


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


def rollup_kib(pid):
    """The kB figures of /proc/PID/smaps_rollup by name (Pss, Pss_Anon, Pss_File, ...); {} if it is gone."""
    figures = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    figures[parts[0].rstrip(":")] = int(parts[1])
    except (OSError, ValueError):
        pass
    return figures


def session_pss_mb(label, proc, split=False):
    """PSS summed over the worker's session, in MB (MiB). `split`: the note also gives its anonymous and
    file-backed parts (the latter moves with every other process mapping the same libraries, on the machine)."""
    rollups = [rollup_kib(p) for p in session_pids(proc.pid)]
    total = sum(r.get("Pss", 0) for r in rollups)
    parts = ""
    if split:
        parts = "".join(f", {k} {sum(r.get(k, 0) for r in rollups)} KiB" for k in ("Pss_Anon", "Pss_File"))
    note(f"{label}: {len(rollups)} processes, PSS {total} KiB{parts}")
    return total / 1024


def session_anon_mb(proc):
    """The anonymous part of the session's PSS in MB: the worker's own memory, which a leak would grow."""
    return sum(rollup_kib(p).get("Pss_Anon", 0) for p in session_pids(proc.pid)) / 1024


@contextlib.contextmanager
def worker(label, cmd, env, app, node):
    """Runs `cmd` in its own session until it answers a ping; yields the Popen; SIGTERMs the session after."""
    log_path = os.path.join(LOG_DIR, f"memory-{label}.log")
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[node], timeout=1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"memory: the {label} worker did not answer a ping (log {log_path})")
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def measure(label, cmd, env, app, queue, node, n):
    with worker(label, cmd, env, app, node) as proc:
        note(f"{label}: ready; sending {n} tasks")
        for _ in range(n):
            app.send_task("demo.noop", queue=queue, ignore_result=True)
        app.send_task("demo.add", args=[0, 0], queue=queue).get(timeout=300)
        return session_pss_mb(label, proc)


# ---------------------------------------------------------------- soak

class _Capture:
    """Stands in for a kombu Producer: keeps what send_task would publish instead of publishing it."""

    def __init__(self, connection):
        self.connection = connection
        self.sent = []

    def publish(self, body, **kwargs):
        self.sent.append((body, kwargs))


def bounded_connection(app):
    """A connection whose socket reads and writes give up after 60 s. py-amqp's default TCP_USER_TIMEOUT, 1 s,
    would instead drop it whenever RabbitMQ's flow control stops reading from a fast publisher for a second."""
    return app.connection_for_write(transport_options={
        "read_timeout": 60, "write_timeout": 60, "socket_settings": {socket.TCP_USER_TIMEOUT: 60_000}})


def publish_noops(app, queue, n):
    """Publishes n `demo.noop` messages (no result) over one channel, confirms off; returns the seconds taken."""
    from kombu import uuid
    from kombu.serialization import dumps
    with bounded_connection(app) as conn:  # one per quarter: it would miss heartbeats while the worker drains
        capture = _Capture(conn)
        app.send_task("demo.noop", queue=queue, ignore_result=True, producer=capture)
        body, kwargs = capture.sent[0]
        content_type, content_encoding, data = dumps(body, serializer=kwargs.pop("serializer"))
        channel = conn.default_channel
        for q in kwargs.pop("declare") or ():
            q(channel).declare()
        headers = kwargs.pop("headers")
        del kwargs["correlation_id"]  # the captured task's id, like headers' id and root_id: fresh for each
        kwargs.update(retry=False, declare=None, content_type=content_type, content_encoding=content_encoding)
        publish = app.amqp.Producer(channel, auto_declare=False).publish
        t0 = time.perf_counter()
        for _ in range(n):
            task_id = uuid()
            publish(data, headers=dict(headers, id=task_id, root_id=task_id), correlation_id=task_id, **kwargs)
        return time.perf_counter() - t0


def queue_depth(app, queue):
    with bounded_connection(app) as conn:
        return conn.default_channel.queue_declare(queue, passive=True).message_count


def wait_ran(app, proc, queue, node, task, target, deadline, stall):
    """Waits until the worker's `inspect stats` total for `task` reaches `target` and `queue` is empty."""
    last, moved = -1, time.monotonic()
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"memory: the soak worker exited ({proc.returncode}); log {LOG_DIR}/memory-soak.log")
        stats = (app.control.inspect(destination=[node], timeout=2).stats() or {}).get(node)
        done = stats.get("total", {}).get(task, 0) if stats else last  # no reply in time: as before
        now = time.monotonic()
        if done != last:
            last, moved = done, now
        if done >= target and queue_depth(app, queue) == 0:
            return done
        if now > deadline or now - moved > stall:
            raise SystemExit(f"memory: soak: {done} of {target} {task} run, queue {queue_depth(app, queue)}; "
                             f"gave up ({'no progress' if now <= deadline else 'quarter timeout'})")
        time.sleep(1)


def soak(cmd, env, app, queue, node, n, stall):
    quarter = n // 4
    pss = []
    with worker("soak", cmd, env, app, node) as proc:
        time.sleep(2)  # let the pool settle
        emit("memory.soak_idle_pss_mb", session_pss_mb("soak idle", proc, split=True), "MB")
        for q in range(1, 5):
            note(f"soak q{q}: sending {quarter} tasks")
            t0 = time.monotonic()
            sent = publish_noops(app, queue, quarter)
            wait_ran(app, proc, queue, node, "demo.noop", q * quarter, t0 + 60 + quarter / 200, stall)
            took = time.monotonic() - t0
            note(f"soak q{q}: published at {quarter / sent:.0f} tasks/s, all run in {took:.1f} s: "
                 f"{quarter / took:.0f} tasks/s end to end")
            pss.append((session_pss_mb(f"soak q{q}", proc, split=True), session_anon_mb(proc)))
    for q, (mb, anon) in enumerate(pss, 1):
        emit(f"memory.soak_q{q}_pss_mb", mb, "MB")
        emit(f"memory.soak_q{q}_anon_mb", anon, "MB")
    emit("memory.soak_growth_q1_to_q4_mb", pss[3][0] - pss[0][0], "MB")
    emit("memory.soak_anon_growth_q1_to_q4_mb", pss[3][1] - pss[0][1], "MB")
    emit("memory.soak_tasks", 4 * quarter, "tasks", digits=0)


def absolute(path):
    """A path given relative to the repository root (the bench scripts' working directory) made absolute."""
    return path if os.path.isabs(path) else os.path.abspath(os.path.join(HERE, "..", path))


def main():
    global LOG_DIR
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5682/%2F")
    ap.add_argument("--celeriac", required=True, help="path to celeriac-demo")
    ap.add_argument("--celeriac-static", metavar="PATH",
                    help="also measure this celeriac-demo, built with --static-swift-stdlib (what Deploy/Dockerfile ships)")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--soak", type=int, metavar="N", help="soak the Celeriac worker with N tasks instead")
    ap.add_argument("--stall-timeout", type=float, default=120,
                    help="--soak: seconds the worker may run nothing before the soak fails")
    ap.add_argument("--log-dir", default=LOG_DIR, help="where the workers' logs go (default .run)")
    args = ap.parse_args()
    LOG_DIR = args.log_dir
    if args.soak is not None and args.soak < 4:
        ap.error("--soak needs at least 4 tasks")
    import celery_app
    env = dict(os.environ, CELERIAC_BENCH_BROKER=args.broker)
    os.environ["CELERIAC_BENCH_BROKER"] = args.broker
    app = celery_app.make_app(broker=args.broker)
    host = socket.gethostname()
    celeriac = absolute(args.celeriac)

    if args.soak is not None:
        queue = f"memory-soak-{os.getpid()}"
        node = f"memory-soak-{os.getpid()}@{host}"
        soak([celeriac, "worker", "-b", args.broker, "-Q", queue, "-n", node], env, app, queue, node, args.soak,
             args.stall_timeout)
        return

    queue = f"memory-celeriac-{os.getpid()}"
    node = f"memory-celeriac-{os.getpid()}@{host}"
    ours = measure("celeriac", [celeriac, "worker", "-b", args.broker, "-Q", queue, "-n", node], env, app, queue,
                   node, args.n)
    emit("memory.celeriac_default_pss_mb", ours, "MB")
    static = None
    if args.celeriac_static:
        queue = f"memory-static-{os.getpid()}"
        node = f"memory-static-{os.getpid()}@{host}"
        static = measure("static", [absolute(args.celeriac_static), "worker", "-b", args.broker, "-Q", queue, "-n",
                                    node], env, app, queue, node, args.n)
        emit("memory.celeriac_static_pss_mb", static, "MB")

    queue = f"memory-celery-{os.getpid()}"
    node = f"memory-celery-{os.getpid()}@{host}"
    cmd = [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "-P", "prefork", "-c", "4",
           "--without-mingle", "--without-gossip", "-Q", queue, "-n", node, "--loglevel", "WARNING"]
    theirs = measure("celery", cmd, env, app, queue, node, args.n)
    emit("memory.celery_prefork4_pss_mb", theirs, "MB")
    emit("ratio.memory.celeriac_vs_celery", ours / theirs, "x", digits=3)
    if static is not None:
        emit("ratio.memory.celeriac_static_vs_celery", static / theirs, "x", digits=3)


if __name__ == "__main__":
    main()
