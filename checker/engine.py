"""Running a lab's checks against one target and building its Report.

``check(lab, target) -> Report`` is a plain function: storage (progress, gradebook) and
formats (text, json, junit, html) are consumers of its result.

>>> from checker import check
>>> report = check("02")                     # doctest: +SKIP
>>> report.score, report.max_score           # doctest: +SKIP
(14, 16)
"""

from __future__ import annotations

import atexit
import importlib.util
import inspect
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from checker import __version__
from checker.catalog import CatalogError, resolve
from checker.dsl import Verdict
from checker.fixtures import FIXTURES, RunContext, UnknownFixture, fixture_names
from checker.hints import levels as hint_levels_of
from checker.hints import shown as hints_shown
from checker.i18n import Text, library_messages, message, resolve_lang
from checker.model import Lab, ObjectiveResult, Report, earned_points
from checker.outcome import judge
from checker.probes import ssh_lost
from checker.probes.learner import Learner, default_learner
from checker.probes.libvirt import CONNECTIONS, Virt, default_uri
from checker.probes.output import OutputFlood
from checker.probes.output import budget as output_budget
from checker.releases import R13, Release
from checker.safetext import clean, clean_data

DEFAULT_HOST = "local://"


class TargetUnreachable(Exception):
    """The target host cannot be inspected at all (exit code 3)."""

    def __init__(self, host: str, reason: str):
        self.host = host
        self.reason = reason
        super().__init__(f"{host}: {reason}")


class BadHostSpec(ValueError):
    """A host spec virtlab refuses or cannot use; the message (:attr:`text`, both languages;
    ``str()`` is the English) says why (exit code 2)."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.en)
        self.text = text


M_SPEC_FORM = message(
    "engine.bad-spec-form",
    fr="spécification d'hôte invalide {spec} : local://, ssh://[utilisateur@]hôte[:port] ou "
       "ansible://nom attendu",
    en="bad host spec {spec}: expected local://, ssh://[user@]host[:port] or ansible://name")
M_SPEC_BACKEND = message(
    "engine.unknown-backend",
    fr="spécification d'hôte invalide {spec} : moteur inconnu {scheme} (local://, "
       "ssh://[utilisateur@]hôte[:port] ou ansible://nom attendu)",
    en="bad host spec {spec}: unknown backend {scheme} (expected local://, "
       "ssh://[user@]host[:port] or ansible://name)")
M_SPEC_REFUSED = message("engine.bad-spec", fr="spécification d'hôte invalide {spec} : {error}",
                         en="bad host spec {spec}: {error}")
M_INVENTORY = message("engine.inventory-unreadable",
                      fr="impossible de lire l'inventaire {inventory} : {error}",
                      en="cannot read inventory {inventory}: {error}")
M_EXIT_CODE = message("engine.exit-code", fr="code de sortie {rc}", en="exit code {rc}")
M_NO_CHECK_MODULE = message(
    "engine.no-check-module", fr="{path} : aucun module de vérification (test_*.py)",
    en="{path}: no check module (test_*.py)")
M_CHECKS_UNLOADABLE = message("engine.checks-unloadable",
                              fr="{path} : chargement impossible : {error}",
                              en="{path}: cannot be loaded: {error}")
M_TWO_CHECKS = message("engine.two-checks", fr="{path} : deux vérifications pour l'objectif {oid}",
                       en="{path}: two checks for objective {oid}")
M_NOT_AN_OBJECTIVE = message(
    "engine.not-an-objective",
    fr="{path} : {function} vérifie l'objectif {oid}, absent de {lab_toml}",
    en="{path}: {function} checks objective {oid}, which is not in {lab_toml}")
M_NO_CHECK = message(
    "engine.objectives-without-check",
    fr="{lab_toml} : les objectifs {missing} n'ont pas de vérification dans {checks}/test_*.py",
    en="{lab_toml}: objectives {missing} have no check in {checks}/test_*.py")


# --- loading check modules -------------------------------------------------------------

_MODULES: dict[Path, list[ModuleType]] = {}


def load_checks(lab: Lab) -> dict[str, Callable[..., Any]]:
    """Map objective id -> check function, from the lab's ``checks/test_*.py``."""
    mods = _MODULES.get(lab.path)
    if mods is None:
        mods = []
        files = sorted(lab.checks_path.glob("test_*.py"))
        if not files:
            raise CatalogError(M_NO_CHECK_MODULE.format(path=lab.checks_path))
        for f in files:
            name = f"virtlab_checks_{lab.id.replace('-', '_')}_{f.stem}"
            spec = importlib.util.spec_from_file_location(name, f)
            assert spec and spec.loader
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            try:
                spec.loader.exec_module(mod)
            # a lab's check module may fail any way: reported as a malformed lab
            except Exception as e:  # noqa: BLE001
                raise CatalogError(M_CHECKS_UNLOADABLE.format(
                    path=f, error=f"{type(e).__name__}: {e}")) from None
            mods.append(mod)
        _MODULES[lab.path] = mods
    found: dict[str, Callable[..., Any]] = {}
    ids = {o.id for o in lab.objectives}
    for mod in mods:
        for _, fn in inspect.getmembers(mod, inspect.isfunction):
            oid = getattr(fn, "virtlab_objective", None)
            if oid is None:
                continue
            if oid in found:
                raise CatalogError(M_TWO_CHECKS.format(path=mod.__file__, oid=repr(oid)))
            if oid not in ids:
                raise CatalogError(M_NOT_AN_OBJECTIVE.format(
                    path=mod.__file__, function=fn.__name__, oid=repr(oid),
                    lab_toml=lab.path / "lab.toml"))
            try:
                fixture_names(fn)
            except UnknownFixture as e:
                raise CatalogError(e.text) from None
            found[oid] = fn
    missing = [o.id for o in lab.objectives if o.id not in found]
    if missing:
        raise CatalogError(M_NO_CHECK.format(lab_toml=lab.path / "lab.toml", missing=missing,
                                             checks=lab.checks_path))
    return found


