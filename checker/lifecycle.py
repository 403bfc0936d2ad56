"""``virtlab start`` / ``virtlab finish``: building a lab's scene and removing it.

A lab that needs a scene (a break-fix lab, for instance) declares it in
``labs/NN-slug/lifecycle.py``, a plain module with three names::

    PREFIX = "lab07-"                  # every libvirt object it touches is named so

    def plan(conn) -> list[Step]:      # `virtlab start`: what to create or reset
        ...
    def cleanup(conn) -> list[Step]:   # `virtlab finish`: what to remove
        ...

Both functions only *read* the current state through ``conn`` and return :class:`Step` s;
nothing changes until this module has shown the steps, asked the learner (or been given
``--yes``), and checked that every step touches an object named ``PREFIX*``. The steps then
run in order, each reported as it ends, so that an interrupted run says what was done; since
``plan()`` compares the current state with the scene, running ``start`` again converges.

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
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Literal, TextIO

from checker.catalog import CatalogError
from checker.model import Lab, Text
from checker.probes.libvirt import LibvirtUnavailable, classify_error, default_uri

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

Action = Literal["create", "reset", "remove", "keep", "blocked"]
Verb = Literal["start", "finish"]

#: Test hook: seconds to sleep after each step.
PAUSE_ENV = "VIRTLAB_STEP_PAUSE"

KINDS = {
    "network": Text("réseau", "network"),
    "domain": Text("VM", "VM"),
    "pool": Text("pool de stockage", "storage pool"),
    "volume": Text("volume", "volume"),
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


# --- loading --------------------------------------------------------------------------

_MODULES: dict[Path, ModuleType] = {}


def load(lab: Lab) -> ModuleType | None:
    """The lab's ``lifecycle.py`` module, or None when the lab has none."""
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
    except Exception as e:
        sys.modules.pop(name, None)
        raise LifecycleModuleError(f"{path}: cannot be loaded: {type(e).__name__}: {e}") from None
    prefix = getattr(mod, "PREFIX", None)
    if not isinstance(prefix, str) or not prefix.endswith("-") or len(prefix) < 3:
        raise LifecycleModuleError(f"{path}: PREFIX must be a name prefix such as 'lab07-', "
                                   f"got {prefix!r}")
    for fn in ("plan", "cleanup"):
        if not callable(getattr(mod, fn, None)):
            raise LifecycleModuleError(f"{path}: function {fn}(conn) is missing")
    _MODULES[path] = mod
    return mod


def validate(steps: list[Step], prefix: str, where: str) -> None:
    """Refuse any step on an object not named ``prefix*`` (a bug in the lab, never run)."""
    for s in steps:
        if not isinstance(s, Step):
            raise LifecycleModuleError(f"{where}: returned {s!r}, not a Step")
        if s.changes and not s.name.startswith(prefix):
            raise LifecycleModuleError(
                f"{where}: refuses to {s.action} {s.kind} {s.name!r}: only objects named "
                f"{prefix}* may be touched")
        if s.changes and s.run is None:
            raise LifecycleModuleError(f"{where}: step {s.action} {s.kind} {s.name} has no run")


# --- libvirt --------------------------------------------------------------------------

def open_rw(uri: str | None) -> Any:
    """A read-WRITE connection (only start/finish use one); LibvirtUnavailable says why not."""
    uri = default_uri(uri)
    try:
        import libvirt
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise LibvirtUnavailable(Text(f"libvirt-python n'est pas installé ({e})",
                                      f"libvirt-python is not installed ({e})"), "missing-lib")
    libvirt.registerErrorHandler(lambda *_: None, None)
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as e:
        raise classify_error(uri, str(e)) from None


def domain_type(conn: Any) -> str:
    """``kvm`` when the daemon offers KVM and, for a local daemon, /dev/kvm is usable and
    kvm_intel or kvm_amd is loaded; else ``qemu`` (TCG software emulation, always works).

    (Some hosts expose a /dev/kvm whose backend is neither module, e.g. a nested PVM: TCG is
    the safe choice there.)
    """
    try:
        caps = ET.fromstring(conn.getCapabilities())
    except Exception:
        return "qemu"
    offers_kvm = any(d.get("type") == "kvm" for d in caps.iter("domain"))
    if not offers_kvm:
        return "qemu"
    try:
        hostname = conn.getURI().split("://", 1)[1].split("/", 1)[0]
    except Exception:
        hostname = ""
    if hostname:  # remote daemon: trust its capabilities
        return "kvm"
    modules = any(Path(f"/sys/module/{m}").is_dir() for m in ("kvm_intel", "kvm_amd"))
    usable = os.access("/dev/kvm", os.R_OK | os.W_OK)
    return "kvm" if modules and usable else "qemu"


