"""Checks of lab 03-libvirt-basics (testinfra test module; see checker.dsl)."""

import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from checker.checks import listed
from checker.dsl import objective
from checker.markup import code, literal
from checker.probes import read_file
from checker.probes.host import WithStderr, read_bytes

NETWORK = "default"
POOL = "default"
IMAGES = "/var/lib/libvirt/images"
BACKUP = "virtlab/backup/default-network.xml"  # under the learner's home
MAX_BACKUP_BYTES = 1024 * 1024
#: What these checks read from libvirt, read ahead in one batch while the host's commands
#: run (checker.engine.lab_virt_prefetch, checker.probes.libvirt.Virt.preload).
VIRT_PREFETCH = ("networks", "pools")
#: What these checks read on every host, fetched with the facts every lab reads in one
#: exchange over SSH (checker.engine.lab_prefetch): testinfra templates and arguments, as
#: testinfra's File and the probes run them; "~/" is the learner's home
#: (checker.probes.host.IN_HOME). Only commands whose stderr no check reads.
_CONF = "~/.config/libvirt/libvirt.conf"
_BACKUP = "~/" + BACKUP
PREFETCH = [
    ("test -e %s", _CONF),
    ("test -f %s", _CONF),
    ("stat -Lc %%s %s", _CONF),
    ("test -f %s && cat -- %s", _CONF, _CONF),
    ("test -e %s", _BACKUP),
    ("test -f %s", _BACKUP),
    ("stat -Lc %%s %s", _BACKUP),
    ("stat -Lc %%U %s", _BACKUP),
    ("cat -- %s", _BACKUP),
]


def _norm(path):
    return (path.rstrip("/") or "/") if path else path


def _pool_facts(p):
    return {"name": p.name, "type": p.type, "target": p.target_path, "active": p.active,
            "autostart": p.autostart, "persistent": p.persistent}


# --- network default -------------------------------------------------------------------

def _network(virt, obj):
    net = virt.network(NETWORK)
    if net is None:
        names = virt.network_names
        obj.evidence(network_defined=False, networks=list(names))
        obj.fail(
            fr=f"Le réseau `{NETWORK}` n'est pas défini (réseaux existants : "
               f"{listed(names).fr}). Recréez-le depuis le modèle du paquet : "
               "sudo virsh net-define /usr/share/libvirt/networks/default.xml",
            en=f"Network `{NETWORK}` is not defined (existing networks: "
               f"{listed(names).en}). Define it again from the package's template: "
               "sudo virsh net-define /usr/share/libvirt/networks/default.xml")
    obj.evidence(network_defined=True, active=net.active, autostart=net.autostart,
                 persistent=net.persistent, bridge=net.bridge, forward_mode=net.forward_mode,
                 uuid=net.uuid)
    return net


@objective("default-network-active")
def test_default_network_active(virt, obj):
    net = _network(virt, obj)
    if not net.active:
        obj.fail(fr=f"Le réseau `{NETWORK}` est défini mais inactif : sudo virsh net-start "
                    f"{NETWORK}",
                 en=f"Network `{NETWORK}` is defined but inactive: sudo virsh net-start {NETWORK}")
    obj.ok(fr=f"Le réseau `{NETWORK}` est actif (pont {literal(net.bridge or '')}).",
           en=f"Network `{NETWORK}` is active (bridge {literal(net.bridge or '')}).")


@objective("default-network-autostart")
def test_default_network_autostart(virt, obj):
    net = _network(virt, obj)
    if not net.persistent:
        obj.fail(fr=f"Le réseau `{NETWORK}` est transitoire (créé par net-create) : il disparaîtra "
                    "au prochain arrêt. Définissez-le (virsh net-define) puis virsh net-autostart.",
                 en=f"Network `{NETWORK}` is transient (made by net-create): it will vanish at the "
                    "next stop. Define it (virsh net-define), then virsh net-autostart.")
    if not net.autostart:
        obj.fail(fr=f"Le réseau `{NETWORK}` ne démarre pas avec le démon (Autostart : no). "
                    f"sudo virsh net-autostart {NETWORK}",
                 en=f"Network `{NETWORK}` does not start with the daemon (Autostart: no). "
                    f"sudo virsh net-autostart {NETWORK}")
    obj.ok(fr=f"Le réseau `{NETWORK}` démarre avec le démon.",
           en=f"Network `{NETWORK}` starts with the daemon.")


