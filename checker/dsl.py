"""What a lab's check module uses: the ``@objective`` decorator and the ``obj`` verdict.

A check is a testinfra test function bound to one objective of ``lab.toml``. It reads
facts through the fixtures ``host`` (testinfra), ``virt`` (libvirt, read-only),
``learner``, ``facts`` (host facts) and ``lab`` (the list, for both runners:
:data:`checker.fixtures.FIXTURES`), records what it read with ``obj.evidence()``,
and either returns (pass) or calls ``obj.fail()`` / ``obj.skip()`` / ``obj.error()``; a plain
``assert`` that fails is a failure too (:mod:`checker.outcome`)::

    from checker.dsl import objective

    @objective("dev-kvm")
    def test_dev_kvm(host, obj):
        f = host.file("/dev/kvm")
        obj.evidence(exists=f.exists)
        if not f.exists:
            obj.fail(fr="/dev/kvm n'existe pas", en="/dev/kvm does not exist")
        obj.ok(fr="/dev/kvm est présent", en="/dev/kvm is present")

The same module runs under ``virtlab check`` (fast in-process runner) and under plain
``pytest --hosts=...`` (through the ``virtlab`` pytest plugin).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NoReturn

from checker.catalog import OBJECTIVE_ID_RE
from checker.i18n import Text, message
from checker.model import Status

# What one objective may carry into a report (and the gradebook, the class report): the
# learner's machine decides the sizes (a VM description of megabytes, a tool printing a flood
# of lines), so evidence and messages are cut to these bounds, saying how much was left out.
MAX_MESSAGE_CHARS = 2000
MAX_EVIDENCE_CHARS = 4000
MAX_EVIDENCE_ITEMS = 200


def _cut(s: str, limit: int) -> str:
    if len(s) <= limit:
        return s
    return f"{s[:limit]}… (+{len(s) - limit} chars)"


def bounded(message: Text) -> Text:
    """``message`` cut to MAX_MESSAGE_CHARS in each language (saying how much was left out)."""
    if len(message.fr) <= MAX_MESSAGE_CHARS and len(message.en) <= MAX_MESSAGE_CHARS:
        return message
    return Text(_cut(message.fr, MAX_MESSAGE_CHARS), _cut(message.en, MAX_MESSAGE_CHARS))


#: The message of an objective that passes without saying more (``obj.ok()``).
PASS_MSG = message("check.pass", fr="Objectif atteint.", en="Objective met.")


class Outcome(Exception):
    """Raised by a check to end it with a status other than pass (how a check may end, and
    the status each way gives, is :func:`checker.outcome.judge`)."""

    status: Status = "fail"

    def __init__(self, message: Text):
        self.message = bounded(message)
        super().__init__(self.message.en)


class CheckFailed(Outcome, AssertionError):
    status: Status = "fail"


class CheckSkipped(Outcome):
    status: Status = "skip"


class CheckError(Outcome):
    status: Status = "error"


def objective(oid: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Bind a check function to objective ``oid`` of its lab."""

    if not isinstance(oid, str) or not OBJECTIVE_ID_RE.match(oid):
        raise ValueError(f"@objective({oid!r}): an objective id is lowercase-dashed, "
                         "e.g. 'dev-kvm'")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__dict__["virtlab_objective"] = oid  # the engine reads it back with getattr
        return fn

    return deco


def _jsonable(v: Any) -> Any:
    """A JSON-able copy of ``v``, bounded: long strings and long lists are cut (see
    MAX_EVIDENCE_CHARS, MAX_EVIDENCE_ITEMS) with a marker saying how much was left out."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/Infinity
    if isinstance(v, str):
        return _cut(v, MAX_EVIDENCE_CHARS)
    if isinstance(v, (int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        out = {_cut(str(k), 200): _jsonable(x)
               for k, x in list(v.items())[:MAX_EVIDENCE_ITEMS]}
        if len(v) > MAX_EVIDENCE_ITEMS:
            out["…"] = f"+{len(v) - MAX_EVIDENCE_ITEMS} more"
        return out
    if isinstance(v, (list, tuple, set, frozenset)):
        seq = sorted(v, key=str) if isinstance(v, (set, frozenset)) else list(v)
        items = [_jsonable(x) for x in seq[:MAX_EVIDENCE_ITEMS]]
        if len(seq) > MAX_EVIDENCE_ITEMS:
            items.append(f"… (+{len(seq) - MAX_EVIDENCE_ITEMS} more)")
        return items
    return _cut(str(v), MAX_EVIDENCE_CHARS)


class Verdict:
    """The ``obj`` fixture: the evidence and the message of one objective."""

    def __init__(self, oid: str = ""):
        self.oid = oid
        self.facts: dict[str, Any] = {}
        self.message: Text | None = None

    def evidence(self, **facts: Any) -> None:
        """Record facts read (shown in the report as JSON)."""
        self.facts.update({k: _jsonable(v) for k, v in facts.items()})

    def ok(self, fr: str, en: str) -> None:
        """The message shown when the objective passes."""
        self.message = bounded(Text(fr, en))

    def fail(self, fr: str, en: str) -> NoReturn:
        """The learner's state does not meet the objective: say what was expected and found."""
        raise CheckFailed(Text(fr, en))

    def skip(self, fr: str, en: str) -> NoReturn:
        """The objective does not apply on this host (with the reason)."""
        raise CheckSkipped(Text(fr, en))

    def error(self, fr: str, en: str) -> NoReturn:
        """The objective cannot be evaluated: say how to fix the environment."""
        raise CheckError(Text(fr, en))
