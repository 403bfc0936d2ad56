"""Checks of lab 06-virtualbox (testinfra test module; see checker.dsl).

VirtualBox registers VMs per user, so every ``VBoxManage`` command runs as the learner
(``checker.probes.vbox``, bounded by a timeout). APT sources and keyrings are read
where apt reads them (``/etc/apt``, ``/usr/share/keyrings``) through ``checker.probes.apt``,
under the root of the host probe (``facts.root``: empty for a live host, the folder of a
recorded one). The project's tests give a live check other files the way a machine would
(``tests/apt_sandbox.py``: a private mount namespace with their own folders mounted there).

Messages name the commands for the learner's release (Debian 13 "trixie" or Debian 12
"bookworm", from /etc/os-release) and kernel (/proc/sys/kernel/osrelease), both read through
the host probe (``facts.read``), so that it works over SSH too.
"""

import re

from checker.checks import decimal, listed
from checker.dsl import objective
from checker.markup import literal
from checker.probes.apt import AptSources, read_keys
from checker.probes.vbox import VBoxUnavailable, is_debian_64, vbox_for, version_prefetch

VM = "debian-vbox"
GIB = 1024**3
MIN_MEMORY_MIB = 1024
HOST_KEEPS = 2 * GIB

# Oracle's VirtualBox archive keys (oracle_vbox_2016.asc, and the older oracle_vbox.asc).
ORACLE_FINGERPRINTS = frozenset({
    "B9F8D658297AF3EFC18D5CDFA2F683C52980AECF",
    "7B0FAB3A13B907435925D9C954422A4B98AB5139",
})
ORACLE_UID = "info@virtualbox.org"
ORACLE_HOST = "download.virtualbox.org"
FASTTRACK_HOST = "fasttrack.debian.net"
# Installed by Debian's package fasttrack-archive-keyring (a Debian package, not apt-key).
# fasttrack-archive-keyring: Debian 12's package puts the key in trusted.gpg.d, Debian 13's
# in /usr/share/keyrings (so that a source must name it with signed-by=).
FASTTRACK_KEYRING = "/etc/apt/trusted.gpg.d/fasttrack-archive-keyring.gpg"
FASTTRACK_KEYRING_13 = "/usr/share/keyrings/fasttrack-archive-keyring.gpg"
# Where the lab keeps Oracle's key: the system operator's keyrings (sources.list(5)).
ORACLE_KEYRING = "/etc/apt/keyrings/oracle-virtualbox-2016.gpg"
RELEASES = {"12": "bookworm", "13": "trixie"}
NUMBERS = {v: k for k, v in RELEASES.items()}

#: What these checks read on every host, fetched with the facts every lab reads in one
#: exchange over SSH (checker.engine.lab_prefetch): testinfra templates and arguments, as
#: the probes run them (checker.probes.apt, vbox_for, host.group(...).exists), and
#: ``VBoxManage --version`` with its stderr (checker.probes.host.WithStderr).
PREFETCH = [
    version_prefetch(),
    ("test -d %s && ls -1 -q -- %s", "/etc/apt/sources.list.d", "/etc/apt/sources.list.d"),
    ("test -f %s && cat -- %s", "/etc/apt/sources.list", "/etc/apt/sources.list"),
    ("test -e %s", "/etc/apt/trusted.gpg"),
    ("test -d %s && ls -1 -q -- %s", "/etc/apt/trusted.gpg.d", "/etc/apt/trusted.gpg.d"),
    ("test -d %s", "/sys/module/vboxdrv"),
    ("test -f %s && cat -- %s", "/proc/sys/kernel/osrelease", "/proc/sys/kernel/osrelease"),
    ("test -f %s && cat -- %s", "/sys/module/kvm/parameters/enable_virt_at_load",
     "/sys/module/kvm/parameters/enable_virt_at_load"),
    ("getent group %s", "vboxusers"),
    ("test -f %s && cat -- %s", "/proc/modules", "/proc/modules"),
    ("test -d %s", "/sys/module/kvm_intel"),
    ("test -d %s", "/sys/module/kvm_amd"),
]