# --- pool default ----------------------------------------------------------------------

def _pool(virt, obj):
    """Pool `default`, or a failure that recognises a pool on the same folder (`images`)."""
    pools = virt.pools()
    obj.evidence(pools=[_pool_facts(p) for p in pools[:50]])
    pool = next((p for p in pools if p.name == POOL), None)
    if pool is not None:
        return pool
    same_dir = [p.name for p in pools if _norm(p.target_path) == IMAGES]
    if same_dir:
        other = same_dir[0]
        obj.fail(
            fr=f"Pas de pool `{POOL}`, mais le pool {code(other)} pointe sur {IMAGES} "
               "(virt-install nomme ainsi le pool qu'il crée quand on lui donne un chemin de ce "
               "dossier). Le lab, virt-manager et `--disk vol=default/…` attendent le nom "
               f"`{POOL}`, et libvirt refuse deux pools sur le même dossier : sudo virsh "
               f"pool-destroy {literal(other)} ; sudo virsh pool-undefine {literal(other)} (les "
               f"fichiers restent), puis sudo virsh pool-define-as {POOL} dir --target {IMAGES}.",
            en=f"No pool `{POOL}`, but pool {code(other)} points at {IMAGES} (virt-install names "
               "the pool it creates that way when given a path in this folder). The lab, "
               f"virt-manager and `--disk vol=default/…` expect the name `{POOL}`, and libvirt "
               f"refuses two pools on one folder: sudo virsh pool-destroy {literal(other)}; "
               f"sudo virsh pool-undefine {literal(other)} (the files stay), then "
               f"sudo virsh pool-define-as {POOL} dir --target {IMAGES}.")
    obj.fail(
        fr=f"Aucun pool `{POOL}` (pools existants : {listed([p.name for p in pools]).fr}). "
           "Debian (13 comme 12) n'en crée pas : sudo virsh pool-define-as default dir --target "
           f"{IMAGES}, puis pool-build, pool-start et pool-autostart.",
        en=f"No pool `{POOL}` (existing pools: {listed([p.name for p in pools]).en}). "
           "Debian (13 as 12) does not create one: sudo virsh pool-define-as default dir --target "
           f"{IMAGES}, then pool-build, pool-start and pool-autostart.")


@objective("default-pool-active")
def test_default_pool_active(virt, obj):
    pool = _pool(virt, obj)
    if pool.type != "dir":
        obj.fail(fr=f"Le pool `{POOL}` est de type {literal(pool.type)}, pas un répertoire (dir). "
                    f"Supprimez-le (pool-destroy, pool-undefine) et recréez-le : "
                    f"virsh pool-define-as {POOL} dir --target {IMAGES}",
                 en=f"Pool `{POOL}` is of type {literal(pool.type)}, not a directory (dir). Remove "
                    f"it (pool-destroy, pool-undefine) and create it again: "
                    f"virsh pool-define-as {POOL} dir --target {IMAGES}")
    if _norm(pool.target_path) != IMAGES:
        obj.fail(fr=f"Le pool `{POOL}` pointe sur {literal(pool.target_path)}, pas sur {IMAGES}. "
                    f"Corrigez <target><path> avec sudo virsh pool-edit {POOL} (pool arrêté), "
                    "ou recréez-le.",
                 en=f"Pool `{POOL}` points at {literal(pool.target_path)}, not at {IMAGES}. Fix "
                    f"<target><path> with sudo virsh pool-edit {POOL} (pool stopped), or "
                    "create it again.")
    if not pool.active:
        obj.fail(fr=f"Le pool `{POOL}` est défini mais inactif : sudo virsh pool-start {POOL} "
                    f"(s'il se plaint que le dossier manque : sudo virsh pool-build {POOL} "
                    "d'abord).",
                 en=f"Pool `{POOL}` is defined but inactive: sudo virsh pool-start {POOL} "
                    f"(if it says the folder is missing: sudo virsh pool-build {POOL} first).")
    obj.ok(fr=f"Le pool `{POOL}` (dir, {IMAGES}) est actif.",
           en=f"Pool `{POOL}` (dir, {IMAGES}) is active.")


