"""Shared fixtures: the real libvirt sandbox, real Unix users, running the CLI.

In CI (CI=true) an integration test whose environment cannot be set up FAILS; elsewhere
(a developer without root) it is skipped with the reason.

Both Debian releases: ``sandbox`` / ``clean_sandbox`` are this machine's own release;
``release_sandbox`` / ``clean_release_sandbox`` are parametrised over the machine's release
(id ``host-bookworm`` on Debian 12) and the other one run from a cached root filesystem
(``rootfs-trixie``, see tests/sandbox_rootfs.py). Both expose the same interface (libvirt,
and ``check``/``virtlab``/``run``/``add_user`` on the learner's host they stand for), so a lab
suite written against it runs on both; ``-k host-`` or ``-k rootfs-`` selects one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sandbox import Sandbox, SandboxError

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def cannot_run(reason: str) -> None:
    """An integration test that cannot run: a failure in CI, a visible skip elsewhere."""
    if IN_CI:
        pytest.fail(f"integration environment unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    if os.geteuid() != 0:
        cannot_run("the libvirt sandbox needs root")
    sb = Sandbox()
    try:
        sb.open()
    except (SandboxError, OSError, subprocess.SubprocessError) as e:
        sb.close()
        cannot_run(f"cannot start the libvirt sandbox: {e}")
    try:
        yield sb
    finally:
        sb.close()


@pytest.fixture
def clean_sandbox(sandbox: Sandbox) -> Iterator[Sandbox]:
    if not sandbox.running:
        sandbox.start()
    sandbox.reset()
    yield sandbox
    if not sandbox.running:
        sandbox.start()
    sandbox.reset()


def release_ids() -> list[str]:
    try:
        from rootfs import host_release, other_release

        return [f"host-{host_release()}", f"rootfs-{other_release()}"]
    except Exception:  # not Debian 12/13: the fixture reports it when used  # noqa: BLE001
        return ["host", "rootfs"]


_ROOTFS_TIMINGS: dict[str, dict[str, float]] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How long the other release's sandbox took to set up (a first run builds it)."""
    from rootfs import CACHE

    for label, t in _ROOTFS_TIMINGS.items():
        terminalreporter.write_line(
            f"{label} sandbox set up: " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items())
            + f" (root filesystem and venv cached under {CACHE})")


@pytest.fixture(scope="session")
def rootfs_sandbox() -> Iterator[Sandbox]:
    """The other Debian release's host and libvirtd (tests/sandbox_rootfs.py). Building it
    (first run on a machine: root filesystem, venv, QEMU capabilities) happens here."""
    from rootfs import RootfsError, tool_path
    from sandbox_rootfs import RootfsSandbox

    if os.geteuid() != 0:
        cannot_run("the other release's sandbox needs root")
    if not tool_path():
        cannot_run("mmdebstrap is not installed (.ci/install --test)")
    try:
        sb = RootfsSandbox()
    except RootfsError as e:
        cannot_run(f"cannot choose the other Debian release: {e}")
    try:
        sb.open()
    except (SandboxError, RootfsError, OSError, subprocess.SubprocessError) as e:
        sb.close()
        cannot_run(f"cannot start the other release's sandbox: {e}")
    _ROOTFS_TIMINGS[sb.label] = sb.timings
    try:
        yield sb
    finally:
        sb.close()


@pytest.fixture(scope="session", params=["host", "rootfs"], ids=release_ids())
def release_sandbox(request: pytest.FixtureRequest) -> Sandbox:
    """This machine's sandbox, then the other release's: one lab suite, both releases."""
    name = "sandbox" if request.param == "host" else "rootfs_sandbox"
    return request.getfixturevalue(name)


@pytest.fixture
def clean_release_sandbox(release_sandbox: Sandbox) -> Iterator[Sandbox]:
    sb = release_sandbox
    if not sb.running:
        sb.start()
    sb.reset()
    yield sb
    if not sb.running:
        sb.start()
    sb.reset()


def content_gap(sb: Sandbox, gaps: dict[str, str], ok: bool, detail: str = "") -> None:
    """A fact that depends on a lab's CONTENT (instructions, checks, solution) being right for
    the release of ``sb``. ``gaps`` = {release: the content fix still needed}.

    No gap for this release: the fact must hold (assert). A gap: the test is xfailed here if
    the fact does not hold, and FAILS if it does (strict: the fix landed, remove the gap).
    Put it after the assertions the test infrastructure answers for, so that an
    infrastructure failure is never taken for a known content gap.
    """
    reason = gaps.get(sb.release)
    if reason is None:
        assert ok, detail
    elif ok:
        pytest.fail(f"{sb.label}: passes now; remove the declared content gap: {reason}",
                    pytrace=False)
    else:
        pytest.xfail(f"{sb.label}: {reason}")


