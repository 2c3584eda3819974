"""Which Procfile lines the supervisor runs as the program itself (`exec`), and which through sh."""

from __future__ import annotations

import pytest

from devtools.orphans import exec_form
from devtools.run import read_procfile


@pytest.mark.parametrize("command", ["celery -A tasks worker -Q email -n email@%h",
                                     "python -m devtools.local_redis --port ${LOCAL_REDIS_PORT:-6390}"])
def test_one_program_is_execd(command):
    assert exec_form(command) == f"exec {command}"


@pytest.mark.parametrize("command", ["exit 3", "trap '' TERM", "FOO=1 celery worker", "a && b", "a; exec b",
                                     "a | b", "sleep 1 & sleep 2", "exec celery flower"])
def test_shell_lines_are_left_to_sh(command):
    assert exec_form(command) == command


def test_every_procfile_process_but_flower_runs_as_itself():
    commands = read_procfile()
    assert {name for name, command in commands.items() if exec_form(command) == command} == {"flower"}
    assert commands["flower"].rstrip().split("; ")[-1].startswith("exec celery")  # flower execs itself