# --- the target ------------------------------------------------------------------------

@dataclass
class Target:
    """Where to check: a testinfra host spec and the libvirt URI (given, or implied by it)."""

    host: str = DEFAULT_HOST
    connect: str | None = None

    def libvirt_uri(self) -> str:
        if self.connect:
            return self.connect
        if self.host.startswith("ssh://"):
            u = urlsplit(self.host)
            who = f"{u.username}@" if u.username else ""
            port = f":{u.port}" if u.port else ""
            host = f"[{u.hostname}]" if ":" in (u.hostname or "") else u.hostname  # IPv6
            return f"qemu+ssh://{who}{host}{port}/system"
        return default_uri(None)


_HOSTS: dict[tuple[str, str | None, int | None], Any] = {}
MSG_UNBOUNDED = message(
    "engine.unbounded-backend",
    fr="spécification d'hôte refusée {spec} : le moteur {scheme} ne lit pas les sorties avec "
       "une limite et n'impose pas les réglages SSH sûrs ; utilisez ssh://",
    en="bad host spec {spec}: the {scheme} backend reads output without a cap and does not "
       "force the safe SSH settings; use ssh://")
#: testinfra backends that do not run commands through ``run_local`` (so neither the output
#: caps of checker.probes.output nor the forced ssh settings apply; checker.probes.shell
#: has no backend for them): refused.
UNBOUNDED_BACKENDS = ("paramiko", "salt", "winrm")


