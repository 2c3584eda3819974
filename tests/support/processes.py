"""Start the Procfile's own commands as real processes (own process group, killed afterwards)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from orders.settings import PROJECT_ROOT


def procfile_command(name: str) -> str:
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            return command.strip()
    raise KeyError(f"no {name!r} process in the Procfile")


def start(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Run the Procfile line `name` through sh, as honcho does."""
    full_env = {**os.environ, **env,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with log.open("ab") as out:
        return subprocess.Popen(["sh", "-c", procfile_command(name)], cwd=PROJECT_ROOT, env=full_env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