@objective("default-pool-autostart")
def test_default_pool_autostart(virt, obj):
    pool = _pool(virt, obj)
    if not pool.persistent:
        obj.fail(fr=f"Le pool `{POOL}` est transitoire (pool-create-as) : définissez-le avec "
                    "pool-define-as pour qu'il survive au redémarrage du démon.",
                 en=f"Pool `{POOL}` is transient (pool-create-as): define it with pool-define-as "
                    "so that it survives a daemon restart.")
    if not pool.autostart:
        obj.fail(fr=f"Le pool `{POOL}` ne démarre pas avec le démon (Autostart : no). "
                    f"sudo virsh pool-autostart {POOL}",
                 en=f"Pool `{POOL}` does not start with the daemon (Autostart: no). "
                    f"sudo virsh pool-autostart {POOL}")
    obj.ok(fr=f"Le pool `{POOL}` démarre avec le démon.",
           en=f"Pool `{POOL}` starts with the daemon.")


# --- the learner's default URI ---------------------------------------------------------

def is_system_uri(uri):
    """qemu:///system on this host (a ?socket=… parameter allowed), not a session or remote URI.

    >>> is_system_uri("qemu:///system"), is_system_uri("qemu:///session")
    (True, False)
    """
    if not uri:
        return False
    u = urlsplit(uri.strip())
    return u.scheme in ("qemu", "qemu+unix") and u.netloc == "" and u.path.rstrip("/") == "/system"


def parse_libvirt_conf(text):
    """uri_default of a client libvirt.conf (``uri_default = "qemu:///system"``), or None.

    >>> parse_libvirt_conf('# x\\nuri_default = "qemu:///system"  # mine\\n')
    'qemu:///system'
    """
    value = None
    for line in text.splitlines():
        key, sep, rest = line.partition("=")
        if not sep or key.strip() != "uri_default":
            continue
        rest = rest.strip()
        if rest[:1] in ("'", '"'):
            end = rest.find(rest[0], 1)
            value = rest[1:end] if end > 0 else rest[1:]
        else:
            value = rest.split("#", 1)[0].strip()
    return value


def _virsh_uri_env(user):
    # LIBVIRT_AUTOSTART=0: a session URI must not start a session daemon (that would write
    # ~/.cache/libvirt). XDG_RUNTIME_DIR as a real login sets it: without it, GLib creates
    # ~/.cache just to locate the session socket.
    return {"LIBVIRT_AUTOSTART": "0", "XDG_RUNTIME_DIR": f"/run/user/{user.uid}"}


def prefetch_next(host, learner, uri):
    """What these checks run as the learner, built from the learner's home and uid that the
    first exchange read (checker.engine.lab_prefetch_next): the login environment, and
    ``virsh uri`` with its stderr."""
    if not learner.exists:
        return []
    env_template, env_args = learner.command("env", "-0", login_shell=True)
    uri_template, uri_args = learner.command("virsh", "uri", login_shell=True,
                                             env=_virsh_uri_env(host.user(learner.name)))
    return [(env_template, *env_args), (WithStderr(uri_template), *uri_args)]


def _login_env(learner):
    """The learner's environment after their shell start-up files (a new terminal)."""
    r = learner.run("env", "-0", login_shell=True)
    env = {}
    if r.rc == 0:
        for item in r.stdout.split("\0"):
            k, sep, v = item.partition("=")
            if sep:
                env[k.strip()] = v
    return env


