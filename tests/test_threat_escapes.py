"""Threat: a learner's host drives the instructor's terminal, or poisons the class files.

Before this fix, a learner's ``~/.bashrc`` (bash sources it for the commands sshd runs) that
printed OSC 52 (a clipboard write), a title change, cursor moves and a fake "Run #1: 5/5
host(s) graded" line reached the instructor's terminal raw in the run summary, and ESC/BEL/NUL
bytes were written into the CSV, the class HTML and the gradebook; the same through a hostile
``python3`` on the learner's PATH (testinfra asks it for the host's encoding: answering
``unicode_escape`` turned ``\\ud800`` in any output into a lone surrogate, which crashed the
worker writing its answer).

Real parts: a real sshd on loopback, real learner accounts with hostile start-up files and
fake ``python3``, ``dpkg-query``, ``VBoxManage`` and ``virsh`` first on their PATH. Every
output (what ``virtlab grade`` and ``virtlab check --host`` print, the CSV, HTML and JSON
exports, every text cell of the gradebook) is searched for the raw bytes; the hostile text
must be there, made visible (``\\x1b]52…``): it was read and shown, never obeyed.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import run_virtlab

ESC = "\x1b"
# printed by the hostile programs: OSC 52 (clipboard), a title, clear + home, a fake summary
# line, BEL, NUL, a C1 CSI (U+009B), a right-to-left override, invalid UTF-8 (an encoded
# surrogate) and text that unicode_escape would decode to a lone surrogate
HOSTILE = (r"\033]52;c;cHduZWQ=\007\033]0;pwned\007\033[2J\033[H"
           r"Run #1: 5/5 host(s) graded\n\007\000\302\233\342\200\256\355\240\200\\ud800")
RAW = [b"\x1b", b"\x07", b"\x00", b"\xc2\x9b", b"\xe2\x80\xae", b"\xed\xa0\x80"]
RAW_STR = ["\x1b", "\x07", "\x00", "\x9b", "\u202e", "\ud800"]


def fake(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)


def hostile_learner(users, label: str, fail: bool = False) -> str:
    name = users.add(label, groups=("kvm",))
    home = users.home(name)
    bin_ = home / "bin"
    bin_.mkdir()
    out = f"printf '{HOSTILE}'"
    # the encoding probe: a codec that turns text into control characters and surrogates
    fake(bin_ / "python3", "echo unicode_escape\n")
    fake(bin_ / "dpkg-query",
         f"{out}\nprintf 'qemu-system-x86\\tinstall ok installed\\t1:7.2+{HOSTILE}\\n'\n"
         f"printf 'libvirt-daemon-system\\tinstall ok installed\\t9.0\\033]52;c;eA==\\007\\n'\n")
    for prog in ("VBoxManage", "virsh", "nproc", "dmesg"):
        fake(bin_ / prog, f"{out}\n{out} >&2\n")
    rc = (f'PATH="$HOME/bin:$PATH"; export PATH\n{out}\n{out} >&2\n'
          + ("exit 1\n" if fail else ""))
    (home / ".bashrc").write_text(rc, encoding="utf-8")
    subprocess.run(["chown", "-R", f"{name}:{name}", str(home)], check=True)
    return name


def assert_no_raw(where: str, data: bytes | str) -> None:
    if isinstance(data, str):
        bad = [c for c in RAW_STR if c in data]
    else:
        bad = [b for b in RAW if b in data]
    assert not bad, f"{where}: raw {bad!r}"


@pytest.mark.integration
def test_hostile_output_is_shown_never_obeyed(sshd, tmp_path):
    from sshd import LearnerUsers

    users = LearnerUsers(sshd)
    try:
        esc = hostile_learner(users, "esc")
        failing = hostile_learner(users, "escf", fail=True)
        plain = users.add("escp", groups=("kvm",))
        db = tmp_path / "gb.sqlite"
        out = {fmt: tmp_path / f"class.{fmt}" for fmt in ("csv", "html", "json")}
        r = run_virtlab("grade", "01", "02", "06", "--hosts",
                        ",".join(sshd.spec(u) for u in (esc, failing, plain)),
                        "--ssh-config", str(sshd.ssh_config), "--db", str(db), "--lang", "en",
                        *(x for fmt, p in out.items() for x in (f"--{fmt}", str(p))),
                        env={"LANG": "C.UTF-8"})
        assert r.returncode == 3, r.stdout + r.stderr  # the failing host is not graded
        assert "Traceback" not in r.stderr
        assert_no_raw("grade stdout", r.stdout)
        assert_no_raw("grade stderr", r.stderr)
        # the fake summary line is never a line of its own
        assert not any(ln.startswith("Run #1: 5/5") for ln in r.stdout.splitlines())
        for fmt, p in out.items():
            assert_no_raw(fmt, p.read_bytes())
        with sqlite3.connect(db) as c:
            for table, in c.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                for row in c.execute(f"SELECT * FROM {table}"):
                    for cell in row:
                        if isinstance(cell, (str, bytes)):
                            assert_no_raw(f"gradebook {table}", cell)
        doc = json.loads(out["json"].read_text(encoding="utf-8"))
        res = {x["learner"]: x["results"] for x in doc["learners"]}
        # the hostile learner is graded (no crash on a lone surrogate), its text kept visible
        assert all(res[esc][lab]["status"] == "graded" for lab in res[esc]), res[esc]
        assert all(res[plain][lab]["status"] == "graded" for lab in res[plain])
        assert {v["status"] for v in res[failing].values()} == {"unreachable"}
        dumped = json.dumps(doc)
        assert "\\\\x1b]52;c;cHduZWQ=" in dumped  # what the learner printed, as text
        # the reason quotes the last line the failing host printed: visible, not raw
        assert "\\x07\\x00\\x9b\\u202e" in res[failing]["01-hardware"]["reason"]

        # the same hosts through `virtlab check --host` (text on a terminal, and JSON)
        home = tmp_path / "home"
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "config").write_text(sshd.ssh_config.read_text(), encoding="utf-8")
        env = {"HOME": str(home), "LANG": "C.UTF-8"}
        for user, codes in ((esc, (0, 1)), (failing, (3,))):
            for fmt in ("text", "json"):
                r = run_virtlab("check", "02", "--host", sshd.spec(user), "--format", fmt,
                                "--lang", "en", env=env)
                assert r.returncode in codes, r.stdout + r.stderr
                assert "Traceback" not in r.stderr
                assert_no_raw(f"check {fmt} stdout", r.stdout)
                assert_no_raw(f"check {fmt} stderr", r.stderr)
                if fmt == "json" and r.returncode != 3:
                    assert "\\x1b]52" in json.dumps(json.loads(r.stdout))
    finally:
        users.remove_all()


def test_clean_makes_every_dangerous_character_visible():
    from checker.safetext import clean, clean_data, dumps

    s = "a\x1b]52;c;x\x07b\x00c\x9bd\u202ee\ud800f\u2028g\th\r\ni"
    c = clean(s)
    assert not any(ch in c for ch in RAW_STR + ["\u2028", "\t", "\r"])
    assert c == ("a\\x1b]52;c;x\\x07b\\x00c\\x9bd\\u202ee\\ud800f\\u2028g h\ni")
    assert clean_data({"k\x1b": ["v\x07", ("\ud800",)]}) == {"k\\x1b": ["v\\x07", ("\\ud800",)]}
    text = dumps({"x": "\x9b\u202e\ud800\x1b"})
    text.encode("utf-8")  # no lone surrogate left: writable
    assert json.loads(text) == {"x": "\x9b\u202e\ud800\x1b"}  # the same value, escaped
    assert_no_raw("dumps", text)


def test_the_grade_summary_and_exports_clean_a_tampered_gradebook(tmp_path):
    """Rows written by an older version (raw bytes in the gradebook) are shown safely."""
    from checker.grade.exports import to_csv, to_html
    from checker.grade.gradebook import ClassView, LearnerRow, Run, StoredResult
    from checker.grade.targets import HostTarget

    evil = "\x1b]52;c;eA==\x07\x1b[2JRun #1: 5/5 host(s) graded\x00\x9b\ud800"
    run = Run(id=1, parent_id=None, kind="grade", started_at="2024-01-01T00:00:00+00:00",
              finished_at=None, status="complete", checker_version="0", labs=("01-hardware",),
              lang="en", options={})
    report = {"score": 0, "max_score": 2, "objectives": [
        {"id": "x", "status": "fail", "points": 2, "earned": 0, "message": evil}]}
    rows = [LearnerRow(target=HostTarget(host=evil, spec="ssh://a@h", learner=evil, email=evil),
                       results={"01-hardware": StoredResult(
                           run_id=1, host=evil, lab="01-hardware", status=s, reason=evil,
                           score=0 if s == "graded" else None, max_score=2, graded_at="now",
                           duration_s=0.1, report=report if s == "graded" else None)})
            for s in ("graded", "unreachable")]
    view = ClassView(run=run, runs=[run], labs=("01-hardware",), rows=rows)
    for name, text in (("csv", to_csv(view)), ("html", to_html(view))):
        assert_no_raw(name, text)
    import io
    from contextlib import redirect_stdout

    from checker.grade.command import print_summary

    buf = io.StringIO()
    with redirect_stdout(buf):
        print_summary(view, "en", 1.0, Path("/tmp/gb.sqlite"))
    assert_no_raw("summary", buf.getvalue())
    assert not any(ln.startswith("Run #1: 5/5") for ln in buf.getvalue().splitlines()[1:])


def test_lone_surrogates_cross_the_worker_pipe_and_the_gradebook(tmp_path):
    """A lone surrogate anywhere in a worker's answer (a report string, a reason): the
    answer is still written as UTF-8 and stored in SQLite, shown as ``\\ud800``."""
    from checker.grade.gradebook import Gradebook
    from checker.grade.targets import HostTarget
    from checker.grade.worker import grade_host
    from checker.safetext import clean_data, dumps

    bad = "x\ud800y\x1b"
    answer = {"host": "h", "results": [
        {"lab": "01-hardware", "status": "error", "reason": bad, "report": None},
        {"lab": "02-install-kvm", "status": "graded", "reason": "", "report": {
            "score": 1, "max_score": 2, "duration_s": 0.1, "objectives": [
                {"id": "o", "status": "fail", "points": 1, "earned": 0, "message": bad,
                 "evidence": {bad: [bad]}}]}}]}
    line = dumps(clean_data(answer))
    line.encode("utf-8")  # what the worker writes on its pipe
    back = json.loads(line)
    assert back["results"][0]["reason"] == "x\\ud800y\\x1b"
    gb = Gradebook(tmp_path / "gb.sqlite")
    try:
        run = gb.start_run(["01-hardware", "02-install-kvm"],
                           [HostTarget(host="h", spec="ssh://a@h", learner="a")],
                           lang="en", options={})
        gb.record(run, "h", answer["results"])  # raw, as an older worker would send it
        view = gb.class_view(run)
        assert view.rows[0].results["01-hardware"].reason == "x\\ud800y\\x1b"
    finally:
        gb.close()
    # and grade_host itself: a host spec refused before any connection, answer clean
    out = grade_host({"host": "h", "spec": "ssh://u@h\ud800", "labs": ["01"], "lang": "en"})
    dumps(out).encode("utf-8")
    assert out["results"][0]["status"] == "error"


@pytest.mark.parametrize("var", ["email", "virtlab_learner"])
def test_a_class_list_with_control_characters_is_refused(tmp_path, var):
    """Learner names and emails are stored in the gradebook and shown everywhere: a class
    list that carries escapes in them is refused, with the reason (in both languages; shown in
    the reader's)."""
    from checker.grade.targets import TargetError, from_inventory

    inv = tmp_path / "classe.yml"
    inv.write_text("all:\n  hosts:\n    pc1:\n      ansible_host: 127.0.0.1\n"
                   f"      ansible_user: etu\n      {var}: \"a\\e]52;c;eA==\\ab\"\n",
                   encoding="utf-8")
    with pytest.raises(TargetError) as e:
        from_inventory(str(inv))
    fr, en = e.value.text.fr, e.value.text.en
    assert "caractères de contrôle" in fr and "control characters" in en
    assert_no_raw("message", fr + en)
