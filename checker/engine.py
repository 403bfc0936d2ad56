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
import re
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
from checker.probes.libvirt import (DAEMON_GONE, LibvirtUnavailable, Virt, classify_error,
                                    default_uri)

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
            return f"qemu+ssh://{who}{u.hostname}{port}/system"
        return default_uri(None)


_HOSTS: dict[tuple[str, str | None, int | None], Any] = {}


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
    if scheme in ("ssh", "paramiko"):
        _check_ssh_spec(spec)
    import testinfra

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


SSH_HOST_RE = re.compile(r"^(?!-)[\w.\-:%]+$")


def _check_ssh_spec(spec: str) -> None:
    """ssh://[user@]host[:port]: a host name, no blanks, a port in 1..65535."""
    u = urlsplit(spec)
    if u.password is not None:
        # never echo it: the spec is printed and stored in reports
        shown = spec.replace(f":{u.password}@", ":***@", 1)
        raise BadHostSpec(f"bad host spec {shown!r}: no password in a host spec (it would be "
                          "shown in reports); use SSH keys")
    try:
        port = u.port
    except ValueError:
        raise BadHostSpec(f"bad host spec {spec!r}: the port must be a number in 1..65535") from None
    if not u.hostname or any(c.isspace() for c in spec) or port == 0:
        raise BadHostSpec(f"bad host spec {spec!r}: expected ssh://[user@]host[:port]")
    # ssh reads a host (or user) starting with "-" as an option: "-oProxyCommand=..." would
    # run a local command. Only host-name characters are accepted.
    host = u.netloc.rpartition("@")[2]
    host = host[1:host.index("]")] if host.startswith("[") and "]" in host else host.split(":")[0]
    if not SSH_HOST_RE.match(host) or (u.username or "").startswith("-"):
        raise BadHostSpec(f"bad host spec {spec!r}: a host name is letters, digits, '.', '-' "
                          "and '_' (not starting with '-'), or an IP address")


def ensure_reachable(host: Any, spec: str) -> None:
    if spec.startswith("local://"):
        return
    try:
        r = host.run("true")
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
    return ObjectiveResult(
        id=o.id, title=o.title.get(lang), section=o.section, points=o.points, earned=earned,
        status=status, message=message.get(lang), hint=hint,
        evidence=v.facts, hints_shown=shown, duration_s=duration)


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
    return Report(
        lab=lab.id, title=lab.title.get(lang), host=target.host, libvirt_uri=uri,
        user=learner_name, lang=lang, started_at=started.isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - t0, 3), checker_version=__version__,
        objectives=tuple(results))
