"""One runner semantics: the fixture registry, the outcome rule and the score are the same under
``virtlab check`` and under plain ``pytest`` (the plugin, in a real pytest subprocess)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_pytest_plugin import LAB01, outcomes, pytest_run

from checker import progress
from checker.catalog import CatalogError, load_lab
from checker.engine import check, load_checks
from checker.fixtures import FIXTURES, UnknownFixture, fixture_names
from checker.model import ObjectiveResult, Report, score
from checker.outcome import judge

#: a libvirt URI no daemon answers on (a socket that does not exist)
NO_DAEMON = "qemu+unix:///system?socket=/nonexistent/virtlab-test.sock"

#: objective id -> (points, the check's body); one module, written the testinfra way
CHECKS = {
    "cpu-virt-flags": (3, "def test_passes(host):\n"
                          "    assert host.file('/').is_directory\n"),
    "kvm-modules": (2, "def test_assert_with_text(host):\n"
                       "    assert host.file('/nonexistent-virtlab').exists, "
                       "'pas de fichier / no file'\n"),
    "dev-kvm": (2, "def test_bare_assert(facts):\n"
                   "    assert 1 + 1 == 3\n"),
    "host-resources": (3, "def test_obj_fail(obj):\n"
                          "    obj.fail(fr='raté ici', en='failed here')\n"),
    "plain-skip": (1, "def test_obj_skip(obj):\n"
                      "    obj.skip(fr='sans objet', en='not applicable')\n"),
    "plain-error": (1, "def test_obj_error(obj):\n"
                       "    obj.error(fr='environnement cassé', en='environment broken')\n"),
    "plain-crash": (2, "def test_crash(lab, learner):\n"
                       "    raise RuntimeError('boom in the check')\n"),
    "plain-libvirt": (4, "def test_libvirt_unreachable(virt):\n"
                         "    assert virt.domain_names\n"),
}
EXPECTED = {"cpu-virt-flags": "pass", "kvm-modules": "fail", "dev-kvm": "fail",
            "host-resources": "fail", "plain-skip": "skip", "plain-error": "error",
            "plain-crash": "error", "plain-libvirt": "error"}


def make_lab(tmp_path: Path, checks: dict[str, tuple[int, str]]) -> Path:
    """A copy of lab 01 whose objectives are ``checks`` (lab 01's own ids first)."""
    lab_dir = tmp_path / "01-hardware"
    lab_dir.mkdir()
    for f in ("lab.toml", "instructions.fr.md", "instructions.en.md"):
        shutil.copy(LAB01 / f, lab_dir / f)
    toml = (lab_dir / "lab.toml").read_text(encoding="utf-8")
    head = toml[:toml.index("[[objectives]]")]
    blocks = []
    for oid, (points, _) in checks.items():
        blocks.append(
            f'[[objectives]]\nid = "{oid}"\npoints = {points}\nsection = "8.1.1 Test"\n'
            f'title.fr = "Objectif {oid}"\ntitle.en = "Objective {oid}"\n'
            f'hint.fr = "Indice {oid}"\nhint.en = "Hint {oid}"\n')
    (lab_dir / "lab.toml").write_text(head + "\n".join(blocks), encoding="utf-8")
    (lab_dir / "checks").mkdir()
    src = ["from checker.dsl import objective\n"]
    for oid, (_, body) in checks.items():
        src.append(f"\n\n@objective({oid!r})\n{body}")
    (lab_dir / "checks" / "test_runner_rule.py").write_text("".join(src), encoding="utf-8")
    return lab_dir


# --- the registry ---------------------------------------------------------------------------

def test_the_registry_declares_each_fixture_once_with_a_line_in_both_languages():
    assert set(FIXTURES) == {"host", "virt", "learner", "facts", "lab", "obj"}
    for name, f in FIXTURES.items():
        assert f.name == name
        for text in (f.description.fr, f.description.en):
            assert text.strip() and "\n" not in text, name
        assert f.description.fr != f.description.en, name
    assert [n for n, f in FIXTURES.items() if f.per_check] == ["obj"]
    assert [n for n, f in FIXTURES.items() if f.from_testinfra] == ["host"]


def test_pytest_fixtures_are_generated_from_the_registry():
    """``pytest --fixtures`` lists every registry fixture the plugin defines, with the
    registry's description (not a second text)."""
    p = pytest_run("--fixtures", str(LAB01 / "checks"))
    out = " ".join(p.stdout.split())
    for name, f in FIXTURES.items():
        if f.from_testinfra:
            continue
        assert f"{name} [" in out or f"{name} --" in out, (name, p.stdout[-3000:])
        assert " ".join(f.description.en.split()) in out, name


def test_the_engine_builds_every_fixture_from_the_registry(tmp_path):
    body = ("def test_all(host, virt, learner, facts, lab, obj):\n"
            "    from checker.dsl import Verdict\n"
            "    from checker.model import Lab\n"
            "    from checker.probes.host import HostFacts\n"
            "    from checker.probes.learner import Learner\n"
            "    from checker.probes.libvirt import Virt\n"
            "    assert isinstance(virt, Virt) and isinstance(learner, Learner)\n"
            "    assert isinstance(facts, HostFacts) and isinstance(lab, Lab)\n"
            "    assert isinstance(obj, Verdict) and obj.oid == 'all-fixtures'\n"
            "    assert host.backend.NAME == 'local' and learner.name == 'nobody'\n"
            "    assert lab.id == '01-hardware' and virt.uri == 'test:///default'\n"
            "    obj.evidence(fixtures=sorted(['host', 'virt', 'learner', 'facts', 'lab']))\n")
    lab_dir = make_lab(tmp_path, {"all-fixtures": (1, body)})
    r = check(load_lab(lab_dir), connect="test:///default", user="nobody", lang="en")
    (o,) = r.objectives
    assert (o.status, o.message) == ("pass", "Objective met."), o.message
    assert o.evidence == {"fixtures": ["facts", "host", "lab", "learner", "virt"]}


def test_an_unknown_fixture_is_a_catalog_error_naming_module_function_and_fixture(tmp_path):
    lab_dir = make_lab(tmp_path, {"typo": (1, "def test_typo(hots, obj):\n    pass\n")})
    with pytest.raises(CatalogError) as e:
        load_checks(load_lab(lab_dir))
    msg = str(e.value)
    assert "test_runner_rule" in msg and "test_typo" in msg and "'hots'" in msg
    assert "host" in msg  # what a check may ask for
    with pytest.raises(UnknownFixture):
        fixture_names(lambda hots: None)


# --- the outcome rule -----------------------------------------------------------------------

def test_the_outcome_rule():
    from checker.dsl import CheckFailed, Verdict
    from checker.i18n import Text

    def raised(e: BaseException) -> BaseException:
        try:
            raise e
        # the test returns what was raised, whatever it is
        except BaseException as caught:  # noqa: BLE001
            return caught

    v = Verdict("x")
    assert judge(None, v).status == "pass"
    assert judge(raised(CheckFailed(Text("a", "b"))), v).message == Text("a", "b")
    assert judge(raised(AssertionError("why")), v).message == Text("why", "why")
    bare = judge(raised(AssertionError()), v)
    assert bare.status == "fail" and bare.message.en.startswith("Assertion failed: ")
    assert "raise e" in bare.message.en  # the failing line
    crash = judge(raised(KeyError("k")), v)
    assert crash.status == "error" and crash.message.en == "Could not evaluate (KeyError: 'k')."
    assert crash.message.fr.startswith("Vérification impossible")


def test_one_check_module_with_plain_asserts_gives_the_same_outcomes_in_both_runners(tmp_path):
    lab_dir = make_lab(tmp_path, CHECKS)
    lab = load_lab(lab_dir)
    fn_of = {oid: fn.__name__ for oid, fn in load_checks(lab).items()}

    # virtlab check
    report = check(lab, connect=NO_DAEMON, lang="en")
    got = {o.id: o.status for o in report.objectives}
    assert got == EXPECTED, {o.id: (o.status, o.message) for o in report.objectives}
    msg = {o.id: o.message for o in report.objectives}
    assert msg["kvm-modules"] == "pas de fichier / no file"
    assert msg["dev-kvm"] == "Assertion failed: assert 1 + 1 == 3"
    assert msg["host-resources"] == "failed here"
    assert msg["plain-error"] == "environment broken"
    assert msg["plain-crash"] == "Could not evaluate (RuntimeError: boom in the check)."
    assert "does not answer" in msg["plain-libvirt"]
    assert (report.score, report.max_score) == (3, 17)  # the skipped objective: neither way

    # plain pytest, the same module
    junit = tmp_path / "j.xml"
    p = pytest_run("--hosts=local://", f"--virtlab-connect={NO_DAEMON}", "-v", "-rA",
                   str(lab_dir / "checks"), f"--junitxml={junit}", cwd=tmp_path)
    out = p.stdout
    assert p.returncode == 1, out[-3000:]
    # failures fail, errors are reported as errors (not FAILED), skips skip
    kind = {"pass": "PASSED", "fail": "FAILED", "error": "ERROR", "skip": "SKIPPED"}
    for oid, status in EXPECTED.items():
        line = next((ln for ln in out.splitlines()
                     if f"::{fn_of[oid]}[local] " in ln and "%]" in ln), None)
        assert line is not None and kind[status] in line, (oid, line, out[-3000:])
    assert "3 failed, 1 passed, 1 skipped, 3 errors" in out, out[-1500:]
    # the same score as `virtlab check`
    assert f"01-hardware [local]: {report.score}/{report.max_score}" in out
    # the learner's own verdicts in both languages; a plain assert's explanation kept
    assert "host-resources: raté ici" in out and "host-resources: failed here" in out
    assert "plain-error: environnement cassé" in out
    assert "plain-libvirt: Le démon libvirt ne répond pas" in out
    assert "plain-crash: Vérification impossible (RuntimeError: boom in the check)." in out
    assert "assert (1 + 1) == 3" in out  # pytest's own assertion rewriting, for the author
    # --junitxml: every check one testcase, with its lab, objective and status; an
    # objective that could not be evaluated is an <error>, and the suite counts it so
    root = ET.parse(junit).getroot()
    cases = list(root.iter("testcase"))
    assert len(cases) == len(CHECKS)
    junit_kind = {"pass": "passed", "fail": "failed", "error": "error", "skip": "skipped"}
    assert outcomes(junit) == {fn_of[o]: junit_kind[s] for o, s in EXPECTED.items()}
    for case in cases:
        props = {q.get("name"): q.get("value") for q in case.iter("property")}
        assert props["lab"] == "01-hardware" and props["objective"] in EXPECTED
        assert props["status"] == EXPECTED[props["objective"]]
    suite, = root.iter("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"),
            suite.get("skipped")) == ("8", "3", "3", "1")
    error = next(c for c in cases if c.get("name") == f"{fn_of['plain-error']}[local]")
    assert "environment broken" in error.find("error").get("message")