def get_host(spec: str, ssh_config: str | None = None, timeout: int | None = None) -> Any:
    """A testinfra host, reused across runs in one process (notebook re-checks)."""
    key = (spec, ssh_config, timeout)
    if key in _HOSTS:
        return _HOSTS[key]
    if "://" not in spec:
        raise BadHostSpec(M_SPEC_FORM.format(spec=repr(spec)))
    scheme = spec.split("://", 1)[0]
    if scheme not in ("local", "ssh", "paramiko", "ansible", "docker", "podman", "salt", "winrm",
                      "lxc", "openshift", "kubectl"):
        raise BadHostSpec(M_SPEC_BACKEND.format(spec=repr(spec), scheme=repr(scheme)))
    if scheme in UNBOUNDED_BACKENDS:
        raise BadHostSpec(MSG_UNBOUNDED.format(spec=repr(spec), scheme=repr(scheme)))
    if scheme != "local":
        check_spec(spec, scheme)
    import testinfra.backend
    import testinfra.host

    from checker.probes import shell

    shell.install()  # virtlab's backends: one remote shell per host, every output capped
    if scheme == "ansible":
        _check_ansible_host(spec)
    if scheme in ("ssh", "ansible"):
        # every ssh (testinfra's, libvirt's qemu+ssh) gets the forced settings
        ssh_config = ssh_wrapper(ssh_config, timeout)
    kwargs: dict[str, Any] = {}
    if ssh_config:
        kwargs["ssh_config"] = ssh_config
    if timeout and scheme in ("ssh", "paramiko"):
        kwargs["timeout"] = timeout
    if scheme == "ssh":
        kwargs.setdefault("controlpersist", 60)
        # Never prompt (password, host key): a checker must fail fast, not hang on a prompt.
        kwargs["ssh_extra_args"] = "-o BatchMode=yes"
        kwargs.setdefault("timeout", 10)
    try:
        # testinfra.get_host's steps, without its cache: a host it made before
        # shell.install() (testinfra's ansible module makes a local:// one on import) has
        # testinfra's own backend
        backend = testinfra.backend.get_backend(spec, **kwargs)
        host = testinfra.host.Host(backend)
        backend.set_host(host)
    except Exception as e:  # noqa: BLE001 (testinfra raises anything on a bad spec: a usage error)
        raise BadHostSpec(M_SPEC_REFUSED.format(spec=repr(spec), error=e)) from None
    _HOSTS[key] = host
    return host


_OWN_SSH: dict[str | None, Any] = {}


def ssh_wrapper(ssh_config: str | None, timeout: int | None) -> str | None:
    """The ssh_config to give testinfra, after making sure that the ``ssh`` on our PATH
    forces the safe settings (:mod:`checker.grade.sshconf`): in a grading worker, the run's
    wrapper is there already; elsewhere (``virtlab check --host ssh://…``, a notebook) one is
    set up for this process, first on its PATH (libvirt's ``qemu+ssh`` runs ``ssh`` from
    PATH), and closed at exit. testinfra's ``-F`` names the config of each ssh_config's own
    set-up (the last ``-F`` wins); the forced ``-o`` stay first."""
    import shutil

    from checker.grade.sshconf import WRAPPER_ENV, SshSetup

    run_wrapper = os.environ.get(WRAPPER_ENV)
    found = shutil.which("ssh")
    if run_wrapper and found and Path(found).parent.parent == Path(run_wrapper).parent.parent:
        # a grading worker: the run's wrapper is first on PATH, or the wrapper of the host
        # being graded (checker.grade.hostssh, in the run's folder), which runs it
        return ssh_config
    setup = _OWN_SSH.get(ssh_config)
    if setup is None:
        setup = _OWN_SSH[ssh_config] = SshSetup(ssh_config, timeout or 10)
        if len(_OWN_SSH) == 1:
            os.environ["PATH"] = setup.path_env(dict(os.environ), worker=False)["PATH"]
            atexit.register(close_own_ssh)
    return str(setup.config)


