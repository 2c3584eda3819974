"""devtools/supervisor.py with real processes: restarts with backoff, leaves no orphans, stops in order."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import psutil

from devtools.supervisor import Backoff, Supervisor
from tests.support.waiting import wait_until

FAST = Backoff(first=0.2, cap=0.8, stable_after=30.0)


def supervise(commands: dict[str, str], tmp_path: Path, **kwargs) -> Supervisor:
    env = {"PATH": os.environ["PATH"]}
    return Supervisor(commands, env, tmp_path, out=io.StringIO(), backoff=FAST, **kwargs)


def ticking(supervisor: Supervisor, probe, *, timeout: float = 15.0, message: str = ""):
    def step():
        supervisor.tick()
        return probe()

    return wait_until(step, timeout=timeout, interval=0.02, message=message)


def lines(supervisor: Supervisor, needle: str) -> list[str]:
    assert isinstance(supervisor.out, io.StringIO)
    return [line for line in supervisor.out.getvalue().splitlines() if needle in line]


def test_a_process_that_exits_is_restarted_with_growing_backoff_and_one_line_each(tmp_path):
    supervisor = supervise({"steady": "sleep 60", "flaky": "exit 3"}, tmp_path)
    supervisor.start(["steady", "flaky"])
    steady_pid = supervisor.children["steady"].pid
    try:
        starts: list[float] = []

        def restarted_four_times() -> bool:
            child = supervisor.children["flaky"]
            if child.popen is not None and (not starts or child.started_at != starts[-1]):
                starts.append(child.started_at)
            return child.restarts >= 4

        ticking(supervisor, restarted_four_times, message="flaky restarted 4 times")
        said = lines(supervisor, "flaky exited with code 3")
        assert [line.split("restarting in ")[1] for line in said[:4]] == [
            "0.2s (restart 1)", "0.4s (restart 2)", "0.8s (restart 3)", "0.8s (restart 4)"]
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8
        assert supervisor.children["steady"].pid == steady_pid and supervisor.children["steady"].restarts == 0
    finally:
        supervisor.stop(grace=5)


def test_a_killed_process_is_the_real_program_and_leaves_no_orphan(tmp_path):
    supervisor = supervise({"single": "sleep 61", "forking": "sleep 62 & sleep 63"}, tmp_path)
    supervisor.start(["single", "forking"])
    try:
        # One simple command runs as itself (sh execs it): its pid is the program's.
        single = psutil.Process(supervisor.children["single"].pid)
        wait_until(lambda: single.name() == "sleep", timeout=5, message="sleep exec'd")
        forking = supervisor.children["forking"]
        assert forking.pid is not None
        shell = psutil.Process(forking.pid)
        grandchildren = wait_until(lambda: shell.children(), timeout=5)
        os.kill(forking.pid, signal.SIGKILL)
        ticking(supervisor, lambda: forking.restarts == 1 and forking.state == "running")
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in grandchildren)
        assert lines(supervisor, "forking was killed by SIGKILL")
    finally:
        supervisor.stop(grace=5)


def test_stop_ends_the_applications_before_the_servers_and_kills_what_ignores_sigterm(tmp_path):
    record = tmp_path / "stopped"
    trap = "trap 'echo {0} >> {1}; exit 0' TERM; while :; do sleep 0.05; done"
    supervisor = supervise({
        "server": trap.format("server", record),
        "app": trap.format("app", record),
        "stubborn": "trap '' TERM; while :; do sleep 0.05; done",
    }, tmp_path)
    supervisor.start(["server"])
    supervisor.start(["app", "stubborn"])
    stubborn = supervisor.children["stubborn"].pid
    wait_until(lambda: psutil.Process(stubborn).children(), timeout=5)  # its trap is set
    began = time.monotonic()
    supervisor.stop(grace=1.0)
    assert time.monotonic() - began < 10
    assert record.read_text().split() == ["app", "server"]
    assert all(child.state == "stopped" for child in supervisor.children.values())
    assert not psutil.pid_exists(stubborn) or psutil.Process(stubborn).status() == psutil.STATUS_ZOMBIE
    assert not lines(supervisor, "restarting")  # stopping is not crashing
