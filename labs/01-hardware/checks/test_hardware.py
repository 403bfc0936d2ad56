"""Checks of lab 01-hardware (testinfra test module; see checker.dsl)."""

from checker.checks import decimal
from checker.dsl import objective
from checker.markup import literal

GIB = 1024**3

#: What these checks read on every host, fetched with the facts every lab reads in one
#: exchange over SSH (checker.engine.lab_prefetch): testinfra templates and arguments,
#: as the probes below run them. Only commands whose stderr no check reads.
PREFETCH = [
    ("test -f %s && cat -- %s", "/proc/cpuinfo", "/proc/cpuinfo"),
    ("test -f %s && cat -- %s", "/proc/modules", "/proc/modules"),
    ("test -f %s && cat -- %s", "/proc/meminfo", "/proc/meminfo"),
    ("test -d %s", "/sys/module/kvm"),
    ("test -d %s", "/sys/module/kvm_intel"),
    ("test -d %s", "/sys/module/kvm_amd"),
    ("test -e %s", "/dev/kvm"),
    ("stat -Lc %%U %s", "/dev/kvm"),
    ("stat -Lc %%G %s", "/dev/kvm"),
    ("stat -Lc %%a %s", "/dev/kvm"),
    ("test -r %s -a -w %s", "/dev/kvm", "/dev/kvm"),
    ("nproc",),
    ("test -e %s", "/var/lib/libvirt/images"),
    ("df -B1 --output=avail %s", "/var/lib/libvirt/images"),
]


@objective("cpu-virt-flags")
def test_cpu_virt_flags(facts, obj):
    cpu = facts.cpu
    flag = cpu.virt_flag
    obj.evidence(vendor=cpu.vendor, model=cpu.model_name, cpus=cpu.count,
                 virt_flag=flag, hypervisor_flag=cpu.is_guest)
    if flag == "vmx":
        obj.ok(fr="Le processeur expose vmx : Intel VT-x est disponible.",
               en="The CPU exposes vmx: Intel VT-x is available.")
        return
    if flag == "svm":
        obj.ok(fr="Le processeur expose svm : AMD-V est disponible.",
               en="The CPU exposes svm: AMD-V is available.")
        return
    tcg_fr = (" Les labs suivants restent faisables en émulation logicielle "
              "(QEMU TCG, virt-install --virt-type qemu), plus lente.")
    tcg_en = (" The later labs still work with software emulation "
              "(QEMU TCG, virt-install --virt-type qemu), only slower.")
    if cpu.is_guest:
        obj.fail(
            fr="Ni vmx ni svm, et le drapeau « hypervisor » est présent : cette machine est "
               "elle-même une VM sans virtualisation imbriquée. Activez-la sur l'hôte "
               "extérieur (nested)." + tcg_fr,
            en="Neither vmx nor svm, and the 'hypervisor' flag is set: this machine is itself "
               "a VM without nested virtualization. Enable nesting on the outer host." + tcg_en)
    dmesg = facts.dmesg
    from checker.probes.host import bios_disabled_in

    disabled = dmesg is not None and bios_disabled_in(dmesg)
    obj.evidence(dmesg_readable=dmesg is not None, disabled_by_bios=disabled)
    if disabled:
        obj.fail(
            fr="Ni vmx ni svm, et le noyau signale « disabled by bios » : activez Intel VT-x "
               "ou AMD-V (SVM) dans le BIOS/UEFI, puis redémarrez." + tcg_fr,
            en="Neither vmx nor svm, and the kernel reports 'disabled by bios': enable "
               "Intel VT-x or AMD-V (SVM) in the BIOS/UEFI, then reboot." + tcg_en)
    obj.fail(
        fr="Ni vmx ni svm dans /proc/cpuinfo : le processeur ne les offre pas, ou ils sont "
           "désactivés dans le BIOS/UEFI (vérifiez-y l'option VT-x / AMD-V / SVM)." + tcg_fr,
        en="Neither vmx nor svm in /proc/cpuinfo: the CPU lacks them, or they are disabled in "
           "the BIOS/UEFI (look there for VT-x / AMD-V / SVM)." + tcg_en)


