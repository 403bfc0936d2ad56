"""The SSH set-up of one grading run: batch mode, shared connections, bounded waits.

testinfra's ssh backend runs one ``ssh`` per command. Without a ``ControlPath`` OpenSSH does
not multiplex (``ControlMaster=auto`` alone is ignored), so every command pays a full key
exchange: lab 01 over loopback costs ~4.5 s per host that way, ~0.35 s with one shared
connection. The run therefore writes its own ``ssh_config``:

- ``BatchMode yes``: never wait on a password or host-key prompt;
- ``ControlPath`` in a private directory of the run, so all of a host's commands (testinfra's
  and libvirt's ``qemu+ssh``) share one connection, the master kept alive by testinfra's
  ``ControlPersist`` and closed by :meth:`SshSetup.close` at the end of the run;
- ``ServerAliveInterval``: a connection whose peer stops answering ends within ~timeout;
- then the instructor's ``--ssh-config`` (or, when none is given, ``~/.ssh/config`` and
  ``/etc/ssh/ssh_config``, what plain ``ssh`` would read). Host-key checking is left as they
  set it: on by default (``StrictHostKeyChecking ask``, which batch mode turns into a refusal).

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


def _cfg_quote(path: str) -> str:
    """A path as one ssh_config argument (a folder name may hold blanks)."""
    if any(c in path for c in '"\n\r'):
        raise ValueError(f"unusable path for ssh_config: {path!r}")
    return f'"{path}"' if any(c.isspace() for c in path) or "#" in path else path


class SshSetup:
    """>>> s = SshSetup(None, timeout=10); s.config   # doctest: +SKIP"""

    def __init__(self, user_config: str | None, timeout: int):
        # Short directory: control sockets must fit in sockaddr_un (108 bytes).
        base = "/tmp" if os.path.isdir("/tmp") else None
        self.dir = Path(tempfile.mkdtemp(prefix="vlg-", dir=base))
        self.timeout = timeout
        self.user_config = str(Path(user_config).resolve()) if user_config else None
        self.config = self.dir / "ssh_config"
        self.bin = self.dir / "bin"
        self.wrapper = self.bin / "ssh"
        self._write()

    def _write(self) -> None:
        alive = max(1, (self.timeout + 2) // 3)
        lines = [
            "# written by virtlab grade for one run; removed at its end",
            "BatchMode yes",
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
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        ssh = shutil.which("ssh") or "/usr/bin/ssh"
        self.bin.mkdir()
        self.wrapper.write_text(
            "#!/bin/sh\n"
            "# first on the workers' PATH: libvirt's qemu+ssh transport runs `ssh`, and gets the\n"
            "# run's config (batch mode, shared connection); testinfra passes the same -F anyway\n"
            f"exec {shlex.quote(ssh)} -F {shlex.quote(str(self.config))} "
            f"-o ConnectTimeout={int(self.timeout)} \"$@\"\n",
            encoding="utf-8")
        self.wrapper.chmod(0o755)

    def path_env(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with the wrapper first on PATH (for the worker processes)."""
        out = dict(env)
        out["PATH"] = str(self.bin) + os.pathsep + env.get("PATH", os.defpath)
        return out

    def close(self) -> None:
        """End every shared connection of the run, then remove its directory."""
        for sock in sorted(self.dir.glob("cm-*")):
            try:
                subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "virtlab"],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
