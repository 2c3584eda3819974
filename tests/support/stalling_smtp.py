"""An SMTP sink that can hold every client at MAIL FROM, before anything is accepted.

A worker killed while it waits there has sent nothing: what "killed in the
middle of sending" looks like, without the ambiguity of a message the server
accepted after its client died.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from devtools.smtp_sink import ScriptedHandler, SmtpSink


class StallingHandler(ScriptedHandler):
    def __init__(self, mail_dir: Path) -> None:
        super().__init__(mail_dir)
        self.open = threading.Event()
        self.open.set()
        self.waiting = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # type: ignore[no-untyped-def]
        self.waiting += 1
        while not self.open.is_set():
            await asyncio.sleep(0.05)
        self.waiting -= 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"


def stalling_sink(mail_dir: Path) -> SmtpSink:
    sink = SmtpSink(mail_dir)
    sink.handler = StallingHandler(mail_dir)
    return sink
