#!/usr/bin/env python3
"""Python Celery canvas reference figures for the Celeriac benchmarks.

  python bench/celery_canvas_bench.py --broker amqp://guest:guest@127.0.0.1:5682/%2F [--pool threads]

stdout: one line per figure, "name value unit"; diagnostics go to stderr.

A Celery worker (pool --pool, concurrency --concurrency, default threads x 16) runs the
tasks demo.add(x, y) and demo.xsum(numbers) of bench/celery_app.py. Each figure is the
median over --rounds rounds (after one warm-up round) of the end-to-end time from
apply_async() until get() returns, in ms:

  celery.canvas.chain100_ms    chain(add.s(0, 1), add.s(1) x 99)          -> 100   (rpc:// backend)
  celery.canvas.group1000_ms   group(add.s(i, i) for i in range(1000))    -> [2i]  (rpc:// backend)
  celery.canvas.chord1000_ms   chord(group(add.s(i, i) ...), xsum.s())    -> 999000
                               rpc:// refuses chords, so this phase uses a Redis result backend:
                               a throwaway redis-server (free loopback port, no persistence, own
                               temp dir, killed at the end) and a second worker started with it.
                               Skipped, with a note on stderr, when redis-server or the `redis`
                               Python package is missing (exit status 1 if --redis was given).

Wrong results make the script exit non-zero.
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

# The worker subprocess, figure lines and queue helpers are shared with the task benchmark.
from celery_bench import BenchError, Worker, declare_and_purge, emit

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CHAIN_LEN = 100
GROUP_N = 1000
REDIS_READY_TIMEOUT = 20.0
RESULT_TIMEOUT = 120.0


def note(msg):
    print(f"celery_canvas_bench: {msg}", file=sys.stderr, flush=True)


def _sigterm(signum, frame):
    raise SystemExit(f"celery_canvas_bench: got signal {signum}")



def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A throwaway redis-server on a free loopback port, without persistence."""

    def __init__(self, binary, log_dir):
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="celeriac-canvas-redis-")
        self.log_path = os.path.join(log_dir, "celery-canvas-redis.log")
        self.proc = None
        self.log = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", self.dir,
               "--daemonize", "no", "--loglevel", "warning"]
        self.log = open(self.log_path, "w")
        note(f"starting {' '.join(repr(c) if c == '' else c for c in cmd)} (log {self.log_path})")
        self.proc = subprocess.Popen(cmd, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        import redis
        deadline = time.monotonic() + REDIS_READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"redis-server exited with status {self.proc.returncode} "
                                 f"(see {self.log_path})")
            try:
                client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1,
                                     socket_connect_timeout=1)
                try:
                    if client.ping():
                        note(f"redis-server ready at {self.url}")
                        return
                finally:
                    client.close()
            except redis.exceptions.RedisError:
                pass
            time.sleep(0.1)
        raise BenchError(f"redis-server not ready within {REDIS_READY_TIMEOUT:.0f} s")

    def stop(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
                note(f"redis-server stopped (status {self.proc.returncode})")
        finally:
            self.proc = None
            if self.log:
                self.log.close()
                self.log = None
            shutil.rmtree(self.dir, ignore_errors=True)


def find_redis(explicit):
    """(redis-server path or None, reason when None)"""
    binary = shutil.which(explicit or "redis-server")
    if binary is None:
        return None, f"{explicit or 'redis-server'} not found on PATH"
    try:
        import redis  # noqa: F401
    except ImportError:
        return None, f"the `redis` Python package is not installed in {sys.executable}"
    return binary, None


# ---------------------------------------------------------------- measurements

def timed_rounds(label, rounds, run_once):
    """one warm-up round, then `rounds` timed rounds; returns the median in ms"""
    run_once()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        run_once()
        samples.append((time.perf_counter() - t0) * 1000.0)
    med = statistics.median(samples)
    note(f"{label}: {rounds} rounds, min {min(samples):.1f} ms, median {med:.1f} ms, "
         f"max {max(samples):.1f} ms ({', '.join(f'{x:.0f}' for x in samples)})")
    return med


def bench_chain(app, rounds):
    from celery import chain
    add = app.tasks["demo.add"]

    def once():
        sig = chain(add.s(0, 1), *[add.s(1) for _ in range(CHAIN_LEN - 1)])
        value = sig.apply_async().get(timeout=RESULT_TIMEOUT)
        if value != CHAIN_LEN:
            raise BenchError(f"chain{CHAIN_LEN}: got {value!r}, expected {CHAIN_LEN}")

    return timed_rounds(f"chain{CHAIN_LEN}", rounds, once)


def bench_group(app, rounds):
    from celery import group
    add = app.tasks["demo.add"]
    expected = [2 * i for i in range(GROUP_N)]

    def once():
        values = group(add.s(i, i) for i in range(GROUP_N)).apply_async().get(timeout=RESULT_TIMEOUT)
        if values != expected:
            raise BenchError(f"group{GROUP_N}: wrong results (sum {sum(values or [])}, "
                             f"{len(values or [])} values; expected sum {sum(expected)})")

    return timed_rounds(f"group{GROUP_N}", rounds, once)


def bench_chord(app, rounds):
    from celery import chord, group
    add, xsum = app.tasks["demo.add"], app.tasks["demo.xsum"]
    expected = sum(2 * i for i in range(GROUP_N))  # 999000

    def once():
        sig = chord(group(add.s(i, i) for i in range(GROUP_N)), xsum.s())
        value = sig.apply_async().get(timeout=RESULT_TIMEOUT)
        if value != expected:
            raise BenchError(f"chord{GROUP_N}: got {value!r}, expected {expected}")

    return timed_rounds(f"chord{GROUP_N}", rounds, once)


# ---------------------------------------------------------------- main

def run_phase(label, app, worker, body):
    """start the worker, run body(), stop the worker; on failure show the worker log"""
    try:
        worker.start()
        worker.wait_ready(app)
        body()
    except BaseException:
        tail = worker.log_tail()
        if tail:
            note(f"---- {label} worker log tail ----\n" + tail)
        raise
    finally:
        worker.stop()
        try:
            declare_and_purge(app)
        except Exception as exc:
            note(f"purge after {label} failed: {exc!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", required=True)
    ap.add_argument("--pool", choices=["solo", "prefork", "threads"], default="threads")
    ap.add_argument("--concurrency", "-c", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--queue", default="celery-canvas-bench")
    ap.add_argument("--redis", nargs="?", const="redis-server", default=None, metavar="REDIS_SERVER",
                    help="require the chord phase (optionally with this redis-server binary); "
                         "without it the chord phase runs only when redis-server is on PATH")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    if args.concurrency < 1:
        ap.error("--concurrency must be >= 1")

    os.environ["CELERIAC_BENCH_BROKER"] = args.broker
    os.environ["CELERIAC_BENCH_QUEUE"] = args.queue
    os.environ.pop("CELERIAC_BENCH_RESULT_BACKEND", None)
    sys.path.insert(0, HERE)
    signal.signal(signal.SIGTERM, _sigterm)

    import celery_app  # noqa: E402  (reads the environment set above)

    run_dir = os.path.join(REPO, ".run")
    os.makedirs(run_dir, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = HERE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    status = 0

    app = celery_app.app  # rpc:// backend
    redis_server = None
    redis_app = None
    try:
        purged = declare_and_purge(app)
        if purged:
            note(f"purged {purged} leftover message(s) from {args.queue}")

        # ---- chain and group: rpc:// backend
        worker = Worker(args.pool, args.queue, env, concurrency=args.concurrency, label=f"canvas-{args.pool}-rpc", log_path=
                        os.path.join(run_dir, f"celery-canvas-worker-{args.pool}-rpc.log"))

        def rpc_body():
            emit("celery.canvas.chain100_ms", bench_chain(app, args.rounds), "ms")
            emit("celery.canvas.group1000_ms", bench_group(app, args.rounds), "ms")

        run_phase("rpc", app, worker, rpc_body)

        # ---- chord: Redis backend
        binary, why = find_redis(args.redis)
        if binary is None:
            note(f"chord phase skipped, no celery.canvas.chord1000_ms figure: {why} "
                 f"(Celery's rpc:// backend refuses chords; install redis-server and "
                 f"`pip install redis`)")
            if args.redis is not None:
                status = 1
        else:
            redis_server = RedisServer(binary, run_dir)
            redis_server.start()
            redis_app = celery_app.make_app(broker=args.broker, result_backend=redis_server.url)
            renv = dict(env)
            renv["CELERIAC_BENCH_RESULT_BACKEND"] = redis_server.url
            rworker = Worker(args.pool, args.queue, renv, concurrency=args.concurrency, label=f"canvas-{args.pool}-redis", log_path=
                             os.path.join(run_dir, f"celery-canvas-worker-{args.pool}-redis.log"))

            def redis_body():
                emit("celery.canvas.chord1000_ms", bench_chord(redis_app, args.rounds), "ms")

            run_phase("redis", redis_app, rworker, redis_body)
    except BaseException as exc:
        note(f"error: {exc!r}")
        if isinstance(exc, (BenchError, SystemExit, KeyboardInterrupt)):
            status = 1
        else:
            raise
    finally:
        if redis_app is not None:
            redis_app.close()
        if redis_server is not None:
            redis_server.stop()
        app.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
