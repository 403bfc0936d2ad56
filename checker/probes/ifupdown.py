"""Persistent network declarations of a Debian host: where would ``br0`` come from at boot?

Three ways to declare a bridge that survives a reboot on Debian 12, each read here as a
fact (probes never judge):

- **ifupdown**: ``/etc/network/interfaces`` and the files it pulls in with ``source``
  (shell wildcards) and ``source-directory`` (run-parts names only), e.g.
  ``iface br0 inet dhcp`` + ``bridge_ports eth0`` (needs ``bridge-utils``), brought up at
  boot by an ``auto br0`` (or ``allow-auto``) line;
- **NetworkManager**: keyfiles ``/etc/NetworkManager/system-connections/*.nmconnection``
  with ``[connection] type=bridge`` and ``interface-name=br0``;
- **systemd-networkd**: ``/etc/systemd/network/*.netdev`` with ``[NetDev] Kind=bridge``
  and ``Name=br0``.

Parsers are pure functions of text (tested on hostile inputs, never raise on text);
:func:`read_interfaces` and :func:`bridge_declarations` read through callables or a
testinfra ``host`` so the same code works on ``local://`` and ``ssh://``.

>>> cfg = parse_interfaces("auto br0\\niface br0 inet dhcp\\n  bridge_ports eth0\\n")
>>> cfg.ifaces[0].bridge_ports, "br0" in cfg.auto
(('eth0',), True)
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from checker.probes import list_dir, read_file

INTERFACES = "/etc/network/interfaces"
INTERFACES_D = "/etc/network/interfaces.d"
NM_DIR = "/etc/NetworkManager/system-connections"
NETWORKD_DIR = "/etc/systemd/network"

# run-parts (without --lsbsysinit) only takes names made of these: ifupdown's
# source-directory follows the same rule, so "br0.cfg" in a sourced directory is ignored.
RUN_PARTS_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_DEPTH = 16


@dataclass(frozen=True)
class Iface:
    """One ``iface NAME FAMILY METHOD`` stanza and its option lines."""

    name: str
    family: str
    method: str
    options: tuple[tuple[str, str], ...]
    file: str
    line: int

    def option(self, key: str) -> str | None:
        """The last value of an option; ``bridge_ports`` and ``bridge-ports`` are the same."""
        want = _norm(key)
        found = None
        for k, v in self.options:
            if k == want:
                found = v
        return found

    @property
    def bridge_ports(self) -> tuple[str, ...] | None:
        """The ports of a bridge stanza (``()`` for ``none``), None if not a bridge."""
        v = self.option("bridge-ports")
        if v is None:
            return None
        ports = tuple(v.split())
        return () if ports in ((), ("none",)) else ports


@dataclass(frozen=True)
class InterfacesConfig:
    """What ifupdown would read: every stanza of every file, and what went wrong."""

    ifaces: tuple[Iface, ...] = ()
    auto: frozenset[str] = frozenset()  # auto / allow-auto: brought up at boot
    hotplug: frozenset[str] = frozenset()  # allow-hotplug: brought up when the device appears
    files: tuple[str, ...] = ()  # files read, in order
    includes: tuple[tuple[str, str, str, int], ...] = ()  # (kind, pattern, file, line)
    problems: tuple[str, ...] = ()  # unreadable files, loops, lines not understood

    def iface(self, name: str) -> list[Iface]:
        return [i for i in self.ifaces if i.name == name]

    def bridge(self, name: str) -> Iface | None:
        """The (last) stanza of ``name`` that declares ``bridge_ports``."""
        found = None
        for i in self.ifaces:
            if i.name == name and i.bridge_ports is not None:
                found = i
        return found


def _norm(key: str) -> str:
    # ifupdown exports options as IF_<NAME> with '-' turned into '_': both spellings are one.
    return key.strip().lower().replace("_", "-")


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) after joining backslash continuations and dropping comments.

    A comment is a line whose first non-blank character is ``#`` (ifupdown does not strip
    ``#`` in the middle of a line).
    """
    out: list[tuple[int, str]] = []
    buf = ""
    start = 0
    for n, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        line = raw.replace("\t", " ")
        if not buf:
            start = n
            if line.lstrip().startswith("#"):
                continue
        if line.endswith("\\"):
            buf += line[:-1]
            continue
        buf += line
        if buf.strip():
            out.append((start, buf.strip()))
        buf = ""
    if buf.strip():
        out.append((start, buf.strip()))
    return out


