"""Checks of lab 07-troubleshooting (testinfra test module; see checker.dsl).

The scene comes from ``virtlab start 07`` (labs/07-troubleshooting/lifecycle.py). A fix
counts when it lasts: for a running VM, both its live state and its persistent definition
(what the next boot uses) must be right, so a change made with ``--live`` only, or a
``--config`` change not yet applied by a restart, is named in the message.
"""

import difflib

from checker.checks import definition, listed
from checker.dsl import objective
from checker.markup import code, literal

NET = "lab07-net"
WEB = "lab07-web"
DB = "lab07-db"
#: What these checks read from libvirt, read ahead in one batch while the host's commands
#: run (checker.engine.lab_virt_prefetch, checker.probes.libvirt.Virt.preload).
VIRT_PREFETCH = ("domains", "domain-configs", "snapshots", "networks")
FILTER = "clean-traffic"
START = "virtlab start 07-troubleshooting"


def _candidates(virt, name):
    """Domains that may be ``name`` under another name: on lab07-net, a disk of the lab's
    pool or named like it, or a close name."""
    strong, weak = [], []
    for d in virt.domains():
        if d.name in (WEB, DB):
            continue
        if any(i.network == NET for i in d.interfaces) or any(
                p.path and ("lab07-pool" in p.path or name in p.path) for p in d.disks):
            strong.append(d.name)
    for n in difflib.get_close_matches(name, virt.domain_names, n=3, cutoff=0.6):
        if n not in (WEB, DB) and n not in strong:
            weak.append(n)
    return sorted(strong) + weak


def _domain(virt, obj, name):
    """The domain ``name``, or a failure saying it is missing and what it might be now."""
    dom = virt.domain(name)
    if dom is not None:
        return dom
    cands = _candidates(virt, name)
    obj.evidence(found=False, candidates=cands)
    if cands:
        obj.fail(
            fr=f"La VM {name} est introuvable. Candidates (même réseau, même disque ou nom "
               f"proche) : {listed(cands, None).fr}. Si vous l'avez renommée, rendez-lui son nom : "
               f"virsh domrename {literal(cands[0])} {name} (VM éteinte).",
            en=f"VM {name} cannot be found. Candidates (same network, same disk or a close "
               f"name): {listed(cands, None).en}. If you renamed it, give it its name back: "
               f"virsh domrename {literal(cands[0])} {name} (VM shut off).")
    obj.fail(fr=f"La VM {name} est introuvable (virsh list --all) : préparez la scène avec "
                f"{START}.",
             en=f"VM {name} cannot be found (virsh list --all): prepare the scene with {START}.")


def _ifaces(virt, obj, name):
    """(live domain, live interfaces, persistent interfaces) of ``name``; fails without any."""
    dom = _domain(virt, obj, name)
    cfg = definition(virt, name) or dom
    if not dom.interfaces and not cfg.interfaces:
        obj.evidence(interfaces=0)
        obj.fail(fr=f"{name} n'a aucune interface réseau (virsh domiflist {name}).",
                 en=f"{name} has no network interface (virsh domiflist {name}).")
    return dom, dom.interfaces, cfg.interfaces


def _describe(ifaces, attr):
    return [{"mac": i.mac, "network": i.network, attr: getattr(i, attr)} for i in ifaces]


@objective("net-restored")
def test_net_restored(virt, obj):
    net = virt.network(NET)
    if net is None:
        obj.evidence(found=False, networks=list(virt.network_names))
        obj.fail(fr=f"Le réseau {NET} est introuvable (virsh net-list --all) : préparez la "
                    f"scène avec {START}.",
                 en=f"Network {NET} cannot be found (virsh net-list --all): prepare the scene "
                    f"with {START}.")
    obj.evidence(active=net.active, autostart=net.autostart, persistent=net.persistent)
    if not net.active and not net.autostart:
        obj.fail(fr=f"{NET} est arrêté et ne démarre pas avec l'hôte (virsh net-list --all : "
                    "inactive, autostart no).",
                 en=f"{NET} is stopped and does not start with the host (virsh net-list --all: "
                    "inactive, autostart no).")
    if not net.active:
        obj.fail(fr=f"{NET} démarrera avec l'hôte, mais il est arrêté maintenant : démarrez-le.",
                 en=f"{NET} will start with the host, but it is stopped now: start it.")
    if not net.autostart:
        obj.fail(fr=f"{NET} est actif, mais ne redémarrera pas après un redémarrage de l'hôte "
                    "(autostart no).",
                 en=f"{NET} is active, but will not come back after a host reboot "
                    "(autostart no).")
    obj.ok(fr=f"{NET} est actif et démarre avec l'hôte.",
           en=f"{NET} is active and starts with the host.")


