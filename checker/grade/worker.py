"""A grading worker: ``python -m checker.grade.worker``, driven by :mod:`checker.grade.runner`.

It reads one JSON job per line on stdin (one host, its labs) and answers one JSON line per
job on its original stdout; anything else printed goes to stderr. Between jobs it keeps the
engine's caches (imported checks, testinfra hosts), so a worker pays its imports once.

A job::

    {"host": "...", "spec": "ssh://alice@pc12", "user": "alice", "labs": ["01-hardware"],
     "connect": "qemu+ssh://...", "ssh_config": "/tmp/vlg-x/ssh_config", "timeout": 10,
     "lang": "fr"}

its answer::

    {"host": "...", "results": [{"lab": "01-hardware", "status": "graded",
                                 "reason": "", "report": {...Report.to_dict()...}}]}

``status`` is ``graded`` (a Report exists, whatever its score), ``unreachable`` (SSH could not
connect or log in), ``timeout`` (the connection timed out) or ``error`` (the checker could not
run the lab there; the reason says why).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from checker.i18n import message

TIMEOUT_MARKERS = ("timed out", "timeout")
#: the reason of an unreachable host when ssh said nothing
M_NO_REASON = message("grade.unreachable-silent", fr="hôte injoignable (ssh n'a rien dit)",
                      en="host unreachable (ssh said nothing)")


def classify_unreachable(exc: BaseException, lang: str = "fr") -> tuple[str, str]:
    """(``unreachable`` | ``timeout``, one-line reason) from the engine's TargetUnreachable;
    the reason is ssh's own words, or says in ``lang`` that ssh said nothing."""
    text = ""
    ctx = exc.__context__
    result = ctx.args[0] if ctx is not None and ctx.args else None
    stderr = getattr(result, "stderr", None)
    if isinstance(stderr, str) and stderr.strip():
        text = stderr
    if not text:
        text = getattr(exc, "reason", "") or str(exc)
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    reason = lines[-1] if lines else M_NO_REASON.get(lang)
    low = " ".join(lines).lower()
    status = "timeout" if any(m in low for m in TIMEOUT_MARKERS) else "unreachable"
    return status, reason[:500]


def grade_host(job: dict[str, Any]) -> dict[str, Any]:
    from checker.probes.libvirt import CONNECTIONS
    from checker.probes.output import budget
    from checker.safetext import clean_data

    # one output budget for the host, all its labs together (checker.probes.output), and
    # one libvirt connection, read as one snapshot (checker.probes.libvirt.for_run): closed
    # with the job (a worker grades one host at a time; the next host is another URI)
    try:
        with budget(reuse=False):
            answer = grade_labs(job)
    finally:
        CONNECTIONS.close_all()
    # what the learner's host said (reasons, report strings) travels as visible text: no
    # control character, no lone surrogate (neither a pipe nor SQLite can carry one)
    cleaned: dict[str, Any] = clean_data(answer)
    return cleaned


def grade_labs(job: dict[str, Any]) -> dict[str, Any]:
    from checker.catalog import CatalogError
    from checker.engine import BadHostSpec, TargetUnreachable, check
    from checker.probes.output import OutputFlood

    results: list[dict[str, Any]] = []
    down: tuple[str, str] | None = None
    for lab in job["labs"]:
        if down is not None:  # same host, same connection failure: do not wait twice
            results.append({"lab": lab, "status": down[0], "reason": down[1], "report": None})
            continue
        try:
            report = check(lab, job["spec"], connect=job.get("connect"), user=job.get("user"),
                           lang=job.get("lang"), ssh_config=job.get("ssh_config"),
                           timeout=job.get("timeout"))
        except TargetUnreachable as e:
            down = classify_unreachable(e, job.get("lang") or "fr")
            results.append({"lab": lab, "status": down[0], "reason": down[1], "report": None})
            continue
        except OutputFlood as e:  # the host floods us: its other labs are not read either
            down = ("error", e.text.get(job.get("lang") or "fr"))
            results.append({"lab": lab, "status": down[0], "reason": down[1], "report": None})
            continue
        except (BadHostSpec, CatalogError) as e:
            results.append({"lab": lab, "status": "error",
                            "reason": e.text.get(job.get("lang") or "fr"), "report": None})
            continue
        except Exception as e:  # never lose the other labs or hosts to one crash  # noqa: BLE001
            results.append({"lab": lab, "status": "error",
                            "reason": f"{type(e).__name__}: {e}"[:500], "report": None})
            continue
        results.append({"lab": lab, "status": "graded", "reason": "", "report": report.to_dict()})
    return {"host": job["host"], "results": results}


def _on_its_path(job: dict[str, Any]) -> dict[str, Any]:
    """grade_host with the host's ssh wrapper first on PATH (checker.grade.hostssh)."""
    from checker.grade.hostssh import ssh_bin_on_path

    with ssh_bin_on_path(job):
        return grade_host(job)


def main() -> int:
    # The protocol owns the original stdout; stray prints (a check, a library) go to stderr.
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import testinfra  # noqa: F401

    import checker.engine  # noqa: F401  (pay the imports before saying ready)
    from checker.safetext import clean_data, dumps

    proto.write(json.dumps({"ready": os.getpid()}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        try:
            answer = _on_its_path(job)
        # grade_host already catches per lab
        except Exception as e:  # pragma: no cover  # noqa: BLE001
            answer = {"host": job.get("host"), "results": [
                {"lab": lab, "status": "error", "reason": f"{type(e).__name__}: {e}"[:500],
                 "report": None} for lab in job.get("labs", [])]}
        proto.write(dumps(clean_data(answer), default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