def close_own_ssh() -> None:
    """End this process's own shared SSH connections and take its wrapper off PATH."""
    from checker.probes.shell import close_all

    close_all()  # the remote shells, then libvirt's qemu+ssh: they ride the shared connection
    CONNECTIONS.close_all()
    while _OWN_SSH:
        setup = _OWN_SSH.popitem()[1]
        parts = os.environ.get("PATH", "").split(os.pathsep)
        os.environ["PATH"] = os.pathsep.join(p for p in parts if p != str(setup.bin))
        setup.close()
    for key in [k for k, h in _HOSTS.items() if k[0].startswith(("ssh://", "ansible://"))]:
        _HOSTS.pop(key, None)  # their -F named a config that is gone


def _check_ansible_host(spec: str) -> None:
    """The inventory values testinfra will paste into an ssh:// URL, checked like --hosts."""
    from urllib.parse import parse_qs

    from checker.grade.targets import TargetError, ensure_ansible_on_path
    from checker.hostspec import UnsafeHost, check_inventory_host

    name, _, query = spec.split("://", 1)[1].partition("?")
    inv = parse_qs(query).get("ansible_inventory", [None])[0]
    try:
        ensure_ansible_on_path()
        from testinfra.utils.ansible_runner import AnsibleRunner

        hostvars = AnsibleRunner.get_runner(inv).get_variables(name)
    except TargetError as e:
        raise BadHostSpec(e.text) from None
    except Exception as e:  # not read, not checked: not used either  # noqa: BLE001
        msg = str(e).strip().splitlines()
        raise BadHostSpec(M_INVENTORY.format(
            inventory=inv, error=msg[-1] if msg else type(e).__name__)) from None
    try:
        check_inventory_host(name, hostvars, inv or "")
    except UnsafeHost as e:
        raise BadHostSpec(Text(e.fr, e.en)) from None


def check_spec(spec: str, scheme: str) -> None:
    """Refuse any spec a tool could read as an option, a URL option or a command
    (:mod:`checker.hostspec`, shared with ``virtlab grade``)."""
    from checker.hostspec import UnsafeHost, check_other_spec, parse_ssh_spec

    try:
        if scheme in ("ssh", "paramiko"):
            parse_ssh_spec("ssh://" + spec.split("://", 1)[1])
        else:
            check_other_spec(spec)
    except UnsafeHost as e:
        raise BadHostSpec(Text(e.fr, e.en)) from None


def lab_prefetch(lab: Lab) -> list[tuple[str, tuple[str, ...]]]:
    """The commands a lab's checks modules declare in ``PREFETCH`` (a list of testinfra
    templates and their arguments): run with the facts every lab reads, in one exchange."""
    load_checks(lab)
    out: list[tuple[str, tuple[str, ...]]] = []
    for mod in _MODULES.get(lab.path, []):
        for template, *args in getattr(mod, "PREFETCH", ()):
            out.append((template, tuple(args)))
    return out


def _job_labs(lab: Lab, others: Sequence[str | Lab]) -> list[Lab]:
    """``lab``, then the other labs of its grading job whose checks can be loaded (one that
    cannot adds nothing to what the job reads ahead: its own check says why)."""
    out = [lab]
    for other in others:
        try:
            one = resolve(other)
            load_checks(one)  # (kept: what they declare is read from them next)
        except CatalogError:
            continue
        out.append(one)
    return out


def _prefetch_of(lab: Lab, others: Sequence[str | Lab]) -> list[tuple[str, tuple[str, ...]]]:
    """The commands ``lab`` declares, then those of ``others``."""
    return [c for one in _job_labs(lab, others) for c in lab_prefetch(one)]


def lab_prefetch_next(lab: Lab, host: Any, learner: Learner, uri: str
                      ) -> list[tuple[str, tuple[str, ...]]]:
    """The commands a lab's checks modules build in ``prefetch_next(host, learner, uri)``
    from what the first exchange said (the learner's home and uid, a directory's files):
    the very commands their checks will run, read in one more exchange. A builder that
    fails adds nothing (its checks run those commands themselves)."""
    load_checks(lab)
    out: list[tuple[str, tuple[str, ...]]] = []
    for mod in _MODULES.get(lab.path, []):
        build = getattr(mod, "prefetch_next", None)
        if build is None:
            continue
        try:
            out += [(template, tuple(args)) for template, *args in build(host, learner, uri)]
        except OutputFlood:
            raise
        except Exception as e:  # the checks run them and say what went wrong
            if ssh_lost(e):
                raise
    return out


