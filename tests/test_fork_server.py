"""Grading workers forked from one warmed-up process (checker.grade.runner.ForkServer).

A real sshd on loopback and real learners: the same hosts graded by forked workers and by
workers that each start Python give the same reports; the forked workers are children of
the run's fork server, each in its own session (a deadline kills its process group, ssh
clients included) and the run leaves no process behind; a worker that hangs on a host is
killed at its deadline and the next host gets a fresh forked worker; a fork server that
cannot start leaves the run to plain workers.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sshd import LearnerUsers

from checker.grade.runner import Job, Outcome, WorkerPool
from checker.grade.sshconf import SshSetup

pytestmark = pytest.mark.integration

LAB = "01-hardware"


@pytest.fixture(scope="module")
def learners(sshd: Any) -> Any:
    users = LearnerUsers(sshd)
    names = [users.add("fa", groups=("kvm",)), users.add("fb"), users.add("fc")]
    yield names
    users.remove_all()


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _grade(sshd: Any, users: list[str], tmp: Path, **pool: Any) -> tuple[list[Outcome],
                                                                         dict[int, tuple]]:
    """Grade lab 01 on ``users``; each worker's (parent, session, parent's cmdline) as seen
    while it ran."""
    ssh = SshSetup(str(sshd.ssh_config), 10)
    seen: dict[int, tuple] = {}
    try:
        jobs = [Job(host=u, payload={
            "host": u, "spec": sshd.spec(u), "user": u, "labs": [LAB], "connect": None,
            "ssh_config": str(ssh.config), "timeout": 10, "lang": "en",
            "ssh_bin": str(ssh.bin)}) for u in users]
        p = WorkerPool(logdir=ssh.dir, env=ssh.path_env(dict(os.environ)), **pool)
        out = []
        for o in p.run(jobs):
            out.append(o)
            st = _stat(o.worker_pid) if o.worker_pid else None
            if st:
                ppid, sid = int(st[1]), int(st[3])
                seen[o.worker_pid] = (ppid, sid, _cmdline(ppid))  # type: ignore[index]
    finally:
        ssh.close()
    return out, seen


def _statuses(outcomes: list[Outcome]) -> dict[str, dict[str, str]]:
    return {o.host: {x["id"]: x["status"] for x in o.results[0]["report"]["objectives"]}
            for o in outcomes}


def _ours(cmdline: bytes) -> bool:
    """A grading worker (or fork server) of this checkout's Python (another checkout's tests
    may run at the same time on a developer's machine)."""
    return cmdline.startswith(sys.executable.encode() + b"\0") and \
        b"checker.grade.worker" in cmdline


def _workers_left(before: set[int]) -> list[int]:
    left = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) not in before and _ours(_cmdline(int(p.name))):
            st = _stat(int(p.name))
            if st and st[0] != "Z":
                left.append(int(p.name))
    return left


def _workers_now() -> set[int]:
    return {int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and _ours(_cmdline(int(p.name)))}


def test_forked_workers_grade_as_plain_workers_do_and_leave_nothing(sshd, learners, tmp_path):
    before = _workers_now()
    forked, seen = _grade(sshd, learners, tmp_path, workers=2)
    time.sleep(0.3)
    assert _workers_left(before) == []
    plain, seen_plain = _grade(sshd, learners, tmp_path, workers=2, fork=False)
    assert all(r["status"] == "graded" for o in forked + plain for r in o.results), \
        [o.results for o in forked + plain]
    assert _statuses(forked) == _statuses(plain)
    assert len(_statuses(forked)) == 3
    # forked: children of the run's fork server, each the leader of its own session
    assert seen and all(b"--fork-server" in cmd and sid == pid
                        for pid, (_ppid, sid, cmd) in seen.items()), seen
    # plain: children of this process
    assert seen_plain and all(ppid == os.getpid() for ppid, _sid, _cmd in seen_plain.values())
    time.sleep(0.3)
    assert _workers_left(before) == []


def test_a_forked_worker_stuck_on_a_host_is_killed_and_replaced(sshd, learners, tmp_path):
    """A learner whose shell sleeps: the host's deadline kills its forked worker (and its
    ssh clients); the other hosts are graded by another forked worker."""
    users = LearnerUsers(sshd)
    slow = users.add("fs")
    try:
        rc = users.home(slow) / ".bashrc"
        rc.write_text("sleep 30\n")
        os.chown(rc, users.home(slow).stat().st_uid, users.home(slow).stat().st_gid)
        before = _workers_now()
        t0 = time.monotonic()
        out, seen = _grade(sshd, [slow, *learners[:2]], tmp_path, workers=1, host_timeout=4)
        wall = time.monotonic() - t0
        by = {o.host: o for o in out}
        assert by[slow].results[0]["status"] == "timeout"
        assert all(by[u].results[0]["status"] == "graded" for u in learners[:2])
        assert wall < 25, wall
        assert len({by[u].worker_pid for u in learners[:2]}) == 1
        assert all(b"--fork-server" in cmd for _p, _s, cmd in seen.values()), seen
        time.sleep(0.3)
        assert _workers_left(before) == []
    finally:
        users.remove_all()


def test_without_a_working_fork_server_plain_workers_grade(sshd, learners, tmp_path,
                                                           monkeypatch):
    """The fork server cannot import the checker (a PYTHONPATH that breaks it is not
    reproducible portably; an interpreter that exits at once is): plain workers grade."""
    import checker.grade.runner as runner

    real_popen = runner.subprocess.Popen

    def popen(argv: list[str], **kw: Any) -> Any:
        if "--fork-server" in argv:
            argv = [argv[0], "-c", "raise SystemExit(3)"]
        return real_popen(argv, **kw)

    monkeypatch.setattr(runner.subprocess, "Popen", popen)
    out, seen = _grade(sshd, learners[:2], tmp_path, workers=2)
    assert all(o.results[0]["status"] == "graded" for o in out), [o.results for o in out]
    assert seen and all(ppid == os.getpid() for ppid, _s, _c in seen.values())


def test_a_fork_server_started_before_the_run_gives_its_workers_the_runs_environment(
        sshd, learners, tmp_path):
    """``virtlab grade`` starts the fork server before the run's ssh set-up exists
    (ForkServer.early): each worker gets the run's environment with its fork, so its ssh is
    the run's wrapper and its shared connection lives in the run's folder (a worker left with
    the server's environment would make an ssh set-up of its own, elsewhere)."""
    from checker.grade.runner import ForkServer

    before = _workers_now()
    server = ForkServer.early([LAB])
    assert server is not None
    ssh = SshSetup(str(sshd.ssh_config), 10)
    try:
        jobs = [Job(host=u, payload={
            "host": u, "spec": sshd.spec(u), "user": u, "labs": [LAB], "connect": None,
            "ssh_config": str(ssh.config), "timeout": 10, "lang": "en",
            "ssh_bin": str(ssh.bin)}) for u in learners[:2]]
        pool = WorkerPool(logdir=ssh.dir, env=ssh.path_env(dict(os.environ)), server=server,
                          workers=2)
        out = list(pool.run(jobs))
        sockets = sorted(ssh.dir.glob("cm-*"))
    finally:
        ssh.close()
        server.close()
    assert all(o.results[0]["status"] == "graded" for o in out), [o.results for o in out]
    assert len(sockets) == 2  # one per host, in the run's folder: the run's wrapper
    assert not server.log.exists()  # its own temporary log goes with it
    time.sleep(0.3)
    assert _workers_left(before) == []
