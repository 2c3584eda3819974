"""Hosts on one machine: Linux network namespaces, each joined to one bridge by veth links.

A host is a namespace with one address per link (10.213.<n>.x/24); the test
process reaches every host through the bridge's own address (.1), as an
observer. A partition is a link set down on the bridge side (there is no tc
and no iptables here): the host, or one of its addresses, stops answering
anyone, and its own packets go nowhere. Only the namespaces' addresses carry
traffic; nothing is routed out of the machine.
"""

from __future__ import annotations

import ctypes
import os
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

CLONE_NEWNET = 0x40000000


def missing_reason() -> str | None:
    if os.geteuid() != 0:
        return "the hosts suite needs root (network namespaces, veth links)"
    if shutil.which("ip") is None:
        return "the hosts suite needs iproute2's `ip`"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`ip netns` does not work here: {probe.stderr.strip()}"
    return None


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Host:
    name: str
    netns: str
    links: dict[str, str] = field(default_factory=dict)  # address -> bridge-side veth

    @property
    def address(self) -> str:
        return next(iter(self.links))

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run on this host."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def server_socket(self, address: str, port: int) -> socket.socket:
        """A socket listening on this host's `address`, for a server run by the test process
        itself (a socket stays in the namespace it was made in)."""
        with inside(self.netns):
            return socket.create_server((address, port))


@contextmanager
def inside(netns: str) -> Iterator[None]:
    """The calling thread in `netns` for the block: network namespaces are per thread, so the
    rest of the process stays where it is."""
    libc = ctypes.CDLL(None, use_errno=True)

    def enter(fd: int) -> None:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns: {os.strerror(errno)}")

    with open("/proc/thread-self/ns/net") as own, open(f"/run/netns/{netns}") as target:
        enter(target.fileno())
        try:
            yield
        finally:
            enter(own.fileno())


class Lab:
    """A bridge and the hosts on it; `close()` removes every namespace and link it made."""

    def __init__(self) -> None:
        self.tag = f"{os.getpid() % 10000:04d}{random.randrange(100):02d}"[-5:]
        self.subnet = f"10.213.{random.randrange(1, 254)}"
        self.bridge = f"ofbr{self.tag}"
        self.hosts: dict[str, Host] = {}
        self._links = 0
        ip("link", "add", self.bridge, "type", "bridge")
        # A bridge takes the lowest MAC of its ports unless given one: each host added
        # would change the observer's MAC under the hosts' ARP caches (seconds of silence).
        ip("link", "set", self.bridge, "address", f"02:13:00:00:{random.randrange(256):02x}:01")
        ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    @property
    def observer(self) -> str:
        """The test process's own address on the bridge."""
        return f"{self.subnet}.1"

    def add_host(self, name: str, *, addresses: int = 1) -> Host:
        host = Host(name, f"of{self.tag}-{name}")
        ip("netns", "add", host.netns)
        ip("-n", host.netns, "link", "set", "lo", "up")
        if addresses > 1:
            # Several links on one subnet: each answers ARP for its own address only, and
            # speaks from it, so that one link cut leaves the other's traffic alone.
            subprocess.run(["ip", "netns", "exec", host.netns, "sysctl", "-q", "-w",
                            "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"],
                           check=True, capture_output=True)
        for _ in range(addresses):
            self._links += 1
            outside, inside = f"ofv{self.tag}{self._links}", f"ofi{self.tag}{self._links}"
            address = f"{self.subnet}.{self._links + 1}"
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", host.netns)
            ip("-n", host.netns, "addr", "add", f"{address}/24", "dev", inside)
            ip("-n", host.netns, "link", "set", inside, "up")
            ip("link", "set", outside, "master", self.bridge, "up")
            host.links[address] = outside
        self.hosts[name] = host
        return host

    def cut(self, host: Host, address: str | None = None) -> None:
        """Partition `host` (or only its `address`) from everybody."""
        for addr, link in host.links.items():
            if address in (None, addr):
                ip("link", "set", link, "down")

    def heal(self, host: Host, address: str | None = None) -> None:
        for addr, link in host.links.items():
            if address in (None, addr):
                ip("link", "set", link, "up")

    def close(self) -> None:
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