def _fetch_next(host: Any, lab: Lab, others: Sequence[str | Lab], learner_name: str,
                uri: str, budget: Any, declared: list[tuple[str, tuple[str, ...]]]) -> None:
    """Once the one exchange answered every command the job declares, the commands the
    job's labs build from those answers (:func:`lab_prefetch_next`), in one more exchange
    (:func:`checker.probes.host.fetch`), while libvirt is read ahead."""
    from checker.probes.host import fetch

    if not _all_answered(budget, declared):
        return
    learner = Learner(host, learner_name)
    try:
        fetch(host, [c for one in _job_labs(lab, others)
                     for c in lab_prefetch_next(one, host, learner, uri)])
    except OutputFlood:
        raise  # the host floods: not graded, whatever the checks would make of it
    except Exception as e:  # a lost connection: each check meets it and says so, as before
        if not ssh_lost(e):
            raise


def lab_virt_prefetch(lab: Lab) -> set[str] | None:
    """What a lab's checks read from libvirt: None when no check asks for ``virt``, else the
    kinds of objects its checks modules declare in ``VIRT_PREFETCH``
    (:data:`checker.probes.libvirt.Virt.PRELOADS`; an empty set: the connection only)."""
    checks = load_checks(lab)
    if not any("virt" in fixture_names(fn) for fn in checks.values()):
        return None
    return {kind for mod in _MODULES.get(lab.path, [])
            for kind in getattr(mod, "VIRT_PREFETCH", ())}


def _read_libvirt_ahead(uri: str, lab: Lab, others: Sequence[str | Lab],
                        budget: Any, declared: list[tuple[str, tuple[str, ...]]]) -> None:
    """On a remote host, once the host answered (its ssh connection open: libvirt's
    ``qemu+ssh`` rides it), start reading the libvirt snapshot that ``lab`` and ``others``
    (the other labs of the grading job) read, while the checks run the host's commands
    (:meth:`checker.probes.libvirt.Virt.preload`); the thread is joined with the budget.
    In the job's first run, whichever lab it is, as soon as one of its labs reads libvirt:
    the connection's handshake (several round trips) then overlaps every lab's commands.

    Lab 02 reads what systemd shows before anything connects (a connection through the
    socket starts the daemon): that command is in its ``PREFETCH``, answered by the one
    exchange that comes before this. So the read starts only when the budget holds the
    answer to every command the job's labs declare (``declared``); when the exchange could
    not keep them (its output over a cap, a shell that is not POSIX) nothing is read ahead,
    and each check connects when it reads libvirt, in order, as without the read-ahead."""
    from checker.probes.libvirt import for_run

    if not _all_answered(budget, declared):
        return
    reads = [k for k in map(lab_virt_prefetch, _job_labs(lab, others)) if k is not None]
    if not reads:
        return  # no lab of the job reads libvirt
    wanted = set().union(*reads)
    virt = for_run(uri, CONNECTIONS)
    virt.preload(wanted)
    budget.closers.append(virt.wait)


def _all_answered(budget: Any, declared: list[tuple[str, tuple[str, ...]]]) -> bool:
    """The budget holds an answer to each of the ``declared`` commands (whatever host
    backend answered: one host per budget)."""
    from testinfra.backend.base import BaseBackend

    from checker.probes.host import IN_HOME

    known = {cmd for _, cmd in budget.answers}
    return all(BaseBackend.quote(t, *a) in known for t, a in declared
               if not any(x.startswith(IN_HOME) for x in a))  # files of the home: not here


