"""Fixtures shared by all layers. Real Redis and real databases; fakes only in tests/unit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import chromium  # noqa: F401  (fixture for the browser tests)
from tests.support.redis_server import test_redis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with test_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def mail_dir(tmp_path: Path) -> Path:
    return tmp_path / "mail"
