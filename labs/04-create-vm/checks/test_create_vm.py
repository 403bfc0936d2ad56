"""Checks of lab 04-create-vm (testinfra test module; see checker.dsl).

The VM's hardware is judged on its persistent definition (``virsh dumpxml --inactive``):
that is what ``virsh edit``, ``virsh setvcpus --config`` and ``virt-xml`` change and what
the next boot uses. When the running VM still differs, the message says a restart applies it.
"""

from checker.checks import GIB as GIB_UNIT
from checker.checks import NONE_F, decimal, definition, listed
from checker.dsl import objective
from checker.markup import code, literal
from checker.probes.libvirt import VolumeUnreadable

VM = "test-debian-12"
POOL = "default"
MIB = 1024 * 1024
GIB = 1024 * MIB
MIN_MEMORY_MIB = 512
HOST_KEEPS = 2 * GIB
#: What these checks read from libvirt, read ahead in one batch while the host's commands
#: run (checker.engine.lab_virt_prefetch, checker.probes.libvirt.Virt.preload).
VIRT_PREFETCH = ("domains", "domain-configs", "snapshots")


def _vm(virt, obj):
    """The domain, or a failure listing the domains that do exist."""
    dom = virt.domain(VM)
    if dom is None:
        names = virt.domain_names
        obj.evidence(vm_found=False, domains=list(names[:50]))
        obj.fail(fr=f"VM `{VM}` introuvable ; VM existantes : {listed(names, none=NONE_F).fr}.",
                 en=f"VM `{VM}` not found; existing VMs: {listed(names, none=NONE_F).en}.")
    return dom


def _config(virt, obj):
    """(live domain, persistent definition)."""
    dom = _vm(virt, obj)
    return dom, definition(virt, VM) or dom


def _restart_note(dom, changed):
    if dom.active and changed:
        return (" La VM en marche utilise encore l'ancienne valeur : redémarrez-la pour "
                "l'appliquer.",
                " The running VM still uses the old value: restart it to apply it.")
    return ("", "")


# --- lifecycle -------------------------------------------------------------------------

@objective("vm-defined")
def test_vm_defined(virt, obj):
    dom = _vm(virt, obj)
    obj.evidence(vm_found=True, persistent=dom.persistent, state=dom.state, uuid=dom.uuid,
                 virt_type=dom.virt_type)
    if not dom.persistent:
        obj.fail(fr=f"`{VM}` existe mais est transitoire (virsh create) : elle disparaîtra à "
                    f"l'arrêt. virsh dumpxml {VM} > {VM}.xml puis virsh define {VM}.xml",
                 en=f"`{VM}` exists but is transient (virsh create): it will vanish when it "
                    f"stops. virsh dumpxml {VM} > {VM}.xml, then virsh define {VM}.xml")
    obj.ok(fr=f"`{VM}` est définie (domaine {dom.virt_type}, {dom.state}).",
           en=f"`{VM}` is defined ({dom.virt_type} domain, {dom.state}).")


@objective("vm-running")
def test_vm_running(virt, obj):
    dom = _vm(virt, obj)
    obj.evidence(state=dom.state, active=dom.active)
    if dom.state != "running":
        obj.fail(fr=f"`{VM}` est dans l'état {dom.state}, pas running : virsh start {VM}"
                    + (f" (suspendue : virsh resume {VM})" if dom.state == "paused" else ""),
                 en=f"`{VM}` is {dom.state}, not running: virsh start {VM}"
                    + (f" (paused: virsh resume {VM})" if dom.state == "paused" else ""))
    obj.ok(fr=f"`{VM}` est en marche.", en=f"`{VM}` is running.")


@objective("vm-snapshot")
def test_vm_snapshot(virt, obj):
    _vm(virt, obj)  # the VM is there (else this fails)
    names = virt.snapshot_names(VM)
    obj.evidence(snapshots=len(names), names=names[:20])
    if not names:
        obj.fail(fr=f"`{VM}` n'a aucun snapshot : virsh snapshot-create-as {VM} initial "
                    "\"État après création\"",
                 en=f"`{VM}` has no snapshot: virsh snapshot-create-as {VM} initial "
                    "\"State after creation\"")
    obj.ok(fr=f"`{VM}` a {len(names)} snapshot(s) : {listed(names, 5, none=NONE_F).fr}.",
           en=f"`{VM}` has {len(names)} snapshot(s): {listed(names, 5, none=NONE_F).en}.")


