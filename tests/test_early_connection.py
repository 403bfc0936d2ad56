"""Each host's ssh connection opened by the runner while its worker starts (issue #17).

A real sshd on loopback and real learners. The proof that the worker rides the connection
the runner opened: the run's own ssh_config here holds no key, so a worker connecting by
itself is refused; only the early connection (given the key) can log in. Also: a host that
refuses is answered from that one attempt (its worker never gets the job), an attempt that
does not end is cut and the worker tries itself, and a run that stops ends the attempts.
"""

from __future__ import annotations

import doctest
import os
import time
from pathlib import Path
from typing import Any

import pytest
from sshd import LearnerUsers, dead_port

import checker.grade.sshconf
import checker.grade.targets
import checker.grade.worker
from checker.grade.grading import early_argv
from checker.grade.runner import Job, Outcome, WorkerPool
from checker.grade.sshconf import SshSetup, connect_argv
from checker.grade.targets import HostTarget

pytestmark = pytest.mark.integration

LAB = "01-hardware"


@pytest.fixture(scope="module")
def learner(sshd: Any) -> Any:
    users = LearnerUsers(sshd)
    yield users.add("early", groups=("kvm",))
    users.remove_all()


@pytest.fixture()
def keyless(sshd: Any, tmp_path: Path) -> Path:
    """The test sshd's client config without its key: ssh alone cannot log in with it."""
    cfg = tmp_path / "ssh_config"
    cfg.write_text("".join(ln for ln in Path(sshd.ssh_config).read_text().splitlines(True)
                           if "IdentityFile" not in ln))
    return cfg


def _pid_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _run(ssh: SshSetup, jobs: list[Job], stop_after: int | None = None,
         **pool: Any) -> list[Outcome]:
    p = WorkerPool(logdir=ssh.dir, env=ssh.path_env(dict(os.environ)), **pool)
    out: list[Outcome] = []
    for o in p.run(jobs):
        out.append(o)
        if stop_after is not None and len(out) >= stop_after:
            break
    return out


def _job(sshd: Any, ssh: SshSetup, user: str, argv: list[str] | None, labs: tuple[str, ...] =
         (LAB,), timeout: int = 10) -> Job:
    return Job(host=user, payload={
        "host": user, "spec": sshd.spec(user), "user": user, "labs": list(labs),
        "connect": None, "ssh_config": str(ssh.config), "timeout": timeout, "lang": "en",
        "ssh_bin": str(ssh.bin), **({"connect_argv": argv} if argv else {})})


def _with_key(sshd: Any, ssh: SshSetup, user: str) -> list[str]:
    argv = connect_argv(ssh.bin, user, "127.0.0.1", sshd.port)
    return [argv[0], "-i", str(sshd.client_key), *argv[1:]]


def test_the_worker_rides_the_connection_the_runner_opened(sshd, learner, keyless):
    ssh = SshSetup(str(keyless), 10)
    try:
        alone, = _run(ssh, [_job(sshd, ssh, learner, None)], workers=1)
        early, = _run(ssh, [_job(sshd, ssh, learner, _with_key(sshd, ssh, learner))], workers=1)
        sockets = sorted(ssh.dir.glob("cm-*"))
    finally:
        ssh.close()
    # without the early connection the worker cannot log in (the premise of this test)
    assert alone.results[0]["status"] == "unreachable", alone.results
    assert "permission denied" in alone.results[0]["reason"].lower()
    # with it, the worker's every command and its login check went through it
    res = early.results[0]
    assert res["status"] == "graded", res
    assert res["report"]["user"] == learner
    assert len(sockets) == 1  # one shared connection: the runner's


def _setups_including(config: Path) -> list[Path]:
    """The ssh set-ups (checker.grade.sshconf.SshSetup folders) made on top of ``config``."""
    return [c.parent for c in Path("/tmp").glob("vlg-*/ssh_config")
            if f"Include {config}" in c.read_text(encoding="utf-8", errors="replace")]


