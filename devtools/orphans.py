"""No orphans: a process of `make run` ends when the supervisor that started it dies.

Linux's parent-death signal (prctl PR_SET_PDEATHSIG): if the supervisor is
SIGKILLed, its children get SIGTERM instead of living on with the ports and the
data directory, which would make the next `make run` pick other ports.
Elsewhere (no prctl) this does nothing; a Ctrl-C still stops everything.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def _load_prctl():  # type: ignore[no-untyped-def]
    # Loaded at import: a caller may drop privileges before asking (devtools/local_postgres.py).
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def exec_form(command: str) -> str:
    """`exec command` when it is one simple command, so sh does not stay in between: the
    process the supervisor watches (and signals, and shows a pid for) is the real one, and
    it keeps the parent-death signal (which survives exec, not fork)."""
    if any(op in command for op in (";", "&", "|", "\n")) or command.lstrip().startswith("exec "):
        return command
    return f"exec {command}"


def main(argv: list[str]) -> None:
    """python -m devtools.orphans PROGRAM ARGS...: run PROGRAM, ended with its parent."""
    die_with_parent()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