_STANZA_WORDS = ("iface", "mapping", "auto", "source", "source-directory", "source-dir",
                 "rename", "no-auto-down", "no-scripts")


def parse_interfaces(text: str, path: str = INTERFACES) -> InterfacesConfig:
    """Parse one interfaces(5) file (without following its ``source`` lines)."""
    ifaces: list[Iface] = []
    auto: set[str] = set()
    hotplug: set[str] = set()
    includes: list[tuple[str, str, str, int]] = []
    problems: list[str] = []
    cur: dict[str, Any] | None = None  # the open iface stanza
    in_mapping = False

    def close() -> None:
        nonlocal cur
        if cur is not None:
            ifaces.append(Iface(cur["name"], cur["family"], cur["method"],
                                tuple(cur["options"]), path, cur["line"]))
        cur = None

    for n, line in logical_lines(text):
        words = line.split()
        head = words[0]
        rest = words[1:]
        if head == "iface":
            close()
            in_mapping = False
            if len(rest) < 1:
                problems.append(f"{path}:{n}: 'iface' without an interface name")
                continue
            # "iface NAME inet METHOD"; ifupdown also accepts "iface NAME" (inherits defaults)
            cur = {"name": rest[0], "family": rest[1] if len(rest) > 1 else "",
                   "method": rest[2] if len(rest) > 2 else "", "options": [], "line": n}
            continue
        if head in ("auto", "allow-auto") or head.startswith("allow-"):
            close()
            in_mapping = False
            target = auto if head in ("auto", "allow-auto") else (
                hotplug if head == "allow-hotplug" else None)
            if target is not None:
                target.update(rest)
            continue
        if head == "mapping":
            close()
            in_mapping = True
            continue
        if head in ("source", "source-directory", "source-dir"):
            close()
            in_mapping = False
            if not rest:
                problems.append(f"{path}:{n}: '{head}' without a path")
                continue
            kind = "source" if head == "source" else "source-directory"
            for pattern in rest:
                includes.append((kind, pattern, path, n))
            continue
        if head in ("rename", "no-auto-down", "no-scripts"):
            close()
            in_mapping = False
            continue
        if cur is not None:
            value = line[len(head):].strip()
            cur["options"].append((_norm(head), value))
            continue
        if in_mapping:
            continue  # "script", "map" lines of a mapping stanza
        problems.append(f"{path}:{n}: line outside any stanza ignored: {line[:80]!r}")
    close()
    return InterfacesConfig(ifaces=tuple(ifaces), auto=frozenset(auto),
                            hotplug=frozenset(hotplug), files=(path,),
                            includes=tuple(includes), problems=tuple(problems))


def _resolve(pattern: str, including_file: str) -> str:
    # interfaces(5): a relative path is relative to the directory of the file holding it.
    if pattern.startswith("/"):
        return posixpath.normpath(pattern)
    return posixpath.normpath(posixpath.join(posixpath.dirname(including_file), pattern))


