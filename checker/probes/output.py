"""Reading what a host prints, with a cap: a learner's host cannot flood the instructor.

testinfra reads every command's output whole (``Popen.communicate()``): a learner who prints
256 MiB per command (a ``~/.bashrc``, a fake ``dpkg-query`` on PATH) cost the instructor
~1.8 GB of memory per worker. Here, every command testinfra runs (``ssh …`` for ssh:// and
ansible:// hosts, the command itself on local://) is read by :func:`bounded_run_local`:

- at most :data:`COMMAND_CAP` bytes per command (stdout and stderr together);
- at most :data:`HOST_CAP` bytes per :func:`budget` (``check()`` opens one per lab and host;
  the grading worker one per host, all its labs together);
- past a cap, the command is killed (its shell and the ``ssh`` client it started; the
  learner's command then dies of SIGPIPE on its side), nothing more is read, and the budget is marked
  *flooded*: every later command of that budget fails at once, and ``check()`` reports the
  host as not inspectable (:class:`OutputFlood`), whatever the checks made of the cut output.

The cap is enforced where the bytes arrive on the instructor's machine: anything on the
learner's side (a ``head -c`` wrapped around the command) would run under the learner's
control. The remote command is unchanged, so exit codes and stderr keep their meaning.

The encoding a host claims (testinfra asks its ``python3``) is taken only when it is a
known text encoding, and bytes that do not decode become U+FFFD: a hostile ``python3`` answering
``unicode_escape`` or ``utf-7`` cannot turn output into control characters or lone surrogates.
On local:// nothing is asked: the command inherits our environment (:func:`local_encoding`).

How: :func:`install` gives testinfra's ``BaseBackend`` its own ``run_local``, ``decode`` and
``get_encoding`` — the public methods every backend (local, ssh, ansible, and the hosts the
pytest plugin's ``--hosts`` makes) calls, and which testinfra's backends override in the same
way; no private attribute of testinfra is read or set (its ``encoding`` property calls
``get_encoding`` once and keeps the answer). It also gives testinfra's ``Host`` a ``run`` that
answers a command asked twice in one budget from the first answer (:func:`memo_run`).
"""

from __future__ import annotations

import codecs
import os
import selectors
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from checker.i18n import message

MiB = 1 << 20
COMMAND_CAP = 4 * MiB
HOST_CAP = 16 * MiB
_CHUNK = 1 << 16

#: Encodings a host may claim (anything else is read as UTF-8).
TEXT_ENCODINGS = frozenset(codecs.lookup(e).name for e in (
    "utf-8", "ascii", "latin-1", "iso8859-15", "cp1252", "iso8859-2", "koi8-r", "euc-jp",
    "shift_jis", "gb18030", "big5", "euc-kr"))


MSG_FLOOD = {
    "command": message(
        "output.flood-command",
        fr="L'hôte a envoyé plus de {mib} Mio pour une seule commande : sortie coupée et "
           "ignorée, hôte non évalué (il inonde le correcteur).",
        en="The host sent more than {mib} MiB for one command: output cut and dropped, "
           "host not graded (it floods the grader)."),
    "host": message(
        "output.flood-host",
        fr="L'hôte a envoyé plus de {mib} Mio pour l'ensemble des commandes : sortie coupée "
           "et ignorée, hôte non évalué (il inonde le correcteur).",
        en="The host sent more than {mib} MiB for all commands together: output cut and "
           "dropped, host not graded (it floods the grader)."),
}


