"""Checks of lab 02-install-kvm (testinfra test module; see checker.dsl).

Packages are read with one ``dpkg-query`` for the whole lab (``facts.package_versions``),
groups from the user database (``learner.groups``: what a new login gets), libvirt through
the read-only ``virt`` connection, and the learner's own access by running ``virsh`` as
the learner.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import libvirt

from checker.dsl import objective
from checker.markup import literal
from checker.probes.host import WithStderr
from checker.probes.libvirt import LibvirtUnavailable

#: objective id -> the packages it needs; a tuple of names is "any one of them". Verified on
#: both releases' packages: `qemu-kvm` is a virtual package provided only by qemu-system-x86
#: (`apt install qemu-kvm` installs qemu-system-x86); on Debian 13 the real package of
#: virt-install is `virt-install` (virtinst is a transitional package depending on it, and
#: virt-manager depends on virt-install), on Debian 12 `virtinst` (no virt-install package).
PACKAGES: dict[str, tuple[str | tuple[str, ...], ...]] = {
    "pkg-qemu-system": ("qemu-system-x86",),
    "pkg-libvirt-daemon": ("libvirt-daemon-system",),
    "pkg-libvirt-clients": ("libvirt-clients",),
    "pkg-bridge-utils": ("bridge-utils",),
    "pkg-virtinst": (("virt-install", "virtinst"),),
    "pkg-virt-manager": ("virt-manager", "virt-viewer"),
}

C_LOCALE = {"LC_ALL": "C"}  # virsh and virt-host-validate translate their messages


def _alternatives(need: str | tuple[str, ...]) -> tuple[str, ...]:
    return need if isinstance(need, tuple) else (need,)


ALL_PACKAGES = tuple(n for needs in PACKAGES.values() for need in needs
                     for n in _alternatives(need))

#: What these checks read on every host, fetched with the facts every lab reads in one
#: exchange over SSH (checker.engine.lab_prefetch): testinfra templates and arguments, as
#: the probes run them (facts.package_versions, facts.has_systemd, host.group(...).exists,
#: host.exists, facts.unit_states).
#: A command whose stderr a check reads is marked (WithStderr). ``systemctl is-active`` comes first:
#: it must be read before anything connects to libvirt (checker.engine reads libvirt ahead once
#: this exchange is answered).
#: What these checks read from libvirt, read ahead while the host's commands run, once the
#: exchange above answered (checker.engine.lab_virt_prefetch, Virt.preload).
VIRT_PREFETCH = ("version",)

PREFETCH = [
    ("systemctl is-active %s %s", "libvirtd.service", "libvirtd.socket"),
    ("dpkg-query -W -f %s" + " %s" * len(ALL_PACKAGES),
     "${Package}\t${Status}\t${Version}\n", *ALL_PACKAGES),
    ("test -d %s", "/run/systemd/system"),
    ("getent group %s", "libvirt"),
    ("getent group %s", "kvm"),
    ("command -v command",),  # testinfra's exists() checks that `command` works first
    ("command -v %s", "virsh"),
    ("command -v %s", "virt-host-validate"),
    (WithStderr("env LC_ALL=C virt-host-validate qemu"),),  # facts.host_validate
]


def prefetch_next(host, learner, uri):
    """What these checks run as the learner, once the first exchange said who they are
    (checker.engine.lab_prefetch_next): ``virsh list`` with its stderr."""
    if learner.name == "root" or not learner.exists or not host.exists("virsh"):
        return []
    template, args = learner.command("virsh", "-c", on_host_uri(uri), "list", "--all",
                                     env=C_LOCALE)
    return [(WithStderr(template), *args)]


def _install_name(need: str | tuple[str, ...], rel) -> str:
    """The package a learner on this release installs for one need."""
    names = _alternatives(need)
    if rel.virt_install_pkg in names:
        return rel.virt_install_pkg
    return names[0]


def _packages(facts, obj, oid):
    # One dpkg-query for the whole lab (memoised in facts for this run), not two per package.
    versions = facts.package_versions(ALL_PACKAGES)
    rel = facts.release
    mine = {n: versions[n] for need in PACKAGES[oid] for n in _alternatives(need)}
    obj.evidence(packages=mine)
    missing = [need for need in PACKAGES[oid]
               if all(versions[n] is None for n in _alternatives(need))]
    if missing:
        listed = " ".join(_install_name(need, rel) for need in missing)
        obj.evidence(debian=rel.found)
        obj.fail(fr=f"Paquet(s) non installé(s) : {listed}. Installez : sudo apt install {listed}",
                 en=f"Package(s) not installed: {listed}. Install: sudo apt install {listed}")
    found = ", ".join(f"{n} {literal(v)}" for n, v in mine.items() if v is not None)
    obj.ok(fr=f"Installé : {found}.", en=f"Installed: {found}.")


@objective("pkg-qemu-system")
def test_pkg_qemu_system(facts, obj):
    _packages(facts, obj, "pkg-qemu-system")


@objective("pkg-libvirt-daemon")
def test_pkg_libvirt_daemon(facts, obj):
    _packages(facts, obj, "pkg-libvirt-daemon")


@objective("pkg-libvirt-clients")
def test_pkg_libvirt_clients(facts, obj):
    _packages(facts, obj, "pkg-libvirt-clients")


@objective("pkg-bridge-utils")
def test_pkg_bridge_utils(facts, obj):
    _packages(facts, obj, "pkg-bridge-utils")


@objective("pkg-virtinst")
def test_pkg_virtinst(facts, obj):
    _packages(facts, obj, "pkg-virtinst")


@objective("pkg-virt-manager")
def test_pkg_virt_manager(facts, obj):
    _packages(facts, obj, "pkg-virt-manager")


# --- the daemon ----------------------------------------------------------------------
# Both releases run the monolithic libvirtd with socket activation (verified in the
# packages: libvirtd.service has Environment=LIBVIRTD_ARGS="--timeout 120" and Also= its
# sockets; the postinst enables libvirtd.service): libvirtd.socket listens from boot and
# starts libvirtd at the first connection, and libvirtd exits after 120 s without clients
# or running VMs. `systemctl status libvirtd` saying "inactive (dead)" is then normal.

START_FR = ("Démarrez-le : sudo systemctl start libvirtd (ou sudo systemctl enable --now "
            "libvirtd, qui active aussi libvirtd.socket).")
START_EN = ("Start it: sudo systemctl start libvirtd (or sudo systemctl enable --now libvirtd, "
            "which enables libvirtd.socket too).")
UNITS = ("libvirtd.service", "libvirtd.socket")


@objective("libvirtd-active")
def test_libvirtd_active(facts, virt, obj):
    obj.evidence(uri=virt.uri)
    # Before connecting (a connection through the socket starts the daemon): what
    # `systemctl status` shows the learner. Read on every host (in the prefetch exchange,
    # before anything connects: PREFETCH), used only where systemd runs.
    units = facts.unit_states("is-active", UNITS)
    if not facts.has_systemd:
        units = {}
    if units:
        obj.evidence(units=units)
    try:
        lib = virt.lib_version()  # a round trip: a cached connection may be stale
        obj.evidence(libvirt_version=f"{lib // 1000000}.{(lib // 1000) % 1000}.{lib % 1000}",
                     hypervisor_version=virt.hypervisor_version())
    except LibvirtUnavailable as e:
        obj.evidence(reason=e.kind, error=e.message.en)
        if e.kind == "denied":
            # The daemon answered (to refuse us): it is running.
            obj.ok(fr=f"Le démon libvirt répond sur {virt.uri} (accès refusé à ce compte).",
                   en=f"The libvirt daemon answers on {virt.uri} (access denied to this account).")
            return
        if e.kind == "daemon-down" and "permission denied" in e.message.en.lower():
            # The socket exists but this account may not open it (unix_sock_group).
            obj.error(fr=f"Le socket de libvirt refuse ce compte ({e.message.fr}) : lancez la "
                         "vérification avec sudo, ou depuis un compte du groupe libvirt.",
                      en=f"libvirt's socket refuses this account ({e.message.en}): run the "
                         "check with sudo, or from an account in group libvirt.")
        if e.kind == "daemon-down":
            seen_fr = seen_en = ""
            if units:
                seen_fr = (f" (libvirtd.service : {literal(units['libvirtd.service'])}, "
                           f"libvirtd.socket : {literal(units['libvirtd.socket'])} ; le socket "
                           "doit être « active » pour démarrer le démon à la demande)")
                seen_en = (f" (libvirtd.service: {literal(units['libvirtd.service'])}, "
                           f"libvirtd.socket: {literal(units['libvirtd.socket'])}; the socket must "
                           "be 'active' to start the daemon on demand)")
            obj.fail(fr=f"Le démon libvirt ne répond pas sur {virt.uri}{seen_fr}. {START_FR}",
                     en=f"The libvirt daemon does not answer on {virt.uri}{seen_en}. {START_EN}")
        obj.error(fr=e.message.fr, en=e.message.en)
    except libvirt.libvirtError as e:  # a connection that died since it was opened
        obj.evidence(error=str(e))
        obj.fail(fr=f"Le démon libvirt ne répond plus sur {virt.uri} ({literal(str(e))}). "
                    f"{START_FR}",
                 en=f"The libvirt daemon no longer answers on {virt.uri} ({literal(str(e))}). "
                    f"{START_EN}")
    version = obj.facts["libvirt_version"]
    if units.get("libvirtd.service") != "active" and units.get("libvirtd.socket") == "active":
        obj.ok(fr=f"libvirt {version} répond sur {virt.uri}, démarré à la demande par "
                  "libvirtd.socket (activation par socket : « systemctl status libvirtd » dit "
                  "inactive quand personne ne l'utilise, c'est normal).",
               en=f"libvirt {version} answers on {virt.uri}, started on demand by "
                  "libvirtd.socket (socket activation: 'systemctl status libvirtd' says "
                  "inactive while nobody uses it, which is normal).")
        return
    obj.ok(fr=f"libvirt {version} répond sur {virt.uri}.",
           en=f"libvirt {version} answers on {virt.uri}.")


@objective("libvirtd-enabled")
def test_libvirtd_enabled(facts, obj):
    obj.evidence(systemd=facts.has_systemd)
    if not facts.has_systemd:
        obj.skip(fr="systemd n'est pas le système d'init de cette machine (conteneur ?) : "
                    "rien ne démarre libvirtd au boot, l'objectif ne s'applique pas.",
                 en="systemd is not this machine's init (a container?): nothing starts "
                    "libvirtd at boot, the objective does not apply.")
    units = facts.unit_states("is-enabled", UNITS)
    obj.evidence(**units)
    service, socket = units["libvirtd.service"], units["libvirtd.socket"]
    if socket == "enabled":
        obj.ok(fr="libvirtd.socket est activé : systemd écoute dès le démarrage et lance "
                  "libvirtd à la première connexion (il s'arrête après 120 s sans client, "
                  "--timeout 120).",
               en="libvirtd.socket is enabled: systemd listens from boot and starts libvirtd "
                  "on the first connection (it stops after 120 s without clients, "
                  "--timeout 120).")
        return
    if service == "enabled" and socket != "masked":
        obj.ok(fr="libvirtd.service est activé au démarrage (il démarre aussi ses sockets).",
               en="libvirtd.service is enabled at boot (it starts its sockets too).")
        return
    if service == "enabled":
        obj.fail(fr="libvirtd.service est activé mais libvirtd.socket est masqué : le démon "
                    "lancé au boot s'arrête après 120 s d'inactivité (--timeout 120) et plus "
                    "rien ne le relance. sudo systemctl unmask libvirtd.socket, puis "
                    "sudo systemctl enable --now libvirtd.socket",
                 en="libvirtd.service is enabled but libvirtd.socket is masked: the daemon "
                    "started at boot exits after 120 s idle (--timeout 120) and nothing starts "
                    "it again. sudo systemctl unmask libvirtd.socket, then "
                    "sudo systemctl enable --now libvirtd.socket")
    obj.fail(fr=f"libvirtd ne démarre pas avec la machine (libvirtd.service : {literal(service)}, "
                f"libvirtd.socket : {literal(socket)}). Activez-le : sudo systemctl enable --now "
                "libvirtd",
             en=f"libvirtd does not start at boot (libvirtd.service: {literal(service)}, "
                f"libvirtd.socket: {literal(socket)}). Enable it: sudo systemctl enable --now "
                "libvirtd")


# --- the learner ---------------------------------------------------------------------

def _learner_exists(learner, obj):
    obj.evidence(learner=learner.name)
    if learner.name == "root":
        obj.fail(fr="L'apprenant est root, qui a déjà tous les droits : lancez la vérification "
                    "en tant que vous-même (sans sudo), ou avec --user VOTRE_NOM.",
                 en="The learner is root, who has every right already: run the check as "
                    "yourself (without sudo), or with --user YOUR_NAME.")
    if not learner.exists:
        obj.fail(fr=f"Utilisateur introuvable : {literal(repr(learner.name))} n'existe pas sur "
                    "cette machine (vérifiez --user).",
                 en=f"User not found: {literal(repr(learner.name))} does not exist on this machine "
                    "(check --user).")


def _group_member(host, facts, learner, obj, group):
    _learner_exists(learner, obj)
    groups = learner.groups
    exists = host.group(group).exists
    obj.evidence(groups=groups, group_exists=exists)
    if group in groups:
        obj.ok(fr=f"{literal(learner.name)} est membre du groupe {group}.",
               en=f"{literal(learner.name)} is a member of group {group}.")
        return
    if not exists:
        rel = facts.release
        maker = rel.libvirt_group_pkg if group == "libvirt" else rel.kvm_group_pkg
        obj.evidence(debian=rel.found)
        obj.fail(fr=f"Le groupe {group} n'existe pas : installez d'abord les paquets "
                    f"(sudo apt install libvirt-daemon-system ; sur {rel.label}, c'est "
                    f"{maker} qui le crée).",
                 en=f"Group {group} does not exist: install the packages first "
                    f"(sudo apt install libvirt-daemon-system; on {rel.label}, {maker} "
                    "creates it).")
    obj.fail(fr=f"{literal(learner.name)} n'est pas membre du groupe {group}. "
                f"Ajoutez-le : sudo usermod -aG {group} {literal(learner.name)}",
             en=f"{literal(learner.name)} is not a member of group {group}. "
                f"Add them: sudo usermod -aG {group} {literal(learner.name)}")


@objective("user-group-libvirt")
def test_user_group_libvirt(host, facts, learner, obj):
    _group_member(host, facts, learner, obj, "libvirt")


@objective("user-group-kvm")
def test_user_group_kvm(host, facts, learner, obj):
    _group_member(host, facts, learner, obj, "kvm")


def on_host_uri(uri: str) -> str:
    """The URI the learner uses on the checked host itself.

    A remote URI (``qemu+ssh://alice@pc12/system``) names that host's own
    ``qemu:///system``; a local one (possibly with ``?socket=``) is kept as it is.

    >>> on_host_uri("qemu+ssh://alice@pc12/system")
    'qemu:///system'
    >>> on_host_uri("qemu:///system?socket=/tmp/s")
    'qemu:///system?socket=/tmp/s'
    >>> on_host_uri("qemu+ssh://alice@pc12:22/system?socket=/tmp/s&no_tty=1")
    'qemu:///system?socket=/tmp/s'
    """
    u = urlsplit(uri)
    if u.netloc or "+" in u.scheme:
        # keep ?socket=: it names the daemon's socket on that host (the test sandbox's
        # is not at the default path); drop the transport's own parameters
        sock = [v for k, v in parse_qsl(u.query) if k == "socket"]
        query = f"?socket={sock[-1]}" if sock else ""
        return f"{u.scheme.split('+', 1)[0]}://{u.path or '/system'}{query}"
    return uri


DAEMON_DOWN_RE = re.compile(r"no such file or directory|connection refused|"
                            r"failed to connect socket", re.IGNORECASE)
DENIED_RE = re.compile(r"authentication (unavailable|failed)|polkit|permission denied|"
                       r"access denied", re.IGNORECASE)


def _last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@objective("virsh-system-access")
def test_virsh_system_access(host, virt, learner, obj):
    _learner_exists(learner, obj)
    uri = on_host_uri(virt.uri)
    obj.evidence(uri=uri)
    if not host.exists("virsh"):
        obj.fail(fr="virsh n'est pas installé : sudo apt install libvirt-clients",
                 en="virsh is not installed: sudo apt install libvirt-clients")
    r = learner.run("virsh", "-c", uri, "list", "--all", env=C_LOCALE)
    err = _last_error(r.stderr)
    obj.evidence(rc=r.rc, stderr=err)
    if r.rc == 0:
        rows = [ln for ln in r.stdout.splitlines()[2:] if ln.strip()]
        obj.evidence(domains=len(rows))
        obj.ok(fr=f"{literal(learner.name)} liste les VM de {uri} sans sudo ({len(rows)} VM).",
               en=f"{literal(learner.name)} lists the VMs of {uri} without sudo ({len(rows)} VMs).")
        return
    # Denial first: a socket restricted to group libvirt answers "Failed to connect socket
    # to '...': Permission denied", which also looks like a daemon-down message.
    if DENIED_RE.search(r.stderr):
        db_groups = learner.groups
        # The groups of a session like the one virsh ran in: the user database's when the
        # checker runs as root (runuser logs in afresh), the learner's own session otherwise.
        s = learner.run("id", "-Gn")
        session_groups = s.stdout.split() if s.rc == 0 else []
        obj.evidence(groups=db_groups, session_groups=session_groups)
        if "libvirt" not in db_groups:
            obj.fail(fr=f"Accès refusé à {uri} : {literal(learner.name)} n'est pas dans le groupe "
                        f"libvirt ({literal(err)}). Ajoutez-le : sudo usermod -aG libvirt "
                        f"{literal(learner.name)}, puis ouvrez une nouvelle session.",
                     en=f"Access to {uri} denied: {literal(learner.name)} is not in group libvirt "
                        f"({literal(err)}). Add them: sudo usermod -aG libvirt "
                        f"{literal(learner.name)}, then log in again.")
        if "libvirt" not in session_groups:
            obj.fail(fr=f"Accès refusé à {uri} : {literal(learner.name)} est bien dans le groupe "
                        "libvirt, mais cette session date d'avant l'ajout au groupe. Ouvrez une "
                        "nouvelle session (déconnexion/reconnexion), ou tapez newgrp libvirt dans "
                        "ce terminal.",
                     en=f"Access to {uri} denied: {literal(learner.name)} is in group libvirt, but "
                        "this session predates the group change. Log out and in again, or type "
                        "newgrp libvirt in this terminal.")
        obj.fail(fr=f"Accès refusé à {uri} alors que {literal(learner.name)} est dans le groupe "
                    f"libvirt ({literal(err)}). Vérifiez auth_unix_rw et unix_sock_group dans "
                    "/etc/libvirt/libvirtd.conf, et la règle polkit "
                    "/usr/share/polkit-1/rules.d/60-libvirt.rules.",
                 en=f"Access to {uri} denied although {literal(learner.name)} is in group libvirt "
                    f"({literal(err)}). Check auth_unix_rw and unix_sock_group in "
                    "/etc/libvirt/libvirtd.conf, and the polkit rule "
                    "/usr/share/polkit-1/rules.d/60-libvirt.rules.")
    if DAEMON_DOWN_RE.search(r.stderr):
        obj.error(fr=f"Le démon libvirt ne répond pas sur {uri} ({literal(err)}) : l'accès de "
                     f"{literal(learner.name)} ne peut pas être vérifié. {START_FR}",
                  en=f"The libvirt daemon does not answer on {uri} ({literal(err)}): "
                     f"{literal(learner.name)}'s access cannot be checked. {START_EN}")
    obj.fail(fr=f"virsh -c {uri} list --all échoue pour {literal(learner.name)} : "
                f"{literal(err) if err else r.rc}",
             en=f"virsh -c {uri} list --all fails for {literal(learner.name)}: "
                f"{literal(err) if err else r.rc}")


# --- virt-host-validate ---------------------------------------------------------------

VALIDATE_LINE_RE = re.compile(
    r"^\s*(?P<driver>[A-Z]+):\s+Checking\s+(?P<what>.*?)\s*:\s*"
    r"(?P<result>PASS|WARN|FAIL)(?:\s*\((?P<detail>.*)\))?\s*$")


def parse_host_validate(text: str) -> list[dict[str, str]]:
    """The result lines of ``virt-host-validate`` (C locale).

    >>> parse_host_validate("  QEMU: Checking if device /dev/net/tun exists    : PASS")
    [{'driver': 'QEMU', 'what': 'if device /dev/net/tun exists', 'result': 'PASS', 'detail': ''}]
    """
    out = []
    for line in text.splitlines():
        m = VALIDATE_LINE_RE.match(line)
        if m:
            d = m.groupdict()
            d["detail"] = d["detail"] or ""
            out.append(d)
    return out


def is_hardware_line(what: str) -> bool:
    """Lines about VT-x/AMD-V and /dev/kvm: lab 01 grades them, not this lab."""
    return "hardware virtualization" in what or "/dev/kvm" in what


@objective("host-validate")
def test_host_validate(host, facts, obj):
    if not host.exists("virt-host-validate"):
        # /usr/bin/virt-host-validate is in libvirt-clients on Debian 12, in
        # libvirt-daemon-common on Debian 13 (verified with dpkg-deb -c).
        rel = facts.release
        pkg = rel.host_validate_pkg
        obj.evidence(debian=rel.found)
        obj.fail(fr=f"virt-host-validate est introuvable : sur {rel.label}, il vient avec {pkg} "
                    f"(sudo apt install {pkg}).",
                 en=f"virt-host-validate is not found: on {rel.label}, it comes with {pkg} "
                    f"(sudo apt install {pkg}).")
    r = facts.host_validate()
    checks = parse_host_validate(r.stdout)
    obj.evidence(rc=r.rc, lines=[ln.strip() for ln in r.stdout.splitlines() if ln.strip()])
    if not checks:
        detail = _last_error(r.stderr) or _last_error(r.stdout) or f"rc={r.rc}"
        obj.error(fr="virt-host-validate qemu n'a rendu aucun résultat lisible "
                     f"({literal(detail)}).",
                  en=f"virt-host-validate qemu gave no readable result ({literal(detail)}).")
    failed = [c for c in checks if c["result"] == "FAIL" and not is_hardware_line(c["what"])]
    ignored = [c["what"] for c in checks if c["result"] == "FAIL" and is_hardware_line(c["what"])]
    warns = [c["what"] for c in checks if c["result"] == "WARN"]
    obj.evidence(failed=[f"{c['what']}: {c['detail']}" for c in failed],
                 ignored_hardware_failures=ignored, warnings=warns)
    if failed:
        listed = " ; ".join(f"{literal(c['what'])} ({literal(c['detail'])})" if c["detail"]
                            else literal(c["what"]) for c in failed)
        obj.fail(fr=f"virt-host-validate qemu signale {len(failed)} échec(s) : {listed}",
                 en=f"virt-host-validate qemu reports {len(failed)} failure(s): {listed}")
    note_fr = (f" Ligne(s) matérielle(s) en échec ignorée(s), voir le lab 01 : {len(ignored)}."
               if ignored else "")
    note_en = (f" Failed hardware line(s) left to lab 01: {len(ignored)}." if ignored else "")
    obj.ok(fr=f"{len(checks)} vérifications, aucun échec, {len(warns)} avertissement(s).{note_fr}",
           en=f"{len(checks)} checks, no failure, {len(warns)} warning(s).{note_en}")
