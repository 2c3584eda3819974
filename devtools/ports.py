"""Local TCP ports: a free one, waiting for one to listen, and the ones `make run` remembers."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the servers do: a port whose last server just stopped (connections in
        # TIME_WAIT) is free for a new one.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for_port(port: int, *, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


def remembered_port(name: str, memory: Path, *, preferred: int | None = None) -> int:
    """A port for the local server `name`, the same as last time when it is still free.

    `memory` (var/ports.json) maps names to ports, so that URLs printed by
    `make run` (and exported in another terminal) stay valid across restarts.
    """
    ports = read_ports(memory)
    for candidate in (ports.get(name), preferred):
        if candidate and port_is_free(candidate):
            port = candidate
            break
    else:
        port = free_port()
    if ports.get(name) != port:
        ports[name] = port
        memory.parent.mkdir(parents=True, exist_ok=True)
        tmp = memory.with_suffix(".tmp")
        tmp.write_text(json.dumps(ports, indent=2, sort_keys=True) + "\n")
        tmp.replace(memory)
    return port


def read_ports(memory: Path) -> dict[str, int]:
    try:
        stored = json.loads(memory.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in stored.items() if isinstance(v, int)} if isinstance(stored, dict) else {}