# --- resources ---------------------------------------------------------------------------

@objective("vm-vcpus")
def test_vm_vcpus(virt, facts, obj):
    dom, cfg = _config(virt, obj)
    cores = facts.cores
    n = cfg.vcpus
    obj.evidence(vcpus=n, live_vcpus=dom.vcpus if dom.active else None, host_cores=cores)
    fix = f"virsh setvcpus {VM} {min(2, max(cores, 1))} --config --maximum"
    note = _restart_note(dom, dom.vcpus != n)
    if n > cores:
        obj.fail(fr=f"{n} vCPU, l'hôte a {cores} cœur(s) : ne dépassez pas le nombre de cœurs "
                    f"physiques. {fix}",
                 en=f"{n} vCPUs, host has {cores} core(s): stay within the physical cores. {fix}")
    if not 1 <= n <= 2:
        obj.fail(fr=f"{n} vCPU : pour débuter, 1 ou 2 par VM. {fix}",
                 en=f"{n} vCPUs: to begin with, 1 or 2 per VM. {fix}")
    obj.ok(fr=f"{n} vCPU, l'hôte a {cores} cœur(s).{note[0]}",
           en=f"{n} vCPU(s), host has {cores} core(s).{note[1]}")


@objective("vm-memory")
def test_vm_memory(virt, facts, obj):
    dom, cfg = _config(virt, obj)
    mem_mib = cfg.memory_kib // 1024
    host_bytes = facts.mem_total or virt.node_memory_bytes()
    obj.evidence(memory_mib=mem_mib, live_memory_mib=dom.memory_mib if dom.active else None,
                 host_memory_bytes=host_bytes)
    if mem_mib < MIN_MEMORY_MIB:
        obj.fail(fr=f"{mem_mib} Mio : il en faut au moins {MIN_MEMORY_MIB} pour Debian 12. "
                    f"virsh setmaxmem {VM} 1G --config ; virsh setmem {VM} 1G --config",
                 en=f"{mem_mib} MiB: Debian 12 needs at least {MIN_MEMORY_MIB}. "
                    f"virsh setmaxmem {VM} 1G --config; virsh setmem {VM} 1G --config")
    # What the host gives away: every running or autostart domain, and this VM in any case
    # (it is meant to run), at the larger of its running and configured sizes.
    counted = {}
    for d in virt.domains():
        if d.name == VM:
            counted[d.name] = max(d.memory_kib, cfg.memory_kib) * 1024
        elif d.active or d.autostart:
            counted[d.name] = d.memory_kib * 1024
    counted.setdefault(VM, cfg.memory_kib * 1024)
    left = host_bytes - sum(counted.values())
    top = sorted(counted.items(), key=lambda kv: -kv[1])
    obj.evidence(domains_counted={k: v // MIB for k, v in top[:20]}, host_left_bytes=left)
    vm_bytes = counted[VM]

    def listing(lang):
        parts = [f"{code(k)} {decimal(v / GIB).get(lang)} {GIB_UNIT.get(lang)}" for k, v in top[:5]]
        if len(top) > 5:
            parts.append("…")
        return ", ".join(parts)

    if left < HOST_KEEPS:
        obj.fail(
            fr=f"L'hôte a {decimal(host_bytes / GIB).fr} Gio ; les VM en marche ou en autostart "
               f"en prennent {decimal((host_bytes - left) / GIB).fr} ({listing('fr')}) : il lui "
               f"reste {decimal(left / GIB).fr} Gio, moins que les 2 Gio à garder. Réduisez la "
               "mémoire des VM (virsh setmaxmem/setmem --config) ou retirez l'autostart des "
               "autres (virsh autostart --disable NOM).",
            en=f"The host has {decimal(host_bytes / GIB).en} GiB; running or autostart VMs take "
               f"{decimal((host_bytes - left) / GIB).en} ({listing('en')}): "
               f"{decimal(left / GIB).en} GiB left, less than the 2 GiB to keep. Shrink the "
               "VMs' memory (virsh setmaxmem/setmem --config) or remove the others' autostart "
               "(virsh autostart --disable NAME).")
    note = _restart_note(dom, dom.memory_kib != cfg.memory_kib)
    obj.ok(fr=f"{mem_mib} Mio ; l'hôte garde {decimal(left / GIB).fr} Gio sur "
              f"{decimal(host_bytes / GIB).fr} ({VM} : {decimal(vm_bytes / GIB).fr} Gio).{note[0]}",
           en=f"{mem_mib} MiB; the host keeps {decimal(left / GIB).en} GiB of "
              f"{decimal(host_bytes / GIB).en} ({VM}: {decimal(vm_bytes / GIB).en} GiB).{note[1]}")


# --- disk ----------------------------------------------------------------------------------

def _first_disk(virt, obj):
    dom, cfg = _config(virt, obj)
    disks = [d for d in cfg.disks if d.device == "disk"]
    obj.evidence(disks=len(disks), other_devices=[d.device for d in cfg.disks
                                                  if d.device != "disk"][:10])
    if not disks:
        obj.fail(fr=f"`{VM}` n'a aucun disque (seulement {len(cfg.disks)} lecteur(s) "
                    "CD/disquette). Ajoutez un volume qcow2 du pool default : virsh "
                    f"vol-create-as default {VM}.qcow2 10G --format qcow2, puis virt-xml {VM} "
                    f"--add-device --disk vol=default/{VM}.qcow2,bus=virtio",
                 en=f"`{VM}` has no disk (only {len(cfg.disks)} CD/floppy drive(s)). Add a "
                    f"qcow2 volume of pool default: virsh vol-create-as default {VM}.qcow2 10G "
                    f"--format qcow2, then virt-xml {VM} --add-device --disk "
                    f"vol=default/{VM}.qcow2,bus=virtio")
    disk = disks[0]
    where = disk.path or (f"{disk.pool}/{disk.volume}" if disk.pool else None)
    obj.evidence(disk_target=disk.target, disk_type=disk.type, driver_format=disk.format,
                 source=where)
    return dom, cfg, disk, where


def _volume(virt, obj, disk, where):
    """The pool volume behind a disk, None if it is none; fails if libvirt cannot read it."""
    try:
        if disk.type == "volume" and disk.pool and disk.volume:
            return virt.volume(disk.pool, disk.volume)
        if disk.path:
            return virt.volume_by_path(disk.path)
    except VolumeUnreadable as e:
        obj.evidence(volume_error=e.reason)
        obj.fail(fr=f"libvirt connaît le volume {literal(e.path)} mais ne peut pas le lire "
                    f"({literal(e.reason)}). Le fichier a-t-il été supprimé ou déplacé ? virsh "
                    "pool-refresh default, puis vérifiez virsh vol-list default.",
                 en=f"libvirt knows volume {literal(e.path)} but cannot read it "
                    f"({literal(e.reason)}). Was the file deleted or moved? virsh pool-refresh "
                    "default, then check virsh vol-list default.")
    return None


@objective("vm-disk-qcow2")
def test_vm_disk_qcow2(virt, obj):
    dom, cfg, disk, where = _first_disk(virt, obj)
    if where is None:
        obj.fail(fr=f"Le premier disque de `{VM}` ({literal(disk.target or '')}) est de type "
                    f"{literal(disk.type)}, sans fichier local : ce n'est pas un volume du pool "
                    "default.",
                 en=f"The first disk of `{VM}` ({literal(disk.target or '')}) is of type "
                    f"{literal(disk.type)}, with no local file: not a volume of pool default.")
    vol = _volume(virt, obj, disk, where)
    obj.evidence(volume=vol.name if vol else None, volume_pool=vol.pool if vol else None,
                 volume_format=vol.format if vol else None)
    if vol is None:
        obj.fail(fr=f"Le premier disque de `{VM}` ({literal(where)}) n'est pas un volume connu de "
                    "libvirt : il doit être dans le pool default (/var/lib/libvirt/images). "
                    "Si le fichier y est bien, virsh pool-refresh default ; sinon créez-y le "
                    f"disque : virsh vol-create-as default {VM}.qcow2 10G --format qcow2",
                 en=f"The first disk of `{VM}` ({literal(where)}) is not a volume libvirt knows: "
                    "it must be in pool default (/var/lib/libvirt/images). If the file is "
                    "there, virsh pool-refresh default; otherwise create the disk there: "
                    f"virsh vol-create-as default {VM}.qcow2 10G --format qcow2")
    if vol.pool != POOL:
        obj.fail(fr=f"Le premier disque de `{VM}` est le volume {literal(vol.name)} du pool "
                    f"{code(vol.pool)}, pas du pool `{POOL}`.",
                 en=f"The first disk of `{VM}` is volume {literal(vol.name)} of pool "
                    f"{code(vol.pool)}, not of pool `{POOL}`.")
    fmt = disk.format or "raw"  # QEMU reads a disk without driver type as raw
    if fmt != "qcow2" or (vol.format and vol.format != "qcow2"):
        obj.fail(fr=f"Le premier disque de `{VM}` ({literal(vol.name)}) est au format "
                    f"{literal(vol.format or fmt)} (pilote {literal(fmt)}), pas qcow2 : le cours "
                    "recommande qcow2 pour les snapshots et l'allocation dynamique. VM éteinte : "
                    f"qemu-img convert -O qcow2 … puis virsh edit {VM} (type='qcow2').",
                 en=f"The first disk of `{VM}` ({literal(vol.name)}) is "
                    f"{literal(vol.format or fmt)} (driver {literal(fmt)}), not qcow2: the course "
                    "recommends qcow2 for snapshots and thin provisioning. With the VM shut off: "
                    f"qemu-img convert -O qcow2 …, then virsh edit {VM} (type='qcow2').")
    obj.ok(fr=f"Premier disque : volume qcow2 {literal(vol.name)} du pool `{POOL}`.",
           en=f"First disk: qcow2 volume {literal(vol.name)} of pool `{POOL}`.")


@objective("vm-disk-thin")
def test_vm_disk_thin(virt, obj):
    dom, cfg, disk, where = _first_disk(virt, obj)
    vol = _volume(virt, obj, disk, where) if where else None
    if vol is not None:
        capacity, allocation, source = vol.capacity, vol.allocation, f"volume {vol.pool}/{vol.name}"
    else:
        # Not a pool volume (vm-disk-qcow2 says so): ask the hypervisor about the disk.
        info = virt.block_info(VM, disk.path or disk.target or "")
        if info is None:
            obj.fail(fr=f"libvirt ne peut pas lire la taille du premier disque de `{VM}` "
                        f"({literal(where or disk.target or '')}) : le fichier existe-t-il ? virsh "
                        f"domblkinfo {VM} {literal(disk.target or '')}",
                     en=f"libvirt cannot read the size of `{VM}`'s first disk "
                        f"({literal(where or disk.target or '')}): does the file exist? virsh "
                        f"domblkinfo {VM} {literal(disk.target or '')}")
        capacity, allocation, source = info.capacity, info.allocation, f"disk {disk.target}"
    obj.evidence(capacity=capacity, allocation=allocation, read_from=source)
    if capacity <= 0 or allocation >= capacity:
        obj.fail(fr=f"Le disque est préalloué : {decimal(allocation / GIB, 2).fr} Gio alloués "
                    f"pour {decimal(capacity / GIB, 2).fr} Gio de capacité ({literal(source)}). "
                    "Recréez-le sans préallocation (virsh vol-create-as … --format qcow2).",
                 en=f"The disk is preallocated: {decimal(allocation / GIB, 2).en} GiB allocated "
                    f"for {decimal(capacity / GIB, 2).en} GiB of capacity ({literal(source)}). "
                    "Create it again without preallocation (virsh vol-create-as … --format qcow2).")
    obj.ok(fr=f"Allocation dynamique : {decimal(allocation / MIB).fr} Mio utilisés sur "
              f"{decimal(capacity / GIB).fr} Gio ({literal(source)}).",
           en=f"Thin-provisioned: {decimal(allocation / MIB).en} MiB used of "
              f"{decimal(capacity / GIB).en} GiB ({literal(source)}).")


# --- devices -------------------------------------------------------------------------------

@objective("vm-nic-virtio")
def test_vm_nic_virtio(virt, obj):
    dom, cfg = _config(virt, obj)
    nics = [{"type": i.type, "source": i.network or i.bridge, "model": i.model}
            for i in cfg.interfaces]
    obj.evidence(interfaces=nics[:20])
    if not nics:
        obj.fail(fr=f"`{VM}` n'a aucune carte réseau. virt-xml {VM} --add-device --network "
                    "network=default,model=virtio",
                 en=f"`{VM}` has no network interface. virt-xml {VM} --add-device --network "
                    "network=default,model=virtio")
    if not any(n["model"] == "virtio" for n in nics):
        models = sorted({str(n["model"] or "défaut") for n in nics})
        models_en = sorted({str(n["model"] or "default") for n in nics})
        obj.fail(fr=f"Aucune carte virtio : modèle(s) {', '.join(literal(m) for m in models)} "
                    f"(émulés, plus lents). virt-xml {VM} --edit --network model=virtio, puis "
                    "redémarrez la VM.",
                 en=f"No virtio interface: model(s) {', '.join(literal(m) for m in models_en)} "
                    f"(emulated, slower). virt-xml {VM} --edit --network model=virtio, then "
                    "restart the VM.")
    n = next(n for n in nics if n["model"] == "virtio")
    on = literal(str(n["source"]))
    obj.ok(fr=f"Carte virtio sur {on}.", en=f"virtio interface on {on}.")


@objective("vm-console")
def test_vm_console(virt, obj):
    dom, cfg = _config(virt, obj)
    displays = [g for g in cfg.graphics if g in ("vnc", "spice")]
    obj.evidence(graphics=list(cfg.graphics), serials=cfg.serials, consoles=cfg.consoles)
    if displays:
        obj.ok(fr=f"Affichage {displays[0].upper()} (virt-viewer {VM}).",
               en=f"{displays[0].upper()} display (virt-viewer {VM}).")
        return
    if cfg.serials or cfg.consoles:
        obj.ok(fr=f"Console série (virsh console {VM}).",
               en=f"Serial console (virsh console {VM}).")
        return
    obj.fail(fr=f"`{VM}` n'a ni affichage VNC/SPICE ni console série : impossible de voir son "
                f"écran. virt-xml {VM} --add-device --graphics vnc,listen=127.0.0.1",
             en=f"`{VM}` has no VNC/SPICE display and no serial console: no way to see its "
                f"screen. virt-xml {VM} --add-device --graphics vnc,listen=127.0.0.1")


@objective("vm-description")
def test_vm_description(virt, obj):
    dom, cfg = _config(virt, obj)
    # `virsh desc` without --config changes only the running VM: accept either.
    title = (cfg.title or dom.title).strip()
    desc = (cfg.description or dom.description).strip()
    obj.evidence(title=title[:200], description=desc[:500],
                 in_config=bool(cfg.title.strip() or cfg.description.strip()))
    if not (title or desc):
        # --live is refused by a VM that is shut off ("domain is not running")
        live = " --live" if dom.active else ""
        obj.fail(fr=f"`{VM}` n'a ni titre ni description. virsh desc {VM} --config{live} "
                    "--title \"Debian 12 de test\"",
                 en=f"`{VM}` has neither title nor description. virsh desc {VM} --config{live} "
                    "--title \"Debian 12 test VM\"")
    shown = title or desc.splitlines()[0]
    obj.ok(fr=f"« {literal(shown[:80])} »", en=f"'{literal(shown[:80])}'")