def ensure_reachable(host: Any, spec: str, user: str | None = None,
                     extra: list[tuple[str, tuple[str, ...]]] | None = None) -> None:
    """The host answers (else TargetUnreachable). With the learner's name, the answer is
    the facts every lab reads, and the lab's ``extra`` ones, fetched in the same exchange
    (:func:`checker.probes.host.prefetch`; no exchange at all when the budget holds them all
    already and the host's shell is open)."""
    if spec.startswith("local://"):
        return
    try:
        if user is None:
            r = host.run("true")
        else:
            from checker.hints import FILENAME
            from checker.probes.host import prefetch

            r = prefetch(host, user, f".local/share/virtlab/{FILENAME}", extra or ())
    except OutputFlood:
        raise
    # testinfra's ssh backend raises RuntimeError and others: reported as unreachable
    except Exception as e:  # noqa: BLE001
        # testinfra's ssh backend raises RuntimeError(CommandResult) when ssh exits 255.
        res = e.args[0] if e.args else None
        err = getattr(res, "stderr", None)
        lines = [ln for ln in (err or "").strip().splitlines() if ln.strip()]
        raise TargetUnreachable(
            spec, lines[-1].strip() if lines else f"{type(e).__name__}: {e}") from None
    if r is None:  # nothing to fetch on an open connection, or a prefetch cut by a cap
        return
    if r.rc != 0:
        code = M_EXIT_CODE.format(rc=r.rc).both()
        reason = (r.stderr or r.stdout or code).strip().splitlines()
        raise TargetUnreachable(spec, reason[-1] if reason else code)


# --- running -------------------------------------------------------------------------

class Fixtures:
    """The fixture values of one run (:data:`checker.fixtures.FIXTURES`), each built from the
    run's context when a check first asks for it (per-check ones for each objective).

    ``virt`` and ``learner``, when given, are used as they are (tests give their own); a
    test may also set ``values[name]`` before the run.
    """

    def __init__(self, lab: Lab, host: Any, virt: Virt | None = None,
                 learner: Learner | None = None, *, context: RunContext | None = None):
        if context is None:
            context = RunContext(lab, host, virt.uri if virt else default_uri(None),
                                 learner.name if learner else default_learner(None))
        self.context = context
        self.values: dict[str, Any] = {"lab": lab, "host": host}
        if virt is not None:
            self.values["virt"] = virt
        if learner is not None:
            self.values["learner"] = learner

    @classmethod
    def for_run(cls, context: RunContext) -> Fixtures:
        return cls(context.lab, context.host, context=context)

    def value(self, name: str, oid: str = "") -> Any:
        """The value of fixture ``name`` (KeyError if it is not in the registry)."""
        spec = FIXTURES[name]
        if spec.per_check:
            return spec.build(self.context, oid)
        if name not in self.values:
            self.values[name] = spec.build(self.context, oid)
        return self.values[name]

    def arguments(self, fn: Callable[..., Any], oid: str) -> dict[str, Any]:
        """The keyword arguments of check ``fn`` for objective ``oid``."""
        try:
            names = fixture_names(fn)
        except UnknownFixture as e:
            raise CatalogError(e.text) from None
        return {name: self.value(name, oid) for name in names}

    def close(self) -> None:
        """The end of the run: close what the registry says to close."""
        for name, value in list(self.values.items()):
            closer = FIXTURES[name].close if name in FIXTURES else None
            if closer is not None:
                closer(value)


def _host_release(fx: Fixtures) -> Release:
    try:
        release: Release = fx.value("facts").release
        return release
    except Exception as e:  # unreadable host: the newest release's words, still a hint
        if ssh_lost(e):
            raise
        return R13


