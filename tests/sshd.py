"""A real OpenSSH server on loopback for the grading tests and benchmark, and learner users.

Everything lives in one temporary directory: the server's host key and config, the client key
the learners authorize, a ``known_hosts`` holding the server's key (host-key checking stays ON)
and an ``ssh_config`` the grader is given with ``--ssh-config``. The server runs in the
foreground (``sshd -D``) on a free high port of 127.0.0.1 and is stopped by its PID.

    with Sshd() as sshd:
        users = LearnerUsers(sshd)
        name = users.add("alice", groups=("kvm",))
        subprocess.run(["ssh", "-F", sshd.ssh_config, "-p", str(sshd.port),
                        f"{name}@127.0.0.1", "id"])

Also here: :func:`dead_port` (a port where nothing listens) and :class:`HangingListener`
(a socket that accepts connections and never says a word: the hanging host).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_port() -> int:
    """A loopback port with no listener (connections are refused)."""
    return free_port()


class SshdError(RuntimeError):
    pass


class Sshd:
    """A private sshd on 127.0.0.1: key authentication only, ``UsePAM no``."""

    def __init__(self, workdir: str | os.PathLike[str] | None = None, max_startups: int = 200,
                 extra_config: str = ""):
        if os.geteuid() != 0:
            raise SshdError("starting sshd and creating learner users needs root")
        if not os.access(SSHD, os.X_OK):
            raise SshdError(f"{SSHD} not found: install the Debian package openssh-server")
        self._own_dir = workdir is None
        # Short paths: ssh's ControlPath sockets inherit this prefix (108-byte limit).
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="vl-sshd-", dir="/tmp"))
        self.dir.chmod(0o755)  # sshd reads the authorized keys as the learner
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.max_startups = max_startups
        #: more sshd_config lines (e.g. "AcceptEnv *": a learner's server as loose as can be)
        self.extra_config = extra_config
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.client_key = self.dir / "id_ed25519"
        self.keys_dir = self.dir / "authorized_keys"
        self.known_hosts = self.dir / "known_hosts"
        self.ssh_config = self.dir / "ssh_config"
        self.config = self.dir / "sshd_config"
        self.log = self.dir / "sshd.log"

    # -- set-up -------------------------------------------------------------------------
    def _keygen(self, path: Path, comment: str) -> None:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                        "-f", str(path)], check=True)

    def _write_configs(self) -> None:
        self.keys_dir.mkdir(exist_ok=True)
        self.keys_dir.chmod(0o755)
        self.config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.dir / 'sshd.pid'}\n"
            "UsePAM no\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\n"
            "PermitRootLogin no\n"
            f"AuthorizedKeysFile {self.keys_dir}/%u\n"
            # the keys live under /tmp, which StrictModes would reject (world-writable parent)
            "StrictModes no\n"
            # one sshd plays a whole class: let many handshakes run at once
            f"MaxStartups {self.max_startups}:30:{self.max_startups * 2}\n"
            "MaxSessions 100\n"
            "LoginGraceTime 30\n"
            "UseDNS no\n"
            "PrintMotd no\n"
            "PrintLastLog no\n"
            "X11Forwarding no\n"
            "LogLevel ERROR\n"
            "Subsystem sftp internal-sftp\n" + self.extra_config,
            encoding="utf-8")
        pub = (self.host_key.with_suffix(".pub")).read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n")
        self.ssh_config.write_text(
            "Host *\n"
            f"  IdentityFile {self.client_key}\n"
            "  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.known_hosts}\n"
            "  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking yes\n"
            "  BatchMode yes\n"
            "  LogLevel ERROR\n",
            encoding="utf-8")

    def start(self) -> Sshd:
        if not self.host_key.exists():
            self._keygen(self.host_key, "virtlab-test-host")
            self._keygen(self.client_key, "virtlab-test-grader")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        for _ in range(5):
            self.port = free_port()
            self._write_configs()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            if self._wait_banner(10.0):
                return self
            self.stop()
        raise SshdError(f"sshd did not start; its log: {self.log.read_text(errors='replace')}")

    def _wait_banner(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop the server by its PID (and only it)."""
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Sshd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------
    def spec(self, user: str) -> str:
        """The testinfra host spec of a learner on this server."""
        return f"ssh://{user}@127.0.0.1:{self.port}"

    def authorize(self, user: str) -> None:
        key = self.client_key.with_suffix(".pub").read_text()
        f = self.keys_dir / user
        f.write_text(key)
        f.chmod(0o644)

    def ssh(self, user: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-F", str(self.ssh_config), "-p", str(self.port), f"{user}@127.0.0.1", "--",
             *argv], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class LearnerUsers:
    """Real Unix learner accounts that may log in to an :class:`Sshd` with its client key.

    Created with ``useradd -m``; deleted (with their home) by :meth:`remove_all`.
    """

    def __init__(self, sshd: Sshd, prefix: str | None = None):
        self.sshd = sshd
        self.prefix = prefix or f"vlg{secrets.token_hex(2)}"
        self.names: list[str] = []

    def add(self, label: str, groups: Iterable[str] = ()) -> str:
        name = f"{self.prefix}-{label}"[:32]
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True,
                       capture_output=True)
        self.names.append(name)
        # useradd leaves the password locked ("!"); without PAM sshd refuses locked
        # accounts even for key logins, so mark it "no password" instead ("*").
        subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
        for g in groups:
            subprocess.run(["usermod", "-aG", g, name], check=True, capture_output=True)
        self.sshd.authorize(name)
        return name

    def home(self, name: str) -> Path:
        return Path(pwd.getpwnam(name).pw_dir)

    def remove_all(self) -> None:
        for name in self.names:
            # several test sessions at once (other worktrees) contend for /etc/passwd's
            # lock: userdel then fails, and the account would stay behind; try again
            for _ in range(20):
                subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
                try:
                    pwd.getpwnam(name)
                except KeyError:
                    break
                time.sleep(0.25)
        self.names.clear()


