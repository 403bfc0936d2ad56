"""One long-lived remote shell per host: every command of a run through one SSH session.

testinfra's ssh backend starts one ``ssh`` client per command (multiplexed over the run's
shared connection, :mod:`checker.grade.sshconf`): each command costs a local fork of
``sh -c ssh …`` and a new SSH channel (open, the ``SetEnv`` request, exec, EOF, close: about
five messages and two round trips). :class:`ShellBackend`, a subclass of testinfra's
``SshBackend``, starts ONE ``ssh … HOST 'exec /bin/sh'`` (the very command line testinfra
builds, through the same ``ssh`` wrapper and ``ssh_config``, so the forced settings apply) the
first time a command runs, and sends every command to it on its standard input; a command
then costs one message out and its answer. The shell lives as long as the output budget it
was opened in (:func:`checker.probes.output.budget`: one ``check()``, one grading job for a
host, all its labs), or until :func:`close_all` (the pytest plugin's session end, the engine's
``close_own_ssh``); no ``ssh`` process is left behind.

Each command keeps what it has with one ``ssh`` per command:

- it runs as ``/bin/sh -c COMMAND </dev/null`` (POSIX ``sh -c`` semantics, in its own process:
  a ``cd``, an ``exit`` or a variable cannot reach the next command; nothing it reads can be
  taken from the shell's own input); the learner's login shell and its ``~/.bashrc`` run once,
  when sshd starts the session, and whatever they print is dropped;
- its standard output and error stay apart (ssh's stdout and stderr), its exit status is
  exact, its bytes are exact (binary, no final newline): after the command, the shell prints
  a line made of a random marker (new for every command) on each stream, and the output is
  what comes before it. Nothing the host prints can pass for a marker it never saw;
- its output is read with the caps of :mod:`checker.probes.output` (a flood kills the
  session: the next command starts another), decoded as before (``safe_decode``,
  ``checked_encoding``), and answered again from the budget when asked twice;
- a connection that fails (unreachable, a refused host key, sshd gone mid-run) raises what
  testinfra's backend raises, ``RuntimeError`` of a result with exit status 255 and ssh's own
  words on stderr; a command that never ends is ended by the grading runner's deadline
  (the ``ssh`` client stays in the worker's process group).

A host whose login shell will not run ours (a forced command, ``nologin``: the session ends
before the shell says it is ready, ssh exiting with another status than 255) gets testinfra's
own one-``ssh``-per-command way for the rest of the process, as does a spec with a password.

:func:`install` registers this module's backends in testinfra's table of backends
(``testinfra.backend.BACKENDS``), for every scheme virtlab accepts: ``ssh`` (this shell),
``ansible`` (testinfra's ansible backend runs its ssh hosts through ``testinfra.get_host``,
hence this shell too), ``local`` and the container backends (``run_local`` with the caps).
Every host virtlab makes (``engine.get_host``, the pytest plugin's ``--hosts``) is one of them.
"""

from __future__ import annotations

import re
import secrets
import shlex
import subprocess
import threading
import weakref
from typing import Any

from testinfra.backend import (
    ansible,
    chroot,
    docker,
    kubectl,
    local,
    lxc,
    openshift,
    podman,
    ssh,
)
from testinfra.backend.base import CommandResult

from checker.probes.output import BoundedBackend, Meter, current, kill_tree, read_streams

#: What sshd's ``$SHELL -c`` runs: a POSIX shell reading our commands on its standard input.
REMOTE_SHELL = "exec /bin/sh"

#: The shells open now (closed by :func:`close_all`).
OPEN: weakref.WeakSet[ShellBackend] = weakref.WeakSet()


def _marker() -> str:
    return "virtlab-" + secrets.token_hex(16)


def _ends(marker: str) -> str:
    """What the shell prints after a command: a line holding the marker (and the exit status
    on stdout) on each stream, after a line break, so that output without a final newline
    stays exact."""
    return (f"printf '\\n%s %d\\n' {marker} \"$?\"; printf '\\n%s\\n' {marker} >&2\n")


