"""APT sources and keyrings, read through testinfra's ``host.file`` (read-only).

Two source formats, as apt reads them (sources.list(5)):

- one-line ``.list`` files and ``/etc/apt/sources.list``:
  ``deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://… bookworm contrib``;
- deb822 ``.sources`` files: stanzas of ``Types:``, ``URIs:``, ``Suites:``,
  ``Components:``, ``Signed-By:`` (a path, fingerprints, or an inline ASCII-armored key),
  ``Enabled: no``…, separated by blank lines.

apt only reads files of ``sources.list.d`` named ``[A-Za-z0-9_.-]+`` ending in ``.list`` /
``.sources``, and trusted keyrings of ``trusted.gpg.d`` ending in ``.gpg`` / ``.asc``; so do
we. Keys are read with a small OpenPGP packet reader (fingerprints of v4 keys, user
ids), without gpg: gpg would write to a home directory, and checking changes nothing.

:class:`AptSources` takes a ``root`` (default ``/``) so tests point it at a temp dir
instead of the machine's own ``/etc/apt``.

>>> parse_one_line("deb [signed-by=/k.gpg arch=amd64] https://x.org/d bookworm contrib",
...                "f")[0].signed_by
'/k.gpg'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from checker.probes import list_dir, read_file, ssh_lost
from checker.probes.host import fetch

APT_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class AptSource:
    file: str
    where: str  # "line 3" or "stanza 2"
    format: str  # "one-line" | "deb822"
    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict)
    enabled: bool = True

    @property
    def signed_by(self) -> str | None:
        v = self.options.get("signed-by")
        return v if v else None

    def to_evidence(self) -> dict[str, Any]:
        sb = self.signed_by
        if sb and "BEGIN PGP" in sb:
            sb = "(inline key)"
        return {"file": self.file, "where": self.where, "format": self.format,
                "types": list(self.types), "uris": list(self.uris), "suites": list(self.suites),
                "components": list(self.components), "signed_by": sb, "enabled": self.enabled}


# --- one-line format --------------------------------------------------------------------

_ONE_LINE_RE = re.compile(r"^\s*(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$")


def parse_one_line(text: str, file: str) -> list[AptSource]:
    """Entries of a ``.list`` file. Commented-out lines are not sources (apt ignores them)."""
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _ONE_LINE_RE.match(line)
        if not m:
            continue
        opts: dict[str, str] = {}
        for tok in (m.group(2) or "").split():
            k, sep, v = tok.partition("=")
            if sep:
                # "arch+=x" / "arch-=x" forms: keep the option name
                opts[k.rstrip("+-").lower()] = v
        out.append(AptSource(
            file=file, where=f"line {n}", format="one-line", types=(m.group(1),),
            uris=(m.group(3),), suites=(m.group(4),), components=tuple(m.group(5).split()),
            options=opts))
    return out


# --- deb822 format ----------------------------------------------------------------------

def parse_deb822(text: str, file: str) -> list[AptSource]:
    """Stanzas of a ``.sources`` file (continuation lines start with a space; ``.`` alone
    on a continuation line is an empty line, as in an inline ``Signed-By`` key)."""
    stanzas: list[list[tuple[str, str]]] = [[]]
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if stanzas[-1]:
                stanzas.append([])
            continue
        if raw[0] in " \t" and stanzas[-1]:
            k, v = stanzas[-1][-1]
            cont = raw.strip()
            stanzas[-1][-1] = (k, v + "\n" + ("" if cont == "." else cont))
            continue
        k, sep, v = raw.partition(":")
        if sep:
            stanzas[-1].append((k.strip().lower(), v.strip()))
    out = []
    for i, st in enumerate((s for s in stanzas if s), 1):
        f = dict(st)
        opts = {k: v.strip() for k, v in f.items()
                if k not in ("types", "uris", "suites", "components", "enabled")}
        out.append(AptSource(
            file=file, where=f"stanza {i}", format="deb822",
            types=tuple(f.get("types", "").split()), uris=tuple(f.get("uris", "").split()),
            suites=tuple(f.get("suites", "").split()),
            components=tuple(f.get("components", "").split()), options=opts,
            enabled=f.get("enabled", "yes").strip().lower() not in ("no", "false", "0")))
    return out


# --- OpenPGP keys -----------------------------------------------------------------------

@dataclass(frozen=True)
class KeyInfo:
    """What a keyring file holds: v4 fingerprints (upper-case hex) and user ids."""

    fingerprints: tuple[str, ...]
    uids: tuple[str, ...]
    armored: bool
    valid: bool  # parsed as OpenPGP data

    def has(self, fingerprints: frozenset[str] = frozenset(), uid_marker: str = "") -> bool:
        if any(fp in fingerprints for fp in self.fingerprints):
            return True
        return bool(uid_marker) and any(uid_marker in u.lower() for u in self.uids)


def dearmor(text: str) -> bytes | None:
    """The binary data of the first ASCII-armored block, or None."""
    m = re.search(r"-----BEGIN PGP PUBLIC KEY BLOCK-----(.*?)-----END PGP PUBLIC KEY BLOCK-----",
                  text, re.S)
    if not m:
        return None
    # Armor headers ("Comment: …") hold a colon, base64 never does; "=XXXX" is the CRC.
    b64 = "".join(x.strip() for x in m.group(1).splitlines()
                  if x.strip() and ":" not in x and not x.strip().startswith("="))
    try:
        return base64.b64decode(b64, validate=False)
    except (ValueError, binascii.Error):
        return None


def _packets(data: bytes) -> list[tuple[int, bytes]]:
    """(tag, body) of each OpenPGP packet (RFC 4880 §4.2); raises ValueError if malformed."""
    out = []
    i = 0
    while i < len(data):
        b = data[i]
        if not b & 0x80:
            raise ValueError(f"not an OpenPGP packet at offset {i}")
        if b & 0x40:  # new format
            tag = b & 0x3F
            i += 1
            if i >= len(data):
                raise ValueError("truncated")
            l0 = data[i]
            if l0 < 192:
                ln, i = l0, i + 1
            elif l0 < 224:
                ln, i = ((l0 - 192) << 8) + data[i + 1] + 192, i + 2
            elif l0 == 255:
                ln, i = int.from_bytes(data[i + 1:i + 5], "big"), i + 5
            else:
                raise ValueError("partial body lengths are not used in keys")
        else:  # old format
            tag = (b >> 2) & 0x0F
            lt = b & 0x03
            i += 1
            if lt == 3:
                raise ValueError("indeterminate length")
            n = (1, 2, 4)[lt]
            ln, i = int.from_bytes(data[i:i + n], "big"), i + n
        body = data[i:i + ln]
        if len(body) != ln:
            raise ValueError("truncated packet")
        out.append((tag, body))
        i += ln
    return out


def read_keys(content: bytes) -> KeyInfo:
    """Fingerprints and user ids of a keyring (binary, or ASCII-armored)."""
    armored = b"-----BEGIN PGP PUBLIC KEY BLOCK-----" in content
    data = dearmor(content.decode("ascii", "replace")) if armored else content
    fps: list[str] = []
    uids: list[str] = []
    valid = False
    if data:
        try:
            for tag, body in _packets(data):
                if tag in (6, 14) and body[:1] == b"\x04":  # v4 public key / subkey
                    h = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body)
                    fps.append(h.hexdigest().upper())
                elif tag == 13:
                    uids.append(body.decode("utf-8", "replace"))
            valid = bool(fps)
        except (ValueError, IndexError):
            valid = False
    if not valid and content:
        # A keybox (.kbx) or a damaged file: the user ids still show as plain text.
        for m in re.finditer(rb"[ -~]{4,}<[^<>\s]+@[^<>\s]+>", content):
            uids.append(m.group(0).decode("ascii", "replace"))
    return KeyInfo(fingerprints=tuple(fps), uids=tuple(uids), armored=armored, valid=valid)


# --- the probe --------------------------------------------------------------------------

@dataclass(frozen=True)
class Keyring:
    path: str
    exists: bool
    readable: bool
    keys: KeyInfo | None


class AptSources:
    """APT's sources and trusted keyrings under ``root`` (default ``/``).

    >>> apt = AptSources(host)                  # doctest: +SKIP
    >>> [s.uris for s in apt.sources()]         # doctest: +SKIP
    """

    def __init__(self, host: Any, root: str = "/"):
        self.host = host
        self.root = "/" + root.strip("/") if root.strip("/") else ""

    def path(self, p: str) -> str:
        """The host path of ``p`` (an absolute path as apt sees it) under the root."""
        return self.root + p

    def _read_text(self, p: str) -> str | None:
        return read_file(self.host, self.path(p))

    def _listdir(self, d: str) -> list[str]:
        return sorted(list_dir(self.host, self.path(d)) or [])

    def source_files(self) -> list[str]:
        files = ["/etc/apt/sources.list"]
        for name in self._listdir("/etc/apt/sources.list.d"):
            if APT_NAME_RE.fullmatch(name) and name.endswith((".list", ".sources")):
                files.append(f"/etc/apt/sources.list.d/{name}")
        return files

    def reads(self) -> list[tuple[str, tuple[str, ...]]]:
        """The commands :meth:`sources` and :meth:`legacy_keyrings` run, built from the
        directories' listings (a lab prefetches them: checker.engine.lab_prefetch_next)."""
        return [*self._source_reads(self.source_files()),
                *self._keyring_reads(self._legacy_listed())]

    def _source_reads(self, files: list[str]) -> list[tuple[str, tuple[str, ...]]]:
        return [("test -f %s && cat -- %s", (self.path(p), self.path(p))) for p in files]

    def _keyring_reads(self, listed: list[str]) -> list[tuple[str, tuple[str, ...]]]:
        return [("cat -- %s", (self.path(p),)) for p in ["/etc/apt/trusted.gpg", *listed]]

    def _legacy_listed(self) -> list[str]:
        return [f"/etc/apt/trusted.gpg.d/{name}"
                for name in self._listdir("/etc/apt/trusted.gpg.d")
                if APT_NAME_RE.fullmatch(name) and name.endswith((".gpg", ".asc"))]

    def sources(self) -> list[AptSource]:
        out: list[AptSource] = []
        files = self.source_files()
        # every file in one exchange (checker.probes.host.fetch), then read one by one
        fetch(self.host, self._source_reads(files))
        for p in files:
            text = self._read_text(p)
            if text is None:
                continue
            out += parse_deb822(text, p) if p.endswith(".sources") else parse_one_line(text, p)
        return out

    def keyring(self, p: str, listed: bool = False) -> Keyring:
        """``listed``: ``p`` was just read in its directory's listing, so it exists (one
        command less per file: a check re-reads every keyring of trusted.gpg.d)."""
        f = self.host.file(self.path(p))
        try:
            exists = listed or f.exists
        except Exception as e:
            if ssh_lost(e):
                raise
            exists = False
        if not exists:
            return Keyring(p, False, False, None)
        try:
            content = f.content
        except Exception as e:
            if ssh_lost(e):
                raise
            return Keyring(p, True, False, None)
        return Keyring(p, True, True, read_keys(content))

    def legacy_keyrings(self) -> list[Keyring]:
        """The keyrings apt trusts for every source: where ``apt-key add`` put keys."""
        out = []
        listed = self._legacy_listed()
        # every keyring in one exchange (checker.probes.host.fetch), then read one by one
        fetch(self.host, self._keyring_reads(listed))
        main = self.keyring("/etc/apt/trusted.gpg")
        if main.exists:
            out.append(main)
        for p in listed:
            out.append(self.keyring(p, listed=True))
        return out