class HangingListener:
    """A TCP listener on 127.0.0.1 that accepts every connection and never answers.

    An ssh client waits for the server's banner that never comes: the "hanging host".
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hanging-listener", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)  # keep it open, say nothing

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for c in self.accepted:
            c.close()
        self.sock.close()

    def __enter__(self) -> HangingListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The `ssh` an argv recorder puts first on PATH: it appends its argument count and arguments,
# NUL-separated, to argv.log next to itself, and connects nowhere.
_RECORDER = ("#!/bin/sh\n{ printf '%s\\0' \"$#\"; printf '%s\\0' \"$@\"; } >> "
             "\"$(dirname \"$0\")/argv.log\"\n")


def ssh_argvs(backend: Any, command: str = "true") -> list[list[str]]:
    """The argument vectors of every ``ssh`` a backend's public ``run(command)`` starts, as
    its shell splits them (after ``ssh``): with an ``ssh`` first on PATH that only records
    its arguments (``ssh`` itself is never started). virtlab's ssh backend starts its remote
    shell first (last word ``checker.probes.shell.REMOTE_SHELL``); the recorder never says
    the shell is ready, so the backend then sends the command testinfra's way (last word
    ``command``). The previous PATH is put back."""
    with tempfile.TemporaryDirectory(prefix="virtlab-sshargv-") as d:
        rec = Path(d) / "ssh"
        rec.write_text(_RECORDER)
        rec.chmod(0o755)
        path = os.environ.get("PATH", "")
        os.environ["PATH"] = f"{d}{os.pathsep}{path}"
        try:
            res = backend.run(command)
        finally:
            os.environ["PATH"] = path
        assert res.rc == 0, res.stderr
        words = (Path(d) / "argv.log").read_bytes().decode("utf-8", "surrogateescape")
    items = words.split("\0")[:-1]
    out = []
    while items:
        n = int(items[0])
        out.append(["ssh", *items[1:n + 1]])
        items = items[n + 1:]
    return out