# --- the score -------------------------------------------------------------------------------

def test_one_scoring_function():
    assert str(score([("pass", 2), ("fail", 3), ("error", 1), ("skip", 5)])) == "2/6"
    assert str(score([])) == "0/0"
    assert str(score([("skip", 4)])) == "0/0"


def _report(statuses: dict[str, str]) -> Report:
    lab = load_lab(LAB01)
    objs = tuple(ObjectiveResult(
        id=o.id, title="t", section="s", points=o.points,
        earned=o.points if statuses[o.id] == "pass" else 0,
        status=statuses[o.id],  # type: ignore[arg-type]
        message="m", hint="") for o in lab.objectives)
    return Report(lab=lab.id, title="T", host="local://", libvirt_uri="qemu:///system",
                  user="u", lang="en", started_at="2026-12-01T10:00:00+00:00",
                  duration_s=0.1, checker_version="0", objectives=objs)


def test_progress_shows_the_best_checks_own_maximum(tmp_path, monkeypatch):
    """Issue 16: `virtlab progress` said 8/16 where `virtlab check` said 8/15 (a skipped
    objective counted in the maximum): the best check's score is shown over its own
    maximum, as its report computed it (checker.model.score)."""
    monkeypatch.setenv("VIRTLAB_DATA", str(tmp_path))
    lab = load_lab(LAB01)
    ids = [o.id for o in lab.objectives]
    statuses = dict.fromkeys(ids, "pass")
    statuses[ids[-1]] = "skip"
    best = _report(statuses)
    assert best.max_score < lab.max_score
    worse = _report(dict.fromkeys(ids, "fail"))
    assert progress.record(best) and progress.record(worse)
    row = next(r for r in progress.summary("en") if r.lab == lab.id)
    assert (row.best_score, row.max_score) == (best.score, best.max_score)


