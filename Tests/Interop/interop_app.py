"""A Python Celery app for Celeriac's interop tests (real Celery from PyPI).

Broker and queue come from the environment: CELERIAC_INTEROP_BROKER, CELERIAC_INTEROP_QUEUE.
"""

from app_config import make_app

app = make_app("interop")


@app.task(name="interop.add")
def add(x, y):
    return x + y


@app.task(name="interop.echo")
def echo(value):
    return value


@app.task(name="interop.fail")
def fail(message):
    raise ValueError(message)


@app.task(name="interop.count", bind=True)
def count(self, n):
    """Reports PROGRESS {"current": i, "total": n} at each step, then a state of its own, for a Celeriac client."""
    import time

    for i in range(n + 1):
        self.update_state(state="PROGRESS", meta={"current": i, "total": n})
        time.sleep(0.15)
    self.update_state(state="UPLOADING", meta={"file": "report.csv"})
    time.sleep(0.15)
    return n
