"""The benchmark's delayed link (benchmarks/netlink.py): the delay asked is the delay got,
measured by ping, and the wire counters count what crossed (a real TCP exchange); and what
bench_network.py derives and samples: per-lab round trips, grading workers, CPU time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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


def test_the_class_run_counts_its_grading_workers_not_its_fork_server(tmp_path) -> None:
    """bench_network.grading_workers: the workers a run's process has (forked by its fork
    server or started as processes of their own), the fork server not counted; another
    process's workers not counted either."""
    import bench_network

    from checker.grade.runner import ForkServer

    env = dict(os.environ, PYTHONPATH=str(BENCH.parent))
    plain = subprocess.Popen([sys.executable, "-m", "checker.grade.worker"], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
    server = ForkServer(env, tmp_path / "fork-server.log", ["01"])
    socks = []
    try:
        assert plain.stdout is not None and b"ready" in plain.stdout.readline()
        for i in range(2):
            socks.append(server.fork(tmp_path / f"worker-{i}.log"))
            assert b"ready" in socks[-1].recv(200)  # one line each, the worker's pid
        assert bench_network.grading_workers(os.getpid()) == 3
        assert bench_network.grading_workers(server.proc.pid) == 2
        assert bench_network.grading_workers(plain.pid) == 1  # a worker itself
    finally:
        for s in socks:
            s.close()  # EOF: each forked worker ends
        server.close()
        assert plain.stdin is not None
        plain.stdin.close()
        plain.wait(10)
    deadline = time.monotonic() + 10
    while bench_network.grading_workers(os.getpid()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bench_network.grading_workers(os.getpid()) == 0


def test_per_lab_round_trips_are_the_wire_turns_and_the_clock(tmp_path) -> None:
    """The per-lab figures the table, the JSON and run_all.py print: the turns counted on
    the wire at the lowest RTT, the round trips the clock implies at RTTs of 10 ms or more."""
    from bench_network import NetResult, Run

    def run(seconds: float, turns: int) -> Run:
        side = {"syns": 1, "data_segments": turns + 2, "turns": turns}
        return Run(seconds, {"to_learner": side, "to_instructor": side})

    res = NetResult(["01", "02"], 60, True)
    res.check = {0.0: {"01": run(1.0, 12), "02": run(2.0, 30)},
                 2.0: {"01": run(1.1, 12), "02": run(2.1, 30)},
                 60.0: {"01": run(1.72, 12), "02": run(3.8, 30)}}
    per = res.per_lab()
    assert per["01"] == {"rtt_ms": 0.0, "connections": 1, "messages": 14, "turns": 12,
                         "implied_round_trips": {"60": 12}}
    assert per["02"]["turns"] == 30 and per["02"]["implied_round_trips"] == {"60": 30}
    assert json.loads(json.dumps(res.as_dict()))["per_lab"] == per


def test_the_cpu_group_counts_detached_descendants_too() -> None:
    """bench_network.CpuGroup: the CPU of a command's whole tree, a detached grandchild
    (what an ssh master with ControlPersist is) included."""
    import bench_network

    if os.geteuid() != 0:
        cannot_run("a cpuacct cgroup needs root")
    group = bench_network.CpuGroup.make()
    if group is None:
        cannot_run("no writable cgroup v1 cpuacct hierarchy here")
    burn = ("import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    t = time.process_time()\n"
            "    while time.process_time() - t < 0.3:\n"
            "        pass\n"
            "    os._exit(0)\n")
    try:
        r = subprocess.run(group.prefix() + [sys.executable, "-c", burn], timeout=60)
        assert r.returncode == 0
        deadline = time.monotonic() + 30  # the detached grandchild ends after its parent
        while (group.path / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert group.seconds() >= 0.3
    finally:
        group.close()
    assert not group.path.exists()


def test_the_learners_group_counts_a_running_server_and_what_it_starts_later() -> None:
    """bench_network.LearnerCpu: a process already running (the learners' sshd, libvirtd)
    is put in the group; the CPU of what it starts afterwards (a session's commands) is
    counted, and not what ran before it joined."""
    import bench_network

    if os.geteuid() != 0:
        cannot_run("a cpuacct cgroup needs root")
    learners = bench_network.LearnerCpu()
    if learners.group is None:
        cannot_run("no writable cgroup v1 cpuacct hierarchy here")
    # a "server": burns 0.3 s alone first, then, told to, starts a child that burns 0.3 s
    server = ("import os, subprocess, sys, time\n"
              "t = time.process_time()\n"
              "while time.process_time() - t < 0.3:\n"
              "    pass\n"
              "print('ready', flush=True)\n"
              "sys.stdin.readline()\n"
              "subprocess.run([sys.executable, '-c', 'import time\\nt = time.process_time()\\n"
              "while time.process_time() - t < 0.3: pass'])\n")
    try:
        with subprocess.Popen([sys.executable, "-c", server], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None and proc.stdin is not None
            assert proc.stdout.readline().strip() == "ready"
            learners.add(proc.pid)
            before = learners.seconds()
            assert before is not None and before < 0.2  # its first 0.3 s are not the group's
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.wait(60) == 0
        after = learners.seconds()
        assert after is not None and after - before >= 0.3
        assert learners.guests() is None  # no sandbox: no guests' figure
    finally:
        learners.close()
    assert learners.group is not None and not learners.group.path.exists()
