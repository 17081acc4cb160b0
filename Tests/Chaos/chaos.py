#!/usr/bin/env python3
"""Celeriac chaos harness (issue #9): several hosts on one machine (network namespaces + veth + a bridge in a
switch namespace), a RabbitMQ broker (or a 3-node cluster), three `celeriac-demo worker` hosts, beat hosts, and a
client host running the ledger driver and Prometheus. Each scenario injects a fault and reconciles an exact ledger.

usage: chaos.py [--short] [--bin PATH] [SCENARIO ...]      (scenarios: see SCENARIOS below; default all)
Writes .run/chaos/report.json and exits non-zero if any scenario fails. See Tests/Chaos/README.md.
"""

import argparse
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from netns import ChaosError, Net, check_privileges, remove_stale, run, wait_until  # noqa: E402
from rabbit import RabbitNode, _zombie, new_cookie  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
RUN_DIR = os.path.join(REPO, ".run", "chaos")
VENV_PY = os.path.join(REPO, ".run", "venv", "bin", "python")
CELERY = os.path.join(REPO, ".run", "venv", "bin", "celery")
HEARTBEAT = 2                         # seconds; every URL carries ?heartbeat=2
METRICS_PORT = 9101
BEAT_METRICS_PORT = 9102
PROM_PORT = 9090

