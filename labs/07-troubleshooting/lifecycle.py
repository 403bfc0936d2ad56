"""The broken scene of lab 07 (``virtlab start 07`` / ``virtlab finish 07``).

Every object is named ``lab07-*``; see :mod:`checker.lifecycle` for the interface.

The scene:
- storage pool ``lab07-pool``, a directory pool on /var/lib/libvirt/lab07-pool, holding the
  two thin qcow2 disks. A pool of its own rather than the learner's pool ``default``: the
  scene is then the same on every host (whether ``default`` exists or not), ``finish``
  removes it whole, and nothing not named ``lab07-*`` gains even a volume. It lives beside
  ``images/``, not inside it, so it does not show up as a folder in pool ``default``;
- network ``lab07-net`` (NAT, 192.168.107.0/24) defined but stopped, without autostart;
- VM ``lab07-web``: shut off, its interface on ``lab07-net`` unplugged (link down), model
  ``rtl8139``, no nwfilter, five old snapshots; a blank disk (it sits in the BIOS once run);
- VM ``lab07-db``: shut off, its interface on ``lab07-net`` (a NAT network: not isolated).

Domains are ``<domain type='qemu'>`` (TCG) unless KVM is really usable
(:func:`checker.lifecycle.domain_type`), 128 MiB, one vCPU.

``plan()`` compares each object with the scene: what is absent is created, what differs is
reset (and the learner is told what differs), what matches is left alone. So ``start`` run
twice gives the same scene, and an interrupted ``start`` converges when run again.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from checker.lifecycle import Step, domain_type
from checker.model import Text
from checker.probes.libvirt import parse_domain_xml, parse_network_xml

PREFIX = "lab07-"
POOL = "lab07-pool"
POOL_PATH = "/var/lib/libvirt/lab07-pool"
NET = "lab07-net"
NET_BRIDGE = "virbr-lab07"
NET_ADDRESS = "192.168.107.1"
WEB = "lab07-web"
DB = "lab07-db"
MEMORY_MIB = 128
DISK_GIB = 1
# Monthly snapshots nobody cleaned up; the newest is the current one.
SNAPSHOTS = ("snap-2024-01", "snap-2024-02", "snap-2024-03", "snap-2024-04", "snap-2024-05")

NET_XML = f"""<network>
  <name>{NET}</name>
  <forward mode='nat'/>
  <bridge name='{NET_BRIDGE}' stp='on' delay='0'/>
  <ip address='{NET_ADDRESS}' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.107.100' end='192.168.107.200'/>
    </dhcp>
  </ip>
</network>
"""

POOL_XML = f"""<pool type='dir'>
  <name>{POOL}</name>
  <target><path>{POOL_PATH}</path></target>
</pool>
"""


@dataclass(frozen=True)
class VM:
    name: str
    mac: str
    model: str
    link: str
    snapshots: tuple[str, ...]
    title: str

    @property
    def volume(self) -> str:
        return f"{self.name}.qcow2"

    @property
    def disk_path(self) -> str:
        return f"{POOL_PATH}/{self.volume}"

    def xml(self, virt_type: str) -> str:
        return f"""<domain type={quoteattr(virt_type)}>
  <name>{self.name}</name>
  <title>{self.title}</title>
  <memory unit='MiB'>{MEMORY_MIB}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file={quoteattr(self.disk_path)}/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <mac address='{self.mac}'/>
      <source network='{NET}'/>
      <model type='{self.model}'/>
      <link state='{self.link}'/>
    </interface>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='none'/>
  </devices>
