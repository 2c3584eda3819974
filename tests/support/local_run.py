"""`python -m devtools.run` (what `make run` runs) as a fresh machine runs it, for e2e tests.

No REDIS_URL, DATABASE_URL or SMTP_URL: the local Redis, the embedded PostgreSQL
and the SMTP sink are started with everything else, under the test's own var/.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from config.settings import PROJECT_ROOT
from devtools.local_system import LocalSystem, find_running
from devtools.ports import free_port
from devtools.summary import READY_LINE
from tests.support.waiting import wait_until


@dataclass
class LocalRun:
    process: subprocess.Popen[bytes]
    var_dir: Path
    log: Path
    web: str
    streams: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def system(self) -> LocalSystem:
        found = find_running(self.var_dir)
        assert found is not None, f"no var/system.json:\n{self.output()[-3000:]}"
        return found

    def mail(self) -> list[str]:
        return [p.read_text(errors="replace") for p in sorted((self.var_dir / "mail").glob("*.eml"))]


def http_json(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@contextlib.contextmanager
def local_run(tmp_path: Path, *, ready_timeout: float = 120.0, **extra_env: str) -> Iterator[LocalRun]:
    """Start it, wait until it says it is ready, stop it (and check it stopped) at the end."""
    web_port, flower_port, stream_port = free_port(), free_port(), free_port()
    configured = ("REDIS_URL", "SMTP_URL", "DATABASE_URL", "FLOWER_BASIC_AUTH", "ORDERFLOW_ADMIN_PASSWORD")
    env = {k: v for k, v in os.environ.items() if k not in configured}
    env.update(ORDERFLOW_VAR_DIR=str(tmp_path / "var"), WEB_PORT=str(web_port),
               FLOWER_PORT=str(flower_port), STREAM_PORT=str(stream_port), PYTHONUNBUFFERED="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", **extra_env)
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "devtools.run"], cwd=PROJECT_ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    run = LocalRun(process, tmp_path / "var", log, f"http://127.0.0.1:{web_port}",
                   f"http://127.0.0.1:{stream_port}")
    try:
        def ready() -> bool:
            assert process.poll() is None, f"make run exited:\n{run.output()[-3000:]}"
            return READY_LINE in run.output()

        try:
            wait_until(ready, timeout=ready_timeout, interval=0.2, message="make run: ready")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{run.output()[-5000:]}") from None
        yield run
    finally:
        stop(run)


def stop(run: LocalRun) -> None:
    """SIGTERM to make run alone (as Ctrl-C would be): it must stop every process it started."""
    started = started_processes(run)
    if run.process.poll() is None:
        run.process.send_signal(signal.SIGTERM)
        try:
            run.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(run.process.pid, signal.SIGKILL)
            run.process.wait(timeout=10)
    left = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for process in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    assert not left, f"make run left processes running: {[p.pid for p in left]}"


def started_processes(run: LocalRun) -> list[psutil.Process]:
    """Every process make run started (and what they forked), as it stands now."""
    found: list[psutil.Process] = []
    with contextlib.suppress(psutil.NoSuchProcess):
        found = psutil.Process(run.process.pid).children(recursive=True)
    return found
