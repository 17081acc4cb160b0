#!/usr/bin/env python3
"""Python Celery reference figures for the Celeriac benchmarks.

  python bench/celery_bench.py --broker amqp://guest:guest@127.0.0.1:5682/%2F --n 5000 --pool solo

stdout: one line per figure, "name value unit"; diagnostics go to stderr.

Figures (X = the pool):
  celery.enqueue_rate           N x noop.apply_async() (rpc backend: reply queue declared per call)
  celery.enqueue_confirm_rate   same with broker_transport_options={'confirm_publish': True}
                                (both skipped with --skip-enqueue)
  celery.X.drain_rate           worker running and idle; enqueue N noop tasks (ignore_result=True)
                                followed by one add(0, 0); time from the first enqueue until the
                                add result arrives (client enqueue and worker overlap)
  celery.X.drain_only_rate      same N + 1 tasks enqueued while the worker's consumer is
                                cancelled; time from add_consumer until the add result arrives
                                (the worker alone)
  celery.X.rtt_p50 / rtt_p99    500 sequential add.delay(2, 2).get(timeout=10), in ms
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RTT_ROUNDS = 500
WORKER_READY_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 30.0


def note(msg):
    print(f"celery_bench: {msg}", file=sys.stderr, flush=True)


def emit(name, value, unit):
    text = f"{value:.0f}" if value >= 100 else f"{value:.1f}"
    print(f"{name} {text} {unit}", flush=True)


def percentile(sorted_values, p):
    """nearest-rank percentile"""
    n = len(sorted_values)
    rank = max(1, min(n, int(-(-p * n // 100))))
    return sorted_values[rank - 1]


class BenchError(Exception):
    pass


def _sigterm(signum, frame):
    raise SystemExit(f"celery_bench: got signal {signum}")


# ---------------------------------------------------------------- queue helpers

def bound_queue(app, conn):
    return app.amqp.queues[app.conf.task_default_queue].bind(conn.default_channel)


def declare_and_purge(app):
    with app.connection_for_write() as conn:
        q = bound_queue(app, conn)
        q.declare()
        return q.purge() or 0


def queue_stats(app):
    """(message_count, consumer_count) of the bench queue"""
    with app.connection_for_write() as conn:
        q = bound_queue(app, conn)
        _, count, consumers = q.queue_declare(passive=True)
        return count, consumers


# ---------------------------------------------------------------- enqueue

def bench_enqueue(app, n, label):
    noop = app.tasks["demo.noop"]
    for _ in range(10):  # warm-up: connection, producer pool, reply queue
        noop.apply_async()
    t0 = time.perf_counter()
    for _ in range(n):
        noop.apply_async()
    dt = time.perf_counter() - t0
    note(f"{label}: {n} apply_async in {dt:.3f} s")
    return n / dt


# ---------------------------------------------------------------- worker

class Worker:
    """A Celery worker subprocess (also used by celery_canvas_bench.py)."""

    def __init__(self, pool, queue, env, log_path, concurrency=None, label=None):
        self.pool = pool
        self.nodename = f"bench-{label or pool}-{os.getpid()}@{socket.gethostname()}"
        self.log_path = log_path
        if concurrency is None:
            concurrency = 1 if pool == "solo" else 2
        self.cmd = [
            sys.executable, "-m", "celery", "-A", "celery_app", "worker",
            "-P", pool, "-c", str(concurrency),
            "--without-mingle", "--without-gossip", "--without-heartbeat",
            "-Q", queue, "-n", self.nodename, "--loglevel", "WARNING",
        ]
        self.env = env
        self.proc = None
        self.log = None

    def start(self):
        self.log = open(self.log_path, "w")
        note(f"starting worker: {' '.join(self.cmd)} (log {self.log_path})")
        # own session: the worker and its pool children form one process group
        # whose id is the worker's pid, so stop() can reach them all by that id.
        self.proc = subprocess.Popen(
            self.cmd, cwd=HERE, env=self.env, stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, app):
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        t0 = time.monotonic()
        while time.monotonic() < deadline:
            if not self.alive():
                raise BenchError(f"worker exited with status {self.proc.returncode} during startup")
            try:
                replies = app.control.ping(destination=[self.nodename], timeout=1)
            except Exception as exc:  # broker hiccup: retry until the deadline
                note(f"ping failed: {exc!r}")
                time.sleep(0.5)
                continue
            if any(self.nodename in r for r in replies or []):
                note(f"worker {self.nodename} ready after {time.monotonic() - t0:.1f} s")
                return
        raise BenchError(f"worker not ready within {WORKER_READY_TIMEOUT:.0f} s")

    def stop(self):
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=WORKER_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    note(f"worker pid {self.proc.pid} ignored SIGTERM for "
                         f"{WORKER_STOP_TIMEOUT:.0f} s; sending SIGKILL")
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            # pool children (prefork) left behind? they are in the worker's process group
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
                note(f"killed leftover processes in group {self.proc.pid}")
            except (ProcessLookupError, PermissionError):
                pass
            note(f"worker stopped (status {self.proc.returncode})")
        finally:
            if self.log:
                self.log.close()
                self.log = None

    def log_tail(self, lines=30):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


# ---------------------------------------------------------------- drain / rtt

def wait_result(res, timeout, label):
    value = res.get(timeout=timeout)
    if value != 0:
        raise BenchError(f"{label}: marker task returned {value!r}")


def drain_timeout(n):
    # generous but bounded. A solo worker can sit idle with messages ready until a
    # periodic timer (about every 10 s) wakes its event loop, so leave room for that.
    return 120.0 + n / 50.0


def bench_drain(app, n):
    noop, add = app.tasks["demo.noop"], app.tasks["demo.add"]
    t0 = time.perf_counter()
    for _ in range(n):
        noop.apply_async(ignore_result=True)
    t_enq = time.perf_counter() - t0
    res = add.apply_async((0, 0))
    wait_result(res, drain_timeout(n), "drain")
    dt = time.perf_counter() - t0
    note(f"drain: enqueued {n} in {t_enq:.3f} s, all done after {dt:.3f} s")
    return n / dt


def bench_drain_only(app, worker, n):
    noop, add = app.tasks["demo.noop"], app.tasks["demo.add"]
    queue = app.conf.task_default_queue
    reply = app.control.cancel_consumer(queue, destination=[worker.nodename], reply=True, timeout=5)
    if not reply:
        raise BenchError("cancel_consumer: no reply from the worker")
    count, consumers = queue_stats(app)
    if consumers:
        raise BenchError(f"cancel_consumer: queue still has {consumers} consumer(s)")
    for _ in range(n):
        noop.apply_async(ignore_result=True)
    res = add.apply_async((0, 0))
    count, _ = queue_stats(app)
    if count < n + 1:
        note(f"drain_only: queue holds {count} of {n + 1} messages before add_consumer")
    t0 = time.perf_counter()
    reply = app.control.add_consumer(queue, destination=[worker.nodename], reply=True, timeout=5)
    if not reply:
        raise BenchError("add_consumer: no reply from the worker")
    wait_result(res, drain_timeout(n), "drain_only")
    dt = time.perf_counter() - t0
    note(f"drain_only: {n} tasks in {dt:.3f} s")
    return n / dt


def bench_rtt(app, rounds):
    add = app.tasks["demo.add"]
    for _ in range(10):  # warm-up
        if add.delay(2, 2).get(timeout=10) != 4:
            raise BenchError("rtt: add(2, 2) != 4")
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        value = add.delay(2, 2).get(timeout=10)
        samples.append((time.perf_counter() - t0) * 1000.0)
        if value != 4:
            raise BenchError(f"rtt: add(2, 2) returned {value!r}")
    samples.sort()
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    note(f"rtt: {rounds} round trips, min {samples[0]:.3f} ms, p50 {p50:.3f} ms, "
         f"p99 {p99:.3f} ms, max {samples[-1]:.3f} ms")
    return p50, p99


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--pool", choices=["solo", "prefork", "threads"], required=True)
    ap.add_argument("--queue", default=os.environ.get("CELERIAC_BENCH_QUEUE", "celery-bench"))
    ap.add_argument("--skip-enqueue", action="store_true",
                    help="do not measure celery.enqueue_rate / celery.enqueue_confirm_rate")
    args = ap.parse_args()
    if args.n < 1:
        ap.error("--n must be >= 1")

    os.environ["CELERIAC_BENCH_BROKER"] = args.broker
    os.environ["CELERIAC_BENCH_QUEUE"] = args.queue
    sys.path.insert(0, HERE)
    signal.signal(signal.SIGTERM, _sigterm)

    import celery_app  # noqa: E402  (reads the environment set above)

    app = celery_app.app
    pool = args.pool
    run_dir = os.path.join(REPO, ".run")
    os.makedirs(run_dir, exist_ok=True)

    purged = declare_and_purge(app)
    if purged:
        note(f"purged {purged} leftover message(s) from {args.queue}")

    if not args.skip_enqueue:
        emit("celery.enqueue_rate", bench_enqueue(app, args.n, "enqueue"), "tasks/s")
        declare_and_purge(app)
        capp = celery_app.make_app(confirm_publish=True, broker=args.broker)
        try:
            emit("celery.enqueue_confirm_rate",
                 bench_enqueue(capp, args.n, "enqueue_confirm"), "tasks/s")
        finally:
            capp.close()
        declare_and_purge(app)

    env = dict(os.environ)
    env["PYTHONPATH"] = HERE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    worker = Worker(pool, args.queue, env, os.path.join(run_dir, f"celery-bench-worker-{pool}.log"))
    try:
        worker.start()
        worker.wait_ready(app)
        emit(f"celery.{pool}.drain_rate", bench_drain(app, args.n), "tasks/s")
        emit(f"celery.{pool}.drain_only_rate", bench_drain_only(app, worker, args.n), "tasks/s")
        p50, p99 = bench_rtt(app, RTT_ROUNDS)
        emit(f"celery.{pool}.rtt_p50", p50, "ms")
        emit(f"celery.{pool}.rtt_p99", p99, "ms")
    except BaseException as exc:
        note(f"error: {exc!r}")
        tail = worker.log_tail()
        if tail:
            note("---- worker log tail ----\n" + tail)
        worker.stop()
        try:
            declare_and_purge(app)
        except Exception:
            pass
        app.close()
        if isinstance(exc, (BenchError, SystemExit, KeyboardInterrupt)):
            sys.exit(1)
        raise
    worker.stop()
    declare_and_purge(app)
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
