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
from collections.abc import Callable, Iterable
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
    return classify_ssh_words(text, lang)


def classify_ssh_words(text: str, lang: str = "fr") -> tuple[str, str]:
    """(``unreachable`` | ``timeout``, one-line reason) from what ssh printed when it could
    not connect: its last line, or a sentence in ``lang`` saying that it said nothing.

    >>> classify_ssh_words("ssh: connect to host pc12 port 22: Connection timed out\\r\\n")
    ('timeout', 'ssh: connect to host pc12 port 22: Connection timed out')
    >>> classify_ssh_words("alice@pc12: Permission denied (publickey).", "en")
    ('unreachable', 'alice@pc12: Permission denied (publickey).')
    >>> classify_ssh_words("", "en")
    ('unreachable', 'host unreachable (ssh said nothing)')
    """
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    reason = lines[-1] if lines else M_NO_REASON.get(lang)
    low = " ".join(lines).lower()
    status = "timeout" if any(m in low for m in TIMEOUT_MARKERS) else "unreachable"
    return status, reason[:500]


def grade_host(job: dict[str, Any],
               send: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """One job's answer; ``send`` gets it as soon as it is known, before the host's
    connections are closed (each close waits for the host: a round trip the runner then
    does not wait for)."""
    from checker.probes.libvirt import CONNECTIONS
    from checker.probes.output import budget
    from checker.safetext import clean_data

    # one output budget for the host, all its labs together (checker.probes.output), its
    # remote shell (checker.probes.shell) closed with it; and one libvirt connection, read
    # as one snapshot (checker.probes.libvirt.for_run): closed with the job (a worker grades
    # one host at a time; the next host is another URI)
    try:
        with budget(reuse=False):
            # what the learner's host said (reasons, report strings) travels as visible
            # text: no control character, no lone surrogate (neither a pipe nor SQLite can
            # carry one)
            cleaned: dict[str, Any] = clean_data(grade_labs(job))
            if send is not None:
                send(cleaned)
    finally:
        CONNECTIONS.close_all()
    return cleaned


def grade_labs(job: dict[str, Any]) -> dict[str, Any]:
    from checker.catalog import CatalogError, resolve
    from checker.engine import BadHostSpec, TargetUnreachable, check
    from checker.model import Lab
    from checker.probes.output import OutputFlood

    # each lab found once for the job (the engine looks up every lab of the job for each
    # lab's prefetch: ~80 look-ups of the labs folder per host); one that cannot be found
    # stays a name, and its own check says why
    found: dict[str, str | Lab] = {}
    for lab in job["labs"]:
        try:
            found[lab] = resolve(lab)
        except CatalogError:
            found[lab] = lab
    results: list[dict[str, Any]] = []
    down: tuple[str, str] | None = None
    for lab in job["labs"]:
        if down is not None:  # same host, same connection failure: do not wait twice
            results.append({"lab": lab, "status": down[0], "reason": down[1], "report": None})
            continue
        try:
            # all the job's labs: the host's facts for all of them come in one exchange
            report = check(found[lab], job["spec"], connect=job.get("connect"),
                           user=job.get("user"), lang=job.get("lang"),
                           ssh_config=job.get("ssh_config"), timeout=job.get("timeout"),
                           prefetch_labs=list(found.values()))
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


def _on_its_path(job: dict[str, Any],
                 send: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """grade_host with the host's ssh wrapper first on PATH (checker.grade.hostssh)."""
    from checker.grade.hostssh import ssh_bin_on_path

    with ssh_bin_on_path(job):
        return grade_host(job, send)


#: what a worker imports lazily on its first host (seen with ``sys.modules`` after one
#: check of each lab): imported by :func:`warm_up`
WARM_MODULES = ("testinfra", "testinfra.backend.ssh", "testinfra.modules.file",
                "testinfra.modules.group", "testinfra.modules.systeminfo",
                "testinfra.modules.user", "checker.grade.hostssh", "checker.probes.apt",
                "checker.probes.host", "checker.probes.ifupdown", "checker.probes.netdev",
                "checker.probes.shell", "checker.probes.output",
                "checker.probes.vbox", "checker.checks", "checker.safetext", "libvirt",
                "babel.dates", "babel.numbers")


def warm_up(labs: Iterable[str] = ()) -> None:
    """Pay before grading what every host would otherwise pay on its first lab: the imports
    (testinfra, the engine, the probes, libvirt, Babel and its locale data) and the run's
    labs (catalogue entry, check modules, ``PREFETCH``). Opens no connection and starts no
    thread: a fork server calls it once, then forks every worker from it (:func:`fork_server`)."""
    import importlib

    import checker.engine

    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # libvirt-python missing: said by the checks that need it
            pass
    from checker.catalog import resolve
    from checker.i18n import LANGS, format_date, format_number

    for lang in LANGS:  # Babel's locale data, loaded once
        format_number(1.5, lang)
        format_date(0.0, lang)
    for lab in labs:
        try:
            checker.engine.lab_prefetch(resolve(lab))
        except Exception:  # noqa: BLE001  (its job says what is wrong, in the reader's words)
            pass


def serve(jobs: Any, proto: Any) -> None:
    """Answer each JSON job line read from ``jobs`` with one JSON line on ``proto``."""
    from checker.safetext import clean_data, dumps

    proto.write(json.dumps({"ready": os.getpid()}) + "\n")
    proto.flush()
    for line in jobs:
        if not line.strip():
            continue
        job = json.loads(line)
        sent: list[bool] = []

        def send(answer: dict[str, Any], sent: list[bool] = sent) -> None:
            proto.write(dumps(answer, default=str) + "\n")  # cleaned by grade_host
            proto.flush()
            sent.append(True)

        try:
            _on_its_path(job, send)
        # grade_host already catches per lab
        except Exception as e:  # pragma: no cover  # noqa: BLE001
            if not sent:
                send(clean_data({"host": job.get("host"), "results": [
                    {"lab": lab, "status": "error", "reason": f"{type(e).__name__}: {e}"[:500],
                     "report": None} for lab in job.get("labs", [])]}))


def fork_server(labs: list[str]) -> int:
    """``python -m checker.grade.worker --fork-server LAB…``: :func:`warm_up` once, then fork
    one worker per request of the runner (:class:`checker.grade.runner.ForkServer`), so that
    N workers cost one start-up instead of N (32 Python start-ups and first labs are ~14 s of
    CPU: 7 s of wall time on 2 cores).

    fd 0 is a SOCK_SEQPACKET socket to the runner. Each request is one JSON object,
    ``{"log": PATH, "env": {...}}``, carrying one end of a socket pair (SCM_RIGHTS): the
    forked worker starts its own session (the runner kills its process group on a deadline,
    ssh clients included), takes ``env`` as its environment when given (a server started
    before the run's ssh set-up existed), sends its stderr to PATH and speaks the worker
    protocol (:func:`serve`) on that socket. Workers are reaped by the kernel (SIGCHLD
    ignored here); EOF on fd 0 ends the server, not its workers."""
    import gc
    import signal
    import socket
    import traceback

    ctl = socket.socket(fileno=os.dup(0))
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    warm_up(labs)
    # what warm_up made lives as long as every worker: out of the collector's sight, so a
    # worker's collections neither walk it (CPU) nor write to its pages (each page written
    # after the fork is copied: the workers' page faults). No collection first: it would
    # delay the first worker, and what it would free is at most a little shared memory.
    gc.freeze()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    ctl.sendall(json.dumps({"ready": os.getpid()}).encode())
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(ctl, 1 << 16, 1)
        except InterruptedError:  # pragma: no cover
            continue
        if not msg:
            # nothing to save, and the runner waits for this exit: no interpreter teardown
            # of every module imported (~0.15 s at the end of each run)
            sys.stderr.flush()
            os._exit(0)
        if not fds:
            continue
        chan = fds[0]
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # it waits for its ssh clients
                os.setsid()
                ctl.close()
                request = json.loads(msg)
                if request.get("env") is not None:  # the run's (a server started early)
                    os.environ.clear()
                    os.environ.update(request["env"])
                log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                              0o600)
                os.dup2(log, 2)
                os.dup2(log, 1)
                os.close(log)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                with os.fdopen(chan, "r", encoding="utf-8") as jobs, \
                        os.fdopen(os.dup(chan), "w", encoding="utf-8") as answers:
                    serve(jobs, answers)
                code = 0
            except BaseException:  # noqa: BLE001  (said on its log, the runner reads its tail)
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        os.close(chan)


def main() -> int:
    if sys.argv[1:2] == ["--fork-server"]:
        return fork_server(sys.argv[2:])
    # The protocol owns the original stdout; stray prints (a check, a library) go to stderr.
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import testinfra  # noqa: F401

    import checker.engine  # noqa: F401  (pay the imports before saying ready)

    serve(sys.stdin, proto)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
