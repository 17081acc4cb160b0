"""A Python Celery app instrumented with OpenTelemetry (opentelemetry-instrumentation-celery), for Celeriac's
cross-language tracing tests. Spans go to an in-memory exporter (EXPORTER); nothing leaves the process.

Broker and queue come from the environment: CELERIAC_INTEROP_BROKER, CELERIAC_INTEROP_QUEUE.
"""

from app_config import make_app
from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(PROVIDER)
CeleryInstrumentor().instrument(tracer_provider=PROVIDER)

app = make_app("trace_interop")


def hex_span(ctx):
    return None if ctx is None else format(ctx.span_id, "016x")


@app.task(name="trace.whoami")
def whoami():
    """Run by a Python worker: reports the consumer span this run is in, and its parent."""
    span = trace.get_current_span()
    ctx = span.get_span_context()
    parent = getattr(span, "parent", None)
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": hex_span(ctx), "parent_span_id": hex_span(parent),
            "name": getattr(span, "name", None)}