def add_user(groups: tuple[str, ...] | list[str] = (), shell: str = "/bin/bash") -> str:
    """A real Unix user (home made) in ``groups`` (made if missing); remove with remove_user."""
    if os.geteuid() != 0:
        cannot_run("creating users needs root")
    name = f"vl{uuid.uuid4().hex[:8]}"
    cmd = ["useradd", "-m", "-s", shell, name]
    if groups:
        for g in groups:
            subprocess.run(["groupadd", "-f", g], check=True)
        cmd[1:1] = ["-G", ",".join(groups)]
    subprocess.run(cmd, check=True, capture_output=True)
    return name


def remove_user(name: str) -> None:
    subprocess.run(["userdel", "-r", "-f", name], capture_output=True)


@pytest.fixture
def make_user() -> Iterator[Callable[..., str]]:
    """make_user(groups=("libvirt",)) -> the name of a real user, removed after the test."""
    made: list[str] = []

    def make(groups: tuple[str, ...] | list[str] = (), shell: str = "/bin/bash") -> str:
        made.append(add_user(groups, shell))
        return made[-1]

    yield make
    for name in made:
        remove_user(name)


@pytest.fixture
def make_learner(release_sandbox: Sandbox) -> Iterator[Callable[..., str]]:
    """make_user, on the learner's host of ``release_sandbox`` (this machine or the rootfs)."""
    made: list[str] = []

    def make(groups: tuple[str, ...] | list[str] = (), shell: str = "/bin/bash") -> str:
        made.append(release_sandbox.add_user(groups, shell))
        return made[-1]

    yield make
    for name in made:
        release_sandbox.remove_user(name)


@contextmanager
def solved_state(sb: Sandbox, labs: tuple[str, ...],
                 groups: tuple[str, ...] = ("libvirt",), start: str | None = None,
                 ) -> Iterator[str]:
    """An empty sandbox, a new learner in ``groups``, ``virtlab start`` of lab ``start`` if
    given (a lab whose scene its lifecycle builds), and ``virtlab solve`` of each lab applied
    for that learner; yields the learner; everything undone after. The learner and the CLI
    are those of the host ``sb`` stands for (this machine, or the other release's root
    filesystem)."""
    if not sb.running:
        sb.start()
    sb.reset()
    user = sb.add_user(groups)
    try:
        if start:
            r = sb.virtlab("start", start, "--yes", "--connect", sb.uri, timeout=600)
            assert r.returncode == 0, r.stdout + r.stderr
        for lab in labs:
            r = sb.virtlab("solve", lab, "--yes", "--user", user, "--connect", sb.uri,
                           timeout=600)
            assert r.returncode == 0, r.stdout + r.stderr
        yield user
    finally:
        if not sb.running:
            sb.start()
        sb.reset()
        sb.remove_user(user)


