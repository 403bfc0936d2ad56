"""Checks of lab 05-networks (testinfra test module; see checker.dsl).

libvirt state through ``virt`` (read-only); the host bridge through
``checker.probes.netdev`` (/sys/class/net/br0, read in one command), its persistent
declaration through ``checker.probes.ifupdown``. Nothing here reads the host itself: a lost
connection raises in the probe, it is never graded as a missing bridge.
"""

import ipaddress

from checker.checks import NONE_F, listed
from checker.dsl import objective
from checker.markup import literal
from checker.probes.ifupdown import bridge_declarations, summarize
from checker.probes.netdev import net_device, prefetch_entry

NAT = "mon-reseau-prive"
ISOLATED = "reseau-isole"
BRIDGE = "br0"
NAT_VM = "test-debian-12"
BRIDGE_VM = "web-server-prod"

#: What these checks read on every host, fetched with the facts every lab reads in one
#: exchange over SSH (checker.engine.lab_prefetch): testinfra templates and arguments, as
#: checker.probes.ifupdown and checker.probes.netdev read them (the latter's stderr too).
PREFETCH = [
    prefetch_entry(BRIDGE),
    ("test -f %s && cat -- %s", "/etc/network/interfaces", "/etc/network/interfaces"),
    ("test -d %s && ls -1 -q -- %s", "/etc/network/interfaces.d", "/etc/network/interfaces.d"),
    ("test -d %s && ls -1 -q -- %s", "/etc/NetworkManager/system-connections",
     "/etc/NetworkManager/system-connections"),
    ("test -d %s && ls -1 -q -- %s", "/etc/systemd/network", "/etc/systemd/network"),
]
WANT_BRIDGE = "virbr1"
WANT_ADDR = ipaddress.ip_interface("192.168.100.1/24")
WANT_RANGE = ("192.168.100.100", "192.168.100.200")
#: What these checks read from libvirt, read ahead in one batch while the host's commands
#: run (checker.engine.lab_virt_prefetch, checker.probes.libvirt.Virt.preload).
VIRT_PREFETCH = ("domains", "networks")


def _networks(virt):
    return listed(virt.network_names, None, as_code=False)


def _nat(virt, obj):
    net = virt.network(NAT)
    obj.evidence(network=NAT, exists=net is not None)
    if net is None:
        present = _networks(virt)
        obj.fail(fr=f"Le réseau {NAT} n'existe pas (réseaux présents : {present.fr}). "
                    "Définissez-le : virsh net-define mon-reseau.xml",
                 en=f"Network {NAT} does not exist (networks present: {present.en}). "
                    "Define it: virsh net-define mon-reseau.xml")
    return net


def _ip_iface(ip):
    """The IPv4 interface (address/prefix) of a network <ip>, or None if unusable."""
    try:
        if ip.prefix is not None:
            return ipaddress.ip_interface(f"{ip.address}/{ip.prefix}")
        if ip.netmask:
            return ipaddress.ip_interface(f"{ip.address}/{ip.netmask}")
        return ipaddress.ip_interface(f"{ip.address}")
    except (ValueError, TypeError):
        return None


def _ranges(net):
    """[(start, end)] of the IPv4 DHCP ranges of a network, as ip_address objects."""
    out = []
    for ip in net.ips:
        if ip.family not in ("ipv4", ""):
            continue
        for r in ip.dhcp_ranges:
            try:
                out.append((ipaddress.IPv4Address(r.start), ipaddress.IPv4Address(r.end)))
            except ValueError:
                continue
    return out