# --- running --------------------------------------------------------------------------

HEAD = {
    "start": Text("virtlab start {lab} — préparation de la scène (libvirt : {uri})",
                  "virtlab start {lab} — preparing the scene (libvirt: {uri})"),
    "finish": Text("virtlab finish {lab} — nettoyage (libvirt : {uri})",
                   "virtlab finish {lab} — clean-up (libvirt: {uri})"),
}
GROUPS: dict[str, Text] = {
    "create": Text("À créer :", "To create:"),
    "reset": Text("Modifiés depuis la préparation, à remettre dans l'état de départ "
                  "(vos changements sur ces objets seront perdus) :",
                  "Changed since the scene was made, to put back as they were "
                  "(your changes to these objects will be lost):"),
    "remove": Text("À supprimer :", "To remove:"),
    "keep": Text("Laissés tels quels :", "Left as they are:"),
    "blocked": Text("Impossible sans toucher à autre chose :",
                    "Impossible without touching something else:"),
}
MARKS = {"create": "+", "reset": "!", "remove": "-", "keep": "=", "blocked": "x"}
DONE = {
    "create": Text("créé", "created"),
    "reset": Text("remis dans l'état de départ", "reset"),
    "remove": Text("supprimé", "removed"),
}


def _print(out: TextIO, msg: str = "") -> None:
    out.write(msg + "\n")
    out.flush()


