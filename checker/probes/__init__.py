"""Probes: read-only facts about a host (testinfra) and about libvirt (libvirt-python).

Probes state facts ("which interfaces has this domain?"); checks in ``labs/*/checks``
judge them ("has it a virtio interface?").
"""


def ssh_lost(exc: BaseException) -> bool:
    """The SSH connection itself failed (testinfra's ssh backend raises RuntimeError of a
    result with exit status 255: the command never ran). A probe that reads "missing or
    unreadable" on any error must let this one through: a lost connection is not a fact
    about the learner's machine."""
    res = exc.args[0] if isinstance(exc, RuntimeError) and exc.args else None
    return getattr(res, "exit_status", None) == 255 and hasattr(res, "stderr")