def prefetch_next(host, learner, uri):
    """What these checks read once the listings above are known: apt's source files and
    keyrings (checker.engine.lab_prefetch_next)."""
    return [(t, *a) for t, a in AptSources(host).reads()]


# --- helpers ----------------------------------------------------------------------------

def _unavailable(obj, e):
    obj.evidence(vboxmanage=e.kind, detail=e.detail)
    obj.error(fr=e.message.fr, en=e.message.en)


def _lookup_vm(learner, obj):
    """(the VM debian-vbox or None, the names of the learner's VMs when it is None); the
    objective ends in error if VBoxManage cannot answer."""
    vb = vbox_for(learner)
    try:
        vm = vb.vm(VM)
    except VBoxUnavailable as e:
        _unavailable(obj, e)
    if vm is not None:
        return vm, []
    try:
        names = [v.name for v in vb.list_vms()]
    except VBoxUnavailable:
        names = []
    obj.evidence(vm_exists=False, learner=learner.name, registered_vms=names)
    return None, names


def _vm(learner, obj):
    """The VM debian-vbox, or the objective ends (error if VBoxManage cannot answer,
    fail if the VM does not exist)."""
    vm, _ = _lookup_vm(learner, obj)
    if vm is None:
        obj.fail(fr=f"La VM {VM} n'existe pas pour {literal(learner.name)} (objectif "
                    "vbox-vm-created).",
                 en=f"VM {VM} does not exist for {literal(learner.name)} (objective "
                    "vbox-vm-created).")
    obj.evidence(vm=vm.name, uuid=vm.uuid)
    return vm


def _quoted(names):
    return listed(names).en


# The learner's release and kernel, from the host probe (read once per run, over SSH too).

def _release(facts):
    """``trixie`` or ``bookworm`` when the host is that Debian release, else "" (another
    system: the messages then name both)."""
    major = facts.os_release.debian_major
    return RELEASES.get(str(major), "") if major is not None else ""


def _suite(facts):
    """The suite to write in sources: the learner's release, else Debian 13."""
    return _release(facts) or "trixie"


def _debian(release):
    n = NUMBERS.get(release)
    if not n:
        return "Debian 12/13"
    return f"Debian {n}"


