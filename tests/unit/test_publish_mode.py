"""Who publishes after commit: the relay (woken by NOTIFY) on PostgreSQL, the fast path on SQLite."""

from __future__ import annotations

import pytest

from config.settings import Settings

PG = "postgresql://postgres@127.0.0.1:5432/orderflow"
SQLITE = "sqlite:////tmp/orderflow.sqlite3"


@pytest.mark.parametrize(("url", "mode", "fast_path", "grace"), [
    (PG, None, False, 0.0),          # auto: NOTIFY wakes the relay, nothing to race
    (SQLITE, None, True, 2.0),       # auto: no NOTIFY on SQLite, the fast path goes first
    (PG, "fast_path", True, 2.0),
    (SQLITE, "relay", False, 0.0),
    ("postgres://u:p@db/orders", "AUTO", False, 0.0),
])
def test_publish_mode_decides_fast_path_and_relay_grace(url, mode, fast_path, grace):
    env = {"DATABASE_URL": url, **({"PUBLISH_MODE": mode} if mode else {})}
    settings = Settings.from_env(env)
    assert settings.uses_fast_path is fast_path
    assert settings.effective_relay_grace_seconds == grace


def test_unknown_publish_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="PUBLISH_MODE must be one of auto, fast_path, relay, not 'fast'"):
        Settings.from_env({"PUBLISH_MODE": "fast"})


@pytest.mark.parametrize("value", ["0", "-3", "many", "2.5"])
def test_delivery_batch_max_must_be_a_whole_number_of_at_least_one(value):
    with pytest.raises(ValueError, match=f"DELIVERY_BATCH_MAX must be a whole number >= 1, not '{value}'"):
        Settings.from_env({"DELIVERY_BATCH_MAX": value})


def test_batching_defaults_and_switching_it_off():
    defaults = Settings.from_env({})
    assert (defaults.delivery_batch_max, defaults.relay_linger_seconds) == (50, 0.05)
    assert Settings.from_env({"DELIVERY_BATCH_MAX": "1"}).delivery_batch_max == 1