# host name -> last octet of its address in SUBNET (netns.SUBNET)
HOSTS = {"b1": 11, "b2": 12, "b3": 13, "w1": 21, "w2": 22, "w3": 23, "beat1": 31, "beat2": 32, "cli": 41}
WORKERS = ["w1", "w2", "w3"]


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ====================================================================== processes on hosts
class Worker:
    """A `celeriac-demo worker` on one host (node name wN@hostN, /metrics on METRICS_PORT)."""

    def __init__(self, bed, host_name):
        self.bed, self.host = bed, bed.net[host_name]
        self.node = f"{host_name}@host{host_name[1:]}"
        self.proc = None

    def start(self, url, queue, extra=()):
        argv = [self.bed.bin, "worker", "-b", url, "-n", self.node, "-c", "8", "-E", "--pool", "async",
                "--metrics-port", str(METRICS_PORT), "--metrics-bind", "0.0.0.0", "-Q", queue, *extra]
        self.proc = self.host.spawn(f"worker {self.node}", argv, self.log_path)

    @property
    def log_path(self):
        return os.path.join(RUN_DIR, "logs", f"{self.host.name}.log")

    @property
    def metrics_url(self):
        return f"http://{self.host.ip}:{METRICS_PORT}/metrics"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=40):
        """Warm shutdown (SIGTERM), bounded; SIGKILL the host's processes if it does not exit."""
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"worker {self.node} ignored SIGTERM for {timeout}s; killing its host's processes")
            self.host.kill_all()

    def log_tail(self, n=15):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class Monitor:
    """Reads scraper.py (running in the client namespace) and keeps every sample per target."""

    def __init__(self, bed, targets, interval=0.25):
        self.samples = {name: [] for name in targets}
        self.lock = threading.Lock()
        args = [VENV_PY if os.path.exists(VENV_PY) else sys.executable, os.path.join(HERE, "scraper.py"),
                str(interval)] + [f"{n}={u}" for n, u in targets.items()]
        self.proc = bed.net["cli"].spawn("scraper", args, os.path.join(RUN_DIR, "logs", "scraper.log"),
                                         stdout_pipe=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.samples.setdefault(rec["target"], []).append(rec)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def latest(self, target, name, default=0.0):
        with self.lock:
            for rec in reversed(self.samples.get(target, [])):
                if rec["ok"]:
                    return rec["v"].get(name, default)
        return default

    def sync(self, targets, t, timeout=10):
        """Wait until every target has a successful sample taken after time t (fresh counters)."""
        wait_until(f"fresh /metrics samples from {targets}", lambda: all(self.ok_since(n, t) for n in targets),
                   timeout, interval=0.05)

    def ok_since(self, target, t0):
        with self.lock:
            return any(r["ok"] and r["t"] >= t0 for r in self.samples.get(target, []))

    def total(self, target, name, since=0.0):
        """Counter total across process restarts (a drop is a restart: count the new value from 0)."""
        total, prev = 0.0, None
        with self.lock:
            recs = [r for r in self.samples.get(target, []) if r["ok"] and r["t"] >= since]
        for r in recs:
            v = r["v"].get(name, 0.0)
            if prev is None:
                prev = v
                continue
            total += v - prev if v >= prev else v
            prev = v
        return total

    def first_after(self, target, name, t0, pred, timeout, what):
        """Wait until a sample taken after t0 satisfies pred(value); return its time. Bounded by timeout."""
        def check():
            with self.lock:
                for r in self.samples.get(target, []):
                    if r["t"] >= t0 and r["ok"] and pred(r["v"].get(name, 0.0)):
                        return r["t"]
            return None
        return wait_until(what, check, timeout, interval=0.05)


class LedgerRun:
    """`celeriac-demo ledger` (or the Python fallback) in the client namespace; follows its progress lines."""

    def __init__(self, bed, label, url, count, chains=0, chain_length=1, chord=0, queue="celery", events=False,
                 queue_type=None, deadline=240):
        self.bed, self.label, self.deadline = bed, label, deadline
        self.expected = count + chains + (1 if chord else 0)     # what `completed` reaches (a canvas counts once)
        self.executions = count + chains * chain_length + (chord + 1 if chord else 0)   # tasks the workers run
        self.t_start = time.time()
        self.sent = self.completed = 0
        self.progress_t = None
        self.result = None
        self.lines = []
        args = ["-b", url, "--count", str(count), "--chains", str(chains), "--chain-length", str(chain_length),
                "--chord", str(chord), "--queue", queue, "--id-prefix", label, "--deadline", str(deadline)]
        if queue_type:
            args += ["--queue-type", queue_type]
        if events:
            args += ["--events"]
        argv = [bed.bin, "ledger", *args] if bed.driver == "celeriac" else \
            [VENV_PY, os.path.join(HERE, "pyledger.py"), *args]
        self.t0 = time.time()
        self.proc = bed.net["cli"].spawn(f"ledger {label}", argv, os.path.join(RUN_DIR, "logs", f"ledger-{label}.log"),
                                         stdout_pipe=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        bed.ledgers.append(self)

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            try:
                self.proc.chaos_log.write((line[:2000] + "\n").encode())
            except (OSError, ValueError):
                pass
            if line.startswith("progress "):
                kv = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
                try:
                    self.sent, self.completed = int(kv["sent"]), int(kv["completed"])
                    self.progress_t = float(kv["t"])
                except (KeyError, ValueError):
                    pass
            elif line.startswith("ledger "):
                try:
                    self.result = json.loads(line[len("ledger "):])
                except ValueError as e:
                    self.result = {"parse_error": str(e), "line": line[:500]}

    def done(self):
        """Tasks the workers finished since this run began (from their /metrics; the ledger's own `completed`
        counts a result only once its sender has sent its whole share, so it lags the real progress)."""
        return int(sum(self.bed.monitor.total(w, "celeriac_tasks_finished_total{outcome=succeeded}", self.t_start)
                       for w in WORKERS))

    def wait_done(self, fraction, timeout):
        """Wait until the workers finished `fraction` of this run's tasks (fault injection points)."""
        n = max(1, int(self.executions * fraction))
        wait_until(f"the workers to finish {n} of ledger {self.label}'s {self.executions} tasks",
                   lambda: self.done() >= n or self.proc.poll() is not None, timeout, interval=0.05)
        if self.done() < n:
            raise ChaosError(f"ledger {self.label} exited (rc {self.proc.returncode}) before the workers finished {n} "
                             f"tasks; see {RUN_DIR}/logs/ledger-{self.label}.log")

    def finish(self, stall_timeout=60):
        """Wait for the final `ledger {...}` line, bounded by the ledger's own deadline + 30 s, and fail early when
        no worker finishes a task of this run for `stall_timeout` s while tasks are still outstanding."""
        limit = self.t0 + self.deadline + 30
        last_done, last_change = self.done(), time.time()
        while self.proc.poll() is None:
            now, done = time.time(), self.done()
            if done != last_done:
                last_done, last_change = done, now
            if done < self.executions and now - last_change > stall_timeout:
                self.proc.kill()
                raise ChaosError(f"ledger {self.label}: no worker finished a task for {stall_timeout}s with "
                                 f"{done}/{self.executions} done (workers stuck: see {RUN_DIR}/logs/w*.log); "
                                 "ledger killed")
            if now > limit:
                self.proc.kill()
                raise ChaosError(f"ledger {self.label} did not finish within its deadline ({self.deadline}s) + 30s; "
                                 "killed")
            time.sleep(0.2)
        self.reader.join(timeout=10)
        if self.result is None:
            raise ChaosError(f"ledger {self.label} exited rc {self.proc.returncode} without a `ledger` line; "
                             f"see {RUN_DIR}/logs/ledger-{self.label}.log")
        self.result["exit_status"] = self.proc.returncode
        return self.result


# ====================================================================== the test bed
class TestBed:
    def __init__(self, binary, short, wanted, driver="celeriac"):
        self.bin, self.short, self.wanted = binary, short, wanted
        self.net = Net(log=log)
        self.brokers = {}
        self.workers = {}
        self.monitor = None
        self.prom = None
        self.cookie = new_cookie()
        self.driver = driver
        self._destroyed = False
        # Ledgers of the running scenario (killed when it ends), and non-empty queues an earlier scenario left
        # behind: its own failure reports them, the later scenarios' leftover checks do not.
        self.ledgers = []
        self.stale = set()

    # ------------------------------------------------------------ setup / teardown
    def build(self):
        for d in ("logs",):
            os.makedirs(os.path.join(RUN_DIR, d), exist_ok=True)
        self.net.create_switch()
        for name, octet in HOSTS.items():
            self.net.add_host(name, octet)
        log(f"network up: switch {self.net.switch_ns}, hosts " +
            ", ".join(f"{h.name}={h.ip}" for h in self.net.hosts.values()))
        for w in WORKERS:
            self.workers[w] = Worker(self, w)
        if self.driver == "celeriac":
            probe = run([self.bin, "ledger", "--help"], check=False, timeout=30)
            if "usage: celeriac-demo ledger" not in (probe.stdout or ""):
                raise ChaosError(f"{self.bin} has no `ledger` subcommand (`ledger --help` printed: "
                                 f"{(probe.stdout or '').strip()[:300]!r}); rebuild it, or run with --driver python")
        else:
            log("using the Python driver Tests/Chaos/pyledger.py (kombu; adds only, no chains/chord)")
        if any(n not in ("cluster",) for n in self.wanted):
            self.broker("b1").start()
        targets = {w: self.workers[w].metrics_url for w in WORKERS}
        targets.update({b: f"http://{self.net[b].ip}:{BEAT_METRICS_PORT}/metrics" for b in ("beat1", "beat2")})
        self.monitor = Monitor(self, targets)
        self.start_prometheus(targets)

    def broker(self, name):
        """The RabbitMQ node on host `name`; "b1" is the single broker, "b1c".."b3c" the cluster's nodes (fresh
        data dirs: a cluster whose Ra/stream coordinator was formed before the others joined is not the test)."""
        if name not in self.brokers:
            host, tag = (name[:-1], "-cluster") if name.endswith("c") else (name, "")
            self.brokers[name] = RabbitNode(self.net[host], RUN_DIR, self.cookie, log=log, tag=tag)
        return self.brokers[name]

    def url(self, *names, heartbeat=HEARTBEAT, vhost="/"):
        return ";".join(f"{self.broker(n).vhost_url(vhost)}?heartbeat={heartbeat}" for n in (names or ("b1",)))

    def start_prometheus(self, targets):
        d = os.path.join(RUN_DIR, "prometheus")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        jobs = "".join(f"      - targets: ['{u.split('/')[2]}']\n        labels: {{host: '{n}'}}\n"
                       for n, u in targets.items())
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n"
                    "  - job_name: celeriac\n    static_configs:\n" + jobs)
        self.prom = self.net["cli"].spawn("prometheus", [
            shutil.which("prometheus") or "prometheus", f"--config.file={d}/prometheus.yml",
            f"--storage.tsdb.path={d}/data", f"--web.listen-address=0.0.0.0:{PROM_PORT}",
            "--storage.tsdb.retention.time=1d"], os.path.join(RUN_DIR, "logs", "prometheus.log"))
        def ready():
            if self.prom.poll() is not None:
                raise ChaosError(f"prometheus exited (rc {self.prom.returncode}); see {RUN_DIR}/logs/prometheus.log")
            return self.http_get(f"http://127.0.0.1:{PROM_PORT}/-/ready") is not None
        wait_until("prometheus to answer /-/ready", ready, 30, interval=0.3)

    def http_get(self, url, params=None):
        """GET from inside the client namespace (python urllib, no curl needed); body text, or None on error."""
        code = ("import sys, urllib.request, urllib.parse\n"
                "u = sys.argv[1] + ('?' + urllib.parse.urlencode({'query': sys.argv[2]}) if len(sys.argv) > 2 else '')\n"
                "sys.stdout.write(urllib.request.urlopen(u, timeout=5).read().decode())\n")
        p = self.net["cli"].run([sys.executable, "-c", code, url] + ([params] if params else []), check=False,
                                timeout=10)
        return p.stdout if p.returncode == 0 else None

    def prom_sync(self, hosts, t, timeout=15):
        """Wait until Prometheus has scraped every host in `hosts` after time t."""
        sel = "|".join(hosts)
        wait_until(f"Prometheus to scrape {hosts} after the run", lambda: len(
            [v for v in self.prom_query(f'timestamp(up{{host=~"{sel}"}})').values() if v >= t]) == len(hosts),
            timeout, interval=0.3)

    def prom_query(self, expr):
        """Instant query; returns {host label: value}."""
        body = self.http_get(f"http://127.0.0.1:{PROM_PORT}/api/v1/query", expr)
        if body is None:
            return {}
        try:
            data = json.loads(body)["data"]["result"]
        except (ValueError, KeyError):
            return {}
        return {r["metric"].get("host", ""): float(r["value"][1]) for r in data}

    def destroy(self):
        if self._destroyed:
            return
        self._destroyed = True
        log("cleanup: killing every process in the test namespaces and deleting them")
        if self.monitor:
            try:
                self.monitor.stop()
            except Exception:
                pass
        self.net.destroy()

    # ------------------------------------------------------------ workers
    def start_workers(self, names, url, queue, extra=(), o=None):
        """Start the workers at once (as a deployment would). A worker that exits during startup is a finding: it
        is recorded in `o` (the scenario fails) and restarted once so that the rest of the scenario still runs."""
        t0 = time.time()
        for n in names:
            self.workers[n].start(url, queue, extra)
        for n in names:
            try:
                self.wait_worker_ready(n, t0)
            except ChaosError as e:
                if o is None or self.workers[n].alive():
                    raise
                err = [l for l in self.workers[n].log_tail(5).splitlines() if "rror" in l]
                o.fail(f"FINDING: worker {self.workers[n].node} exited during a concurrent start: "
                       f"{err[-1] if err else e}; restarting it once")
                t1 = time.time()
                self.workers[n].start(url, queue, extra)
                self.wait_worker_ready(n, t1)

    def wait_worker_ready(self, n, t0, timeout=60):
        w = self.workers[n]

        def ready():
            if not w.alive():
                raise ChaosError(f"worker {w.node} exited (rc {w.proc.returncode}) during startup; log {w.log_path}:\n"
                                 + w.log_tail())
            return self.monitor.ok_since(n, t0) and self.monitor.latest(n, "celeriac_worker_ready") == 1
        wait_until(f"worker {w.node} to report celeriac_worker_ready 1", ready, timeout, interval=0.1)

    def stop_workers(self, names=WORKERS):
        for n in names:
            self.workers[n].stop()

    # ------------------------------------------------------------ checks
    def leftovers(self, node, work_queues, timeout=20, vhost="/"):
        """Wait until the work queues, the DLQ, delay queues and reply queues are empty; return what is left."""
        ignore = re.compile(r"^(celeriac\.revoked|.*\.state|.*\.lock|.*\.pidbox|celeryev\..*|chaos\.beat)$")
        left = {}

        def empty():
            nonlocal left
            qs = node.queues(vhost)
            missing = [q for q in work_queues if q not in qs]
            left = {q: m for q, (m, _) in qs.items()
                    if m > 0 and not ignore.match(q) and (q in work_queues or q not in self.stale)}
            if missing:
                left.update({q: "missing" for q in missing})
            return not left
        try:
            wait_until("queues to drain", empty, timeout, interval=0.5)
        except ChaosError:
            pass
        return left


# ====================================================================== ledgers and reports
class Outcome:
    """One scenario's ledger row (plus the reasons it failed)."""

    def __init__(self, name):
        self.name = name
        self.data = {"scenario": name, "status": "?", "failures": []}
        self.t0 = time.time()

    def __setitem__(self, k, v):
        self.data[k] = v

    def __getitem__(self, k):
        return self.data[k]

    def fail(self, msg):
        log(f"FAIL [{self.name}] {msg}")
        self.data["failures"].append(msg)

    def check(self, ok, msg):
        if not ok:
            self.fail(msg)
        return ok

    def add_ledger(self, led, label=None):
        """Reconcile a ledger result: lost and wrong must be 0, chains/chord must be right."""
        key = f"ledger_{label}" if label else "ledger"
        self.data[key] = {k: v for k, v in led.items() if k != "receipts"}
        for k in ("sent", "completed", "duplicates", "lost", "wrong"):
            self.data[k] = self.data.get(k, 0) + int(led.get(k) or 0)
        self.data["max_result_latency_s"] = round(max(self.data.get("max_result_latency_s", 0.0),
                                                      float(led.get("max_result_latency_s") or 0.0)), 3)
        tag = f" ({label})" if label else ""
        self.check(int(led.get("lost", 1)) == 0, f"lost {led.get('lost')} tasks{tag}: first ids {led.get('lost_ids')}")
        self.check(int(led.get("wrong", 1)) == 0, f"{led.get('wrong')} wrong results{tag}")
        self.check(led.get("sent") == led.get("completed"), f"sent {led.get('sent')} != completed "
                   f"{led.get('completed')}{tag}")
        for k in ("chains_ok", "chord_ok"):
            if led.get(k) is not None:
                self.check(led[k] is True, f"{k} = {led[k]}{tag}")


def redelivery_times(receipts, node, tk):
    """From the ledger's receipts: ids received by `node` before tk and later by another host.
    Returns (count, first_s, max_s): seconds from tk to those later receipts."""
    delays = []
    for tid, recs in (receipts or {}).items():
        before = [t for h, t in recs if h == node and t < tk]
        after = [t for h, t in recs if h != node and t >= tk]
        if before and after:
            delays.append(min(after) - tk)
    if not delays:
        return 0, None, None
    return len(delays), round(min(delays), 3), round(max(delays), 3)


def metric_redelivery_time(bed, survivors, tk):
    """After the fact, from the monitor's samples: seconds from tk until a surviving worker's redelivered counter
    first moved (resolution: the 0.25 s scrape). None if it never moved."""
    best = None
    for n in survivors:
        for name in ("celeriac_task_redelivered_total", "celeriac_task_redeliveries_total"):
            with bed.monitor.lock:
                recs = [r for r in bed.monitor.samples.get(n, []) if r["ok"] and name in r["v"]]
            before = [r["v"][name] for r in recs if r["t"] < tk]
            if not before:
                continue
            base = before[-1]
            after = [r["t"] for r in recs if r["t"] >= tk and r["v"][name] > base]
            if after:
                best = min(best, after[0] - tk) if best is not None else after[0] - tk
            break
    return round(best, 2) if best is not None else None


def stop_mid_run(o, led, node, total):
    """`rabbitmqctl stop` the node (the CLI needs ~1 s to boot, so it is started as soon as results flow) and check
    that the node was down while the workload was still running."""
    pid = node.beam_pid()
    stopper = threading.Thread(target=node.stop, daemon=True)
    stopper.start()
    # _zombie treats a vanished /proc entry as gone (checking for the file, then opening it, raced the reaper).
    wait_until(f"node {node.name} (pid {pid}) to go down", lambda: not pid or _zombie(pid) or not node.port_open(),
               60, interval=0.05)
    t_down = time.time()
    log(f"node {node.name} down at {led.done()}/{led.executions} tasks run")
    mid_run(o, led, total, f"node {node.name} went down")
    stopper.join(timeout=90)
    if stopper.is_alive():
        raise ChaosError(f"rabbitmqctl stop of {node.name} did not return within 90 s")
    return t_down


def mid_run(o, led, total, what):
    """The fault must hit a running workload; a workload that already finished proves nothing."""
    done = led.done()
    return o.check(done < led.executions and led.proc.poll() is None,
                   f"the workload finished ({done}/{led.executions} tasks run) before {what}; the fault was not mid-run")


def print_table(o):
    d = o.data
    rows = [("status", d["status"])]
    for k in ("sent", "completed", "duplicates", "duplicate_cause", "lost", "wrong", "max_result_latency_s",
              "celery_inspect_ping", "cluster_nodes", "work_queue_type",
              "elapsed_s", "shares", "redelivery", "recovery", "worker_counters", "prometheus", "leftovers", "beat",
              "notes"):
        if k in d:
            v = d[k]
            rows.append((k, json.dumps(v) if isinstance(v, (dict, list)) else str(v)))
    for f in d["failures"]:
        rows.append(("FAILURE", f))
    w = max(len(r[0]) for r in rows)
    bar = "-" * 78
    print(f"\n{bar}\nscenario {d['scenario']}\n{bar}")
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    print(bar, flush=True)


def print_summary(outcomes):
    """One row per scenario: the ledger and the headline timings."""
    def fmt(v):
        return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))
    rows = [("scenario", "status", "sent", "done", "dup", "lost", "wrong", "max_lat_s", "redeliv_s", "recovery_s")]
    for o in outcomes:
        d = o.data
        red = d.get("redelivery") or {}
        redeliv = red.get("sigkill_to_survivor_redelivered_counter_s", red.get("cut_to_survivor_redelivered_counter_s"))
        rec = d.get("recovery") or {}
        times = []
        for k, v in rec.items():
            if isinstance(v, dict):
                times += [x for kk, x in v.items() if kk.endswith("_s") and isinstance(x, (int, float))]
            elif k.endswith("_s") and isinstance(v, (int, float)) and k not in ("broker_down_s", "partition_s"):
                times.append(v)
        rows.append((d["scenario"], d["status"], fmt(d.get("sent")), fmt(d.get("completed")), fmt(d.get("duplicates")),
                     fmt(d.get("lost")), fmt(d.get("wrong")),
                     fmt(round(d["max_result_latency_s"], 2) if "max_result_latency_s" in d else None),
                     fmt(redeliv), fmt(max(times) if times else None)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print("\nledger summary (recovery_s = slowest recovery measured in the scenario)")
    for i, r in enumerate(rows):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))


