"""What the machine did during a timed window: how busy both cores were, and how much CPU the
PostgreSQL backends serving one database used (they are not our child processes, so they are
found by their process title, `postgres: <user> <database> ...`)."""

from __future__ import annotations

import threading
from types import TracebackType

import psutil

INTERVAL_SECONDS = 0.1


class LoadSampler:
    def __init__(self, database_name: str):
        self._title = f" {database_name} "
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)
        self._first: dict[int, float] = {}  # pid -> CPU seconds when first seen in the window
        self._last: dict[int, float] = {}
        self._busy_start = self._busy_end = (0.0, 0.0)

    def __enter__(self) -> LoadSampler:
        self._busy_start = _busy_and_total()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._busy_end = _busy_and_total()

    @property
    def busy_percent(self) -> float:
        busy = self._busy_end[0] - self._busy_start[0]
        total = self._busy_end[1] - self._busy_start[1]
        return 100 * busy / total if total else 0.0

    @property
    def postgres_cpu_seconds(self) -> float:
        return sum(self._last[pid] - self._first[pid] for pid in self._last)

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL_SECONDS):
            self._sample()

    def _sample(self) -> None:
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if self._title not in " ".join(proc.info["cmdline"] or []) + " ":
                    continue
                times = proc.cpu_times()
            except (psutil.Error, OSError):
                continue
            used = times.user + times.system
            self._first.setdefault(proc.pid, used)
            self._last[proc.pid] = used


def _busy_and_total() -> tuple[float, float]:
    """Jiffies of all cores: (busy, total) from the first line of /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [float(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total
