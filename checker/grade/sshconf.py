"""The SSH set-up of one grading run: batch mode, shared connections, bounded waits.

testinfra's ssh backend runs one ``ssh`` per command (virtlab's own,
:mod:`checker.probes.shell`, one long-lived session per host; libvirt's ``qemu+ssh`` one
more). Without a ``ControlPath`` OpenSSH does not multiplex (``ControlMaster=auto`` alone is
ignored), so every ``ssh`` pays a full key exchange: lab 01 over loopback costs ~4.5 s per
host that way, ~0.35 s with one shared connection. The run therefore writes its own ``ssh_config``:

- forced settings, ahead of everything else (see :func:`forced_options`): no agent, X11 or
  port forwarding, no ``LocalCommand``, no environment sent, strict host-key checking
  (``accept-new`` only when the instructor asks for it), batch mode. A learner is root on the
  host we connect to: an instructor's ``ForwardAgent yes`` would hand them the instructor's
  agent, ``SendEnv`` the instructor's variables. ssh keeps the FIRST value it obtains for an
  option, and reads ``-o`` options before any file: the wrapper passes them as ``-o``, before
  the arguments of its caller (testinfra's own ``ssh_extra_args``, an inventory's options);
  ``SendEnv`` adds up instead, so ``SendEnv -*`` (clear) is the LAST line of the config;
- ``ControlPath`` in a private directory of the run, so all of a host's commands (testinfra's
  and libvirt's ``qemu+ssh``) share one connection, the master kept alive by testinfra's
  ``ControlPersist`` and closed by :meth:`SshSetup.close` at the end of the run;
- ``ServerAliveInterval``: a connection whose peer stops answering ends within ~timeout;
- then the instructor's ``--ssh-config`` (or, when none is given, ``~/.ssh/config`` and
  ``/etc/ssh/ssh_config``, what plain ``ssh`` would read): keys, users, known_hosts files,
  proxies;
- then, unless that config chose its own, a key exchange cheap for both ends first
  (:func:`kex_preference`): OpenSSH 9.0-9.9's default, ``sntrup761x25519-sha512``, costs
  ~0.12 s of the client's CPU per connection here (one per host) and ~0.04 s of the learner's
  sshd: a class of 60 spent ~10 s of CPU on it (``benchmarks/bench_network.py``: instructor
  0.34 -> 0.21 s per host, learners 0.32 -> 0.28 s).

libvirt's ``qemu+ssh`` transport starts its own ``ssh`` (found on PATH); the workers' PATH
starts with a wrapper named ``ssh`` that adds ``-F`` this config, so libvirt rides the same
connection and the URI in the reports stays the plain one
(``qemu+ssh://alice@pc12:22/system``). A URI's ``command=`` parameter would do the same but
would show the run's temporary path in every message.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from checker.i18n import Text, message

#: What a grading connection must never do, whatever the instructor's ssh_config says
#: (OpenSSH 9.2, Debian 12: each checked by tests/test_threat_forwarding.py on a real sshd).
FORCED = (
    ("BatchMode", "yes"),               # never a prompt: fail fast
    ("ForwardAgent", "no"),             # the instructor's agent stays home
    ("ForwardX11", "no"),
    ("ForwardX11Trusted", "no"),
    ("ClearAllForwardings", "yes"),     # no -L/-R/-D, none from a config either
    ("Tunnel", "no"),
    ("PermitLocalCommand", "no"),       # no LocalCommand run on the instructor's machine
    ("UpdateHostKeys", "no"),           # a learner's server does not write known_hosts
    ("SetEnv", "VIRTLAB_GRADER=1"),     # the first SetEnv wins: the instructor's are ignored
)


def forced_options(accept_new: bool = False) -> list[str]:
    """The forced settings as ``ssh -o`` arguments (``StrictHostKeyChecking yes``, or
    ``accept-new`` when the instructor asked for it: a host seen for the first time is
    trusted and recorded, a changed key is still refused)."""
    out = []
    for k, v in FORCED + (("StrictHostKeyChecking", "accept-new" if accept_new else "yes"),):
        out += ["-o", f"{k}={v}"]
    return out


#: How long a shared connection stays up once idle: testinfra's own default (its ssh
#: backend's ``controlpersist``), so one opened ahead of its worker (:func:`connect_argv`) is
#: still there when the worker's first command comes.
CONTROL_PERSIST = 60


def connect_argv(bindir: str | os.PathLike[str], user: str, host: str,
                 port: int | None = None) -> list[str]:
    """``ssh`` that opens one host's shared connection and returns once it is up: the
    connection testinfra's and libvirt's ``ssh`` of that host then ride (same user, host and
    port: same ``ControlPath``). Through the host's wrapper in ``bindir`` (the run's forced
    settings and ControlPath, the inventory's options); ``-N``: no remote command, not even
    the learner's login shell; ``ControlPersist``: the master stays in the background and
    this ``ssh`` ends, 0 when connected, 255 with ssh's words when not.

    >>> connect_argv("/tmp/vlg-x/bin", "alice", "pc12", 22)    # doctest: +NORMALIZE_WHITESPACE
    ['/tmp/vlg-x/bin/ssh', '-o', 'User=alice', '-o', 'Port=22', '-o', 'ControlMaster=auto',
     '-o', 'ControlPersist=60s', '-N', '--', 'pc12']
    """
    return [os.path.join(bindir, "ssh"), "-o", f"User={user}",
            *(["-o", f"Port={int(port)}"] if port else []),
            "-o", "ControlMaster=auto", "-o", f"ControlPersist={CONTROL_PERSIST}s", "-N", "--",
            host]


BAD_PATH = message("sshconf.bad-path",
                   fr="chemin inutilisable dans une configuration ssh : {path} (guillemet ou "
                      "fin de ligne)",
                   en="unusable path for ssh_config: {path} (a quote or a line break)")


class SshConfigError(ValueError):
    """A path ssh_config cannot hold; :attr:`text` says which (both languages)."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.en)
        self.text = text