@objective("vm-link-up")
def test_vm_link_up(virt, obj):
    dom, live, cfg = _ifaces(virt, obj, WEB)
    obj.evidence(running=dom.active, live=_describe(live, "link_state"),
                 config=_describe(cfg, "link_state"))
    down_cfg = [i.mac for i in cfg if i.link_state != "up"]
    down_live = [i.mac for i in live if i.link_state != "up"] if dom.active else []
    if down_cfg and (down_live or not dom.active):
        obj.fail(fr=f"L'interface {', '.join(down_cfg)} de {WEB} est débranchée (lien down)"
                    + (", en direct comme dans sa définition." if dom.active else "."),
                 en=f"Interface {', '.join(down_cfg)} of {WEB} is unplugged (link down)"
                    + (", live and in its definition." if dom.active else "."))
    if down_cfg:
        obj.fail(fr=f"Le lien est up en direct, mais la définition de {WEB} le garde down : "
                    "il retombera au prochain démarrage (ajoutez --config).",
                 en=f"The link is up live, but the definition of {WEB} keeps it down: it will "
                    "drop at the next boot (add --config).")
    if down_live:
        obj.fail(fr=f"La définition de {WEB} a le lien up, mais la VM en marche l'a toujours "
                    "down : changez-le aussi en direct (--live) ou redémarrez la VM.",
                 en=f"The definition of {WEB} has the link up, but the running VM still has it "
                    "down: change it live too (--live) or restart the VM.")
    obj.ok(fr=f"L'interface de {WEB} est branchée (lien up).",
           en=f"The interface of {WEB} is plugged in (link up).")


@objective("vm-nic-virtio")
def test_vm_nic_virtio(virt, obj):
    dom, live, cfg = _ifaces(virt, obj, WEB)
    obj.evidence(running=dom.active, live=_describe(live, "model"), config=_describe(cfg, "model"))
    bad_cfg = sorted({str(i.model) for i in cfg if i.model != "virtio"})
    bad_live = sorted({str(i.model) for i in live if i.model != "virtio"}) if dom.active else []
    if bad_cfg:
        obj.fail(fr=f"L'interface de {WEB} est de modèle "
                    f"{listed(bad_cfg, None, as_code=False).fr}, une carte émulée lente : le "
                    "modèle attendu est virtio (paravirtualisé).",
                 en=f"The interface of {WEB} is of model "
                    f"{listed(bad_cfg, None, as_code=False).en}, a slow emulated card: the "
                    "expected model is virtio (paravirtualized).")
    if bad_live:
        obj.fail(fr=f"La définition de {WEB} dit virtio, mais la VM tourne encore avec "
                    f"{listed(bad_live, None, as_code=False).fr} : un changement de modèle prend "
                    f"effet au démarrage suivant (virsh shutdown {WEB}, puis virsh start {WEB}).",
                 en=f"The definition of {WEB} says virtio, but the VM still runs with "
                    f"{listed(bad_live, None, as_code=False).en}: a model change takes effect at "
                    f"the next boot (virsh shutdown {WEB}, then virsh start {WEB}).")
    obj.ok(fr=f"L'interface de {WEB} est de modèle virtio.",
           en=f"The interface of {WEB} is of model virtio.")


@objective("vm-running")
def test_vm_running(virt, obj):
    dom = _domain(virt, obj, WEB)
    obj.evidence(state=dom.state)
    if dom.state != "running":
        obj.fail(fr=f"{WEB} est dans l'état « {dom.state} » : elle doit être en marche "
                    "(running).",
                 en=f"{WEB} is '{dom.state}': it must be running.")
    obj.ok(fr=f"{WEB} est en marche.", en=f"{WEB} is running.")