def run(lab: Lab, verb: Verb, uri: str | None, *, yes: bool, lang: str,
        ask: Callable[[str], bool] | None = None, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    """Show the plan of ``start`` or ``finish``, ask, then apply it; returns the exit code.

    ``ask(question) -> bool`` asks the learner; None means there is no terminal to ask on,
    and then only ``yes=True`` lets anything change.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    tr = lambda fr, en: en if lang == "en" else fr  # noqa: E731
    mod = load(lab)
    if mod is None:
        _print(out, tr(
            f"Le lab {lab.id} n'a rien à {'préparer' if verb == 'start' else 'nettoyer'} : "
            f"suivez ses instructions (virtlab show {lab.id}).",
            f"Lab {lab.id} has nothing to {'prepare' if verb == 'start' else 'clean up'}: "
            f"follow its instructions (virtlab show {lab.id})."))
        return EXIT_OK
    prefix: str = mod.PREFIX
    # advice repeats the libvirt of this command when one was named: it works as printed
    conn_opt = f" --connect {shlex.quote(uri)}" if uri else ""
    uri = default_uri(uri)
    try:
        conn = open_rw(uri)
    except LibvirtUnavailable as e:
        _print(err, e.message.get(lang))
        _print(err, tr("Rien n'a été modifié.", "Nothing was changed."))
        return EXIT_UNREACHABLE
    try:
        return _run(lab, verb, mod, prefix, conn, uri, yes=yes, lang=lang, ask=ask,
                    out=out, err=err, conn_opt=conn_opt)
    finally:
        try:
            conn.close()
        except Exception:
            pass


def _run(lab: Lab, verb: Verb, mod: ModuleType, prefix: str, conn: Any, uri: str, *,
         yes: bool, lang: str, ask: Callable[[str], bool] | None, out: TextIO,
         err: TextIO, conn_opt: str = "") -> int:
    import libvirt

    check_cmd = f"virtlab check {lab.id}{conn_opt}"
    tr = lambda fr, en: en if lang == "en" else fr  # noqa: E731
    where = f"{lab.path / 'lifecycle.py'}: {'plan' if verb == 'start' else 'cleanup'}()"
    try:
        steps = list((mod.plan if verb == "start" else mod.cleanup)(conn))
    except libvirt.libvirtError as e:
        _print(err, classify_error(uri, str(e)).message.get(lang))
        _print(err, tr("Rien n'a été modifié.", "Nothing was changed."))
        return EXIT_UNREACHABLE
    validate(steps, prefix, where)

    _print(out, HEAD[verb].get(lang).format(lab=lab.id, uri=uri))
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
        _print(err, tr("Rien n'a été modifié : réglez d'abord le point ci-dessus.",
                       "Nothing was changed: settle the point above first."))
        return EXIT_FAILED
    if not todo:
        if verb == "start":
            _print(out, tr("Rien à faire : la scène est déjà en place. "
                           f"Diagnostiquez, puis vérifiez : {check_cmd}",
                           "Nothing to do: the scene is already in place. "
                           f"Diagnose, then check: {check_cmd}"))
        else:
            _print(out, tr(f"Rien à supprimer : aucun objet {prefix}* n'existe.",
                           f"Nothing to remove: no {prefix}* object exists."))
        return EXIT_OK
    _print(out, tr(f"Seuls des objets nommés {prefix}* sont touchés.",
                   f"Only objects named {prefix}* are touched."))

    if not yes:
        resets = [s for s in todo if s.action == "reset"]
        if resets:
            q = tr(f"{len(resets)} objet(s) modifié(s) depuis la préparation seront remis dans "
                   "l'état de départ. Continuer ?",
                   f"{len(resets)} object(s) changed since the scene was made will be put back "
                   "as they were. Go on?")
        elif verb == "start":
            q = tr("Créer ces objets ?", "Create these objects?")
        else:
            q = tr("Supprimer ces objets ?", "Remove these objects?")
        if ask is None:
            _print(err, tr(f"Refusé : pas de terminal pour poser la question. Relancez avec "
                           f"--yes pour confirmer (virtlab {verb} {lab.id} --yes). "
                           "Rien n'a été modifié.",
                           f"Refused: no terminal to ask on. Run again with --yes to confirm "
                           f"(virtlab {verb} {lab.id} --yes). Nothing was changed."))
            return EXIT_USAGE
        if not ask(q):
            _print(out, tr("Abandon : rien n'a été modifié.", "Cancelled: nothing was changed."))
            return EXIT_FAILED

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
                return EXIT_FAILED
            done.append(s)
            _print(out, f"  [{i}/{len(todo)}] ✓ {s.label(lang)} {DONE[s.action].get(lang)}")
            if pause and i < len(todo):
                time.sleep(pause)
    except KeyboardInterrupt:
        _report_partial(err, lab, verb, done, todo[len(done):], lang,
                        tr("interrompu", "interrupted"), conn_opt)
        return EXIT_INTERRUPTED
    if verb == "start":
        _print(out, tr(f"Scène prête. Tous les objectifs échouent pour l'instant : "
                       f"{check_cmd}. À vous de diagnostiquer et réparer.",
                       f"Scene ready. Every objective fails for now: {check_cmd}. "
                       "Your turn to diagnose and fix."))
    else:
        _print(out, tr(f"Nettoyage terminé : plus aucun objet {prefix}* créé par le lab.",
                       f"Clean-up done: no {prefix}* object made by the lab is left."))
    return EXIT_OK


def _pause() -> float:
    try:
        return max(0.0, float(os.environ.get(PAUSE_ENV, "0") or 0))
    except ValueError:
        return 0.0


def _report_partial(err: TextIO, lab: Lab, verb: Verb, done: list[Step], left: list[Step],
                    lang: str, why: str, conn: str = "") -> None:
    """``conn``: the ``--connect`` option of the command, repeated in the advice."""
    tr = lambda fr, en: en if lang == "en" else fr  # noqa: E731
    _print(err, tr(f"Échec de « virtlab {verb} » à l'étape {left[0].label(lang)} : {why}",
                   f"'virtlab {verb}' failed at {left[0].label(lang)}: {why}"))
    _print(err, tr("Déjà fait : ", "Already done: ")
           + (", ".join(s.label(lang) for s in done) or tr("rien", "nothing")))
    _print(err, tr("Pas fait : ", "Not done: ") + ", ".join(s.label(lang) for s in left))
    _print(err, tr(f"Relancez « virtlab {verb} {lab.id}{conn} » pour terminer"
                   + (f", ou « virtlab finish {lab.id}{conn} » pour tout retirer."
                      if verb == "start" else "."),
                   f"Run 'virtlab {verb} {lab.id}{conn}' again to complete it"
                   + (f", or 'virtlab finish {lab.id}{conn}' to remove it all."
                      if verb == "start" else ".")))
