"""A real HTTP server (werkzeug, one thread per request) serving a WSGI app in a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server

from devtools.ports import free_port


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Yield the base URL while `app` is served on a free port; stopped afterwards."""
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
