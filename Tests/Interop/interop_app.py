"""A Python Celery app for Celeriac's interop tests (real Celery from PyPI).

Broker and queue come from the environment: CELERIAC_INTEROP_BROKER, CELERIAC_INTEROP_QUEUE.
"""
import os

from celery import Celery

app = Celery(
    "interop",
    broker=os.environ.get("CELERIAC_INTEROP_BROKER", "amqp://guest:guest@127.0.0.1:5682//"),
    backend="rpc://",
)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_default_queue=os.environ.get("CELERIAC_INTEROP_QUEUE", "celery"),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="interop.add")
def add(x, y):
    return x + y


@app.task(name="interop.echo")
def echo(value):
    return value


@app.task(name="interop.fail")
def fail(message):
    raise ValueError(message)