def _kernel(facts):
    """(major, minor) of the running kernel, or None."""
    m = re.match(r"(\d+)\.(\d+)", (facts.read("/proc/sys/kernel/osrelease") or "").strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def _oracle_line(suite):
    return (f"deb [arch=amd64 signed-by={ORACLE_KEYRING}] "
            f"https://download.virtualbox.org/virtualbox/debian {suite} contrib")


def _apt_key_fix(release, legacy_paths):
    """Commands that take Oracle's key out of apt's global keyrings, for this release."""
    fixes = []
    for path in legacy_paths:
        if path == "/etc/apt/trusted.gpg":
            if release == "trixie":
                # apt 3.0 has no apt-key: gpg edits the old keyring file directly
                fixes.append("sudo gpg --no-default-keyring --keyring /etc/apt/trusted.gpg "
                             "--batch --yes --delete-keys B9F8D658297AF3EFC18D5CDFA2F683C52980AECF")
            else:
                fixes.append("sudo apt-key --keyring /etc/apt/trusted.gpg del 2980AECF")
        else:
            fixes.append(f"sudo rm {literal(path)}")
    return fixes


# --- installation -----------------------------------------------------------------------

def _signed_by_paths(value):
    if "BEGIN PGP" in value:
        return [], value
    return [t for t in re.split(r"[,\s]+", value) if t], None


@objective("vbox-source")
def test_vbox_source(host, facts, obj):
    release = _release(facts)
    suite, deb = _suite(facts), _debian(release)
    apt = AptSources(host, facts.root or "/")  # a recorded host's files are under its root
    sources = [s for s in apt.sources() if s.enabled and "deb" in s.types]
    oracle = [s for s in sources if any(ORACLE_HOST in u for u in s.uris)]
    fasttrack = [s for s in sources if any(FASTTRACK_HOST in u for u in s.uris)]
    legacy = [k for k in apt.legacy_keyrings()
              if k.keys is not None and k.keys.has(ORACLE_FINGERPRINTS, ORACLE_UID)]
    obj.evidence(release=release or None,
                 oracle_sources=[s.to_evidence() for s in oracle],
                 fasttrack_sources=[s.to_evidence() for s in fasttrack],
                 oracle_key_in_legacy_keyrings=[k.path for k in legacy])
    if legacy:
        paths = listed([k.path for k in legacy], None, as_code=False).en
        fix = _apt_key_fix(release, [k.path for k in legacy])
        gone_fr = (" (apt 3.0 de Debian 13 n'a plus apt-key et ne lit plus /etc/apt/trusted.gpg)"
                   if release == "trixie" else "")
        gone_en = (" (Debian 13's apt 3.0 has no apt-key and no longer reads /etc/apt/trusted.gpg)"
                   if release == "trixie" else "")
        obj.fail(
            fr=f"La clé d'Oracle a été ajoutée avec apt-key ({paths}) : apt lui fait confiance "
               f"pour TOUS les dépôts, et apt-key est obsolète{gone_fr}. Corrigez : "
               + " ; ".join(fix) + f", puis gardez la clé dans {ORACLE_KEYRING} et "
               "référencez-la avec signed-by= dans la source de VirtualBox.",
            en=f"Oracle's key was added with apt-key ({paths}): apt trusts it for EVERY "
               f"repository, and apt-key is deprecated{gone_en}. Fix: " + "; ".join(fix)
               + f", then keep the key in {ORACLE_KEYRING} and point to it with signed-by= "
               "in VirtualBox's source.")
    if not oracle and not fasttrack:
        obj.fail(
            fr="Aucune source APT de VirtualBox (dépôt d'Oracle download.virtualbox.org ou "
               "Debian Fast Track) dans /etc/apt/sources.list ni /etc/apt/sources.list.d/. "
               f"VirtualBox n'est pas dans l'archive de {deb} : ajoutez l'une des deux, par "
               f"exemple la clé d'Oracle dans {ORACLE_KEYRING} puis la ligne "
               f"« {_oracle_line(suite)} » dans /etc/apt/sources.list.d/virtualbox.list.",
            en="No APT source for VirtualBox (Oracle's repository download.virtualbox.org or "
               "Debian Fast Track) in /etc/apt/sources.list or /etc/apt/sources.list.d/. "
               f"VirtualBox is not in {deb}'s archive: add one of them, e.g. Oracle's key in "
               f"{ORACLE_KEYRING}, then the line '{_oracle_line(suite)}' in "
               "/etc/apt/sources.list.d/virtualbox.list.")
    problems_fr, problems_en, good = [], [], []
    for s in oracle:
        at = f"{literal(s.file)} ({literal(str(s.where))})"
        sb = s.signed_by
        if not sb:
            problems_fr.append(f"{at} : pas de signed-by=, apt ne sait pas quelle clé vérifie ce "
                               "dépôt")
            problems_en.append(f"{at}: no signed-by=, apt does not know which key verifies this "
                               "repository")
            continue
        paths, inline = _signed_by_paths(sb)
        if inline is not None:
            keys = read_keys(inline.encode("utf-8", "replace"))
            if keys.has(ORACLE_FINGERPRINTS, ORACLE_UID):
                good.append(f"{at}: signed-by (inline key)")
            else:
                problems_fr.append(f"{at} : la clé en ligne de Signed-By n'est pas celle d'Oracle")
                problems_en.append(f"{at}: the inline Signed-By key is not Oracle's")
            continue
        files = [p for p in paths if p.startswith("/")]
        if not files:
            problems_fr.append(f"{at} : signed-by={literal(sb)} ne désigne pas un fichier de "
                               "trousseau")
            problems_en.append(f"{at}: signed-by={literal(sb)} does not name a keyring file")
            continue
        ok_file = None
        for p in files:
            kr = apt.keyring(p)
            if not kr.exists:
                problems_fr.append(f"{at} : le trousseau {literal(p)} n'existe pas")
                problems_en.append(f"{at}: keyring {literal(p)} does not exist")
            elif not kr.readable or kr.keys is None:
                problems_fr.append(f"{at} : le trousseau {literal(p)} est illisible")
                problems_en.append(f"{at}: keyring {literal(p)} cannot be read")
            elif kr.keys.armored and not p.endswith(".asc"):
                problems_fr.append(f"{at} : {literal(p)} contient une clé ASCII (armored) ; apt "
                                   "l'ignore sous ce nom : convertissez-la avec gpg --dearmor")
                problems_en.append(f"{at}: {literal(p)} holds an ASCII-armored key; apt ignores it "
                                   "under that name: convert it with gpg --dearmor")
            elif not kr.keys.has(ORACLE_FINGERPRINTS, ORACLE_UID):
                problems_fr.append(f"{at} : {literal(p)} ne contient pas la clé d'Oracle "
                                   "(2980AECF)")
                problems_en.append(f"{at}: {literal(p)} does not hold Oracle's key (2980AECF)")
            else:
                ok_file = p
        if ok_file:
            good.append(f"{at}: signed-by={literal(ok_file)}")
    ft_keyring = FASTTRACK_KEYRING_13 if release == "trixie" else FASTTRACK_KEYRING
    for s in fasttrack:
        at = f"{literal(s.file)} ({literal(str(s.where))})"
        sb = s.signed_by
        files = _signed_by_paths(sb)[0] if sb else []
        found = [p for p in files if p.startswith("/") and apt.keyring(p).exists]
        if sb and "BEGIN PGP" in sb:
            good.append(f"{at}: Debian Fast Track, signed-by (inline key)")
        elif found:
            good.append(f"{at}: Debian Fast Track, signed-by={literal(found[0])}")
        elif not sb and apt.keyring(FASTTRACK_KEYRING).exists:
            good.append(f"{at}: Debian Fast Track, key from package fasttrack-archive-keyring")
        elif sb:
            problems_fr.append(f"{at} : le trousseau {literal(sb)} n'existe pas : sudo apt install "
                               f"fasttrack-archive-keyring (il fournit {ft_keyring})")
            problems_en.append(f"{at}: keyring {literal(sb)} does not exist: sudo apt install "
                               f"fasttrack-archive-keyring (it provides {ft_keyring})")
        elif apt.keyring(FASTTRACK_KEYRING_13).exists:
            problems_fr.append(f"{at} : pas de signed-by= ; la clé du paquet "
                               f"fasttrack-archive-keyring est dans {FASTTRACK_KEYRING_13}, où apt "
                               "ne la cherche pas seul : ajoutez "
                               f"[signed-by={FASTTRACK_KEYRING_13}]")
            problems_en.append(f"{at}: no signed-by=; package fasttrack-archive-keyring keeps its "
                               f"key in {FASTTRACK_KEYRING_13}, where apt does not look by itself: "
                               f"add [signed-by={FASTTRACK_KEYRING_13}]")
        else:
            problems_fr.append(f"{at} : la clé de Fast Track manque : sudo apt install "
                               f"fasttrack-archive-keyring, puis [signed-by={ft_keyring}]")
            problems_en.append(f"{at}: Fast Track's key is missing: sudo apt install "
                               f"fasttrack-archive-keyring, then [signed-by={ft_keyring}]")
    obj.evidence(trusted=good)
    if not good:
        obj.fail(fr="La source de VirtualBox n'est pas de confiance : "
                    + " ; ".join(problems_fr) + ".",
                 en="VirtualBox's source is not trusted: " + "; ".join(problems_en) + ".")
    obj.ok(fr="Source de confiance : " + " ; ".join(good) + ".",
           en="Trusted source: " + "; ".join(good) + ".")


@objective("vbox-installed")
def test_vbox_installed(learner, facts, obj):
    deb = _debian(_release(facts))
    vb = vbox_for(learner)
    try:
        v = vb.version()
    except VBoxUnavailable as e:
        obj.evidence(vboxmanage=e.kind, detail=e.detail)
        if e.kind == "missing":
            obj.fail(fr="VBoxManage est introuvable : VirtualBox n'est pas installé. Il n'est pas "
                        f"dans l'archive de {deb} (apt install virtualbox échoue) : ajoutez le "
                        "dépôt d'Oracle puis sudo apt install virtualbox-7.2 (ou Debian Fast "
                        "Track puis sudo apt install virtualbox).",
                     en="VBoxManage not found: VirtualBox is not installed. It is not in "
                        f"{deb}'s archive (apt install virtualbox fails): add Oracle's repository, "
                        "then sudo apt install virtualbox-7.2 (or Debian Fast Track, then sudo apt "
                        "install virtualbox).")
        obj.error(fr=e.message.fr, en=e.message.en)
    obj.evidence(version=v.raw)
    if not v.at_least(7, 0):
        obj.fail(fr=f"VirtualBox {v} est trop ancien (7.0 ou plus récent attendu ; seules 7.1 et "
                    f"7.2 sont encore maintenues) : sudo apt remove virtualbox-{v.major}.{v.minor} "
                    "&& sudo apt install virtualbox-7.2.",
                 en=f"VirtualBox {v} is too old (7.0 or newer expected; only 7.1 and 7.2 are "
                    f"still supported): sudo apt remove virtualbox-{v.major}.{v.minor} && sudo apt "
                    "install virtualbox-7.2.")
    if not v.at_least(7, 1):
        obj.ok(fr=f"VirtualBox {v} est installé. Oracle ne maintient plus la 7.0 : passez à la "
                  f"7.2 (sudo apt install virtualbox-7.2).",
               en=f"VirtualBox {v} is installed. Oracle no longer supports 7.0: move to 7.2 "
                  "(sudo apt install virtualbox-7.2).")
    else:
        obj.ok(fr=f"VirtualBox {v} est installé.", en=f"VirtualBox {v} is installed.")


@objective("vbox-kernel-driver")
def test_vbox_kernel_driver(host, facts, obj):
    proc = facts.read("/proc/modules")
    modules = facts.modules
    loaded = facts.module_loaded("vboxdrv")
    kvm = [m for m in ("kvm_intel", "kvm_amd") if facts.module_loaded(m)]
    vbox_mods = sorted(m for m in modules if m.startswith("vbox"))
    obj.evidence(vboxdrv_loaded=loaded, proc_modules_readable=proc is not None,
                 vbox_modules=vbox_mods, kvm_modules=kvm)
    kernel = _kernel(facts)
    virt_at_load = (facts.read("/sys/module/kvm/parameters/enable_virt_at_load") or "").strip()
    obj.evidence(kernel=".".join(map(str, kernel)) if kernel else None,
                 kvm_enable_virt_at_load=virt_at_load or None)
    kvm_fr = kvm_en = ""
    if kvm and kernel and kernel >= (6, 12) and virt_at_load != "N":
        # 6.12+: KVM turns VT-x on as soon as its module is loaded, VM or not
        kvm_fr = (" KVM tient le processeur dès son chargement avec le noyau "
                  f"{kernel[0]}.{kernel[1]} ({', '.join(kvm)} est chargé) : les VM VirtualBox "
                  "échouent (VERR_VMX_IN_VMX_ROOT_MODE). Pour que KVM ne prenne VT-x/AMD-V que "
                  "pendant qu'une VM KVM tourne : echo 'options kvm enable_virt_at_load=0' | sudo "
                  "tee /etc/modprobe.d/kvm-virtualbox.conf, puis VM KVM arrêtées, sudo modprobe -r "
                  f"{kvm[0]} kvm && sudo modprobe {kvm[0]} (ou redémarrez).")
        kvm_en = (f" KVM holds the CPU as soon as it is loaded with kernel {kernel[0]}.{kernel[1]} "
                  f"({', '.join(kvm)} is loaded): VirtualBox VMs fail (VERR_VMX_IN_VMX_ROOT_MODE). "
                  "To have KVM take VT-x/AMD-V only while a KVM VM runs: echo 'options kvm "
                  "enable_virt_at_load=0' | sudo tee /etc/modprobe.d/kvm-virtualbox.conf, then, "
                  f"with the KVM VMs stopped, sudo modprobe -r {kvm[0]} kvm && sudo modprobe "
                  f"{kvm[0]} (or reboot).")
    elif kvm:
        kvm_fr = (f" KVM tient aussi le processeur ({', '.join(kvm)} est chargé) : VirtualBox et "
                  "KVM ne peuvent pas utiliser VT-x/AMD-V en même temps (erreur "
                  "VERR_VMX_IN_VMX_ROOT_MODE). Arrêtez les VM KVM, puis sudo modprobe -r "
                  f"{kvm[0]}.")
        kvm_en = (f" KVM holds the CPU too ({', '.join(kvm)} is loaded): VirtualBox and KVM "
                  "cannot use VT-x/AMD-V at the same time (error VERR_VMX_IN_VMX_ROOT_MODE). "
                  f"Stop the KVM VMs, then sudo modprobe -r {kvm[0]}.")
    if not loaded:
        if proc is None:
            obj.fail(fr="vboxdrv n'est pas chargé, et ce noyau n'a pas de /proc/modules : il ne "
                        "peut pas charger de module (noyau sans modules, souvent une micro-VM "
                        "ou un conteneur). VirtualBox demande un noyau Debian standard." + kvm_fr,
                     en="vboxdrv is not loaded, and this kernel has no /proc/modules: it cannot "
                        "load modules (a kernel without module support, often a micro-VM or a "
                        "container). VirtualBox needs a standard Debian kernel." + kvm_en)
        obj.fail(fr="Le module vboxdrv n'est pas chargé : sudo modprobe vboxdrv (paquet Oracle : "
                    "sudo /sbin/vboxconfig le compile pour le noyau courant)." + kvm_fr,
                 en="Module vboxdrv is not loaded: sudo modprobe vboxdrv (Oracle's package: "
                    "sudo /sbin/vboxconfig builds it for the running kernel)." + kvm_en)
    obj.ok(fr="vboxdrv est chargé." + kvm_fr, en="vboxdrv is loaded." + kvm_en)


@objective("user-group-vboxusers")
def test_user_group_vboxusers(host, learner, obj):
    exists = learner.exists
    group = host.group("vboxusers").exists
    obj.evidence(learner=learner.name, learner_exists=exists, group_exists=group)
    if not exists:
        obj.error(fr=f"L'utilisateur {literal(learner.name)} n'existe pas sur cet hôte : précisez "
                     "l'apprenant avec --user NOM.",
                  en=f"User {literal(learner.name)} does not exist on this host: name the learner "
                     "with --user NAME.")
    groups = learner.groups
    obj.evidence(groups=groups)
    if not group:
        obj.fail(fr="Le groupe vboxusers n'existe pas : le paquet de VirtualBox le crée ; "
                    "installez-le d'abord, puis sudo usermod -aG vboxusers "
                    + literal(learner.name) + ".",
                 en="Group vboxusers does not exist: VirtualBox's package creates it; install "
                    "it first, then sudo usermod -aG vboxusers " + literal(learner.name) + ".")
    if "vboxusers" not in groups:
        obj.fail(fr=f"{literal(learner.name)} n'est pas membre de vboxusers (groupes : "
                    f"{listed(groups, None, as_code=False).fr}). sudo usermod -aG vboxusers "
                    f"{literal(learner.name)}, puis nouvelle session.",
                 en=f"{literal(learner.name)} is not a member of vboxusers (groups: "
                    f"{listed(groups, None, as_code=False).en}). sudo usermod -aG vboxusers "
                    f"{literal(learner.name)}, then log in again.")
    obj.ok(fr=f"{literal(learner.name)} est membre de vboxusers.",
           en=f"{literal(learner.name)} is a member of vboxusers.")


# --- the VM -----------------------------------------------------------------------------

@objective("vbox-vm-created")
def test_vbox_vm_created(learner, obj):
    vm, names = _lookup_vm(learner, obj)
    if vm is None:
        near = [n for n in names if n.strip().lower() == VM]
        if near:
            obj.fail(fr=f"Pas de VM {VM}, mais {literal(repr(near[0]))} existe : les noms "
                        "respectent la casse et les espaces. Renommez-la : VBoxManage modifyvm "
                        f"{literal(repr(near[0]))} --name {VM}.",
                     en=f"No VM {VM}, but {literal(repr(near[0]))} exists: names are case- and "
                        f"space-sensitive. Rename it: VBoxManage modifyvm {literal(repr(near[0]))} "
                        f"--name {VM}.")
        seen_fr = f" (VM de {literal(learner.name)} : {_quoted(names)})" if names else ""
        seen_en = f" ({literal(learner.name)}'s VMs: {_quoted(names)})" if names else ""
        obj.fail(fr=f"Aucune VM nommée {VM} n'est enregistrée pour "
                    f"{literal(learner.name)}{seen_fr}.",
                 en=f"No VM named {VM} is registered for {literal(learner.name)}{seen_en}.")
    obj.evidence(vm=vm.name, uuid=vm.uuid, ostype=vm.ostype, state=vm.state)
    if not is_debian_64(vm.ostype):
        obj.fail(fr=f"{VM} existe mais son type est « {literal(vm.ostype)} », pas Debian 64 bits : "
                    f"VBoxManage modifyvm {VM} --ostype Debian_64 (VM éteinte).",
                 en=f"{VM} exists but its type is '{literal(vm.ostype)}', not Debian 64-bit: "
                    f"VBoxManage modifyvm {VM} --ostype Debian_64 (VM powered off).")
    obj.ok(fr=f"{VM} existe ({literal(vm.ostype)}).", en=f"{VM} exists ({literal(vm.ostype)}).")


@objective("vbox-vm-resources")
def test_vbox_vm_resources(learner, facts, obj):
    vm = _vm(learner, obj)
    host_mem, cores = facts.mem_total, facts.cores
    obj.evidence(memory_mib=vm.memory_mib, cpus=vm.cpus, host_mem_bytes=host_mem,
                 host_cores=cores)
    if vm.memory_mib is None or vm.cpus is None:
        obj.error(fr="showvminfo n'a pas donné la mémoire ou le nombre de vCPU de la VM.",
                  en="showvminfo did not give the VM's memory or vCPU count.")
    if not host_mem or not cores:
        obj.error(fr="Impossible de lire la mémoire ou le nombre de cœurs de l'hôte "
                     "(/proc/meminfo, nproc).",
                  en="Cannot read the host's memory or core count (/proc/meminfo, nproc).")
    left = host_mem - vm.memory_mib * 1024 * 1024
    pf, pe = [], []
    if vm.memory_mib < MIN_MEMORY_MIB:
        pf.append(f"{vm.memory_mib} Mio de mémoire, il en faut au moins {MIN_MEMORY_MIB}")
        pe.append(f"{vm.memory_mib} MiB of memory, at least {MIN_MEMORY_MIB} needed")
    if left < HOST_KEEPS:
        pf.append(f"il ne resterait que {decimal(left / GIB).fr} Gio à l'hôte (2 Gio au moins)")
        pe.append(f"the host would keep only {left / GIB:.1f} GiB (2 GiB at least)")
    if vm.cpus > cores:
        pf.append(f"{vm.cpus} vCPU pour {cores} cœur(s) sur l'hôte")
        pe.append(f"{vm.cpus} vCPUs for {cores} host core(s)")
    if vm.cpus < 1:
        pf.append("aucun vCPU")
        pe.append("no vCPU")
    if pf:
        obj.fail(fr=f"{VM} : " + " ; ".join(pf) + ".", en=f"{VM}: " + "; ".join(pe) + ".")
    obj.ok(fr=f"{vm.memory_mib} Mio et {vm.cpus} vCPU ; l'hôte garde {decimal(left / GIB).fr} Gio.",
           en=f"{vm.memory_mib} MiB and {vm.cpus} vCPU(s); the host keeps {left / GIB:.1f} GiB.")


@objective("vbox-vm-disk")
def test_vbox_vm_disk(learner, obj):
    vm = _vm(learner, obj)
    disks = vm.disks
    obj.evidence(disks=[{"controller": d.controller, "port": d.port, "device": d.device,
                         "medium": d.medium, "format": d.extension} for d in disks])
    vdi = [d for d in disks if d.extension == "vdi"]
    if not disks:
        obj.fail(fr=f"Aucun disque dur n'est attaché à {VM}.",
                 en=f"No hard disk is attached to {VM}.")
    if not vdi:
        found = ", ".join(f"{literal(d.medium)} ({literal(d.extension or '?')})" for d in disks)
        obj.fail(fr=f"Le disque de {VM} n'est pas au format VDI : {found}. Convertissez-le : "
                    "VBoxManage clonemedium disk ANCIEN NOUVEAU.vdi --format VDI, puis attachez "
                    "la copie avec storageattach.",
                 en=f"{VM}'s disk is not in VDI format: {found}. Convert it: VBoxManage "
                    "clonemedium disk OLD NEW.vdi --format VDI, then attach the copy with "
                    "storageattach.")
    d = vdi[0]
    obj.ok(fr=f"Disque VDI sur {literal(d.controller)} port {d.port} : {literal(d.medium)}.",
           en=f"VDI disk on {literal(d.controller)} port {d.port}: {literal(d.medium)}.")


_MODES_FR = {"nat": "NAT", "bridged": "accès par pont", "intnet": "réseau interne",
             "hostonly": "réseau privé hôte", "natnetwork": "réseau NAT (NAT Network)",
             "hostonlynetwork": "réseau privé hôte (host-only network)",
             "generic": "pilote générique",
             "null": "non connectée", "none": "désactivée"}
_MODES_EN = {"nat": "NAT", "bridged": "bridged", "intnet": "internal network",
             "hostonly": "host-only network", "natnetwork": "NAT Network",
             "hostonlynetwork": "host-only network (vmnet)", "generic": "generic driver",
             "null": "not attached", "none": "disabled"}


def _nic(learner, obj, index):
    vm = _vm(learner, obj)
    nic = vm.nic(index)
    mode = nic.attachment if nic else "none"
    obj.evidence(adapter=index, attachment=mode, network=nic.network if nic else "",
                 all_adapters={n.index: n.attachment for n in vm.nics if n.enabled})
    return nic, mode


@objective("vbox-nic-nat")
def test_vbox_nic_nat(learner, obj):
    nic, mode = _nic(learner, obj, 1)
    if mode != "nat":
        obj.fail(fr=f"La carte 1 de {VM} est en mode « {_MODES_FR.get(mode, mode)} », pas NAT : "
                    f"VBoxManage modifyvm {VM} --nic1 nat.",
                 en=f"Adapter 1 of {VM} is '{_MODES_EN.get(mode, mode)}', not NAT: "
                    f"VBoxManage modifyvm {VM} --nic1 nat.")
    obj.ok(fr="La carte 1 est en NAT.", en="Adapter 1 is on NAT.")


@objective("vbox-nic-private")
def test_vbox_nic_private(learner, obj):
    nic, mode = _nic(learner, obj, 2)
    if mode not in ("hostonly", "intnet", "hostonlynetwork"):
        obj.fail(fr=f"La carte 2 de {VM} est en mode « {_MODES_FR.get(mode, mode)} » : il faut un "
                    f"réseau privé hôte (--nic2 hostonly --host-only-adapter2 vboxnet0) ou un "
                    f"réseau interne (--nic2 intnet --intnet2 labnet).",
                 en=f"Adapter 2 of {VM} is '{_MODES_EN.get(mode, mode)}': it needs a host-only "
                    "network (--nic2 hostonly --host-only-adapter2 vboxnet0) or an internal "
                    "network (--nic2 intnet --intnet2 labnet).")
    obj.ok(fr=f"La carte 2 est en {_MODES_FR[mode]} ({literal(nic.network or '')}).",
           en=f"Adapter 2 is on a {_MODES_EN[mode]} ({literal(nic.network or '')}).")


@objective("vbox-snapshot")
def test_vbox_snapshot(learner, obj):
    _vm(learner, obj)
    try:
        snaps = vbox_for(learner).snapshots(VM)
    except VBoxUnavailable as e:
        _unavailable(obj, e)
    obj.evidence(snapshots=[s.name for s in snaps])
    if not snaps:
        obj.fail(fr=f"{VM} n'a aucun instantané : "
                    f"VBoxManage snapshot {VM} take \"installation propre\".",
                 en=f"{VM} has no snapshot: VBoxManage snapshot {VM} take \"clean install\".")
    obj.ok(fr=f"{len(snaps)} instantané(s) : {_quoted([s.name for s in snaps])}.",
           en=f"{len(snaps)} snapshot(s): {_quoted([s.name for s in snaps])}.")
