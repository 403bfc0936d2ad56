"""Reading what a host prints, with a cap: a learner's host cannot flood the instructor.

testinfra reads every command's output whole (``Popen.communicate()``): a learner who prints
256 MiB per command (a ``~/.bashrc``, a fake ``dpkg-query`` on PATH) cost the instructor
~1.8 GB of memory per worker. Here, every command a virtlab host runs (through the remote
shell of :mod:`checker.probes.shell` for ssh:// and ansible:// hosts, ``run_local`` for
local:// and the other backends) is read by :func:`read_streams`, against a :class:`Meter`:

- at most :data:`COMMAND_CAP` bytes per command (stdout and stderr together);
- at most :data:`HOST_CAP` bytes per :func:`budget` (``check()`` opens one per lab and host;
  the grading worker one per host, all its labs together);
- past a cap, the command is killed (its shell and the ``ssh`` client it started; the
  learner's command then dies of SIGPIPE on its side), nothing more is read, and the budget is
  marked *flooded*: every later command of that budget fails at once, and ``check()`` reports
  the host as not inspectable (:class:`OutputFlood`), whatever the checks made of the cut output.

The cap is enforced where the bytes arrive on the instructor's machine: anything on the
learner's side (a ``head -c`` wrapped around the command) would run under the learner's
control. The remote command is unchanged, so exit codes and stderr keep their meaning.

The encoding a host claims (testinfra asks its ``python3``) is taken only when it is a
known text encoding, and bytes that do not decode become U+FFFD: a hostile ``python3`` answering
``unicode_escape`` or ``utf-7`` cannot turn output into control characters or lone surrogates.
On local:// nothing is asked: the command inherits our environment (:func:`local_encoding`).

How: :class:`BoundedBackend` is a mix-in put before a testinfra backend class (its subclasses
are in :mod:`checker.probes.shell`, registered as testinfra's backends by
:func:`checker.probes.shell.install`). It overrides the public methods testinfra's own
backends override: ``run`` (a command asked twice in one budget is answered from the first
answer: every probe is read-only, the host is read as one snapshot), ``run_local`` (read with
the caps), ``decode`` and ``get_encoding`` (the checks above). No private attribute of
testinfra is read or set, and testinfra itself is not modified.
"""

from __future__ import annotations

import codecs
import os
import selectors
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from checker.i18n import message

if TYPE_CHECKING:  # the mix-in is put before one of testinfra's backend classes
    from testinfra.backend.base import BaseBackend as _Backend
    from testinfra.backend.base import CommandResult
else:
    _Backend = object

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
        #: (:meth:`BoundedBackend.run`). Keyed by testinfra's backend and the quoted command.
        self.answers: dict[tuple[Any, str], Any] = {}
        #: what ends with the budget (the remote shells opened in it: checker.probes.shell)
        self.closers: list[Callable[[], None]] = []


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
        while b.closers:
            b.closers.pop()()


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


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and what it started (a shell and its ``ssh`` client). They stay in the
    worker's process group, so that the grading runner's deadline still kills them all."""
    for p in [*descendants(pid), pid]:
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Meter:
    """The bytes one command printed, against the caps of the current budget. Made before
    the command is sent: a flooded budget raises at once."""

    def __init__(self) -> None:
        self.budget = current()
        if self.budget is not None and self.budget.flood is not None:
            raise self.budget.flood
        self.total = 0

    def count(self, n: int) -> OutputFlood | None:
        """``n`` more bytes arrived; the flood they make, if any."""
        self.total += n
        b = self.budget
        if b is not None and b.used + self.total > b.limit:
            return OutputFlood(b.limit, "host")
        if self.total > COMMAND_CAP:
            return OutputFlood(COMMAND_CAP, "command")
        return None

    def close(self, flood: OutputFlood | None = None) -> None:
        """The command is over (or cut, by ``flood``): its bytes go to the budget."""
        b = self.budget
        if b is not None:
            b.used += min(self.total, COMMAND_CAP)
            if flood is not None:
                b.flood = flood


def read_streams(bufs: dict[int, bytearray], meter: Meter,
                 finished: Callable[[], bool] = lambda: False) -> OutputFlood | None:
    """Read each file descriptor of ``bufs`` into its buffer until ``finished()`` says so
    (checked before each wait) or every one has ended; returns the flood (a cap passed:
    the last chunk is dropped, nothing more is read) or None."""
    with selectors.DefaultSelector() as sel:
        for fd in bufs:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map() and not finished():
            for key, _ in sel.select():
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                flood = meter.count(len(chunk))
                if flood is not None:
                    return flood
                bufs[key.fd] += chunk
    return None


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


def checked_encoding(backend: Any, original: Callable[[], str]) -> str:
    """The encoding ``backend``'s host claims, when it is a known text encoding. testinfra
    asks the host's ``python3`` the first time a command prints non-ASCII (~0.1 s, a third
    of a check); on local:// the answer is known already (:func:`local_encoding`)."""
    try:
        claimed = local_encoding() if backend.NAME == "local" else original()
        enc = codecs.lookup(claimed).name
    except (LookupError, TypeError, ValueError, UnicodeError):
        return "utf-8"
    return enc if enc in TEXT_ENCODINGS else "utf-8"


class BoundedBackend(_Backend):
    """The mix-in of every virtlab testinfra backend (``class X(BoundedBackend, Backend)``):
    memo, caps and encodings (module doc)."""

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        """testinfra's ``run``, answered from the current budget when the same command ran
        on this backend in it (every probe is read-only: within one run, or one host's
        grading, the host is read as one snapshot). What raised (a lost connection, a flood)
        is never kept: it raises again the next time. Without a budget, or with options
        (``encoding=``…), the command runs as usual."""
        b = current()
        if b is None or kwargs:
            return super().run(command, *args, **kwargs)
        if b.flood is not None:  # a flooded host: every later command fails, remembered or not
            raise b.flood
        key = (self, self.quote(command, *args))
        if key in b.answers:
            return b.answers[key]
        result = super().run(command, *args)
        b.answers[key] = result
        return result

    def run_local(self, command: str, *args: str) -> CommandResult:
        """testinfra's ``run_local`` (a shell string testinfra built, every argument
        quoted), reading at most the caps."""
        meter = Meter()
        cmd = self.encode(self.quote(command, *args))
        p = subprocess.Popen(cmd, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        assert p.stdout is not None and p.stderr is not None
        out, err = bytearray(), bytearray()
        try:
            flood = read_streams({p.stdout.fileno(): out, p.stderr.fileno(): err}, meter)
        except BaseException:  # Ctrl-C, a signal: nothing of it left behind
            kill_tree(p.pid)
            p.wait()
            raise
        meter.close(flood)
        if flood is not None:
            kill_tree(p.pid)
        p.wait()
        p.stdout.close()
        p.stderr.close()
        if flood is not None:
            raise flood
        return self.result(p.returncode, cmd, bytes(out), bytes(err))

    def decode(self, data: bytes) -> str:
        return safe_decode(self, data)

    def get_encoding(self) -> str:
        return checked_encoding(self, super().get_encoding)

    def connected(self) -> bool:
        """A live connection to the host is open now (:mod:`checker.probes.shell`)."""
        return False
