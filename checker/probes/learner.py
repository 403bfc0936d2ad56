"""The learner whose work is checked, and running commands as that learner.

The learner is ``--user NAME``, else ``SUDO_USER`` (run through sudo), else the user the
checker runs as. Commands that must see the learner's own rights (``virsh`` against
``qemu:///system``) run as that user: directly when the checker already is that user,
through ``runuser`` when it runs as root. ``runuser`` starts a fresh login-like
credential set from ``/etc/group``, so it shows what a new login of the learner gets.
"""

from __future__ import annotations

import getpass
import os
import shlex
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from checker.probes import ssh_lost

if TYPE_CHECKING:
    from checker.probes.vbox import VBox


def default_learner(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user and sudo_user != "root":
        return sudo_user
    try:
        return getpass.getuser()
    # getpass.getuser raises OSError or KeyError by Python version: the uid then
    except Exception:  # noqa: BLE001
        return str(os.getuid())


@dataclass
class Learner:
    """>>> Learner(host, "alice").run("virsh", "-c", "qemu:///system", "list")  # doctest: +SKIP"""

    host: Any
    name: str

    @cached_property
    def _connected_as(self) -> str:
        try:
            return str(self.host.user().name)
        except Exception as e:
            if ssh_lost(e):
                raise
            return ""

    # A Learner lives for one check run (the engine makes one per run): the user database
    # is read once per run, not once per objective (each read is a process on the host).
    @cached_property
    def exists(self) -> bool:
        return bool(self.host.user(self.name).exists)

    @cached_property
    def groups(self) -> list[str]:
        """Groups the learner belongs to per the user database (what a new login gets)."""
        return list(self.host.user(self.name).groups) if self.exists else []

    @cached_property
    def home(self) -> str:
        return str(self.host.user(self.name).home)

    @cached_property
    def vbox(self) -> VBox:
        """The learner's VirtualBox probe, one per run as the facts above
        (:func:`checker.probes.vbox.vbox_for`)."""
        from checker.probes.vbox import VBox

        return VBox(self)

    def run(self, *argv: str, env: dict[str, str] | None = None, login_shell: bool = False) -> Any:
        """Run argv as the learner; arguments are quoted by testinfra, never pasted."""
        template, args = self.command(*argv, env=env, login_shell=login_shell)
        return self.host.run(template, *args)

    def command(self, *argv: str, env: dict[str, str] | None = None,
                login_shell: bool = False) -> tuple[str, tuple[str, ...]]:
        """What :meth:`run` runs: testinfra's template and its arguments (a lab declares it
        to prefetch: checker.engine.lab_prefetch_next)."""
        envs = [f"{k}={v}" for k, v in (env or {}).items()]
        me = self._connected_as
        if login_shell:
            # The learner's own shell start-up files decide (e.g. LIBVIRT_DEFAULT_URI):
            # an interactive login bash reads ~/.profile and ~/.bashrc as a terminal would.
            # env is applied after the start-up files, so it wins over them.
            inner = shlex.join(["env", *envs, *argv] if envs else argv)
            if me == self.name:
                return ("env -i HOME=%s USER=%s LOGNAME=%s PATH=/usr/local/bin:/usr/bin:/bin "
                        "bash -lic %s", (self.home, self.name, self.name, inner))
            return ("runuser -l %s -s /bin/bash -c %s",
                    (self.name, "exec bash -lic " + shlex.quote(inner)))
        if me == self.name:
            prefix = ["env", *envs] if envs else []
            return " ".join(["%s"] * (len(prefix) + len(argv))), (*prefix, *argv)
        args = ["runuser", "-u", self.name, "--", *(["env", *envs] if envs else []), *argv]
        return " ".join(["%s"] * len(args)), tuple(args)
