"""virtlab grade against real hosts: a real sshd on loopback, real learner accounts.

The class: learners whose state differs (in group kvm or not; for lab 02 also libvirt), a
port where nothing listens (unreachable), a listener that accepts and never answers (the
hanging host), a learner whose login never returns (hangs after the connection), and for lab
02 the sandbox's libvirtd read over SSH (qemu+ssh, riding the host's shared connection).
"""

from __future__ import annotations

import csv
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_virtlab
from consumers import MoodleUser, check_json, check_moodle_csv
from sshd import HangingListener, LearnerUsers, dead_port

pytestmark = pytest.mark.integration

LAB1 = "01-hardware"
TIMEOUT = 3  # --timeout for the class: the hanging host costs this much


@pytest.fixture(scope="module")
def learners(sshd):
    users = LearnerUsers(sshd)
    made = {"kvm": users.add("kvm", groups=("kvm",)), "plain": users.add("plain")}
    # a learner whose login shell never returns: SSH connects, no command ever ends
    hang = sshd.dir / "hang-shell"
    pids = sshd.dir / "hang-pids"
    hang.write_text(f"#!/bin/sh\necho $$ >> {pids}\nexec sleep 120\n")
    hang.chmod(0o755)
    made["stuck"] = users.add("stuck")
    subprocess.run(["usermod", "-s", str(hang), made["stuck"]], check=True)
    yield made
    if pids.exists():
        for pid in pids.read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    users.remove_all()


@pytest.fixture(scope="module")
def hanging():
    h = HangingListener()
    yield h
    h.close()


