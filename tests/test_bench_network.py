"""The benchmark's delayed link (benchmarks/netlink.py): the delay asked is the delay got,
measured by ping, and the wire counters count what crossed (a real TCP exchange)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import cannot_run

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import netlink  # noqa: E402
from netlink import DelayedLink, LinkError  # noqa: E402

SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7777)); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
while True:
    d = c.recv(100)
    if not d:
        break
    c.sendall(b"answer:" + d)
"""

CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], 7777), 5)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for i in range(3):
    c.sendall(b"q%d" % i)
    assert c.recv(100) == b"answer:q%d" % i
c.close()
"""


@pytest.fixture(scope="module")
def link() -> Iterator[DelayedLink]:
    if os.geteuid() != 0:
        cannot_run("network namespaces and TAP devices need root")
    if not os.path.exists("/dev/net/tun"):
        cannot_run("/dev/net/tun is missing: no TAP devices")
    lk = DelayedLink(hosts=2)
    try:
        lk.open()
    except (LinkError, OSError, subprocess.SubprocessError) as e:
        lk.close()
        cannot_run(f"cannot make the delayed link: {e}")
    try:
        yield lk
    finally:
        lk.close()
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert lk.ns_i not in out and lk.ns_l not in out  # nothing left behind


@pytest.mark.parametrize("rtt_ms", [0, 20])
def test_ping_gets_the_rtt_asked(link: DelayedLink, rtt_ms: int) -> None:
    link.set_rtt(rtt_ms / 1000)
    link.ping(netlink.host_addr(0), count=2)  # warm-up
    s = link.ping(netlink.host_addr(1), count=5)
    assert s.received == s.sent == 5
    assert netlink.rtt_ok(s), s
    assert s.min_ms >= rtt_ms  # never faster than asked


def test_counters_see_a_tcp_exchange(link: DelayedLink) -> None:
    link.set_rtt(0.002)
    addr = netlink.host_addr(0)
    srv = subprocess.Popen(link.exec_prefix("l") + [sys.executable, "-c", SERVER, addr],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
        link.reset_counters()
        r = subprocess.run(link.exec_prefix("i") + [sys.executable, "-c", CLIENT, addr],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        srv.wait(10)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    c = link.counters()
    to_l, to_i = c["to_learner"], c["to_instructor"]
    assert to_l["syns"] == 1 and to_i["syns"] == 0
    assert to_l["data_segments"] == 3 and to_l["data_bytes"] == 6
    assert to_i["data_segments"] == 3 and to_i["data_bytes"] == 3 * len(b"answer:q0")
    assert to_l["turns"] == 3 and to_i["turns"] == 3
    assert to_l["dropped"] == 0 and to_i["dropped"] == 0
