"""pytest plugin (entry point ``pytest11: virtlab``): run a lab's checks as plain testinfra.

    pytest --hosts=ssh://alice@pc12 --virtlab-user=alice labs/02-install-kvm/checks

gives the lab's check functions the fixtures of :data:`checker.fixtures.FIXTURES` (``virt``,
``learner``, ``facts``, ``lab``, ``obj``; ``host`` is testinfra's own), defined here from that
registry, as ``virtlab check`` resolves them. A check's status follows the same rule as
under ``virtlab check`` (:func:`checker.outcome.judge`): a failed objective (``obj.fail()``
or a plain ``assert``) is a FAILED test (its message in French and English), an
``obj.skip()`` a skipped one, an objective that could not be evaluated an ERROR; the
terminal summary shows the score per lab and host (:func:`checker.model.score`).

Each check is known by its objective: ``-k cpu-virt-flags`` selects it (the id ``virtlab
show`` prints is one of the test's keywords), and ``--junitxml`` gives every testcase the
properties ``lab`` (the lab id), ``objective`` and ``status`` (pass, fail, error, skip); an
objective that could not be evaluated is an ``<error>`` there, not a ``<failure>``
(:func:`pytest_sessionfinish`).

The plugin is loaded in every pytest session of an environment where virtlab is installed:
it does nothing to tests that are not lab checks (functions marked by ``@objective``), and
imports nothing heavy until a lab check asks for a fixture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

_LAB_PROP = "lab"
_OBJ_PROP = "objective"
_STATUS_PROP = "status"


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
    from checker.probes import shell

    shell.install()
    remote = False
    for spec in hosts.split(","):
        spec = spec.strip()
        scheme = spec.split("://", 1)[0] if "://" in spec else (
            getattr(config.option, "connection", None) or "paramiko")
        if scheme in engine.UNBOUNDED_BACKENDS:
            raise pytest.UsageError("virtlab: " + engine.MSG_UNBOUNDED.format(
                spec=repr(spec), scheme=repr(scheme)).both("\n"))
        if "://" in spec and scheme != "local":
            try:
                engine.check_spec(spec, scheme)
            except engine.BadHostSpec as e:
                raise pytest.UsageError("virtlab: " + e.text.both("\n")) from None
        remote = remote or scheme in ("ssh", "ansible")
    if remote:
        config.option.ssh_config = engine.ssh_wrapper(config.option.ssh_config, None)


def _is_check(item: Any) -> bool:
    fn = getattr(item, "function", None)
    return fn is not None and hasattr(fn, "virtlab_objective")


def _lab_dir(item: Any) -> Path:
    # labs/NN-slug/checks/test_x.py -> labs/NN-slug
    return Path(str(item.path)).resolve().parent.parent


@pytest.fixture(scope="module")
def virtlab_run(request: Any, host: Any) -> Any:
    """What the lab's fixtures are built from: the lab of this module, testinfra's host,
    the libvirt URI (``--virtlab-connect``, else derived from the host) and the learner
    (``--virtlab-user``, else who the host's connection logs in as)."""
    from checker.catalog import load_lab
    from checker.engine import Target
    from checker.fixtures import RunContext
    from checker.probes.learner import default_learner

    spec = getattr(host.backend, "get_pytest_id", lambda: "local://")()
    spec = spec if "://" in spec else f"ssh://{spec}"
    if spec.startswith("local"):
        spec = "local://"
    uri = request.config.getoption("--virtlab-connect") or Target(host=spec).libvirt_uri()
    name = request.config.getoption("--virtlab-user")

    def user() -> str:
        if name:
            return str(name)
        return str(host.user().name) if host.backend.NAME != "local" else default_learner(None)

    node = request.node
    return RunContext(lambda: load_lab(_lab_dir(node)), host, uri, user)


def _define_fixture(name: str, per_check: bool, doc: str) -> Any:
    """The pytest fixture ``name`` of the registry (checker.fixtures.FIXTURES)."""

    def fixture(request: Any, virtlab_run: Any) -> Any:
        from checker.fixtures import FIXTURES

        spec = FIXTURES[name]
        oid = getattr(request.function, "virtlab_objective", request.node.name) if per_check else ""
        value = spec.build(virtlab_run, oid)
        yield value
        if spec.close is not None:
            spec.close(value)

    fixture.__name__ = fixture.__qualname__ = f"virtlab_{name}"
    fixture.__doc__ = doc
    return pytest.fixture(scope="function" if per_check else "module", name=name)(fixture)


def _define_fixtures() -> None:
    from checker.fixtures import FIXTURES

    for spec in FIXTURES.values():
        if not spec.from_testinfra:  # host: testinfra's own fixture
            globals()[f"virtlab_fixture_{spec.name}"] = _define_fixture(
                spec.name, spec.per_check, spec.description.both())


_define_fixtures()


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
    """A lab check's status is the one outcome rule's (checker.outcome.judge), as under
    ``virtlab check``: its own verdict is shown in both languages instead of a traceback,
    an error (libvirt unreachable, connection lost, the check could not evaluate) is
    reported as ERROR (:func:`pytest_report_teststatus`)."""
    outcome = yield
    if not _is_check(item) or call.when != "call":
        return
    exc = call.excinfo.value if call.excinfo is not None else None
    if exc is not None and not isinstance(exc, Exception):
        return  # pytest.skip(), pytest.xfail(), Ctrl-C…: pytest's own
    from checker.dsl import Verdict
    from checker.outcome import judge

    rep = outcome.get_result()
    obj = item.funcargs.get("obj")
    virt = item.funcargs.get("virt")
    result = judge(exc, obj if isinstance(obj, Verdict) else None, getattr(virt, "uri", None))
    rep.virtlab_status = result.status
    # the teardown report, which --junitxml writes, carries the item's properties
    item.user_properties.append((_STATUS_PROP, result.status))
    if result.status == "pass":
        return
    from checker.markup import plain

    oid = item.function.virtlab_objective
    if result.status == "skip":
        rep.outcome = "skipped"
        rep.longrepr = (str(item.path), 0, f"Skipped: {plain(result.message.both())}")
        return
    rep.outcome = "failed"
    if result.unexpected and result.status == "fail":
        return  # a plain assert: pytest's own report explains it (assertion rewriting)
    # pytest's report is plain text: the verdict's inline Markdown marks dropped
    text = "\n".join(f"{oid}: {plain(line)}" for line in dict.fromkeys(
        (result.message.fr, result.message.en)))
    if result.unexpected:
        # a bug in the check: its traceback helps its author, the verdict says it too
        rep.sections.append(("virtlab", text))
    else:
        rep.longrepr = text


def pytest_report_teststatus(report: Any, config: Any) -> Any:
    """An objective that could not be evaluated is an ERROR, not a FAILED test."""
    if report.when == "call" and getattr(report, "virtlab_status", None) == "error":
        return "error", "E", ("ERROR", {"red": True})
    return None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: Any) -> None:
    """In the ``--junitxml`` file pytest has just written (its own hook ran first), an
    objective that could not be evaluated becomes an ``<error>``: pytest writes any test that
    failed while it ran as a ``<failure>``, yet CI servers and JUnit readers tell the two
    apart (a broken environment, not a learner's mistake). The counts of each suite follow."""
    path = session.config.getoption("xmlpath", None)
    if not path or hasattr(session.config, "workerinput") or not Path(path).is_file():
        return  # an xdist worker: the controller writes the file
    import xml.etree.ElementTree as ET

    tree = ET.parse(path)
    changed = False
    for case in tree.getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        failure = case.find("failure")
        if props.get(_OBJ_PROP) and props.get(_STATUS_PROP) == "error" and failure is not None:
            failure.tag, changed = "error", True
    if not changed:
        return
    for suite in tree.getroot().iter("testsuite"):
        cases = list(suite.iter("testcase"))
        suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
        suite.set("errors", str(sum(c.find("error") is not None for c in cases)))
    tree.write(path, encoding="utf-8", xml_declaration=True)


