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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Callable
from urllib.parse import urlsplit

from checker import __version__
from checker.catalog import CatalogError, resolve
from checker.dsl import PASS_MSG, CheckError, CheckFailed, CheckSkipped, Verdict
from checker.hints import levels as hint_levels_of
from checker.hints import shown as hints_shown
from checker.model import Lab, ObjectiveResult, Report, Text, resolve_lang
from checker.probes import ssh_lost
from checker.probes.host import HostFacts
from checker.probes.learner import Learner, default_learner
from checker.releases import R13, Release
from checker.probes.libvirt import (DAEMON_GONE, LibvirtUnavailable, Virt, classify_error,
                                    default_uri)
from checker.probes.output import OutputFlood
from checker.probes.output import budget as output_budget
from checker.safetext import clean, clean_data

DEFAULT_HOST = "local://"


class TargetUnreachable(Exception):
    """The target host cannot be inspected at all (exit code 3)."""

    def __init__(self, host: str, reason: str):
        self.host = host
        self.reason = reason
        super().__init__(f"{host}: {reason}")


class BadHostSpec(ValueError):
    pass


# --- loading check modules -------------------------------------------------------------

_MODULES: dict[Path, list[ModuleType]] = {}


def load_checks(lab: Lab) -> dict[str, Callable[..., Any]]:
    """Map objective id -> check function, from the lab's ``checks/test_*.py``."""
    mods = _MODULES.get(lab.path)
    if mods is None:
        mods = []
        files = sorted(lab.checks_path.glob("test_*.py"))
        if not files:
            raise CatalogError(f"{lab.checks_path}: no check module (test_*.py)")
        for f in files:
            name = f"virtlab_checks_{lab.id.replace('-', '_')}_{f.stem}"
            spec = importlib.util.spec_from_file_location(name, f)
            assert spec and spec.loader
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            try:
                spec.loader.exec_module(mod)
            except Exception as e:
                raise CatalogError(f"{f}: cannot be loaded: {type(e).__name__}: {e}") from None
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
                raise CatalogError(f"{mod.__file__}: two checks for objective {oid!r}")
            if oid not in ids:
                raise CatalogError(f"{mod.__file__}: {fn.__name__} checks objective {oid!r}, "
                                   f"which is not in {lab.path / 'lab.toml'}")
            found[oid] = fn
    missing = [o.id for o in lab.objectives if o.id not in found]
    if missing:
        raise CatalogError(f"{lab.path / 'lab.toml'}: objectives {missing} have no check "
                           f"in {lab.checks_path}/test_*.py")
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
#: testinfra backends that do not run commands through ``run_local`` (so neither the output
#: caps of checker.probes.output nor the forced ssh settings apply): refused.
UNBOUNDED_BACKENDS = ("paramiko", "salt", "winrm")


def get_host(spec: str, ssh_config: str | None = None, timeout: int | None = None) -> Any:
    """A testinfra host, reused across runs in one process (notebook re-checks)."""
    key = (spec, ssh_config, timeout)
    if key in _HOSTS:
        return _HOSTS[key]
    if "://" not in spec:
        raise BadHostSpec(
            f"bad host spec {spec!r}: expected local://, ssh://[user@]host[:port] or ansible://name")
    scheme = spec.split("://", 1)[0]
    if scheme not in ("local", "ssh", "paramiko", "ansible", "docker", "podman", "salt", "winrm", "lxc", "openshift", "kubectl"):
        raise BadHostSpec(f"bad host spec {spec!r}: unknown backend {scheme!r} "
                          "(expected local://, ssh://[user@]host[:port] or ansible://name)")
    if scheme in UNBOUNDED_BACKENDS:
        raise BadHostSpec(
            f"spécification d'hôte refusée {spec!r} : le moteur {scheme!r} ne lit pas les "
            "sorties avec une limite et n'impose pas les réglages SSH sûrs ; utilisez ssh://\n"
            f"bad host spec {spec!r}: the {scheme!r} backend reads output without a cap and "
            "does not force the safe SSH settings; use ssh://")
    if scheme != "local":
        _check_spec(spec, scheme)
    import testinfra

    from checker.probes import output

    output.install()  # every command's output read with a cap
    if scheme == "ansible":
        _check_ansible_host(spec)
    if scheme in ("ssh", "ansible"):
        # every ssh (testinfra's, libvirt's qemu+ssh) gets the forced settings
        ssh_config = _ssh_wrapper(ssh_config, timeout)
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
        host = testinfra.get_host(spec, **kwargs)
    except Exception as e:
        raise BadHostSpec(f"bad host spec {spec!r}: {e}") from None
    if scheme == "local":
        _set_local_encoding(host)
    _HOSTS[key] = host
    return host


