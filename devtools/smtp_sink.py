"""A real SMTP server (aiosmtpd) that stores every accepted message as a file.

    python -m devtools.smtp_sink --port 8025 [--dir var/mail] [--fail-first N --fail-code 451]
    python -m devtools.smtp_sink --port 8025 --fail-code 550 --fail-first -1   # reject everything
    SMTP_SINK_FAIL_CODE=451 python -m devtools.smtp_sink --port 8025            # the same, from the env
    SMTP_SINK_FAIL_CODE=451 SMTP_SINK_FAIL_FIRST=4 python -m devtools.smtp_sink  # reject 4, then accept
    python -m devtools.smtp_sink --port 8025 --delay-ms 50    # answer each message after 50 ms
    SMTP_SINK_FAIL_CODE=451 SMTP_SINK_FAIL_SECONDS=120 python -m devtools.smtp_sink  # an outage of 2 min
    python -m devtools.smtp_sink --fail-address nobody@example.com=550   # reject one recipient
    python -m devtools.smtp_sink --port 8025 --smtputf8       # offer SMTPUTF8 (jürgen@example.de)
    SMTP_SINK_SMTPUTF8=1 python -m devtools.smtp_sink         # the same, from the env (make run)

SMTPUTF8 is off by default, like aiosmtpd's (and many real servers): a mail to
a non-ASCII local part is then refused before it is sent, as that delivery's
permanent failure. Turn it on to see such mail delivered.

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
from typing import Any

from aiosmtpd.controller import Controller

from config.settings import var_dir

VAR_DIR = var_dir()  # devtools read the environment directly (they are not the app)


class ScriptedHandler:
    def __init__(self, mail_dir: Path, *, fail_first: int = 0, fail_code: int = 451,
                 delay_seconds: float = 0.0, fail_seconds: float = 0.0,
                 fail_addresses: dict[str, int] | None = None) -> None:
        self.mail_dir = mail_dir
        self.delay_seconds = delay_seconds  # a realistic mail server takes time per message
        self.fail_first = fail_first  # -1: fail every message
        self.fail_code = fail_code
        # An outage: every message gets fail_code until this monotonic time (0: none).
        self.fail_until = time.monotonic() + fail_seconds if fail_seconds else 0.0
        # Recipient address (lower case) -> the code its messages get, whatever else happens.
        self.fail_addresses = {k.lower(): v for k, v in (fail_addresses or {}).items()}
        self.attempts: list[float] = []  # monotonic time of every DATA, accepted or not
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        with self._lock:
            now = time.monotonic()
            self.attempts.append(now)
            failing = self.fail_first < 0 or len(self.attempts) <= self.fail_first or now < self.fail_until
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        code = next((self.fail_addresses[r.lower()] for r in envelope.rcpt_tos
                     if r.lower() in self.fail_addresses), None)
        if code is not None:
            return f"{code} scripted failure for this address ({'try later' if code < 500 else 'rejected'})"
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
                 delay_seconds: float = 0.0, fail_seconds: float = 0.0,
                 fail_addresses: dict[str, int] | None = None, smtputf8: bool = False,
                 size_limit: int | None = None, host: str = "127.0.0.1"):
        from devtools.ports import free_port

        self.host = host  # another address for hosts in network namespaces (tests/hosts)
        self.smtputf8 = smtputf8  # offer SMTPUTF8 in the EHLO reply (aiosmtpd's enable_SMTPUTF8)
        self.size_limit = size_limit  # advertised as SIZE; larger messages get 552

        self.handler = ScriptedHandler(mail_dir, fail_first=fail_first, fail_code=fail_code,
                                       delay_seconds=delay_seconds, fail_seconds=fail_seconds,
                                       fail_addresses=fail_addresses)
        self.port = port or free_port()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def messages(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted(self.handler.mail_dir.glob("*.eml"))]

    def start(self) -> None:
        # A stopped aiosmtpd Controller cannot start again: make a new one each time.
        options: dict[str, Any] = {"enable_SMTPUTF8": self.smtputf8}
        if self.size_limit is not None:
            options["data_size_limit"] = self.size_limit
        self.controller = Controller(self.handler, hostname=self.host, port=self.port, **options)
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
    fail_seconds = float(os.environ.get("SMTP_SINK_FAIL_SECONDS") or 0)
    # With SMTP_SINK_FAIL_SECONDS the outage is timed: no message count on top of it.
    fail_first = int(os.environ.get("SMTP_SINK_FAIL_FIRST") or -1) if fail_code and not fail_seconds else 0
    parser.add_argument("--fail-first", type=int, default=fail_first,
                        help="answer the first N messages with --fail-code (-1: all)")
    parser.add_argument("--fail-code", type=int, default=int(fail_code or 451))
    parser.add_argument("--fail-seconds", type=float, default=fail_seconds,
                        help="answer every message with --fail-code for this long after start (an outage)")
    parser.add_argument("--fail-address", action="append", default=[], metavar="ADDRESS=CODE",
                        help="answer messages to ADDRESS with CODE (repeatable)")
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="wait this long before answering each message (a realistic server)")
    smtputf8 = os.environ.get("SMTP_SINK_SMTPUTF8", "").strip().lower() in {"1", "true", "yes", "on"}
    parser.add_argument("--smtputf8", action=argparse.BooleanOptionalAction, default=smtputf8,
                        help="offer SMTPUTF8, so non-ASCII local parts can be sent (default: off)")
    args = parser.parse_args()
    addresses = {address: int(code) for address, _, code in (a.rpartition("=") for a in args.fail_address)}
    with SmtpSink(args.dir, port=args.port, fail_first=args.fail_first, fail_code=args.fail_code,
                  delay_seconds=args.delay_ms / 1000, fail_seconds=args.fail_seconds,
                  fail_addresses=addresses, smtputf8=args.smtputf8):
        utf8 = "on" if args.smtputf8 else "off"
        print(f"SMTP sink on 127.0.0.1:{args.port}, SMTPUTF8 {utf8}, storing mail in {args.dir}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