_STATUS_OF_OUTCOME = {"passed": "pass", "failed": "fail", "skipped": "skip"}


def _status(rep: Any) -> str | None:
    """The objective status of a lab check's report (None: this report does not decide)."""
    if rep.when == "call":
        return getattr(rep, "virtlab_status", None) or _STATUS_OF_OUTCOME.get(rep.outcome)
    if rep.when == "setup" and rep.failed:
        return "error"  # its fixtures could not be built: not evaluated
    if rep.when == "setup" and rep.skipped:
        return "skip"
    return None


def _host_of(nodeid: str) -> str:
    # test_x.py::test_y[ssh://pc12] -> ssh://pc12 (testinfra's parametrisation id)
    if nodeid.endswith("]") and "[" in nodeid:
        return nodeid[nodeid.rindex("[") + 1:-1]
    return "local://"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from checker.catalog import CatalogError, load_lab
    from checker.model import score

    root = Path(str(terminalreporter.config.rootpath))

    labs: dict[str, Any] = {}
    results: dict[tuple[str, str], dict[str, tuple[str, int]]] = {}
    for reports in list(terminalreporter.stats.values()):
        for rep in reports:
            if getattr(rep, "when", None) not in ("setup", "call"):
                continue
            props = dict(getattr(rep, "user_properties", []))
            oid = props.get(_OBJ_PROP)
            if not oid or not props.get(_LAB_PROP):
                continue
            status = _status(rep)
            if status is None:
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
            results.setdefault((lab.id, _host_of(rep.nodeid)), {})[rep.nodeid] = (status, pts)
    if results:
        terminalreporter.section("virtlab scores")
        for (lab_id, host), by_test in sorted(results.items()):
            terminalreporter.write_line(f"{lab_id} [{host}]: {score(by_test.values())}")


def pytest_unconfigure(config: Any) -> None:
    """The remote shells the hosts of ``--hosts`` opened (checker.probes.shell) end with the
    session."""
    if getattr(config.option, "hosts", None):
        from checker.probes.shell import close_all

        close_all()