def grade(*args: str, db: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_virtlab("grade", *args, "--db", str(db), timeout=timeout)


def rows(db: Path, sql: str, *params: object) -> list[tuple]:
    c = sqlite3.connect(db)
    try:
        return c.execute(sql, params).fetchall()
    finally:
        c.close()


def lingering() -> set[int]:
    """PIDs of processes that belong to a grading run of this checkout (workers, shared ssh
    connections): started from it (their working directory), so that another checkout's
    tests grading on the same machine at the same time are not counted."""
    out = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes()
                cwd = os.readlink(p / "cwd")
            except OSError:
                continue
            if (b"/tmp/vlg-" in cmd or b"checker.grade.worker" in cmd) and \
                    Path(cwd).is_relative_to(REPO):
                out.add(int(p.name))
    return out


def local_statuses(lab: str, user: str) -> dict[str, str]:
    """The same lab checked on this machine for the same learner, without SSH."""
    from checker.engine import check

    return {o.id: o.status for o in check(lab, "local://", user=user, lang="en").objectives}


# --- one class, lab 01 ------------------------------------------------------------------

def moodle_name(login: str) -> str:
    return f"m.{login}"


def roster_csv(*logins: str) -> str:
    """Moodle's participants export for these learners: their Moodle username differs from
    their login; their email's local part is the login."""
    lines = ["First name,Last name,Username,Email address,Roles,Groups"]
    lines += [f"{x},Test,{moodle_name(x)},{x}@example.org,Student,TP1" for x in logins]
    return "\ufeff" + "\r\n".join(lines) + "\r\n"


def moodle_users(*logins: str) -> list[MoodleUser]:
    return [MoodleUser(i, moodle_name(x), f"{x}@example.org") for i, x in enumerate(logins, 1)]


@pytest.fixture(scope="module")
def class_run(sshd, learners, hanging, tmp_path_factory):
    """One grading of lab 01: two learners, the unreachable and the hanging host."""
    tmp = tmp_path_factory.mktemp("grade01")
    before = lingering()
    specs = [f"ssh://ghost@127.0.0.1:{dead_port()}", f"ssh://hang@127.0.0.1:{hanging.port}",
             sshd.spec(learners["kvm"]), sshd.spec(learners["plain"])]
    roster = tmp / "participants.csv"  # Moodle's participants export, as downloaded
    roster.write_text(roster_csv(learners["kvm"], learners["plain"], "ghost", "hang"),
                      encoding="utf-8")
    t0 = time.monotonic()
    r = grade(LAB1, "--hosts", ",".join(specs), "--ssh-config", str(sshd.ssh_config),
              "--timeout", str(TIMEOUT), "--workers", "2", "--lang", "en",
              "--csv", str(tmp / "grades.csv"), "--csv-id", "username", "--roster", str(roster),
              "--json", str(tmp / "class.json"),
              "--html", str(tmp / "class.html"), db=tmp / "gb.sqlite")
    wall = time.monotonic() - t0
    time.sleep(0.5)
    return {"r": r, "wall": wall, "tmp": tmp, "specs": specs, "db": tmp / "gb.sqlite",
            "left": lingering() - before}


def test_every_learner_gets_the_score_of_what_they_did(class_run, learners):
    r = class_run["r"]
    assert r.returncode == 3, r.stdout + r.stderr  # two hosts could not be graded
    doc = check_json((class_run["tmp"] / "class.json").read_text(), "class-export")
    by = {x["learner"]: x["results"][LAB1] for x in doc["learners"]}
    kvm, plain = by[learners["kvm"]], by[learners["plain"]]
    assert kvm["status"] == plain["status"] == "graded"
    ks = {o["id"]: o["status"] for o in kvm["report"]["objectives"]}
    ps = {o["id"]: o["status"] for o in plain["report"]["objectives"]}
    # /dev/kvm is rw for group kvm: the one thing these two learners did differently
    assert ks["dev-kvm"] == "pass" and ps["dev-kvm"] == "fail"
    assert kvm["score"] - plain["score"] == 2
    # and over SSH each learner gets exactly what a local check of the same user gets
    assert ks == local_statuses(LAB1, learners["kvm"])
    assert ps == local_statuses(LAB1, learners["plain"])
    assert kvm["report"]["user"] == learners["kvm"]


def test_unreachable_and_hanging_hosts_are_recorded_with_the_reason(class_run):
    got = {h: (s, why, d) for h, s, why, d in rows(
        class_run["db"], "SELECT host, status, reason, duration_s FROM results")}
    dead, hang = class_run["specs"][:2]
    assert got[dead][0] == "unreachable" and "refused" in got[dead][1].lower()
    assert got[hang][0] == "timeout" and "timed out" in got[hang][1].lower()
    assert got[hang][2] <= TIMEOUT + 2  # it cost its connect timeout, not more


def test_a_hanging_host_delays_no_other_host(class_run):
    # 2 workers, the dead and the hanging host first: the learners were graded meanwhile
    assert class_run["wall"] < TIMEOUT + 12, class_run["wall"]
    durations = rows(class_run["db"], "SELECT host, duration_s FROM results WHERE status='graded'")
    assert len(durations) == 2 and all(d < TIMEOUT for _, d in durations), durations


def test_the_run_leaves_no_worker_nor_ssh_connection_behind(class_run, sshd):
    assert class_run["left"] == set()

    def ours(cfg: Path) -> bool:  # a run of this test's class (its config includes ours)
        try:
            return str(sshd.ssh_config) in cfg.read_text()
        except OSError:
            return False

    assert not [c for c in Path("/tmp").glob("vlg-*/ssh_config") if ours(c)]  # set-up gone
    assert rows(class_run["db"],
                "SELECT status, finished_at IS NOT NULL FROM runs") == [("complete", 1)]


def test_no_progress_bar_when_stdout_is_not_a_terminal(class_run):
    out = class_run["r"].stdout
    assert "━" not in out and "\x1b[" not in out
    assert out.startswith("Run #1: 2/4 host(s) graded")


def test_the_csv_imports_into_moodle_without_harm(class_run, learners):
    text = (class_run["tmp"] / "grades.csv").read_text(encoding="utf-8")
    data = list(csv.reader(text.splitlines()))
    assert data[0] == ["username", LAB1, f"{LAB1} feedback"]
    body = {row[0]: row for row in data[1:]}
    kvm, plain = moodle_name(learners["kvm"]), moodle_name(learners["plain"])
    # only the graded learners, by their Moodle username (from the roster)
    assert set(body) == {kvm, plain}
    assert int(body[kvm][1]) == int(body[plain][1]) + 2
    assert "dev-kvm" in body[plain][2] and "dev-kvm" not in body[kvm][2]
    # into a course where everyone, ghost and hang included, already had a grade
    users = moodle_users(learners["kvm"], learners["plain"], "ghost", "hang")
    before = {(u.id, LAB1): 5.0 for u in users}
    res = check_moodle_csv(text, users, previous=before)
    assert res.grades[(3, LAB1)] == res.grades[(4, LAB1)] == 5.0  # not graded: untouched
    assert res.grades[(1, LAB1)] == float(body[kvm][1])
    assert res.feedback[(2, LAB1)] == body[plain][2]  # imported as written: no quote added


def test_the_learners_left_out_are_listed_with_a_retry_command_that_works(class_run):
    out = class_run["r"].stdout
    assert "CSV: 2 row(s); learners not graded are left out" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("Retry those hosts: "))
    cmd = shlex.split(line.removeprefix("Retry those hosts: ").removesuffix(" (or --resume)"))
    assert cmd[:3] == ["virtlab", "grade", "--retry-unreachable"]
    for opt in ("--db", "--csv", "--csv-id", "--roster", "--json", "--html"):
        assert opt in cmd, opt
    assert cmd[cmd.index("--db") + 1] == str(class_run["db"])