@objective("net-nat-defined")
def test_net_nat_defined(virt, obj):
    net = _nat(virt, obj)
    obj.evidence(forward_mode=net.forward_mode, persistent=net.persistent)
    if net.forward_mode is None:
        obj.fail(fr=f"{NAT} n'a pas d'élément <forward> : c'est un réseau isolé, pas NAT. "
                    "Ajoutez <forward mode='nat'/> (virsh net-edit).",
                 en=f"{NAT} has no <forward> element: it is isolated, not NAT. "
                    "Add <forward mode='nat'/> (virsh net-edit).")
    if net.forward_mode != "nat":
        obj.fail(fr=f"{NAT} est en mode <forward mode='{literal(net.forward_mode or '')}'/>, "
                    "attendu 'nat'.",
                 en=f"{NAT} is in <forward mode='{literal(net.forward_mode or '')}'/> mode, "
                    "expected 'nat'.")
    obj.ok(fr=f"{NAT} existe, en mode NAT.", en=f"{NAT} exists, in NAT mode.")


@objective("net-nat-addressing")
def test_net_nat_addressing(virt, obj):
    net = _nat(virt, obj)
    v4 = [ip for ip in net.ips if ip.family in ("ipv4", "")]
    addrs = [_ip_iface(ip) for ip in v4]
    ranges = _ranges(net)
    obj.evidence(bridge=net.bridge,
                 ipv4=[str(a) if a else f"{ip.address} (invalid)" for a, ip in zip(addrs, v4)],
                 ipv6=[ip.address for ip in net.ips if ip.family == "ipv6"],
                 dhcp_ranges=[f"{s}-{e}" for s, e in ranges])
    fr, en = [], []
    if net.bridge != WANT_BRIDGE:
        fr.append(f"pont {literal(net.bridge) if net.bridge else '(aucun)'} au lieu de "
                  f"{WANT_BRIDGE}")
        en.append(f"bridge {literal(net.bridge) if net.bridge else '(none)'} instead of "
                  f"{WANT_BRIDGE}")
    if not net.ips:
        fr.append("aucun élément <ip> (pas d'adresse ni de DHCP)")
        en.append("no <ip> element (no address, no DHCP)")
    elif not v4:
        fr.append("seulement de l'IPv6 : il faut l'adresse IPv4 192.168.100.1/24")
        en.append("IPv6 only: the IPv4 address 192.168.100.1/24 is needed")
    elif WANT_ADDR not in addrs:
        found = ", ".join(str(a) for a in addrs if a) or "?"
        fr.append(f"adresse {found} au lieu de {WANT_ADDR}")
        en.append(f"address {found} instead of {WANT_ADDR}")
    want = tuple(ipaddress.IPv4Address(x) for x in WANT_RANGE)
    if v4 and not ranges:
        fr.append("aucune plage DHCP (<dhcp><range .../></dhcp>)")
        en.append("no DHCP range (<dhcp><range .../></dhcp>)")
    elif ranges and ranges != [want]:
        found = ", ".join(f"{s}–{e}" for s, e in ranges)
        fr.append(f"plage DHCP {found} au lieu de {WANT_RANGE[0]}–{WANT_RANGE[1]}")
        en.append(f"DHCP range {found} instead of {WANT_RANGE[0]}–{WANT_RANGE[1]}")
    if fr:
        obj.fail(fr=f"{NAT} : " + " ; ".join(fr) + ".", en=f"{NAT}: " + "; ".join(en) + ".")
    obj.ok(fr=f"{NAT} : pont {WANT_BRIDGE}, {WANT_ADDR}, DHCP {WANT_RANGE[0]}–{WANT_RANGE[1]}.",
           en=f"{NAT}: bridge {WANT_BRIDGE}, {WANT_ADDR}, DHCP {WANT_RANGE[0]}–{WANT_RANGE[1]}.")


@objective("net-nat-active")
def test_net_nat_active(virt, obj):
    net = _nat(virt, obj)
    obj.evidence(active=net.active)
    if not net.active:
        obj.fail(fr=f"{NAT} est défini mais arrêté : virsh net-start {NAT}",
                 en=f"{NAT} is defined but stopped: virsh net-start {NAT}")
    obj.ok(fr=f"{NAT} est actif.", en=f"{NAT} is active.")