@objective("kvm-modules")
def test_kvm_modules(facts, obj):
    found = {m: facts.module_loaded(m) for m in ("kvm", "kvm_intel", "kvm_amd")}
    others = sorted(m for m in facts.modules if m.startswith("kvm"))
    obj.evidence(loaded=found, other_kvm_modules=others)
    if not found["kvm"]:
        obj.fail(fr="Le module kvm n'est pas chargé.", en="Module kvm is not loaded.")
    if not (found["kvm_intel"] or found["kvm_amd"]):
        obj.fail(fr="kvm est chargé, mais ni kvm_intel ni kvm_amd : KVM ne peut pas utiliser "
                    "le processeur (pas de VT-x/AMD-V utilisable).",
                 en="kvm is loaded, but neither kvm_intel nor kvm_amd: KVM cannot use the CPU "
                    "(no usable VT-x/AMD-V).")
    which = "kvm_intel" if found["kvm_intel"] else "kvm_amd"
    obj.ok(fr=f"kvm et {which} sont chargés.", en=f"kvm and {which} are loaded.")


@objective("dev-kvm")
def test_dev_kvm(host, learner, obj):
    f = host.file("/dev/kvm")
    obj.evidence(exists=f.exists, learner=learner.name)
    if not f.exists:
        obj.fail(fr="/dev/kvm n'existe pas (les modules kvm ne sont pas chargés).",
                 en="/dev/kvm does not exist (the kvm modules are not loaded).")
    obj.evidence(owner=f.user, group=f.group, mode=oct(f.mode))
    r = learner.run("test", "-r", "/dev/kvm", "-a", "-w", "/dev/kvm")
    obj.evidence(read_write=r.rc == 0)
    if r.rc != 0:
        obj.fail(fr=f"{literal(learner.name)} ne peut pas lire et écrire /dev/kvm "
                    f"(groupe {literal(f.group)}, mode {oct(f.mode)}).",
                 en=f"{literal(learner.name)} cannot read and write /dev/kvm "
                    f"(group {literal(f.group)}, mode {oct(f.mode)}).")
    obj.ok(fr=f"/dev/kvm existe et {literal(learner.name)} peut l'utiliser.",
           en=f"/dev/kvm exists and {literal(learner.name)} may use it.")


@objective("host-resources")
def test_host_resources(facts, obj):
    cores, mem = facts.cores, facts.mem_total
    where, free = facts.free_bytes("/var/lib/libvirt/images")
    obj.evidence(cores=cores, mem_total_bytes=mem, disk_path=where, disk_free_bytes=free)
    problems_fr, problems_en = [], []
    if cores < 2:
        problems_fr.append(f"{cores} cœur(s), il en faut au moins 2")
        problems_en.append(f"{cores} core(s), at least 2 needed")
    if mem < 3 * GIB:
        ram = decimal(mem / GIB)
        problems_fr.append(f"{ram.fr} Gio de RAM, il faut 3 Gio (2 pour l'hôte + 1 pour une VM)")
        problems_en.append(f"{ram.en} GiB of RAM, 3 GiB needed (2 for the host + 1 for a VM)")
    if free is None:
        obj.error(fr=f"Impossible de mesurer l'espace libre sous {where} (df a échoué).",
                  en=f"Cannot measure free space under {where} (df failed).")
    if free < 10 * GIB:
        problems_fr.append(f"{decimal(free / GIB).fr} Gio libres sous {where}, il en faut 10")
        problems_en.append(f"{decimal(free / GIB).en} GiB free under {where}, 10 needed")
    if problems_fr:
        obj.fail(fr="Ressources insuffisantes : " + " ; ".join(problems_fr) + ".",
                 en="Not enough resources: " + "; ".join(problems_en) + ".")
    ram, disk = decimal(mem / GIB), decimal(free / GIB, 0)
    obj.ok(fr=f"{cores} cœurs, {ram.fr} Gio de RAM, {disk.fr} Gio libres sous {where}.",
           en=f"{cores} cores, {ram.en} GiB RAM, {disk.en} GiB free under {where}.")
