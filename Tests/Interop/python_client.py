"""Python Celery client against a Celeriac worker. Prints one JSON line per check; exits 1 if any failed.

The Celeriac worker runs the `it.*` tasks of Tests/IntegrationTests/WorkerTests.swift on CELERIAC_INTEROP_QUEUE.
"""
import time

from celery.exceptions import NotRegistered  # noqa: F401  (the class Celery synthesizes for the failure)

from interop_app import app
from interop_checks import run_checks

QUEUE = app.conf.task_default_queue
def send(name, *args, **options):
    return app.send_task(name, args=args, queue=QUEUE, **options)


def positional():
    v = send("it.add", 2, 3).get(timeout=30)
    return v == 5, v


def keywords():
    v = app.send_task("it.add", kwargs={"x": 2, "y": 3}, queue=QUEUE).get(timeout=30)
    return v == 5, v


NESTED = {"list": [1, 2.5, None, True, "h\u00e9llo \u2713 \U0001F600"], "big": 2**62, "neg": -(2**40), "float": 0.1,
          "null": None, "nested": {"deep": [[], {}, [{"k": "v"}]]}, "empty": ""}


def echo_nested():
    v = send("it.echo", NESTED).get(timeout=30)
    return v == NESTED, v


def failure():
    try:
        send("it.fail", "boom").get(timeout=30)
    except ValueError as exc:
        return str(exc) == "boom", repr(exc)
    return False, "no exception"


def wrong_type():
    try:
        send("it.add", "two", 3).get(timeout=30)
    except TypeError as exc:
        return "argument 'x'" in str(exc), repr(exc)
    return False, "no exception"


def unknown_task():
    try:
        send("it.no-such-task", 1).get(timeout=30)
    except Exception as exc:
        return type(exc).__name__ == "NotRegistered", repr(exc)
    return False, "no exception"


def flaky():
    r = send("it.flaky", 2)
    v = r.get(timeout=30)
    return v == 2, v


def countdown():
    t0 = time.time()
    v = app.send_task("it.add", args=(1, 1), queue=QUEUE, countdown=2).get(timeout=30)
    elapsed = time.time() - t0
    return v == 2 and elapsed >= 1.9, f"value={v} elapsed={elapsed:.2f}"


def expires():
    v = app.send_task("it.add", args=(3, 4), queue=QUEUE, expires=60).get(timeout=30)
    return v == 7, v


def many_in_random_order():
    import random
    rs = [(i, send("it.add", i, i)) for i in range(50)]
    random.shuffle(rs)
    bad = [i for i, r in rs if r.get(timeout=30) != 2 * i]
    return not bad, f"wrong: {bad}"


def chain_add_mul():
    """chain(add.s(2, 2), mul.s(4)): one message; the Celeriac worker publishes the next step itself."""
    from celery import chain
    c = chain(app.signature("it.add", args=(2, 2), queue=QUEUE), app.signature("it.mul", args=(4,), queue=QUEUE))
    v = c.apply_async().get(timeout=30)
    return v == 16, v


def group_add():
    from celery import group
    g = group(app.signature("it.add", args=(i, i), queue=QUEUE) for i in range(20))
    v = g.apply_async().get(timeout=30)
    return v == [2 * i for i in range(20)], v


def chain_into_group():
    """A group as the last step of a chain (no join needed, so rpc:// allows it)."""
    from celery import chain, group
    c = chain(app.signature("it.add", args=(1, 1), queue=QUEUE),
              group(app.signature("it.mul", args=(10,), queue=QUEUE), app.signature("it.mul", args=(100,), queue=QUEUE)))
    r = c.apply_async()
    v = r.get(timeout=30)
    return v == [20, 200], v


run_checks([("positional", positional), ("keywords", keywords), ("echo_nested", echo_nested),
            ("failure", failure), ("wrong_type", wrong_type), ("unknown_task", unknown_task),
            ("flaky", flaky), ("countdown", countdown), ("expires", expires),
            ("many_in_random_order", many_in_random_order), ("chain_add_mul", chain_add_mul),
            ("group_add", group_add), ("chain_into_group", chain_into_group)])