# --- no private attribute of testinfra -----------------------------------------------------

def test_local_encoding_is_known_without_asking_python3_or_touching_testinfra_privates():
    """testinfra asks a host's python3 for its encoding the first time a command prints
    non-ASCII (0.1 s); on local:// the capped ``get_encoding`` (checker.probes.output) answers
    our own, through testinfra's public ``encoding`` property, with no command run."""
    import codecs

    import testinfra.backend
    import testinfra.host

    from checker.probes import output, shell

    shell.install()  # what every virtlab host gets (engine.get_host, the plugin's --hosts)
    host = testinfra.host.Host(testinfra.backend.get_backend("local://"))  # a fresh one
    ran: list[str] = []
    real_run = host.backend.run

    def run(command, *args, **kw):
        ran.append(command)
        return real_run(command, *args, **kw)

    host.backend.run = run
    r = host.run("printf '\\303\\251t\\303\\251'")
    assert r.stdout == "été"  # decoding it needed the encoding
    assert len(ran) == 1 and "python" not in ran[0], ran
    assert codecs.lookup(host.backend.encoding).name == codecs.lookup(
        output.local_encoding()).name


def test_shared_connections_are_reused_checked_and_forgotten_through_a_public_api():
    """checker.probes.libvirt.Connections (what the engine, the watch and notebooks share
    instead of the engine's former _CONNS): a live connection is handed out again, a dead
    one is replaced, a lent one is used and forgotten, close_all closes them."""
    import libvirt

    from checker.probes.libvirt import Connections, LibvirtUnavailable, Virt

    pool = Connections()
    uri = "test:///default"
    first = pool.get(uri)
    assert pool.get(uri) is first  # reused across runs
    v = Virt(uri, connections=pool)
    assert "test" in v.domain_names and v.conn is first
    v.close()
    assert first.isAlive()  # a shared connection outlives the run
    first.close()  # its daemon (or its owner) gone: the next caller gets a fresh one
    second = pool.get(uri)
    assert second is not first and second.getVersion()
    own = libvirt.openReadOnly(uri)
    pool.share(uri, own)  # the watch lends its connection (with its event callbacks)
    assert pool.get(uri) is own
    pool.forget(uri, second)  # not the one kept: nothing forgotten
    assert pool.get(uri) is own
    pool.forget(uri)
    assert pool.get(uri) is not own
    own.close()
    pool.close_all()
    with pytest.raises(LibvirtUnavailable) as e:
        Connections().get(NO_DAEMON)
    assert e.value.kind == "daemon-down"
    # without a pool, a Virt's connection is its own: closed with it
    alone = Virt(uri)
    conn = alone.conn
    alone.close()
    with pytest.raises(libvirt.libvirtError):
        conn.getVersion()