# ====================================================================== scenarios
def workload(bed, slow_fault=False):
    """The ledger workload. A fault that takes seconds to inject (a rabbitmqctl call boots an Erlang VM, ~1 s;
    a node stop takes 1-3 s more) needs more adds in the short form, or the run is over before the fault lands."""
    if bed.short:
        return dict(count=10000 if slow_fault else 2000, chains=10, chain_length=5, chord=200)
    return dict(count=20000, chains=100, chain_length=10, chord=1000)


def ledger_deadline(bed):
    return 180 if bed.short else 900


def redelivered(bed, n, since):
    return bed.monitor.total(n, "celeriac_task_redelivered_total", since) or \
        bed.monitor.total(n, "celeriac_task_redeliveries_total", since)


def worker_counters(bed, names, since):
    out = {}
    for n in names:
        m = bed.monitor
        out[n] = {
            "finished": int(m.total(n, "celeriac_tasks_finished_total{outcome=succeeded}", since)),
            "reconnects": int(m.total(n, "celeriac_broker_reconnects_total", since)),
            "stalls": int(m.total(n, "celeriac_worker_consumer_stalls_total", since)),
            "redelivered": int(redelivered(bed, n, since)),
            "duplicates_detected": int(m.total(n, "celeriac_task_duplicates_detected_total", since)),
        }
    return out