@objective("net-nat-autostart")
def test_net_nat_autostart(virt, obj):
    net = _nat(virt, obj)
    obj.evidence(autostart=net.autostart, persistent=net.persistent)
    if not net.persistent:
        obj.fail(fr=f"{NAT} est transitoire (créé par virsh net-create) : il ne peut pas démarrer "
                    "automatiquement. Définissez-le : virsh net-define mon-reseau.xml, puis "
                    f"virsh net-autostart {NAT}.",
                 en=f"{NAT} is transient (made by virsh net-create): it cannot autostart. "
                    f"Define it: virsh net-define mon-reseau.xml, then virsh net-autostart {NAT}.")
    if not net.autostart:
        obj.fail(fr=f"{NAT} ne démarre pas avec le démon : virsh net-autostart {NAT}",
                 en=f"{NAT} does not start with the daemon: virsh net-autostart {NAT}")
    obj.ok(fr=f"{NAT} démarre automatiquement.", en=f"{NAT} starts automatically.")


@objective("net-isolated")
def test_net_isolated(virt, obj):
    net = virt.network(ISOLATED)
    obj.evidence(network=ISOLATED, exists=net is not None)
    if net is None:
        present = _networks(virt)
        obj.fail(fr=f"Le réseau {ISOLATED} n'existe pas (réseaux présents : {present.fr}). "
                    f"Définissez-le sans <forward> : virsh net-define reseau-isole.xml, puis "
                    f"virsh net-start {ISOLATED}.",
                 en=f"Network {ISOLATED} does not exist (networks present: {present.en}). "
                    f"Define it without <forward>: virsh net-define reseau-isole.xml, then "
                    f"virsh net-start {ISOLATED}.")
    obj.evidence(forward_mode=net.forward_mode, active=net.active, bridge=net.bridge)
    if net.forward_mode is not None:
        obj.fail(fr=f"{ISOLATED} a <forward mode='{literal(net.forward_mode or '')}'/> : ses VM "
                    "sortent vers l'extérieur. Un réseau isolé n'a aucun élément <forward> (virsh "
                    "net-edit).",
                 en=f"{ISOLATED} has <forward mode='{literal(net.forward_mode or '')}'/>: its VMs "
                    "reach the outside. An isolated network has no <forward> element (virsh "
                    "net-edit).")
    if not net.active:
        obj.fail(fr=f"{ISOLATED} est bien isolé mais arrêté : virsh net-start {ISOLATED}",
                 en=f"{ISOLATED} is isolated but stopped: virsh net-start {ISOLATED}")
    obj.ok(fr=f"{ISOLATED} est isolé (pas de <forward>) et actif.",
           en=f"{ISOLATED} is isolated (no <forward>) and active.")


