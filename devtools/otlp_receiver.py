"""A local OTLP/HTTP trace receiver: somewhere for `make run`'s processes to send their spans.

    python -m devtools.otlp_receiver [--port 4318] [--file var/traces.jsonl]
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 make run       # in another terminal
    python -m devtools.otlp_receiver show --order <order id>          # that order's trace, as a tree
    python -m devtools.otlp_receiver show                             # the latest trace

It accepts what the OpenTelemetry SDK's OTLP/HTTP exporter sends (`POST /v1/traces`,
protobuf, gzip or not), prints one line per span and appends each span as one JSON
line to the file, so `show` reads them afterwards from any terminal. `GET /traces`
answers every span received, grouped by trace id (JSON). A stand-in for a collector,
Jaeger or Tempo on a laptop: no storage limits, no UI.

Tests start it in-process: `with OtlpReceiver(path) as receiver: ... receiver.traces()`.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from config.settings import var_dir
from devtools.trace_tree import Span, add_show_parser, group, show

DEFAULT_PORT = 4318  # OTLP/HTTP's registered port


def _parse(body: bytes) -> Any:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return request


def decode(body: bytes) -> list[Span]:
    """The spans of one ExportTraceServiceRequest, as plain dicts (ids in hex)."""
    spans = []
    for resource_spans in _parse(body).resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append({
                    "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex() or None, "name": span.name,
                    "service": resource.get("service.name", "?"), "start_ns": span.start_time_unix_nano,
                    "end_ns": span.end_time_unix_nano,
                    "attributes": {a.key: _value(a.value) for a in span.attributes},
                })
    return spans


def count_spans(body: bytes) -> int:
    return sum(len(scope.spans) for resource in _parse(body).resource_spans for scope in resource.scope_spans)


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    if kind == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, kind) if kind else None


def read_spans(path: Path) -> list[Span]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class OtlpReceiver:
    """An OTLP/HTTP server on 127.0.0.1:<port> keeping every span in memory and in `path`."""

    def __init__(self, path: Path | None = None, *, port: int = 0, echo: bool = False,
                 keep: bool = True) -> None:
        self.path = path
        self.echo = echo  # print one line per span (the command line's receiver)
        # keep=False only counts what arrives (bench/tracing_cost.py: a collector costs the senders
        # nothing but the export; decoding every span here would take CPU from the pipeline measured).
        self.keep = keep
        self.received = 0
        self._spans: list[Span] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """What OTEL_EXPORTER_OTLP_ENDPOINT is set to (the exporter adds /v1/traces)."""
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def traces(self) -> dict[str, list[Span]]:
        return group(self.spans())

    def count(self, n: int) -> None:
        with self._lock:
            self.received += n

    def add(self, spans: list[Span]) -> None:
        with self._lock:
            self.received += len(spans)
            self._spans += spans
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a") as out:
                    out.writelines(json.dumps(s, sort_keys=True) + "\n" for s in spans)
        if self.echo:
            for s in spans:
                attributes = " ".join(f"{k.removeprefix('orderflow.')}={v}"
                                      for k, v in s["attributes"].items())
                print(f"{s['trace_id']} {s['service']} {s['name']}  {attributes}", flush=True)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OtlpReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_for(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.rstrip("/") != "/v1/traces":
                return self._answer(404, b'{"error": "only POST /v1/traces"}', "application/json")
            if "protobuf" not in (self.headers.get("Content-Type") or ""):
                return self._answer(415, b'{"error": "send application/x-protobuf"}', "application/json")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                body = gzip.decompress(body)
            try:
                if receiver.keep:
                    receiver.add(decode(body))
                else:
                    receiver.count(count_spans(body))
            except Exception as exc:  # noqa: BLE001 - a bad body is the sender's error
                return self._answer(400, json.dumps({"error": f"not an OTLP trace export: {exc}"}).encode(),
                                    "application/json")
            # An empty ExportTraceServiceResponse: all accepted.
            self._answer(200, b"", "application/x-protobuf")

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") != "/traces":
                return self._answer(404, b'{"error": "only GET /traces"}', "application/json")
            self._answer(200, json.dumps(receiver.traces()).encode(), "application/json")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - one line per span is enough
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.otlp_receiver",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--file", type=Path, default=var_dir() / "traces.jsonl",
                        help="where spans are appended, one JSON line each (default: var/traces.jsonl)")
    add_show_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    if args.command == "show":
        return show(read_spans(args.file), order=args.order, trace=args.trace)
    with OtlpReceiver(args.file, port=args.port, echo=True) as receiver:
        print(f"OTLP/HTTP receiver on {receiver.url}/v1/traces, spans kept in {args.file}\n"
              f"  start the system with: OTEL_EXPORTER_OTLP_ENDPOINT={receiver.url} make run", flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop quietly
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
