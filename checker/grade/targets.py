"""The class to grade: learner hosts from ``--hosts`` specs or an Ansible inventory.

A :class:`HostTarget` names one learner machine: the testinfra spec ``check()`` connects to,
the learner whose work is judged, the identifiers the LMS export needs (username, email), and
the SSH destination the libvirt URI is built from.

    >>> from_specs(["ssh://alice@pc12:2222"])[0].learner
    'alice'

An inventory is read through testinfra's Ansible backend (``ansible-inventory --list``, from
ansible-core); each host is then graded as ``ansible://NAME?ansible_inventory=FILE``. Host
variables used: ``virtlab_learner`` (else ``ansible_user``) for the learner, ``email`` (or
``virtlab_email``) for the export, ``ansible_host`` / ``ansible_user`` / ``ansible_port`` for
the SSH destination::

    [class]
    pc01 ansible_host=10.0.0.11 ansible_user=alice email=alice@example.org
    pc02 ansible_host=10.0.0.12 ansible_user=etu virtlab_learner=bob
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from checker.hostspec import (UnsafeHost, check_inventory_host, check_inventory_text,
                              parse_ssh_spec, valid_user)


class TargetError(ValueError):
    """Bad ``--hosts`` spec or unusable inventory; the message says what and how to fix it."""


@dataclass(frozen=True)
class HostTarget:
    host: str  # the key of this learner in the gradebook: the spec, or the inventory name
    spec: str  # the testinfra host spec given to check()
    learner: str
    email: str = ""
    ssh_user: str = ""
    ssh_host: str = ""
    ssh_port: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HostTarget":
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__ if k in d})  # type: ignore[arg-type]

    def libvirt_uri(self, template: str) -> str:
        """The libvirt URI for this host from a template with {user}, {host}, {port}.

        >>> HostTarget("h", "ssh://a@h:22", "a", ssh_user="a", ssh_host="h", ssh_port=22
        ...            ).libvirt_uri("qemu+ssh://{user}@{host}:{port}/system")
        'qemu+ssh://a@h:22/system'
        """
        host = self.ssh_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # IPv6 literal
        uri = template.format(user=quote(self.ssh_user, safe=""), host=host,
                              port=self.ssh_port or 22)
        return uri


SPEC_HELP = "expected ssh://user@host[:port] (the SSH user is the learner)"
# Host specs and inventory values are judged by one function (checker.hostspec), shared with
# `virtlab check --host`: after every decoding testinfra and ssh apply, nothing can become an
# ssh option, a testinfra URL option or a command.


def from_specs(specs: list[str]) -> list[HostTarget]:
    """Parse ``--hosts`` specs; duplicates are dropped, order kept."""
    out: dict[str, HostTarget] = {}
    for raw in specs:
        spec = raw.strip()
        if not spec:
            continue
        if not spec.startswith("ssh://"):
            raise TargetError(f"bad host spec {spec!r}: {SPEC_HELP}; "
                              "for other connections use --inventory FILE")
        try:
            dest = parse_ssh_spec(spec, need_user=True)
        except UnsafeHost as e:
            raise TargetError(str(e)) from None
        assert dest.user
        user, host, port = dest.user, dest.host, dest.port
        out.setdefault(spec, HostTarget(host=spec, spec=spec, learner=user,
                                        ssh_user=user, ssh_host=host, ssh_port=port))
    if not out:
        raise TargetError(f"no host given; {SPEC_HELP}")
    return list(out.values())


def _ensure_ansible_on_path() -> None:
    # ansible-inventory is a console script of ansible-core, installed next to this Python
    # (a venv that was not activated has it off PATH).
    if shutil.which("ansible-inventory"):
        return
    bindir = os.path.dirname(sys.executable)
    if os.path.exists(os.path.join(bindir, "ansible-inventory")):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        return
    raise TargetError("reading an inventory needs ansible-core (ansible-inventory not found): "
                      "pip install 'virtlab[grade]'")


def from_inventory(path: str) -> list[HostTarget]:
    """Every host of an Ansible inventory (INI or YAML)."""
    p = Path(path)
    if not p.is_file():
        raise TargetError(f"cannot read inventory {path}: no such file")
    _ensure_ansible_on_path()
    from testinfra.utils.ansible_runner import AnsibleRunner

    inv = str(p.resolve())
    runner = AnsibleRunner(inv)
    try:
        names = runner.get_hosts("all")
    except Exception as e:  # ansible-inventory failed, or parsed nothing
        msg = str(e).strip().splitlines()
        raise TargetError(f"cannot read inventory {path}: {msg[-1] if msg else type(e).__name__}"
                          ) from None
    if not names:
        raise TargetError(f"inventory {path} lists no host")
    out = []
    for name in names:
        hv = runner.get_variables(name)
        login = str(hv.get("ansible_user") or "")
        learner = str(hv.get("virtlab_learner") or login)
        if not learner:
            raise TargetError(f"inventory {path}: host {name!r} has neither virtlab_learner "
                              "nor ansible_user: who is the learner?")
        email = str(hv.get("email") or hv.get("virtlab_email") or "")
        try:
            dest = check_inventory_host(name, hv, path)
            check_inventory_text(name, "virtlab_learner", learner, path)
            check_inventory_text(name, "email", email, path)
        except UnsafeHost as e:
            raise TargetError(str(e)) from None
        if learner.startswith("-") or (not login and not valid_user(learner)):
            # without ansible_user, the learner is the SSH user of the libvirt connection
            raise TargetError(f"inventory {path}: host {name!r}: learner {learner!r} refused "
                              "(not a user name) / apprenant refusé (pas un nom d'utilisateur)")
        ssh_host, port_n = dest.host, dest.port
        out.append(HostTarget(
            # the path quoted: a '#', '&' or '%' in it must not end or add URL options
            host=name, spec=f"ansible://{name}?ansible_inventory={quote(inv, safe='/')}",
            learner=learner,
            email=email,
            ssh_user=login or learner, ssh_host=ssh_host,
            ssh_port=port_n))
    return out