@objective("host-bridge")
def test_host_bridge(host, facts, obj):
    dev = net_device(host, BRIDGE)
    obj.evidence(bridge=BRIDGE, exists=dev.exists)
    if not dev.exists:
        obj.fail(fr=f"Pas d'interface {BRIDGE} sur l'hôte (ip link show {BRIDGE}). "
                    f"Créez le pont : sudo brctl addbr {BRIDGE} (ou sudo ip link add {BRIDGE} "
                    "type bridge).",
                 en=f"No interface {BRIDGE} on the host (ip link show {BRIDGE}). "
                    f"Create the bridge: sudo brctl addbr {BRIDGE} (or sudo ip link add {BRIDGE} "
                    "type bridge).")
    obj.evidence(is_bridge=dev.is_bridge)
    if not dev.is_bridge:
        obj.fail(fr=f"{BRIDGE} existe mais n'est pas un pont (pas de "
                    f"/sys/class/net/{BRIDGE}/bridge).",
                 en=f"{BRIDGE} exists but is not a bridge (no /sys/class/net/{BRIDGE}/bridge).")
    flags_s, operstate, ports = dev.flags_text, dev.operstate, list(dev.ports)
    obj.evidence(flags=flags_s, admin_up=dev.admin_up, operstate=operstate, ports=ports)
    if not dev.admin_up:
        obj.fail(fr=f"{BRIDGE} est désactivé (state DOWN) : sudo ip link set {BRIDGE} up",
                 en=f"{BRIDGE} is down (state DOWN): sudo ip link set {BRIDGE} up")
    if not ports:
        dhcp = facts.release.dhcp_client
        obj.evidence(debian=facts.release.found)
        obj.fail(fr=f"{BRIDGE} n'a aucun port : brctl show le montre vide. Ajoutez l'interface "
                    f"physique : sudo brctl addif {BRIDGE} eth0 (ou sudo ip link set eth0 master "
                    f"{BRIDGE}), puis donnez l'adresse au pont : sudo {dhcp} {BRIDGE}.",
                 en=f"{BRIDGE} has no port: brctl show shows it empty. Add the physical "
                    f"interface: sudo brctl addif {BRIDGE} eth0 (or sudo ip link set eth0 master "
                    f"{BRIDGE}), then give the bridge the address: sudo {dhcp} {BRIDGE}.")
    if operstate != "up":
        # Administratively up with ports is what the lab asks; no carrier yet is only noted
        # (ports without link, or still in the bridge's forward delay after creation).
        obj.ok(fr=f"{BRIDGE} est activé, ports : {listed(ports, None, as_code=False).fr} "
                  f"(operstate {literal(operstate)} : aucun port n'a encore de lien, voir ip link "
                  f"show master {BRIDGE}).",
               en=f"{BRIDGE} is up, ports: {listed(ports, None, as_code=False).en} (operstate "
                  f"{literal(operstate)}: no port has a link yet, see ip link show master "
                  f"{BRIDGE}).")
        return
    obj.ok(fr=f"{BRIDGE} est actif, ports : {listed(ports, None, as_code=False).fr}.",
           en=f"{BRIDGE} is up, ports: {listed(ports, None, as_code=False).en}.")


