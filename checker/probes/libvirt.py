"""libvirt facts through libvirt-python on a read-only connection.

Plain, typed classes: :class:`Virt` opens ``openReadOnly(uri)`` lazily and returns
frozen records (:class:`DomainInfo`, :class:`NetworkInfo`, :class:`PoolInfo`,
:class:`VolumeInfo`) parsed from libvirt's XML. Nothing here changes libvirt state.

>>> virt = Virt("qemu:///system")                 # doctest: +SKIP
>>> virt.domain("test-debian-12").vcpus           # doctest: +SKIP
2
"""

from __future__ import annotations

import atexit
import os
import re
import threading
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from checker.i18n import Text, message
from checker.markup import literal

DEFAULT_URI = "qemu:///system"


def default_uri(explicit: str | None = None) -> str:
    return explicit or os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI


class LibvirtUnavailable(Exception):
    """libvirt cannot be reached; ``message`` says why and how to fix it."""

    def __init__(self, message: Text, kind: str):
        self.message = message
        self.kind = kind  # "daemon-down" | "denied" | "missing-lib" | "other"
        super().__init__(message.en)


# libvirt errors meaning no daemon answers: never started, or stopped (killed) while a
# connection was open.
DAEMON_GONE = ("no such file", "connection refused", "failed to connect socket",
               "end of file while reading data", "cannot recv data", "cannot write data",
               "broken pipe", "connection reset", "client socket is closed")


MSG_DAEMON_DOWN = message(
    "libvirt.daemon-down",
    fr="Le démon libvirt ne répond pas sur {uri} ({err}). "
       "Démarrez-le : sudo systemctl start libvirtd",
    en="The libvirt daemon does not answer on {uri} ({err}). "
       "Start it: sudo systemctl start libvirtd")
MSG_DENIED = message(
    "libvirt.denied",
    fr="Accès refusé à {uri} ({err}). Ajoutez l'utilisateur au groupe libvirt "
       "(sudo usermod -aG libvirt $USER) puis ouvrez une nouvelle session.",
    en="Access to {uri} denied ({err}). Add the user to group libvirt "
       "(sudo usermod -aG libvirt $USER), then log in again.")
MSG_CANNOT_CONNECT = message(
    "libvirt.cannot-connect",
    fr="Impossible de se connecter à {uri} : {err}",
    en="Cannot connect to {uri}: {err}")
MSG_NO_LIBVIRT_PYTHON = message(
    "libvirt.no-python-binding",
    fr="libvirt-python n'est pas installé ({err})",
    en="libvirt-python is not installed ({err})")


#: libvirt's words a learner meets most (a stopped daemon), which its French catalogue
#: (libvirt-l10n) does not translate; the C library's reason inside them is already in the
#: reader's language (:func:`checker.i18n.library_messages`)
LIBVIRT_SAID = (
    (re.compile(r"Failed to connect socket to '(?P<path>[^']*)': (?P<why>.*)", re.S),
     message("libvirt.said.socket", fr="connexion impossible au socket {path} : {why}",
             en="Failed to connect socket to '{path}': {why}")),
    (re.compile(r"authentication unavailable: no polkit agent available to authenticate "
                r"action '(?P<action>[^']*)'", re.S),
     message("libvirt.said.polkit",
             fr="authentification impossible : aucun agent polkit pour autoriser l'action "
                "{action}",
             en="authentication unavailable: no polkit agent available to authenticate "
                "action '{action}'")),
    (re.compile(r"End of file while reading data: (?P<why>.*)", re.S),
     message("libvirt.said.eof", fr="fin de la connexion en lisant les données : {why}",
             en="End of file while reading data: {why}")),
    (re.compile(r"Cannot recv data: (?P<why>.*)", re.S),
     message("libvirt.said.recv", fr="impossible de recevoir les données : {why}",
             en="Cannot recv data: {why}")),
)


def libvirt_said(err: str) -> Text:
    """What libvirt said, in each language where we know its words; else as it said it. Its
    words may hold what the host made (a path, a name): literal text in the Markdown of a
    verdict (:func:`checker.markup.literal`; printed elsewhere through ``markup.plain``)."""
    err = err.strip()
    for pattern, text in LIBVIRT_SAID:
        m = pattern.fullmatch(err)
        if m:
            return Text(literal(text.format(**m.groupdict()).fr), literal(err))
    return Text(literal(err), literal(err))


