"""The contract of every lab, found in ``labs/`` (no lab is listed here): after the reference
solution the checker gives full marks, and each break of the lab's ``breaks.toml`` fails
exactly the objectives it names, alone; every objective has a break (tests/contract.py).

Labs whose ``environment`` is ``libvirt`` run here, in the real libvirt sandbox on both Debian
releases (``release_sandbox``: ``host-bookworm`` / ``rootfs-trixie``), each break run as root
on the learner's host the way ``virtlab solve`` runs ``solution.sh``. Labs whose
``environment`` is ``suite`` keep their contract in a lab-specific suite (recorded hosts, the
real VBoxManage, a guest in a network namespace): here, every objective must have a break and
every break's test must exist in that suite (collected by pytest itself).

On this machine's release (``host-…``) the learner's host speaks French, as a learner's
Debian installed in French does: the solution, the breaks and the checks run under
``fr_FR.UTF-8`` (tests/french.py; the commands the probes run print French), and the other
release's root filesystem runs under the C locale: both kinds of hosts, every run.

``-k 03-`` picks one lab; ``-k "03- and host-"`` one lab on one release.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import contract
import pytest
from conftest import REPO, release_ids, solved_state, statuses

from checker.catalog import lab_dirs, labs_root, load_lab

LAB_DIRS = lab_dirs(labs_root())


def _contract_or_none(d: Path) -> contract.Contract | None:
    try:
        return contract.load(d)
    except contract.ContractError:
        return None  # test_every_lab_declares_a_break_for_every_objective says why


CONTRACTS = {d.name: _contract_or_none(d) for d in LAB_DIRS}
SANDBOX_LABS = [lab for lab, c in CONTRACTS.items() if c and c.environment == "libvirt"]
SUITE_LABS = [lab for lab, c in CONTRACTS.items() if c and c.environment == "suite"]
SANDBOX_CASES = [pytest.param(lab, b.name, id=f"{lab}-{b.name}")
                 for lab, c in CONTRACTS.items() if c and c.environment == "libvirt"
                 for b in c.breaks]


# --- every lab declares a complete contract ---------------------------------------------

@pytest.mark.parametrize("lab_dir", LAB_DIRS, ids=lambda d: d.name)
def test_every_lab_declares_a_break_for_every_objective(lab_dir: Path) -> None:
    c = contract.load(lab_dir)  # ContractError names the file and the field
    objectives = [o.id for o in load_lab(lab_dir).objectives]
    missing = contract.unbroken(c, objectives)
    assert not missing, (f"{c.path}: no break declared for objective(s) {missing} of "
                         f"{lab_dir.name}: add a [[break]] whose `fails` names each")
    stray = contract.unknown(c, objectives)
    assert not stray, f"{c.path}: breaks name objectives {lab_dir.name} does not have: {stray}"
    if c.environment == "libvirt":
        assert (lab_dir / "solution.sh").is_file(), f"{lab_dir.name}: no solution.sh to solve"


def _node(node_id: str) -> str:
    """A node id without the release of ``release_sandbox`` (host-bookworm, rootfs-trixie…),
    so that a break names its test once for both releases."""
    releases = "|".join(re.escape(r) for r in release_ids())
    node_id = re.sub(rf"\[(?:{releases})\]$", "", node_id)
    return re.sub(rf"\[(?:{releases})-", "[", node_id)


def _collected(files: list[str]) -> set[str]:
    """The node ids pytest itself collects from ``files`` (paths in the repository)."""
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                        "-p", "no:cacheprovider", *files],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, f"collecting {files} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
    return {_node(line.strip()) for line in r.stdout.splitlines() if "::" in line}


@pytest.mark.parametrize("lab", SUITE_LABS)
def test_a_lab_specific_suite_holds_each_declared_break(lab: str) -> None:
    c = CONTRACTS[lab]
    assert c is not None
    tests = [b for b in c.breaks if b.test]
    files = sorted({b.test.split("::", 1)[0] for b in tests})
    for f in files:
        assert (REPO / f).is_file(), f"{c.path}: {f} not found"
    have = _collected(files)
    missing = [b.test for b in tests if b.test not in have]
    assert not missing, f"{c.path}: tests not found: {missing}"
    gaps = {b.name: b.gap for b in c.breaks if b.gap}
    if gaps:
        pytest.xfail(f"{lab}: breaks no test makes yet: {gaps}")


# --- labs whose contract runs in the libvirt sandbox ------------------------------------

class Solved:
    """A lab solved for a learner on one release's sandbox."""

    def __init__(self, lab: str, sb: Any, user: str) -> None:
        self.lab, self.sb, self.user = lab, sb, user
        self.contract = CONTRACTS[lab]
        self.objectives = [o.id for o in load_lab(labs_root() / lab).objectives]

    def check(self) -> Any:
        return self.sb.check(self.lab, connect=self.sb.uri, user=self.user, lang="en")

    def run(self, script: str, work: str, what: str) -> None:
        """A break's script, as root on the learner's host, as `virtlab solve` runs
        solution.sh (bash -eu, in the lab's folder)."""
        env = {"LIBVIRT_DEFAULT_URI": self.sb.uri, "VIRTLAB_USER": self.user,
               "VIRTLAB_HOME": self.sb.passwd(self.user)[5], "VIRTLAB_WORK": work}
        assert self.contract is not None
        r = self.sb.run_script(f"{self.contract.prelude}\n{script}", env=env,
                               cwd=self.sb.lab_path(self.lab), timeout=300)
        assert r.returncode == 0, (f"{self.lab}: {what} failed ({r.returncode}):\n"
                                   f"{r.stdout}\n{r.stderr}")


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def solved(lab: str, release_sandbox: Any, request: pytest.FixtureRequest) -> Iterator[Solved]:
    """The reference solution(s) applied to an empty sandbox for a new learner (in French
    on this machine's release: see the module's doc)."""
    c = CONTRACTS[lab]
    assert c is not None
    sb = release_sandbox
    before = dict(sb.env)
    if sb.label.startswith("host-"):
        sb.env.update(request.getfixturevalue("french_locale"))
    try:
        with solved_state(sb, c.solve, groups=c.groups,
                          start=lab if c.start else None) as user:
            yield Solved(lab, sb, user)
    finally:
        sb.env.clear()
        sb.env.update(before)