@objective("host-bridge-persistent")
def test_host_bridge_persistent(host, obj):
    d = bridge_declarations(host)
    mine = d.named(BRIDGE)
    cfg = d.interfaces
    obj.evidence(declarations=summarize(d.bridges),
                 interfaces_files=list(cfg.files) if cfg else [],
                 unreadable=d.unreadable, problems=d.problems[:10])
    at_boot = [b for b in mine if b.at_boot]
    if at_boot:
        b = at_boot[0]
        where = {"ifupdown": "ifupdown", "networkmanager": "NetworkManager",
                 "networkd": "systemd-networkd"}[b.kind]
        obj.ok(fr=f"{BRIDGE} est déclaré de façon permanente ({where}, {literal(b.file)}).",
               en=f"{BRIDGE} is declared persistently ({where}, {literal(b.file)}).")
        return
    if mine:
        b = mine[0]
        if b.kind == "ifupdown":
            obj.fail(fr=f"{BRIDGE} est déclaré ({literal(b.file)}) mais aucune ligne « auto "
                        f"{BRIDGE} » ne le lance au démarrage : ajoutez-la au-dessus de son stanza "
                        "iface.",
                     en=f"{BRIDGE} is declared ({literal(b.file)}) but no 'auto {BRIDGE}' line "
                        "brings it up at boot: add one above its iface stanza.")
        obj.fail(fr=f"{BRIDGE} est déclaré ({literal(b.file)}) mais avec autoconnect=false : il ne "
                    "démarrera pas seul.",
                 en=f"{BRIDGE} is declared ({literal(b.file)}) but with autoconnect=false: it will "
                    "not come up by itself.")
    plain = cfg.iface(BRIDGE) if cfg else []
    if plain:
        obj.fail(fr=f"{literal(plain[0].file)}:{plain[0].line} déclare iface {BRIDGE} sans "
                    "bridge_ports : ifupdown n'en fera pas un pont. Ajoutez « bridge_ports eth0 » "
                    "(paquet bridge-utils).",
                 en=f"{literal(plain[0].file)}:{plain[0].line} declares iface {BRIDGE} without "
                    "bridge_ports: ifupdown will not make it a bridge. Add 'bridge_ports eth0' "
                    "(package bridge-utils).")
    others = sorted({b.name for b in d.bridges})
    files = listed(cfg.files, None, as_code=False).en if cfg and cfg.files else ""
    extra_fr = f" Ponts déclarés : {listed(others, None, as_code=False).fr}." if others else ""
    extra_en = f" Bridges declared: {listed(others, None, as_code=False).en}." if others else ""
    unread = [f"/etc/network/interfaces.d/{n}" for n in sorted(d.interfaces_d or ())
              if cfg and f"/etc/network/interfaces.d/{n}" not in cfg.files]
    if unread:
        obj.evidence(not_read=unread)
        extra_fr += (f" Fichiers non lus par ifupdown : {listed(unread, 3, as_code=False).fr} (il "
                     "faut la ligne « source /etc/network/interfaces.d/* » dans "
                     "/etc/network/interfaces, et des noms sans point pour source-directory).")
        extra_en += (f" Files not read by ifupdown: {listed(unread, 3, as_code=False).en} (it "
                     "needs the line 'source /etc/network/interfaces.d/*' in "
                     "/etc/network/interfaces, and names without a dot for source-directory).")
    if d.unreadable:
        extra_fr += f" Illisibles sans root : {listed(d.unreadable, 3, as_code=False).fr}."
        extra_en += f" Unreadable without root: {listed(d.unreadable, 3, as_code=False).en}."
    obj.fail(fr=f"{BRIDGE} n'est déclaré nulle part : il disparaîtra au redémarrage (fichiers "
                f"ifupdown lus : {files or 'aucun'} ; ni NetworkManager ni "
                f"systemd-networkd).{extra_fr} Créez /etc/network/interfaces.d/{BRIDGE} avec auto "
                f"{BRIDGE} / iface {BRIDGE} inet dhcp / bridge_ports eth0.",
             en=f"{BRIDGE} is declared nowhere: it will vanish at reboot (ifupdown files read: "
                f"{files or 'none'}; neither NetworkManager nor systemd-networkd).{extra_en} "
                f"Create /etc/network/interfaces.d/{BRIDGE} with auto {BRIDGE} / iface {BRIDGE} "
                "inet dhcp / bridge_ports eth0.")


def _domain(virt, obj, name):
    dom = virt.domain(name)
    obj.evidence(domain=name, exists=dom is not None)
    if dom is None:
        names = listed(virt.domain_names, None, as_code=False, none=NONE_F)
        make_fr = ("créez-la comme au lab 04" if name == NAT_VM else
                   "créez-la avec virt-install (instructions, section 5)")
        make_en = ("create it as in lab 04" if name == NAT_VM else
                   "create it with virt-install (instructions, section 5)")
        obj.fail(fr=f"La VM {name} n'existe pas (VM présentes : {names.fr}) : {make_fr}.",
                 en=f"VM {name} does not exist (VMs present: {names.en}): {make_en}.")
    return dom


def _nics(dom):
    return [{"type": i.type, "source": i.network or i.bridge, "model": i.model, "mac": i.mac}
            for i in dom.interfaces]