</domain>
"""

    def volume_xml(self) -> str:
        return (f"<volume><name>{self.volume}</name>"
                f"<capacity unit='GiB'>{DISK_GIB}</capacity><allocation>0</allocation>"
                "<target><format type='qcow2'/></target></volume>")


VMS = (
    VM(WEB, "52:54:00:07:00:01", "rtl8139", "down", SNAPSHOTS,
       "lab07 : serveur web / web server"),
    VM(DB, "52:54:00:07:00:02", "virtio", "up", (),
       "lab07 : base de données / database"),
)


# --- reading the current state (no change) ----------------------------------------------

def _libvirt() -> Any:
    import libvirt

    return libvirt


def _lookup(fn: Any, name: str, code: int) -> Any | None:
    libvirt = _libvirt()
    try:
        return fn(name)
    except libvirt.libvirtError as e:
        if e.get_error_code() == code:
            return None
        raise


def _domain(conn: Any, name: str) -> Any | None:
    return _lookup(conn.lookupByName, name, _libvirt().VIR_ERR_NO_DOMAIN)


def _network(conn: Any, name: str) -> Any | None:
    return _lookup(conn.networkLookupByName, name, _libvirt().VIR_ERR_NO_NETWORK)


def _pool(conn: Any, name: str = POOL) -> Any | None:
    return _lookup(conn.storagePoolLookupByName, name, _libvirt().VIR_ERR_NO_STORAGE_POOL)


def _volume(pool: Any, name: str) -> Any | None:
    return _lookup(pool.storageVolLookupByName, name, _libvirt().VIR_ERR_NO_STORAGE_VOL)


def _disk_paths(dom: Any) -> set[str]:
    libvirt = _libvirt()
    paths = set()
    for flags in (0, libvirt.VIR_DOMAIN_XML_INACTIVE):
        try:
            facts = parse_domain_xml(dom.XMLDesc(flags))
        except libvirt.libvirtError:
            continue
        paths |= {d.path for d in facts["disks"] if d.path}
    return paths


def _users(conn: Any, path: str) -> list[str]:
    """Domains not named lab07-* whose disks use ``path``."""
    return sorted(d.name() for d in conn.listAllDomains(0)
                  if not d.name().startswith(PREFIX) and path in _disk_paths(d))


def _diff(fr: str, en: str) -> Text:
    return Text(fr, en)


def _network_diffs(net: Any) -> list[Text]:
    facts = parse_network_xml(net.XMLDesc(0))
    out = []
    if net.isActive():
        out.append(_diff("actif (scène : arrêté)", "active (scene: stopped)"))
    if net.autostart():
        out.append(_diff("démarrage automatique (scène : non)", "autostarts (scene: no)"))
    if not net.isPersistent():
        out.append(_diff("transitoire", "transient"))
    if facts["forward_mode"] != "nat":
        out.append(_diff(f"forward {facts['forward_mode']} (scène : nat)",
                         f"forward {facts['forward_mode']} (scene: nat)"))
    if facts["bridge"] != NET_BRIDGE:
        out.append(_diff(f"pont {facts['bridge']} (scène : {NET_BRIDGE})",
                         f"bridge {facts['bridge']} (scene: {NET_BRIDGE})"))
    addrs = [ip.address for ip in facts["ips"]]
    if addrs != [NET_ADDRESS]:
        out.append(_diff(f"adresses {addrs} (scène : {NET_ADDRESS})",
                         f"addresses {addrs} (scene: {NET_ADDRESS})"))
    return out


def _domain_diffs(conn: Any, dom: Any, vm: VM, virt_type: str) -> list[Text]:
    libvirt = _libvirt()
    out: list[Text] = []
    if not dom.isPersistent():
        out.append(_diff("transitoire", "transient"))
    if dom.isActive():
        out.append(_diff("démarrée (scène : éteinte)", "running (scene: shut off)"))
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) if dom.isPersistent() else dom.XMLDesc(0)
    f = parse_domain_xml(xml)
    if f["virt_type"] != virt_type:
        out.append(_diff(f"type {f['virt_type']} (scène : {virt_type})",
                         f"type {f['virt_type']} (scene: {virt_type})"))
    if f["memory_kib"] != MEMORY_MIB * 1024:
        out.append(_diff(f"mémoire {f['memory_kib'] // 1024} Mio (scène : {MEMORY_MIB})",
                         f"memory {f['memory_kib'] // 1024} MiB (scene: {MEMORY_MIB})"))
    ifaces = f["interfaces"]
    if len(ifaces) != 1:
        out.append(_diff(f"{len(ifaces)} interfaces (scène : 1)", f"{len(ifaces)} interfaces (scene: 1)"))
    else:
        i = ifaces[0]
        for what_fr, what_en, got, want in (
                ("réseau", "network", i.network, NET), ("modèle", "model", i.model, vm.model),
                ("lien", "link", i.link_state, vm.link), ("filtre", "filter", i.filterref, None),
                ("MAC", "MAC", i.mac, vm.mac)):
            if got != want:
                out.append(_diff(f"{what_fr} {got} (scène : {want})", f"{what_en} {got} (scene: {want})"))
    disks = [d.path for d in f["disks"]]
    if disks != [vm.disk_path]:
        out.append(_diff(f"disques {disks} (scène : {vm.disk_path})",
                         f"disks {disks} (scene: {vm.disk_path})"))
    try:
        snaps = sorted(dom.snapshotListNames(0))
    except libvirt.libvirtError:
        snaps = []
    if snaps != sorted(vm.snapshots):
        out.append(_diff(f"{len(snaps)} snapshot(s) (scène : {len(vm.snapshots)})",
                         f"{len(snaps)} snapshot(s) (scene: {len(vm.snapshots)})"))
    pool = _pool(conn)
    if pool is None or not pool.isActive() or _volume(pool, vm.volume) is None:
        out.append(_diff(f"disque {vm.volume} absent", f"disk {vm.volume} missing"))
    return out


# --- changing (run by checker.lifecycle only, after the learner agreed) --------------------

def _remove_domain(conn: Any, name: str) -> None:
    libvirt = _libvirt()
    dom = _domain(conn, name)
    if dom is None:
        return
    if dom.isActive():
        dom.destroy()
    if dom.isPersistent():
        # The internal snapshots live inside the qcow2 file, deleted with the volume.
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                          | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                          | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                          | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)


def _make_pool(conn: Any) -> None:
    pool = _pool(conn)
    if pool is None:
        pool = conn.storagePoolDefineXML(POOL_XML, 0)
    if not pool.isActive():
        pool.build(0)  # mkdir (no-op when the folder exists)
        pool.create(0)
    pool.setAutostart(1)


def _make_network(conn: Any) -> None:
    net = _network(conn, NET)
    if net is not None:
        if net.isActive():
            net.destroy()
        if net.isPersistent():
            net.undefine()
    net = conn.networkDefineXML(NET_XML)
    net.setAutostart(0)


def _make_vm(vm: VM) -> Any:
    def run(conn: Any) -> None:
        _remove_domain(conn, vm.name)
        pool = _pool(conn)
        assert pool is not None, "the pool step runs first"
        pool.refresh(0)
        old = _volume(pool, vm.volume)
        if old is not None:
            old.delete(0)
        pool.createXML(vm.volume_xml(), 0)
        dom = conn.defineXML(vm.xml(domain_type(conn)))
        for i, snap in enumerate(vm.snapshots, 1):
            dom.snapshotCreateXML(
                f"<domainsnapshot><name>{snap}</name><description>"
                f"Ancien snapshot {i} / old snapshot {i}</description></domainsnapshot>", 0)
    return run


# --- the two functions the machinery calls -----------------------------------------------

def plan(conn: Any) -> list[Step]:
    """What ``virtlab start 07`` will do, from the current state (changes nothing)."""
    steps: list[Step] = []
    virt_type = domain_type(conn)

    pool = _pool(conn)
    if pool is None:
        steps.append(Step("create", "pool", POOL, Text(
            f"pool « dir » sur {POOL_PATH}, pour les disques des VM de la scène",
            f"'dir' pool on {POOL_PATH}, for the disks of the scene's VMs"), _make_pool))
    elif not pool.isActive() or not pool.autostart():
        steps.append(Step("reset", "pool", POOL, Text("inactif ou sans démarrage automatique",
                                                      "inactive or not autostarted"), _make_pool))
    else:
        steps.append(Step("keep", "pool", POOL, Text("déjà en place", "already in place")))

    net = _network(conn, NET)
    net_what = Text("NAT 192.168.107.0/24, défini mais arrêté, sans démarrage automatique",
                    "NAT 192.168.107.0/24, defined but stopped, no autostart")
    if net is None:
        steps.append(Step("create", "network", NET, net_what, _make_network))
    elif diffs := _network_diffs(net):
        steps.append(Step("reset", "network", NET, _join(diffs), _make_network))
    else:
        steps.append(Step("keep", "network", NET, Text("déjà en place", "already in place")))

    whats = {
        WEB: Text(f"éteinte, interface débranchée de modèle rtl8139 sur {NET}, "
                  f"{len(SNAPSHOTS)} vieux snapshots, disque qcow2 fin de {DISK_GIB} Gio ({virt_type})",
                  f"shut off, unplugged rtl8139 interface on {NET}, {len(SNAPSHOTS)} old "
                  f"snapshots, thin {DISK_GIB} GiB qcow2 disk ({virt_type})"),
        DB: Text(f"éteinte, interface virtio sur {NET} (réseau NAT), disque qcow2 fin de "
                 f"{DISK_GIB} Gio ({virt_type})",
                 f"shut off, virtio interface on {NET} (a NAT network), thin {DISK_GIB} GiB "
                 f"qcow2 disk ({virt_type})"),
    }
    for vm in VMS:
        users = _users(conn, vm.disk_path)
        if users:
            steps.append(Step("blocked", "domain", vm.name, Text(
                f"son disque {vm.disk_path} sert à la VM {', '.join(users)}, qui n'est pas "
                f"nommée {PREFIX}* : si c'est {vm.name} renommée, rendez-lui son nom "
                f"(virsh domrename {users[0]} {vm.name}, VM éteinte)",
                f"its disk {vm.disk_path} is used by VM {', '.join(users)}, not named "
                f"{PREFIX}*: if that is {vm.name} renamed, give it its name back "
                f"(virsh domrename {users[0]} {vm.name}, VM shut off)")))
            continue
        dom = _domain(conn, vm.name)
        if dom is None:
            steps.append(Step("create", "domain", vm.name, whats[vm.name], _make_vm(vm)))
        elif diffs := _domain_diffs(conn, dom, vm, virt_type):
            steps.append(Step("reset", "domain", vm.name, _join(diffs), _make_vm(vm)))
        else:
            steps.append(Step("keep", "domain", vm.name, Text("déjà en place", "already in place")))

    scene = {NET, WEB, DB}
    extra = sorted({("network", n.name()) for n in conn.listAllNetworks(0)
                    if n.name().startswith(PREFIX) and n.name() not in scene}
                   | {("domain", d.name()) for d in conn.listAllDomains(0)
                      if d.name().startswith(PREFIX) and d.name() not in scene})
    for kind, name in extra:
        steps.append(Step("keep", kind, name, Text(
            "hors de la scène, gardé (virtlab finish le supprimera)",
            "not part of the scene, kept (virtlab finish will remove it)")))
    return steps


def _join(diffs: list[Text]) -> Text:
    return Text(", ".join(d.fr for d in diffs), ", ".join(d.en for d in diffs))


def cleanup(conn: Any) -> list[Step]:
    """What ``virtlab finish 07`` will do: remove every ``lab07-*`` object, nothing else."""
    libvirt = _libvirt()
    steps: list[Step] = []
    kept_paths: set[str] = set()  # volumes a domain not named lab07-* uses

    for dom in sorted(conn.listAllDomains(0), key=lambda d: d.name()):
        name = dom.name()
        if name.startswith(PREFIX):
            continue
        for path in _disk_paths(dom):
            if POOL_PATH in path or "/" + PREFIX in path:
                kept_paths.add(path)
                steps.append(Step("keep", "volume", path, Text(
                    f"disque de la VM {name}, qui n'est pas nommée {PREFIX}* (si c'est une VM "
                    f"du lab renommée : virsh domrename {name} lab07-…, puis relancez finish)",
                    f"disk of VM {name}, not named {PREFIX}* (if it is a lab VM renamed: "
                    f"virsh domrename {name} lab07-…, then run finish again)")))

    for dom in sorted(conn.listAllDomains(0), key=lambda d: d.name()):
        name = dom.name()
        if not name.startswith(PREFIX):
            continue
        vols = []
        for path in sorted(_disk_paths(dom)):
            try:
                vol = conn.storageVolLookupByPath(path)
            except libvirt.libvirtError:
                continue
            try:
                in_lab_pool = vol.storagePoolLookupByVolume().name().startswith(PREFIX)
            except libvirt.libvirtError:
                in_lab_pool = False
            if (in_lab_pool or vol.name().startswith(PREFIX)) and path not in kept_paths:
                vols.append(path)
        try:
            nsnap = dom.snapshotNum(0)
        except libvirt.libvirtError:
            nsnap = 0
        steps.append(Step("remove", "domain", name, Text(
            f"{'arrêtée puis ' if dom.isActive() else ''}supprimée avec ses {nsnap} snapshot(s)"
            + (f" et son disque {', '.join(vols)}" if vols else ""),
            f"{'stopped then ' if dom.isActive() else ''}removed with its {nsnap} snapshot(s)"
            + (f" and its disk {', '.join(vols)}" if vols else "")),
            _remove_vm(name, vols)))

    for net in sorted(conn.listAllNetworks(0), key=lambda n: n.name()):
        if net.name().startswith(PREFIX):
            steps.append(Step("remove", "network", net.name(),
                              Text("arrêté puis supprimé" if net.isActive() else "supprimé",
                                   "stopped then removed" if net.isActive() else "removed"),
                              _remove_network(net.name())))

    for pool in sorted(conn.listAllStoragePools(0), key=lambda p: p.name()):
        pname = pool.name()
        if pname.startswith(PREFIX):
            blocked = sorted(p for p in kept_paths if p.startswith(_pool_path(pool) + "/"))
            if blocked:
                steps.append(Step("keep", "pool", pname, Text(
                    f"gardé : il contient {', '.join(blocked)}, disque d'une VM qui n'est pas "
                    f"nommée {PREFIX}*",
                    f"kept: it holds {', '.join(blocked)}, the disk of a VM not named {PREFIX}*")))
            else:
                steps.append(Step("remove", "pool", pname, Text(
                    "supprimé avec ses volumes et son dossier",
                    "removed with its volumes and its folder"), _remove_pool(pname)))
        elif pool.isActive():
            # lab07-* volumes that ended up in another pool (e.g. made by the learner)
            try:
                pool.refresh(0)
                names = pool.listVolumes()
            except libvirt.libvirtError:
                continue
            for vname in sorted(names):
                if not vname.startswith(PREFIX):
                    continue
                vol = pool.storageVolLookupByName(vname)
                if vol.path() in kept_paths:
                    continue
                steps.append(Step("remove", "volume", vname, Text(
                    f"dans le pool {pname}", f"in pool {pname}"), _remove_volume(pname, vname)))
    return steps


def _pool_path(pool: Any) -> str:
    try:
        return (ET.fromstring(pool.XMLDesc(0)).findtext("target/path") or "").rstrip("/")
    except Exception:
        return ""


def _remove_vm(name: str, vol_paths: list[str]) -> Any:
    def run(conn: Any) -> None:
        libvirt = _libvirt()
        _remove_domain(conn, name)
        for path in vol_paths:
            try:
                conn.storageVolLookupByPath(path).delete(0)
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise
    return run


def _remove_network(name: str) -> Any:
    def run(conn: Any) -> None:
        net = _network(conn, name)
        if net is None:
            return
        if net.isActive():
            net.destroy()
        if net.isPersistent():
            net.undefine()
    return run


def _remove_pool(name: str) -> Any:
    def run(conn: Any) -> None:
        libvirt = _libvirt()
        pool = _pool(conn, name)
        if pool is None:
            return
        if not pool.isActive():
            try:
                pool.create(0)  # to list and delete its volumes
            except libvirt.libvirtError:  # its folder is gone: only the definition is left
                if pool.isPersistent():
                    pool.undefine()
                return
        pool.refresh(0)
        for vol in pool.listAllVolumes(0):
            vol.delete(0)
        pool.destroy()
        try:
            pool.delete(0)  # rmdir of its (now empty) folder
        except libvirt.libvirtError:
            pass  # a file the pool does not list (not ours to delete) keeps the folder
        if pool.isPersistent():
            pool.undefine()
    return run


def _remove_volume(pool_name: str, vol_name: str) -> Any:
    def run(conn: Any) -> None:
        pool = _pool(conn, pool_name)
        vol = _volume(pool, vol_name) if pool is not None else None
        if vol is not None:
            vol.delete(0)
    return run