@objective("user-default-uri")
def test_user_default_uri(host, learner, obj):
    if not learner.exists:
        obj.error(fr=f"L'utilisateur {literal(learner.name)} n'existe pas sur cet hôte (option "
                     "--user).",
                  en=f"User {literal(learner.name)} does not exist on this host (option --user).")
    home = learner.home
    user = host.user(learner.name)
    conf_path = f"{home}/.config/libvirt/libvirt.conf"
    conf_uri = None
    conf = host.file(conf_path)
    conf_exists = conf.exists
    if conf_exists and conf.is_file and conf.size <= MAX_BACKUP_BYTES:
        text = read_file(host, conf_path)  # None when unreadable: the file gives no URI
        conf_uri = parse_libvirt_conf(text) if text is not None else None
    env = _login_env(learner)
    env_uri = env.get("VIRSH_DEFAULT_CONNECT_URI") or env.get("LIBVIRT_DEFAULT_URI")
    r = learner.run("virsh", "uri", login_shell=True, env=_virsh_uri_env(user))
    lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
    virsh_uri = lines[-1] if r.rc == 0 and lines else None
    virsh_err = ""
    if r.rc != 0:
        errs = [ln.strip() for ln in r.stderr.splitlines()
                if ln.strip().startswith("error")]
        virsh_err = " ".join(errs)[:300] or f"exit code {r.rc}"
    configured = env_uri or conf_uri
    source = ("LIBVIRT_DEFAULT_URI" if env_uri else
              f"uri_default ({conf_path})" if conf_uri else None)
    obj.evidence(learner=learner.name, virsh_uri=virsh_uri, virsh_error=virsh_err or None,
                 env_uri=env_uri, libvirt_conf=conf_path, libvirt_conf_exists=conf_exists,
                 libvirt_conf_uri=conf_uri, source=source)
    if virsh_uri is not None:
        if is_system_uri(virsh_uri):
            obj.ok(fr=f"`virsh uri` de {literal(learner.name)} répond {code(virsh_uri)} (réglé par "
                      f"{literal(source) if source else 'défaut'}).",
                   en=f"{literal(learner.name)}'s `virsh uri` says {code(virsh_uri)} (set by "
                      f"{literal(source) if source else 'default'}).")
            return
        obj.fail(
            fr=f"En tant que {literal(learner.name)}, `virsh uri` répond {code(virsh_uri)} : "
               "`virsh list --all` montre alors cette connexion, pas les VM du système. Écrivez "
               "uri_default = \"qemu:///system\" dans ~/.config/libvirt/libvirt.conf"
               + (f" (actuellement : {literal(source or '')} = {code(configured)})"
                  if configured else "") + ".",
            en=f"As {literal(learner.name)}, `virsh uri` says {code(virsh_uri)}: `virsh list "
               "--all` then shows that connection, not the system's VMs. Write uri_default = "
               "\"qemu:///system\" into ~/.config/libvirt/libvirt.conf"
               + (f" (now: {literal(source or '')} = {code(configured)})" if configured else "")
               + ".")
    # virsh could not connect: judge what is configured.
    if configured and is_system_uri(configured):
        obj.ok(fr=f"{literal(source or '')} donne {code(configured)} à {literal(learner.name)} "
                  f"(virsh uri n'a pas pu se connecter : {literal(virsh_err)}).",
               en=f"{literal(source or '')} gives {literal(learner.name)} {code(configured)} "
                  f"(virsh uri could not connect: {literal(virsh_err)}).")
        return
    if configured:
        obj.fail(fr=f"{literal(source or '')} vaut {code(configured)}, pas qemu:///system (virsh "
                    f"uri : {literal(virsh_err)}).",
                 en=f"{literal(source or '')} is {code(configured)}, not qemu:///system (virsh "
                    f"uri: {literal(virsh_err)}).")
    obj.fail(
        fr=f"Rien ne règle l'URI par défaut de {literal(learner.name)} (ni LIBVIRT_DEFAULT_URI "
           f"dans son shell, ni uri_default dans {literal(conf_path)}) : son virsh vise "
           f"qemu:///session, une session vide (virsh uri : {literal(virsh_err)}).",
        en=f"Nothing sets {literal(learner.name)}'s default URI (neither LIBVIRT_DEFAULT_URI in "
           f"the shell nor uri_default in {literal(conf_path)}): their virsh targets "
           f"qemu:///session, an empty session (virsh uri: {literal(virsh_err)}).")


