"""Passwords `make run` generates when none is configured: random, kept under var/, mode 0600.

Never a fixed default: each checkout gets its own, and it survives restarts so
a browser's saved login keeps working.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def ensure_password(path: Path) -> str:
    """The password stored in `path`, created (random, readable by the owner only) if missing."""
    if path.exists():
        stored = path.read_text().strip()
        if stored:
            return stored
        path.unlink()
    password = secrets.token_urlsafe(18)  # no ',' or ':': Flower splits FLOWER_BASIC_AUTH on ','
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password