class _Stream:
    """One of the session's output streams, and where the end of the current answer is."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.scanned = 0

    def reset(self) -> None:
        self.buf.clear()
        self.scanned = 0

    def find(self, pattern: re.Pattern[bytes]) -> re.Match[bytes] | None:
        # only what arrived since the last look (and a marker's length before it)
        m = pattern.search(self.buf, max(0, self.scanned - 64))
        self.scanned = len(self.buf)
        return m

    def take(self, m: re.Match[bytes]) -> bytes:
        """The answer before the marker line; the marker line and what precedes it go."""
        data = bytes(self.buf[:m.start()])
        del self.buf[:m.end()]
        self.scanned = 0
        return data


class ShellBackend(BoundedBackend, ssh.SshBackend):
    """testinfra's ssh backend, its commands sent to one long-lived remote shell."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.RLock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.out = _Stream()
        self.err = _Stream()
        #: False once the host's login shell would not run ours: then one ssh per command
        self.shell_usable = not self.host.password
        #: shells started so far (one per budget, more when a session was lost)
        self.sessions = 0

    # -- testinfra's public hook: every command of SshBackend.run comes here -------------
    def run_ssh(self, command: str) -> CommandResult:
        if not self.shell_usable:
            return super().run_ssh(command)
        marker = _marker()
        # encoded before the exchange: encoding may itself run a command (the host's python3)
        data = self.encode(f"/bin/sh -c {shlex.quote(command)} </dev/null; " + _ends(marker))
        with self.lock:
            return self.exchange(command, data, marker)

    def connected(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- the session ----------------------------------------------------------------------
    def start(self) -> subprocess.Popen[bytes]:
        """``ssh … HOST 'exec /bin/sh'``: the command line testinfra's backend builds for a
        command, run as testinfra runs it (a shell string, every argument quoted)."""
        cmd, cmd_args = self._build_ssh_command(REMOTE_SHELL)
        line = self.encode(self.quote(" ".join(cmd), *cmd_args))
        proc = subprocess.Popen(line, shell=True, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.proc = proc
        self.out.reset()
        self.err.reset()
        self.sessions += 1
        OPEN.add(self)
        b = current()
        if b is not None:
            b.closers.append(self.close)  # the shell ends with its budget
        return proc

    def exchange(self, command: str, data: bytes, marker: str) -> CommandResult:
        meter = Meter()  # a flooded budget raises here: nothing is sent
        proc = self.proc
        sync = ""
        if proc is None or proc.poll() is not None:
            self.close()
            # the shell says it is ready: what the login shell printed before is dropped
            sync = _marker()
            data = self.encode(_ends(sync)) + data
            proc = self.start()
        else:  # stray bytes between two commands (a background process of the host)
            self.out.reset()
            self.err.reset()
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        fds = {proc.stdout.fileno(): self.out.buf, proc.stderr.fileno(): self.err.buf}
        cmd = self.encode(command)
        try:
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the session already ended: what it said is read below
            if sync:
                flood, got = self.read_to(sync, fds, meter)
                if flood is None and got is None:  # ended before the shell was ready
                    meter.close()
                    out, err = bytes(self.out.buf), bytes(self.err.buf)
                    rc = self.ended()
                    if rc == 255:  # ssh could not connect: its words, as testinfra says it
                        raise RuntimeError(self.result(255, cmd, out, err))
                    # the login shell will not run ours: testinfra's own way from now on
                    self.shell_usable = False
                    return super().run_ssh(command)
                if flood is not None:
                    return self.cut(meter, flood)
            flood, got = self.read_to(marker, fds, meter)
        except BaseException:  # Ctrl-C, a signal: the session's state is unknown
            self.kill()
            raise
        if flood is not None:
            return self.cut(meter, flood)
        meter.close()
        if got is None:  # the session ended in the middle of the command
            out, err = bytes(self.out.buf), bytes(self.err.buf)
            rc = self.ended()
            result = self.result(rc, cmd, out, err)
            if rc == 255:  # the connection was lost (testinfra's backend says it so)
                raise RuntimeError(result)
            return result
        rc, out, err = got
        return self.result(rc, cmd, out, err)

    def read_to(self, marker: str, fds: dict[int, bytearray],
                meter: Meter) -> tuple[Any, tuple[int, bytes, bytes] | None]:
        """Read until both streams have shown ``marker``: (flood or None, (exit status,
        stdout, stderr) or None when the session ended first)."""
        m = marker.encode()
        on_out = re.compile(rb"\n" + m + rb" (\d+)\n")
        on_err = re.compile(rb"\n" + m + rb"\n")
        found: dict[str, re.Match[bytes] | None] = {"out": None, "err": None}

        def finished() -> bool:
            if found["out"] is None:
                found["out"] = self.out.find(on_out)
            if found["err"] is None:
                found["err"] = self.err.find(on_err)
            return found["out"] is not None and found["err"] is not None

        flood = read_streams(fds, meter, finished)
        if flood is not None or not finished():
            return flood, None
        mo, me = found["out"], found["err"]
        assert mo is not None and me is not None
        rc = int(mo.group(1))
        return None, (rc, self.out.take(mo), self.err.take(me))

    def cut(self, meter: Meter, flood: Any) -> CommandResult:
        """Past a cap: the session is killed, nothing more is read, the budget flooded."""
        meter.close(flood)
        self.kill()
        raise flood

    def ended(self) -> int:
        """The session is over: its exit status (ssh's: 255 when the connection failed)."""
        proc = self.proc
        assert proc is not None
        rc = proc.wait()
        self.close()
        return rc

    def kill(self) -> None:
        proc = self.proc
        if proc is not None:
            kill_tree(proc.pid)
        self.close()

    def close(self) -> None:
        """End the session: the shell reads the end of its input and exits, then ssh; one
        that does not end within seconds is killed."""
        proc, self.proc = self.proc, None
        OPEN.discard(self)
        if proc is None:
            return
        for f in (proc.stdin, proc.stdout, proc.stderr):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.wait()
        self.out.reset()
        self.err.reset()


def close_all() -> None:
    """End every open shell of this process (the end of a pytest session, of a process's own
    ssh set-up)."""
    for backend in list(OPEN):
        backend.close()


# --- the backends virtlab registers in testinfra ------------------------------------------

class LocalBackend(BoundedBackend, local.LocalBackend):
    pass


class SafeSshBackend(BoundedBackend, ssh.SafeSshBackend):
    """testinfra's "safe-ssh" (its own output framing, one ssh per command), with the caps."""


class AnsibleBackend(BoundedBackend, ansible.AnsibleBackend):
    """testinfra's ansible backend: its ssh hosts are :class:`ShellBackend` ones."""

    def connected(self) -> bool:
        if self.force_ansible:
            return False
        host = self.ansible_runner.get_host(self.host, ssh_config=self.ssh_config,
                                            ssh_identity_file=self.ssh_identity_file)
        return host is not None and isinstance(host.backend, BoundedBackend) \
            and host.backend.connected()


def _bounded(base: type) -> type[BoundedBackend]:
    """testinfra's ``base`` backend with the caps and the memo, nothing else: a class of this
    module under the same name (testinfra's table names a backend by its dotted path)."""
    cls = type(base.__name__, (BoundedBackend, base), {"__module__": __name__})
    globals()[base.__name__] = cls
    return cls


#: container and cluster backends: commands run by a local client, capped the same way
PLAIN = {name: _bounded(base) for name, base in (
    ("docker", docker.DockerBackend), ("podman", podman.PodmanBackend),
    ("lxc", lxc.LxcBackend), ("kubectl", kubectl.KubectlBackend),
    ("openshift", openshift.OpenShiftBackend), ("chroot", chroot.ChrootBackend))}


#: testinfra's scheme -> our backend class. paramiko, salt and winrm do not run commands
#: through ``run_local`` (no cap, no forced ssh settings): virtlab refuses them
#: (``engine.UNBOUNDED_BACKENDS``).
BACKENDS: dict[str, type[BoundedBackend]] = {
    "local": LocalBackend, "ssh": ShellBackend, "safe-ssh": SafeSshBackend,
    "ansible": AnsibleBackend, **PLAIN,
}


def install() -> None:
    """Make testinfra build virtlab's backends for these schemes (idempotent): its table of
    backends names each class by its dotted path."""
    import testinfra.backend

    for scheme, cls in BACKENDS.items():
        testinfra.backend.BACKENDS[scheme] = f"{cls.__module__}.{cls.__qualname__}"