def _set_local_encoding(host: Any) -> None:
    """testinfra learns a host's encoding, the first time a command prints non-ASCII, by
    starting ``python3 -c 'import locale; ...'`` there (~0.1 s, a third of a check). On
    local:// that child inherits our environment, so it answers what we know already."""
    import locale

    enc = locale.getpreferredencoding(False)
    if enc == "ANSI_X3.4-1968":  # testinfra's own rule: plain ASCII (no LANG) means UTF-8
        enc = "UTF-8"
    if getattr(host.backend, "_encoding", "absent") is None:
        host.backend._encoding = enc


_OWN_SSH: dict[str | None, Any] = {}


def _ssh_wrapper(ssh_config: str | None, timeout: int | None) -> str | None:
    """The ssh_config to give testinfra, after making sure that the ``ssh`` on our PATH
    forces the safe settings (:mod:`checker.grade.sshconf`): in a grading worker, the run's
    wrapper is there already; elsewhere (``virtlab check --host ssh://…``, a notebook) one is
    set up for this process, first on its PATH (libvirt's ``qemu+ssh`` runs ``ssh`` from
    PATH), and closed at exit. testinfra's ``-F`` names the config of each ssh_config's own
    set-up (the last ``-F`` wins); the forced ``-o`` stay first."""
    import shutil

    from checker.grade.sshconf import WRAPPER_ENV, SshSetup

    run_wrapper = os.environ.get(WRAPPER_ENV)
    if run_wrapper and shutil.which("ssh") == run_wrapper:
        return ssh_config  # a grading worker: the run's wrapper is first on PATH
    setup = _OWN_SSH.get(ssh_config)
    if setup is None:
        setup = _OWN_SSH[ssh_config] = SshSetup(ssh_config, timeout or 10)
        if len(_OWN_SSH) == 1:
            os.environ["PATH"] = setup.path_env(dict(os.environ), worker=False)["PATH"]
            atexit.register(_close_own_ssh)
    return str(setup.config)


def _close_own_ssh() -> None:
    """End this process's own shared SSH connections and take its wrapper off PATH."""
    _close_connections()  # libvirt's qemu+ssh rides the shared connection: close it first
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

    from checker.hostspec import UnsafeHost, check_inventory_host

    from checker.grade.targets import TargetError, _ensure_ansible_on_path

    name, _, query = spec.split("://", 1)[1].partition("?")
    inv = parse_qs(query).get("ansible_inventory", [None])[0]
    try:
        _ensure_ansible_on_path()
        from testinfra.utils.ansible_runner import AnsibleRunner

        hostvars = AnsibleRunner.get_runner(inv).get_variables(name)
    except TargetError as e:
        raise BadHostSpec(str(e)) from None
    except Exception as e:  # not read, not checked: not used either
        msg = str(e).strip().splitlines()
        raise BadHostSpec(f"cannot read inventory {inv}: "
                          f"{msg[-1] if msg else type(e).__name__}") from None
    try:
        check_inventory_host(name, hostvars, inv or "")
    except UnsafeHost as e:
        raise BadHostSpec(str(e)) from None