def test_a_host_with_its_own_ssh_options_rides_it_through_its_own_wrapper(sshd, learner,
                                                                          keyless):
    """An inventory host's options (checker.grade.hostssh: its wrapper first on PATH, which
    runs the run's): its worker still takes the run's wrapper as its own, so it rides the
    runner's connection and sets up no ssh of its own (which would hide the host's options
    from libvirt and be left behind in /tmp by the worker's os._exit)."""
    from checker.grade.hostssh import host_bin

    ssh = SshSetup(str(keyless), 10)
    try:
        bindir = host_bin(ssh, ("-o", "LogLevel=ERROR"))
        argv = connect_argv(bindir, learner, "127.0.0.1", sshd.port)
        job = _job(sshd, ssh, learner, [argv[0], "-i", str(sshd.client_key), *argv[1:]])
        job.payload["ssh_bin"] = str(bindir)
        o, = _run(ssh, [job], workers=1)
        own = _setups_including(ssh.config)
    finally:
        ssh.close()
    assert o.results[0]["status"] == "graded", o.results
    assert own == []


def test_a_host_that_refuses_is_answered_from_the_one_attempt(sshd, learner):
    ssh = SshSetup(str(sshd.ssh_config), 10)
    try:
        argv = connect_argv(ssh.bin, learner, "127.0.0.1", dead_port())
        # an unknown lab: a worker given this job would answer "error"
        o, = _run(ssh, [_job(sshd, ssh, learner, argv, labs=("no-such-lab", LAB))], workers=1)
    finally:
        ssh.close()
    assert [r["status"] for r in o.results] == ["unreachable", "unreachable"], o.results
    assert all("connection refused" in r["reason"].lower() for r in o.results)
    assert [r["lab"] for r in o.results] == ["no-such-lab", LAB]


def test_an_attempt_that_does_not_end_is_cut_and_the_worker_connects(sshd, learner, tmp_path):
    # a connect timeout of 3 s: short, yet a loaded machine's sshd still answers within it
    ssh = SshSetup(str(sshd.ssh_config), 3)
    pidfile = tmp_path / "attempt.pid"
    try:
        stuck = ["sh", "-c", f'echo $$ > "{pidfile}"; exec sleep 120']
        t0 = time.monotonic()
        o, = _run(ssh, [_job(sshd, ssh, learner, stuck, timeout=3)], workers=1)
        wall = time.monotonic() - t0
    finally:
        ssh.close()
    assert o.results[0]["status"] == "graded", o.results
    pid = int(pidfile.read_text())
    assert not _pid_alive(pid)
    assert wall < 60  # cut after its connect timeout and a margin, not left to run


def test_a_run_that_stops_ends_the_attempts_in_flight(sshd, learner, tmp_path):
    ssh = SshSetup(str(sshd.ssh_config), 10)
    pidfile = tmp_path / "attempt.pid"
    stuck = ["sh", "-c", f'echo $$ > "{pidfile}"; exec sleep 120']
    try:
        jobs = [_job(sshd, ssh, learner, None), _job(sshd, ssh, "other", stuck)]
        jobs[1].host = "other"
        out = _run(ssh, jobs, stop_after=1, workers=2)
    finally:
        ssh.close()
    assert [o.host for o in out] == [learner]
    pid = int(pidfile.read_text())
    assert not _pid_alive(pid)


def test_an_inventory_that_sets_shared_connections_keeps_its_say(tmp_path):
    ssh = SshSetup(None, 10)
    try:
        plain = HostTarget("pc1", "ansible://pc1", "alice", ssh_user="alice", ssh_host="10.0.0.1",
                           ssh_port=2222, ssh_args=("-i", "/k"), inventory_login=True)
        own = HostTarget("pc2", "ansible://pc2", "bob", ssh_user="bob", ssh_host="10.0.0.2",
                         ssh_args=("-o", "ControlMaster=no"), inventory_login=True)
        # no ansible_user: testinfra lets ssh choose the login, the runner cannot match it
        unnamed = HostTarget("pc3", "ansible://pc3", "carol", ssh_user="carol",
                             ssh_host="10.0.0.3")
        argv = early_argv(ssh, plain)
        assert argv is not None and argv[-2:] == ["--", "10.0.0.1"]
        assert ["-o", "User=alice"] == argv[1:3] and "Port=2222" in argv
        assert Path(argv[0]).parent != ssh.bin  # the host's own wrapper (its key)
        assert early_argv(ssh, own) is None
        assert early_argv(ssh, unnamed) is None
    finally:
        ssh.close()


def test_the_doctests():
    for mod in (checker.grade.sshconf, checker.grade.worker, checker.grade.targets):
        failed, tried = doctest.testmod(mod)
        assert tried and not failed, mod.__name__