def prom_counters(bed, queue, since):
    """Per-host redeliveries and skipped duplicates from Prometheus; increase() copes with the counter reset of a
    SIGKILLed and restarted worker (values are extrapolated, hence rounded)."""
    window = f"{int(time.time() - since) + 5}s"
    out = {}
    for key, metric in (("redelivered", 'celeriac_task_redeliver(ies|ed)_total'),
                        ("duplicates_skipped", "celeriac_task_duplicates_detected_total")):
        res = bed.prom_query(f'sum by (host) (increase({{__name__=~"{metric}",queue="{queue}"}}[{window}]))')
        out[key] = {h: round(v) for h, v in sorted(res.items())}
    return out


def finish_common(bed, o, queue, node=None, names=WORKERS, vhost="/"):
    """Counters from the monitor and Prometheus, leftovers on the broker, then stop the workers."""
    t_end = time.time()
    bed.monitor.sync(names, t_end)
    o["worker_counters"] = worker_counters(bed, names, o.t0)
    bed.prom_sync(names, t_end)
    o["prometheus"] = prom_counters(bed, queue, o.t0)
    left = bed.leftovers(node or bed.broker("b1"), [queue], vhost=vhost)
    o["leftovers"] = left
    o.check(not left, f"queues not empty at the end: {left}")
    bed.stop_workers(names)


def recovery_times(bed, o, led, rec, t0, metric, timeout, what, key, again_key, again_what, stuck_hint=""):
    """After a broker-side fault at t0: when each worker's `metric` reached 1 (rec["wN_<key>"]), and when the
    workers finished tasks again (rec[again_key]); a worker that never gets there fails the scenario."""
    for w in WORKERS:
        try:
            t = bed.monitor.first_after(w, metric, t0, lambda v: v >= 1, timeout, f"{w} to {what}")
            rec[f"{w}_{key}"] = round(max(0.0, t - t0), 2)
        except ChaosError as e:
            o.fail(str(e))
    # One reading of the count, used both to decide whether to wait and as the mark to pass: reading it twice let
    # the run finish in between, and then nothing could ever pass the mark (a false "do not consume").
    base = led.done()
    if base >= led.executions:
        # Every task ran, and the fault hit mid-run (mid_run checked that), so the rest ran after it.
        rec[again_key] = "all tasks finished before this check"
    elif led.proc.poll() is None:
        try:
            t = wait_until(f"the workers to finish tasks again {again_what}",
                           lambda: (led.done() > base or led.proc.poll() is not None) and time.time(), 60,
                           interval=0.05)
            rec[again_key] = round(t - t0, 2)
        except ChaosError as e:
            o.fail(f"{e}{stuck_hint}")


