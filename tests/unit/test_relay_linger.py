"""When the relay lingers: only after publishing, and only while the consumers are behind."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from tasks import relay

LINGER, POLL = 0.05, 0.5


class Recorder:
    """A stop event and a wakeup that record how the loop waited, and stop it after the script."""

    def __init__(self, passes: list[int]):
        self.passes = passes
        self.waits: list[tuple[str, float]] = []
        self.stop = threading.Event()

    def relay_once(self, _app: object, _runtime: object, **_where: object) -> int:
        published = self.passes.pop(0)
        if not self.passes:
            self.stop.set()
        return published

    def linger(self, seconds: float) -> bool:
        self.waits.append(("linger", seconds))
        return False

    def wait(self, seconds: float) -> None:
        self.waits.append(("wait for NOTIFY", seconds))


@pytest.mark.parametrize(("behind", "expected"), [
    (True, [("linger", LINGER), ("linger", LINGER), ("wait for NOTIFY", POLL)]),
    (False, [("wait for NOTIFY", POLL), ("wait for NOTIFY", POLL), ("wait for NOTIFY", POLL)]),
])
def test_the_relay_lingers_after_publishing_only_while_consumers_are_behind(monkeypatch, behind, expected):
    recorder = Recorder(passes=[1, 5, 0])
    monkeypatch.setattr(relay, "relay_once", recorder.relay_once)
    monkeypatch.setattr(relay, "consumers_behind", lambda _url, _queues: behind)
    monkeypatch.setattr(recorder.stop, "wait", recorder.linger)
    runtime = SimpleNamespace(settings=SimpleNamespace(relay_linger_seconds=LINGER, relay_poll_seconds=POLL,
                                                       relay_batch_size=200))
    app = SimpleNamespace(conf=SimpleNamespace(broker_url="redis://unused"))

    relay._loop(app, runtime, recorder.stop, recorder)  # type: ignore[arg-type]

    # Passes 1 and 5 published something; the idle pass (0) waits for a NOTIFY.
    assert recorder.waits == expected
