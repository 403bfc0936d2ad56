"""The broken scene of lab 07 (``virtlab start 07`` / ``virtlab finish 07``).

Every object is named ``lab07-*``. This module only declares the scene (``SCENE``);
:mod:`checker.lifecycle` plans, shows, asks, creates, resets and removes, as for any lab.

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

``start`` compares each object with this declaration: what is absent is created, what
differs is reset (and the learner is told what differs), what matches is left alone. So
``start`` run twice gives the same scene, and an interrupted ``start`` converges when run
again. ``finish`` removes every ``lab07-*`` object.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from checker.i18n import Text
from checker.lifecycle import (
    Scene,
    SceneDomain,
    SceneNetwork,
    ScenePool,
    SceneSnapshot,
    SceneVolume,
)

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


@dataclass(frozen=True)
class VM:
    name: str
    mac: str
    model: str
    link: str
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


WEB_VM = VM(WEB, "52:54:00:07:00:01", "rtl8139", "down", "lab07 : serveur web / web server")
DB_VM = VM(DB, "52:54:00:07:00:02", "virtio", "up", "lab07 : base de données / database")

SCENE = Scene(
    prefix=PREFIX,
    pool=ScenePool(POOL, POOL_PATH, what=Text(
        f"pool « dir » sur {POOL_PATH}, pour les disques des VM de la scène",
        f"'dir' pool on {POOL_PATH}, for the disks of the scene's VMs")),
    networks=(SceneNetwork(NET, NET_XML, active=False, autostart=False, what=Text(
        "NAT 192.168.107.0/24, défini mais arrêté, sans démarrage automatique",
        "NAT 192.168.107.0/24, defined but stopped, no autostart")),),
    domains=(
        SceneDomain(
            WEB, WEB_VM.xml, SceneVolume(WEB_VM.volume, DISK_GIB),
            snapshots=tuple(SceneSnapshot(name, f"Ancien snapshot {i} / old snapshot {i}")
                            for i, name in enumerate(SNAPSHOTS, 1)),
            what=Text(f"éteinte, interface débranchée de modèle rtl8139 sur {NET}, "
                      f"{len(SNAPSHOTS)} vieux snapshots, disque qcow2 fin de {DISK_GIB} Gio "
                      "({virt_type})",
                      f"shut off, unplugged rtl8139 interface on {NET}, {len(SNAPSHOTS)} old "
                      f"snapshots, thin {DISK_GIB} GiB qcow2 disk ({{virt_type}})")),
        SceneDomain(
            DB, DB_VM.xml, SceneVolume(DB_VM.volume, DISK_GIB),
            what=Text(f"éteinte, interface virtio sur {NET} (réseau NAT), disque qcow2 fin de "
                      f"{DISK_GIB} Gio ({{virt_type}})",
                      f"shut off, virtio interface on {NET} (a NAT network), thin {DISK_GIB} GiB "
                      "qcow2 disk ({virt_type})")),
    ),
)
