"""Several hosts on one machine (tests/support/netns.py), each running real orderflow processes.

    store    10.213.n.2  the broker: Redis, or RabbitMQ (below)   10.213.n.3  PostgreSQL (its own link)
    front    the web (gunicorn) and relay 1
    work1    workers and relay 2
    work2    workers
    (the test process: 10.213.n.1 on the bridge, the observer; it also runs the SMTP sink)

PostgreSQL has a link of its own on the store host so that "the database is
unreachable" can be cut while the broker stays up. Every test runs on each
broker (the `broker_kind` parameter). Redis is a server of the test's own on the store
host. RabbitMQ is the machine's, which listens on 127.0.0.1 alone and must not
be reconfigured: the test process forwards the store host's broker address,
port 5672 (a socket made inside the store's namespace), to 127.0.0.1:5672,
with a vhost of the test's own. A host cut off then falls silent at RabbitMQ
like a real one: the forwarder keeps its upstream connection open and relays
nothing, so RabbitMQ notices the host only when its heartbeats stop
(BROKER_HEARTBEAT, 4 s here), closes the connection and requeues what it held.

Run with `pytest -m hosts -s` as root: each test prints what it cuts and what follows.
"""

from __future__ import annotations

import contextlib
import glob
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from devtools.local_redis import redis_binary
from devtools.ports import wait_for_port
from orders.migrate import upgrade
from orders.seed import seed_products
from outbox.db import SessionFactory, make_engine, make_session_factory
from tests.support import rabbitmq
from tests.support.netns import Host, Lab, missing_reason
from tests.support.processes import Proc, Processes, process_env
from tests.support.stalling_smtp import StallingHandler, stalling_sink
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_until


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/hosts/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.hosts)
            if "hosts" not in (config.getoption("markexpr") or ""):
                item.add_marker(pytest.mark.skip(reason="the hosts suite runs on its own: pytest -m hosts"))


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    built = Lab()
    try:
        yield built
    finally:
        built.close()


class Cluster:
    """The hosts, their servers, and helpers to start orderflow's processes on them."""

    def __init__(self, lab: Lab, procs: Processes, store: Host, pg_url: str, broker: Broker) -> None:
        self.lab, self.procs, self.store = lab, procs, store
        self.pg_url, self.broker = pg_url, broker
        self.front = lab.add_host("front")
        self.work1 = lab.add_host("work1")
        self.work2 = lab.add_host("work2")

    def queued_task_ids(self, queue: str) -> list[str]:
        """The task ids of the messages waiting in `queue` (left there)."""
        if self.broker.kind == "rabbitmq":
            return rabbitmq.peek_task_ids(self.broker.observer_url, queue)
        raw = redis.Redis.from_url(self.broker.observer_url).lrange(queue, 0, -1)
        return [json.loads(m)["headers"]["id"] for m in raw]

    def worker(self, host: Host, queue: str) -> Proc:
        name = f"{host.name}-{queue}-{len(self.procs.started)}"
        proc = self.procs.start(name, host.command([
            sys.executable, "-m", "celery", "-A", "tasks", "worker", "-Q", queue, "-n", f"{name}@%h",
            "--concurrency", "1", "--loglevel", "INFO", "--without-mingle", "--without-gossip"]))
        self.procs.wait_for_line(proc, " ready.", timeout=60)
        return proc

    def relay(self, host: Host, **env: str) -> Proc:
        proc = self.procs.start(f"{host.name}-relay", host.command([sys.executable, "-m", "tasks.relay"]),
                                **env)
        self.procs.wait_for_line(proc, "reconciler started", timeout=30)
        return proc

    def web(self, host: Host) -> str:
        self.procs.start(f"{host.name}-web", host.command([
            sys.executable, "-m", "gunicorn", "--bind", f"{host.address}:8000", "--workers", "1",
            "--threads", "8", "--worker-class", "gthread", "web:create_app()"]))
        wait_for_port(8000, host=host.address, timeout=30)
        return f"http://{host.address}:8000"

    def say(self, text: str) -> None:
        print(f"  [hosts {self.broker.kind}] {text}", flush=True)