def error_kind(exc: Any) -> str | None:
    """``daemon-down``, ``denied`` or None (not known) from a libvirtError's code and, for a
    system error, its errno (``get_int1``): words that do not depend on the language libvirt
    and the C library speak (:func:`checker.i18n.library_messages` makes them French)."""
    import errno

    import libvirt

    code = exc.get_error_code()
    if code in (libvirt.VIR_ERR_AUTH_FAILED, libvirt.VIR_ERR_AUTH_CANCELLED,
                libvirt.VIR_ERR_AUTH_UNAVAILABLE, libvirt.VIR_ERR_ACCESS_DENIED,
                libvirt.VIR_ERR_OPERATION_DENIED):
        return "denied"
    if code == libvirt.VIR_ERR_SYSTEM_ERROR:
        number = exc.get_int1()
        if number in (errno.EACCES, errno.EPERM):
            return "denied"
        if number in (errno.ENOENT, errno.ECONNREFUSED, errno.ECONNRESET, errno.EPIPE,
                      errno.ENOTCONN):
            return "daemon-down"
    return None


def classify_error(uri: str, err: str, exc: Any = None) -> LibvirtUnavailable:
    """What a failed connection means, from the libvirtError ``exc`` when there is one
    (:func:`error_kind`), else from libvirt's English words in ``err``."""
    low = err.lower()
    kind = error_kind(exc) if exc is not None else None
    if kind is None:
        denied = "permission denied" in low or "polkit" in low or "authentication" in low
        kind = "denied" if denied else (
            "daemon-down" if any(m in low for m in DAEMON_GONE) else "other")
    said = libvirt_said(err)
    if kind == "daemon-down":
        return LibvirtUnavailable(MSG_DAEMON_DOWN.format(uri=uri, err=said), "daemon-down")
    if kind == "denied":
        return LibvirtUnavailable(MSG_DENIED.format(uri=uri, err=said), "denied")
    return LibvirtUnavailable(MSG_CANNOT_CONNECT.format(uri=uri, err=said), "other")


def _ignore_error(_ctx: object, _err: object) -> None:
    """libvirt's error callback: print nothing (its default handler writes
    "libvirt: QEMU Driver error : …" on stderr, red in JupyterLab). The error still raises
    ``libvirtError``, which the checks turn into our own messages."""


def quiet_libvirt() -> None:
    """Silence libvirt's default error handler in this process.

    Called wherever virtlab opens or hands out a connection (:func:`_open_read_only`,
    :meth:`Connections.get` and :meth:`Connections.share`, the watch's event connection,
    :func:`checker.lifecycle.open_rw`), so no entry point — CLI, watch, notebook API,
    grading worker — can forget it, and a handler the learner's own notebook cell set is
    replaced before our checks run. The handler is process-wide (``virSetErrorFunc``).
    """
    import libvirt

    libvirt.registerErrorHandler(_ignore_error, None)


def _open_read_only(uri: str) -> Any:
    """A new read-only connection to ``uri``; LibvirtUnavailable (with the reason) if none."""
    try:
        import libvirt
    except ImportError as e:  # pragma: no cover - the package depends on it
        raise LibvirtUnavailable(MSG_NO_LIBVIRT_PYTHON.format(err=e), "missing-lib") from None
    quiet_libvirt()
    try:
        return libvirt.openReadOnly(uri)
    except libvirt.libvirtError as e:
        raise classify_error(uri, str(e), e) from None


