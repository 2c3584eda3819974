"""A real SMTP server (aiosmtpd) that stores every accepted message as a file.

    python -m devtools.smtp_sink --port 8025 [--dir var/mail] [--fail-first N --fail-code 451]
    python -m devtools.smtp_sink --port 8025 --fail-code 550 --fail-first -1   # reject everything
    SMTP_SINK_FAIL_CODE=451 python -m devtools.smtp_sink --port 8025            # the same, from the env
    SMTP_SINK_FAIL_CODE=451 SMTP_SINK_FAIL_FIRST=4 python -m devtools.smtp_sink  # reject 4, then accept
    python -m devtools.smtp_sink --port 8025 --delay-ms 50    # answer each message after 50 ms

Tests start it in-process with `SmtpSink(...)` to script failures: the first
`fail_first` messages get `fail_code`, the rest are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller

from config.settings import var_dir

VAR_DIR = var_dir()  # devtools read the environment directly (they are not the app)


class ScriptedHandler:
    def __init__(self, mail_dir: Path, *, fail_first: int = 0, fail_code: int = 451,
                 delay_seconds: float = 0.0) -> None:
        self.mail_dir = mail_dir
        self.delay_seconds = delay_seconds  # a realistic mail server takes time per message
        self.fail_first = fail_first  # -1: fail every message
        self.fail_code = fail_code
        self.attempts: list[float] = []  # monotonic time of every DATA, accepted or not
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        with self._lock:
            self.attempts.append(time.monotonic())
            failing = self.fail_first < 0 or len(self.attempts) <= self.fail_first
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if failing:
            reason = "try later" if self.fail_code < 500 else "rejected"
            return f"{self.fail_code} scripted failure ({reason})"
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        name = f"{time.time():.6f}-{uuid.uuid4().hex[:8]}.eml"
        (self.mail_dir / name).write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1:<port> with a ScriptedHandler."""

    def __init__(self, mail_dir: Path, *, port: int = 0, fail_first: int = 0, fail_code: int = 451,
                 delay_seconds: float = 0.0, host: str = "127.0.0.1"):
        from devtools.ports import free_port

        self.host = host  # another address for hosts in network namespaces (tests/hosts)

        self.handler = ScriptedHandler(mail_dir, fail_first=fail_first, fail_code=fail_code,
                                       delay_seconds=delay_seconds)
        self.port = port or free_port()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def messages(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted(self.handler.mail_dir.glob("*.eml"))]

    def start(self) -> None:
        # A stopped aiosmtpd Controller cannot start again: make a new one each time.
        self.controller = Controller(self.handler, hostname=self.host, port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="SMTP sink storing mail as .eml files")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", type=Path, default=VAR_DIR / "mail")
    # SMTP_SINK_FAIL_CODE=451 (or 550) makes `make run`'s sink reject messages: every one, or
    # the first SMTP_SINK_FAIL_FIRST of them.
    fail_code = os.environ.get("SMTP_SINK_FAIL_CODE")
    fail_first = int(os.environ.get("SMTP_SINK_FAIL_FIRST") or -1) if fail_code else 0
    parser.add_argument("--fail-first", type=int, default=fail_first,
                        help="answer the first N messages with --fail-code (-1: all)")
    parser.add_argument("--fail-code", type=int, default=int(fail_code or 451))
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="wait this long before answering each message (a realistic server)")
    args = parser.parse_args()
    with SmtpSink(args.dir, port=args.port, fail_first=args.fail_first, fail_code=args.fail_code,
                  delay_seconds=args.delay_ms / 1000):
        print(f"SMTP sink on 127.0.0.1:{args.port}, storing mail in {args.dir}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
