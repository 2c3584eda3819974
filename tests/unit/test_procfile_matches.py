"""The Procfile follows from the declarations: a declared consumer has its worker line."""

from __future__ import annotations

from config.settings import PROJECT_ROOT
from devtools.procfile import procfile, worker_queues
from outbox.subscriptions import all_consumers


def test_the_procfile_is_the_one_the_declarations_make():
    assert (PROJECT_ROOT / "Procfile").read_text() == procfile(), (
        "Procfile is stale: run `python -m devtools.procfile > Procfile`")


def test_every_declared_consumer_has_a_worker():
    assert set(all_consumers()) <= set(worker_queues())