class Connections:
    """Read-only libvirt connections shared across runs in one process, by URI.

    A notebook re-check or a watch reuses the connection of the previous run instead of
    opening one each time (the SSH handshake of ``qemu+ssh://`` alone costs a second).
    :meth:`get` checks that a kept connection still reaches its daemon (one cheap round
    trip: ``isAlive()`` stays True after the daemon stopped, until a call fails) and opens
    a fresh one otherwise. A caller holding its own connection (the watch: it carries the
    event callbacks) lends it with :meth:`share`.

    >>> CONNECTIONS.get("qemu:///system").getVersion()     # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._conns: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, uri: str) -> Any:
        """A live read-only connection to ``uri`` (kept for the next caller); raises
        LibvirtUnavailable with the reason when there is none."""
        with self._lock:
            conn = self._conns.get(uri)
        if conn is not None:
            try:
                if conn.isAlive() and conn.getVersion():
                    return conn
            # a dead connection fails any way: forgotten, opened again
            except Exception:  # noqa: BLE001
                pass
            self.forget(uri, conn)
        conn = _open_read_only(uri)
        with self._lock:
            self._conns[uri] = conn
        return conn

    def share(self, uri: str, conn: Any) -> None:
        """Let later :meth:`get` calls for ``uri`` use ``conn`` (its owner closes it)."""
        quiet_libvirt()
        with self._lock:
            self._conns[uri] = conn

    def forget(self, uri: str, conn: Any = None) -> None:
        """Stop handing out the connection kept for ``uri`` (only if it is ``conn``, when
        given); it is not closed: it is dead, or its owner closes it."""
        with self._lock:
            if conn is None or self._conns.get(uri) is conn:
                self._conns.pop(uri, None)

    def close_all(self) -> None:
        """Close every kept connection (at exit: before the interpreter tears modules down,
        libvirt's own ``__del__`` would otherwise run too late and print an ignored error)."""
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 (closing: nothing left to report)
                pass


#: The process's shared read-only connections (``virtlab check`` runs, notebooks, the watch).
CONNECTIONS = Connections()
atexit.register(CONNECTIONS.close_all)


# --- records -------------------------------------------------------------------------

@dataclass(frozen=True)
class Disk:
    device: str  # disk | cdrom | floppy | lun
    type: str  # file | volume | block | network
    format: str | None
    path: str | None  # source file or block device
    pool: str | None  # for type='volume'
    volume: str | None
    target: str | None
    bus: str | None


@dataclass(frozen=True)
class Interface:
    type: str  # network | bridge | direct | user ...
    network: str | None
    bridge: str | None
    model: str | None
    mac: str | None
    link_state: str  # up | down ('up' when absent)
    filterref: str | None
    portgroup: str | None = None


@dataclass(frozen=True)
class DomainInfo:
    name: str
    uuid: str
    virt_type: str  # kvm | qemu
    persistent: bool
    active: bool
    state: str  # running | paused | shutoff | ...
    autostart: bool
    vcpus: int
    memory_kib: int
    current_memory_kib: int
    title: str
    description: str
    disks: tuple[Disk, ...]
    interfaces: tuple[Interface, ...]
    graphics: tuple[str, ...]  # vnc | spice ...
    serials: int
    consoles: int
    xml: str = field(repr=False, default="")

    @property
    def memory_mib(self) -> int:
        return self.memory_kib // 1024


@dataclass(frozen=True)
class DhcpRange:
    start: str
    end: str


@dataclass(frozen=True)
class NetworkIP:
    address: str | None
    netmask: str | None
    prefix: int | None
    family: str
    dhcp_ranges: tuple[DhcpRange, ...]


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    uuid: str
    active: bool
    persistent: bool
    autostart: bool
    forward_mode: str | None  # None = isolated (no <forward>)
    bridge: str | None
    ips: tuple[NetworkIP, ...]
    xml: str = field(repr=False, default="")


@dataclass(frozen=True)
class PoolInfo:
    name: str
    uuid: str
    type: str
    target_path: str | None
    active: bool
    persistent: bool
    autostart: bool
    xml: str = field(repr=False, default="")


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    path: str
    pool: str | None
    format: str | None
    capacity: int
    allocation: int


@dataclass(frozen=True)
class BlockInfo:
    """What the hypervisor reports for one disk of a domain (``virsh domblkinfo``), bytes."""

    capacity: int  # the size the guest sees
    allocation: int  # host space in use
    physical: int  # size of the file / device on the host


class VolumeUnreadable(Exception):
    """libvirt knows the volume but cannot read it (file gone or unreadable since the last
    pool refresh); ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class Lease:
    network: str
    mac: str
    ip: str
    prefix: int | None
    hostname: str | None
    expiry: int | None


# --- XML parsing (pure) --------------------------------------------------------------

STATES = {0: "nostate", 1: "running", 2: "blocked", 3: "paused", 4: "shutdown",
          5: "shutoff", 6: "crashed", 7: "pmsuspended"}


def _attr(el: ET.Element | None, name: str) -> str | None:
    return el.get(name) if el is not None else None


# libvirt's memory units (case-insensitive), in bytes; the XML libvirt writes uses KiB.
_UNIT_BYTES = {"b": 1, "bytes": 1}
for _i, _p in enumerate("kmgtpe", 1):
    _UNIT_BYTES.update({_p: 1024**_i, f"{_p}ib": 1024**_i, f"{_p}b": 1000**_i})
_MAX_DIGITS = 30  # beyond any real size; also keeps int() clear of its 4300-digit limit


def _count(text: str | None) -> int | None:
    """A non-negative whole number written in ASCII digits, else None (malformed)."""
    t = (text or "").strip()
    if not t or len(t) > _MAX_DIGITS or not t.isascii() or not t.isdigit():
        return None
    return int(t)


def _bytes(el: ET.Element | None, unit: str = "KiB") -> int:
    """A size element in bytes (``unit`` when it names none); 0 when absent or malformed
    (odd unit, not a number)."""
    if el is None:
        return 0
    n = _count(el.text)
    factor = _UNIT_BYTES.get((el.get("unit") or unit).strip().lower())
    if n is None or factor is None:
        return 0
    return n * factor


def _kib(el: ET.Element | None) -> int:
    """A memory element in KiB; 0 when absent or malformed (odd unit, not a number)."""
    return _bytes(el) // 1024


def _root(xml: str, what: str) -> ET.Element:
    try:
        return ET.fromstring(xml)
    except ET.ParseError as e:
        raise ValueError(f"not {what} XML: {e}") from None


def parse_domain_xml(xml: str) -> dict[str, Any]:
    """Facts of a domain's XML. Missing or malformed values never raise: a number that is not
    one (odd unit, negative, not digits, absurdly long) reads as 0 (memory) or 0 vCPU, which
    the checks then report as wrong; only XML that is not well-formed raises ValueError."""
    root = _root(xml, "libvirt domain")
    devices = root.find("devices")
    devs = devices if devices is not None else ET.Element("devices")
    disks = []
    for d in devs.findall("disk"):
        src = d.find("source")
        disks.append(Disk(
            device=d.get("device", "disk"), type=d.get("type", "file"),
            format=_attr(d.find("driver"), "type"),
            path=(_attr(src, "file") or _attr(src, "dev")),
            pool=_attr(src, "pool"), volume=_attr(src, "volume"),
            target=_attr(d.find("target"), "dev"), bus=_attr(d.find("target"), "bus"),
        ))
    ifaces = []
    for i in devs.findall("interface"):
        src = i.find("source")
        ifaces.append(Interface(
            type=i.get("type", ""), network=_attr(src, "network"),
            bridge=_attr(src, "bridge"),
            model=_attr(i.find("model"), "type"), mac=_attr(i.find("mac"), "address"),
            link_state=_attr(i.find("link"), "state") or "up",
            filterref=_attr(i.find("filterref"), "filter"),
            portgroup=_attr(src, "portgroup"),
        ))
    vcpu_el = root.find("vcpu")
    if vcpu_el is None or not (vcpu_el.text or "").strip():
        vcpus = 1  # libvirt's default
    else:
        vcpus = _count(vcpu_el.text) or 0
    mem_el = root.find("memory")
    cur_el = root.find("currentMemory")

    return dict(
        name=root.findtext("name", ""), uuid=root.findtext("uuid", ""),
        virt_type=root.get("type", ""),
        vcpus=vcpus,
        memory_kib=_kib(mem_el), current_memory_kib=_kib(cur_el) or _kib(mem_el),
        title=root.findtext("title", "") or "", description=root.findtext("description", "") or "",
        disks=tuple(disks), interfaces=tuple(ifaces),
        graphics=tuple(g.get("type", "") for g in devs.findall("graphics")),
        serials=len(devs.findall("serial")), consoles=len(devs.findall("console")),
    )


def parse_network_xml(xml: str) -> dict[str, Any]:
    """Facts of a network's XML; a malformed prefix reads as None (as if absent); only XML
    that is not well-formed raises ValueError."""
    root = _root(xml, "libvirt network")
    fwd = root.find("forward")
    ips = []
    for ip in root.findall("ip"):
        dhcp = ip.find("dhcp")
        ranges = tuple(DhcpRange(r.get("start", ""), r.get("end", ""))
                       for r in (dhcp.findall("range") if dhcp is not None else []))
        ips.append(NetworkIP(
            address=ip.get("address"), netmask=ip.get("netmask"),
            prefix=_count(ip.get("prefix")),
            family=ip.get("family", "ipv4"), dhcp_ranges=ranges))
    return dict(
        name=root.findtext("name", ""), uuid=root.findtext("uuid", ""),
        # <forward/> without mode means NAT in libvirt
        forward_mode=(fwd.get("mode", "nat") if fwd is not None else None),
        bridge=_attr(root.find("bridge"), "name"), ips=tuple(ips),
    )


# --- the probe -----------------------------------------------------------------------

#: at most this many libvirt calls in flight at once (:func:`together`)
MAX_IN_FLIGHT = 16
#: the name of the threads that read libvirt (:func:`together`, :meth:`Virt.preload`)
THREADS = "virtlab-libvirt"


def together(*calls: Callable[[], Any]) -> list[Any]:
    """The results of ``calls`` (libvirt calls on one connection), made at once, in order.

    libvirt's connection is thread-safe and its client sends each caller's request without
    waiting for the replies to the others: calls made from several threads share round trips
    (over ``qemu+ssh://``, three listings cost one round trip instead of three). What a call
    raises is raised again here (the first one, in order)."""
    if len(calls) < 2:
        return [c() for c in calls]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(calls), MAX_IN_FLIGHT),
                            thread_name_prefix=THREADS) as pool:
        futures = [pool.submit(c) for c in calls]
    return [f.result() for f in futures]


@dataclass(frozen=True)
class _Listed:
    """One object of a listing: its handle (later calls need no lookup) and its flags."""

    handle: Any
    active: bool
    persistent: bool
    autostart: bool
    state: int = -1  # domains only (libvirt's virDomainState)


class Virt:
    """Read-only libvirt facts for one URI, read as one snapshot per run.

    Over ``qemu+ssh://`` every libvirt call is a network round trip, so each kind of object
    is listed once per run with ``listAll*`` (filtered by flag: active, persistent,
    autostart) and, for domains, ``getAllDomainStats`` (every state in one call); the
    listed handles serve every later call (no ``lookupByName``), and each object's XML is
    read once, when a check first asks for it. Nothing is kept beyond the Virt: a new run
    (a re-check, the watch) reads libvirt afresh. Within one output budget (one
    ``virtlab check``, or all the labs of one host in a grading job,
    :mod:`checker.probes.output`) the ``virt`` fixture is one Virt (:func:`for_run`).

    With ``connections`` (a :class:`Connections`, e.g. :data:`CONNECTIONS`), the connection
    comes from there and outlives the run; without, the Virt opens its own and
    :meth:`close` closes it.
    """

    def __init__(self, uri: str | None = None, *, connections: Connections | None = None):
        self.uri = default_uri(uri)
        self.connections = connections
        self._conn: Any = None
        self._error: LibvirtUnavailable | None = None
        # facts read this run, by name (None: no such object)
        self._domains: dict[str, DomainInfo | None] = {}
        self._configs: dict[str, DomainInfo | None] = {}
        self._networks: dict[str, NetworkInfo | None] = {}
        self._pools: dict[str, PoolInfo | None] = {}
        self._snapshots: dict[str, list[str]] = {}
        self._blocks: dict[tuple[str, str], BlockInfo | None] = {}
        self._volumes: dict[tuple[str, str], VolumeInfo | None] = {}
        self._volume_errors: dict[tuple[str, str], VolumeUnreadable] = {}
        self._leases: dict[str, list[Lease]] = {}
        self._node_memory: int | None = None
        self._version: int | None = None
        self._lib_version: int | None = None
        #: the thread reading the run's snapshot ahead of the checks (:meth:`preload`)
        self._preload: threading.Thread | None = None

    @property
    def conn(self) -> Any:
        """The read-only connection; raises LibvirtUnavailable with the reason."""
        self.wait()
        if self._conn is not None:
            return self._conn
        if self._error is not None:
            raise self._error
        try:
            if self.connections is not None:
                self._conn = self.connections.get(self.uri)
            else:
                self._conn = _open_read_only(self.uri)
        except LibvirtUnavailable as e:
            self._error = e
            raise
        return self._conn

    #: what :meth:`preload` reads, by the name a lab declares in ``VIRT_PREFETCH``: each
    #: object's XML (``domains``, ``networks``, ``pools``), the persistent definition of each
    #: running persistent domain (``domain-configs``, :meth:`domain_config`), each domain's
    #: snapshots (``snapshots``, :meth:`snapshot_names`); the daemon's versions
    #: (``version``, :meth:`lib_version` and :meth:`hypervisor_version`)
    PRELOADS = ("domains", "networks", "pools", "domain-configs", "snapshots", "version")

    def preload(self, kinds: Iterable[str] = ()) -> None:
        """Start reading, in a thread of its own, what the checks of this run will read:
        the connection (over ``qemu+ssh://`` its ssh channel and the handshake, several round
        trips), then the listings that ``kinds`` (:data:`PRELOADS`) need in one batch of
        calls (:func:`together`) and what they name in one more, while the caller goes on
        with the host's commands. Nothing is reported from here: a failed step is left
        undone (a failed connection is kept, as :attr:`conn` keeps it) and the check that
        needs it makes the call again, and says what went wrong as it would have. Every
        public reader waits for the thread first (:meth:`wait`). At most once per Virt."""
        if self._preload is not None:
            return
        wanted = tuple(k for k in self.PRELOADS if k in set(kinds))
        self._preload = threading.Thread(target=self._read_ahead, args=(wanted,),
                                         name=f"{THREADS}-preload", daemon=True)
        self._preload.start()

    def wait(self) -> None:
        """Wait for :meth:`preload`'s thread, if any, to end: every public reader of this
        Virt does first, so a check reads the snapshot once it is read (and meanwhile runs
        the host's commands). Not in the threads of :func:`together` (named ``virtlab-
        libvirt``): the preload's own, or those of a reader that waited already."""
        thread = self._preload
        if thread is not None and not threading.current_thread().name.startswith(THREADS):
            thread.join()

    def _read_ahead(self, kinds: tuple[str, ...]) -> None:
        # every failure is left for the check that makes the call again (see preload)
        try:
            _ = self.conn
        except LibvirtUnavailable:
            return  # kept by conn: every check of the run is told, as before

        def quietly(call: Callable[..., Any], *args: str) -> Callable[[], Any]:
            def run() -> Any:
                try:
                    return call(*args)
                except Exception:  # noqa: BLE001 (the check's own call reports it)
                    return None
            return run

        listing = {"domains": "domains", "networks": "networks", "pools": "pools",
                   "domain-configs": "domains", "snapshots": "domains"}
        needed = list(dict.fromkeys(listing[k] for k in kinds if k in listing))
        props = {"domains": lambda: self._listed_domains,
                 "networks": lambda: self._listed_networks, "pools": lambda: self._listed_pools}
        versions = [quietly(self.lib_version), quietly(self.hypervisor_version)] if (
            "version" in kinds) else []
        # the listings and the versions in one batch (the versions read nothing more)
        listed: dict[str, dict[str, _Listed]] = dict(zip(needed, together(
            *(quietly(props[k]) for k in needed), *versions)))
        reads: dict[str, Callable[[str], Any]] = {
            "domains": self.domain, "networks": self.network, "pools": self.pool,
            "domain-configs": self.domain_config, "snapshots": self.snapshot_names}
        calls = []
        for kind in kinds:
            if kind not in listing:
                continue  # "version": read above
            for name, obj in sorted((listed.get(listing[kind]) or {}).items()):
                if kind == "domain-configs" and not (obj.active and obj.persistent):
                    continue  # its definition is its XML: read once, as "domains"
                calls.append(quietly(reads[kind], name))
        together(*calls)

    def daemon_gone(self) -> None:
        """The daemon went away during the run: the next run (the next lab of a grading
        job too) opens a fresh connection and reads libvirt afresh."""
        if self.connections is not None:
            self.connections.forget(self.uri, self._conn)
        _leave_run(self)

    def close(self) -> None:
        """Close this Virt's own connection (a shared one stays open for the next run)."""
        if self.connections is not None:
            return
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 (closing: nothing left to report)
                pass

    # listings (one per kind and run)
    @staticmethod
    def _names(objects: Any) -> set[str]:
        return {o.name() for o in objects}  # name() is the handle's own: no call

    @cached_property
    def _listed_domains(self) -> dict[str, _Listed]:
        """Every domain in three calls: each one's state (and handle) from
        ``getAllDomainStats``, the persistent and the autostart ones from filtered
        ``listAllDomains``. A domain's handle carries its id: -1 when it does not run
        (what ``isActive`` answers, without the call)."""
        import libvirt

        conn = self.conn

        def states() -> list[tuple[Any, dict[str, Any]]]:
            try:
                got: list[tuple[Any, dict[str, Any]]] = conn.getAllDomainStats(
                    libvirt.VIR_DOMAIN_STATS_STATE, 0)
                return got
            except libvirt.libvirtError as e:
                if e.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT,
                                              libvirt.VIR_ERR_INVALID_ARG):
                    raise
            # a driver without domain stats: each state asked (a domain gone since: left out)
            out = []
            for dom in conn.listAllDomains(0):
                try:
                    out.append((dom, {"state.state": dom.state()[0]}))
                except libvirt.libvirtError as e2:
                    if e2.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
            return out

        stats, persistent, autostart = together(
            states,
            lambda: self._names(conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT)),
            lambda: self._names(conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART)))
        out = {}
        for dom, st in stats:
            name = dom.name()
            out[name] = _Listed(dom, active=dom.ID() != -1, persistent=name in persistent,
                                autostart=name in autostart,
                                state=int(st.get("state.state", -1)))
        return out

    def _listed(self, kind: str, flags: tuple[int, int, int]) -> dict[str, _Listed]:
        """Every network or pool, and its three flags, in three calls: the active ones, the
        persistent ones (together, all of them: a transient one exists only while active)
        and the autostart ones."""
        list_all = getattr(self.conn, kind)
        active, persistent, autostart = together(
            *(lambda f=f: {o.name(): o for o in list_all(f)} for f in flags))
        return {n: _Listed(o, active=n in active, persistent=n in persistent,
                           autostart=n in autostart)
                for n, o in {**persistent, **active}.items()}

    @cached_property
    def _listed_networks(self) -> dict[str, _Listed]:
        import libvirt

        return self._listed("listAllNetworks", (
            libvirt.VIR_CONNECT_LIST_NETWORKS_ACTIVE, libvirt.VIR_CONNECT_LIST_NETWORKS_PERSISTENT,
            libvirt.VIR_CONNECT_LIST_NETWORKS_AUTOSTART))

    @cached_property
    def _listed_pools(self) -> dict[str, _Listed]:
        import libvirt

        return self._listed("listAllStoragePools", (
            libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE,
            libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_PERSISTENT,
            libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART))

    # domains
    @property
    def domain_names(self) -> tuple[str, ...]:
        self.wait()
        return tuple(sorted(self._listed_domains))

    def _domain_xml(self, name: str, flags: int) -> DomainInfo | None:
        """One domain's facts from one ``XMLDesc`` call; None when it is not listed, or
        went away since."""
        import libvirt

        listed = self._listed_domains.get(name)
        if listed is None:
            return None
        try:
            xml = listed.handle.XMLDesc(flags)
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise
        return DomainInfo(
            persistent=listed.persistent, active=listed.active,
            state=STATES.get(listed.state, str(listed.state)), autostart=listed.autostart,
            xml=xml, **parse_domain_xml(xml))

    def domain(self, name: str) -> DomainInfo | None:
        self.wait()
        if name not in self._domains:
            self._domains[name] = self._domain_xml(name, 0)
        return self._domains[name]

    def domains(self) -> list[DomainInfo]:
        """Every domain (each one's XML read once in the run, those not read yet at once)."""
        self.wait()
        todo = [n for n in self.domain_names if n not in self._domains]
        infos = together(*(lambda n=n: self._domain_xml(n, 0) for n in todo))
        self._domains.update(zip(todo, infos))
        return [d for n in self.domain_names if (d := self.domain(n)) is not None]

    def domain_config(self, name: str) -> DomainInfo | None:
        """The persistent definition of a domain (``virsh dumpxml --inactive``): what
        ``virsh edit``, ``virsh setvcpus --config`` or ``virt-xml`` change, and what the
        next boot uses. For a shut-off or transient domain it equals :meth:`domain`."""
        self.wait()
        if name not in self._configs:
            import libvirt

            listed = self._listed_domains.get(name)
            if listed is not None and listed.active and listed.persistent:
                self._configs[name] = self._domain_xml(name, libvirt.VIR_DOMAIN_XML_INACTIVE)
            else:
                self._configs[name] = self.domain(name)
        return self._configs[name]

    def snapshot_names(self, name: str) -> list[str]:
        """The names of a domain's snapshots (one ``listAllSnapshots`` call); none for a
        domain that is not there, or a driver without snapshots."""
        self.wait()
        if name not in self._snapshots:
            import libvirt

            listed = self._listed_domains.get(name)
            names: list[str] = []
            if listed is not None:
                try:
                    names = sorted(s.getName() for s in listed.handle.listAllSnapshots(0))
                except libvirt.libvirtError as e:
                    if e.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN,
                                                  libvirt.VIR_ERR_NO_SUPPORT):
                        raise
            self._snapshots[name] = names
        return self._snapshots[name]

    def block_info(self, name: str, disk: str) -> BlockInfo | None:
        """Capacity and allocation of one disk (its target ``vda`` or its source path) as
        the hypervisor sees it; None when libvirt cannot tell (disk unknown, file gone)."""
        self.wait()
        key = (name, disk)
        if key not in self._blocks:
            import libvirt

            listed = self._listed_domains.get(name)
            info = None
            if listed is not None:
                try:
                    cap, alloc, phys = listed.handle.blockInfo(disk, 0)
                    info = BlockInfo(capacity=int(cap), allocation=int(alloc),
                                     physical=int(phys))
                except libvirt.libvirtError:
                    pass
            self._blocks[key] = info
        return self._blocks[key]

    # networks
    @property
    def network_names(self) -> tuple[str, ...]:
        self.wait()
        return tuple(sorted(self._listed_networks))

    def network(self, name: str) -> NetworkInfo | None:
        self.wait()
        if name not in self._networks:
            import libvirt

            listed = self._listed_networks.get(name)
            info = None
            if listed is not None:
                try:
                    xml = listed.handle.XMLDesc(0)
                    info = NetworkInfo(active=listed.active, persistent=listed.persistent,
                                       autostart=listed.autostart, xml=xml,
                                       **parse_network_xml(xml))
                except libvirt.libvirtError as e:
                    if e.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                        raise
            self._networks[name] = info
        return self._networks[name]

    def networks(self) -> list[NetworkInfo]:
        self.wait()
        together(*(lambda n=n: self.network(n) for n in self.network_names))
        return [n for x in self.network_names if (n := self.network(x)) is not None]

    def leases(self, network: str) -> list[Lease]:
        self.wait()
        if network not in self._leases:
            listed = self._listed_networks.get(network)
            # not listed: looked up, for libvirt's own error (no such network)
            net = listed.handle if listed is not None else self.conn.networkLookupByName(network)
            self._leases[network] = [
                Lease(network=network, mac=le.get("mac", ""), ip=le.get("ipaddr", ""),
                      prefix=le.get("prefix"), hostname=le.get("hostname"),
                      expiry=le.get("expirytime"))
                for le in net.DHCPLeases()]
        return self._leases[network]

    # storage
    @property
    def pool_names(self) -> tuple[str, ...]:
        self.wait()
        return tuple(sorted(self._listed_pools))

    def pool(self, name: str) -> PoolInfo | None:
        self.wait()
        if name not in self._pools:
            import libvirt

            listed = self._listed_pools.get(name)
            info = None
            if listed is not None:
                try:
                    xml = listed.handle.XMLDesc(0)
                    root = _root(xml, "libvirt storage pool")
                    info = PoolInfo(
                        name=name, uuid=root.findtext("uuid", ""), type=root.get("type", ""),
                        target_path=root.findtext("target/path"), active=listed.active,
                        persistent=listed.persistent, autostart=listed.autostart, xml=xml)
                except libvirt.libvirtError as e:
                    if e.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                        raise
            self._pools[name] = info
        return self._pools[name]

    def pools(self) -> list[PoolInfo]:
        """Every pool: three listing calls, then each one's XML once in the run."""
        self.wait()
        together(*(lambda n=n: self.pool(n) for n in self.pool_names))
        return [p for n in self.pool_names if (p := self.pool(n)) is not None]

    def volume_by_path(self, path: str) -> VolumeInfo | None:
        """The volume libvirt knows at ``path`` (three calls, two round trips: the lookup,
        then its pool and its XML at once); None when none; raises VolumeUnreadable when
        libvirt lists it but cannot read it."""
        self.wait()
        return self._volume_memo(("", path), lambda: self.conn.storageVolLookupByPath(path),
                                 None)

    def volume(self, pool: str, name: str) -> VolumeInfo | None:
        """Volume ``name`` of pool ``pool`` (two calls on a listed pool: lookup, XML)."""
        self.wait()
        def lookup() -> Any:
            listed = self._listed_pools.get(pool)
            if listed is None:
                return None
            return listed.handle.storageVolLookupByName(name)

        return self._volume_memo((pool, name), lookup, pool)

    def _volume_memo(self, key: tuple[str, str], lookup: Any, pool: str | None) -> (
            VolumeInfo | None):
        import libvirt

        if key in self._volume_errors:
            raise self._volume_errors[key]
        if key not in self._volumes:
            try:
                vol = lookup()
            except libvirt.libvirtError:
                vol = None
            try:
                self._volumes[key] = None if vol is None else self._volume(vol, pool)
            except VolumeUnreadable as e:
                self._volume_errors[key] = e
                raise
        return self._volumes[key]

    def _volume(self, vol: Any, pool: str | None) -> VolumeInfo:
        """A volume's facts from its XML (path, capacity, allocation, format: libvirt
        refreshes the volume for ``XMLDesc`` as it does for ``info``), and its pool's name
        when not known. Raises VolumeUnreadable when libvirt lists the volume but cannot
        read it."""
        import libvirt

        def read() -> Any:
            try:
                return vol.XMLDesc(0)
            except libvirt.libvirtError as e:
                return e

        def pool_name() -> str | None:
            try:
                name: str = vol.storagePoolLookupByVolume().name()
                return name
            except Exception:  # noqa: BLE001 (a volume outside any pool: no pool)
                return None

        xml, pool = together(read, pool_name) if pool is None else (read(), pool)
        if isinstance(xml, libvirt.libvirtError):
            try:
                path = vol.path()
            except libvirt.libvirtError:
                path = vol.name()
            raise VolumeUnreadable(path, str(xml).strip()) from None
        try:
            root: ET.Element | None = ET.fromstring(xml)
        except ET.ParseError:
            root = None
        target = root.find("target") if root is not None else None

        def size(tag: str) -> int:  # libvirt writes volume sizes in bytes
            return _bytes(root.find(tag) if root is not None else None, "bytes")

        path = target.findtext("path") if target is not None else None
        fmt = _attr(target.find("format") if target is not None else None, "type")
        return VolumeInfo(name=vol.name(), path=path or vol.path(), pool=pool, format=fmt,
                          capacity=size("capacity"), allocation=size("allocation"))

    def node_memory_bytes(self) -> int:
        self.wait()
        if self._node_memory is None:
            self._node_memory = int(self.conn.getInfo()[1]) * 1024 * 1024
        return self._node_memory

    def hypervisor_version(self) -> str:
        self.wait()
        if self._version is None:
            self._version = int(self.conn.getVersion())
        v = self._version
        return f"{v // 1000000}.{(v // 1000) % 1000}.{v % 1000}"

    def lib_version(self) -> int:
        """libvirt's version on the daemon's side (``getLibVersion``, a round trip: it
        tells a live connection from a stale one), once per run."""
        self.wait()
        if self._lib_version is None:
            self._lib_version = int(self.conn.getLibVersion())
        return self._lib_version