def s1_steady(bed, o):
    """3 workers share the work fairly; `celery inspect ping` reaches all three."""
    q = "chaos.s1"
    url = bed.url("b1")
    bed.start_workers(WORKERS, url, q, o=o)
    p = bed.net["cli"].run([CELERY, "-b", bed.broker("b1").url, "inspect", "ping", "--timeout", "5"],
                           check=False, timeout=60)
    pongs = sorted(set(re.findall(r"->\s+(\S+): OK", p.stdout or "")))
    o["celery_inspect_ping"] = pongs
    o.check(pongs == sorted(bed.workers[w].node for w in WORKERS),
            f"celery inspect ping answered by {pongs}, expected all three workers; output:\n{p.stdout}")
    led = LedgerRun(bed, "s1", url, queue=q, deadline=ledger_deadline(bed), **workload(bed))
    o.add_ledger(led.finish())
    bed.prom_sync(WORKERS, time.time())
    expr = f'sum by (host) (celeriac_tasks_finished_total{{queue="{q}",outcome="succeeded"}})'
    shares = {h: int(v) for h, v in bed.prom_query(expr).items()}
    direct = {w: int(bed.monitor.latest(w, "celeriac_tasks_finished_total{outcome=succeeded}")) for w in WORKERS}
    o["shares"] = {"prometheus": shares, "direct_scrape": direct}
    total = sum(direct.values())
    for w in WORKERS:
        got = shares.get(w, direct[w])
        o.check(got >= total / 3 * 0.5, f"unfair sharing: {w} did {got} of {total} tasks (< 1/3 x 0.5)")
    finish_common(bed, o, q)


def s2_worker_kill(bed, o):
    """SIGKILL one worker host mid-run, restart it: nothing lost; time from SIGKILL to redelivery."""
    q = "chaos.s2"
    url = bed.url("b1")
    wl = workload(bed)
    bed.start_workers(WORKERS, url, q, o=o)
    led = LedgerRun(bed, "s2", url, queue=q, events=True, deadline=ledger_deadline(bed), **wl)
    led.wait_done(0.25, 120)
    victim = bed.workers["w2"]
    # A worker that keeps up with the sender holds no unacked delivery most of the time, so a SIGKILL at a random
    # instant may find nothing to redeliver. Freeze it first: the broker keeps dispatching to it (its prefetch has
    # room) and nothing it receives can be acked. Once the others have finished more tasks, deliveries went out
    # after the freeze and, round-robin, some of them to w2: then the SIGKILL always leaves tasks in flight.
    victim.host.kill_all(signal.SIGSTOP)
    base = led.done()
    wait_until("w1 and w3 to finish 30 more tasks while w2 is frozen",
               lambda: led.done() >= base + 30 or led.proc.poll() is not None, 60, interval=0.05)
    tk = time.time()
    victim.host.kill_all()
    mid_run(o, led, wl["count"], "the SIGKILL")
    log(f"SIGKILLed every process on {victim.host.name} at {led.done()}/{led.executions} tasks run")
    time.sleep(1.0)   # a crashed host does not come back instantly
    tr = time.time()
    victim.start(url, q)
    bed.wait_worker_ready("w2", tr)
    o["recovery"] = {"w2_restart_to_ready_s": round(time.time() - tr, 2)}
    led_res = led.finish()
    o.add_ledger(led_res)
    n, first, worst = redelivery_times(led_res.get("receipts"), victim.node, tk)
    o["redelivery"] = {"receipts_ids_redelivered": n, "sigkill_to_first_redelivery_s": first,
                       "sigkill_to_last_redelivery_s": worst,
                       "sigkill_to_survivor_redelivered_counter_s": metric_redelivery_time(bed, ["w1", "w3"], tk),
                       "redelivered_counter_total": sum(int(redelivered(bed, w, o.t0)) for w in WORKERS)}
    o["duplicate_cause"] = "tasks w2 had finished but not yet acked at the SIGKILL run again elsewhere"
    o.check(o["redelivery"]["sigkill_to_survivor_redelivered_counter_s"] is not None,
            "no surviving worker counted a redelivered task after the SIGKILL (w2 had tasks in flight)")
    if led_res.get("receipts") is None and bed.driver == "celeriac":
        o.fail("the ledger printed no `receipts` (--events)")
    finish_common(bed, o, q)


def s3_broker_restart(bed, o):
    """Restart the broker mid-run: workers and client reconnect by themselves, nothing lost."""
    q = "chaos.s3"
    url = bed.url("b1")
    wl = workload(bed, slow_fault=True)
    b = bed.broker("b1")
    bed.start_workers(WORKERS, url, q, o=o)
    led = LedgerRun(bed, "s3", url, queue=q, deadline=ledger_deadline(bed), **wl)
    led.wait_done(0.1, 120)
    t_stop = time.time()
    stop_mid_run(o, led, b, wl["count"])
    b.start()
    t_up = time.time()
    rec = {"broker_down_s": round(t_up - t_stop, 2)}
    recovery_times(bed, o, led, rec, t_up, metric="celeriac_broker_connected", timeout=30,
                   what="reconnect after the broker restart", key="reconnected_after_s",
                   again_key="tasks_run_again_after_s", again_what="after the broker restart")
    o["recovery"] = rec
    o.add_ledger(led.finish())
    o["duplicate_cause"] = "tasks whose acks were in flight when the broker stopped run again"
    finish_common(bed, o, q)
    for w, c in o["worker_counters"].items():
        o.check(c["reconnects"] >= 1, f"{w}: celeriac_broker_reconnects_total did not increase")


