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
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from checker.i18n import Text, message

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
)


def libvirt_said(err: str) -> Text:
    """What libvirt said, in each language where we know its words; else as it said it."""
    err = err.strip()
    for pattern, text in LIBVIRT_SAID:
        m = pattern.fullmatch(err)
        if m:
            return Text(text.format(**m.groupdict()).fr, err)
    return Text(err, err)


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
    snapshot_count: int
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


def _kib(el: ET.Element | None) -> int:
    """A memory element in KiB; 0 when absent or malformed (odd unit, not a number)."""
    if el is None:
        return 0
    n = _count(el.text)
    factor = _UNIT_BYTES.get((el.get("unit") or "KiB").strip().lower())
    if n is None or factor is None:
        return 0
    return n * factor // 1024


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

class Virt:
    """Read-only libvirt facts for one URI, memoised for one run.

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

    @property
    def conn(self) -> Any:
        """The read-only connection; raises LibvirtUnavailable with the reason."""
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

    def daemon_gone(self) -> None:
        """The daemon went away during the run: the next run opens a fresh connection."""
        if self.connections is not None:
            self.connections.forget(self.uri, self._conn)

    def close(self) -> None:
        """Close this Virt's own connection (a shared one stays open for the next run)."""
        conn, self._conn = self._conn, None
        if conn is not None and self.connections is None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 (closing: nothing left to report)
                pass

    # domains
    def _domain_info(self, dom: Any, flags: int = 0) -> DomainInfo:
        xml = dom.XMLDesc(flags)
        facts = parse_domain_xml(xml)
        state, _ = dom.state()
        try:
            snaps = dom.snapshotNum(0)
        except Exception:  # noqa: BLE001 (no snapshot support in the driver: none)
            snaps = 0
        return DomainInfo(
            persistent=bool(dom.isPersistent()), active=bool(dom.isActive()),
            state=STATES.get(state, str(state)), autostart=bool(dom.autostart()),
            snapshot_count=snaps, xml=xml, **facts)

    @cached_property
    def domain_names(self) -> tuple[str, ...]:
        return tuple(sorted(d.name() for d in self.conn.listAllDomains(0)))

    def domain(self, name: str) -> DomainInfo | None:
        if name in self._domains:
            return self._domains[name]
        import libvirt

        try:
            info = self._domain_info(self.conn.lookupByName(name))
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                info = None
            else:
                raise
        self._domains[name] = info
        return info

    def domains(self) -> list[DomainInfo]:
        """Every domain; those not read yet are read together (:meth:`_read_all`)."""
        if sum(n not in self._domains for n in self.domain_names) > 1:
            self._read_all()
        return [d for n in self.domain_names if (d := self.domain(n)) is not None]

    def _read_all(self) -> None:
        """Read the domains not read yet in a few calls instead of seven per domain: each
        flag (active, persistent, autostart) from one filtered ``listAllDomains``, every
        state from one ``getAllDomainStats``; then each one's XML and snapshot count (over
        ``qemu+ssh`` each call is a round trip). A domain gone meanwhile reads as absent,
        as :meth:`domain` reads it; a driver without these calls is read one by one."""
        import libvirt

        conn = self.conn
        try:
            listed = {d.name(): d for d in conn.listAllDomains(0)}
            flags = {f: {d.name() for d in conn.listAllDomains(f)} for f in (
                libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE,
                libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT,
                libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART)}
            states = {d.name(): int(st.get("state.state", -1)) for d, st in
                      conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0)}
        except libvirt.libvirtError as e:
            if e.get_error_code() in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG):
                return  # read one by one by domain()
            raise
        for name, dom in listed.items():
            if name in self._domains:
                continue
            try:
                xml = dom.XMLDesc(0)
                state = states[name] if name in states else dom.state()[0]
                try:
                    snaps = dom.snapshotNum(0)
                except Exception:  # noqa: BLE001 (no snapshot support in the driver: none)
                    snaps = 0
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
                self._domains[name] = None
                continue
            self._domains[name] = DomainInfo(
                persistent=name in flags[libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT],
                active=name in flags[libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE],
                state=STATES.get(state, str(state)),
                autostart=name in flags[libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART],
                snapshot_count=snaps, xml=xml, **parse_domain_xml(xml))

    def snapshot_names(self, name: str) -> list[str]:
        dom = self.conn.lookupByName(name)
        return sorted(dom.snapshotListNames(0))

    def domain_config(self, name: str) -> DomainInfo | None:
        """The persistent definition of a domain (``virsh dumpxml --inactive``): what
        ``virsh edit``, ``virsh setvcpus --config`` or ``virt-xml`` change, and what the
        next boot uses. For a shut-off or transient domain it equals :meth:`domain`."""
        if name in self._configs:
            return self._configs[name]
        import libvirt

        try:
            dom = self.conn.lookupByName(name)
            if dom.isActive() and dom.isPersistent():
                info: DomainInfo | None = self._domain_info(
                    dom, libvirt.VIR_DOMAIN_XML_INACTIVE)
            else:
                info = self.domain(name)
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
            info = None
        self._configs[name] = info
        return info

    def block_info(self, name: str, disk: str) -> BlockInfo | None:
        """Capacity and allocation of one disk (its target ``vda`` or its source path) as
        the hypervisor sees it; None when libvirt cannot tell (disk unknown, file gone)."""
        import libvirt

        try:
            cap, alloc, phys = self.conn.lookupByName(name).blockInfo(disk, 0)
        except libvirt.libvirtError:
            return None
        return BlockInfo(capacity=int(cap), allocation=int(alloc), physical=int(phys))

    # networks
    @cached_property
    def network_names(self) -> tuple[str, ...]:
        return tuple(sorted(n.name() for n in self.conn.listAllNetworks(0)))

    def network(self, name: str) -> NetworkInfo | None:
        if name in self._networks:
            return self._networks[name]
        import libvirt

        try:
            net = self.conn.networkLookupByName(name)
            xml = net.XMLDesc(0)
            info: NetworkInfo | None = NetworkInfo(
                active=bool(net.isActive()), persistent=bool(net.isPersistent()),
                autostart=bool(net.autostart()), xml=xml, **parse_network_xml(xml))
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                raise
            info = None
        self._networks[name] = info
        return info

    def networks(self) -> list[NetworkInfo]:
        return [n for x in self.network_names if (n := self.network(x)) is not None]

    def leases(self, network: str) -> list[Lease]:
        net = self.conn.networkLookupByName(network)
        out = []
        for le in net.DHCPLeases():
            out.append(Lease(network=network, mac=le.get("mac", ""), ip=le.get("ipaddr", ""),
                             prefix=le.get("prefix"), hostname=le.get("hostname"),
                             expiry=le.get("expirytime")))
        return out

    # storage
    @cached_property
    def pool_names(self) -> tuple[str, ...]:
        return tuple(sorted(p.name() for p in self.conn.listAllStoragePools(0)))

    def pool(self, name: str) -> PoolInfo | None:
        import libvirt

        try:
            p = self.conn.storagePoolLookupByName(name)
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise
            return None
        xml = p.XMLDesc(0)
        root = ET.fromstring(xml)
        return PoolInfo(
            name=p.name(), uuid=root.findtext("uuid", ""), type=root.get("type", ""),
            target_path=root.findtext("target/path"), active=bool(p.isActive()),
            persistent=bool(p.isPersistent()), autostart=bool(p.autostart()), xml=xml)

    def pools(self) -> list[PoolInfo]:
        """Every pool: its flags from one filtered ``listAllStoragePools`` each, then each
        one's XML (not five calls per pool); a pool gone meanwhile is left out, as
        :meth:`pool` reads it; a driver without the filters is read one by one."""
        import libvirt

        conn = self.conn
        try:
            listed = {p.name(): p for p in conn.listAllStoragePools(0)}
            flags = {f: {p.name() for p in conn.listAllStoragePools(f)} for f in (
                libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE,
                libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_PERSISTENT,
                libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART)}
        except libvirt.libvirtError as e:
            if e.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT,
                                          libvirt.VIR_ERR_INVALID_ARG):
                raise
            return [p for n in self.pool_names if (p := self.pool(n)) is not None]
        out = []
        for name in sorted(listed):
            try:
                xml = listed[name].XMLDesc(0)
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                    raise
                continue
            root = ET.fromstring(xml)
            out.append(PoolInfo(
                name=name, uuid=root.findtext("uuid", ""), type=root.get("type", ""),
                target_path=root.findtext("target/path"),
                active=name in flags[libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE],
                persistent=name in flags[libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_PERSISTENT],
                autostart=name in flags[libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART],
                xml=xml))
        return out

    def volume_by_path(self, path: str) -> VolumeInfo | None:
        import libvirt

        try:
            vol = self.conn.storageVolLookupByPath(path)
        except libvirt.libvirtError:
            return None
        return self._volume(vol)

    def volume(self, pool: str, name: str) -> VolumeInfo | None:
        import libvirt

        try:
            vol = self.conn.storagePoolLookupByName(pool).storageVolLookupByName(name)
        except libvirt.libvirtError:
            return None
        return self._volume(vol)

    def _volume(self, vol: Any) -> VolumeInfo:
        """Raises VolumeUnreadable when libvirt lists the volume but cannot read it."""
        import libvirt

        try:
            _type, capacity, allocation = vol.info()
        except libvirt.libvirtError as e:
            try:
                path = vol.path()
            except libvirt.libvirtError:
                path = vol.name()
            raise VolumeUnreadable(path, str(e).strip()) from None
        try:
            pool = vol.storagePoolLookupByVolume().name()
        except Exception:  # noqa: BLE001 (a volume outside any pool: no pool)
            pool = None
        fmt = None
        try:
            root = ET.fromstring(vol.XMLDesc(0))
            fmt = _attr(root.find("target/format"), "type")
        except Exception:  # noqa: BLE001 (unreadable XML: format unknown)
            pass
        return VolumeInfo(name=vol.name(), path=vol.path(), pool=pool, format=fmt,
                          capacity=capacity, allocation=allocation)

    def node_memory_bytes(self) -> int:
        return int(self.conn.getInfo()[1]) * 1024 * 1024

    def hypervisor_version(self) -> str:
        v = self.conn.getVersion()
        return f"{v // 1000000}.{(v // 1000) % 1000}.{v % 1000}"
