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
import shlex
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


# Words that are not programs to exec: shell built-ins and reserved words.
SHELL_WORDS = {"exec", "exit", "trap", "set", "unset", "export", "cd", "eval", ".", "source", "wait",
               "return", "shift", "read", "umask", "ulimit", "if", "while", "until", "for", "case",
               "{", "(", "!", "[", "test", ":", "true", "false"}


def exec_form(command: str) -> str:
    """`exec command` when it is one simple command, so sh does not stay in between: the
    process the supervisor watches (and signals, and shows a pid for) is the real one, and
    it keeps the parent-death signal (which survives exec, not fork)."""
    try:  # control operators outside quotes come out as tokens of their own
        words = list(shlex.shlex(command, posix=True, punctuation_chars=True))
    except ValueError:  # unbalanced quotes: sh will say what is wrong
        return command
    if (not words or "\n" in command or any(set(word) <= set(";&|()") for word in words)
            or words[0] in SHELL_WORDS or "=" in words[0]):
        return command
    return f"exec {command}"


def main(argv: list[str]) -> None:
    """python -m devtools.orphans PROGRAM ARGS...: run PROGRAM, ended with its parent."""
    die_with_parent()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
