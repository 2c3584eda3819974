"""The process supervisor of `make run`: one crashed process never takes the others down.

honcho stops every process when one exits; a local system that must show the
guarantees (a worker killed mid-task, a relay restarted) needs the opposite.
Each process runs one Procfile command through `sh -c` (as honcho does), in its
own session so that it, and everything it forked, can be signalled as a group.
A process that exits is restarted after a backoff (1 s, 2 s, 4 s ... 30 s; back
to 1 s once it had run 30 s), with one log line. Only `stop()` (Ctrl-C or
SIGTERM in `make run`) ends them: in the reverse order of the `start()` calls,
so the applications stop before the servers they use.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from devtools.orphans import exec_form


@dataclass(frozen=True)
class Backoff:
    first: float = 1.0
    cap: float = 30.0
    stable_after: float = 30.0  # a process that ran this long was fine: start again from `first`

    def delay(self, quick_exits: int) -> float:
        return min(self.cap, self.first * 2 ** max(0, quick_exits - 1))


@dataclass
class Child:
    name: str
    command: str
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # time.time() of the current (or last) start
    restarts: int = 0
    quick_exits: int = 0
    restart_at: float | None = None  # monotonic; set while waiting out the backoff
    stopping: bool = False
    marker: str | None = None  # a line that says the process is ready (e.g. "relay started")
    marker_seen: bool = False

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    @property
    def state(self) -> str:
        if self.popen is not None and self.popen.poll() is None:
            return "running"
        return "stopped" if self.stopping or self.restart_at is None else "restarting"


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


@dataclass
class Supervisor:
    commands: Mapping[str, str]
    env: Mapping[str, str]
    cwd: Path
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    backoff: Backoff = field(default_factory=Backoff)
    on_change: Callable[[], None] | None = None
    stop_signals: Mapping[str, int] = field(default_factory=dict)  # by name; SIGTERM otherwise
    children: dict[str, Child] = field(default_factory=dict)
    tiers: list[list[str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- output: every line of every process, prefixed with its name, as honcho does ----

    @property
    def _width(self) -> int:
        return max((len(n) for n in [*self.commands, "supervisor"]), default=10)

    def echo(self, name: str, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with self._lock, contextlib.suppress(OSError, ValueError):
            self.out.write(f"{stamp} {name:<{self._width}} | {line}\n")
            self.out.flush()

    def write(self, lines: list[str]) -> None:
        """Lines as they are (no prefix), never interleaved with a process's."""
        with self._lock, contextlib.suppress(OSError, ValueError):
            self.out.write("".join(f"{line}\n" for line in lines))
            self.out.flush()

    def say(self, line: str) -> None:
        self.echo("supervisor", line)

    def _pump(self, child: Child, popen: subprocess.Popen[bytes]) -> None:
        assert popen.stdout is not None
        for raw in popen.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            if child.marker and child.popen is popen and child.marker in line:
                child.marker_seen = True
            self.echo(child.name, line)
        popen.stdout.close()

    # ---- starting, watching, stopping ----

    def start(self, names: list[str], *, markers: Mapping[str, str] | None = None) -> None:
        """Start `names` (one tier: stopped together, before the tiers started earlier)."""
        for name in names:
            child = Child(name, self.commands[name], marker=(markers or {}).get(name))
            self.children[name] = child
            self._spawn(child)
        self.tiers.append(list(names))
        self._changed()

    def _spawn(self, child: Child) -> None:
        child.marker_seen = False
        child.restart_at = None
        child.started_at = time.time()
        popen = subprocess.Popen(
            # Through devtools.orphans (not preexec_fn, unsafe with the output threads running).
            [sys.executable, "-m", "devtools.orphans", "sh", "-c", exec_form(child.command)],
            cwd=self.cwd, env=dict(self.env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        child.popen = popen
        threading.Thread(target=self._pump, args=(child, popen), daemon=True,
                         name=f"output-{child.name}").start()

    def tick(self) -> None:
        """Notice exits and start what is due; call it often (every 0.1 s)."""
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.stopping:
                continue
            popen = child.popen
            if popen is not None and popen.poll() is not None:
                _kill_group(popen.pid, signal.SIGKILL)  # what it forked must not outlive it
                ran = time.time() - child.started_at
                child.quick_exits = 1 if ran >= self.backoff.stable_after else child.quick_exits + 1
                delay = self.backoff.delay(child.quick_exits)
                child.popen, child.restart_at = None, now + delay
                child.restarts += 1
                self.say(f"{child.name} {describe_exit(popen.returncode)} after {ran:.0f}s; "
                         f"restarting in {delay:g}s (restart {child.restarts})")
                self._changed()
            elif child.popen is None and child.restart_at is not None and now >= child.restart_at:
                self._spawn(child)
                self._changed()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM each tier's process groups, newest tier first; SIGKILL what outlives `grace`."""
        for tier in reversed(self.tiers):
            children = [self.children[name] for name in tier]
            for child in children:
                child.stopping = True
                if child.popen is not None and child.popen.poll() is None:
                    _kill_group(child.popen.pid, self.stop_signals.get(child.name, signal.SIGTERM))
            deadline = time.monotonic() + grace
            for child in children:
                if child.popen is None:
                    continue
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
                _kill_group(child.popen.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.popen.wait(timeout=5)
        self._changed()

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Each process: pid, state (running / restarting / stopped), restarts, since (epoch s)."""
        return {
            child.name: {"pid": child.pid, "state": child.state, "restarts": child.restarts,
                         "since": round(child.started_at, 3)}
            for child in self.children.values()
        }

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