class OutputFlood(RuntimeError):
    """A host printed more than a cap: it is not graded (its output was cut)."""

    def __init__(self, limit: int, per: str):
        self.limit, self.per = limit, per
        self.text = MSG_FLOOD[per].format(mib=limit // MiB)
        super().__init__(self.text.en)


class Budget:
    def __init__(self, limit: int = HOST_CAP):
        self.limit = limit
        self.used = 0
        self.flood: OutputFlood | None = None
        #: what each command answered in this budget (one host, one run): a probe asked
        #: twice (lab 01's stat for its evidence and each message, ``id`` and ``getent``
        #: of the learner for every lab graded on a host) costs one exchange
        #: (:func:`memo_run`). Keyed by testinfra's backend and the quoted command.
        self.answers: dict[tuple[Any, str], Any] = {}


_local = threading.local()


def current() -> Budget | None:
    return getattr(_local, "budget", None)


@contextmanager
def budget(limit: int = HOST_CAP, *, reuse: bool = True) -> Iterator[Budget]:
    """The output budget of one host: the enclosing one when ``reuse`` and there is one."""
    outer = current()
    if outer is not None and reuse:
        yield outer
        return
    b = Budget(limit)
    _local.budget = b
    try:
        yield b
    finally:
        _local.budget = outer


def descendants(pid: int) -> list[int]:
    """The processes started by ``pid``, and theirs (from /proc: the shell testinfra starts
    does not exec its ssh)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _kill(p: subprocess.Popen[bytes]) -> None:
    """Kill the command's shell and what it started (its ssh client). They stay in the
    worker's process group, so that the grading runner's deadline still kills them all."""
    for pid in [*descendants(p.pid), p.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    p.wait()


def bounded_run_local(backend: Any, command: str, *args: str) -> Any:
    """testinfra's ``BaseBackend.run_local``, reading at most the caps (see module doc)."""
    b = current()
    if b is not None and b.flood is not None:
        raise b.flood
    cmd = backend.encode(backend.quote(command, *args))
    p = subprocess.Popen(cmd, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    bufs: dict[int, list[bytes]] = {p.stdout.fileno(): [], p.stderr.fileno(): []}
    total = 0
    flood: OutputFlood | None = None
    with selectors.DefaultSelector() as sel:
        for f in (p.stdout, p.stderr):
            sel.register(f, selectors.EVENT_READ)
        while sel.get_map():
            for key, _ in sel.select():
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                total += len(chunk)
                if b is not None and b.used + total > b.limit:
                    flood = OutputFlood(b.limit, "host")
                elif total > COMMAND_CAP:
                    flood = OutputFlood(COMMAND_CAP, "command")
                if flood is not None:
                    break
                bufs[key.fd].append(chunk)
            if flood is not None:
                break
    if b is not None:
        b.used += min(total, COMMAND_CAP)
    if flood is not None:
        bufs.clear()
        _kill(p)
        p.stdout.close()
        p.stderr.close()
        if b is not None:
            b.flood = flood
        raise flood
    p.wait()
    out = b"".join(bufs[p.stdout.fileno()])
    err = b"".join(bufs[p.stderr.fileno()])
    p.stdout.close()
    p.stderr.close()
    return backend.result(p.returncode, cmd, out, err)


def safe_decode(backend: Any, data: bytes) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        return data.decode(backend.encoding, errors="replace")


def local_encoding() -> str:
    """The encoding of a command run on local://: it inherits our environment, so it is our
    own preferred encoding (testinfra's rule: plain ASCII, no LANG, means UTF-8)."""
    import locale

    enc = locale.getpreferredencoding(False)
    return "UTF-8" if enc == "ANSI_X3.4-1968" else enc


def checked_encoding(backend: Any, original: Any) -> str:
    """The encoding ``backend``'s host claims, when it is a known text encoding. testinfra
    asks the host's ``python3`` the first time a command prints non-ASCII (~0.1 s, a third
    of a check); on local:// the answer is known already (:func:`local_encoding`)."""
    try:
        claimed = local_encoding() if backend.NAME == "local" else original(backend)
        enc = codecs.lookup(claimed).name
    except (LookupError, TypeError, ValueError, UnicodeError):
        return "utf-8"
    return enc if enc in TEXT_ENCODINGS else "utf-8"


def memo_run(host: Any, original: Any, command: str, *args: str, **kwargs: Any) -> Any:
    """testinfra's ``Host.run``, answered from the current budget when the same command ran
    on the same host in it (every probe is read-only: within one run, or one host's grading,
    the host is read as one snapshot). What raised (a lost connection, a flood) is never
    kept: it raises again the next time. Without a budget, or with options (``sudo``…),
    the command runs as usual."""
    b = current()
    if b is None or kwargs:
        return original(host, command, *args, **kwargs)
    if b.flood is not None:  # a flooded host: every later command fails, remembered or not
        raise b.flood
    key = (host.backend, host.backend.quote(command, *args))
    if key in b.answers:
        return b.answers[key]
    result = original(host, command, *args)
    b.answers[key] = result
    return result


_installed = False


def install() -> None:
    """Route every testinfra backend's local commands through the caps (once per process)."""
    global _installed
    if _installed:
        return
    from testinfra.backend.base import BaseBackend
    from testinfra.host import Host

    original_encoding = BaseBackend.get_encoding
    original_run = Host.run
    Host.run = (
        lambda self, command, *args, **kwargs: memo_run(self, original_run, command, *args,
                                                        **kwargs))
    BaseBackend.run_local = bounded_run_local
    BaseBackend.decode = safe_decode
    BaseBackend.get_encoding = (
        lambda self: checked_encoding(self, original_encoding))
    _installed = True
