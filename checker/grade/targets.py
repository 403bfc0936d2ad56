"""The class to grade: learner hosts from ``--hosts`` specs or an Ansible inventory.

A :class:`HostTarget` names one learner machine: the testinfra spec ``check()`` connects to,
the learner whose work is judged, the identifiers the LMS export needs (username, email), and
the SSH destination the libvirt URI is built from.

    >>> from_specs(["ssh://alice@pc12:2222"])[0].learner
    'alice'

An inventory is what Ansible reads: a file (INI, YAML) or a directory (several files,
``group_vars/``, ``host_vars/``), loaded by ansible-core itself (``ansible-inventory -i INV
--list [--limit PATTERN]``, so variables, groups and patterns mean what they mean to Ansible);
each host is then graded as ``ansible://NAME?ansible_inventory=INV``. Host variables used:

- ``virtlab_learner`` (else ``ansible_user``): the learner;
- ``email`` (or ``virtlab_email``), ``virtlab_username``, ``virtlab_idnumber``: the learner's
  identity in Moodle, for the CSV export;
- ``ansible_host``, ``ansible_port``, ``ansible_user``, ``ansible_ssh_private_key_file``,
  ``ansible_ssh_common_args`` (and ``ansible_ssh_extra_args``): the SSH destination and
  options, for testinfra's connection and libvirt's ``qemu+ssh`` one alike::

    [class]
    pc01 ansible_host=10.0.0.11 ansible_user=alice email=alice@example.org
    pc02 ansible_host=10.0.0.12 ansible_user=etu virtlab_learner=bob

    [class:vars]
    ansible_ssh_private_key_file=~/.ssh/id_class
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from checker.hostspec import (
    UnsafeHost,
    check_inventory_host,
    check_inventory_text,
    parse_ssh_spec,
    valid_user,
)
from checker.i18n import LANGS, Text, message


class TargetError(ValueError):
    """Bad ``--hosts`` spec or unusable inventory; the message (:attr:`text`, both languages;
    ``str()`` is the English) says what and how to fix it."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.en)
        self.text = text

    @classmethod
    def refused(cls, e: UnsafeHost | Text) -> TargetError:
        """A value refused as unsafe (:mod:`checker.hostspec`), in the reader's language (as
        ``virtlab check --host`` shows it)."""
        return cls(e if isinstance(e, Text) else Text(e.fr, e.en))


M_BAD_SPEC = message("targets.bad-spec",
                     fr="spécification d'hôte invalide {spec!r} : {help} ; pour d'autres "
                        "connexions, utilisez --inventory FILE",
                     en="bad host spec {spec!r}: {help}; for other connections use "
                        "--inventory FILE")
SPEC_HELP_TEXT = message("targets.spec-help",
                         fr="ssh://utilisateur@hôte[:port] attendu (l'utilisateur SSH est "
                            "l'apprenant)",
                         en="expected ssh://user@host[:port] (the SSH user is the learner)")
M_NO_HOST = message("targets.no-host", fr="aucun hôte donné ; {help}", en="no host given; {help}")
M_NO_ANSIBLE = message("targets.no-ansible",
                       fr="lire un inventaire demande ansible-core (ansible-inventory absent) : "
                          "pip install 'virtlab[grade]'",
                       en="reading an inventory needs ansible-core (ansible-inventory not "
                          "found): pip install 'virtlab[grade]'")
M_NO_FILE = message("targets.inventory-missing",
                    fr="impossible de lire l'inventaire {path} : fichier ou dossier introuvable "
                       "(no such file or directory)",
                    en="cannot read inventory {path}: no such file or directory")
M_INV_TIMEOUT = message("targets.inventory-timeout",
                        fr="impossible de lire l'inventaire {path} : ansible-inventory n'a pas "
                           "répondu en {seconds} s",
                        en="cannot read inventory {path}: ansible-inventory gave no answer "
                           "within {seconds} s")
M_INV_ERROR = message("targets.inventory-error",
                      fr="impossible de lire l'inventaire {path} : {why}",
                      en="cannot read inventory {path}: {why}")
M_INV_EXIT = message("targets.inventory-exit", fr="code de sortie {code}", en="exit code {code}")
M_INV_NO_JSON = message("targets.inventory-no-json",
                        fr="impossible de lire l'inventaire {path} : ansible-inventory n'a pas "
                           "écrit de JSON",
                        en="cannot read inventory {path}: ansible-inventory printed no JSON")
