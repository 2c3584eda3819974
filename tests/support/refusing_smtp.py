"""An SMTP sink that answers MAIL FROM / RCPT TO with scripted codes, per address.

What a real server does to one message (a recipient unknown, greylisted, a
sender refused), next to what it does to the whole session (421, 554 at the
greeting), so each row of docs/failures.md is tried against a real server.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.ports import free_port
from devtools.smtp_sink import ScriptedHandler, SmtpSink


class RefusingHandler(ScriptedHandler):
    def __init__(self, mail_dir: Path, *, recipients: dict[str, str] | None = None,
                 mail_from: str | None = None) -> None:
        super().__init__(mail_dir)
        self.refuse_recipients = recipients or {}  # address -> full reply, e.g. "550 no such user"
        self.refuse_mail_from = mail_from  # reply to every MAIL FROM, e.g. "553 sender refused"
        self.rcpt_seen: list[str] = []

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # type: ignore[no-untyped-def]
        if self.refuse_mail_from:
            return self.refuse_mail_from
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        self.rcpt_seen.append(address)
        if address in self.refuse_recipients:
            return self.refuse_recipients[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"


def refusing_sink(mail_dir: Path, **script: object) -> SmtpSink:
    sink = SmtpSink(mail_dir, smtputf8=bool(script.pop("smtputf8", False)))
    sink.handler = RefusingHandler(mail_dir, **script)  # type: ignore[arg-type]
    return sink


@contextmanager
def greeting_only(reply: bytes) -> Iterator[str]:
    """A server that answers every connection with `reply` (e.g. b"554 no service") and hangs up."""
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(reply + b"\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