def test_the_html_class_report_lists_everyone(class_run, learners):
    html = (class_run["tmp"] / "class.html").read_text(encoding="utf-8")
    for name in (learners["kvm"], learners["plain"], "ghost", "hang"):
        assert name in html
    assert "<svg" in html and "Taux de réussite" in html and "Pass rate" in html
    assert "banner exchange" in html  # the hanging host, with its reason
    assert "Absents du CSV pour Moodle" in html  # the CSV's own list (none besides those)


def test_a_host_that_hangs_after_login_is_stopped_at_its_deadline(sshd, learners, tmp_path):
    t0 = time.monotonic()
    r = grade(LAB1, "--hosts", f"{sshd.spec(learners['stuck'])},{sshd.spec(learners['kvm'])}",
              "--ssh-config", str(sshd.ssh_config), "--host-timeout", "4", "--workers", "2",
              db=tmp_path / "gb.sqlite")
    wall = time.monotonic() - t0
    assert r.returncode == 3, r.stdout + r.stderr
    got = dict(rows(tmp_path / "gb.sqlite", "SELECT host, status FROM results"))
    assert got[sshd.spec(learners["stuck"])] == "timeout"
    assert got[sshd.spec(learners["kvm"])] == "graded"
    assert wall < 4 + 10, wall


def test_host_keys_are_checked(sshd, learners, tmp_path):
    """Batch mode with host-key checking on: an unknown host key is refused, not asked."""
    cfg = tmp_path / "ssh_config"
    cfg.write_text(sshd.ssh_config.read_text().replace(str(sshd.known_hosts),
                                                       str(tmp_path / "empty")))
    r = grade(LAB1, "--hosts", sshd.spec(learners["kvm"]), "--ssh-config", str(cfg),
              db=tmp_path / "gb.sqlite", timeout=60)
    assert r.returncode == 3
    (status, reason), = rows(tmp_path / "gb.sqlite", "SELECT status, reason FROM results")
    assert status == "unreachable" and "host key verification failed" in reason.lower()


# --- inventory ------------------------------------------------------------------------

