"""The pytest plugin: a lab's checks run as plain testinfra tests, and the plugin, loaded in
every pytest session of the environment, leaves other test suites alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points
from pathlib import Path

from checker.catalog import load_lab, resolve
from checker.engine import check, load_checks

REPO = Path(__file__).resolve().parent.parent
LAB01 = REPO / "labs" / "01-hardware"


def plugin_args() -> list[str]:
    # Installed (pip install -e . / .ci/install), the entry point loads it; otherwise ask.
    names = {ep.value for ep in entry_points(group="pytest11")}
    return [] if "checker.pytest_plugin" in names else ["-p", "checker.pytest_plugin"]


def pytest_run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                        *plugin_args(), *args], capture_output=True, text=True, cwd=cwd,
                       timeout=300, stdin=subprocess.DEVNULL)
    assert "INTERNALERROR" not in p.stdout + p.stderr, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def outcomes(junit: Path) -> dict[str, str]:
    """{test function name: passed|failed|error|skipped} from a --junitxml file."""
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "").split("[")[0]
        kind = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                kind = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
        out[name] = kind
    return out


def test_lab01_checks_run_as_plain_testinfra_and_agree_with_the_engine(tmp_path):
    junit = tmp_path / "j.xml"
    p = pytest_run("--hosts=local://", str(LAB01 / "checks"), f"--junitxml={junit}")
    report = check("01", lang="en")
    lab = resolve("01")
    fn_of = {oid: fn.__name__ for oid, fn in load_checks(lab).items()}
    got = outcomes(junit)
    expected = {"pass": "passed", "fail": "failed", "error": "error", "skip": "skipped"}
    assert {fn_of[o.id]: expected[o.status] for o in report.objectives} == got
    # Failures are failures: pytest's exit status follows the checks.
    assert p.returncode == (0 if report.passed else 1), p.stdout[-2000:]
    # The terminal summary prints the same score as `virtlab check`.
    assert "virtlab scores" in p.stdout
    assert f"01-hardware [local]: {report.score}/{report.max_score}" in p.stdout
    # A failed objective shows the learner's message in both languages, not a traceback.
    for o in report.objectives:
        if o.status == "fail":
            assert f"{o.id}: {o.message}" in p.stdout
            assert "def test_" not in p.stdout


def test_a_skipped_objective_is_a_skipped_test_and_counts_in_no_score(tmp_path):
    lab_dir = tmp_path / "01-hardware"
    shutil.copytree(LAB01, lab_dir, ignore=shutil.ignore_patterns("__pycache__"))
    checks = lab_dir / "checks" / "test_hardware.py"
    text = checks.read_text(encoding="utf-8")
    marker = "def test_host_resources(facts, obj):\n"
    assert marker in text
    checks.write_text(text.replace(marker, marker + "    obj.skip(fr='sans objet ici', "
                                   "en='not applicable here')\n"), encoding="utf-8")
    junit = tmp_path / "j.xml"
    p = pytest_run("--hosts=local://", str(lab_dir / "checks"), f"--junitxml={junit}",
                   cwd=tmp_path)
    assert outcomes(junit)["test_host_resources"] == "skipped"
    report = check(load_lab(lab_dir), lang="en")
    assert {o.id: o.status for o in report.objectives}["host-resources"] == "skip"
    assert report.max_score == 7
    assert f"01-hardware [local]: {report.score}/7" in p.stdout


def test_a_project_test_suite_is_left_alone(tmp_path):
    (tmp_path / "test_plain.py").write_text(
        "import pytest\n\n"
        "def test_ok():\n    assert 1 + 1 == 2\n\n"
        "def test_ko():\n    assert 1 + 1 == 3\n\n"
        "@pytest.fixture\ndef facts():\n    return {'mine': True}\n\n"
        "def test_own_fixture_wins(facts):\n    assert facts == {'mine': True}\n\n"
        "@pytest.mark.parametrize('lab', ['a', 'b'])\n"
        "def test_param_named_lab(lab):\n    assert lab in 'ab'\n\n"
        "def test_skip():\n    pytest.skip('why not')\n", encoding="utf-8")
    junit = tmp_path / "j.xml"
    p = pytest_run(str(tmp_path), f"--junitxml={junit}", cwd=tmp_path)
    assert p.returncode == 1  # exactly the one failing test
    assert outcomes(junit) == {"test_ok": "passed", "test_ko": "failed",
                               "test_own_fixture_wins": "passed",
                               "test_param_named_lab": "passed", "test_skip": "skipped"}
    assert "virtlab scores" not in p.stdout
    assert "assert (1 + 1) == 3" in p.stdout  # plain assertion rewriting, untouched


def test_the_plugin_imports_nothing_heavy_when_loaded():
    code = ("import sys, checker.pytest_plugin\n"
            "heavy = [m for m in ('libvirt', 'jinja2', 'rich', 'testinfra') if m in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout.strip()
    assert out == ""


def test_the_plugin_options_are_registered():
    p = pytest_run("--help")
    assert "--virtlab-connect=URI" in p.stdout and "--virtlab-user=NAME" in p.stdout


def test_junitxml_carries_lab_and_objective(tmp_path):
    """pytest's own --junitxml (the file CI reads): each testcase names its lab, objective
    and the objective's status, as `virtlab check` gives it."""
    junit = tmp_path / "j.xml"
    pytest_run("--hosts=local://", str(LAB01 / "checks"), f"--junitxml={junit}")
    lab = resolve("01")
    fn_of = {fn.__name__: oid for oid, fn in load_checks(lab).items()}
    status = {o.id: o.status for o in check("01", lang="en").objectives}
    seen = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        seen[case.get("name").split("[")[0]] = props
    assert seen == {fn: {"lab": "01-hardware", "objective": oid, "status": status[oid]}
                    for fn, oid in fn_of.items()}


def test_k_selects_a_check_by_its_objective_id(tmp_path):
    lab = resolve("01")
    ids = [o.id for o in lab.objectives]
    fn_of = {oid: fn.__name__ for oid, fn in load_checks(lab).items()}
    target = "dev-kvm"
    assert target in ids and target not in fn_of[target]  # not by the function's name
    junit = tmp_path / "j.xml"
    p = pytest_run("--hosts=local://", str(LAB01 / "checks"), "-k", target,
                   f"--junitxml={junit}")
    assert set(outcomes(junit)) == {fn_of[target]}, p.stdout[-2000:]
    assert f"{len(ids) - 1} deselected" in p.stdout
    # expressions of ids work too
    p = pytest_run("--hosts=local://", str(LAB01 / "checks"), "-k",
                   f"{ids[0]} or {ids[1]}", f"--junitxml={junit}")
    assert set(outcomes(junit)) == {fn_of[ids[0]], fn_of[ids[1]]}