def _check_spec(spec: str, scheme: str) -> None:
    """Refuse any spec a tool could read as an option, a URL option or a command
    (:mod:`checker.hostspec`, shared with ``virtlab grade``)."""
    from checker.hostspec import UnsafeHost, check_other_spec, parse_ssh_spec

    try:
        if scheme in ("ssh", "paramiko"):
            parse_ssh_spec("ssh://" + spec.split("://", 1)[1])
        else:
            check_other_spec(spec)
    except UnsafeHost as e:
        raise BadHostSpec(str(e)) from None


def ensure_reachable(host: Any, spec: str) -> None:
    if spec.startswith("local://"):
        return
    try:
        r = host.run("true")
    except OutputFlood:
        raise
    except Exception as e:
        # testinfra's ssh backend raises RuntimeError(CommandResult) when ssh exits 255.
        res = e.args[0] if e.args else None
        err = getattr(res, "stderr", None)
        lines = [ln for ln in (err or "").strip().splitlines() if ln.strip()]
        raise TargetUnreachable(
            spec, lines[-1].strip() if lines else f"{type(e).__name__}: {e}") from None
    if r.rc != 0:
        reason = (r.stderr or r.stdout or f"exit code {r.rc}").strip().splitlines()
        raise TargetUnreachable(spec, reason[-1] if reason else f"exit code {r.rc}")


# --- running -------------------------------------------------------------------------

_CONNS: dict[str, Any] = {}


@atexit.register
def _close_connections() -> None:
    """Close cached libvirt connections before the interpreter tears modules down (libvirt's
    own __del__ would otherwise run too late and print an ignored exception)."""
    while _CONNS:
        _, conn = _CONNS.popitem()
        try:
            conn.close()
        except Exception:
            pass


def _virt_for(uri: str) -> Virt:
    """A fresh fact cache per run, reusing a live read-only connection across runs."""
    virt = Virt(uri)
    conn = _CONNS.get(uri)
    if conn is not None:
        try:
            if conn.isAlive():
                # isAlive() stays True after the daemon stopped, until a call fails: one
                # cheap round trip, so that a dead daemon is reported as such.
                conn.getVersion()
                virt._conn = conn
        except Exception:
            _CONNS.pop(uri, None)
    return virt


class Fixtures:
    """What a check function may ask for, by parameter name."""

    def __init__(self, lab: Lab, host: Any, virt: Virt, learner: Learner):
        self.values: dict[str, Any] = {
            "lab": lab, "host": host, "virt": virt, "learner": learner,
            "facts": HostFacts(host),
        }

    def call(self, fn: Callable[..., Any], verdict: Verdict) -> None:
        params = inspect.signature(fn).parameters
        kwargs = {}
        for name in params:
            if name == "obj":
                kwargs[name] = verdict
            elif name in self.values:
                kwargs[name] = self.values[name]
            else:
                raise CatalogError(f"{fn.__module__}.{fn.__name__}: unknown fixture {name!r}")
        fn(**kwargs)


def _could_not_evaluate(e: BaseException) -> Text:
    detail = f"{type(e).__name__}: {e}".strip()
    if len(detail) > 500:
        detail = detail[:500] + "…"
    return Text(fr=f"Vérification impossible ({detail}).", en=f"Could not evaluate ({detail}).")


def _lost(e: BaseException, fx: "Fixtures") -> Text | None:
    """A clear message when the check lost its libvirt daemon or its SSH connection midway."""
    virt = fx.values.get("virt")
    if type(e).__name__ == "libvirtError" and virt is not None:
        low = str(e).lower()
        if any(m in low for m in DAEMON_GONE):
            # the cached connection is dead: the next check opens a fresh one
            _CONNS.pop(virt.uri, None)
            return classify_error(virt.uri, str(e).strip().splitlines()[-1]).message
    if ssh_lost(e):
        # testinfra's ssh backend: ssh itself failed (exit 255), the command never ran
        lines = [ln.strip() for ln in (e.args[0].stderr or "").splitlines() if ln.strip()]
        why = lines[-1] if lines else "ssh exit 255"
        return Text(fr=f"Connexion SSH à l'hôte perdue pendant la vérification ({why}) ; "
                       "vérifiez à nouveau.",
                    en=f"SSH connection to the host lost during the check ({why}); check again.")
    return None