def test_an_ansible_inventory_grades_the_same_and_feeds_the_export(sshd, learners, tmp_path):
    inv = tmp_path / "classe.yml"
    evil = '=HYPERLINK("http://evil.example","x")<script>alert(1)</script>'
    inv.write_text(
        "all:\n  hosts:\n"
        f"    pc-kvm:\n      ansible_host: 127.0.0.1\n      ansible_port: {sshd.port}\n"
        f"      ansible_user: {learners['kvm']}\n      email: kvm@example.org\n"
        f"    pc-plain:\n      ansible_host: 127.0.0.1\n      ansible_port: {sshd.port}\n"
        f"      ansible_user: {learners['plain']}\n      email: '{evil}'\n", encoding="utf-8")
    r = grade(LAB1, "--inventory", str(inv), "--ssh-config", str(sshd.ssh_config),
              "--csv", str(tmp_path / "g.csv"), "--html", str(tmp_path / "c.html"),
              db=tmp_path / "gb.sqlite")
    assert r.returncode == 0, r.stdout + r.stderr
    got = {h: (s, score) for h, s, score in rows(tmp_path / "gb.sqlite",
                                                 "SELECT host, status, score FROM results")}
    assert got["pc-kvm"][0] == got["pc-plain"][0] == "graded"
    assert got["pc-kvm"][1] == got["pc-plain"][1] + 2
    with open(tmp_path / "g.csv", encoding="utf-8", newline="") as f:
        data = {row[0]: row for row in csv.reader(f)}
    # the email that would be a formula is left out, and said so (never rewritten)
    assert set(data) == {"email", "kvm@example.org"}
    assert "left out of the CSV: pc-plain" in r.stdout or \
        "absent du CSV : pc-plain" in r.stdout
    html = (tmp_path / "c.html").read_text(encoding="utf-8")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def test_an_inventory_directory_with_a_key_per_group_reaches_hosts_and_libvirt(
        sshd, clean_sandbox, tmp_path):
    """group_vars give each group its own key and the ssh options (known_hosts) of the class;
    every connection of the run uses them: testinfra's and libvirt's qemu+ssh alike. The
    instructor's --ssh-config holds no key and no known host: without the inventory's
    options nothing would connect."""
    sb = clean_sandbox
    users = LearnerUsers(sshd)
    try:
        a1, b1, c1 = (users.add("ga", groups=("libvirt",)), users.add("gb", groups=("libvirt",)),
                      users.add("gc", groups=("libvirt",)))
        keys = {}
        for g in ("tpa", "tpb"):
            keys[g] = tmp_path / f"id_{g}"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", g, "-f",
                            str(keys[g])], check=True)
        for user, g in ((a1, "tpa"), (b1, "tpb"), (c1, "tpa")):
            # each learner accepts only their group's key
            (sshd.keys_dir / user).write_text(keys[g].with_suffix(".pub").read_text())
        inv = tmp_path / "classe"
        (inv / "group_vars").mkdir(parents=True)
        (inv / "hosts.yml").write_text(
            "all:\n  children:\n"
            f"    tpa:\n      hosts:\n        pc-a:\n          ansible_user: {a1}\n"
            f"    tpb:\n      hosts:\n        pc-b:\n          ansible_user: {b1}\n"
            f"    tpc:\n      hosts:\n        pc-c:\n          ansible_user: {c1}\n")
        # The run's own ControlPath comes first (checker.grade.sshconf), so the ControlPath=none
        # here does not win: libvirt's ssh may ride testinfra's connection to the host. That
        # libvirt's own ssh gets the key and options is shown by ssh -G through the host's
        # wrapper (test_grade_units.test_a_hosts_own_key_and_options_reach_the_ssh_libvirt_runs).
        (inv / "group_vars" / "all.yml").write_text(
            f"ansible_host: 127.0.0.1\nansible_port: {sshd.port}\n"
            "ansible_ssh_common_args: "
            f"'-o ControlPath=none -o UserKnownHostsFile={sshd.known_hosts}'\n")
        (inv / "group_vars" / "tpa.yml").write_text(
            f"ansible_ssh_private_key_file: {keys['tpa']}\n")
        (inv / "group_vars" / "tpb.yml").write_text(
            f"ansible_ssh_private_key_file: {keys['tpb']}\n")
        # tpc has no key of its own: pc-c cannot log in (its learner accepts tpa's key only)
        bare = tmp_path / "ssh_config"
        bare.write_text("Host *\n  IdentitiesOnly yes\n  IdentityFile /dev/null\n"
                        "  UserKnownHostsFile /dev/null\n  GlobalKnownHostsFile /dev/null\n"
                        "  StrictHostKeyChecking yes\n  LogLevel ERROR\n")
        uri = "qemu+ssh://{user}@{host}:{port}/system?socket=" + str(sb.socket)
        db = tmp_path / "gb.sqlite"
        r = grade("02", "--inventory", str(inv), "--ssh-config", str(bare), "--connect", uri,
                  "--json", str(tmp_path / "c.json"), "--lang", "en", db=db)
        assert r.returncode == 3, r.stdout + r.stderr  # pc-c only
        doc = check_json((tmp_path / "c.json").read_text(), "class-export")
        res = {x["host"]: x["results"]["02-install-kvm"] for x in doc["learners"]}
        assert res["pc-c"]["status"] == "unreachable", res["pc-c"]
        assert "permission denied" in res["pc-c"]["reason"].lower()
        for host in ("pc-a", "pc-b"):
            assert res[host]["status"] == "graded", res[host]
            st = {o["id"]: o for o in res[host]["report"]["objectives"]}
            # libvirt reached over its own ssh connection, with the group's key and the
            # class's known_hosts
            assert st["libvirtd-active"]["status"] == "pass", st["libvirtd-active"]
            assert st["user-group-libvirt"]["status"] == "pass"
        # --limit with a pattern: only tpb is graded again
        r = grade("02", "--inventory", str(inv), "--limit", "all:!tpa:!tpc",
                  "--ssh-config", str(bare), "--connect", uri, db=db)
        assert r.returncode == 0, r.stdout + r.stderr
        assert rows(db, "SELECT host FROM results WHERE run_id=2") == [("pc-b",)]
    finally:
        users.remove_all()


