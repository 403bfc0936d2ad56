"""The one rule that turns how a check ended into an objective's status, for both runners.

``virtlab check`` (:func:`checker.engine.run_objective`) and the pytest plugin
(:mod:`checker.pytest_plugin`) both call :func:`judge`:

===============================================  ========  ================================
the check…                                        status    message
===============================================  ========  ================================
returns                                           pass      ``obj.ok()``'s, or "Objective met."
``obj.fail()``                                    fail      the check's
a plain ``assert`` fails (testinfra style)        fail      the assertion's text, else
                                                            "Assertion failed: <its line>"
``obj.skip()``                                    skip      the check's
``obj.error()``                                   error     the check's
libvirt unreachable                               error     why, and how to fix it
the libvirt daemon / the SSH connection is lost   error     that, and "check again"
any other exception                               error     "Could not evaluate (…)"
===============================================  ========  ================================

and :func:`checker.model.score` counts the points of those statuses.
"""

from __future__ import annotations

import linecache
from dataclasses import dataclass
from typing import TYPE_CHECKING

from checker.dsl import PASS_MSG, Outcome, bounded
from checker.i18n import Text, message
from checker.markup import literal

if TYPE_CHECKING:
    from checker.dsl import Verdict
    from checker.model import Status

MSG_ASSERTION = message(
    "check.assertion-failed",
    fr="Assertion non vérifiée : {line}", en="Assertion failed: {line}")
MSG_ASSERTION_BARE = message(
    "check.assertion-failed-bare", fr="Assertion non vérifiée.", en="Assertion failed.")
MSG_COULD_NOT_EVALUATE = message(
    "check.could-not-evaluate",
    fr="Vérification impossible ({detail}).", en="Could not evaluate ({detail}).")
MSG_SSH_LOST = message(
    "check.ssh-lost",
    fr="Connexion SSH à l'hôte perdue pendant la vérification ({why}) ; vérifiez à nouveau.",
    en="SSH connection to the host lost during the check ({why}); check again.")

_DETAIL_CHARS = 500


@dataclass(frozen=True)
class Judgement:
    status: Status
    message: Text
    #: the libvirt daemon went away (the runner forgets its shared connection)
    daemon_gone: bool = False
    #: the check did not end the way checks end (a plain ``assert``, an unexpected
    #: exception): under pytest its traceback is shown too, for the check's author
    unexpected: bool = False


def judge(exc: BaseException | None, verdict: Verdict | None = None,
          libvirt_uri: str | None = None) -> Judgement:
    """The status and message of an objective whose check ended by raising ``exc`` (None:
    it returned). ``verdict`` is its ``obj``; ``libvirt_uri`` the URI its ``virt`` used,
    if any (to name it when the daemon went away)."""
    from checker.probes import ssh_lost
    from checker.probes.libvirt import DAEMON_GONE, LibvirtUnavailable, classify_error

    if exc is None:
        return Judgement("pass", (verdict.message if verdict else None) or PASS_MSG)
    if isinstance(exc, Outcome):  # obj.fail() (an AssertionError too), obj.skip(), obj.error()
        return Judgement(exc.status, exc.message)
    if isinstance(exc, AssertionError):
        return Judgement("fail", bounded(_assertion_message(exc)), unexpected=True)
    if isinstance(exc, LibvirtUnavailable):
        return Judgement("error", exc.message)
    if type(exc).__name__ == "libvirtError" and libvirt_uri is not None:
        low = str(exc).lower()
        if any(m in low for m in DAEMON_GONE):
            last = (str(exc).strip().splitlines() or [""])[-1]
            return Judgement("error", classify_error(libvirt_uri, last).message,
                             daemon_gone=True)
    if ssh_lost(exc):
        # testinfra's ssh backend: ssh itself failed (exit 255), the command never ran
        lines = [ln.strip() for ln in (exc.args[0].stderr or "").splitlines() if ln.strip()]
        return Judgement("error",
                         MSG_SSH_LOST.format(why=literal(lines[-1]) if lines else "ssh exit 255"))
    detail = f"{type(exc).__name__}: {exc}".strip()
    if len(detail) > _DETAIL_CHARS:
        detail = detail[:_DETAIL_CHARS] + "…"
    # (the exception's text may quote the learner's data: text, not Markdown)
    return Judgement("error", MSG_COULD_NOT_EVALUATE.format(detail=literal(detail)),
                     unexpected=True)


def _assertion_message(exc: AssertionError) -> Text:
    """The assertion's own text (``assert x, "why"``; under pytest, its rewritten
    explanation), else the line of the failing ``assert``."""
    text = str(exc).strip()
    if text:
        return Text(text, text)
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    line = ""
    if tb is not None:
        line = linecache.getline(tb.tb_frame.f_code.co_filename, tb.tb_lineno).strip()
    return MSG_ASSERTION.format(line=literal(line)) if line else MSG_ASSERTION_BARE