@objective("snapshots-pruned")
def test_snapshots_pruned(virt, obj):
    _domain(virt, obj, WEB)  # fails, listing candidates, when the VM is missing
    names = virt.snapshot_names(WEB)
    obj.evidence(count=len(names), snapshots=names)
    if len(names) > 1:
        obj.fail(fr=f"{WEB} garde {len(names)} snapshots ({listed(names, None).fr}) : n'en gardez "
                    "qu'un au plus, le plus récent.",
                 en=f"{WEB} keeps {len(names)} snapshots ({listed(names, None).en}): keep one at "
                    "most, the newest.")
    obj.ok(fr=f"{WEB} garde {len(names)} snapshot(s).",
           en=f"{WEB} keeps {len(names)} snapshot(s).")


@objective("db-isolated")
def test_db_isolated(virt, obj):
    dom, live, cfg = _ifaces(virt, obj, DB)
    ifaces = list(cfg) + (list(live) if dom.active else [])
    seen = []
    problems_fr, problems_en = [], []
    for i in ifaces:
        if i.type != "network":
            where = i.bridge or i.type
            seen.append({"type": i.type, "source": where})
            problems_fr.append(f"une interface de type {literal(i.type)} ({literal(where)}) sort "
                               "du réseau isolé")
            problems_en.append(f"an interface of type {literal(i.type)} ({literal(where)}) leaves "
                               "the isolated network")
            continue
        net = virt.network(i.network)
        if net is None:
            seen.append({"network": i.network, "exists": False})
            problems_fr.append(f"le réseau {code(i.network or '')} n'existe pas")
            problems_en.append(f"network {code(i.network or '')} does not exist")
            continue
        seen.append({"network": net.name, "forward": net.forward_mode, "active": net.active})
        if net.forward_mode is not None:
            problems_fr.append(f"le réseau {code(net.name)} a <forward "
                               f"mode='{literal(net.forward_mode)}'/> (il mène hors de l'hôte)")
            problems_en.append(f"network {code(net.name)} has <forward "
                               f"mode='{literal(net.forward_mode)}'/> (it leads off the host)")
    obj.evidence(interfaces=seen, running=dom.active)
    if problems_fr:
        obj.fail(fr=f"{DB} n'est pas isolée : " + " ; ".join(dict.fromkeys(problems_fr)) + ".",
                 en=f"{DB} is not isolated: " + "; ".join(dict.fromkeys(problems_en)) + ".")
    nets = sorted({s["network"] for s in seen})
    obj.ok(fr=f"{DB} n'a d'interfaces que sur des réseaux isolés ({listed(nets, None).fr}).",
           en=f"{DB} has interfaces only on isolated networks ({listed(nets, None).en}).")


@objective("nic-filtered")
def test_nic_filtered(virt, obj):
    dom, live, cfg = _ifaces(virt, obj, WEB)
    obj.evidence(running=dom.active, live=_describe(live, "filterref"),
                 config=_describe(cfg, "filterref"))
    bad_cfg = [i.mac for i in cfg if i.filterref != FILTER]
    bad_live = [i.mac for i in live if i.filterref != FILTER] if dom.active else []
    if bad_cfg:
        found = sorted({i.filterref for i in cfg if i.filterref and i.filterref != FILTER})
        obj.fail(fr=f"L'interface {', '.join(bad_cfg)} de {WEB} ne porte pas le filtre "
                    f"{FILTER} (filtre trouvé : {listed(found, None).fr}) : rien "
                    "n'empêche la VM d'usurper une adresse MAC, IP ou ARP.",
                 en=f"Interface {', '.join(bad_cfg)} of {WEB} does not carry filter {FILTER} "
                    f"(filter found: {listed(found, None).en}): nothing stops the VM from "
                    "spoofing a MAC, IP or ARP address.")
    if bad_live:
        obj.fail(fr=f"La définition de {WEB} porte {FILTER}, mais pas la VM en marche : "
                    "redémarrez-la pour l'appliquer.",
                 en=f"The definition of {WEB} carries {FILTER}, but the running VM does not: "
                    "restart it to apply it.")
    obj.ok(fr=f"L'interface de {WEB} porte le filtre {FILTER}.",
           en=f"The interface of {WEB} carries filter {FILTER}.")
