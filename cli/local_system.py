"""The command line finds the system `make run` started (devtools/local_system.py's var/system.json).

With REDIS_URL, BROKER_URL and DATABASE_URL unset, an operator command run from the project
acts on that system and says so in one line (on stderr, so `--json` output stays
clean); with nothing running it says that, rather than trying a default
127.0.0.1:6379 that may be somebody else's Redis.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from config.settings import mask_url
from devtools.local_system import NOT_RUNNING, LocalSystem, find_running
from orders.errors import OrderflowError

# Commands that act on a running system's broker or database.
NEEDS_A_SYSTEM = ("dead-letters", "consumers", "prune")
# The variables whose absence sends the command looking for `make run`'s system.
TARGETS = ("REDIS_URL", "BROKER_URL", "DATABASE_URL")


class NoSystem(OrderflowError):
    """Nothing to act on: no make run here and no REDIS_URL / DATABASE_URL given."""

    code = "no_system"


def environment_for(command: str, environ: Mapping[str, str]) -> dict[str, str] | None:
    """The running system's URLs when `environ` names neither broker nor database (None: use
    `environ` as it is: it points somewhere on purpose, or the command needs no system)."""
    if command not in NEEDS_A_SYSTEM or any(environ.get(name) for name in TARGETS):
        return None
    env = dict(environ)
    system = find_running()
    if system is None:
        raise NoSystem(f"{NOT_RUNNING}; or set REDIS_URL (or BROKER_URL) and DATABASE_URL "
                       "to act on another system")
    found = system.environment()
    names = [name for name in TARGETS if name in found]
    env.update({name: found[name] for name in names})
    if found.get("SHIPPING_DATABASE_URL") and not env.get("SHIPPING_DATABASE_URL"):
        env["SHIPPING_DATABASE_URL"] = found["SHIPPING_DATABASE_URL"]
    print(f"orderflow: using the system make run started (pid {system.supervisor_pid}): "
          + ", ".join(f"{name}={mask_url(found[name])}" for name in names), file=sys.stderr)
    return env


def status() -> list[str]:
    """`orderflow status`: what `make run` printed when it was ready, and each process now."""
    system: LocalSystem | None = find_running()
    if system is None:
        raise NoSystem(NOT_RUNNING)
    return system.status_lines()