@objective("vm-nic-nat")
def test_vm_nic_nat(virt, obj):
    dom = _domain(virt, obj, NAT_VM)
    obj.evidence(interfaces=_nics(dom))
    on = [i for i in dom.interfaces if i.type == "network" and i.network == NAT]
    if not on:
        obj.fail(fr=f"{NAT_VM} n'a aucune interface sur {NAT} (virsh domiflist {NAT_VM}). "
                    f"Ajoutez-en une : virsh attach-interface {NAT_VM} network {NAT} "
                    "--model virtio --config.",
                 en=f"{NAT_VM} has no interface on {NAT} (virsh domiflist {NAT_VM}). "
                    f"Add one: virsh attach-interface {NAT_VM} network {NAT} "
                    "--model virtio --config.")
    if not any(i.model == "virtio" for i in on):
        models = listed([i.model or "?" for i in on], None, as_code=False).en
        obj.fail(fr=f"L'interface de {NAT_VM} sur {NAT} est de modèle {models}, pas virtio : "
                    f"changez <model type='virtio'/> (virsh edit {NAT_VM}, ou virt-manager › "
                    "Carte réseau), puis éteignez et rallumez la VM.",
                 en=f"{NAT_VM}'s interface on {NAT} has model {models}, not virtio: "
                    f"set <model type='virtio'/> (virsh edit {NAT_VM}, or virt-manager › NIC), "
                    "then shut the VM down and start it again.")
    obj.ok(fr=f"{NAT_VM} a une interface virtio sur {NAT}.",
           en=f"{NAT_VM} has a virtio interface on {NAT}.")


@objective("vm-nic-bridge")
def test_vm_nic_bridge(virt, obj):
    dom = _domain(virt, obj, BRIDGE_VM)
    obj.evidence(interfaces=_nics(dom))

    def on_br0(i):
        if i.type == "bridge":
            return i.bridge == BRIDGE
        # a libvirt network of mode 'bridge' wrapping br0 is the same wire
        if i.type == "network" and i.network:
            net = virt.network(i.network)
            return net is not None and net.forward_mode == "bridge" and net.bridge == BRIDGE
        return False

    on = [i for i in dom.interfaces if on_br0(i)]
    if not on:
        obj.fail(fr=f"{BRIDGE_VM} n'a aucune interface de type bridge sur {BRIDGE} "
                    f"(virsh domiflist {BRIDGE_VM}) : attendu <interface type='bridge'> "
                    f"<source bridge='{BRIDGE}'/>. Ajoutez-la : virsh attach-interface "
                    f"{BRIDGE_VM} bridge {BRIDGE} --model virtio --config.",
                 en=f"{BRIDGE_VM} has no interface of type bridge on {BRIDGE} "
                    f"(virsh domiflist {BRIDGE_VM}): expected <interface type='bridge'> "
                    f"<source bridge='{BRIDGE}'/>. Add it: virsh attach-interface "
                    f"{BRIDGE_VM} bridge {BRIDGE} --model virtio --config.")
    if not any(i.model == "virtio" for i in on):
        models = listed([i.model or "?" for i in on], None, as_code=False).en
        obj.fail(fr=f"L'interface de {BRIDGE_VM} sur {BRIDGE} est de modèle {models}, pas virtio : "
                    f"changez <model type='virtio'/> (virsh edit {BRIDGE_VM}), puis éteignez et "
                    "rallumez la VM.",
                 en=f"{BRIDGE_VM}'s interface on {BRIDGE} has model {models}, not virtio: set "
                    f"<model type='virtio'/> (virsh edit {BRIDGE_VM}), then shut the VM down "
                    "and start it again.")
    obj.ok(fr=f"{BRIDGE_VM} a une interface virtio sur le pont {BRIDGE}.",
           en=f"{BRIDGE_VM} has a virtio interface on bridge {BRIDGE}.")


@objective("vm-nic-isolated")
def test_vm_nic_isolated(virt, obj):
    found = [d.name for d in virt.domains()
             if any(i.type == "network" and i.network == ISOLATED for i in d.interfaces)]
    obj.evidence(network=ISOLATED, domains=found)
    if not found:
        obj.fail(fr=f"Aucune VM n'a d'interface sur {ISOLATED}. Branchez-en une : virsh "
                    f"attach-interface NOM network {ISOLATED} --model virtio --config.",
                 en=f"No VM has an interface on {ISOLATED}. Plug one in: virsh "
                    f"attach-interface NAME network {ISOLATED} --model virtio --config.")
    names = listed(found, None, as_code=False)
    obj.ok(fr=f"Sur {ISOLATED} : {names.fr}.", en=f"On {ISOLATED}: {names.en}.")


