"""Processes the orderflow benchmarks need besides workers: the SMTP sink, gunicorn, Flower."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import WorkerSet, free_port, python_m, wait_for


@dataclass
class Sink:
    url: str
    mail_dir: Path

    def clear(self) -> None:
        for path in self.mail_dir.glob("*.eml"):
            path.unlink()

    def messages(self) -> list[Path]:
        return list(self.mail_dir.glob("*.eml"))


def port_answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def smtp_sink(delay_ms: float = 0.0) -> Iterator[Sink]:
    """devtools.smtp_sink in its own process (so it never competes for the harness's GIL)."""
    mail_dir = Path(tempfile.mkdtemp(prefix="bench-mail-"))
    procs = WorkerSet()
    port = free_port()
    try:
        procs.spawn("smtp", python_m("devtools.smtp_sink", "--port", str(port), "--dir", str(mail_dir),
                                     "--delay-ms", str(delay_ms)), {})
        wait_for(lambda: procs.check_alive() or port_answers(port), 30, "SMTP sink")
        yield Sink(f"smtp://127.0.0.1:{port}", mail_dir)
    finally:
        procs.stop()
        shutil.rmtree(mail_dir, ignore_errors=True)


def start_flower(procs: WorkerSet, env: dict[str, str], app_module: str = "tasks") -> int:
    """Flower as the Procfile runs it (without --persistent: nothing to keep between runs)."""
    port = free_port()
    procs.spawn("flower", python_m("celery", "-A", app_module, "flower", "--address=127.0.0.1",
                                   f"--port={port}"), env)
    wait_for(lambda: procs.check_alive() or port_answers(port), 60, "Flower")
    return port
