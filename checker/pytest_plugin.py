"""pytest plugin (entry point ``pytest11: virtlab``): run a lab's checks as plain testinfra.

    pytest --hosts=ssh://alice@pc12 --virtlab-user=alice labs/02-install-kvm/checks

gives the lab's check functions the fixtures ``virt``, ``learner``, ``facts``, ``lab`` and
``obj`` besides testinfra's ``host``; a failed objective is a failed test (its message in
French and English instead of a traceback), an ``obj.skip()`` a skipped one, and the
terminal summary shows the score per lab and host.

Each check is known by its objective: ``-k cpu-virt-flags`` selects it (the id ``virtlab
show`` prints is one of the test's keywords), and ``--junitxml`` gives every testcase the
properties ``lab`` (the lab id) and ``objective``.

The plugin is loaded in every pytest session of an environment where virtlab is installed:
it does nothing to tests that are not lab checks (functions marked by ``@objective``), and
imports nothing heavy until a lab check asks for a fixture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from checker.dsl import CheckSkipped, Verdict

_LAB_PROP = "lab"
_OBJ_PROP = "objective"


def pytest_addoption(parser: Any) -> None:
    g = parser.getgroup("virtlab")
    g.addoption("--virtlab-connect", default=None, metavar="URI",
                help="libvirt URI for the labs' checks (default: derived from the host)")
    g.addoption("--virtlab-user", default=None, metavar="NAME", help="the learner")


def pytest_configure(config: Any) -> None:
    """With ``--hosts``, the same protections as ``virtlab check --host`` (issue 12): specs
    refused when a tool could read them as an option, every output read with a cap, and ssh
    started through a wrapper that forces the safe settings (no agent forwarding…)."""
    hosts = getattr(config.option, "hosts", None)
    if not hosts:
        return
    from checker import engine
    from checker.probes import output

    output.install()
    remote = False
    for spec in hosts.split(","):
        spec = spec.strip()
        scheme = spec.split("://", 1)[0] if "://" in spec else (
            getattr(config.option, "connection", None) or "paramiko")
        if scheme in engine.UNBOUNDED_BACKENDS:
            raise pytest.UsageError(f"virtlab: {spec}: the {scheme!r} backend reads output "
                                    "without a cap; use ssh://")
        if "://" in spec and scheme != "local":
            try:
                engine._check_spec(spec, scheme)
            except engine.BadHostSpec as e:
                raise pytest.UsageError(f"virtlab: {e}") from None
        remote = remote or scheme in ("ssh", "ansible")
    if remote:
        config.option.ssh_config = engine._ssh_wrapper(config.option.ssh_config, None)


def _is_check(item: Any) -> bool:
    fn = getattr(item, "function", None)
    return fn is not None and hasattr(fn, "virtlab_objective")


def _lab_dir(item: Any) -> Path:
    # labs/NN-slug/checks/test_x.py -> labs/NN-slug
    return Path(str(item.path)).resolve().parent.parent


@pytest.fixture(scope="module")
def virt(request: Any, host: Any) -> Any:
    from checker.engine import Target
    from checker.probes.libvirt import Virt

    spec = getattr(host.backend, "get_pytest_id", lambda: "local://")()
    spec = spec if "://" in spec else f"ssh://{spec}"
    if spec.startswith("local"):
        spec = "local://"
    uri = request.config.getoption("--virtlab-connect") or Target(host=spec).libvirt_uri()
    v = Virt(uri)
    yield v
    v.close()


@pytest.fixture(scope="module")
def learner(request: Any, host: Any) -> Any:
    from checker.probes.learner import Learner, default_learner

    name = request.config.getoption("--virtlab-user")
    if not name:
        name = host.user().name if host.backend.NAME != "local" else default_learner(None)
    return Learner(host, name)


@pytest.fixture(scope="module")
def facts(host: Any) -> Any:
    from checker.probes.host import HostFacts

    return HostFacts(host)


@pytest.fixture
def lab(request: Any) -> Any:
    from checker.catalog import load_lab

    return load_lab(_lab_dir(request.node))


class _PytestVerdict(Verdict):
    def skip(self, fr: str, en: str) -> Any:  # type: ignore[override]
        pytest.skip(f"{fr} / {en}")


@pytest.fixture
def obj(request: Any) -> Verdict:
    return _PytestVerdict(getattr(request.function, "virtlab_objective", request.node.name))


def pytest_itemcollected(item: Any) -> None:
    """Name each check by its objective, before ``-k`` deselects anything: the objective id
    becomes a keyword, and ``lab``/``objective`` item properties, which pytest copies into
    every report of the test (the teardown one is what ``--junitxml`` writes)."""
    if not _is_check(item):
        return
    oid = item.function.virtlab_objective
    item.extra_keyword_matches.add(oid)
    # Plain strings only: user_properties travel to --junitxml and to xdist workers.
    item.user_properties.append((_LAB_PROP, _lab_dir(item).name))
    item.user_properties.append((_OBJ_PROP, oid))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    outcome = yield
    if not _is_check(item) or call.when != "call":
        return
    rep = outcome.get_result()
    oid = item.function.virtlab_objective
    exc = call.excinfo.value if call.excinfo is not None else None
    if isinstance(exc, CheckSkipped):
        rep.outcome = "skipped"
        rep.longrepr = (str(item.path), 0, f"Skipped: {exc.message.fr} / {exc.message.en}")
    elif exc is not None and hasattr(exc, "message") and hasattr(exc.message, "fr"):
        # obj.fail()/obj.error(): the learner's message, not a traceback of the check.
        rep.longrepr = f"{oid}: {exc.message.fr}\n{oid}: {exc.message.en}"


def _host_of(nodeid: str) -> str:
    # test_x.py::test_y[ssh://pc12] -> ssh://pc12 (testinfra's parametrisation id)
    if nodeid.endswith("]") and "[" in nodeid:
        return nodeid[nodeid.rindex("[") + 1:-1]
    return "local://"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from checker.catalog import CatalogError, load_lab

    root = Path(str(terminalreporter.config.rootpath))

    labs: dict[str, Any] = {}
    scores: dict[tuple[str, str], list[int]] = {}
    for status in ("passed", "failed", "skipped"):
        for rep in terminalreporter.stats.get(status, []):
            if getattr(rep, "when", None) != "call":
                continue
            props = dict(getattr(rep, "user_properties", []))
            oid = props.get(_OBJ_PROP)
            if not oid or not props.get(_LAB_PROP):
                continue
            # labs/NN-slug/checks/test_x.py -> labs/NN-slug
            lab_dir = str((root / rep.location[0]).resolve().parent.parent)
            if lab_dir not in labs:
                try:
                    labs[lab_dir] = load_lab(Path(lab_dir))
                except (CatalogError, OSError):
                    labs[lab_dir] = None
            lab = labs[lab_dir]
            if lab is None:
                continue
            try:
                pts = lab.objective(oid).points
            except KeyError:
                continue
            s = scores.setdefault((lab.id, _host_of(rep.nodeid)), [0, 0])
            if status != "skipped":  # a skipped objective counts neither way
                s[1] += pts
                s[0] += pts if status == "passed" else 0
    if scores:
        terminalreporter.section("virtlab scores")
        for (lab_id, host), (got, total) in sorted(scores.items()):
            terminalreporter.write_line(f"{lab_id} [{host}]: {got}/{total}")
