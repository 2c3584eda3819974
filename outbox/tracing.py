"""One trace per order: OpenTelemetry, off unless configured, and free when off.

`configure(endpoint, service_name)` (called by the entry points with
OTEL_EXPORTER_OTLP_ENDPOINT) loads the SDK and an OTLP/HTTP exporter; without an
endpoint nothing of OpenTelemetry is even imported, and every function below returns
at its first line (`_tracer is None`). `use_provider` lets tests hand in their own
(an InMemorySpanExporter).

How the trace travels: the request's span context is stored with the outbox row as a
W3C `traceparent` (`outbox.trace_context`); the publisher opens a `publish` span as
its child and carries *that* context in the Celery message headers
(`HEADER`: event id -> traceparent, so a batch carries one per member); every
delivery attempt, each retry and each batch member, is a span under it. Attributes
are ids, consumer names, attempt numbers and outcomes: never a customer's name or
address.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

HEADER = "orderflow_trace"

_tracer: Any = None
_provider: Any = None


def enabled() -> bool:
    return _tracer is not None


def configure(endpoint: str | None, service_name: str = "orderflow") -> None:
    """Send spans to `endpoint` (OTLP/HTTP, `<endpoint>/v1/traces`); None leaves tracing off."""
    if not endpoint or _tracer is not None:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    # A short delay: worker processes may exit without flushing, and an operator wants the trace now.
    provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces"), schedule_delay_millis=500))
    use_provider(provider)


def use_provider(provider: Any) -> None:
    """Trace with this TracerProvider (tests: one with an in-memory exporter); None turns tracing off."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("orderflow") if provider is not None else None


def flush() -> None:
    if _provider is not None:
        _provider.force_flush()


def shutdown() -> None:
    """Export what is pending, stop the exporter's thread, and turn tracing off (a process that
    traced one run and goes on untraced: bench/pipeline.py)."""
    provider = _provider
    use_provider(None)
    if provider is not None:
        provider.shutdown()


def _context_of(traceparent: str | None) -> Any:
    if not traceparent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def traceparent_of(span: Any = None) -> str | None:
    """The W3C traceparent of `span` (default: the current one), or None when off."""
    if _tracer is None:
        return None
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    context = trace.set_span_in_context(span) if span is not None else None
    TraceContextTextMapPropagator().inject(carrier, context=context)
    return carrier.get("traceparent")


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id inside a stored traceparent (`00-<trace id>-<span id>-<flags>`)."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


@contextmanager
def span(name: str, *, parent: str | None = None, kind: str = "internal",
         attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A current span (child of `parent`, a traceparent, else of the current one); None when off."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    with _tracer.start_as_current_span(name, context=_context_of(parent), kind=SpanKind[kind.upper()],
                                       attributes=dict(attributes or {})) as current:
        yield current


def start(name: str, *, parent: str | None, kind: str = "consumer",
          attributes: Mapping[str, Any] | None = None) -> Any:
    """A span that is not made current (a batch member's), to `end` later; None when off."""
    if _tracer is None:
        return None
    from opentelemetry.trace import SpanKind

    return _tracer.start_span(name, context=_context_of(parent), kind=SpanKind[kind.upper()],
                              attributes=dict(attributes or {}))


def annotate(target: Any = None, **attributes: Any) -> None:
    """Set attributes on `target` (default: the current span); nothing when off."""
    if _tracer is None:
        return
    if target is None:
        from opentelemetry import trace

        target = trace.get_current_span()
    for key, value in attributes.items():
        if value is not None:
            target.set_attribute(f"orderflow.{key}", value)


def end(target: Any, *, outcome: str) -> None:
    if target is not None:
        annotate(target, outcome=outcome)
        target.end()