@objective("vm-dhcp-lease")
def test_vm_dhcp_lease(virt, obj):
    dom = _domain(virt, obj, NAT_VM)
    macs = {i.mac.lower() for i in dom.interfaces
            if i.type == "network" and i.network == NAT and i.mac}
    obj.evidence(state=dom.state, macs=sorted(macs))
    if not macs:
        obj.fail(fr=f"{NAT_VM} n'a pas d'interface sur {NAT} : pas de bail possible.",
                 en=f"{NAT_VM} has no interface on {NAT}: no lease possible.")
    net = _nat(virt, obj)
    # libvirt keeps the leases of a stopped network until they expire (its status file):
    # a guest that got its address keeps it; net-nat-active grades the network itself.
    obj.evidence(network_active=net.active)
    leases = virt.leases(NAT)
    ranges = _ranges(net)
    obj.evidence(leases=[{"mac": le.mac, "ip": le.ip, "hostname": le.hostname,
                          "expiry": le.expiry} for le in leases],
                 dhcp_ranges=[f"{s}-{e}" for s, e in ranges])
    mine = [le for le in leases if le.mac.lower() in macs]
    if not mine:
        run_fr = "" if dom.active else f" La VM est arrêtée ({dom.state}) : virsh start {NAT_VM}."
        run_en = "" if dom.active else (f" The VM is not running ({dom.state}): "
                                        f"virsh start {NAT_VM}.")
        if not net.active:
            run_fr += f" {NAT} est arrêté : son serveur DHCP ne répond pas (virsh net-start {NAT})."
            run_en += f" {NAT} is stopped: its DHCP server does not answer (virsh net-start {NAT})."
        obj.fail(fr=f"Aucun bail DHCP de {NAT} pour {NAT_VM} (MAC {', '.join(sorted(macs))}) "
                    f"dans virsh net-dhcp-leases {NAT}.{run_fr} Son système doit demander une "
                    "adresse par DHCP : une VM sans système n'en demande pas, démarrez-la sur "
                    "l'installateur de Debian (instructions, section 6).",
                 en=f"No DHCP lease of {NAT} for {NAT_VM} (MAC {', '.join(sorted(macs))}) in "
                    f"virsh net-dhcp-leases {NAT}.{run_en} Its OS must ask for an address "
                    "over DHCP: a VM without a system asks for none, boot it on Debian's "
                    "installer (instructions, section 6).")

    def inside(ip):
        try:
            a = ipaddress.IPv4Address(ip)
        except ValueError:
            return False
        return any(s <= a <= e for s, e in ranges)

    good = [le for le in mine if inside(le.ip)]
    if not good:
        span = ", ".join(f"{s}–{e}" for s, e in ranges) or "?"
        obj.fail(fr=f"{NAT_VM} a le bail {listed([le.ip for le in mine], None, as_code=False).fr}, "
                    f"hors de la plage DHCP de {NAT} ({span}). Redemandez une adresse depuis la VM "
                    "(dans une Debian : sudo systemctl restart networking, ou redémarrez-la).",
                 en=f"{NAT_VM} holds lease "
                    f"{listed([le.ip for le in mine], None, as_code=False).en}, outside the DHCP "
                    f"range of {NAT} ({span}). Ask for an address again from the VM (in a Debian: "
                    "sudo systemctl restart networking, or reboot it).")
    obj.ok(fr=f"{NAT_VM} a obtenu {good[0].ip} (MAC {good[0].mac}) de {NAT}.",
           en=f"{NAT_VM} got {good[0].ip} (MAC {good[0].mac}) from {NAT}.")