def run_objective(lab: Lab, oid: str, fn: Callable[..., Any], fx: Fixtures,
                  lang: str, hints_level: int = 0) -> ObjectiveResult:
    """Run one check; its status and message follow the one outcome rule
    (:func:`checker.outcome.judge`). ``hints_level``: hint levels the learner asked for
    (checker.hints); the report shows the deepest one seen and counts them in
    ``hints_shown``."""
    o = lab.objective(oid)
    verdict: Verdict | None = None
    t0 = time.perf_counter()
    error: Exception | None = None
    try:
        kwargs = fx.arguments(fn, oid)
        verdict = kwargs.get("obj")
        fn(**kwargs)
    except CatalogError:
        raise
    # a check must never crash the run: judged (an error at worst)
    except Exception as e:  # noqa: BLE001
        error = e
    virt = fx.values.get("virt")
    result = judge(error, verdict, virt.uri if isinstance(virt, Virt) else None)
    if result.daemon_gone and isinstance(virt, Virt):
        virt.daemon_gone()  # the cached connection is dead: the next run opens a fresh one
    duration = round(time.perf_counter() - t0, 4)
    status = result.status
    show_hint = status in ("fail", "error")
    shown = hints_shown(hints_level, failing=show_hint)
    hint = o.hints[min(shown, len(o.hints)) - 1].get(lang) if show_hint else ""
    if "{" in hint:  # words that differ between Debian releases: the host's (checker.releases)
        hint = _host_release(fx).expand(hint)
    # messages and evidence quote the learner's machine: control characters made visible
    return ObjectiveResult(
        id=o.id, title=o.title.get(lang), section=o.section, points=o.points,
        earned=earned_points(status, o.points), status=status,
        message=clean(result.message.get(lang)), hint=clean(hint),
        evidence=clean_data(verdict.facts if verdict else {}), hints_shown=shown,
        duration_s=duration)


def check(lab: str | int | Lab, host: str = DEFAULT_HOST, *, connect: str | None = None,
          user: str | None = None, lang: str | None = None, ssh_config: str | None = None,
          timeout: int | None = None, only: list[str] | None = None,
          prefetch_labs: Sequence[str | Lab] = ()) -> Report:
    """Check one lab on one target and return its Report (never changes the target).

    ``prefetch_labs``: other labs checked on the same host in the same output budget (a
    grading job): the commands they declare are fetched in this lab's exchange, so that a
    host's facts for all its labs come in one exchange."""
    lab = resolve(lab)
    lang = resolve_lang(lang)
    target = Target(host=host, connect=connect)
    started = datetime.now().astimezone()
    t0 = time.perf_counter()
    checks = load_checks(lab)
    with library_messages(lang), output_budget() as budget:
        testinfra_host = get_host(target.host, ssh_config, timeout)
        learner_name = default_learner(user) if target.host.startswith("local://") else (
            user or urlsplit(target.host).username or default_learner(None))
        declared = _prefetch_of(lab, prefetch_labs)
        ensure_reachable(testinfra_host, target.host, learner_name, declared)
        uri = target.libvirt_uri()
        # the read-only libvirt connection is shared across runs in this process
        fx = Fixtures.for_run(RunContext(lab, testinfra_host, uri, learner_name,
                                         connections=CONNECTIONS))
        if not target.host.startswith("local://"):
            _read_libvirt_ahead(uri, lab, prefetch_labs, budget, declared)
            _fetch_next(testinfra_host, lab, prefetch_labs, learner_name, uri, budget,
                        declared)
        # The learner's hints file lives on the learner's machine: read it there.
        hint_levels = hint_levels_of(lab.id, learner_name, host=testinfra_host)
        results = []
        try:
            for o in lab.objectives:
                if only and o.id not in only:
                    continue
                results.append(run_objective(lab, o.id, checks[o.id], fx, lang,
                                             hint_levels.get(o.id, 0)))
        finally:
            fx.close()
        if budget.flood is not None:
            # the host flooded us: whatever the checks made of its cut output, no grade
            raise budget.flood
    return Report(
        lab=lab.id, title=lab.title.get(lang), host=clean(target.host), libvirt_uri=clean(uri),
        user=clean(learner_name), lang=lang, started_at=started.isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - t0, 3), checker_version=__version__,
        objectives=tuple(results))
