"""devtools/otlp_receiver.py receives what the OpenTelemetry SDK's OTLP/HTTP exporter sends,
keeps it, and `show` prints a trace as the tree docs/operations.md draws."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from devtools.otlp_receiver import OtlpReceiver, main, read_spans


def send_a_trace(endpoint: str, compression: Compression) -> str:
    provider = TracerProvider(resource=Resource.create({"service.name": "orderflow-test"}))
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", compression=compression)))
    tracer = provider.get_tracer("test")
    published = {"orderflow.outcome": "published"}
    with tracer.start_as_current_span("POST /orders", attributes={"orderflow.order_id": "o-1"}) as request, \
            tracer.start_as_current_span("publish order.created", attributes=published):
        for attempt, outcome in ((1, "retrying"), (2, "succeeded")):
            attributes = {"orderflow.consumer": "email", "orderflow.attempt": attempt,
                          "orderflow.outcome": outcome}
            with tracer.start_as_current_span("deliver email", attributes=attributes):
                pass
    provider.shutdown()
    return format(request.get_span_context().trace_id, "032x")


def test_spans_from_the_sdk_exporter_are_kept_grouped_by_trace_and_shown_as_a_tree(tmp_path, capsys):
    path = tmp_path / "traces.jsonl"
    with OtlpReceiver(path) as receiver:
        plain = send_a_trace(receiver.url, Compression.NoCompression)
        zipped = send_a_trace(receiver.url, Compression.Gzip)
        with urllib.request.urlopen(f"{receiver.url}/traces", timeout=5) as response:
            grouped = json.load(response)

    assert set(grouped) == {plain, zipped}
    spans = grouped[plain]
    assert [s["name"] for s in spans] == ["POST /orders", "publish order.created", "deliver email",
                                          "deliver email"]
    assert spans[0]["service"] == "orderflow-test" and spans[0]["parent_span_id"] is None
    assert spans[2]["parent_span_id"] == spans[1]["span_id"]
    assert spans[3]["attributes"] == {"orderflow.consumer": "email", "orderflow.attempt": 2,
                                      "orderflow.outcome": "succeeded"}
    assert len(read_spans(path)) == 8  # kept on disk for `show` in another terminal

    assert main(["--file", str(path), "show", "--trace", plain]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"trace {plain}  (4 spans")
    assert lines[1].startswith("POST /orders") and "order_id=o-1" in lines[1]
    assert lines[2].startswith("└─ publish order.created") and "outcome=published" in lines[2]
    assert lines[3].startswith("   ├─ deliver email") and "attempt=1 outcome=retrying" in lines[3]
    assert lines[4].startswith("   └─ deliver email") and "attempt=2 outcome=succeeded" in lines[4]

    assert main(["--file", str(path), "show", "--order", "nope"]) == 1
    assert capsys.readouterr().out.startswith("no spans received for order nope yet (8 span(s) in all)")


def test_anything_but_an_otlp_protobuf_export_is_refused(tmp_path):
    with OtlpReceiver(tmp_path / "traces.jsonl") as receiver:
        for content_type, body, status in (("application/json", b"{}", 415),
                                           ("application/x-protobuf", b"\xff\xff\xff", 400)):
            request = urllib.request.Request(f"{receiver.url}/v1/traces", data=body, method="POST",
                                             headers={"Content-Type": content_type})
            try:
                urllib.request.urlopen(request, timeout=5)
            except urllib.error.HTTPError as error:
                assert error.code == status
            else:
                raise AssertionError(f"{content_type} accepted")
        assert receiver.spans() == []
