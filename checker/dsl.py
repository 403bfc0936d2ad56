"""What a lab's check module uses: the ``@objective`` decorator and the ``obj`` verdict.

A check is a testinfra test function bound to one objective of ``lab.toml``. It reads
facts through the fixtures ``host`` (testinfra), ``virt`` (libvirt, read-only),
``learner`` and ``facts`` (host facts), records what it read with ``obj.evidence()``,
and either returns (pass) or calls ``obj.fail()`` / ``obj.skip()`` / ``obj.error()``::

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
import re
from typing import Any, Callable, NoReturn

from checker.model import Text


class Outcome(Exception):
    """Raised by a check to end it with a status other than pass."""

    status = "fail"

    def __init__(self, message: Text):
        self.message = message
        super().__init__(message.en)


class CheckFailed(Outcome, AssertionError):
    status = "fail"


class CheckSkipped(Outcome):
    status = "skip"


class CheckError(Outcome):
    status = "error"


def objective(oid: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Bind a check function to objective ``oid`` of its lab."""

    if not isinstance(oid, str) or not re.match(r"^[a-z0-9]+(?:-[a-z0-9]+)*$", oid):
        raise ValueError(f"@objective({oid!r}): an objective id is lowercase-dashed, "
                         "e.g. 'dev-kvm'")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.virtlab_objective = oid  # type: ignore[attr-defined]
        return fn

    return deco


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/Infinity
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        items = [_jsonable(x) for x in v]
        return sorted(items, key=str) if isinstance(v, (set, frozenset)) else items
    return str(v)


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
        self.message = Text(fr, en)

    def fail(self, fr: str, en: str) -> NoReturn:
        """The learner's state does not meet the objective: say what was expected and found."""
        raise CheckFailed(Text(fr, en))

    def skip(self, fr: str, en: str) -> NoReturn:
        """The objective does not apply on this host (with the reason)."""
        raise CheckSkipped(Text(fr, en))

    def error(self, fr: str, en: str) -> NoReturn:
        """The objective cannot be evaluated: say how to fix the environment."""
        raise CheckError(Text(fr, en))