# --- the backup ------------------------------------------------------------------------

@objective("config-backup")
def test_config_backup(host, virt, learner, obj):
    if not learner.exists:
        obj.error(fr=f"L'utilisateur {literal(learner.name)} n'existe pas sur cet hôte (option "
                     "--user).",
                  en=f"User {literal(learner.name)} does not exist on this host (option --user).")
    path = f"{learner.home}/{BACKUP}"
    f = host.file(path)
    obj.evidence(path=path, exists=f.exists)
    at = literal(path)  # the learner's home, in a message
    make = (f"mkdir -p ~/virtlab/backup && virsh net-dumpxml {NETWORK} > ~/{BACKUP}")
    if not f.exists:
        obj.fail(fr=f"{at} n'existe pas. {make}", en=f"{at} does not exist. {make}")
    if not f.is_file:
        obj.fail(fr=f"{at} n'est pas un fichier ordinaire.", en=f"{at} is not a regular file.")
    size = f.size
    obj.evidence(size=size, owner=f.user)
    if size > MAX_BACKUP_BYTES:
        obj.fail(fr=f"{at} fait {size} octets : ce n'est pas le XML d'un réseau.",
                 en=f"{at} is {size} bytes: not the XML of a network.")
    # The bytes, decoded here: the checker's testinfra decodes command output leniently
    # (checker.probes.output.safe_decode, errors="replace"), so content_string never refuses.
    data = read_bytes(host, path)
    if data is None:
        obj.error(fr=f"{at} existe mais ne peut pas être lu.",
                  en=f"{at} exists but cannot be read.")
    try:
        text = data.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError:
        obj.fail(fr=f"{at} n'est pas un texte UTF-8.", en=f"{at} is not UTF-8 text.")
    if not text.strip():
        obj.fail(fr=f"{at} est vide. {make}", en=f"{at} is empty. {make}")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        obj.fail(fr=f"{at} n'est pas un XML bien formé ({literal(str(e))}). {make}",
                 en=f"{at} is not well-formed XML ({literal(str(e))}). {make}")
    uuid = (root.findtext("uuid") or "").strip()
    name = (root.findtext("name") or "").strip()
    obj.evidence(root=root.tag, name=name, uuid=uuid)
    if root.tag != "network":
        obj.fail(fr=f"{at} contient un {literal('<' + root.tag + '>')}, pas un <network>. {make}",
                 en=f"{at} holds a {literal('<' + root.tag + '>')}, not a <network>. {make}")
    live = virt.network(NETWORK)
    if live is None:
        obj.fail(fr=f"Le réseau `{NETWORK}` n'existe plus : la sauvegarde ne peut pas être "
                    "comparée (restaurez-le : virsh net-define " + at + ").",
                 en=f"Network `{NETWORK}` no longer exists: the backup cannot be compared "
                    "(restore it: virsh net-define " + at + ").")
    obj.evidence(live_uuid=live.uuid)
    if uuid != live.uuid:
        obj.fail(fr=f"La sauvegarde est celle du réseau {code(name)} (UUID "
                    f"{literal(uuid) if uuid else 'absent'}), pas du réseau `{NETWORK}` actuel "
                    f"(UUID {live.uuid}). {make}",
                 en=f"The backup is of network {code(name)} (UUID "
                    f"{literal(uuid) if uuid else 'missing'}), not of the current network "
                    f"`{NETWORK}` (UUID {live.uuid}). {make}")
    obj.ok(fr=f"{at} est le XML du réseau `{NETWORK}` (UUID {literal(uuid)}).",
           en=f"{at} is the XML of network `{NETWORK}` (UUID {literal(uuid)}).")