M_SPLIT = message("targets.ssh-args",
                  fr="inventaire {path} : hôte {name!r} : {var} ne se découpe pas en arguments "
                     "ssh ({error})",
                  en="inventory {path}: host {name!r}: {var} cannot be split into ssh arguments "
                     "({error})")
M_NO_MATCH = message("targets.no-match",
                     fr="inventaire {path} : aucun hôte ne correspond à --limit {limit!r}",
                     en="inventory {path}: no host matches --limit {limit!r}")
M_EMPTY = message("targets.empty", fr="l'inventaire {path} ne liste aucun hôte",
                  en="inventory {path} lists no host")
M_WHO = message("targets.no-learner",
                fr="inventaire {path} : l'hôte {name!r} n'a ni virtlab_learner ni ansible_user : "
                   "qui est l'apprenant ?",
                en="inventory {path}: host {name!r} has neither virtlab_learner nor "
                   "ansible_user: who is the learner?")
M_LEARNER = message("targets.learner-refused",
                    fr="inventaire {path} : hôte {name!r} : apprenant {learner!r} refusé (pas un "
                       "nom d'utilisateur)",
                    en="inventory {path}: host {name!r}: learner {learner!r} refused (not a "
                       "user name)")


@dataclass(frozen=True)
class HostTarget:
    host: str  # the key of this learner in the gradebook: the spec, or the inventory name
    spec: str  # the testinfra host spec given to check()
    learner: str
    email: str = ""
    ssh_user: str = ""
    ssh_host: str = ""
    ssh_port: int | None = None
    username: str = ""  # the learner's Moodle username (virtlab_username), for the CSV
    idnumber: str = ""  # the learner's Moodle ID number (virtlab_idnumber)
    # the instructor's own ssh options for this host (ansible_ssh_private_key_file,
    # ansible_ssh_common_args, ansible_ssh_extra_args), given to every ssh of the run
    ssh_args: tuple[str, ...] = ()
    # the inventory names the ssh login (ansible_user): testinfra's connection then logs in
    # as ssh_user; without it testinfra names none (ssh's own default), and ssh_user is the
    # learner, the login of libvirt's connection only. (ssh:// specs always name the user.)
    inventory_login: bool = False

    def ssh_login_known(self) -> bool:
        """testinfra's connection to this host logs in as :attr:`ssh_user`.

        >>> HostTarget("h", "ssh://a@h", "a", ssh_user="a", ssh_host="h").ssh_login_known()
        True
        >>> HostTarget("pc1", "ansible://pc1", "a", ssh_user="a", ssh_host="pc1"
        ...            ).ssh_login_known()
        False
        """
        return self.spec.startswith("ssh://") or self.inventory_login

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HostTarget:
        kw: dict[str, Any] = {k: d.get(k) for k in cls.__dataclass_fields__ if k in d}
        if "ssh_args" in kw:
            kw["ssh_args"] = tuple(kw["ssh_args"] or ())
        return cls(**kw)

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
            raise TargetError(Text(*(M_BAD_SPEC.get(lang).format(spec=spec,
                                                                   help=SPEC_HELP_TEXT.get(lang))
                                     for lang in LANGS)))
        try:
            dest = parse_ssh_spec(spec, need_user=True)
        except UnsafeHost as e:
            raise TargetError.refused(e) from None
        assert dest.user
        user, host, port = dest.user, dest.host, dest.port
        out.setdefault(spec, HostTarget(host=spec, spec=spec, learner=user,
                                        ssh_user=user, ssh_host=host, ssh_port=port))
    if not out:
        raise TargetError(Text(*(M_NO_HOST.get(lang).format(help=SPEC_HELP_TEXT.get(lang))
                                 for lang in LANGS)))
    return list(out.values())


def ensure_ansible_on_path() -> None:
    # ansible-inventory is a console script of ansible-core, installed next to this Python
    # (a venv that was not activated has it off PATH).
    if shutil.which("ansible-inventory"):
        return
    bindir = os.path.dirname(sys.executable)
    if os.path.exists(os.path.join(bindir, "ansible-inventory")):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        return
    raise TargetError(M_NO_ANSIBLE)


INVENTORY_TIMEOUT = 120  # s: a dynamic inventory script may query a service