@pytest.mark.integration
@pytest.mark.parametrize("lab", SANDBOX_LABS, indirect=True, scope="module")
def test_the_reference_solution_scores_full_marks(solved: Solved) -> None:
    sb = solved.sb
    r = sb.virtlab("check", solved.lab, "--connect", sb.uri, "--user", solved.user,
                   "--format", "json", "--lang", "en")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    st = {o["id"]: o["status"] for o in report["objectives"]}
    assert st == dict.fromkeys(solved.objectives, "pass"), {
        o["id"]: o["message"] for o in report["objectives"] if o["status"] != "pass"}
    assert report["score"] == report["max_score"] > 0


@pytest.mark.integration
@pytest.mark.parametrize("lab,case", SANDBOX_CASES, indirect=["lab"], scope="module")
def test_each_break_fails_exactly_its_objectives(solved: Solved, case: str) -> None:
    c = solved.contract
    assert c is not None
    brk = next(b for b in c.breaks if b.name == case)
    work = tempfile.mkdtemp(prefix="break-", dir=solved.sb.root)  # same path on its host
    try:
        solved.run(brk.run, work, f"break {case!r}")
        try:
            report = solved.check()
        finally:
            solved.run(brk.restore, work, f"restore of {case!r}")
        expected = {o: ("fail" if o in brk.fails else "pass") for o in solved.objectives}
        messages = {o.id: o.message for o in report.objectives}
        assert statuses(report) == expected, messages
        for oid in brk.fails:
            assert brk.says in messages[oid], (oid, brk.says, messages[oid])
        after = solved.check()
        assert set(statuses(after).values()) == {"pass"}, (
            f"the restore of {case!r} did not restore: "
            f"{ {o.id: o.message for o in after.objectives if o.status != 'pass'} }")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the contract file itself ------------------------------------------------------------

def _contract_in(tmp_path: Path, text: str, lifecycle: bool = False) -> Path:
    lab_dir = tmp_path / "09-scratch"
    lab_dir.mkdir()
    (lab_dir / contract.FILE).write_text(text, encoding="utf-8")
    if lifecycle:
        (lab_dir / "lifecycle.py").write_text("", encoding="utf-8")
    return lab_dir


@pytest.mark.parametrize("text, says", [
    ('environment = "cloud"\n', "field 'environment' must be one of"),
    ('environment = "libvirt"\n[[break]]\nname = "x"\nfails = ["a"]\nrun = "true"\n',
     "break[0] (x): field 'restore' is missing or empty"),
    ('environment = "libvirt"\n[[break]]\nname = "x"\nfails = "a"\nrun = "t"\nrestore = "t"\n',
     "break[0] (x): field 'fails' must be a list"),
    ('environment = "suite"\nwhy = "w"\n[[break]]\nname = "x"\nfails = ["a"]\n',
     "break[0] (x): field 'test' is missing or empty"),
    ('environment = "suite"\n[[break]]\nname = "x"\nfails = ["a"]\ntest = "t"\n',
     "field 'why' is missing or empty"),
    ('environment = "libvirt"\nsolv = ["03"]\n', "unknown fields ['solv']"),
    ('environment = "libvirt"\n[[break]]\nname = "x"\nfails = ["a"]\nrun = "t"\nrestore = "t"\n'
     'gap = "g"\n', "'gap' is for environment \"suite\" only"),
    ('environment = "libvirt"\n[[break]]\nname = "x"\nfails = ["a"]\nrun = "t"\nrestore = "t"\n'
     '[[break]]\nname = "x"\nfails = ["a"]\nrun = "t"\nrestore = "t"\n', "appear twice: ['x']"),
    ('environment = "libvirt\n', "not valid TOML"),
])
def test_a_malformed_contract_names_the_file_and_the_field(tmp_path: Path, text: str,
                                                            says: str) -> None:
    lab_dir = _contract_in(tmp_path, text)
    with pytest.raises(contract.ContractError) as e:
        contract.load(lab_dir)
    assert str(lab_dir / contract.FILE) in str(e.value) and says in str(e.value), str(e.value)


def test_a_lab_without_a_contract_is_told_to_declare_one(tmp_path: Path) -> None:
    lab_dir = tmp_path / "09-scratch"
    lab_dir.mkdir()
    with pytest.raises(contract.ContractError, match="missing"):
        contract.load(lab_dir)


def test_an_objective_without_a_break_is_named(tmp_path: Path) -> None:
    c = contract.load(_contract_in(
        tmp_path, 'environment = "libvirt"\n[[break]]\nname = "x"\nfails = ["a", "z"]\n'
                  'run = "t"\nrestore = "t"\n', lifecycle=True))
    assert contract.unbroken(c, ["a", "b", "c"]) == ["b", "c"]
    assert contract.unknown(c, ["a", "b", "c"]) == ["z"]
    assert c.solve == ("09",) and c.start is True and c.groups == ("libvirt",)
