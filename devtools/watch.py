"""Watches the processes of `make run` become ready, once at start and after every restart.

A thread asks each process that has not answered since its latest start
(devtools/readiness.py); when all have, it calls `on_ready` once (the summary);
a process back after a restart is reported in one line. The main thread keeps
reaping and restarting meanwhile (a probe can take a second).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from devtools.readiness import Probe
from devtools.supervisor import Supervisor


class ReadinessWatcher:
    def __init__(self, supervisor: Supervisor, probes: Mapping[str, Probe], *,
                 on_ready: Callable[[], None], on_change: Callable[[], None],
                 interval: float = 0.3, slow_after: float = 60.0) -> None:
        self.supervisor = supervisor
        self.probes = dict(probes)
        self.on_ready = on_ready
        self.on_change = on_change
        self.interval = interval
        self.slow_after = slow_after
        self.ready_pid: dict[str, int] = {}  # the pid that answered, per process
        self.announced = False
        # Set once everything is started (after the database is migrated): no "ready" before.
        self.everything_started = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="readiness")

    def is_ready(self, name: str) -> bool:
        child = self.supervisor.children.get(name)
        return child is not None and child.pid is not None and self.ready_pid.get(name) == child.pid

    @property
    def all_ready(self) -> bool:
        return all(self.is_ready(name) for name in self.probes)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        started = time.monotonic()
        next_complaint = started + self.slow_after
        while not self._stop.wait(self.interval):
            for name, probe in self.probes.items():
                child = self.supervisor.children.get(name)
                if child is None or child.pid is None or self.is_ready(name) or child.state != "running":
                    continue
                pid = child.pid
                if probe() and child.pid == pid:
                    self.ready_pid[name] = pid
                    if self.announced:
                        self.supervisor.say(f"{name} is ready again (pid {pid})")
                    self.on_change()
            if not self.announced and self.everything_started.is_set() and self.all_ready:
                self.announced = True
                self.on_change()
                self.on_ready()
            elif not self.announced and time.monotonic() > next_complaint:
                waiting = ", ".join(n for n in self.probes if not self.is_ready(n))
                self.supervisor.say(f"still waiting for: {waiting} "
                                    f"({time.monotonic() - started:.0f}s since start)")
                next_complaint += self.slow_after
