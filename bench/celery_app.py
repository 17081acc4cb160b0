"""Python Celery reference app for the Celeriac benchmarks.

Environment:
  CELERIAC_BENCH_BROKER              broker URL (default amqp://guest:guest@127.0.0.1:5682/%2F)
  CELERIAC_BENCH_QUEUE               queue name (default celery-bench), used as task_default_queue
  CELERIAC_BENCH_PREFETCH_MULTIPLIER worker_prefetch_multiplier (default 4)
  CELERIAC_BENCH_ACKS_LATE           "1" to set task_acks_late (default off)
  CELERIAC_BENCH_RESULT_BACKEND      result backend URL (default rpc://); the canvas bench sets a
                                     redis:// URL for its chord phase (rpc:// refuses chords)

Worker:  cd bench && celery -A celery_app worker -P solo -Q celery-bench
"""
import os

from celery import Celery

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5682/%2F"
QUEUE = os.environ.get("CELERIAC_BENCH_QUEUE", "celery-bench")


def make_app(confirm_publish=False, broker=None, result_backend=None):
    """Build the benchmark app. `confirm_publish=True` turns on publisher confirms
    (kombu waits for each publish to be confirmed). `result_backend` overrides
    CELERIAC_BENCH_RESULT_BACKEND (default rpc://)."""
    a = Celery("celeriac_bench")
    conf = dict(
        broker_url=broker or os.environ.get("CELERIAC_BENCH_BROKER", DEFAULT_BROKER),
        result_backend=result_backend or os.environ.get("CELERIAC_BENCH_RESULT_BACKEND", "rpc://"),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_default_queue=QUEUE,
        task_acks_late=os.environ.get("CELERIAC_BENCH_ACKS_LATE", "0").lower() in ("1", "true", "yes"),
        worker_prefetch_multiplier=int(os.environ.get("CELERIAC_BENCH_PREFETCH_MULTIPLIER", "4")),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    if confirm_publish:
        conf["broker_transport_options"] = {"confirm_publish": True}
    a.conf.update(conf)

    @a.task(name="demo.noop", shared=False)
    def noop():
        return None

    @a.task(name="demo.add", shared=False)
    def add(x, y):
        return x + y

    @a.task(name="demo.xsum", shared=False)
    def xsum(numbers):
        return sum(numbers)

    return a


app = make_app()
noop = app.tasks["demo.noop"]
add = app.tasks["demo.add"]
xsum = app.tasks["demo.xsum"]
