"""`python -m devtools.otlp_receiver show`: the received traces as trees, one line per span.

    trace 9236b9aed02dea9ac6f1119434085f97  (7 spans, 1.0 s)
    POST /orders                 + 0.00s  order_id=e40fe785-… event_id=6bedd1b5-…
    └─ publish order.created     + 0.06s  outcome=published
       ├─ deliver analytics      + 0.28s  consumer=analytics attempt=1 outcome=succeeded delivery_id=1
       ├─ deliver email          + 0.35s  consumer=email attempt=1 outcome=retrying delivery_id=3
       ...
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

Span = dict[str, Any]  # as devtools/otlp_receiver.py decodes it

# Shown on each line when present, in this order (the rest is in the JSON file).
SHOWN = ("consumer", "attempt", "outcome", "delivery_id", "order_id", "event_id", "batch_size")


def add_show_parser(commands: Any) -> None:
    show_parser = commands.add_parser("show", help="print the received traces as trees")
    which = show_parser.add_mutually_exclusive_group()
    which.add_argument("--order", help="the trace of this order id (its POST /orders span names it)")
    which.add_argument("--trace", help="this trace id")


def group(spans: list[Span]) -> dict[str, list[Span]]:
    """Trace id -> its spans, oldest first."""
    traces: dict[str, list[Span]] = defaultdict(list)
    for span in sorted(spans, key=lambda s: s["start_ns"]):
        traces[span["trace_id"]].append(span)
    return dict(traces)


def pick(spans: list[Span], *, order: str | None = None, trace: str | None = None) -> dict[str, list[Span]]:
    """The traces asked for: of an order, by id, or else the latest one."""
    traces = group(spans)
    if trace:
        return {trace: traces[trace]} if trace in traces else {}
    if order:
        return {t: s for t, s in traces.items()
                if any(span["attributes"].get("orderflow.order_id") == order for span in s)}
    return dict(list(traces.items())[-1:])


def render(trace_id: str, spans: list[Span]) -> list[str]:
    start = min(s["start_ns"] for s in spans)
    took = (max(s["end_ns"] for s in spans) - start) / 1e9
    lines = [f"trace {trace_id}  ({len(spans)} spans, {took:.1f} s)"]
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[Span]] = {}
    for span in spans:  # already oldest first
        parent = span["parent_span_id"] if span["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(span)

    def walk(parent: str | None, prefix: str) -> None:
        kids = children.get(parent, [])
        for i, span in enumerate(kids):
            last = i == len(kids) - 1
            branch = "" if parent is None else ("└─ " if last else "├─ ")
            offset = (span["start_ns"] - start) / 1e9
            lines.append(f"{prefix}{branch}{span['name']:<{max(1, 28 - len(prefix + branch))}} "
                         f"+{offset:5.2f}s  {_attributes(span, root=parent is None)}".rstrip())
            walk(span["span_id"], prefix + ("" if parent is None else ("   " if last else "│  ")))

    walk(None, "")
    return lines


def _attributes(span: Span, *, root: bool) -> str:
    attributes = span["attributes"]
    # One event per trace: its id once, on the first line, is enough.
    shown = SHOWN if root else [key for key in SHOWN if key != "event_id"]
    return " ".join(f"{key}={attributes[f'orderflow.{key}']}" for key in shown
                    if f"orderflow.{key}" in attributes)


def show(spans: list[Span], *, order: str | None = None, trace: str | None = None) -> int:
    chosen = pick(spans, order=order, trace=trace)
    if not chosen:
        what = f"order {order}" if order else f"trace {trace}" if trace else "any trace"
        print(f"no spans received for {what} yet ({len(spans)} span(s) in all)")
        return 1
    for trace_id, trace_spans in chosen.items():
        print("\n".join(render(trace_id, trace_spans)))
    return 0
