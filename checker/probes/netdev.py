"""Network device facts of a host, read from /sys/class/net in one command.

A check asks ``net_device(host, "br0")`` and judges the answer; it never reads /sys itself.
The probe tells the two cases a check must not confuse apart:

- the device really is absent (``NetDevice.exists`` is False), or has no ``brif`` folder
  (not a bridge: ``is_bridge`` False, ``ports`` empty);
- the host could not be asked: the command failed, or testinfra's ssh backend lost its
  connection (``RuntimeError``, see :func:`checker.probes.ssh_lost`). Both raise
  (:class:`NetDevUnreadable`, or the backend's own error): "br0 has no port" is never
  the grade of a lost connection.

>>> parse_net_device("br0", "present\\nbridge\\nflags=0x1003\\noperstate=up\\nport=eth0\\n")
NetDevice(name='br0', exists=True, is_bridge=True, flags=4099, operstate='up', ports=('eth0',))
>>> parse_net_device("br0", "absent\\n").exists
False
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: IFF_UP in ``/sys/class/net/DEV/flags``: the device is administratively up.
IFF_UP = 0x1

#: What the kernel accepts as a device name (dev_valid_name): 1 to 15 bytes, no '/',
#: ':' or white space. Anything else cannot be under /sys/class/net.
_NAME_RE = re.compile(r"[^/:\s]{1,15}")

# One POSIX sh run, the device name as its $1 (an argument, never pasted into the script).
# It always exits 0 when it ran: any other exit status is a failure to ask, not a fact.
_SCRIPT = r"""
d="/sys/class/net/$1"
if [ ! -e "$d" ]; then echo absent; exit 0; fi
echo present
if [ -d "$d/bridge" ]; then echo bridge; fi
printf 'flags=%s\n' "$(cat "$d/flags" 2>/dev/null)"
printf 'operstate=%s\n' "$(cat "$d/operstate" 2>/dev/null)"
if [ -d "$d/brif" ]; then for p in "$d/brif"/*; do
  [ -e "$p" ] && printf 'port=%s\n' "${p##*/}"
done; fi
exit 0
"""


class NetDevUnreadable(Exception):
    """/sys/class/net could not be read on the host (the probe's command did not run)."""


@dataclass(frozen=True)
class NetDevice:
    """One network device as /sys/class/net shows it."""

    name: str
    exists: bool
    is_bridge: bool = False
    #: ``flags`` as a number (None when unreadable or absent)
    flags: int | None = None
    operstate: str | None = None
    #: the bridge's ports (``brif/``), sorted; empty for a device that is not a bridge
    ports: tuple[str, ...] = ()

    @property
    def admin_up(self) -> bool:
        """IFF_UP: ``ip link set DEV up`` was done."""
        return bool((self.flags or 0) & IFF_UP)

    @property
    def flags_text(self) -> str | None:
        """The flags as /sys writes them (for evidence)."""
        return None if self.flags is None else f"0x{self.flags:x}"


def parse_net_device(name: str, text: str) -> NetDevice:
    """The probe script's output, parsed (pure)."""
    lines = text.splitlines()
    if not lines or lines[0] != "present":
        return NetDevice(name=name, exists=False)
    flags: int | None = None
    operstate: str | None = None
    ports: list[str] = []
    for line in lines[1:]:
        key, _, value = line.partition("=")
        if key == "flags" and value:
            try:
                flags = int(value, 16)
            except ValueError:
                flags = None
        elif key == "operstate" and value:
            operstate = value
        elif key == "port" and value:
            ports.append(value)
    return NetDevice(name=name, exists=True, is_bridge="bridge" in lines[1:], flags=flags,
                     operstate=operstate, ports=tuple(sorted(ports)))


#: testinfra's template of the probe's one command (the script and the name its arguments)
COMMAND = "sh -c %s virtlab-netdev %s"


def prefetch_entry(name: str) -> tuple[str, ...]:
    """The ``PREFETCH`` entry (checker.engine.lab_prefetch) of :func:`net_device`'s command
    for ``name``: its stderr is read, so the prefetch exchange brings it too."""
    from checker.probes.host import WithStderr

    return (WithStderr(COMMAND), _SCRIPT, name)


def net_device(host: Any, name: str) -> NetDevice:
    """The device ``name`` of a testinfra ``host``, in one command.

    Raises :class:`NetDevUnreadable` when the command failed (a lost SSH connection raises
    the backend's ``RuntimeError`` before that); a name the kernel cannot have is absent.
    """
    if not _NAME_RE.fullmatch(name):
        return NetDevice(name=name, exists=False)
    r = host.run("sh -c %s virtlab-netdev %s", _SCRIPT, name)  # COMMAND, a literal here
    if r.rc != 0 or not r.stdout.strip():
        err = (r.stderr or "").strip().splitlines()
        raise NetDevUnreadable(f"/sys/class/net/{name}: rc={r.rc} {err[-1] if err else ''}".strip())
    return parse_net_device(name, r.stdout)
