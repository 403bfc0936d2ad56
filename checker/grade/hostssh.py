"""One host's own ssh options in a grading run, for libvirt's connection too.

An inventory may give a host (or a group) its own key and ssh options
(``ansible_ssh_private_key_file``, ``ansible_ssh_common_args``: the instructor's, never the
learner's). testinfra's connection takes them from the inventory; libvirt's ``qemu+ssh``
connection runs the ``ssh`` it finds on PATH, the run's wrapper (``checker.grade.sshconf``),
and passes PATH to it but little else of the environment. So such a host gets a wrapper of its
own, which runs the run's wrapper with those options after the run's own settings, and whose
folder comes first on PATH while that host is graded (:func:`ssh_bin_on_path`, in the
worker).

    >>> bindir = host_bin(setup, ("-i", "/home/prof/.ssh/id_tp1"))   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def host_bin(setup: Any, extra: tuple[str, ...] | list[str]) -> Path:
    """The wrapper folder for a host with these ssh options (the run's own for none).

    ``setup`` is the run's :class:`checker.grade.sshconf.SshSetup` (its folder, its wrapper).
    """
    extra = tuple(extra)
    if not extra:
        return Path(setup.bin)
    bindir = Path(setup.dir) / f"bin-{hashlib.sha256(repr(extra).encode()).hexdigest()[:12]}"
    if not bindir.exists():
        bindir.mkdir()
        wrapper = bindir / "ssh"
        wrapper.write_text(
            "#!/bin/sh\n"
            "# one host's ssh options (its inventory's), after the run's own settings\n"
            f"exec {shlex.quote(str(setup.wrapper))} {shlex.join(extra)} \"$@\"\n",
            encoding="utf-8")
        wrapper.chmod(0o755)
    return bindir


@contextmanager
def ssh_bin_on_path(job: dict[str, Any]) -> Iterator[None]:
    """While one job (host) is graded: its wrapper folder first on PATH."""
    old = os.environ.get("PATH", os.defpath)
    if job.get("ssh_bin"):
        os.environ["PATH"] = job["ssh_bin"] + os.pathsep + old
    try:
        yield
    finally:
        os.environ["PATH"] = old