def read_interfaces(read: Callable[[str], str | None],
                    listdir: Callable[[str], list[str] | None],
                    path: str = INTERFACES) -> InterfacesConfig:
    """Read ``path`` and every file it sources, as ifupdown does.

    ``read(path)`` returns the text or None (missing/unreadable); ``listdir(dir)`` the names
    in a directory or None. ``source`` patterns are shell wildcards on the file name
    (matches in sorted order); ``source-directory`` takes run-parts names only.
    """
    ifaces: list[Iface] = []
    auto: set[str] = set()
    hotplug: set[str] = set()
    files: list[str] = []
    includes: list[tuple[str, str, str, int]] = []
    problems: list[str] = []
    seen: set[str] = set()

    def expand(kind: str, pattern: str, where: str) -> list[str]:
        full = _resolve(pattern, where)
        if kind == "source-directory":
            names = listdir(full)
            if names is None:
                problems.append(f"{where}: source-directory {pattern}: no such directory")
                return []
            return [posixpath.join(full, x) for x in sorted(names) if RUN_PARTS_NAME.match(x)]
        directory, base = posixpath.split(full)
        if not any(c in full for c in "*?["):
            return [full]
        if any(c in directory for c in "*?["):
            problems.append(f"{where}: source {pattern}: wildcards in directory names are "
                            "not followed by this checker")
            return []
        names = listdir(directory) or []
        # A wildcard that matches nothing is not an error for ifupdown (the shell glob stays).
        return [posixpath.join(directory, x) for x in sorted(names)
                if fnmatch.fnmatchcase(x, base) and not x.startswith(".")]

    def visit(p: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            problems.append(f"{p}: sourced more than {MAX_DEPTH} levels deep (a loop?)")
            return
        if p in seen:
            problems.append(f"{p}: sourced twice (a loop?); read once")
            return
        seen.add(p)
        text = read(p)
        if text is None:
            problems.append(f"{p}: missing or unreadable")
            return
        files.append(p)
        one = parse_interfaces(text, p)
        ifaces.extend(one.ifaces)
        auto.update(one.auto)
        hotplug.update(one.hotplug)
        problems.extend(one.problems)
        includes.extend(one.includes)
        for kind, pattern, where, _line in one.includes:
            for f in expand(kind, pattern, where):
                visit(f, depth + 1)

    visit(path, 0)
    return InterfacesConfig(ifaces=tuple(ifaces), auto=frozenset(auto),
                            hotplug=frozenset(hotplug), files=tuple(files),
                            includes=tuple(includes), problems=tuple(problems))


# --- keyfiles (NetworkManager) and unit files (systemd-networkd) --------------------------

def parse_ini(text: str) -> dict[str, dict[str, str]]:
    """A lenient INI reader for NM keyfiles and systemd unit files: never raises.

    ``[section]`` headers, ``key=value`` lines, comments starting with ``#`` or ``;``,
    systemd's backslash continuations. A repeated key keeps its last value; section and
    key names keep their case (``Kind`` in systemd, ``type`` in NM).
    """
    out: dict[str, dict[str, str]] = {}
    section: dict[str, str] | None = None
    buf = ""
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not buf and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        line = (buf + line).strip()
        buf = ""
        if line.startswith("[") and line.endswith("]"):
            section = out.setdefault(line[1:-1].strip(), {})
            continue
        key, sep, value = line.partition("=")
        if sep and section is not None:
            section[key.strip()] = value.strip()
    return out


def _false(v: str | None) -> bool:
    return (v or "").strip().lower() in ("false", "no", "0", "off")


@dataclass(frozen=True)
class BridgeDeclaration:
    """One place that would create bridge ``name`` at boot."""

    kind: str  # ifupdown | networkmanager | networkd
    file: str
    name: str
    ports: tuple[str, ...] = ()
    at_boot: bool = True  # auto / autoconnect / (networkd: always)
    detail: str = ""


def nm_bridge(text: str, path: str) -> BridgeDeclaration | None:
    """A NetworkManager keyfile's bridge, or None when it is not a bridge connection."""
    ini = parse_ini(text)
    conn = ini.get("connection", {})
    if conn.get("type", "").strip().lower() != "bridge":
        return None
    name = conn.get("interface-name", "").strip()
    return BridgeDeclaration("networkmanager", path, name,
                             at_boot=not _false(conn.get("autoconnect")),
                             detail=f"id={conn.get('id', '')}")


def networkd_bridge(text: str, path: str) -> BridgeDeclaration | None:
    """A systemd-networkd ``.netdev`` declaring a bridge, or None."""
    nd = parse_ini(text).get("NetDev", {})
    if nd.get("Kind", "").strip().lower() != "bridge":
        return None
    return BridgeDeclaration("networkd", path, nd.get("Name", "").strip())


def ifupdown_bridges(cfg: InterfacesConfig) -> list[BridgeDeclaration]:
    out = []
    for i in cfg.ifaces:
        ports = i.bridge_ports
        if ports is None:
            continue
        out.append(BridgeDeclaration("ifupdown", f"{i.file}:{i.line}", i.name, ports,
                                     at_boot=i.name in cfg.auto,
                                     detail=f"iface {i.name} {i.family} {i.method}".strip()))
    return out


def _nm_file(name: str) -> bool:
    # NM's keyfile plugin skips hidden, backup and temporary files.
    return not (name.startswith(".") or name.endswith(("~", ".bak", ".swp", ".tmp", ".nmmeta",
                                                        ".orig", ".rej")))


@dataclass
class Declarations:
    """Every bridge declaration found on a host, and what could not be read."""

    bridges: list[BridgeDeclaration] = field(default_factory=list)
    interfaces: InterfacesConfig | None = None
    unreadable: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: the names in /etc/network/interfaces.d (read or not by ifupdown); None when it is
    #: not a readable folder
    interfaces_d: list[str] | None = None

    def named(self, name: str) -> list[BridgeDeclaration]:
        return [b for b in self.bridges if b.name == name]


def bridge_declarations(host: Any) -> Declarations:
    """Read the three places through a testinfra ``host`` (read-only, arguments quoted)."""

    def read(path: str) -> str | None:
        return read_file(host, path)

    def listdir(path: str) -> list[str] | None:
        return list_dir(host, path)

    out = Declarations()
    cfg = read_interfaces(read, listdir)
    out.interfaces = cfg
    out.bridges += ifupdown_bridges(cfg)
    out.problems += list(cfg.problems)
    out.interfaces_d = listdir(INTERFACES_D)
    for directory, suffix, parse in ((NM_DIR, None, nm_bridge),
                                     (NETWORKD_DIR, ".netdev", networkd_bridge)):
        names = listdir(directory) or []
        for n in sorted(names):
            if (suffix and not n.endswith(suffix)) or (not suffix and not _nm_file(n)):
                continue
            p = posixpath.join(directory, n)
            text = read(p)
            if text is None:
                # NetworkManager keyfiles are root-only (mode 600).
                if host.file(p).is_file:
                    out.unreadable.append(p)
                continue
            b = parse(text, p)
            if b is not None:
                out.bridges.append(b)
    if any(u.startswith(NM_DIR) for u in out.unreadable):
        out.bridges += nmcli_bridges(host)
    return out


def parse_nmcli_terse(text: str) -> list[list[str]]:
    """Lines of ``nmcli -t`` output split on unescaped ``:`` (``\\:`` is a literal colon)."""
    rows = []
    for line in text.splitlines():
        if not line:
            continue
        fields, cur, esc = [], "", False
        for ch in line:
            if esc:
                cur += ch
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == ":":
                fields.append(cur)
                cur = ""
            else:
                cur += ch
        fields.append(cur)
        rows.append(fields)
    return rows


def nmcli_bridges(host: Any) -> list[BridgeDeclaration]:
    """Bridges NetworkManager knows, asked through nmcli when the keyfiles are root-only."""
    if not host.exists("nmcli"):
        return []
    r = host.run("nmcli -t -f UUID,TYPE,AUTOCONNECT connection show")
    if r.rc != 0:
        return []
    out = []
    for row in parse_nmcli_terse(r.stdout):
        if len(row) < 3 or row[1] != "bridge":
            continue
        q = host.run("nmcli -g connection.interface-name connection show uuid %s", row[0])
        name = q.stdout.strip() if q.rc == 0 else ""
        out.append(BridgeDeclaration("networkmanager", f"nmcli uuid {row[0]}", name,
                                     at_boot=not _false(row[2]), detail="read with nmcli"))
    return out


def summarize(decls: Iterable[BridgeDeclaration]) -> list[dict[str, Any]]:
    """JSON-friendly evidence."""
    return [{"kind": d.kind, "file": d.file, "name": d.name, "ports": list(d.ports),
             "at_boot": d.at_boot} for d in decls]