def start_postgres(store: Host, address: str, data_root: Path) -> subprocess.Popen[bytes]:
    """A PostgreSQL of its own on the store host, listening on `address` only."""
    bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    data = data_root / "pg"
    subprocess.run(["runuser", "-u", "postgres", "--", f"{bindir}/initdb", "-D", str(data), "-A", "trust",
                    "-U", "postgres", "--no-sync"], check=True, capture_output=True)
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write("host all all 10.213.0.0/16 trust\n")
    # Short TCP keepalives: a client cut off holding locks (a relay mid-claim, a worker
    # mid-transaction) is dropped within seconds, not the kernel's two hours.
    return subprocess.Popen(store.command([
        "runuser", "-u", "postgres", "--", f"{bindir}/postgres", "-D", str(data), "-p", "5432",
        "-c", f"listen_addresses={address}", "-c", f"unix_socket_directories={data}", "-c", "fsync=off",
        "-c", "tcp_keepalives_idle=2", "-c", "tcp_keepalives_interval=1", "-c", "tcp_keepalives_count=2"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def answers(url: str) -> bool:
    """A first query gets through (a loaded machine may be slow to answer the first one)."""
    engine = make_engine(url, connect_timeout=5)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


@pytest.fixture
def mail_sink(lab: Lab, tmp_path: Path) -> Iterator[object]:
    sink = stalling_sink(tmp_path / "mail")
    sink.host = lab.observer  # reachable from every host through the bridge
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def stalling(mail_sink) -> StallingHandler:  # type: ignore[no-untyped-def]
    assert isinstance(mail_sink.handler, StallingHandler)
    return mail_sink.handler


@dataclass(frozen=True)
class Broker:
    """The broker the hosts use (`env`: their variables), and its URL for the test process."""

    kind: str
    observer_url: str
    env: dict[str, str]
    forwarder: TcpProxy | None = None  # RabbitMQ: what the hosts connect through


@contextlib.contextmanager
def redis_on(store: Host, address: str, root: Path) -> Iterator[Broker]:
    server = subprocess.Popen(store.command([redis_binary(), "--port", "6379", "--bind", address,
                                             "--save", "", "--appendonly", "no", "--protected-mode", "no",
                                             "--dir", str(root)]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(6379, host=address, timeout=10)
        url = f"redis://{address}:6379/0"
        yield Broker("redis", url, {"REDIS_URL": url})
    finally:
        server.terminate()
        server.wait(timeout=20)


@contextlib.contextmanager
def rabbitmq_on(store: Host, address: str) -> Iterator[Broker]:
    """The machine's RabbitMQ (a vhost of this test's own), reached at the store's `address`."""
    with rabbitmq.fresh_vhost("orderflow_hosts") as vhost_url:
        forwarder = TcpProxy(5672, listen=lambda: store.server_socket(address, 5672)).start()
        try:
            yield Broker("rabbitmq", vhost_url, forwarder=forwarder, env={
                "BROKER_URL": rabbitmq.on_address(vhost_url, address, 5672),
                # Nothing listens there: nothing may need a Redis beside RabbitMQ.
                "REDIS_URL": f"redis://{address}:6379/0",
                # A host cut off is noticed (and its unacked messages requeued) after about this long.
                "BROKER_HEARTBEAT": "4"})
        finally:
            forwarder.close()


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "rabbitmq":
        rabbitmq.require_rabbitmq()
    return str(request.param)


@pytest.fixture
def cluster(lab: Lab, mail_sink, tmp_path: Path,  # type: ignore[no-untyped-def]
            broker_kind: str) -> Iterator[Cluster]:
    store = lab.add_host("store", addresses=2)
    broker_address, db_address = list(store.links)
    root = Path(tempfile.mkdtemp(prefix="orderflow-hosts-", dir="/tmp"))
    root.chmod(0o755)
    shutil.chown(root, "postgres")
    postgres = start_postgres(store, db_address, root)
    try:
        serving = (redis_on(store, broker_address, root) if broker_kind == "redis"
                   else rabbitmq_on(store, broker_address))
        with serving as broker:
            wait_for_port(5432, host=db_address, timeout=30)
            admin = f"postgresql://postgres@{db_address}:5432/postgres"
            subprocess.run([sys.executable, "-c", "import psycopg; psycopg.connect("
                            f"{admin!r}, autocommit=True).execute('CREATE DATABASE orderflow')"], check=True)
            pg_url = f"postgresql+psycopg://postgres@{db_address}:5432/orderflow"
            wait_until(lambda: answers(pg_url), timeout=30, message="PostgreSQL answers on the bridge")
            upgrade(pg_url)
            extra = {k: v for k, v in broker.env.items() if k != "REDIS_URL"}
            env = process_env(database_url=pg_url, redis_url=broker.env["REDIS_URL"], smtp_url=mail_sink.url,
                              # The reconciler's deadline must exceed the lease (9 s) and backoff cap
                              # + time limit.
                              RECONCILE_AFTER_SECONDS="12", DELIVERY_BATCH_MAX="10", **extra)
            procs = Processes(tmp_path / "logs", env)
            try:
                yield Cluster(lab, procs, store, pg_url, broker)
            finally:
                procs.stop_all()
    finally:
        postgres.terminate()
        postgres.wait(timeout=20)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def db(cluster: Cluster) -> Iterator[SessionFactory]:
    """The observer's view of the database (from the bridge)."""
    engine = make_engine(cluster.pg_url)
    factory = make_session_factory(engine)
    seed_products(factory)
    yield factory
    engine.dispose()