def _cfg_quote(path: str) -> str:
    """A path as one ssh_config argument (a folder name may hold blanks)."""
    if any(c in path for c in '"\n\r'):
        raise SshConfigError(BAD_PATH.format(path=repr(path)))
    return f'"{path}"' if any(c.isspace() for c in path) or "#" in path else path


#: Set in the environment of a grading worker, whose ``ssh`` is the run's wrapper.
WRAPPER_ENV = "VIRTLAB_SSH_WRAPPER"
#: The second line of every wrapper: a wrapper never runs another one (nested wrappers
#: would put the other's ControlPath first, and share its connections).
WRAPPER_MARK = "# virtlab ssh wrapper"


def real_ssh() -> str:
    """The first ``ssh`` on PATH that is not a virtlab wrapper."""
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        cand = os.path.join(d or ".", "ssh")
        if not (os.path.isfile(cand) and os.access(cand, os.X_OK)):
            continue
        try:
            with open(cand, "rb") as f:
                head = f.read(200)
        except OSError:
            continue
        if WRAPPER_MARK.encode() not in head:
            return cand
    return "/usr/bin/ssh"


#: Key exchanges put first, in this order, when this ssh knows them (``ssh -Q kex``): the
#: post-quantum hybrid ML-KEM (OpenSSH >= 9.9, cheap), then X25519 (OpenSSH's default from 6.5
#: to 8.9). The others stay after them in ssh's own order, so a learner's sshd that offers
#: none of these still connects. Measured on this machine (OpenSSH 9.2, loopback): a
#: connection cost the client 146 ms of CPU with sntrup761x25519 first, 22 ms with X25519.
KEX_FIRST = ("mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org")


#: ``ssh -Q kex`` of each ssh binary: started (:func:`ask_kex`), then its answer
_KEX: dict[str, subprocess.Popen[str] | list[str]] = {}


def ask_kex(ssh: str | None = None) -> None:
    """Start ``ssh -Q kex`` now, without waiting (~20 ms of an ssh start-up): a run asks it
    as it starts, and reads the answer when it writes its config (:func:`kex_preference`)."""
    ssh = ssh or real_ssh()
    if ssh not in _KEX:
        try:
            _KEX[ssh] = subprocess.Popen([ssh, "-Q", "kex"], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True)
        except OSError:
            _KEX[ssh] = []