def s4_connection_faults(bed, o):
    """One worker, heartbeat 2 s: (a) close_connection, (b) SIGSTOP the broker 6 s, (c) delete the work queue."""
    q = "chaos.s4"
    url = bed.url("b1")
    b = bed.broker("b1")
    n = 8000 if bed.short else 20000
    bed.start_workers(["w1"], url, q, o=o)
    w1 = bed.workers["w1"]
    limit = 2 * HEARTBEAT
    rec = {}

    def resumed_after(t_end, label):
        base = bed.monitor.latest("w1", "celeriac_tasks_started_total")
        try:
            t = bed.monitor.first_after("w1", "celeriac_tasks_started_total", t_end, lambda v: v > base or v < base,
                                        30, f"w1 to start tasks again after fault {label}")
        except ChaosError as e:
            o.fail(str(e))
            return None
        dt = round(max(0.0, t - t_end), 2)
        o.check(dt <= limit, f"fault {label}: consumption resumed after {dt}s (> 2 heartbeats = {limit}s)")
        return dt

    def counters(t0):
        return {"reconnects": int(bed.monitor.total("w1", "celeriac_broker_reconnects_total", t0)),
                "stalls": int(bed.monitor.total("w1", "celeriac_worker_consumer_stalls_total", t0))}

    # (a) the broker closes the worker's connections
    t0 = time.time()
    conns = [c for c in b.connections() if c[1] == w1.host.ip and f'"{w1.node}-consume"' in c[2]]
    o.check(len(conns) == 1, f"(a) expected one consumer connection named {w1.node}-consume from {w1.host.ip}, "
                             f"found {len(conns)}: {b.connections()}")
    # rabbitmqctl boots an Erlang VM (1-3 s on a loaded box): a bigger run and an early start keep the close mid-run.
    led = LedgerRun(bed, "s4a", url, count=3 * n, queue=q, deadline=ledger_deadline(bed))
    led.wait_done(0.01, 60)
    for pid, _, _ in conns:
        b.ctl("close_connection", pid, "chaos: close_connection", check=False)
    t_end = time.time()
    mid_run(o, led, 3 * n, "the connection was closed")
    log(f"(a) closed {len(conns)} connection(s) of w1")
    rec["a_close_connection"] = {"connections_closed": len(conns), "resumed_after_s": resumed_after(t_end, "a")}
    o.add_ledger(led.finish(), "a")
    bed.monitor.sync(["w1"], time.time())
    rec["a_close_connection"].update(counters(t0))
    o.check(sum(counters(t0).values()) >= 1, "(a) neither reconnects nor stalls counter moved")

    # (b) the broker freezes for 3 heartbeats
    t0 = time.time()
    led = LedgerRun(bed, "s4b", url, count=n, queue=q, deadline=ledger_deadline(bed))
    led.wait_done(0.25, 60)
    pid = b.freeze()
    time.sleep(3 * HEARTBEAT)      # the fault itself lasts 3 heartbeats; not a synchronisation
    b.thaw(pid)
    t_end = time.time()
    mid_run(o, led, n, "the broker was thawed")
    log("(b) broker SIGSTOPped for 6 s, then SIGCONT")
    rec["b_broker_sigstop_6s"] = {"resumed_after_s": resumed_after(t_end, "b")}
    o.add_ledger(led.finish(), "b")
    bed.monitor.sync(["w1"], time.time())
    rec["b_broker_sigstop_6s"].update(counters(t0))
    o.check(sum(counters(t0).values()) >= 1, "(b) neither reconnects nor stalls counter moved")

    # (c) delete the work queue under the running (idle) consumer; the ledger runs after the worker re-declared it
    t0 = time.time()
    b.ctl("delete_queue", q)
    t_del = time.time()
    # Each look is a rabbitmqctl run (1-3 s). The queue was back no later than the first look that saw it, and
    # not before the start of the last look that missed it: that start is what must be within the limit.
    missed = [t_del]

    def back():
        started = time.time()
        if b.queues().get(q, (0, 0))[1] >= 1:
            return time.time()
        missed[0] = started
        return None
    try:
        t_back = wait_until(f"the worker to re-declare and consume {q}", back, 3 * limit, interval=0.2)
        # Bounds, not a point: back after the last look that missed it, and before the first that saw it ended.
        rec["c_delete_queue"] = {"queue_redeclared_with_consumer_between_s": [round(missed[0] - t_del, 2),
                                                                              round(t_back - t_del, 2)]}
        o.check(missed[0] - t_del <= limit,
                f"(c) the queue was still missing (or had no consumer) {missed[0] - t_del:.1f}s after the delete (> {limit}s)")
    except ChaosError as e:
        rec["c_delete_queue"] = {"queue_redeclared_with_consumer_between_s": None}
        o.fail(f"(c) FINDING: {e}; queues now: {b.queues().get(q)}; worker log tail:\n{w1.log_tail()}")
    if q in b.queues():
        led = LedgerRun(bed, "s4c", url, count=n, queue=q, deadline=ledger_deadline(bed))
        o.add_ledger(led.finish(), "c")
        rec["c_delete_queue"].update(counters(t0))
        rec["c_delete_queue"]["note"] = "ledger sent after the re-declare (messages sent while a queue is deleted " \
                                        "are dropped by RabbitMQ by design)"
        o.check(counters(t0)["stalls"] >= 1, "(c) celeriac_worker_consumer_stalls_total did not increase")
    o["recovery"] = rec
    finish_common(bed, o, q, names=["w1"])


def s5_partition(bed, o):
    """Cut one worker host off for more than 2 heartbeats: its tasks go elsewhere, it reconnects and resumes."""
    q = "chaos.s5"
    url = bed.url("b1")
    wl = workload(bed)
    bed.start_workers(WORKERS, url, q, o=o)
    victim = bed.workers["w2"]
    led = LedgerRun(bed, "s5", url, queue=q, events=True, deadline=ledger_deadline(bed), **wl)
    led.wait_done(0.25, 120)
    started_before = bed.monitor.latest("w2", "celeriac_tasks_started_total")
    tk = time.time()
    victim.host.link(False)
    mid_run(o, led, wl["count"], "the partition")
    outage = 4 * HEARTBEAT
    log(f"w2 cut off (veth down) at {led.done()}/{led.executions} tasks run, for {outage}s")
    time.sleep(outage)      # the partition itself; not a synchronisation
    victim.host.link(True)
    t_up = time.time()
    rec = {"partition_s": round(t_up - tk, 2)}
    try:
        # a scrape that started before the link came up may answer after it: only samples taken after t_up count
        t = bed.monitor.first_after("w2", "celeriac_broker_connected", t_up, lambda v: v >= 1, 30,
                                    "w2 to be connected again after the partition")
        rec["w2_reconnected_after_link_up_s"] = round(t - t_up, 2)
        o.check(bed.monitor.total("w2", "celeriac_broker_reconnects_total", o.t0) >= 1,
                "w2: celeriac_broker_reconnects_total did not increase (dead connection not detected?)")
    except ChaosError as e:
        o.fail(str(e))
    o["recovery"] = rec
    res = led.finish()
    o.add_ledger(res)
    try:
        # w2 resumes if its started counter moves past what it had before the cut (or a further ledger finds it busy)
        t = bed.monitor.first_after("w2", "celeriac_tasks_started_total", t_up,
                                    lambda v: v > started_before, 1, "w2 to start tasks after the partition")
        rec["w2_resumed_after_link_up_s"] = round(max(0.0, t - t_up), 2)
    except ChaosError:
        led2 = LedgerRun(bed, "s5-after", url, count=300, queue=q, deadline=60)
        o.add_ledger(led2.finish(), "after")
        fin = bed.monitor.latest("w2", "celeriac_tasks_started_total")
        rec["w2_resumed"] = fin > started_before
        o.check(fin > started_before, "w2 did not run any task after the partition healed")
    n, first, worst = redelivery_times(res.get("receipts"), victim.node, tk)
    o["redelivery"] = {"receipts_ids_redelivered": n, "cut_to_first_redelivery_s": first,
                       "cut_to_last_redelivery_s": worst,
                       "cut_to_survivor_redelivered_counter_s": metric_redelivery_time(bed, ["w1", "w3"], tk),
                       "redelivered_counter_total": sum(int(redelivered(bed, w, o.t0)) for w in WORKERS)}
    o["duplicate_cause"] = "w2's unacked tasks were redelivered when the broker dropped its connection; " \
                           "results w2 computed during the cut may also arrive"
    o.check(o["redelivery"]["cut_to_survivor_redelivered_counter_s"] is not None,
            "no surviving worker counted a redelivered task after the partition (w2 had tasks in flight)")
    finish_common(bed, o, q)


def s6_cluster(bed, o):
    """3-node cluster, quorum queues, URL lists; stop the node the workers use; they fail over."""
    cluster_failover(bed, o, grown=False)


def s8_cluster_grown(bed, o):
    """Opt-in: like `cluster`, but b2 and b3 join the single broker b1 after it has served (and created the
    revocation stream); then b1 stops."""
    cluster_failover(bed, o, grown=True)


