"""Probes: read-only facts about a host (testinfra) and about libvirt (libvirt-python).

Probes state facts ("which interfaces has this domain?"); checks in ``labs/*/checks``
judge them ("has it a virtio interface?").
"""

from __future__ import annotations

from typing import Any


def ssh_lost(exc: BaseException) -> bool:
    """The SSH connection itself failed (testinfra's ssh backend raises RuntimeError of a
    result with exit status 255: the command never ran). A probe that reads "missing or
    unreadable" on any error must let this one through: a lost connection is not a fact
    about the learner's machine."""
    res = exc.args[0] if isinstance(exc, RuntimeError) and exc.args else None
    return getattr(res, "exit_status", None) == 255 and hasattr(res, "stderr")


def read_file(host: Any, path: str) -> str | None:
    """The text of a regular file of a testinfra ``host``; None when missing, not a regular
    file, or unreadable (a lost SSH connection still raises: see :func:`ssh_lost`)."""
    try:
        # one exchange, not testinfra's two (``test -f``, then ``cat``)
        r = host.run("test -f %s && cat -- %s", path, path)
        return r.stdout if r.rc == 0 else None
    except Exception as e:
        if ssh_lost(e):
            raise
        return None


def list_dir(host: Any, path: str) -> list[str] | None:
    """The names in a directory of a testinfra ``host``; None when it is not a readable
    directory (a lost SSH connection still raises)."""
    try:
        # one exchange, not testinfra's two (``test -d``, then ``ls``)
        r = host.run("test -d %s && ls -1 -q -- %s", path, path)
        return r.stdout.splitlines() if r.rc == 0 else None
    except Exception as e:
        if ssh_lost(e):
            raise
        return None
