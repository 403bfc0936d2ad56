"""The fixtures a check may ask for, declared once for both runners.

A check function names what it reads by its parameters (``def test_x(virt, obj)``), the
testinfra way. :data:`FIXTURES` is the one list of those names: ``virtlab check``
(:class:`checker.engine.Fixtures`) resolves a check's parameters from it, and the pytest
plugin (:mod:`checker.pytest_plugin`) defines its pytest fixtures from it. Adding a fixture
is adding one :class:`Fixture` here.

Each fixture is built from a :class:`RunContext`: what a runner knows when it starts
checking one lab on one host (the lab, testinfra's host, the libvirt URI, the learner's
name). Run-level fixtures are built once per run (a pytest module), per-check ones once per
objective (a pytest test).

>>> sorted(FIXTURES)
['facts', 'host', 'lab', 'learner', 'obj', 'virt']
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from checker.i18n import Text, message

if TYPE_CHECKING:
    from checker.model import Lab
    from checker.probes.libvirt import Connections


class RunContext:
    """What a runner knows when it starts checking one lab on one host.

    ``lab`` and ``user`` may be callables: they are then found only when a check needs them
    (under pytest, the learner's name on a remote host costs a command).
    """

    def __init__(self, lab: Lab | Callable[[], Lab], host: Any, libvirt_uri: str,
                 user: str | Callable[[], str], connections: Connections | None = None):
        self._lab = lab
        self.host = host
        self.libvirt_uri = libvirt_uri
        self._user = user
        self.connections = connections

    @cached_property
    def lab(self) -> Lab:
        return self._lab() if callable(self._lab) else self._lab

    @cached_property
    def user(self) -> str:
        return self._user() if callable(self._user) else self._user


def _host(ctx: RunContext, oid: str) -> Any:
    return ctx.host


def _virt(ctx: RunContext, oid: str) -> Any:
    from checker.probes.libvirt import for_run

    return for_run(ctx.libvirt_uri, ctx.connections)


def _learner(ctx: RunContext, oid: str) -> Any:
    from checker.probes.learner import Learner

    return Learner(ctx.host, ctx.user)


def _facts(ctx: RunContext, oid: str) -> Any:
    from checker.probes.host import HostFacts

    return HostFacts(ctx.host)


def _lab(ctx: RunContext, oid: str) -> Any:
    return ctx.lab


def _obj(ctx: RunContext, oid: str) -> Any:
    from checker.dsl import Verdict

    return Verdict(oid)


def _close_virt(virt: Any) -> None:
    virt.close()


@dataclass(frozen=True)
class Fixture:
    """One fixture a check may ask for."""

    name: str
    #: one line, for check authors (``virtlab`` docs, ``pytest --fixtures``)
    description: Text
    #: builds the value from the run context and the objective being checked
    build: Callable[[RunContext, str], Any]
    #: built afresh for each objective (pytest scope "function"), else once per run ("module")
    per_check: bool = False
    #: under pytest, testinfra's own fixture of this name is used (the plugin defines none)
    from_testinfra: bool = False
    #: called on the value when the run ends (pytest: module teardown)
    close: Callable[[Any], None] | None = None


FIXTURES: dict[str, Fixture] = {f.name: f for f in (
    Fixture("host", Text(
        fr="l'hôte testinfra inspecté (commandes, fichiers, paquets, services)",
        en="testinfra's host being checked (commands, files, packages, services)"),
        _host, from_testinfra=True),
    Fixture("virt", Text(
        fr="les faits libvirt en lecture seule (checker.probes.libvirt.Virt)",
        en="read-only libvirt facts (checker.probes.libvirt.Virt)"),
        _virt, close=_close_virt),
    Fixture("learner", Text(
        fr="l'apprenant : ses groupes, son dossier, ses commandes (checker.probes.learner)",
        en="the learner: groups, home, commands run as them (checker.probes.learner)"),
        _learner),
    Fixture("facts", Text(
        fr="les faits de l'hôte : CPU, mémoire, version de Debian (checker.probes.host)",
        en="host facts: CPU, memory, Debian release (checker.probes.host)"),
        _facts),
    Fixture("lab", Text(
        fr="le lab vérifié, lu dans son lab.toml (checker.model.Lab)",
        en="the lab being checked, read from its lab.toml (checker.model.Lab)"),
        _lab),
    Fixture("obj", Text(
        fr="le verdict de l'objectif : obj.evidence(), ok(), fail(), skip(), error()",
        en="the objective's verdict: obj.evidence(), ok(), fail(), skip(), error()"),
        _obj, per_check=True),
)}


M_UNKNOWN_FIXTURE = message(
    "fixtures.unknown",
    fr="{where} : fixture inconnue {name} (une vérification peut demander : {known})",
    en="{where}: unknown fixture {name} (a check may ask for: {known})")


class UnknownFixture(LookupError):
    """A check asks for a name that is not in :data:`FIXTURES`."""

    def __init__(self, where: str, name: str):
        self.where, self.name = where, name
        self.text = M_UNKNOWN_FIXTURE.format(where=where, name=repr(name),
                                             known=", ".join(FIXTURES))
        super().__init__(self.text.en)


@functools.cache
def fixture_names(fn: Callable[..., Any]) -> tuple[str, ...]:
    """The fixtures check ``fn`` asks for, in order; UnknownFixture for a name not in the
    registry (message: ``module.function: unknown fixture 'x' (…)``). Remembered per
    function: a grading worker asks for every check of every host (``inspect.signature``
    was a third of a worker's own CPU per host)."""
    import inspect

    names = tuple(inspect.signature(fn).parameters)
    for name in names:
        if name not in FIXTURES:
            raise UnknownFixture(f"{fn.__module__}.{fn.__name__}", name)
    return names