# --- interrupted, resumed, retried ------------------------------------------------------

def test_an_interrupted_run_keeps_its_hosts_and_resumes(sshd, learners, tmp_path):
    users = LearnerUsers(sshd, prefix=f"{learners['kvm'].split('-')[0]}r")
    try:
        names = [users.add(f"r{i}") for i in range(6)]
        specs = [sshd.spec(n) for n in names] + [sshd.spec(learners["stuck"])]
        db = tmp_path / "gb.sqlite"
        before = lingering()
        p = subprocess.Popen(
            [sys.executable, "-m", "checker", "grade", LAB1, "--hosts", ",".join(specs),
             "--ssh-config", str(sshd.ssh_config), "--workers", "1", "--host-timeout", "60",
             "--db", str(db)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if db.exists() and rows(db, "SELECT count(*) FROM results")[0][0] >= 2:
                    break
            except sqlite3.OperationalError:  # the gradebook is being created
                pass
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 130, out + err
        assert "--resume" in err
        (status,), = rows(db, "SELECT status FROM runs")
        assert status == "interrupted"
        done = {h for h, in rows(db, "SELECT host FROM results")}
        assert 2 <= len(done) < len(specs)
        time.sleep(0.5)
        assert lingering() - before == set()
        # resume: only the hosts not graded yet, into a new run continuing the first
        roster = tmp_path / "p.csv"
        roster.write_text(roster_csv(*names, learners["stuck"]), encoding="utf-8")
        r = grade("--resume", "--host-timeout", "3", "--csv", str(tmp_path / "g.csv"),
                  "--csv-id", "username", "--roster", str(roster), db=db)
        assert r.returncode == 3, r.stdout + r.stderr  # the stuck learner times out
        runs = rows(db, "SELECT id, parent_id, kind, status FROM runs ORDER BY id")
        assert [(k, s) for _, _, k, s in runs] == [("grade", "interrupted"), ("resume", "complete")]
        assert runs[1][1] == runs[0][0]
        second = {h for h, in rows(db, "SELECT host FROM results WHERE run_id=?", runs[1][0])}
        assert second == set(specs) - done  # nothing graded twice
        with open(tmp_path / "g.csv", encoding="utf-8", newline="") as f:
            data = {row[0]: row for row in csv.reader(f)}
        # the whole class graded is in the export; the stuck learner (timed out) is not
        assert set(data) == {"username"} | {moodle_name(n) for n in names}
        assert all(data[moodle_name(n)][1].isdigit() for n in names)
    finally:
        users.remove_all()


def test_retry_unreachable_regrades_only_the_hosts_that_failed_to_connect(sshd, tmp_path):
    """The retry command the first run prints is run exactly as printed (another directory,
    its own gradebook and exports), and regrades only the host that could not connect."""
    users = LearnerUsers(sshd)
    try:
        good, late = users.add("good"), users.add("late")
        (sshd.keys_dir / late).unlink()  # cannot log in yet: Permission denied (publickey)
        db = tmp_path / "gb.sqlite"
        roster = tmp_path / "participants.csv"
        roster.write_text(roster_csv(good, late), encoding="utf-8")
        hosts = f"{sshd.spec(good)},{sshd.spec(late)}"
        r = grade(LAB1, "--hosts", hosts, "--ssh-config", str(sshd.ssh_config),
                  "--csv", str(tmp_path / "g.csv"), "--csv-id", "username",
                  "--roster", str(roster), "--scale", "20", db=db)
        assert r.returncode == 3
        first = dict(rows(db, "SELECT host, status FROM results"))
        assert first == {sshd.spec(good): "graded", sshd.spec(late): "unreachable"}
        with open(tmp_path / "g.csv", encoding="utf-8", newline="") as f:
            assert [row[0] for row in csv.reader(f)] == ["username", moodle_name(good)]
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith("Réessayer ces hôtes"))
        printed = line.split(" : ", 1)[1].removesuffix(" (ou --resume)")
        argv = shlex.split(printed)
        assert argv[:2] == ["virtlab", "grade"]
        sshd.authorize(late)  # the learner fixed their access
        # as printed, from another directory (run_virtlab adds nothing but --db's absence)
        r = run_virtlab(*argv[1:], cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        second = rows(db, "SELECT host, status FROM results WHERE run_id=2")
        assert second == [(sshd.spec(late), "graded")]
        with open(tmp_path / "g.csv", encoding="utf-8", newline="") as f:
            data = {row[0]: row for row in csv.reader(f)}
        assert set(data) == {"username", moodle_name(good), moodle_name(late)}
        assert 0 <= float(data[moodle_name(late)][1]) <= 20  # on 20, as asked
        r = run_virtlab(*argv[1:], cwd=tmp_path)
        assert r.returncode == 0 and "Rien à refaire" in r.stderr
    finally:
        users.remove_all()


def test_hosts_that_did_not_answer_last_time_are_tried_first(sshd, tmp_path):
    """A host unreachable in the previous run is graded first in the next (its connect
    timeout then overlaps the live hosts); with one worker, the order is the outcomes'."""
    users = LearnerUsers(sshd)
    try:
        a, b, late = users.add("a"), users.add("b"), users.add("late")
        (sshd.keys_dir / late).unlink()  # cannot log in: Permission denied (publickey)
        db = tmp_path / "gb.sqlite"
        hosts = ",".join(sshd.spec(u) for u in (a, b, late))
        r = grade(LAB1, "--hosts", hosts, "--ssh-config", str(sshd.ssh_config),
                  "--workers", "1", db=db)
        assert r.returncode == 3, r.stdout + r.stderr
        order = [h for (h,) in rows(db, "SELECT host FROM results WHERE run_id=1 ORDER BY id")]
        assert order == [sshd.spec(a), sshd.spec(b), sshd.spec(late)]
        r = grade(LAB1, "--hosts", hosts, "--ssh-config", str(sshd.ssh_config),
                  "--workers", "1", db=db)
        assert r.returncode == 3, r.stdout + r.stderr
        order = [h for (h,) in rows(db, "SELECT host FROM results WHERE run_id=2 ORDER BY id")]
        assert order == [sshd.spec(late), sshd.spec(a), sshd.spec(b)]
        # the class's roster keeps its own order
        from checker.grade import Gradebook

        gb = Gradebook(db)
        try:
            assert [t.host for t in gb.roster(2)] == [sshd.spec(u) for u in (a, b, late)]
        finally:
            gb.close()
    finally:
        users.remove_all()


def test_more_workers_when_the_hosts_mostly_wait(sshd, tmp_path):
    """Without --workers, hosts that keep their worker waiting (here each command the
    learner's shell runs sleeps 1 s first, as a slow link would) get more workers than
    the default; with --workers, the count asked is kept."""
    from checker.grade import Gradebook, GradeOptions, from_specs
    from checker.grade import grade as grade_api
    from checker.grade.runner import default_workers

    n = 2 * default_workers() + 4  # hosts still queued when the first outcomes arrive
    users = LearnerUsers(sshd)
    try:
        names = [users.add(f"w{i}") for i in range(n)]
        for u in names:
            rc = users.home(u) / ".bashrc"
            rc.write_text("sleep 1\n")
            os.chown(rc, users.home(u).stat().st_uid, users.home(u).stat().st_gid)
        targets = from_specs([sshd.spec(u) for u in names])
        for workers, most in ((None, n), (3, 3)):
            pids: set[int | None] = set()
            gb = Gradebook(tmp_path / f"gb-{workers}.sqlite")
            try:
                grade_api(gb, [LAB1], targets,
                          GradeOptions(ssh_config=str(sshd.ssh_config), workers=workers),
                          on_host=lambda o, pids=pids: pids.add(o.worker_pid))
            finally:
                gb.close()
            if workers is None:
                assert len(pids) > default_workers(), pids
            else:
                assert len(pids) <= most, pids
    finally:
        users.remove_all()


# --- labs 02-04: libvirt over SSH ------------------------------------------------------

HOSTILE_TITLE = '<img src=x onerror=alert(1)>" onmouseover="alert(2)'


def test_labs_02_to_04_read_libvirt_over_the_same_ssh_access(sshd, clean_sandbox, tmp_path):
    """Several labs at once; the libvirt side through qemu+ssh as each learner."""
    sb = clean_sandbox
    sb.conn().defineXML(sb.domain_xml("test-debian-12", title=HOSTILE_TITLE))
    users = LearnerUsers(sshd)
    try:
        ok, none = users.add("lv", groups=("libvirt", "kvm")), users.add("nolv")
        conf = users.home(ok) / ".config" / "libvirt" / "libvirt.conf"
        conf.parent.mkdir(parents=True)
        conf.write_text('uri_default = "qemu:///system"\n')
        subprocess.run(["chown", "-R", f"{ok}:{ok}", str(users.home(ok) / ".config")], check=True)
        uri = "qemu+ssh://{user}@{host}:{port}/system?socket=" + str(sb.socket)
        r = grade("02", "03", "04", "--hosts", f"{sshd.spec(ok)},{sshd.spec(none)}",
                  "--ssh-config", str(sshd.ssh_config), "--connect", uri,
                  "--json", str(tmp_path / "c.json"), "--html", str(tmp_path / "c.html"),
                  "--csv", str(tmp_path / "g.csv"), "--lang", "en", db=tmp_path / "gb.sqlite")
        assert r.returncode == 0, r.stdout + r.stderr
        doc = check_json((tmp_path / "c.json").read_text(), "class-export")
        st = {(x["learner"], lab): {o["id"]: o["status"] for o in res["report"]["objectives"]}
              for x in doc["learners"] for lab, res in x["results"].items()}
        rep = {x["learner"]: x["results"]["02-install-kvm"]["report"] for x in doc["learners"]}
        lab2, lab3, lab4 = "02-install-kvm", "03-libvirt-basics", "04-create-vm"
        # the daemon was reached over SSH; the report shows the plain URI
        assert st[ok, lab2]["libvirtd-active"] == st[none, lab2]["libvirtd-active"] == "pass"
        assert rep[ok]["libvirt_uri"] == (f"qemu+ssh://{ok}@127.0.0.1:{sshd.port}/system"
                                          f"?socket={sb.socket}")
        # what each learner did
        for oid in ("user-group-libvirt", "user-group-kvm"):
            assert (st[ok, lab2][oid], st[none, lab2][oid]) == ("pass", "fail"), oid
        assert (st[ok, lab3]["user-default-uri"], st[none, lab3]["user-default-uri"]) == \
            ("pass", "fail")
        # libvirt read as the learner: only the member of group libvirt may read it
        assert st[ok, lab4]["vm-defined"] == "pass"
        assert st[none, lab4]["vm-defined"] == "error"
        assert st[ok, lab4]["vm-description"] == "pass"
        # the VM title (learner-controlled) is in a message: escaped in the HTML
        html = (tmp_path / "c.html").read_text(encoding="utf-8")
        assert "onerror=alert(1)" in html and "<img src=x" not in html
        assert 'onmouseover="alert(2)' not in html
        with open(tmp_path / "g.csv", encoding="utf-8", newline="") as f:
            data = list(csv.reader(f))
        # --hosts gives no email: without a roster nobody can be identified in Moodle, so
        # no row at all (never a row Moodle would give to the wrong learner)
        assert data == [["email", lab2, f"{lab2} feedback", lab3, f"{lab3} feedback", lab4,
                         f"{lab4} feedback"]]
        assert r.stdout.count("left out of the CSV") == 2
        # virsh as the learner on their host, against the daemon of the URI (its socket kept)
        assert (st[ok, lab2]["virsh-system-access"], st[none, lab2]["virsh-system-access"]) == \
            ("pass", "fail"), [o["message"] for o in rep[ok]["objectives"]
                               if o["id"] == "virsh-system-access"]
    finally:
        users.remove_all()
