#!/usr/bin/env python3
"""Issue #23's targets, each measured side by side in one run, over several runs, with the medians against them.

  .run/venv/bin/python bench/targets.py --runs 5          (needs: make bench's builds, a running broker)
  python3 bench/targets.py --summarize .run/targets       (the table again, from the runs kept there)

A run is, in this order, with the same broker for all: `celeriac-bench amqp` (the round-trip floors), `tasks`,
`canvas`, `defaults`, `pools` and `compact` (each with --repeats 1: the runs are the repeats), Celery 5.7's three
pools (bench/celery_bench.py; drain only for prefork and threads) and bench/memory.py (with the statically linked
demo when .build-static has it). Each run's figure lines go to run-K.txt in --dir (.run/targets by default).

stdout: a Markdown table, a row per target figure: the value of each run (a same-run ratio: `tasks` and `canvas`
measure the round-trip floor they are held to in their own run), their median, the target and whether the median
meets it. A figure a run did not print is "-"; a failed stage is named on stderr
and the other stages still run.
"""
import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def note(msg):
    print(f"targets: {msg}", file=sys.stderr, flush=True)


def figure(name, invert=False):
    def compute(f):
        if name not in f or (invert and f[name] == 0):
            return None
        return 1 / f[name] if invert else f[name]
    return compute


def celery_best(f):
    """The defaults' drain against the best of Celery's pools in the same run (their worker-only drain)."""
    pools = [f[k] for k in (f"celery.{p}.drain_only_rate" for p in ("solo", "prefork", "threads")) if k in f]
    if "defaults.drain_rate" not in f or not pools or max(pools) == 0:
        return None
    return f["defaults.drain_rate"] / max(pools)


# (target, what is measured, how it is computed from one run's figures, the bound, ">=" or "<=")
ROWS = [
    ("1", "defaults drain / best fixed multiplier", figure("ratio.defaults.drain_vs_best_fixed"), 0.8, ">="),
    ("1", "defaults drain / Celery's best pool", celery_best, 3.5, ">="),
    ("2", "process pool drain / async pool drain", figure("ratio.pools.process_vs_async_drain"), 0.8, ">="),
    ("2", "process pool CPU per task / async pool's", figure("ratio.pools.process_vs_async_cpu"), 1.5, "<="),
    ("3", "round trip p50 / Celery-shaped floor p50",
     figure("ratio.tasks.rtt_p50_vs_celery_shaped_floor"), 1.5, "<="),
    ("3", "round trip p99 / Celery-shaped floor p99",
     figure("ratio.tasks.rtt_p99_vs_celery_shaped_floor"), 1.5, "<="),
    ("3", "round trip p50 / confirmed-result floor p50",
     figure("ratio.tasks.rtt_p50_vs_confirmed_result_floor"), None, ""),
    ("3", "round trip p99 / confirmed-result floor p99",
     figure("ratio.tasks.rtt_p99_vs_confirmed_result_floor"), None, ""),
    ("4", "enqueue, `send` in 64 lanes / raw confirmed publish", figure("ratio.tasks.enqueue_vs_raw_publish"), 0.75,
     ">="),
    ("4", "enqueue, a group of 1,000 / raw confirmed batch (as rates)",
     figure("ratio.canvas.group1000_publish_vs_raw", invert=True), 0.75, ">="),
    ("5", "drain, async pool / raw Celery-shaped consume", figure("ratio.tasks.drain_vs_raw_consume"), 0.8, ">="),
    ("6", "chain of 100 / (100 x Celery-shaped floor p50)",
     figure("ratio.canvas.chain100_vs_100x_floor"), 1.5, "<="),
    ("6", "group of 1,000 / raw fan-out and fan-in", figure("ratio.canvas.group1000_vs_raw"), 2.0, "<="),
    ("6", "chord of 1,000 / raw fan-out and fan-in", figure("ratio.canvas.chord1000_vs_raw"), 2.0, "<="),
    ("6", "chain of 1,000 / (10 x chain of 100): 1 is linear", figure("ratio.canvas.chain1000_vs_10x_chain100"),
     None, ""),
    ("7", "PSS, default worker -c 4 / Celery prefork -c 4", figure("ratio.memory.celeriac_vs_celery"), 0.25, "<="),
    ("7", "the same, statically linked (as Deploy/Dockerfile builds it)",
     figure("ratio.memory.celeriac_static_vs_celery"), 0.25, "<="),
    ("8", "compact drain / raw consume of plain messages that size", figure("ratio.compact.drain_vs_raw_plain"),
     0.75, ">="),
]


def parse(path):
    figures = {}
    with open(path) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) != 3 or "." not in parts[0]:
                continue
            try:
                figures[parts[0]] = float(parts[1])
            except ValueError:
                continue
    return figures