def kex_preference(ssh: str) -> str | None:
    """The ``KexAlgorithms`` value that puts :data:`KEX_FIRST` (those ``ssh`` knows) at the
    head of its default list; None when ``ssh -Q kex`` does not answer. An instructor's
    config that sets ``KexAlgorithms`` wins (ssh keeps the first value: this line comes
    after their files). The answer is kept for the process's later runs."""
    ask_kex(ssh)
    known = _KEX[ssh]
    if not isinstance(known, list):  # the process started by ask_kex
        try:
            out, _ = known.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            known.kill()
            out, _ = known.communicate()
        known = _KEX[ssh] = out.split() if known.returncode == 0 else []
    first = [k for k in KEX_FIRST if k in known]
    return "^" + ",".join(first) if first else None


class SshSetup:
    """>>> s = SshSetup(None, timeout=10); s.config   # doctest: +SKIP"""

    def __init__(self, user_config: str | None, timeout: int, accept_new: bool = False):
        # Short directory: control sockets must fit in sockaddr_un (108 bytes).
        base = "/tmp" if os.path.isdir("/tmp") else None
        self.dir = Path(tempfile.mkdtemp(prefix="vlg-", dir=base))
        self.timeout = timeout
        self.accept_new = accept_new
        self.user_config = str(Path(user_config).resolve()) if user_config else None
        self.config = self.dir / "ssh_config"
        self.bin = self.dir / "bin"
        self.wrapper = self.bin / "ssh"
        self._write()

    def _write(self) -> None:
        alive = max(1, (self.timeout + 2) // 3)
        forced = forced_options(self.accept_new)[1::2]
        lines = [
            "# written by virtlab for one run; removed at its end",
            # (the wrapper passes the same as -o: they win over any file)
            *(opt.replace("=", " ", 1) for opt in forced),
            f"ControlPath {self.dir}/cm-%C",
            f"ServerAliveInterval {alive}",
            "ServerAliveCountMax 3",
        ]
        if self.user_config:
            lines.append(f"Include {_cfg_quote(self.user_config)}")
        else:
            home_cfg = Path.home() / ".ssh" / "config"
            if home_cfg.is_file():
                lines.append(f"Include {_cfg_quote(str(home_cfg))}")
            if Path("/etc/ssh/ssh_config").is_file():
                lines.append("Include /etc/ssh/ssh_config")
        ssh = self.real_ssh = real_ssh()
        kex = kex_preference(ssh)
        if kex:  # after the instructor's files: theirs wins
            lines.append(f"KexAlgorithms {kex}")
        # SendEnv adds up over every file read: clearing it must come last (an Include
        # restores the top level when it returns, so this line always applies)
        lines.append("SendEnv -*")
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.bin.mkdir()
        self.wrapper.write_text(
            "#!/bin/sh\n"
            f"{WRAPPER_MARK}\n"
            "# first on the workers' PATH: libvirt's qemu+ssh transport runs `ssh`, and gets the\n"
            "# run's config (batch mode, shared connection); testinfra passes the same -F anyway\n"
            "# and the forced settings as -o, first: ssh keeps the first value it gets\n"
            f"exec {shlex.quote(ssh)} -F {shlex.quote(str(self.config))} "
            f"{shlex.join(forced_options(self.accept_new))} "
            # never another master's connection (an ansible.cfg control_path): ours only
            f"-o ControlPath={shlex.quote(str(self.dir))}/cm-%C "
            f"-o ConnectTimeout={int(self.timeout)} \"$@\"\n",
            encoding="utf-8")
        self.wrapper.chmod(0o755)

    def path_env(self, env: dict[str, str], worker: bool = True) -> dict[str, str]:
        """``env`` with the wrapper first on PATH (``worker``: and named in WRAPPER_ENV, for
        the worker processes of a run)."""
        out = dict(env)
        out["PATH"] = str(self.bin) + os.pathsep + env.get("PATH", os.defpath)
        if worker:
            out[WRAPPER_ENV] = str(self.wrapper)
        return out

    def close(self) -> None:
        """End every shared connection of the run, all at once (one ``ssh -O exit`` per
        master, ~20 ms each: one after the other, a class of 60 waited over a second at its
        end), each given 5 s; then remove the run's directory."""
        import time

        procs = []
        for sock in sorted(self.dir.glob("cm-*")):
            try:
                procs.append(subprocess.Popen(
                    [self.real_ssh, "-o", f"ControlPath={sock}", "-O", "exit", "virtlab"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL))
            except OSError:
                pass
        deadline = time.monotonic() + 5
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
