"""pytest plugin (entry point ``pytest11: virtlab``): run a lab's checks as plain testinfra.

    pytest --hosts=ssh://alice@pc12 --virtlab-user=alice labs/02-install-kvm/checks

gives the lab's check functions the fixtures ``virt``, ``learner``, ``facts`` and ``obj``
besides testinfra's ``host``; a failed objective is a failed test, a ``skip`` a skipped
one, and the terminal summary shows the score per lab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from checker.dsl import CheckSkipped, Verdict


def pytest_addoption(parser: Any) -> None:
    g = parser.getgroup("virtlab")
    g.addoption("--virtlab-connect", default=None, metavar="URI",
                help="libvirt URI for the labs' checks (default: derived from the host)")
    g.addoption("--virtlab-user", default=None, metavar="NAME", help="the learner")


def _is_check(item: Any) -> bool:
    fn = getattr(item, "function", None)
    return fn is not None and hasattr(fn, "virtlab_objective")


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

    return load_lab(Path(str(request.node.fspath)).parent.parent)


class _PytestVerdict(Verdict):
    def skip(self, fr: str, en: str) -> Any:  # type: ignore[override]
        pytest.skip(f"{fr} / {en}")


@pytest.fixture
def obj(request: Any) -> Verdict:
    v = _PytestVerdict(getattr(request.function, "virtlab_objective", request.node.name))
    request.node.user_properties.append(("virtlab_verdict", v))
    return v


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    outcome = yield
    rep = outcome.get_result()
    if not _is_check(item) or call.when != "call":
        return
    if call.excinfo is not None and call.excinfo.errisinstance(CheckSkipped):
        rep.outcome = "skipped"
        rep.longrepr = (str(item.fspath), 0, f"Skipped: {call.excinfo.value}")
    rep.user_properties.append(("objective", item.function.virtlab_objective))
    if call.excinfo is not None and hasattr(call.excinfo.value, "message"):
        msg = call.excinfo.value.message
        rep.longrepr = f"{item.function.virtlab_objective}: {msg.fr}\n{msg.en}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from checker.catalog import CatalogError, load_lab

    scores: dict[str, list[int]] = {}
    for status in ("passed", "failed", "skipped"):
        for rep in terminalreporter.stats.get(status, []):
            props = dict(getattr(rep, "user_properties", []))
            oid = props.get("objective")
            if not oid or rep.when != "call" and status != "skipped":
                continue
            try:
                lab = load_lab(Path(str(rep.fspath)).parent.parent)
            except (CatalogError, OSError):
                continue
            pts = lab.objective(oid).points
            s = scores.setdefault(f"{lab.id} [{getattr(rep, 'nodeid', '').split('[')[-1].rstrip(']')}]", [0, 0])
            if status != "skipped":
                s[1] += pts
                s[0] += pts if status == "passed" else 0
    if scores:
        terminalreporter.section("virtlab scores")
        for k, (got, total) in sorted(scores.items()):
            terminalreporter.write_line(f"{k}: {got}/{total}")