def load_inventory(path: str, limit: str | None = None) -> dict[str, dict[str, Any]]:
    """{host: its variables} of an Ansible inventory (file or directory), in Ansible's order,
    as ansible-core resolves them (group_vars, host_vars, children); ``limit`` is an Ansible
    host pattern (``class1:!pc03``, ``pc0*``, ``~pc0[1-3]``)."""
    p = Path(path)
    if not p.exists():
        raise TargetError(M_NO_FILE.format(path=path))
    ensure_ansible_on_path()
    cmd = ["ansible-inventory", "-i", str(p.resolve()), "--list"]
    if limit:
        cmd += ["--limit", limit]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_INVENTORY_UNPARSED_FAILED="1",
               ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="1" if p.is_file() else "0")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=INVENTORY_TIMEOUT,
                           stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        raise TargetError(M_INV_TIMEOUT.format(path=path, seconds=INVENTORY_TIMEOUT)) from None
    if r.returncode != 0:
        lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip()]
        why = next((ln for ln in lines if "ERROR" in ln), lines[-1] if lines else "")
        reason = Text(why, why) if why else M_INV_EXIT.format(code=r.returncode)
        raise TargetError(Text(*(M_INV_ERROR.get(lang).format(path=path, why=reason.get(lang))
                                 for lang in LANGS)))
    try:
        data = json.loads(r.stdout)
    except ValueError:
        raise TargetError(M_INV_NO_JSON.format(path=path)) from None
    hostvars = data.get("_meta", {}).get("hostvars", {})
    order: list[str] = []

    def walk(group: str, seen: set[str]) -> None:
        if group in seen:
            return
        seen.add(group)
        g = data.get(group) or {}
        for h in g.get("hosts", []):
            if h not in order:
                order.append(h)
        for child in g.get("children", []):
            walk(child, seen)

    walk("all", set())
    for h in hostvars:  # a host only in _meta (never in a group): still a host
        if h not in order:
            order.append(h)
    return {h: dict(hostvars.get(h) or {}) for h in order}


def _ssh_args(name: str, path: str, hv: dict[str, Any]) -> tuple[str, ...]:
    """The instructor's ssh options for one host, as ssh arguments (key first)."""
    args: list[str] = []
    key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
    if key:
        args += ["-i", str(Path(os.path.expanduser(str(key))).resolve())]
    for var in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        value = hv.get(var)
        if not value:
            continue
        try:
            args += shlex.split(str(value))
        except ValueError as e:
            raise TargetError(M_SPLIT.format(path=path, name=name, var=var, error=e)) from None
    return tuple(args)


def from_inventory(path: str, limit: str | None = None) -> list[HostTarget]:
    """Every host of an Ansible inventory (file or directory), or those ``limit`` selects."""
    hosts = load_inventory(path, limit)
    inv = str(Path(path).resolve())
    if not hosts:
        if limit:
            raise TargetError(M_NO_MATCH.format(path=path, limit=limit))
        raise TargetError(M_EMPTY.format(path=path))
    out = []
    for name, hv in hosts.items():
        login = str(hv.get("ansible_user") or "")
        learner = str(hv.get("virtlab_learner") or login)
        if not learner:
            raise TargetError(M_WHO.format(path=path, name=name))
        email = str(hv.get("email") or hv.get("virtlab_email") or "")
        try:
            dest = check_inventory_host(name, hv, path)
            check_inventory_text(name, "virtlab_learner", learner, path)
            check_inventory_text(name, "email", email, path)
        except UnsafeHost as e:
            raise TargetError.refused(e) from None
        if learner.startswith("-") or (not login and not valid_user(learner)):
            # without ansible_user, the learner is the SSH user of the libvirt connection
            raise TargetError.refused(M_LEARNER.format(path=path, name=name, learner=learner))
        ssh_host, port_n = dest.host, dest.port
        out.append(HostTarget(
            # the path quoted: a '#', '&' or '%' in it must not end or add URL options
            host=name, spec=f"ansible://{name}?ansible_inventory={quote(inv, safe='/')}",
            learner=learner,
            email=email,
            ssh_user=login or learner, inventory_login=bool(login), ssh_host=ssh_host,
            ssh_port=port_n, username=str(hv.get("virtlab_username") or ""),
            idnumber=str(hv.get("virtlab_idnumber") or ""),
            ssh_args=_ssh_args(name, path, hv)))
    return out