def run_virtlab(*args: str, env: dict[str, str] | None = None, input: str | None = None,
                timeout: float = 120,
                cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a learner would (``python -m checker`` of this checkout).

    Every file the command writes for another program is then read the way that program
    reads it (:func:`check_outputs`)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    r = subprocess.run([sys.executable, "-m", "checker", *args], capture_output=True,
                       text=True, env=full_env, input=input, timeout=timeout,
                       cwd=cwd or REPO)
    check_outputs(list(args), r, Path(cwd or REPO))
    return r


def _opt(args: list[str], name: str) -> str | None:
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def check_outputs(args: list[str], r: subprocess.CompletedProcess[str], cwd: Path) -> None:
    """The consumers of what a CLI run wrote: JSON reports and class exports against their
    JSON Schemas, JUnit against Jenkins' schema (xmllint), CSV through Moodle's import rules."""
    from consumers import check_json, check_moodle_csv, xmllint_junit

    if not args or "--help" in args or "-h" in args:
        return
    verb = args[0]
    if verb == "check" and r.returncode in (0, 1) and "--watch" not in args:
        fmt, out = _opt(args, "--format"), _opt(args, "--output")
        text = (cwd / out).read_text(encoding="utf-8") if out else r.stdout
        if fmt == "json":
            check_json(text, "report")
        elif fmt == "junit":
            xmllint_junit(text)
    if verb == "grade" and r.returncode in (0, 3):
        for opt, check in (("--json", lambda p: check_json(p.read_text(encoding="utf-8"),
                                                            "class-export")),
                           ("--csv", lambda p: check_moodle_csv(p.read_text(encoding="utf-8")))):
            path = _opt(args, opt)
            if path and (cwd / path).exists():
                check(cwd / path)


@pytest.fixture
def virtlab() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_virtlab


def statuses(report: Any) -> dict[str, str]:
    """{objective id: status} of a Report."""
    return {o.id: o.status for o in report.objectives}


@pytest.fixture(scope="session", autouse=True)
def _every_report_meets_its_schema() -> Iterator[None]:
    """Every report and class export made in this test session, in this process, is
    validated against its JSON Schema (checker/schemas) as it is made; every CSV export goes
    through Moodle's import rules (the CLI's files: :func:`check_outputs`)."""
    from consumers import check_json, check_moodle_csv

    from checker.grade import exports
    from checker.model import Report

    to_dict, to_json, to_csv = Report.to_dict, exports.to_json, exports.to_csv

    def checked_to_dict(self: Report) -> dict[str, Any]:
        d = to_dict(self)
        check_json(json.loads(json.dumps(d, default=str)), "report")
        return d

    def checked_to_json(*a: Any, **k: Any) -> str:
        text = to_json(*a, **k)
        check_json(text, "class-export")
        return text

    def checked_to_csv(*a: Any, **k: Any) -> str:
        text = to_csv(*a, **k)
        check_moodle_csv(text)
        return text

    Report.to_dict = checked_to_dict  # type: ignore[method-assign]
    exports.to_json, exports.to_csv = checked_to_json, checked_to_csv
    try:
        yield
    finally:
        Report.to_dict = to_dict  # type: ignore[method-assign]
        exports.to_json, exports.to_csv = to_json, to_csv


@pytest.fixture(scope="session", autouse=True)
def _private_progress_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Checks record progress under VIRTLAB_DATA: keep the tests' records out of ~/.local."""
    old = os.environ.get("VIRTLAB_DATA")
    os.environ["VIRTLAB_DATA"] = str(tmp_path_factory.mktemp("virtlab-data"))
    yield
    if old is None:
        os.environ.pop("VIRTLAB_DATA", None)
    else:
        os.environ["VIRTLAB_DATA"] = old


@pytest.fixture(scope="module")
def sshd() -> Iterator[Any]:
    """A real sshd on 127.0.0.1 (its own host key and config), for remote grading tests."""
    from sshd import Sshd, SshdError

    if os.geteuid() != 0:
        cannot_run("tests over SSH start sshd and create learner users: they need root")
    try:
        server = Sshd().start()
    except (SshdError, OSError, subprocess.SubprocessError) as e:
        cannot_run(f"cannot start sshd: {e}")
    yield server
    server.close()


def libvirt_state(sb: Any) -> dict[str, Any]:
    """Every domain (live and inactive XML, snapshots), network, pool and volume, as XML."""
    import libvirt

    c = sb.conn()
    state: dict[str, Any] = {}
    for d in c.listAllDomains(0):
        state[f"domain:{d.name()}"] = (
            d.XMLDesc(0), d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), d.state(), d.autostart(),
            sorted((s.getName(), s.getXMLDesc(0)) for s in d.listAllSnapshots(0)))
    for n in c.listAllNetworks(0):
        state[f"network:{n.name()}"] = (n.XMLDesc(0), n.isActive(), n.autostart())
    for p in c.listAllStoragePools(0):
        vols = sorted((v.name(), v.XMLDesc(0)) for v in p.listAllVolumes(0)) if p.isActive() else []
        state[f"pool:{p.name()}"] = (p.XMLDesc(0), p.isActive(), p.autostart(), vols)
    return state


@pytest.fixture(scope="session")
def french_locale(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a learner whose Debian speaks French (tests/french.py)."""
    from french import build_locale, french_env

    try:
        folder = build_locale(tmp_path_factory.mktemp("locale"))
    except (OSError, subprocess.CalledProcessError) as e:
        cannot_run(f"cannot build the fr_FR.UTF-8 locale: {e}")
    return french_env(folder)