def table(runs):
    lines = [f"| target | figure | {' | '.join(f'run {i}' for i in range(1, len(runs) + 1))} | median | bound | met |",
             "|---|---|" + "---|" * len(runs) + "---|---|---|"]
    for target, what, compute, bound, op in ROWS:
        values = [compute(f) for f in runs]
        present = [v for v in values if v is not None]
        median = statistics.median(present) if present else None
        met = "-"
        if median is not None and bound is not None:
            met = "yes" if (median >= bound if op == ">=" else median <= bound) else "no"
        cells = " | ".join("-" if v is None else f"{v:.2f}" for v in values)
        lines.append(f"| {target} | {what} | {cells} | {'-' if median is None else f'{median:.2f}'} | "
                     f"{'-' if bound is None else f'{op} {bound}'} | {met} |")
    return "\n".join(lines)


def stages(python, bench, demo, static, broker, n, celery_n):
    base = ["--broker", broker]
    yield "amqp", [bench, "amqp", *base, "--n", str(n), "--rounds", "2000"]
    yield "tasks", [bench, "tasks", *base, "--n", str(n), "--rounds", "2000"]
    yield "canvas", [bench, "canvas", *base]
    for scenario in ("defaults", "pools", "compact"):
        yield scenario, [bench, scenario, *base, "--n", str(n), "--repeats", "1"]
    for pool in ("solo", "prefork", "threads"):
        skip = [] if pool == "solo" else ["--skip-enqueue"]
        yield f"celery {pool}", [python, os.path.join(HERE, "celery_bench.py"), *base, "--n", str(celery_n),
                                 "--pool", pool, *skip]
    memory = [python, os.path.join(HERE, "memory.py"), *base, "--celeriac", demo, "--n", str(n)]
    if os.access(static, os.X_OK):
        memory += ["--celeriac-static", static]
    else:
        note(f"{static} not found: memory of the dynamically linked worker only (make bench builds it)")
    yield "memory", memory


def measure(args):
    os.makedirs(args.dir, exist_ok=True)
    for old in os.listdir(args.dir):  # an earlier invocation's runs must not join this one's medians
        if old.startswith("run-") and old.endswith(".txt"):
            os.remove(os.path.join(args.dir, old))
    bench = os.path.join(args.bin_dir, "celeriac-bench")
    demo = os.path.join(args.bin_dir, "celeriac-demo")
    for tool in (bench, demo):
        if not os.access(tool, os.X_OK):
            sys.exit(f"targets: {tool} is missing; build it with: make bench (or swift build -c release --product "
                     f"{os.path.basename(tool)})")
    failed = 0
    for k in range(1, args.runs + 1):
        path = os.path.join(args.dir, f"run-{k}.txt")
        with open(path, "w") as out:
            for name, cmd in stages(args.python, bench, demo, args.static, args.broker, args.n, args.celery_n):
                note(f"run {k}/{args.runs}: {name}")
                done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
                out.write(done.stdout)
                out.flush()
                if done.returncode != 0:
                    failed += 1
                    note(f"run {k}: {name} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default=os.path.join(REPO, ".run", "targets"), help="where run-K.txt files go")
    ap.add_argument("--summarize", metavar="DIR", help="print the table from DIR's run-K.txt files; measure nothing")
    ap.add_argument("--broker", default=os.environ.get("CELERIAC_TEST_BROKER_URL",
                                                        "amqp://guest:guest@127.0.0.1:5682/%2F"))
    ap.add_argument("--bin-dir", default=os.path.join(REPO, ".build", "release"))
    ap.add_argument("--static", default=os.path.join(REPO, ".build-static", "release", "celeriac-demo"))
    ap.add_argument("--python", default=os.path.join(REPO, ".run", "venv", "bin", "python"),
                    help="the venv's Python, with Celery (scripts/bootstrap.sh makes it)")
    ap.add_argument("--n", type=int, default=20000, help="tasks per drain")
    ap.add_argument("--celery-n", type=int, default=5000, help="tasks per Celery pool")
    args = ap.parse_args()
    failed = 0
    directory = args.summarize
    if directory is None:
        if args.runs < 1:
            ap.error("--runs must be at least 1")
        failed = measure(args)
        directory = args.dir
    runs = sorted((f for f in os.listdir(directory) if f.startswith("run-") and f.endswith(".txt")),
                  key=lambda f: int(f[4:-4]) if f[4:-4].isdigit() else 0)
    if not runs:
        sys.exit(f"targets: no run-K.txt in {directory}")
    print(table([parse(os.path.join(directory, f)) for f in runs]))
    if failed:
        note(f"{failed} stage(s) failed; their figures are '-'")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