def cluster_failover(bed, o, grown):
    q = "chaos.s6"
    wl = workload(bed, slow_fault=True)
    single = bed.broker("b1")
    if grown:
        # b1 has served workers before the others join: its stream coordinator was formed alone
        if not single.beam_pid():
            single.start()
        bed.start_workers(["w1"], bed.url("b1"), "chaos.pre", o=o)
        bed.stop_workers(["w1"])
        b1, b2, b3 = single, bed.broker("b2"), bed.broker("b3")
        to_start = (b2, b3)
        vhost = "chaos-quorum"   # "/" holds classic queues (celeriac.dead, ...); x-queue-type cannot change
    else:
        if single.beam_pid():
            single.stop()           # the cluster's first node runs on the same host, with its own data dir
        b1, b2, b3 = bed.broker("b1c"), bed.broker("b2c"), bed.broker("b3c")
        to_start = (b1, b2, b3)
        vhost = "/"
    errors = []

    def start(n):
        try:
            n.start()
        except Exception as e:      # reported below; the thread must not die silently
            errors.append(f"{n.name}: {e}")
    threads = [threading.Thread(target=start, args=(n,), daemon=True) for n in to_start]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=150)
    if errors or any(t.is_alive() for t in threads):
        raise ChaosError(f"cluster nodes did not start: {errors or 'timeout'}")
    for n in (b2, b3):
        n.join(b1)
    status = b1.ctl("cluster_status", "--formatter", "json", check=False)
    try:
        running = json.loads(status.stdout).get("running_nodes", [])
    except ValueError:
        running = []
    o["cluster_nodes"] = running
    o.check(sorted(running) == sorted([b1.name, b2.name, b3.name]), f"cluster did not form: {running}")
    if vhost != "/":
        b1.add_vhost(vhost)
    names = ("b1", "b2", "b3") if grown else ("b1c", "b2c", "b3c")
    url = bed.url(*names, vhost=vhost)
    bed.start_workers(WORKERS, url, q, extra=("--queue-type", "quorum"), o=o)
    # Before the workload: each rabbitmqctl call boots an Erlang VM (seconds on a 2-core box running three nodes),
    # and made after it started, they could let the run finish before the node stops. The workers are connected
    # and have declared the queue once they report ready.
    victim = None
    for n in (b1, b2, b3):
        peers = {c[1] for c in n.connections()}
        if bed.net["w1"].ip in peers:
            victim = n
            break
    victim = victim or b1
    qtype = victim.ctl("list_queues", "-p", vhost, "-q", "--no-table-headers", "name", "type",
                       check=False).stdout or ""
    o["work_queue_type"] = next((l.split()[1] for l in qtype.splitlines() if l.split()[:1] == [q]), None)
    o.check(o["work_queue_type"] == "quorum", f"{q} is not a quorum queue: {o['work_queue_type']}")
    led = LedgerRun(bed, "s6", bed.url(names[1], names[2], names[0], vhost=vhost), queue=q, queue_type="quorum",
                    deadline=ledger_deadline(bed), **wl)
    led.wait_done(0.1, 120)
    t_down = stop_mid_run(o, led, victim, wl["count"])
    rec = {"stopped_node": victim.name}
    recovery_times(bed, o, led, rec, t_down, metric="celeriac_broker_reconnects_total", timeout=60,
                   what="fail over to another node", key="failed_over_after_node_down_s",
                   again_key="tasks_run_again_after_node_down_s", again_what="after the node stopped",
                   stuck_hint=f" (the workers reconnected but do not consume; see {RUN_DIR}/logs/w*.log)")
    o["recovery"] = rec
    o.add_ledger(led.finish())
    o["duplicate_cause"] = "acks in flight to the stopped node; quorum queues redeliver those messages"
    survivor = next(n for n in (b1, b2, b3) if n is not victim)
    finish_common(bed, o, q, node=survivor, vhost=vhost)


BEAT_SCHEDULE = """\
entries:
  chaos-tick:
    task: demo.add
    every: 1s
    args: [1, 1]
    queue: chaos.beat
    catch_up: all
"""


def s7_beat_failover(bed, o):
    """Two beats; crash the leader's host; every 1-s instant is sent exactly once."""
    sched = os.path.join(RUN_DIR, "beat-schedule.yaml")
    with open(sched, "w") as f:
        f.write(BEAT_SCHEDULE)
    url = bed.url("b1")
    b = bed.broker("b1")
    b.ctl("delete_queue", "chaos.beat", check=False)
    beats = {}
    t0 = time.time()
    for name in ("beat1", "beat2"):
        state = os.path.join(RUN_DIR, f"{name}.state.json")
        if os.path.exists(state):
            os.remove(state)
        beats[name] = bed.net[name].spawn(f"beat {name}", [
            bed.bin, "beat", "-b", url, "--schedule", sched, "--state", state, "--lock", "chaos.s7",
            "--metrics-port", str(BEAT_METRICS_PORT), "--metrics-bind", "0.0.0.0"],
            os.path.join(RUN_DIR, "logs", f"{name}.log"))
    leader = wait_until("one beat to become leader", lambda: next(
        (n for n in beats if bed.monitor.ok_since(n, t0) and bed.monitor.latest(n, "celeriac_beat_is_leader") == 1),
        None), 30, interval=0.1)
    other = "beat2" if leader == "beat1" else "beat1"
    ticks = 4 if bed.short else 10
    bed.monitor.first_after(leader, "celeriac_beat_sends_total", t0, lambda v: v >= ticks, 30 + ticks,
                            f"{leader} to send {ticks} ticks")
    tc = time.time()
    bed.net[leader].link(False)
    bed.net[leader].kill_all()
    log(f"crashed the leader host {leader} (veth down, SIGKILL); waiting for {other} to take over")
    t_lead = bed.monitor.first_after(other, "celeriac_beat_is_leader", tc, lambda v: v == 1, 30,
                                     f"{other} to become leader")
    sends0 = bed.monitor.latest(other, "celeriac_beat_sends_total")
    bed.monitor.first_after(other, "celeriac_beat_sends_total", t_lead, lambda v: v >= sends0 + ticks, 30 + ticks,
                            f"{other} to send {ticks} ticks as leader")
    beats[other].send_signal(signal.SIGTERM)
    try:
        beats[other].wait(timeout=20)
    except subprocess.TimeoutExpired:
        bed.net[other].kill_all()
    bed.net[leader].link(True)
    p = bed.net["cli"].run([VENV_PY, os.path.join(HERE, "drain.py"), bed.broker("b1").url, "chaos.beat"],
                           timeout=90)
    msgs = json.loads(p.stdout.strip().splitlines()[-1])["messages"]
    instants = [m["headers"].get("beat_instant") for m in msgs]
    secs = []
    for s in instants:
        try:
            secs.append(_iso_seconds(s))
        except ValueError:
            o.fail(f"message without a valid beat_instant header: {s!r}")
    counts = {}
    for s in secs:
        counts[s] = counts.get(s, 0) + 1
    dup = sorted(s for s, c in counts.items() if c > 1)
    missing = [s for s in range(min(secs), max(secs) + 1) if s not in counts] if secs else []
    o["beat"] = {"leader": leader, "new_leader": other, "failover_s": round(t_lead - tc, 2),
                 "messages": len(secs), "first": instants[0] if instants else None,
                 "last": instants[-1] if instants else None,
                 "duplicated_instants": [_iso(s) for s in dup][:20], "missing_instants": [_iso(s) for s in missing][:20]}
    o["sent"], o["completed"] = len(secs), len(counts)
    o["duplicates"] = sum(c - 1 for c in counts.values())
    o["lost"] = len(missing)
    o["wrong"] = 0
    o["recovery"] = {"leader_crash_to_new_leader_s": round(t_lead - tc, 2)}
    o.check(len(secs) >= 8, f"only {len(secs)} beat messages")
    o.check(not dup, f"instants sent more than once: {[_iso(s) for s in dup][:10]}")
    o.check(not missing, f"instants never sent: {[_iso(s) for s in missing][:10]}")
    left = bed.leftovers(b, [])
    o["leftovers"] = left
    o.check(not left, f"queues not empty at the end: {left}")


