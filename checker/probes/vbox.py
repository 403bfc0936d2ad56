"""VirtualBox facts, read through ``VBoxManage`` run as the learner.

VirtualBox registers VMs per user (``~/.config/VirtualBox/VirtualBox.xml``), so every
command runs as the learner (:class:`checker.probes.learner.Learner`), bounded by
``timeout`` because a stuck ``VBoxSVC`` makes ``VBoxManage`` hang for ever.

The parsers are pure functions written for what ``VBoxManage`` really prints (its
``VBoxManageInfo.cpp``), checked against outputs recorded from the real VBoxManage 7.2
(``tests/fixtures/vbox/recorded/``):

- ``showvminfo --machinereadable``: one ``key=value`` per line; string values are quoted,
  and only ``"`` and ``\\`` inside them are escaped with a backslash (a newline is NOT
  escaped: a multi-line description runs over several lines); numbers are unquoted
  (``memory=2048``); storage attachment keys are quoted (``"SATA-0-0"="/x/disk.vdi"``);
  some keys hold spaces in older releases (``BIOS NVRAM File="…"``); a few human-readable
  lines come in the middle (7.2: `` rec_screen0``; 7.0 also ``Encryption:     disabled``),
  kept as ``stray``. ``ostype`` holds the OS type's *description* (``Debian (64-bit)``)
  when VirtualBox knows the type, else its id (``Debian_64``). Snapshot names and
  descriptions and the adapters' network names (``intnet2``, ``hostonlyadapter2``…) are
  printed WITHOUT escaping.
- Without ``/dev/vboxdrv``, ``/usr/bin/VBoxManage`` (a shell script, ``VBox.sh``) first
  prints a five-line ``WARNING: The character device /dev/vboxdrv does not exist.`` on
  STDOUT: every parser here skips it as stray lines.
- ``snapshot VM list --machinereadable``: ``SnapshotName="…"``, ``SnapshotUUID="…"``, then
  ``SnapshotName-1="…"`` for the first child, ``-1-1`` for its child…; names are printed
  WITHOUT escaping. With no snapshot it prints "This machine does not have any
  snapshots" on stdout and exits 1.
- ``list vms``: ``"name" {uuid}`` per VM, the name not escaped (it may hold quotes and
  even newlines).
- an unknown VM: ``VBoxManage: error: Could not find a registered machine named '…'``
  (``VBOX_E_OBJECT_NOT_FOUND``) on stderr, exit code 1.

>>> parse_machinereadable('name="a \\\\"b\\\\""\\nmemory=1024\\n').values
{'name': 'a "b"', 'memory': 1024}
>>> parse_version("7.0.14r161095\\n").at_least(7, 0)
True
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from checker.i18n import Text, message
from checker.markup import literal

# --- what this probe says (checker.i18n: declared once, in both languages) ---------------

CANNOT_RUN = message("vbox.cannot-run",
                     "Impossible d'exécuter VBoxManage en tant que {user} : {error}",
                     "Cannot run VBoxManage as {user}: {error}")
MISSING = message("vbox.missing",
                  "VBoxManage est introuvable : VirtualBox n'est pas installé (ou pas dans le "
                  "PATH de {user}). Installez-le d'abord (objectif vbox-installed : sudo apt "
                  "install virtualbox-7.2).",
                  "VBoxManage not found: VirtualBox is not installed (or not on {user}'s PATH). "
                  "Install it first (objective vbox-installed: sudo apt install virtualbox-7.2).")
TIMEOUT = message("vbox.timeout",
                  "VBoxManage {args} n'a pas répondu en {seconds} s : le service VBoxSVC de "
                  "{user} est sans doute bloqué. Fermez VirtualBox, vérifiez avec « pgrep -u "
                  "$USER -a VBoxSVC », arrêtez ce processus puis relancez « VBoxManage list vms ».",
                  "VBoxManage {args} did not answer within {seconds} s: {user}'s VBoxSVC service "
                  "is probably stuck. Close VirtualBox, look with 'pgrep -u $USER -a VBoxSVC', "
                  "stop that process, then run 'VBoxManage list vms' again.")
NO_USER = message("vbox.no-user", "L'utilisateur {user} n'existe pas sur cet hôte (--user).",
                  "User {user} does not exist on this host (--user).")
FAILED = message("vbox.failed",
                 "« {command} » a échoué (code {rc}) : {said}. Lancez la commande vous-même ; si "
                 "le service VirtualBox ne démarre pas, lisez ~/.config/VirtualBox/VBoxSVC.log.",
                 "'{command}' failed (exit {rc}): {said}. Run it yourself; if the VirtualBox "
                 "service does not start, read ~/.config/VirtualBox/VBoxSVC.log.")
NO_MESSAGE = message("vbox.no-message", "aucun message", "no message")
NO_VERSION = message("vbox.no-version",
                     "« VBoxManage --version » n'a pas affiché de version lisible : {output}. "
                     "Réinstallez VirtualBox.",
                     "'VBoxManage --version' printed no readable version: {output}. "
                     "Reinstall VirtualBox.")
NOT_MACHINE_READABLE = message(
    "vbox.not-machine-readable",
    "« VBoxManage showvminfo {name} --machinereadable » n'a pas affiché son format lisible par "
    "machine (première ligne : {first}). Lancez-la vous-même ; une installation de VirtualBox "
    "incomplète ou modifiée en est souvent la cause.",
    "'VBoxManage showvminfo {name} --machinereadable' did not print its machine-readable format "
    "(first line: {first}). Run it yourself; an incomplete or altered VirtualBox installation "
    "is the usual cause.")
SNAPSHOTS_UNREADABLE = message(
    "vbox.snapshots-unreadable",
    "« VBoxManage snapshot … list --machinereadable » a affiché une sortie illisible. Lancez-la "
    "vous-même.",
    "'VBoxManage snapshot … list --machinereadable' printed unreadable output. Run it yourself.")

DEFAULT_TIMEOUT_S = 10
TIMEOUT_ENV = "VIRTLAB_VBOX_TIMEOUT"  # seconds; tests shorten it

# --- showvminfo --machinereadable -----------------------------------------------------

_INT_RE = re.compile(r"-?\d+")
_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_][^=\"\n]*")


@dataclass(frozen=True)
class MachineReadable:
    """The parsed ``key=value`` pairs: ``values`` (last one wins), every pair in order in
    ``items`` (NAT settings repeat per adapter), and the lines that were not pairs."""

    values: dict[str, str | int]
    items: tuple[tuple[str, str | int], ...] = ()
    stray: tuple[str, ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def int(self, key: str) -> int | None:
        v = self.values.get(key)
        if isinstance(v, int):
            return v
        if isinstance(v, str) and _INT_RE.fullmatch(v.strip()):
            return int(v)
        return None


def _scan_quoted(lines: list[str], i: int, start: int) -> tuple[str, int, bool]:
    """Read a quoted string starting at ``lines[i][start]`` (just after the opening quote).

    Returns (text, index of the last line used, closed). ``\\"`` and ``\\\\`` are escapes;
    a backslash before anything else is kept (VBoxManage prints some values, snapshot
    names for one, without escaping). A quote closes the string only at the end of a
    line: an unescaped quote followed by more text is part of the value (again, the
    unescaped outputs). Without a closing quote the value goes on on the next line.
    """
    out: list[str] = []
    line = lines[i]
    j = start
    while True:
        if j >= len(line):
            if i + 1 >= len(lines):
                return "".join(out), i, False
            out.append("\n")
            i += 1
            line = lines[i]
            j = 0
            continue
        c = line[j]
        if c == "\\" and j + 1 < len(line) and line[j + 1] in "\"\\":
            out.append(line[j + 1])
            j += 2
            continue
        if c == '"' and j == len(line) - 1:
            return "".join(out), i, True
        out.append(c)
        j += 1


# Values VBoxManage prints with a bare %ls/%s, without escaping (VBoxManageInfo.cpp):
# snapshot names and descriptions, NAT rules, attachment details of the adapters…
RAW_KEY_RE = re.compile(
    r"Snapshot(?:Name|Description)(?:-\d+)*|CurrentSnapshotName|VMStateFile|Forwarding\(\d+\)"
    r"|natnet\d+|bridgeadapter\d+|intnet\d+|hostonlyadapter\d+|nat-network\d+"
    r"|hostonly-network\d+|generic\d+|cloud-network\d+|uartmode\d+|lptmode\d+")


def key_at(line: str) -> tuple[str | None, int]:
    """(key, index of the value) when ``line`` starts a ``key=value`` pair, else (None, 0)."""
    if line.startswith('"'):
        k, end, closed = _scan_key(line)
        if closed and end < len(line) and line[end] == "=":
            return k, end + 1
        return None, 0
    m = _BARE_KEY_RE.match(line)
    if m and m.end() < len(line) and line[m.end()] == "=":
        return m.group(0), m.end() + 1
    return None, 0


def parse_machinereadable(text: str) -> MachineReadable:
    """Parse ``showvminfo --machinereadable`` (or ``snapshot list --machinereadable``).

    Escaped values (the rule of ``outputMachineReadableString``) are read with their
    escapes; the few values VBoxManage prints raw (:data:`RAW_KEY_RE`) are taken as they
    are, up to the last quote, and go on over the next lines until a line that starts a
    new pair.
    """
    if "\r\n" in text and text.count("\r\n") == text.count("\n"):
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    values: dict[str, str | int] = {}
    items: list[tuple[str, str | int]] = []
    stray: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        key, rest_at = key_at(line)
        if key is None:
            stray.append(line)
            i += 1
            continue
        v: str | int
        if rest_at < len(line) and line[rest_at] == '"' and RAW_KEY_RE.fullmatch(key):
            parts = [line[rest_at + 1:]]
            i += 1
            while i < len(lines) and key_at(lines[i])[0] is None:
                parts.append(lines[i])
                i += 1
            raw = "\n".join(parts)
            v = raw[:-1] if raw.endswith('"') else raw
        elif rest_at < len(line) and line[rest_at] == '"':
            value, last, closed = _scan_quoted(lines, i, rest_at + 1)
            if not closed:
                # An unterminated quote: keep only this line's text, the rest is read anew.
                value, last = line[rest_at + 1:], i
            v = value
            i = last + 1
        else:
            raw = line[rest_at:]
            v = int(raw) if _INT_RE.fullmatch(raw) else raw
            i += 1
        values[key] = v
        items.append((key, v))
    return MachineReadable(values=values, items=tuple(items), stray=tuple(stray))


def _scan_key(line: str) -> tuple[str, int, bool]:
    """A quoted key on one line: (key, index after the closing quote, closed)."""
    out: list[str] = []
    j = 1
    while j < len(line):
        c = line[j]
        if c == "\\" and j + 1 < len(line) and line[j + 1] in "\"\\":
            out.append(line[j + 1])
            j += 2
            continue
        if c == '"':
            return "".join(out), j + 1, True
        out.append(c)
        j += 1
    return "".join(out), j, False


# --- list vms ---------------------------------------------------------------------------

_LIST_LINE_RE = re.compile(r'"(.*)" \{([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
                           r'[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}', re.S)
_LIST_MAX_LINES = 1024


@dataclass(frozen=True)
class VmRef:
    name: str
    uuid: str


def parse_list_vms(text: str) -> tuple[list[VmRef], list[str]]:
    """``VBoxManage list vms`` -> (VMs, stray lines). A name may run over several lines."""
    vms: list[VmRef] = []
    stray: list[str] = []
    buf: list[str] = []
    for line in text.split("\n"):
        if not buf and not line.startswith('"'):
            if line.strip():
                stray.append(line)
            continue
        buf.append(line)
        m = _LIST_LINE_RE.fullmatch("\n".join(buf))
        if m:
            vms.append(VmRef(name=m.group(1), uuid=m.group(2).lower()))
            buf = []
        elif len(buf) >= _LIST_MAX_LINES:
            stray.append(buf.pop(0))
    stray.extend(x for x in buf if x.strip())
    return vms, stray


# --- snapshots ------------------------------------------------------------------------

_SNAP_KEY_RE = re.compile(r"SnapshotName((?:-\d+)*)")


@dataclass(frozen=True)
class Snapshot:
    name: str
    uuid: str
    node: str  # "" for the root, "-1", "-1-2"… the path in the tree
    description: str = ""

    @property
    def depth(self) -> int:
        return self.node.count("-")


NO_SNAPSHOTS_RE = re.compile(r"does not have any snapshots", re.I)


def snapshots_from(info: MachineReadable) -> list[Snapshot]:
    out = []
    for key, value in info.items:
        m = _SNAP_KEY_RE.fullmatch(key)
        if not m:
            continue
        node = m.group(1)
        out.append(Snapshot(name=str(value), uuid=str(info.get(f"SnapshotUUID{node}", "")),
                            node=node,
                            description=str(info.get(f"SnapshotDescription{node}", ""))))
    return out


# --- version --------------------------------------------------------------------------

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)([^\s]*)")


@dataclass(frozen=True)
class VBoxVersion:
    major: int
    minor: int
    patch: int
    raw: str

    def at_least(self, major: int, minor: int = 0) -> bool:
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def parse_version(text: str) -> VBoxVersion | None:
    """``VBoxManage --version`` prints e.g. ``7.0.14r161095`` (Oracle) or
    ``7.2.22_Debianr175245`` (Debian's package); without /dev/vboxdrv, a WARNING of
    several lines comes first on the same stdout (recorded from 7.2)."""
    for line in text.splitlines():
        m = _VERSION_RE.match(line.strip())
        if m:
            return VBoxVersion(int(m.group(1)), int(m.group(2)), int(m.group(3)), line.strip())
    return None


# --- the VM ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StorageController:
    index: int
    name: str
    type: str
    ports: int


@dataclass(frozen=True)
class Attachment:
    controller: str
    port: int
    device: int
    medium: str  # a path, "none" (empty slot) or "emptydrive" (empty DVD drive)
    image_uuid: str
    is_dvd: bool

    @property
    def is_empty(self) -> bool:
        return self.medium in ("none", "emptydrive", "")

    @property
    def extension(self) -> str:
        base = self.medium.replace("\\", "/").rsplit("/", 1)[-1]
        return base.rsplit(".", 1)[-1].lower() if "." in base else ""

    @property
    def is_hard_disk(self) -> bool:
        return not self.is_empty and not self.is_dvd and self.extension not in ("iso", "img", "dmg")


@dataclass(frozen=True)
class Nic:
    index: int  # 1-based: adapter 1 is nic1
    # nat | bridged | intnet | hostonly | natnetwork | hostonlynetwork | generic | null | none
    attachment: str
    network: str  # the intnet/host-only adapter/bridge/NAT network name, when there is one
    adapter_type: str = ""
    cable_connected: bool = True

    @property
    def enabled(self) -> bool:
        return self.attachment != "none"


_NIC_DETAIL_KEYS = {"bridged": "bridgeadapter", "intnet": "intnet", "hostonly": "hostonlyadapter",
                    "natnetwork": "nat-network", "hostonlynetwork": "hostonly-network",
                    "generic": "generic", "nat": "natnet"}


@dataclass(frozen=True)
class VBoxVM:
    name: str
    uuid: str
    ostype: str
    memory_mib: int | None
    cpus: int | None
    state: str
    description: str
    controllers: tuple[StorageController, ...]
    attachments: tuple[Attachment, ...]
    nics: tuple[Nic, ...]
    snapshots: tuple[Snapshot, ...]
    stray: tuple[str, ...] = field(default=(), repr=False)

    def nic(self, index: int) -> Nic | None:
        for n in self.nics:
            if n.index == index:
                return n
        return None

    @property
    def disks(self) -> tuple[Attachment, ...]:
        return tuple(a for a in self.attachments if a.is_hard_disk)


def vm_from(info: MachineReadable) -> VBoxVM:
    """Build a :class:`VBoxVM` from parsed ``showvminfo --machinereadable``."""
    ctls = []
    i = 0
    while f"storagecontrollername{i}" in info.values:
        ctls.append(StorageController(
            index=i, name=str(info.get(f"storagecontrollername{i}")),
            type=str(info.get(f"storagecontrollertype{i}", "")),
            ports=info.int(f"storagecontrollerportcount{i}") or 0))
        i += 1
    atts = []
    # Attachment keys are "<controller>-<port>-<device>"; controller names may hold dashes
    # (a key always ends in exactly two numbers), so match the names the controllers declared.
    for ctl in ctls:
        pat = re.compile(re.escape(ctl.name) + r"-(\d+)-(\d+)")
        for key, value in info.items:
            m = pat.fullmatch(key)
            if not m:
                continue
            port, dev = int(m.group(1)), int(m.group(2))
            suffix = f"-{port}-{dev}"
            is_dvd = (f"{ctl.name}-IsEjected{suffix}" in info.values
                      or f"{ctl.name}-tempeject{suffix}" in info.values
                      or value == "emptydrive")
            atts.append(Attachment(
                controller=ctl.name, port=port, device=dev, medium=str(value),
                image_uuid=str(info.get(f"{ctl.name}-ImageUUID{suffix}", "")), is_dvd=is_dvd))
    nics = []
    for n in range(1, 37):
        att = info.get(f"nic{n}")
        if att is None:
            continue
        att = str(att)
        detail_key = _NIC_DETAIL_KEYS.get(att)
        nics.append(Nic(index=n, attachment=att,
                        network=str(info.get(f"{detail_key}{n}", "")) if detail_key else "",
                        adapter_type=str(info.get(f"nictype{n}", "")),
                        cable_connected=str(info.get(f"cableconnected{n}", "on")) != "off"))
    return VBoxVM(
        name=str(info.get("name", "")), uuid=str(info.get("UUID", "")),
        ostype=str(info.get("ostype", "")), memory_mib=info.int("memory"),
        cpus=info.int("cpus"), state=str(info.get("VMState", "")),
        description=str(info.get("description", "")), controllers=tuple(ctls),
        attachments=tuple(atts), nics=tuple(nics), snapshots=tuple(snapshots_from(info)),
        stray=info.stray)


DEBIAN_64_ID_RE = re.compile(r"Debian\d*_64")
DEBIAN_64_DESC_RE = re.compile(r"Debian\b[^()]*\(64-bit\)", re.I)


def is_debian_64(ostype: str) -> bool:
    """``Debian_64``/``Debian12_64`` (ids) or ``Debian (64-bit)``/``Debian 12 … (64-bit)``
    (the descriptions ``showvminfo`` prints for known types)."""
    s = ostype.strip()
    return bool(DEBIAN_64_ID_RE.fullmatch(s) or DEBIAN_64_DESC_RE.fullmatch(s))


# --- running VBoxManage as the learner -------------------------------------------------

class VBoxUnavailable(Exception):
    """VBoxManage could not answer; ``message`` says why and how to fix it.

    ``kind``: ``missing`` (not installed), ``timeout``, ``failed`` (non-zero exit),
    ``garbage`` (output not in the expected format), ``learner`` (cannot run as the learner).
    """

    def __init__(self, message: Text, kind: str, detail: str = ""):
        self.message = message
        self.kind = kind
        self.detail = detail
        super().__init__(message.en)


@dataclass(frozen=True)
class CmdResult:
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str


def _tail(text: str, n: int = 3) -> str:
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    return " | ".join(lines[-n:])[:400]


NOT_FOUND_RE = re.compile(r"Could not find a registered machine|VBOX_E_OBJECT_NOT_FOUND")


def timeout_seconds() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        v = float(raw)
        return v if v > 0 else DEFAULT_TIMEOUT_S
    except ValueError:
        return DEFAULT_TIMEOUT_S


def version_prefetch() -> tuple[str, ...]:
    """The ``PREFETCH`` entry (checker.engine.lab_prefetch) of :meth:`VBox.version`'s
    command as the learner connected over SSH runs it: its stderr is read, so the prefetch
    exchange brings it too."""
    from checker.probes.host import WithStderr

    return (WithStderr("timeout -k 2 %s VBoxManage --version"), f"{timeout_seconds():g}")


class VBox:
    """VirtualBox facts for one learner, memoised for one run.

    >>> vb = VBox(learner)                       # doctest: +SKIP
    >>> vb.version(), vb.vm("debian-vbox").nics  # doctest: +SKIP
    """

    def __init__(self, learner: Any, timeout: float | None = None):
        self.learner = learner
        self.timeout = timeout or timeout_seconds()
        self._results: dict[tuple[str, ...], CmdResult] = {}
        self._broken: VBoxUnavailable | None = None  # missing or hanging: stop asking

    def run(self, *args: str) -> CmdResult:
        """``timeout -k 2 T VBoxManage ARGS`` as the learner; raises VBoxUnavailable when
        VBoxManage is missing or hangs (and for every later call of this run)."""
        if self._broken is not None:
            raise self._broken
        if args in self._results:
            return self._results[args]
        t = f"{self.timeout:g}"
        try:
            r = self.learner.run("timeout", "-k", "2", t, "VBoxManage", *args)
        except Exception as e:  # the backend itself failed (ssh lost…)  # noqa: BLE001
            raise VBoxUnavailable(CANNOT_RUN.format(user=literal(self.learner.name),
                                                    error=literal(str(e))),
                                  "learner") from None
        res = CmdResult(argv=("VBoxManage", *args), rc=r.rc, stdout=r.stdout, stderr=r.stderr)
        err = res.stderr
        if res.rc in (126, 127) and ("VBoxManage" in err or "No such file" in err
                                      or "not found" in err or not err.strip()):
            self._broken = VBoxUnavailable(MISSING.format(user=self.learner.name), "missing",
                                           _tail(err))
            raise self._broken
        if res.rc in (124, 137):
            self._broken = VBoxUnavailable(TIMEOUT.format(
                args=" ".join(args), seconds=t, user=self.learner.name), "timeout")
            raise self._broken
        if res.rc == 1 and "runuser" in err and "does not exist" in err:
            self._broken = VBoxUnavailable(NO_USER.format(user=self.learner.name), "learner")
            raise self._broken
        self._results[args] = res
        return res

    def _failed(self, res: CmdResult) -> VBoxUnavailable:
        said = _tail(res.stderr or res.stdout)
        command = " ".join(res.argv)
        return VBoxUnavailable(Text(
            FAILED.fr.format(command=command, rc=res.rc, said=literal(said) or NO_MESSAGE.fr),
            FAILED.en.format(command=command, rc=res.rc, said=literal(said) or NO_MESSAGE.en)),
            "failed", said)

    def version(self) -> VBoxVersion:
        res = self.run("--version")
        if res.rc != 0:
            raise self._failed(res)
        v = parse_version(res.stdout)
        if v is None:
            raise VBoxUnavailable(NO_VERSION.format(output=literal(repr(res.stdout.strip()[:120]))),
                                  "garbage", res.stdout[:200])
        return v

    def list_vms(self) -> list[VmRef]:
        res = self.run("list", "vms")
        if res.rc != 0:
            raise self._failed(res)
        return parse_list_vms(res.stdout)[0]

    def vm(self, name: str) -> VBoxVM | None:
        """The VM by exact name, or None when no VM of that name is registered."""
        res = self.run("showvminfo", name, "--machinereadable")
        if res.rc != 0:
            if NOT_FOUND_RE.search(res.stderr) or NOT_FOUND_RE.search(res.stdout):
                return None
            raise self._failed(res)
        info = parse_machinereadable(res.stdout)
        if "name" not in info.values:
            first = next((x for x in res.stdout.splitlines() if x.strip()), "")
            raise VBoxUnavailable(NOT_MACHINE_READABLE.format(name=name,
                                                              first=literal(repr(first[:120]))),
                                  "garbage", first[:200])
        return vm_from(info)

    def snapshots(self, name: str) -> list[Snapshot]:
        res = self.run("snapshot", name, "list", "--machinereadable")
        if res.rc != 0:
            if NO_SNAPSHOTS_RE.search(res.stdout) or NO_SNAPSHOTS_RE.search(res.stderr):
                return []
            raise self._failed(res)
        info = parse_machinereadable(res.stdout)
        snaps = snapshots_from(info)
        if not snaps and res.stdout.strip():
            raise VBoxUnavailable(SNAPSHOTS_UNREADABLE, "garbage", res.stdout[:200])
        return snaps


def vbox_for(learner: Any) -> VBox:
    """The VBox probe of this run: one per Learner object (the engine makes one per run),
    kept by the Learner itself; another object standing for a learner gets a new one."""
    from checker.probes.learner import Learner

    return learner.vbox if isinstance(learner, Learner) else VBox(learner)
