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