def _iso_seconds(s):
    from datetime import datetime
    if not isinstance(s, str):
        raise ValueError(s)
    d = datetime.fromisoformat(s.replace("Z", "+00:00"))
    if d.microsecond:
        raise ValueError(f"not a whole second: {s}")
    return int(d.timestamp())


def _iso(sec):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sec))


SCENARIOS = [
    ("steady", s1_steady),
    ("worker-kill", s2_worker_kill),
    ("broker-restart", s3_broker_restart),
    ("connection-faults", s4_connection_faults),
    ("partition", s5_partition),
    ("beat-failover", s7_beat_failover),
    ("cluster", s6_cluster),     # last: it turns the broker into a cluster and stops a node
    ("cluster-grown", s8_cluster_grown),   # in the full run (make chaos); not in --short (CI time)
]
OPT_IN = {"cluster-grown"}


# ====================================================================== main
def main():
    ap = argparse.ArgumentParser(description="Celeriac multi-host chaos harness (issue #9)")
    ap.add_argument("--short", action="store_true", help="CI form: small workloads")
    ap.add_argument("--bin", default=os.path.join(REPO, ".build", "debug", "celeriac-demo"))
    ap.add_argument("--driver", choices=["celeriac", "python"], default="celeriac",
                    help="ledger driver: `celeriac-demo ledger` (default) or Tests/Chaos/pyledger.py (a kombu "
                         "client speaking Celery's protocol; adds only)")
    ap.add_argument("scenarios", nargs="*", help="names or numbers (1-7); default all")
    a = ap.parse_args()
    names = [n for n, _ in SCENARIOS]
    numbers = {"1": "steady", "2": "worker-kill", "3": "broker-restart", "4": "connection-faults", "5": "partition",
               "6": "cluster", "7": "beat-failover", "8": "cluster-grown"}
    wanted = [numbers.get(s, s) for s in a.scenarios] or [n for n in names if not (a.short and n in OPT_IN)]
    unknown = [s for s in wanted if s not in names]
    if unknown:
        ap.error(f"unknown scenario(s) {unknown}; choose from {names} or 1-7")
    if not os.path.exists(a.bin):
        print(f"chaos: {a.bin} not found; build it first (scripts/chaos.sh does)", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("chaos: needs root for network namespaces (ip netns); not skipping", file=sys.stderr)
        return 2
    for tool in ("ip", "prometheus"):
        if not shutil.which(tool):
            print(f"chaos: required tool `{tool}` not found", file=sys.stderr)
            return 2
    try:
        check_privileges()
    except ChaosError as e:
        print(f"chaos: {e}", file=sys.stderr)
        return 2
    os.makedirs(RUN_DIR, exist_ok=True)
    remove_stale(log=log)
    for d in os.listdir(RUN_DIR):     # fresh broker data and logs every run
        if d.startswith("rabbit-") or d == "logs":
            shutil.rmtree(os.path.join(RUN_DIR, d), ignore_errors=True)

    bed = TestBed(a.bin, a.short, wanted, a.driver)
    atexit.register(bed.destroy)

    def on_signal(signum, _frame):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):   # a second signal must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        log(f"got signal {signum}; cleaning up")
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    outcomes = []
    t_run = time.time()
    try:
        bed.build()
        for name, fn in SCENARIOS:
            if name not in wanted:
                continue
            o = Outcome(name)
            log(f"=== scenario {name}: {fn.__doc__.strip()}")
            try:
                fn(bed, o)
            except ChaosError as e:
                o.fail(str(e))
            except Exception as e:   # a harness bug: still report, still clean up
                o.fail(f"harness error: {type(e).__name__}: {e}\n{traceback.format_exc()}")
            except BaseException:    # interrupted (signal): record it, then let the cleanup run
                o.fail("interrupted")
                o["status"] = "INTERRUPTED"
                outcomes.append(o)
                raise
            finally:
                # Cleanup must not raise: an exception here would hide this scenario's result and skip the rest.
                for w in bed.workers.values():
                    try:
                        if w.alive():
                            w.host.kill_all()
                    except Exception as e:
                        log(f"cleanup of {w.host.name} failed: {e}")
                for led in bed.ledgers:
                    try:
                        if led.proc.poll() is None:
                            led.proc.kill()
                    except Exception as e:
                        log(f"cleanup of ledger {led.label} failed: {e}")
                bed.ledgers.clear()
                try:
                    b1 = bed.brokers.get("b1")
                    if b1 is not None and b1.beam_pid():
                        bed.stale |= {q for q, (m, _) in b1.queues().items() if m > 0}
                except Exception as e:
                    log(f"cannot list b1's queues after {name}: {e}")
            o["elapsed_s"] = round(time.time() - o.t0, 1)
            o["status"] = "FAIL" if o["failures"] else "PASS"
            outcomes.append(o)
            print_table(o)
    except ChaosError as e:
        log(f"setup failed: {e}")
        outcomes.append(Outcome("setup"))
        outcomes[-1].fail(str(e))
        outcomes[-1]["status"] = "FAIL"
    finally:
        report = {"short": a.short, "binary": a.bin, "driver": bed.driver, "elapsed_s": round(time.time() - t_run, 1),
                  "scenarios": [o.data for o in outcomes]}
        with open(os.path.join(RUN_DIR, "report.json"), "w") as f:
            json.dump(report, f, indent=2)
        try:
            bed.destroy()
        except Exception as e:      # the scenarios' results stand; a failed teardown is reported, not raised
            log(f"cleanup failed: {e}")
    print_summary(outcomes)
    print("\nsummary: " + ", ".join(f"{o.name}={o['status']}" for o in outcomes) +
          f"  ({time.time() - t_run:.0f}s; report {os.path.relpath(os.path.join(RUN_DIR, 'report.json'), REPO)})")
    ok = outcomes and all(o["status"] == "PASS" for o in outcomes) and len(outcomes) == len(wanted)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