def _host_release(fx: Fixtures) -> Release:
    facts = fx.values.get("facts")
    try:
        return facts.release if facts is not None else R13
    except Exception as e:  # unreadable host: the newest release's words, still a hint
        if ssh_lost(e):
            raise
        return R13


def run_objective(lab: Lab, oid: str, fn: Callable[..., Any], fx: Fixtures,
                  lang: str, hints_level: int = 0) -> ObjectiveResult:
    """``hints_level``: hint levels the learner asked for (checker.hints); the report shows
    the deepest one seen and counts them in ``hints_shown``."""
    o = lab.objective(oid)
    v = Verdict(oid)
    t0 = time.perf_counter()
    status = "pass"
    message = PASS_MSG
    try:
        fx.call(fn, v)
        message = v.message or PASS_MSG
    except (CheckFailed, CheckSkipped, CheckError) as e:
        status, message = e.status, e.message
    except LibvirtUnavailable as e:
        status, message = "error", e.message
    except CatalogError:
        raise
    except Exception as e:  # a check must never crash the run: report it as an error
        status = "error"
        message = _lost(e, fx) or _could_not_evaluate(e)
    duration = round(time.perf_counter() - t0, 4)
    earned = o.points if status == "pass" else 0
    show_hint = status in ("fail", "error")
    shown = hints_shown(hints_level, failing=show_hint)
    hint = o.hints[min(shown, len(o.hints)) - 1].get(lang) if show_hint else ""
    if "{" in hint:  # words that differ between Debian releases: the host's (checker.releases)
        hint = _host_release(fx).expand(hint)
    # messages and evidence quote the learner's machine: control characters made visible
    return ObjectiveResult(
        id=o.id, title=o.title.get(lang), section=o.section, points=o.points, earned=earned,
        status=status, message=clean(message.get(lang)), hint=clean(hint),
        evidence=clean_data(v.facts), hints_shown=shown, duration_s=duration)


def check(lab: str | int | Lab, host: str = DEFAULT_HOST, *, connect: str | None = None,
          user: str | None = None, lang: str | None = None, ssh_config: str | None = None,
          timeout: int | None = None, only: list[str] | None = None) -> Report:
    """Check one lab on one target and return its Report (never changes the target)."""
    lab = resolve(lab)
    lang = resolve_lang(lang)
    target = Target(host=host, connect=connect)
    started = datetime.now().astimezone()
    t0 = time.perf_counter()
    checks = load_checks(lab)
    with output_budget() as budget:
        testinfra_host = get_host(target.host, ssh_config, timeout)
        ensure_reachable(testinfra_host, target.host)
        learner_name = default_learner(user) if target.host.startswith("local://") else (
            user or urlsplit(target.host).username or default_learner(None))
        uri = target.libvirt_uri()
        virt = _virt_for(uri)
        fx = Fixtures(lab, testinfra_host, virt, Learner(testinfra_host, learner_name))
        # The learner's hints file lives on the learner's machine: read it there.
        hint_levels = hint_levels_of(lab.id, learner_name, host=testinfra_host)
        results = []
        for o in lab.objectives:
            if only and o.id not in only:
                continue
            results.append(run_objective(lab, o.id, checks[o.id], fx, lang,
                                         hint_levels.get(o.id, 0)))
        if virt._conn is not None:
            _CONNS[uri] = virt._conn
        if budget.flood is not None:
            # the host flooded us: whatever the checks made of its cut output, no grade
            raise budget.flood
    return Report(
        lab=lab.id, title=lab.title.get(lang), host=clean(target.host), libvirt_uri=clean(uri),
        user=clean(learner_name), lang=lang, started_at=started.isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - t0, 3), checker_version=__version__,
        objectives=tuple(results))
