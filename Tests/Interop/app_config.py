"""Celery apps for Celeriac's interop tests, all set up alike (JSON, rpc:// results, broker and queue from the
environment: CELERIAC_INTEROP_BROKER, CELERIAC_INTEROP_QUEUE)."""
import os

from celery import Celery


def make_app(name):
    """A Celery app set up as Celeriac's interop tests need it: JSON, rpc:// results, broker and queue from the env."""
    made = Celery(
        name,
        broker=os.environ.get("CELERIAC_INTEROP_BROKER", "amqp://guest:guest@127.0.0.1:5682//"),
        backend="rpc://",
    )
    made.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_default_queue=os.environ.get("CELERIAC_INTEROP_QUEUE", "celery"),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    if os.environ.get("CELERIAC_INTEROP_COMPACT"):
        # The queue as Celeriac declares a compact-form queue: a Celery worker may share it only with the same
        # argument (RabbitMQ refuses an inequivalent declaration), and then rejects into Celeriac's dead letters.
        from kombu import Exchange, Queue

        name = made.conf.task_default_queue
        made.conf.task_queues = [
            Queue(name, Exchange(name, type="direct"), routing_key=name,
                  queue_arguments={"x-dead-letter-exchange": "celeriac.dlx"}),
        ]
    return made