#: The Virt of each output budget and URI (see :func:`for_run`); gone with its budget.
_RUN_VIRTS: weakref.WeakKeyDictionary[Any, dict[str, Virt]] = weakref.WeakKeyDictionary()
_RUN_LOCK = threading.Lock()


def _leave_run(virt: Virt) -> None:
    """The next :func:`for_run` of the current budget makes a new Virt, not ``virt``."""
    from checker.probes.output import current

    b = current()
    with _RUN_LOCK:
        virts = _RUN_VIRTS.get(b) if b is not None else None
        if virts is not None and virts.get(virt.uri) is virt:
            del virts[virt.uri]


def for_run(uri: str, connections: Connections | None) -> Virt:
    """The ``virt`` of the current run: within one output budget
    (:func:`checker.probes.output.budget`: one ``virtlab check``, or every lab of one host
    in a grading job) one Virt per URI, so libvirt is listed, and each XML read, once for
    all of them; a new budget (the next re-check, the watch's next run) reads afresh.
    Without a budget, or without shared connections, a Virt of its own."""
    from checker.probes.output import current

    b = current()
    if b is None or connections is None:
        return Virt(uri, connections=connections)
    with _RUN_LOCK:
        virts = _RUN_VIRTS.setdefault(b, {})
        virt = virts.get(uri)
        if virt is None or virt.connections is not connections:
            virt = virts[uri] = Virt(uri, connections=connections)
    return virt
