"""A Python Celery client with the OpenTelemetry SDK calls a task that a Celeriac worker runs.

Prints one JSON line: the trace id, the ids of the request span and of the instrumentation's publish span
(`apply_async/cv.add`), the traceparent header sent, and the result.
"""
import json

from opentelemetry import trace

from trace_app import EXPORTER, PROVIDER, app


@app.task(name="cv.add")
def add(x, y):  # the Celeriac worker runs it; Python only needs the name for the instrumentation
    raise RuntimeError("run by the Celeriac worker, never here")


tracer = PROVIDER.get_tracer("celeriac.interop")
with tracer.start_as_current_span("web-request") as request:
    result = add.apply_async((2, 3))
value = result.get(timeout=60)
spans = EXPORTER.get_finished_spans()
publish = [s for s in spans if s.name == "apply_async/cv.add"]
ctx = request.get_span_context()
print(json.dumps({
    "trace_id": format(ctx.trace_id, "032x"),
    "request_span_id": format(ctx.span_id, "016x"),
    "publish_span_id": format(publish[0].context.span_id, "016x") if publish else None,
    "publish_parent_span_id": format(publish[0].parent.span_id, "016x") if publish and publish[0].parent else None,
    "result": value,
}), flush=True)
