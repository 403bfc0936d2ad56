"""``virtlab start`` / ``virtlab finish``: building a lab's scene and removing it.

A lab that needs a scene (a break-fix lab, for instance) declares it in
``labs/NN-slug/lifecycle.py``. Usually the module only *declares its objects*::

    from checker.lifecycle import Scene, SceneDomain, SceneNetwork, ScenePool, SceneVolume

    SCENE = Scene(
        prefix="lab09-",                           # every libvirt object it touches is so named
        pool=ScenePool("lab09-pool", "/var/lib/libvirt/lab09-pool", what=Text(…)),
        networks=(SceneNetwork("lab09-net", NET_XML, what=Text(…)),),
        domains=(SceneDomain("lab09-vm", xml=vm_xml, volume=SceneVolume("lab09-vm.qcow2"),
                             what=Text(…)),),
    )

and this module does the rest, the same for every lab: ``start`` plans from the current state
(what is absent is created, what differs from the declaration is reset and the learner is told
what differs, what matches is kept; a disk a VM not named ``PREFIX*`` uses blocks everything),
``finish`` removes every ``PREFIX*`` object (domains with their snapshots and disks, networks,
pools with their volumes and folder, stray volumes in other pools) and nothing else.

A lab whose scene this cannot describe may instead give the three names underneath::

    PREFIX = "lab07-"
    def plan(conn) -> list[Step]: ...      # `virtlab start`: what to create or reset
    def cleanup(conn) -> list[Step]: ...   # `virtlab finish`: what to remove (or
                                           # cleanup = functools.partial(remove_all, prefix=PREFIX))

Both only *read* the current state through ``conn`` and return :class:`Step` s; nothing
changes until this module has shown the steps, asked the learner (or been given ``--yes``),
and checked that every step touches an object named ``PREFIX*``. The steps then run in
order, each reported as it ends, so that an interrupted run says what was done; since the
plan compares the current state with the scene, running ``start`` again converges.

This is the only place in virtlab that opens a read-WRITE libvirt connection; checks always
read through the read-only one of :mod:`checker.probes.libvirt`.

>>> run(resolve("07"), "start", "qemu:///system", yes=True, lang="en")   # doctest: +SKIP
0

Labs without ``lifecycle.py`` have nothing to prepare: ``start`` and ``finish`` say so and
exit 0. The test hook ``VIRTLAB_STEP_PAUSE=SECONDS`` sleeps after each step (tests use it to
interrupt a run halfway).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TextIO

from checker.catalog import CatalogError
from checker.exitcodes import Exit
from checker.i18n import Text, message
from checker.markup import plain
from checker.model import Lab
from checker.probes.libvirt import (
    LibvirtUnavailable,
    classify_error,
    default_uri,
    parse_domain_xml,
    parse_network_xml,
    quiet_libvirt,
)

Action = Literal["create", "reset", "remove", "keep", "blocked"]
Verb = Literal["start", "finish"]

#: Test hook: seconds to sleep after each step.
PAUSE_ENV = "VIRTLAB_STEP_PAUSE"

KINDS = {
    "network": message("lifecycle.kind-network", "réseau", "network"),
    "domain": message("lifecycle.kind-domain", "VM", "VM"),
    "pool": message("lifecycle.kind-pool", "pool de stockage", "storage pool"),
    "volume": message("lifecycle.kind-volume", "volume", "volume"),
}


@dataclass(frozen=True)
class Step:
    """One thing ``start`` or ``finish`` does to one libvirt object.

    ``action``: ``create`` (absent, will be made), ``reset`` (present but not as the scene
    wants: it may hold the learner's work, so the question says so), ``remove``, ``keep``
    (shown, nothing done: already as wanted, or not ours to remove), ``blocked`` (cannot be
    done without touching something not named ``PREFIX*``: nothing at all is done).
    ``detail`` says what it makes or what differs; ``run(conn)`` does it.
    """

    action: Action
    kind: str
    name: str
    detail: Text = Text("", "")
    run: Callable[[Any], None] | None = None

    @property
    def changes(self) -> bool:
        return self.action in ("create", "reset", "remove")

    def label(self, lang: str) -> str:
        kind = KINDS.get(self.kind, Text(self.kind, self.kind)).get(lang)
        return f"{kind} {self.name}"


class LifecycleModuleError(CatalogError):
    """A lab's lifecycle.py is malformed (exit code 2, like any malformed lab)."""


M_LC_UNLOADABLE = message("lifecycle.unloadable", fr="{path} : chargement impossible : {error}",
                          en="{path}: cannot be loaded: {error}")
M_LC_NOT_SCENE = message(
    "lifecycle.not-a-scene", fr="{path} : SCENE doit être un checker.lifecycle.Scene, trouvé {got}",
    en="{path}: SCENE must be a checker.lifecycle.Scene, got {got}")
M_LC_PREFIX = message(
    "lifecycle.bad-prefix",
    fr="{path} : PREFIX doit être un préfixe de nom comme 'lab07-', trouvé {got}",
    en="{path}: PREFIX must be a name prefix such as 'lab07-', got {got}")
M_LC_NO_FUNCTION = message("lifecycle.no-function", fr="{path} : la fonction {fn}(conn) manque",
                           en="{path}: function {fn}(conn) is missing")
M_LC_NOT_STEP = message("lifecycle.not-a-step", fr="{where} : a renvoyé {got}, pas un Step",
                        en="{where}: returned {got}, not a Step")
M_LC_OUTSIDE = message(
    "lifecycle.outside-prefix",
    fr="{where} : refuse de {action} {kind} {name} : seuls les objets nommés {prefix}* "
       "peuvent être touchés",
    en="{where}: refuses to {action} {kind} {name}: only objects named {prefix}* may be touched")
M_LC_NO_RUN = message("lifecycle.no-run",
                      fr="{where} : l'étape {action} {kind} {name} n'a pas de run",
                      en="{where}: step {action} {kind} {name} has no run")
M_SCENE_NAMES = message("lifecycle.scene-names", fr="Scene : {names} pas nommé(s) {prefix}*",
                        en="Scene: {names} not named {prefix}*")
M_SCENE_POOL = message("lifecycle.scene-pool",
                       fr="Scene : les domaines ont besoin du pool de la scène pour leurs disques",
                       en="Scene: domains need the scene's pool for their disks")


@dataclass(frozen=True)
class Lifecycle:
    """What a lab's ``lifecycle.py`` gives this module: its prefix and its two plans."""

    prefix: str
    plan: Callable[[Any], list[Step]]
    cleanup: Callable[[Any], list[Step]]


# --- loading --------------------------------------------------------------------------

_MODULES: dict[Path, Lifecycle] = {}


def load(lab: Lab) -> Lifecycle | None:
    """The lab's scene (from its ``lifecycle.py``), or None when the lab has none."""
    path = lab.path / "lifecycle.py"
    if not path.is_file():
        return None
    if path in _MODULES:
        return _MODULES[path]
    name = f"virtlab_lifecycle_{lab.id.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    try:
        spec.loader.exec_module(mod)
    except Exception as e:  # any error of a lab's own module is a malformed lab  # noqa: BLE001
        sys.modules.pop(name, None)
        raise LifecycleModuleError(M_LC_UNLOADABLE.format(
            path=path, error=f"{type(e).__name__}: {e}")) from None
    lc = _lifecycle_of(mod, path)
    _MODULES[path] = lc
    return lc


def _lifecycle_of(mod: ModuleType, path: Path) -> Lifecycle:
    scene = getattr(mod, "SCENE", None)
    if scene is not None:
        if not isinstance(scene, Scene):
            raise LifecycleModuleError(M_LC_NOT_SCENE.format(path=path,
                                                             got=type(scene).__name__))
        return Lifecycle(scene.prefix, scene.plan, scene.cleanup)
    prefix = getattr(mod, "PREFIX", None)
    if not isinstance(prefix, str) or not _good_prefix(prefix):
        raise LifecycleModuleError(M_LC_PREFIX.format(path=path, got=repr(prefix)))
    fns = {}
    for fn in ("plan", "cleanup"):
        f = getattr(mod, fn, None)
        if not callable(f):
            raise LifecycleModuleError(M_LC_NO_FUNCTION.format(path=path, fn=fn))
        fns[fn] = f
    return Lifecycle(prefix, fns["plan"], fns["cleanup"])


def _good_prefix(prefix: str) -> bool:
    return prefix.endswith("-") and len(prefix) >= 3


def validate(steps: list[Step], prefix: str, where: str) -> None:
    """Refuse any step on an object not named ``prefix*`` (a bug in the lab, never run)."""
    for s in steps:
        if not isinstance(s, Step):
            raise LifecycleModuleError(M_LC_NOT_STEP.format(where=where, got=repr(s)))
        if s.changes and not s.name.startswith(prefix):
            raise LifecycleModuleError(M_LC_OUTSIDE.format(
                where=where, action=s.action, kind=s.kind, name=repr(s.name), prefix=prefix))
        if s.changes and s.run is None:
            raise LifecycleModuleError(M_LC_NO_RUN.format(where=where, action=s.action,
                                                          kind=s.kind, name=s.name))


# --- libvirt --------------------------------------------------------------------------

NO_LIBVIRT = message("lifecycle.no-libvirt-python", "libvirt-python n'est pas installé ({error})",
                     "libvirt-python is not installed ({error})")


def _libvirt() -> Any:
    import libvirt

    return libvirt


def open_rw(uri: str | None) -> Any:
    """A read-WRITE connection (only start/finish use one); LibvirtUnavailable says why not."""
    uri = default_uri(uri)
    try:
        import libvirt
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise LibvirtUnavailable(NO_LIBVIRT.format(error=e), "missing-lib") from None
    quiet_libvirt()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as e:
        raise classify_error(uri, str(e), e) from None


def domain_type(conn: Any) -> str:
    """``kvm`` when the daemon offers KVM and, for a local daemon, /dev/kvm is usable and
    kvm_intel or kvm_amd is loaded; else ``qemu`` (TCG software emulation, always works).

    (Some hosts expose a /dev/kvm whose backend is neither module, e.g. a nested PVM: TCG is
    the safe choice there.)
    """
    libvirt = _libvirt()
    try:
        caps = ET.fromstring(conn.getCapabilities())
    except (libvirt.libvirtError, ET.ParseError):
        return "qemu"
    offers_kvm = any(d.get("type") == "kvm" for d in caps.iter("domain"))
    if not offers_kvm:
        return "qemu"
    try:
        hostname = conn.getURI().split("://", 1)[1].split("/", 1)[0]
    except (libvirt.libvirtError, IndexError):
        hostname = ""
    if hostname:  # remote daemon: trust its capabilities
        return "kvm"
    modules = any(Path(f"/sys/module/{m}").is_dir() for m in ("kvm_intel", "kvm_amd"))
    usable = os.access("/dev/kvm", os.R_OK | os.W_OK)
    return "kvm" if modules and usable else "qemu"


def _lookup(fn: Callable[[str], Any], name: str, code: int) -> Any | None:
    libvirt = _libvirt()
    try:
        return fn(name)
    except libvirt.libvirtError as e:
        if e.get_error_code() == code:
            return None
        raise


def lookup_domain(conn: Any, name: str) -> Any | None:
    """The domain ``name``, None when there is none (other libvirt errors raise)."""
    return _lookup(conn.lookupByName, name, _libvirt().VIR_ERR_NO_DOMAIN)


def lookup_network(conn: Any, name: str) -> Any | None:
    return _lookup(conn.networkLookupByName, name, _libvirt().VIR_ERR_NO_NETWORK)


def lookup_pool(conn: Any, name: str) -> Any | None:
    return _lookup(conn.storagePoolLookupByName, name, _libvirt().VIR_ERR_NO_STORAGE_POOL)


def lookup_volume(pool: Any, name: str) -> Any | None:
    return _lookup(pool.storageVolLookupByName, name, _libvirt().VIR_ERR_NO_STORAGE_VOL)


def disk_paths(dom: Any) -> set[str]:
    """The files of a domain's disks, live and inactive definitions together."""
    libvirt = _libvirt()
    paths = set()
    for flags in (0, libvirt.VIR_DOMAIN_XML_INACTIVE):
        try:
            facts = parse_domain_xml(dom.XMLDesc(flags))
        except libvirt.libvirtError:
            continue
        paths |= {d.path for d in facts["disks"] if d.path}
    return paths


def pool_path(pool: Any) -> str:
    """A storage pool's target folder ('' when its XML cannot be read)."""
    libvirt = _libvirt()
    try:
        return (ET.fromstring(pool.XMLDesc(0)).findtext("target/path") or "").rstrip("/")
    except (libvirt.libvirtError, ET.ParseError):
        return ""


# --- removing (run only after the learner agreed) ------------------------------------------

def remove_domain(conn: Any, name: str) -> None:
    """Stop and undefine a domain with its snapshot, NVRAM, save and checkpoint metadata."""
    libvirt = _libvirt()
    dom = lookup_domain(conn, name)
    if dom is None:
        return
    if dom.isActive():
        dom.destroy()
    if dom.isPersistent():
        # Internal snapshots live inside the qcow2 file, deleted with the volume.
        flags = (libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                 | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                 | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                 | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
        try:
            dom.undefineFlags(flags)
        except libvirt.libvirtError as e:
            # a driver without NVRAM or checkpoints refuses those flags ("unsupported
            # flags"): the snapshot and managed-save metadata are what it may hold
            if e.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:
                raise
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                              | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)


def remove_network(conn: Any, name: str) -> None:
    net = lookup_network(conn, name)
    if net is None:
        return
    if net.isActive():
        net.destroy()
    if net.isPersistent():
        net.undefine()


def remove_pool(conn: Any, name: str) -> None:
    """A pool with its volumes and its (then empty) folder."""
    libvirt = _libvirt()
    pool = lookup_pool(conn, name)
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


def _remove_vm(name: str, vol_paths: list[str]) -> Callable[[Any], None]:
    def run(conn: Any) -> None:
        libvirt = _libvirt()
        remove_domain(conn, name)
        for path in vol_paths:
            try:
                conn.storageVolLookupByPath(path).delete(0)
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise
    return run


def _bound(fn: Callable[[Any, str], None], name: str) -> Callable[[Any], None]:
    """``fn(conn, name)`` as a step's ``run(conn)``."""
    def run(conn: Any) -> None:
        fn(conn, name)
    return run


def _remove_volume(pool_name: str, vol_name: str) -> Callable[[Any], None]:
    def run(conn: Any) -> None:
        pool = lookup_pool(conn, pool_name)
        vol = lookup_volume(pool, vol_name) if pool is not None else None
        if vol is not None:
            vol.delete(0)
    return run


KEEP_FOREIGN_DISK = message(
    "lifecycle.keep-foreign-disk",
    "disque de la VM {name}, qui n'est pas nommée {prefix}* (si c'est une VM du lab renommée : "
    "virsh domrename {name} {prefix}…, puis relancez finish)",
    "disk of VM {name}, not named {prefix}* (if it is a lab VM renamed: virsh domrename "
    "{name} {prefix}…, then run finish again)")
REMOVE_DOMAIN = message(
    "lifecycle.remove-domain", "{stopped}supprimée avec ses {snapshots} snapshot(s){disks}",
    "{stopped}removed with its {snapshots} snapshot(s){disks}")
REMOVE_DOMAIN_STOPPED = message("lifecycle.remove-domain-stopped", "arrêtée puis ",
                                "stopped then ")
REMOVE_DOMAIN_DISKS = message("lifecycle.remove-domain-disks", " et son disque {paths}",
                              " and its disk {paths}")
REMOVE_NETWORK = message("lifecycle.remove-network", "supprimé", "removed")
REMOVE_NETWORK_ACTIVE = message("lifecycle.remove-network-active", "arrêté puis supprimé",
                                "stopped then removed")
KEEP_POOL = message(
    "lifecycle.keep-pool",
    "gardé : il contient {paths}, disque d'une VM qui n'est pas nommée {prefix}*",
    "kept: it holds {paths}, the disk of a VM not named {prefix}*")
REMOVE_POOL = message("lifecycle.remove-pool", "supprimé avec ses volumes et son dossier",
                      "removed with its volumes and its folder")
REMOVE_VOLUME = message("lifecycle.remove-volume", "dans le pool {pool}", "in pool {pool}")


def remove_all(conn: Any, prefix: str) -> list[Step]:
    """What ``virtlab finish`` does: remove every ``prefix*`` object, nothing else.

    Domains named ``prefix*`` go with their snapshots and with the disks that are theirs (in
    a ``prefix*`` pool or named ``prefix*``); networks and pools named ``prefix*`` go whole;
    ``prefix*`` volumes in other pools go. A disk that a VM not named ``prefix*`` uses is
    kept, and so is the pool holding it (the learner is told how to settle it).
    """
    libvirt = _libvirt()
    steps: list[Step] = []
    pools = sorted(conn.listAllStoragePools(0), key=lambda p: p.name())
    lab_dirs = [d for d in (pool_path(p) for p in pools if p.name().startswith(prefix)) if d]
    kept_paths: set[str] = set()  # volumes a domain not named prefix* uses
    domains = sorted(conn.listAllDomains(0), key=lambda d: d.name())

    for dom in domains:
        name = dom.name()
        if name.startswith(prefix):
            continue
        for path in sorted(disk_paths(dom)):
            if "/" + prefix in path or any(path.startswith(d + "/") for d in lab_dirs):
                kept_paths.add(path)
                steps.append(Step("keep", "volume", path,
                                  KEEP_FOREIGN_DISK.format(name=name, prefix=prefix)))

    for dom in domains:
        name = dom.name()
        if not name.startswith(prefix):
            continue
        vols = []
        for path in sorted(disk_paths(dom)):
            try:
                vol = conn.storageVolLookupByPath(path)
            except libvirt.libvirtError:
                continue
            try:
                in_lab_pool = vol.storagePoolLookupByVolume().name().startswith(prefix)
            except libvirt.libvirtError:
                in_lab_pool = False
            if (in_lab_pool or vol.name().startswith(prefix)) and path not in kept_paths:
                vols.append(path)
        try:
            nsnap = dom.snapshotNum(0)
        except libvirt.libvirtError:
            nsnap = 0
        stopped = REMOVE_DOMAIN_STOPPED if dom.isActive() else Text("", "")
        disks = REMOVE_DOMAIN_DISKS.format(paths=", ".join(vols)) if vols else Text("", "")
        steps.append(Step("remove", "domain", name, Text(
            REMOVE_DOMAIN.fr.format(stopped=stopped.fr, snapshots=nsnap, disks=disks.fr),
            REMOVE_DOMAIN.en.format(stopped=stopped.en, snapshots=nsnap, disks=disks.en)),
            _remove_vm(name, vols)))

    for net in sorted(conn.listAllNetworks(0), key=lambda n: n.name()):
        if net.name().startswith(prefix):
            steps.append(Step("remove", "network", net.name(),
                              REMOVE_NETWORK_ACTIVE if net.isActive() else REMOVE_NETWORK,
                              _bound(remove_network, net.name())))

    for pool in pools:
        pname = pool.name()
        if pname.startswith(prefix):
            blocked = sorted(p for p in kept_paths if p.startswith(pool_path(pool) + "/"))
            if blocked:
                steps.append(Step("keep", "pool", pname,
                                  KEEP_POOL.format(paths=", ".join(blocked), prefix=prefix)))
            else:
                steps.append(Step("remove", "pool", pname, REMOVE_POOL,
                                  _bound(remove_pool, pname)))
        elif pool.isActive():
            # prefix* volumes that ended up in another pool (e.g. made by the learner)
            try:
                pool.refresh(0)
                names = pool.listVolumes()
            except libvirt.libvirtError:
                continue
            for vname in sorted(names):
                if not vname.startswith(prefix):
                    continue
                vol = pool.storageVolLookupByName(vname)
                if vol.path() in kept_paths:
                    continue
                steps.append(Step("remove", "volume", vname, REMOVE_VOLUME.format(pool=pname),
                                  _remove_volume(pname, vname)))
    return steps


# --- a scene, declared ----------------------------------------------------------------------

@dataclass(frozen=True)
class ScenePool:
    """A ``dir`` storage pool holding the scene's disks (autostarted, active)."""

    name: str
    path: str
    what: Text

    def xml(self) -> str:
        root = ET.Element("pool", type="dir")
        ET.SubElement(root, "name").text = self.name
        ET.SubElement(ET.SubElement(root, "target"), "path").text = self.path
        return ET.tostring(root, encoding="unicode")


@dataclass(frozen=True)
class SceneNetwork:
    """A network of the scene: its XML, and whether it runs and autostarts."""

    name: str
    xml: str
    what: Text
    active: bool = False
    autostart: bool = False


@dataclass(frozen=True)
class SceneVolume:
    """A thin disk in the scene's pool (``allocation`` 0)."""

    name: str
    capacity_gib: int = 1
    format: str = "qcow2"

    def xml(self) -> str:
        return (f"<volume><name>{_esc(self.name)}</name>"
                f"<capacity unit='GiB'>{int(self.capacity_gib)}</capacity>"
                "<allocation>0</allocation>"
                f"<target><format type={_attr(self.format)}/></target></volume>")


@dataclass(frozen=True)
class SceneSnapshot:
    name: str
    description: str = ""


@dataclass(frozen=True)
class SceneDomain:
    """A VM of the scene, shut off. ``xml(virt_type)`` builds its definition (``virt_type``
    from :func:`domain_type`); its one disk is ``volume`` in the scene's pool; ``what``
    may name ``{virt_type}``."""

    name: str
    xml: Callable[[str], str]
    volume: SceneVolume
    what: Text
    snapshots: tuple[SceneSnapshot, ...] = ()


def _esc(s: str) -> str:
    from xml.sax.saxutils import escape

    return escape(s)


def _attr(s: str) -> str:
    from xml.sax.saxutils import quoteattr

    return quoteattr(s)


SCENE_KEPT = message("lifecycle.scene-kept", "déjà en place", "already in place")
SCENE_POOL_RESET = message("lifecycle.scene-pool-reset", "inactif ou sans démarrage automatique",
                           "inactive or not autostarted")
SCENE_EXTRA = message("lifecycle.scene-extra",
                      "hors de la scène, gardé (virtlab finish le supprimera)",
                      "not part of the scene, kept (virtlab finish will remove it)")
SCENE_BLOCKED = message(
    "lifecycle.scene-blocked",
    "son disque {path} sert à la VM {users}, qui n'est pas nommée {prefix}* : si c'est {name} "
    "renommée, rendez-lui son nom (virsh domrename {user} {name}, VM éteinte)",
    "its disk {path} is used by VM {users}, not named {prefix}*: if that is {name} renamed, "
    "give it its name back (virsh domrename {user} {name}, VM shut off)")
DIFF_ACTIVE = message("lifecycle.diff-active", "actif (scène : arrêté)", "active (scene: stopped)")
DIFF_STOPPED = message("lifecycle.diff-stopped", "arrêté (scène : actif)",
                       "stopped (scene: active)")
DIFF_AUTOSTART = message("lifecycle.diff-autostart", "démarrage automatique (scène : non)",
                         "autostarts (scene: no)")
DIFF_NO_AUTOSTART = message("lifecycle.diff-no-autostart",
                            "sans démarrage automatique (scène : oui)",
                            "no autostart (scene: yes)")
DIFF_TRANSIENT = message("lifecycle.diff-transient", "transitoire", "transient")
DIFF_RUNNING = message("lifecycle.diff-running", "démarrée (scène : éteinte)",
                       "running (scene: shut off)")
DIFF_VALUE = message("lifecycle.diff-value", "{what} {got} (scène : {want})",
                     "{what} {got} (scene: {want})")
DIFF_MEMORY = message("lifecycle.diff-memory", "mémoire {got} Mio (scène : {want})",
                      "memory {got} MiB (scene: {want})")
DIFF_COUNT = message("lifecycle.diff-interfaces", "{got} interfaces (scène : {want})",
                     "{got} interfaces (scene: {want})")
DIFF_SNAPSHOTS = message("lifecycle.diff-snapshots", "{got} snapshot(s) (scène : {want})",
                         "{got} snapshot(s) (scene: {want})")
DIFF_NO_DISK = message("lifecycle.diff-no-disk", "disque {volume} absent", "disk {volume} missing")
WORDS = {
    "forward": message("lifecycle.word-forward", "forward", "forward"),
    "bridge": message("lifecycle.word-bridge", "pont", "bridge"),
    "addresses": message("lifecycle.word-addresses", "adresses", "addresses"),
    "type": message("lifecycle.word-type", "type", "type"),
    "network": message("lifecycle.word-network", "réseau", "network"),
    "model": message("lifecycle.word-model", "modèle", "model"),
    "link": message("lifecycle.word-link", "lien", "link"),
    "filter": message("lifecycle.word-filter", "filtre", "filter"),
    "mac": message("lifecycle.word-mac", "MAC", "MAC"),
    "disks": message("lifecycle.word-disks", "disques", "disks"),
}


def _value_diff(what: str, got: Any, want: Any) -> Text:
    w = WORDS[what]
    return Text(DIFF_VALUE.fr.format(what=w.fr, got=got, want=want),
                DIFF_VALUE.en.format(what=w.en, got=got, want=want))


def _join(diffs: list[Text]) -> Text:
    return Text(", ".join(d.fr for d in diffs), ", ".join(d.en for d in diffs))


@dataclass(frozen=True)
class Scene:
    """A lab's scene: its prefix and the objects ``start`` makes; ``finish`` removes every
    ``prefix*`` object (:func:`remove_all`). Every declared name must carry the prefix."""

    prefix: str
    pool: ScenePool | None = None
    networks: tuple[SceneNetwork, ...] = ()
    domains: tuple[SceneDomain, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _good_prefix(self.prefix):
            raise LifecycleModuleError(M_LC_PREFIX.format(path="Scene",
                                                          got=repr(self.prefix)))
        names = ([self.pool.name] if self.pool else []) + [n.name for n in self.networks]
        names += [d.name for d in self.domains] + [d.volume.name for d in self.domains]
        bad = [n for n in names if not n.startswith(self.prefix)]
        if bad:
            raise LifecycleModuleError(M_SCENE_NAMES.format(names=", ".join(bad),
                                                            prefix=self.prefix))
        if self.domains and self.pool is None:
            raise LifecycleModuleError(M_SCENE_POOL)

    def disk_path(self, dom: SceneDomain) -> str:
        assert self.pool is not None
        return f"{self.pool.path.rstrip('/')}/{dom.volume.name}"

    # -- start --

    def plan(self, conn: Any) -> list[Step]:
        """What ``virtlab start`` will do, from the current state (changes nothing)."""
        steps: list[Step] = []
        virt_type = domain_type(conn)
        if self.pool is not None:
            steps.append(self._pool_step(conn, self.pool))
        for net in self.networks:
            steps.append(self._network_step(conn, net))
        for dom in self.domains:
            steps.append(self._domain_step(conn, dom, virt_type))
        scene = {n.name for n in self.networks} | {d.name for d in self.domains}
        extra = sorted({("network", n.name()) for n in conn.listAllNetworks(0)
                        if n.name().startswith(self.prefix) and n.name() not in scene}
                       | {("domain", d.name()) for d in conn.listAllDomains(0)
                          if d.name().startswith(self.prefix) and d.name() not in scene})
        steps += [Step("keep", kind, name, SCENE_EXTRA) for kind, name in extra]
        return steps

    def cleanup(self, conn: Any) -> list[Step]:
        """What ``virtlab finish`` will do (:func:`remove_all` of the prefix)."""
        return remove_all(conn, self.prefix)

    def _pool_step(self, conn: Any, want: ScenePool) -> Step:
        make = lambda c: self._make_pool(c, want)  # noqa: E731
        pool = lookup_pool(conn, want.name)
        if pool is None:
            return Step("create", "pool", want.name, want.what, make)
        if not pool.isActive() or not pool.autostart():
            return Step("reset", "pool", want.name, SCENE_POOL_RESET, make)
        return Step("keep", "pool", want.name, SCENE_KEPT)

    def _network_step(self, conn: Any, want: SceneNetwork) -> Step:
        make = lambda c: self._make_network(c, want)  # noqa: E731
        net = lookup_network(conn, want.name)
        if net is None:
            return Step("create", "network", want.name, want.what, make)
        diffs = self._network_diffs(net, want)
        if diffs:
            return Step("reset", "network", want.name, _join(diffs), make)
        return Step("keep", "network", want.name, SCENE_KEPT)

    def _domain_step(self, conn: Any, want: SceneDomain, virt_type: str) -> Step:
        path = self.disk_path(want)
        users = sorted(d.name() for d in conn.listAllDomains(0)
                       if not d.name().startswith(self.prefix) and path in disk_paths(d))
        if users:
            return Step("blocked", "domain", want.name, SCENE_BLOCKED.format(
                path=path, users=", ".join(users), prefix=self.prefix, name=want.name,
                user=users[0]))
        make = lambda c: self._make_domain(c, want)  # noqa: E731
        dom = lookup_domain(conn, want.name)
        if dom is None:
            return Step("create", "domain", want.name, want.what.format(virt_type=virt_type),
                        make)
        diffs = self._domain_diffs(conn, dom, want, virt_type)
        if diffs:
            return Step("reset", "domain", want.name, _join(diffs), make)
        return Step("keep", "domain", want.name, SCENE_KEPT)

    @staticmethod
    def _network_diffs(net: Any, want: SceneNetwork) -> list[Text]:
        got, wanted = parse_network_xml(net.XMLDesc(0)), parse_network_xml(want.xml)
        out = []
        if bool(net.isActive()) != want.active:
            out.append(DIFF_ACTIVE if net.isActive() else DIFF_STOPPED)
        if bool(net.autostart()) != want.autostart:
            out.append(DIFF_AUTOSTART if net.autostart() else DIFF_NO_AUTOSTART)
        if not net.isPersistent():
            out.append(DIFF_TRANSIENT)
        if got["forward_mode"] != wanted["forward_mode"]:
            out.append(_value_diff("forward", got["forward_mode"], wanted["forward_mode"]))
        if got["bridge"] != wanted["bridge"]:
            out.append(_value_diff("bridge", got["bridge"], wanted["bridge"]))
        addrs, want_addrs = ([ip.address for ip in f["ips"]] for f in (got, wanted))
        if addrs != want_addrs:
            out.append(_value_diff("addresses", addrs, ", ".join(want_addrs)))
        return out

    def _domain_diffs(self, conn: Any, dom: Any, want: SceneDomain,
                      virt_type: str) -> list[Text]:
        libvirt = _libvirt()
        out: list[Text] = []
        if not dom.isPersistent():
            out.append(DIFF_TRANSIENT)
        if dom.isActive():
            out.append(DIFF_RUNNING)
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) if dom.isPersistent() else dom.XMLDesc(0)
        f, w = parse_domain_xml(xml), parse_domain_xml(want.xml(virt_type))
        if f["virt_type"] != w["virt_type"]:
            out.append(_value_diff("type", f["virt_type"], w["virt_type"]))
        if f["memory_kib"] != w["memory_kib"]:
            out.append(DIFF_MEMORY.format(got=f["memory_kib"] // 1024,
                                          want=w["memory_kib"] // 1024))
        ifaces, want_ifaces = f["interfaces"], w["interfaces"]
        if len(ifaces) != len(want_ifaces):
            out.append(DIFF_COUNT.format(got=len(ifaces), want=len(want_ifaces)))
        else:
            for i, j in zip(ifaces, want_ifaces):
                for what, attr in (("network", "network"), ("model", "model"),
                                   ("link", "link_state"), ("filter", "filterref"),
                                   ("mac", "mac")):
                    if getattr(i, attr) != getattr(j, attr):
                        out.append(_value_diff(what, getattr(i, attr), getattr(j, attr)))
        disks = [d.path for d in f["disks"]]
        if disks != [d.path for d in w["disks"]]:
            out.append(_value_diff("disks", disks, self.disk_path(want)))
        try:
            snaps = sorted(dom.snapshotListNames(0))
        except libvirt.libvirtError:
            snaps = []
        if snaps != sorted(s.name for s in want.snapshots):
            out.append(DIFF_SNAPSHOTS.format(got=len(snaps), want=len(want.snapshots)))
        assert self.pool is not None
        pool = lookup_pool(conn, self.pool.name)
        if pool is None or not pool.isActive() or lookup_volume(pool, want.volume.name) is None:
            out.append(DIFF_NO_DISK.format(volume=want.volume.name))
        return out

    # -- changing (run by this module only, after the learner agreed) --

    @staticmethod
    def _make_pool(conn: Any, want: ScenePool) -> None:
        pool = lookup_pool(conn, want.name)
        if pool is None:
            pool = conn.storagePoolDefineXML(want.xml(), 0)
        if not pool.isActive():
            pool.build(0)  # mkdir (no-op when the folder exists)
            pool.create(0)
        pool.setAutostart(1)

    @staticmethod
    def _make_network(conn: Any, want: SceneNetwork) -> None:
        remove_network(conn, want.name)
        net = conn.networkDefineXML(want.xml)
        net.setAutostart(1 if want.autostart else 0)
        if want.active:
            net.create()

    def _make_domain(self, conn: Any, want: SceneDomain) -> None:
        remove_domain(conn, want.name)
        assert self.pool is not None
        pool = lookup_pool(conn, self.pool.name)
        assert pool is not None, "the pool step runs first"
        pool.refresh(0)
        old = lookup_volume(pool, want.volume.name)
        if old is not None:
            old.delete(0)
        pool.createXML(want.volume.xml(), 0)
        dom = conn.defineXML(want.xml(domain_type(conn)))
        for snap in want.snapshots:
            root = ET.Element("domainsnapshot")
            ET.SubElement(root, "name").text = snap.name
            ET.SubElement(root, "description").text = snap.description
            dom.snapshotCreateXML(ET.tostring(root, encoding="unicode"), 0)


# --- running --------------------------------------------------------------------------

HEAD = {
    "start": message("lifecycle.head-start",
                     "virtlab start {lab} — préparation de la scène (libvirt : {uri})",
                     "virtlab start {lab} — preparing the scene (libvirt: {uri})"),
    "finish": message("lifecycle.head-finish", "virtlab finish {lab} — nettoyage (libvirt : {uri})",
                      "virtlab finish {lab} — clean-up (libvirt: {uri})"),
}
GROUPS: dict[str, Text] = {
    "create": message("lifecycle.group-create", "À créer :", "To create:"),
    "reset": message("lifecycle.group-reset",
                     "Modifiés depuis la préparation, à remettre dans l'état de départ "
                     "(vos changements sur ces objets seront perdus) :",
                     "Changed since the scene was made, to put back as they were "
                     "(your changes to these objects will be lost):"),
    "remove": message("lifecycle.group-remove", "À supprimer :", "To remove:"),
    "keep": message("lifecycle.group-keep", "Laissés tels quels :", "Left as they are:"),
    "blocked": message("lifecycle.group-blocked", "Impossible sans toucher à autre chose :",
                       "Impossible without touching something else:"),
}
MARKS = {"create": "+", "reset": "!", "remove": "-", "keep": "=", "blocked": "x"}
DONE = {
    "create": message("lifecycle.done-create", "créé", "created"),
    "reset": message("lifecycle.done-reset", "remis dans l'état de départ", "reset"),
    "remove": message("lifecycle.done-remove", "supprimé", "removed"),
}
NOTHING_TO = {
    "start": message("lifecycle.nothing-to-prepare",
                     "Le lab {lab} n'a rien à préparer : suivez ses instructions "
                     "(virtlab show {lab}).",
                     "Lab {lab} has nothing to prepare: follow its instructions "
                     "(virtlab show {lab})."),
    "finish": message("lifecycle.nothing-to-clean",
                      "Le lab {lab} n'a rien à nettoyer : suivez ses instructions "
                      "(virtlab show {lab}).",
                      "Lab {lab} has nothing to clean up: follow its instructions "
                      "(virtlab show {lab})."),
}
NOTHING_CHANGED = message("lifecycle.nothing-changed", "Rien n'a été modifié.",
                          "Nothing was changed.")
BLOCKED = message("lifecycle.blocked", "Rien n'a été modifié : réglez d'abord le point ci-dessus.",
                  "Nothing was changed: settle the point above first.")
NOTHING_TO_DO = message("lifecycle.nothing-to-do",
                        "Rien à faire : la scène est déjà en place. Diagnostiquez, puis "
                        "vérifiez : {check}",
                        "Nothing to do: the scene is already in place. Diagnose, then check: "
                        "{check}")
NOTHING_TO_REMOVE = message("lifecycle.nothing-to-remove",
                            "Rien à supprimer : aucun objet {prefix}* n'existe.",
                            "Nothing to remove: no {prefix}* object exists.")
ONLY_PREFIX = message("lifecycle.only-prefix", "Seuls des objets nommés {prefix}* sont touchés.",
                      "Only objects named {prefix}* are touched.")
CONFIRM_RESET = message("lifecycle.confirm-reset",
                        "{count} objet(s) modifié(s) depuis la préparation seront remis dans "
                        "l'état de départ. Continuer ?",
                        "{count} object(s) changed since the scene was made will be put back "
                        "as they were. Go on?")
CONFIRM = {
    "start": message("lifecycle.confirm-create", "Créer ces objets ?", "Create these objects?"),
    "finish": message("lifecycle.confirm-remove", "Supprimer ces objets ?",
                      "Remove these objects?"),
}
NO_TERMINAL = message("lifecycle.no-terminal",
                      "Refusé : pas de terminal pour poser la question. Relancez avec --yes pour "
                      "confirmer (virtlab {verb} {lab} --yes). Rien n'a été modifié.",
                      "Refused: no terminal to ask on. Run again with --yes to confirm "
                      "(virtlab {verb} {lab} --yes). Nothing was changed.")
CANCELLED = message("lifecycle.cancelled", "Abandon : rien n'a été modifié.",
                    "Cancelled: nothing was changed.")
INTERRUPTED = message("lifecycle.interrupted", "interrompu", "interrupted")
SCENE_READY = message("lifecycle.scene-ready",
                      "Scène prête. Tous les objectifs échouent pour l'instant : {check}. À vous "
                      "de diagnostiquer et réparer.",
                      "Scene ready. Every objective fails for now: {check}. Your turn to "
                      "diagnose and fix.")
CLEANED = message("lifecycle.cleaned",
                  "Nettoyage terminé : plus aucun objet {prefix}* créé par le lab.",
                  "Clean-up done: no {prefix}* object made by the lab is left.")
PARTIAL_FAILED = message("lifecycle.partial-failed",
                         "Échec de « virtlab {verb} » à l'étape {step} : {why}",
                         "'virtlab {verb}' failed at {step}: {why}")
PARTIAL_DONE = message("lifecycle.partial-done", "Déjà fait : {steps}", "Already done: {steps}")
PARTIAL_NOTHING = message("lifecycle.partial-nothing", "rien", "nothing")
PARTIAL_LEFT = message("lifecycle.partial-left", "Pas fait : {steps}", "Not done: {steps}")
PARTIAL_AGAIN_START = message(
    "lifecycle.partial-again-start",
    "Relancez « virtlab {verb} {lab}{conn} » pour terminer, ou « virtlab finish {lab}{conn} » "
    "pour tout retirer.",
    "Run 'virtlab {verb} {lab}{conn}' again to complete it, or 'virtlab finish {lab}{conn}' "
    "to remove it all.")
PARTIAL_AGAIN = message("lifecycle.partial-again",
                        "Relancez « virtlab {verb} {lab}{conn} » pour terminer.",
                        "Run 'virtlab {verb} {lab}{conn}' again to complete it.")


def _print(out: TextIO, msg: str = "") -> None:
    out.write(msg + "\n")
    out.flush()


def run(lab: Lab, verb: Verb, uri: str | None, *, yes: bool, lang: str,
        ask: Callable[[str], bool] | None = None, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    """Show the plan of ``start`` or ``finish``, ask, then apply it; returns the exit code
    (:class:`checker.exitcodes.Exit`).

    ``ask(question) -> bool`` asks the learner; None means there is no terminal to ask on,
    and then only ``yes=True`` lets anything change.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    lc = load(lab)
    if lc is None:
        _print(out, NOTHING_TO[verb].format(lab=lab.id).get(lang))
        return Exit.OK
    # advice repeats the libvirt of this command when one was named: it works as printed
    conn_opt = f" --connect {shlex.quote(uri)}" if uri else ""
    uri = default_uri(uri)
    try:
        conn = open_rw(uri)
    except LibvirtUnavailable as e:
        _print(err, plain(e.message.get(lang)))
        _print(err, NOTHING_CHANGED.get(lang))
        return Exit.UNREACHABLE
    try:
        return _run(lab, verb, lc, conn, uri, yes=yes, lang=lang, ask=ask, out=out, err=err,
                    conn_opt=conn_opt)
    finally:
        try:
            conn.close()
        except _libvirt().libvirtError:
            pass


def _run(lab: Lab, verb: Verb, lc: Lifecycle, conn: Any, uri: str, *, yes: bool, lang: str,
         ask: Callable[[str], bool] | None, out: TextIO, err: TextIO, conn_opt: str = "") -> int:
    libvirt = _libvirt()
    prefix = lc.prefix
    check_cmd = f"virtlab check {lab.id}{conn_opt}"
    where = f"{lab.path / 'lifecycle.py'}: {'plan' if verb == 'start' else 'cleanup'}()"
    try:
        steps = list((lc.plan if verb == "start" else lc.cleanup)(conn))
    except libvirt.libvirtError as e:
        _print(err, plain(classify_error(uri, str(e), e).message.get(lang)))
        _print(err, NOTHING_CHANGED.get(lang))
        return Exit.UNREACHABLE
    validate(steps, prefix, where)

    _print(out, HEAD[verb].format(lab=lab.id, uri=uri).get(lang))
    for action in ("create", "reset", "remove", "keep", "blocked"):
        group = [s for s in steps if s.action == action]
        if not group:
            continue
        _print(out, GROUPS[action].get(lang))
        for s in group:
            detail = s.detail.get(lang)
            _print(out, f"  {MARKS[action]} {s.label(lang)}" + (f" — {detail}" if detail else ""))
    todo = [s for s in steps if s.changes]
    blocked = [s for s in steps if s.action == "blocked"]
    if blocked:
        _print(err, BLOCKED.get(lang))
        return Exit.FAILED
    if not todo:
        if verb == "start":
            _print(out, NOTHING_TO_DO.format(check=check_cmd).get(lang))
        else:
            _print(out, NOTHING_TO_REMOVE.format(prefix=prefix).get(lang))
        return Exit.OK
    _print(out, ONLY_PREFIX.format(prefix=prefix).get(lang))

    if not yes:
        resets = [s for s in todo if s.action == "reset"]
        q = (CONFIRM_RESET.format(count=len(resets)) if resets else CONFIRM[verb]).get(lang)
        if ask is None:
            _print(err, NO_TERMINAL.format(verb=verb, lab=lab.id).get(lang))
            return Exit.USAGE
        if not ask(q):
            _print(out, CANCELLED.get(lang))
            return Exit.FAILED

    pause = _pause()
    done: list[Step] = []
    try:  # one handler for the whole loop: Ctrl-C may land anywhere, even between steps
        for i, s in enumerate(todo, 1):
            try:
                assert s.run is not None
                s.run(conn)
            except (libvirt.libvirtError, OSError) as e:
                _report_partial(err, lab, verb, done, todo[len(done):], lang, str(e).strip(),
                                conn_opt)
                return Exit.FAILED
            done.append(s)
            _print(out, f"  [{i}/{len(todo)}] ✓ {s.label(lang)} {DONE[s.action].get(lang)}")
            if pause and i < len(todo):
                time.sleep(pause)
    except KeyboardInterrupt:
        _report_partial(err, lab, verb, done, todo[len(done):], lang, INTERRUPTED.get(lang),
                        conn_opt)
        return Exit.INTERRUPTED
    if verb == "start":
        _print(out, SCENE_READY.format(check=check_cmd).get(lang))
    else:
        _print(out, CLEANED.format(prefix=prefix).get(lang))
    return Exit.OK


def _pause() -> float:
    try:
        return max(0.0, float(os.environ.get(PAUSE_ENV, "0") or 0))
    except ValueError:
        return 0.0


def _report_partial(err: TextIO, lab: Lab, verb: Verb, done: list[Step], left: list[Step],
                    lang: str, why: str, conn: str = "") -> None:
    """``conn``: the ``--connect`` option of the command, repeated in the advice."""
    _print(err, PARTIAL_FAILED.format(verb=verb, step=left[0].label(lang), why=why).get(lang))
    _print(err, PARTIAL_DONE.format(
        steps=", ".join(s.label(lang) for s in done) or PARTIAL_NOTHING.get(lang)).get(lang))
    _print(err, PARTIAL_LEFT.format(steps=", ".join(s.label(lang) for s in left)).get(lang))
    again = PARTIAL_AGAIN_START if verb == "start" else PARTIAL_AGAIN
    _print(err, again.format(verb=verb, lab=lab.id, conn=conn).get(lang))
