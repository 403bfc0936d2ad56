"""Faults: the daemon killed mid-check, SSH dropped mid-grading, a full disk and damaged files
under the gradebook, Ctrl-C at every stage of grading.

Each fault must give a clear status and message (never a traceback), lose no result already
recorded (the gradebook content is compared before and after) and leave no process behind
(every process the grading run started is followed by PID while it runs, and checked gone).
The hanging host (accepts, never answers) is in tests/test_grade.py.
"""

from __future__ import annotations

import csv
import errno
import functools
import json
import os
import pwd
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import REPO, cannot_run, run_virtlab, solved_state
from sshd import LearnerUsers, Sshd, dead_port

pytestmark = pytest.mark.integration

LAB1 = "01-hardware"


# --- following a grading run's processes ------------------------------------------------

def _stat(pid: int) -> tuple[int, str, int, int] | None:
    """(ppid, state, session id, start time) of a process, None when gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2:].split()
    return int(rest[1]), rest[0], int(rest[3]), int(rest[19])


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class ProcWatch:
    """Every descendant of one process, sampled while it runs (by PID and start time), and
    the grading run's private SSH folder (read from its workers' PATH): afterwards,
    :meth:`left` lists what is still alive, shared SSH masters included (they leave the
    process tree by daemonising, but carry the run's folder in their command line)."""

    def __init__(self, root: int):
        self.root = root
        self.seen: dict[int, int] = {}
        self.run_dirs: set[str] = set()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(0.02)

    def sample(self) -> None:
        parent: dict[int, int] = {}
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                st = _stat(int(p.name))
                if st:
                    parent[int(p.name)] = st[0]
        family = {self.root}
        changed = True
        while changed:
            changed = False
            for pid, ppid in parent.items():
                if ppid in family and pid not in family:
                    family.add(pid)
                    changed = True
        for pid in family - {self.root}:
            if pid not in self.seen:
                st = _stat(pid)
                if st:
                    self.seen[pid] = st[3]
            # the run's ssh folder, from its ssh clients' command lines (-F, the wrapper)
            for arg in _cmdline(pid).split(b"\0"):
                m = RUN_DIR.search(arg.decode(errors="replace"))
                if m:
                    self.run_dirs.add(m.group(0))

    def stop(self) -> None:
        self._stop.set()
        self._t.join(2)

    def left(self) -> list[str]:
        out = []
        for pid, start in self.seen.items():
            st = _stat(pid)
            if st and st[3] == start and st[1] != "Z":
                out.append(f"{pid} {_cmdline(pid)[:120]!r}")
        for p in Path("/proc").iterdir():
            if p.name.isdigit() and int(p.name) not in self.seen:
                cmd = _cmdline(int(p.name))
                if any(d.encode() in cmd for d in self.run_dirs):
                    out.append(f"{p.name} {cmd[:120]!r}")
                st = _stat(int(p.name))
                if st and st[2] == self.root and int(p.name) != self.root and st[1] != "Z":
                    out.append(f"{p.name} (in the run's session) {cmd[:120]!r}")
        return out


#: a grading run's ssh folder (checker.grade.sshconf.SshSetup: mkdtemp "vlg-" under /tmp)
RUN_DIR = re.compile(r"/tmp/vlg-[^/\s]+")


def start_grade(*args: str, db: Path,
                env: dict[str, str] | None = None) -> tuple[subprocess.Popen, ProcWatch]:
    p = subprocess.Popen([sys.executable, "-m", "checker", "grade", *args, "--db", str(db)],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **(env or {})}, start_new_session=True)
    return p, ProcWatch(p.pid)


def finish(p: subprocess.Popen, watch: ProcWatch, timeout: float = 90) -> tuple[str, str]:
    out, err = p.communicate(timeout=timeout)
    time.sleep(0.5)  # the run's last ssh -O exit lands
    watch.stop()
    assert watch.left() == [], watch.left()
    assert "Traceback" not in err and "internal error" not in err, err
    return out, err


def rows(db: Path, sql: str, *params: object) -> list[tuple]:
    c = sqlite3.connect(db)
    try:
        return c.execute(sql, params).fetchall()
    finally:
        c.close()


def results(db: Path) -> list[tuple]:
    return rows(db, "SELECT run_id, host, lab, status, reason, score, max_score, report "
                    "FROM results ORDER BY id")


