"""The whole system as `make run` starts it: honcho, the Procfile, real processes, HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.settings import PROJECT_ROOT
from devtools.ports import free_port, wait_for_port
from tests.support.orders import order_input
from tests.support.sse import read_until_end
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


@dataclass
class System:
    web: str
    streams: str
    var_dir: Path
    log: Path


def http_json(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    """`python -m devtools.run` (what `make run` runs) on a fresh machine: no REDIS_URL, no SMTP_URL."""
    web_port, flower_port, stream_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "SMTP_URL", "DATABASE_URL")}
    env.update(ORDERFLOW_VAR_DIR=str(tmp_path / "var"), WEB_PORT=str(web_port),
               FLOWER_PORT=str(flower_port), STREAM_PORT=str(stream_port),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    log = tmp_path / "system.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "devtools.run"], cwd=PROJECT_ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(web_port, timeout=60)
        wait_for_port(stream_port, timeout=60)
        yield System(f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{stream_port}", tmp_path / "var", log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        subprocess.run(["pkill", "-9", "-f", str(tmp_path / "var")], check=False)


def test_order_over_http_is_delivered_to_every_consumer(system: System):
    status, created = http_json("POST", f"{system.web}/orders", order_input())
    assert status == 201, created
    order_id = created["order"]["id"]

    def deliveries() -> dict | None:
        _, body = http_json("GET", f"{system.web}/orders/{order_id}")
        states = {c: d["state"] for c, d in body["order"]["events"][0]["deliveries"].items()}
        return states if set(states.values()) == {"succeeded"} else None

    try:
        states = wait_until(deliveries, timeout=60, interval=0.2)
    except AssertionError:
        raise AssertionError(system.log.read_text()[-5000:]) from None
    assert states == {"email": "succeeded", "inventory": "succeeded", "analytics": "succeeded"}
    # The live status, from the stream server `make run` started beside gunicorn.
    items = read_until_end(f"{system.streams}/orders/{order_id}/events", timeout=20)
    assert [i.kind for i in items][-1] == "end"
    assert {i.data["consumer"]: i.data["state"] for i in items if i.kind == "message"} == states
    [mail] = list((system.var_dir / "mail").glob("*.eml"))
    assert f"Your order {order_id} is confirmed" in mail.read_text()