def wait_for(pred, timeout: float = 60, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except sqlite3.Error:
            pass
        time.sleep(every)
    raise AssertionError("condition not reached in time")


# --- a class on a private sshd -----------------------------------------------------------

@pytest.fixture(scope="module")
def slow_class(sshd):
    """Four learners whose every login and every ``uname`` take ~0.25 s more (a slow login
    shell, a slow ``uname`` first on their PATH; virtlab's remote shell logs in once per host,
    and its one exchange of facts starts with ``uname``): grading one host lasts a couple of
    seconds, so a fault lands while a host is in flight."""
    users = LearnerUsers(sshd)
    shell = sshd.dir / "slow-shell"
    shell.write_text('#!/bin/sh\nsleep 0.25\nexec /bin/bash "$@"\n')
    shell.chmod(0o755)
    names = [users.add(f"s{i}") for i in range(4)]
    for n in names:
        subprocess.run(["usermod", "-s", str(shell), n], check=True)
        home = users.home(n)
        (home / "bin").mkdir()
        (home / "bin" / "uname").write_text('#!/bin/sh\nsleep 0.25\nexec /bin/uname "$@"\n')
        (home / "bin" / "uname").chmod(0o755)
        (home / ".bashrc").write_text('PATH="$HOME/bin:$PATH"\n', encoding="utf-8")
        subprocess.run(["chown", "-R", f"{n}:{n}", str(home)], check=True)
    yield names
    users.remove_all()


def specs(sshd, names) -> str:
    return ",".join(sshd.spec(n) for n in names)


# --- libvirtd killed in the middle of a check ----------------------------------------------

DAEMON_DOWN = ("does not answer", "ne répond pas")


def test_libvirtd_killed_in_the_middle_of_a_check(sandbox, monkeypatch, tmp_path):
    """A real SIGKILL of the sandbox's libvirtd between two objectives of lab 04 on a solved
    state: the objectives read before stay, the others say the daemon does not answer; a
    later check (same process, its cached connection now dead) recovers once it is back."""
    from checker.catalog import resolve
    from checker.engine import check, load_checks
    from checker.reporters import render

    with solved_state(sandbox, ("03", "04")) as user:
        lab = resolve("04")
        checks = load_checks(lab)
        before = check(lab, connect=sandbox.uri, user=user, lang="en")
        assert before.passed, [(o.id, o.message) for o in before.objectives if o.status != "pass"]
        ids = [o.id for o in lab.objectives]
        victim = ids[len(ids) // 3]
        fn = checks[victim]
        killed: list[int] = []

        @functools.wraps(fn)
        def kill_then_check(**kw):
            if not killed:
                daemon = sandbox.daemon
                assert daemon is not None
                pid = daemon.pid
                assert Path(f"/proc/{pid}/comm").read_text().strip() == "libvirtd"
                os.kill(pid, signal.SIGKILL)
                daemon.wait(10)
                sandbox.stop()  # forget the dead daemon and the test's connection to it
                killed.append(pid)
            return fn(**kw)

        mod = sys.modules[fn.__module__]  # load_checks registers each check module there
        assert getattr(mod, fn.__name__) is fn
        monkeypatch.setattr(mod, fn.__name__, kill_then_check)
        report = check(lab, connect=sandbox.uri, user=user, lang="en")
        monkeypatch.undo()
        assert killed and not sandbox.running
        st = {o.id: (o.status, o.message) for o in report.objectives}
        for oid in ids[:ids.index(victim)]:
            assert st[oid][0] == "pass", (oid, st[oid])
        after = [st[oid] for oid in ids[ids.index(victim):]]
        errors = [m for s, m in after if s == "error"]
        assert errors, after
        for s, m in after:
            assert s in ("pass", "fail", "error"), (s, m)
            if s == "error":
                assert any(w in m for w in DAEMON_DOWN), m
                assert "Could not evaluate" not in m
        for fmt in ("text", "json", "junit", "html"):
            assert render(report, fmt)
        # the CLI against the dead daemon: a clear message, exit 1, no traceback
        r = run_virtlab("check", "04", "--connect", sandbox.uri, "--user", user, "--lang", "en")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Traceback" not in r.stderr and "does not answer" in r.stdout
        sandbox.start()
        again = check(lab, connect=sandbox.uri, user=user, lang="en")
        assert again.passed, [(o.id, o.message) for o in again.objectives if o.status != "pass"]


# --- SSH dropped mid-grading ----------------------------------------------------------------

def _sessions_of(sshd: Sshd, user: str) -> list[int]:
    """PIDs of the sshd processes serving ``user`` (children of our own sshd)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        cmd = _cmdline(int(p.name)).replace(b"\0", b" ").decode(errors="replace")
        if cmd.startswith(f"sshd: {user}"):
            pid, chain = int(p.name), []
            while pid > 1 and len(chain) < 10:
                st = _stat(pid)
                if not st:
                    break
                pid = st[0]
                chain.append(pid)
            if sshd.proc is not None and sshd.proc.pid in chain:
                out.append(int(p.name))
    return out


def _pids_of_uid(uid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if p.stat().st_uid == uid:
                    out.append(int(p.name))
            except OSError:
                pass
    return out


def test_the_ssh_connection_of_one_host_dropped_mid_grading(sshd, slow_class, tmp_path):
    victim, *others = slow_class[:3]
    db = tmp_path / "gb.sqlite"
    p, watch = start_grade(LAB1, "--hosts", specs(sshd, [victim, *others]), "--ssh-config",
                           str(sshd.ssh_config), "--workers", "2", "--lang", "en",
                           "--json", str(tmp_path / "c.json"), db=db)
    # wait until one of its objectives runs a command (past the connection and the hints
    # read), and cut the connection while that command is in flight
    uid = pwd.getpwnam(victim).pw_uid
    wait_for(lambda: any(b"/dev/kvm" in _cmdline(pid) or b"/proc/" in _cmdline(pid)
                         for pid in _pids_of_uid(uid)), timeout=60, every=0.005)
    killed = _sessions_of(sshd, victim)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    assert killed
    out, err = finish(p, watch)
    assert p.returncode in (0, 3), out + err
    doc = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    by = {x["learner"]: x["results"][LAB1] for x in doc["learners"]}
    for name in others:  # the other hosts never noticed
        assert by[name]["status"] == "graded"
        assert all(o["status"] != "error" for o in by[name]["report"]["objectives"])
    res = by[victim]
    if res["status"] == "graded":  # lost mid-check: those objectives say so
        lost = [o for o in res["report"]["objectives"] if o["status"] == "error"]
        assert lost and all("SSH connection to the host lost" in o["message"] for o in lost), \
            [(o["id"], o["status"], o["message"][:80]) for o in res["report"]["objectives"]]
    else:  # lost while connecting
        assert res["status"] in ("unreachable", "timeout") and res["reason"], res
    (status,), = rows(db, "SELECT status FROM runs")
    assert status == "complete"


def test_sshd_stopped_while_grading_several_hosts(tmp_path):
    """The class's sshd stops after the first host: the host in flight ends on its open
    connection or is reported, the others are unreachable, nothing already graded is lost."""
    server = Sshd().start()
    users = LearnerUsers(server)
    try:
        names = [users.add(f"t{i}") for i in range(4)]
        slow = server.dir / "slow-shell"
        slow.write_text('#!/bin/sh\nsleep 0.25\nexec /bin/bash "$@"\n')
        slow.chmod(0o755)
        for n in names:
            subprocess.run(["usermod", "-s", str(slow), n], check=True)
        db = tmp_path / "gb.sqlite"
        p, watch = start_grade(LAB1, "--hosts", specs(server, names), "--ssh-config",
                               str(server.ssh_config), "--workers", "1", "--timeout", "3",
                               db=db)
        wait_for(lambda: len(results(db)) >= 1)
        kept = results(db)
        server.stop()
        out, err = finish(p, watch)
        assert p.returncode == 3, out + err
        got = {h: (s, why) for _, h, _, s, why, *_ in results(db)}
        assert set(got) == {server.spec(n) for n in names}
        assert results(db)[:len(kept)] == kept  # nothing recorded was lost or changed
        assert got[server.spec(names[0])][0] == "graded"
        refused = [h for h, (s, why) in got.items()
                   if s == "unreachable" and "refused" in why.lower()]
        assert len(refused) >= 2, got
        from checker.grade.exports import HOST_STATUS
        from checker.i18n import resolve_lang

        # the summary names the status in the reader's language (the grade inherits our env)
        assert HOST_STATUS["unreachable"].get(resolve_lang()) in out
    finally:
        server.close()
        users.remove_all()


# --- the gradebook's disk fills up ----------------------------------------------------------

@contextmanager
def small_disk(size: str):
    mnt = Path(tempfile.mkdtemp(prefix="vl-full-"))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        cannot_run(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        mnt.rmdir()


def fill(mnt: Path) -> Path:
    f = mnt / "filler"
    with open(f, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return f


def test_a_full_disk_under_the_gradebook(sshd, slow_class, tmp_path):
    with small_disk("4m") as mnt:
        db = mnt / "gb.sqlite"
        hosts = specs(sshd, slow_class[:3])
        p, watch = start_grade(LAB1, "--hosts", hosts, "--ssh-config", str(sshd.ssh_config),
                               "--workers", "1", "--lang", "en", db=db)
        wait_for(lambda: len(results(db)) >= 1)
        filler = fill(mnt)
        kept = results(db)
        out, err = finish(p, watch)
        assert p.returncode == 2, out + err
        assert "full" in err and "--resume" in err, err
        filler.unlink()
        assert results(db)[:len(kept)] == kept and len(kept) >= 1
        # space is back: the interrupted class is finished where it stopped
        r = run_virtlab("grade", "--resume", "--db", str(db), "--lang", "en")
        assert r.returncode == 0, r.stdout + r.stderr
        got = {h: s for _, h, _, s, *_ in results(db)}
        assert set(got) == set(hosts.split(",")) and set(got.values()) == {"graded"}
        assert len(results(db)) == 3  # nothing graded twice
        # and a gradebook that cannot even be created on a full disk
        filler = fill(mnt)
        r = run_virtlab("grade", LAB1, "--hosts", hosts, "--db", str(mnt / "new.sqlite"))
        assert r.returncode == 2 and "full" in r.stderr and "Traceback" not in r.stderr, r.stderr
        filler.unlink()


# --- damaged gradebooks -------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_gradebook(tmp_path_factory) -> bytes:
    """The bytes of a gradebook holding a run of 30 hosts (no WAL left over)."""
    from checker.grade.gradebook import Gradebook
    from checker.grade.targets import from_specs

    path = tmp_path_factory.mktemp("gb") / "gb.sqlite"
    gb = Gradebook(path)
    hosts = [f"ssh://u{i}@pc{i}" for i in range(30)]
    run = gb.start_run([LAB1], from_specs(hosts), lang="en")
    for h in hosts:
        gb.record(run, h, [{"lab": LAB1, "status": "graded", "reason": "", "report": {
            "score": 3, "max_score": 9, "duration_s": 0.1, "objectives": [
                {"id": "dev-kvm", "status": "fail", "points": 2, "earned": 0,
                 "message": "x" * 400, "evidence": {"a": 1}}]}}])
    gb.finish_run(run, "complete")
    gb.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    gb.close()
    return path.read_bytes()


def damaged(real: bytes) -> list[tuple[str, bytes | None]]:
    def foreign(sql: str) -> bytes:
        with tempfile.TemporaryDirectory() as d:
            c = sqlite3.connect(Path(d) / "x.sqlite")
            c.executescript(sql)
            c.commit()
            c.close()
            return (Path(d) / "x.sqlite").read_bytes()

    n = len(real)
    return [
        ("garbage", os.urandom(5000)),
        ("text", b"id,score\nalice,3\n"),
        *[(f"truncated-{cut}", real[:cut]) for cut in (100, 4096, n // 3, n // 2, n - 4096)],
        ("zeroed-page", real[:8192] + b"\0" * 4096 + real[12288:]),
        ("another-schema", foreign("CREATE TABLE runs (a, b); INSERT INTO runs VALUES (1, 2);")),
        ("another-program",
         foreign("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('x');")),
        ("bad-version", foreign("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                                "INSERT INTO meta VALUES ('schema_version', 'abc');")),
        ("newer-version", foreign("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                                  "INSERT INTO meta VALUES ('schema_version', '99');")),
    ]


def test_damaged_gradebooks_are_refused_clearly_and_left_untouched(real_gradebook, tmp_path):
    host = f"ssh://ghost@127.0.0.1:{dead_port()}"
    for name, data in damaged(real_gradebook):
        db = tmp_path / f"{name}.sqlite"
        db.write_bytes(data)
        for args in (("grade", LAB1, "--hosts", host, "--timeout", "2"),
                     ("grade", "--resume"), ("grade", "--retry-unreachable")):
            r = run_virtlab(*args, "--db", str(db), "--lang", "en")
            assert r.returncode == 2, (name, args, r.stdout + r.stderr)
            assert ("Traceback" not in r.stderr
                    and "internal error" not in r.stderr), (name, r.stderr)
            assert str(db) in r.stderr, (name, r.stderr)
            assert db.read_bytes() == data, f"{name}: the file was changed"


# --- Ctrl-C at every stage ------------------------------------------------------------------

def ctrl_c(p: subprocess.Popen) -> None:
    """What a terminal does: SIGINT to the foreground process group."""
    os.killpg(p.pid, signal.SIGINT)


def test_ctrl_c_before_the_first_host(sshd, slow_class, tmp_path):
    db = tmp_path / "gb.sqlite"
    p, watch = start_grade(LAB1, "--hosts", specs(sshd, slow_class[:2]), "--ssh-config",
                           str(sshd.ssh_config), "--workers", "1", "--lang", "en", db=db)
    wait_for(lambda: rows(db, "SELECT count(*) FROM runs")[0][0] == 1 and watch.run_dirs)
    ctrl_c(p)
    out, err = finish(p, watch)
    assert p.returncode == 130, out + err
    assert "Interrupted" in err and f"--resume --db {db}" in err
    assert rows(db, "SELECT status, finished_at IS NOT NULL FROM runs") == [("interrupted", 1)]
    assert results(db) == []


def test_ctrl_c_in_the_middle_of_a_host(sshd, slow_class, tmp_path):
    db = tmp_path / "gb.sqlite"
    p, watch = start_grade(LAB1, "--hosts", specs(sshd, slow_class[:3]), "--ssh-config",
                           str(sshd.ssh_config), "--workers", "1", "--lang", "en", db=db)
    wait_for(lambda: len(results(db)) == 1)
    kept = results(db)
    time.sleep(0.5)  # the second host is being graded
    ctrl_c(p)
    out, err = finish(p, watch)
    assert p.returncode == 130, out + err
    assert "Interrupted" in err and "--resume" in err
    assert results(db) == kept  # the first host, exactly as recorded
    assert kept[0][3] == "graded" and json.loads(kept[0][7])["objectives"]
    assert rows(db, "SELECT status FROM runs") == [("interrupted",)]


def test_ctrl_c_during_the_export(sshd, slow_class, tmp_path):
    db = tmp_path / "gb.sqlite"
    outs = {"csv": tmp_path / "g.csv", "json": tmp_path / "c.json", "html": tmp_path / "c.html"}
    roster = tmp_path / "participants.csv"  # Moodle's participants export: the usernames
    roster.write_text("Username,Email address\n" + "".join(
        f"{u},{u}@example.org\n" for u in slow_class[:2]), encoding="utf-8")
    p, watch = start_grade(LAB1, "--hosts", specs(sshd, slow_class[:2]), "--ssh-config",
                           str(sshd.ssh_config), "--workers", "2", "--lang", "en",
                           *(x for k, v in outs.items() for x in (f"--{k}", str(v))),
                           "--csv-id", "username", "--roster", str(roster), db=db)
    # the run is closed (complete, its SSH folder gone): the exports are being written
    wait_for(lambda: watch.run_dirs and rows(db, "SELECT status FROM runs") == [("complete",)]
             and not any(Path(d).exists() for d in watch.run_dirs), every=0.005)
    kept = results(db)
    ctrl_c(p)
    out, err = finish(p, watch)
    assert p.returncode == 130, out + err
    assert "while writing the exports" in err, err
    assert results(db) == kept and len(kept) == 2
    assert rows(db, "SELECT status FROM runs") == [("complete",)]
    assert not list(tmp_path.glob(".*virtlab-tmp"))  # no half-written export
    if outs["html"].exists():
        assert outs["html"].read_text(encoding="utf-8").rstrip().endswith("</html>")
    # the command it printed writes them all, with the same options
    again = err[err.index("virtlab grade --resume"):].split("\n")[0].split()[2:]
    assert "--roster" in again and "--csv-id" in again
    r = run_virtlab("grade", *again)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(outs["csv"], encoding="utf-8", newline="") as f:
        assert len(list(csv.reader(f))) == 3
    assert json.loads(outs["json"].read_text(encoding="utf-8"))["learners"]
    assert outs["html"].read_text(encoding="utf-8").rstrip().endswith("</html>")
