"""Host facts, read through testinfra's host object (works on local://, ssh://, ansible://).

Probes state facts and never judge. Parsers are pure functions, and :class:`HostFacts`
can read a *recorded* host (``root``: a folder holding copies of the files it reads and
the outputs of the commands it runs), so that host variants this machine cannot produce
(Intel with vmx, AMD with svm, VT-x disabled in the BIOS) go through the same probe and
check code in tests (``tests/fixtures/hosts/``).

>>> sorted(parse_cpuinfo("processor : 0\\nflags : fpu vmx sse\\n").flags)
['fpu', 'sse', 'vmx']
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from checker.probes import read_file

if TYPE_CHECKING:
    from checker.releases import Release


@dataclass(frozen=True)
class CpuInfo:
    count: int
    vendor: str
    model_name: str
    flags: frozenset[str]

    @property
    def virt_flag(self) -> str | None:
        """'vmx' (Intel VT-x), 'svm' (AMD-V) or None."""
        if "vmx" in self.flags:
            return "vmx"
        if "svm" in self.flags:
            return "svm"
        return None

    @property
    def is_guest(self) -> bool:
        """The 'hypervisor' flag: this host is itself a virtual machine."""
        return "hypervisor" in self.flags


def parse_cpuinfo(text: str) -> CpuInfo:
    count = 0
    vendor = model = ""
    flags: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "processor":
            count += 1
        elif key == "vendor_id" and not vendor:
            vendor = value
        elif key == "model name" and not model:
            model = value
        elif key == "flags" and not flags:
            flags = set(value.split())
    return CpuInfo(count=count, vendor=vendor, model_name=model, flags=frozenset(flags))


def parse_proc_modules(text: str) -> frozenset[str]:
    return frozenset(line.split()[0] for line in text.splitlines() if line.strip())


def parse_meminfo(text: str) -> dict[str, int]:
    """Values in bytes."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?", line)
        if m:
            out[m.group(1)] = int(m.group(2)) * (1024 if line.rstrip().endswith("kB") else 1)
    return out


# The kernel's words, depending on its version and the vendor:
#   "kvm: disabled by bios", "kvm: support for 'kvm_amd' disabled by bios" (kvm, up to 6.x),
#   "x86/cpu: VMX (outside TXT) disabled by BIOS" (feat_ctl, 5.6+),
#   "kvm_intel: VMX not enabled (by BIOS) in MSR_IA32_FEAT_CTL" (kvm_intel, 6.x).
BIOS_DISABLED_RE = re.compile(
    r"(kvm|vmx|svm).*(disabled by bios|not enabled \(by bios\))", re.IGNORECASE)


def bios_disabled_in(dmesg: str) -> bool:
    return bool(BIOS_DISABLED_RE.search(dmesg))


@dataclass(frozen=True)
class OsRelease:
    """What /etc/os-release (os-release(5)) says about the host's distribution.

    >>> r = parse_os_release('ID=debian\\nVERSION_ID="13"\\nVERSION_CODENAME=trixie\\n')
    >>> (r.id, r.version_id, r.codename, r.debian_major)
    ('debian', '13', 'trixie', 13)
    >>> parse_os_release('ID=debian\\nVERSION_CODENAME=forky\\n').debian_major is None
    True
    """

    id: str = ""
    id_like: tuple[str, ...] = ()
    version_id: str = ""
    codename: str = ""
    pretty_name: str = ""

    @property
    def is_debian(self) -> bool:
        return self.id == "debian"

    @property
    def debian_major(self) -> int | None:
        """Debian's major version (12, 13, …); None on another distribution, or on testing
        and unstable, which have no VERSION_ID (only a codename)."""
        if not self.is_debian:
            return None
        major = self.version_id.split(".", 1)[0]
        if major.isdigit():
            return int(major)
        return DEBIAN_CODENAMES.get(self.codename)

    def describe(self) -> str:
        """For evidence: 'Debian 13 (trixie)', or what the file says of another system."""
        if self.debian_major is not None:
            return f"Debian {self.debian_major} ({self.codename or '?'})"
        return self.pretty_name or " ".join(x for x in (self.id, self.version_id,
                                                        self.codename) if x) or "unknown"


#: Debian's codenames of the releases this project knows, for an os-release without
#: VERSION_ID (a release that was testing when the file was written, then kept).
DEBIAN_CODENAMES = {"bookworm": 12, "trixie": 13}

#: A real os-release is a few hundred bytes; a bigger one is cut (the learner's host writes it).
MAX_OS_RELEASE_CHARS = 16384

_OS_RELEASE_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def _unquote(value: str) -> str:
    """os-release(5) values: shell-like, optionally in single or double quotes, with
    backslash escapes inside double quotes."""
    v = value.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        inner = v[1:-1]
        return re.sub(r'\\(.)', r"\1", inner) if v[0] == '"' else inner
    return v


def parse_os_release(text: str) -> OsRelease:
    """Parse os-release(5) text; unknown or malformed lines are ignored, never raised on."""
    fields: dict[str, str] = {}
    for line in text[:MAX_OS_RELEASE_CHARS].splitlines():
        m = _OS_RELEASE_LINE.match(line.strip())
        if m:
            fields[m.group(1)] = _unquote(m.group(2))

    def clean(key: str, limit: int = 80) -> str:
        # printable characters only: these words reach messages and evidence
        return "".join(c for c in fields.get(key, "") if c.isprintable())[:limit]

    return OsRelease(
        id=clean("ID").lower(),
        id_like=tuple(clean("ID_LIKE", 200).lower().split()),
        version_id=clean("VERSION_ID"),
        codename=clean("VERSION_CODENAME").lower(),
        pretty_name=clean("PRETTY_NAME", 200),
    )


def parse_dpkg_query(text: str) -> dict[str, str]:
    """{package: version} of the installed packages in ``dpkg-query -W -f
    '${Package}\\t${Status}\\t${Version}\\n'`` output (names without the :arch qualifier).

    >>> parse_dpkg_query("virtinst\\tinstall ok installed\\t1:4.1.0-2\\n"
    ...                  "gone\\tdeinstall ok config-files\\t1.0\\n")
    {'virtinst': '1:4.1.0-2'}
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        name, status, version = parts
        st = status.split()
        if st[:1] and st[0] in ("install", "hold") and st[1:3] == ["ok", "installed"]:
            out[name.split(":", 1)[0]] = version
    return out


def read_bytes(host: Any, path: str) -> bytes | None:
    """The bytes of a file of a testinfra ``host`` (``cat``, its argument quoted); None when
    it is missing or unreadable. A lost SSH connection raises (testinfra's ssh backend:
    ``RuntimeError``, :func:`checker.probes.ssh_lost`), never reads as "unreadable"."""
    r = host.run("cat -- %s", path)
    return r.stdout_bytes if r.rc == 0 else None


@dataclass(frozen=True)
class CommandOutput:
    """What a read-only command said: exit status, standard output and error."""

    rc: int
    stdout: str
    stderr: str = ""


class HostFacts:
    """Facts about one host, memoised for one run.

    >>> facts = HostFacts(testinfra.get_host("local://"))   # doctest: +SKIP
    >>> facts.cpu.virt_flag                                    # doctest: +SKIP
    """

    def __init__(self, host: Any, root: str | os.PathLike[str] | None = None):
        self.host = host
        #: A recorded host: files are read under root, command outputs from root/commands/.
        self.root = os.fspath(root).rstrip("/") if root else ""

    def __repr__(self) -> str:
        return f"<HostFacts {self.root or getattr(self.host.backend, 'hostname', 'host')}>"

    def path(self, path: str) -> str:
        """Where ``path`` of the inspected host is read (under ``root`` for a recorded host)."""
        return f"{self.root}{path}" if self.root else path

    def read(self, path: str) -> str | None:
        """The content of a file of the host, or None when missing or unreadable."""
        return read_file(self.host, self.path(path))

    def command(self, name: str, command: str, *args: str) -> tuple[int, str]:
        """(exit code, stdout) of a read-only command, its arguments quoted by testinfra.

        On a recorded host, the recorded output ``root/commands/NAME``; (1, "") when
        nothing was recorded (as if the command had failed).
        """
        if self.root:
            out = self.read(f"/commands/{name}")
            return (0, out) if out is not None else (1, "")
        r = self.host.run(command, *args)
        return r.rc, r.stdout

    def host_validate(self) -> CommandOutput:
        """``virt-host-validate qemu`` in the C locale (its lines are parsed by lab 02); a
        recorded host's ``commands/virt-host-validate``."""
        if self.root:
            rc, out = self.command("virt-host-validate", "")
            return CommandOutput(rc, out)
        r = self.host.run("env LC_ALL=C virt-host-validate qemu")
        return CommandOutput(r.rc, r.stdout, r.stderr)

    @cached_property
    def cpu(self) -> CpuInfo:
        return parse_cpuinfo(self.read("/proc/cpuinfo") or "")

    @cached_property
    def os_release(self) -> OsRelease:
        """The host's release, from /etc/os-release (or /usr/lib/os-release, its fallback in
        os-release(5)); empty fields when neither can be read."""
        text = self.read("/etc/os-release")
        if text is None:
            text = self.read("/usr/lib/os-release")
        return parse_os_release(text or "")

    @cached_property
    def release(self) -> Release:
        """The Debian release whose commands the messages and hints name (checker.releases)."""
        from checker.releases import release_of

        return release_of(self.os_release)

    @cached_property
    def modules(self) -> frozenset[str]:
        return parse_proc_modules(self.read("/proc/modules") or "")

    @cached_property
    def meminfo(self) -> dict[str, int]:
        return parse_meminfo(self.read("/proc/meminfo") or "")

    @property
    def mem_total(self) -> int:
        return self.meminfo.get("MemTotal", 0)

    @cached_property
    def cores(self) -> int:
        """CPUs usable by the host (nproc), falling back on /proc/cpuinfo."""
        rc, out = self.command("nproc", "nproc")
        if rc == 0 and out.strip().isdigit():
            return int(out.strip())
        return self.cpu.count

    @cached_property
    def has_systemd(self) -> bool:
        # sd_booted(): systemd is PID 1 when /run/systemd/system exists.
        return bool(self.host.file(self.path("/run/systemd/system")).is_directory)

    @cached_property
    def dmesg(self) -> str | None:
        """The kernel log when readable (dmesg may be restricted to root)."""
        rc, out = self.command("dmesg", "dmesg")
        return out if rc == 0 else None

    def package_versions(self, names: Iterable[str]) -> dict[str, str | None]:
        """The installed version of each Debian package, None when not installed.

        One ``dpkg-query`` for all the names (each run reads the whole dpkg database: ~8 ms
        here, where testinfra's ``host.package(n)`` runs two per package); memoised for the
        run, so a lab may ask for all its packages at once and read them objective by
        objective. Same rule as testinfra's ``is_installed``: status ``install|hold ok
        installed``.
        """
        names = list(names)  # read twice below: a generator would be spent by the first
        memo: dict[str, str | None] = self.__dict__.setdefault("_packages", {})
        want = [n for n in dict.fromkeys(names) if n not in memo]
        if want:
            fmt = "${Package}\t${Status}\t${Version}\n"
            rc, out = self.command("dpkg-query", "dpkg-query -W -f %s" + " %s" * len(want),
                                   fmt, *want)
            found = parse_dpkg_query(out)
            for n in want:
                memo[n] = found.get(n)
        return {n: memo[n] for n in names}

    def unit_states(self, verb: str, units: Iterable[str]) -> dict[str, str]:
        """{unit: state} from one ``systemctl is-enabled|is-active UNIT…`` (one line per unit;
        the same error line for every unit when systemctl answers otherwise).

        On a recorded host, ``is-enabled`` is systemd's own answer on the recording's unit
        files (``systemctl --root=ROOT``, which works without a running manager), and
        ``is-active``, which needs one, the recorded ``commands/systemctl-is-active``.
        """
        units = list(units)
        if verb == "is-enabled" and self.root:
            r = self.host.run("systemctl --root=%s is-enabled" + " %s" * len(units),
                              self.root, *units)
            rc, out, err = r.rc, r.stdout, r.stderr
        elif verb == "is-enabled":
            r = self.host.run("systemctl is-enabled" + " %s" * len(units), *units)
            rc, out, err = r.rc, r.stdout, r.stderr
        elif verb == "is-active":
            rc, out = self.command("systemctl-is-active",
                                   "systemctl is-active" + " %s" * len(units), *units)
            err = ""
        else:
            raise ValueError(f"unit_states: verb {verb!r} is not is-enabled or is-active")
        lines = [ln.strip() for ln in out.strip().splitlines()]
        if len(lines) != len(units):
            why = (err.strip().splitlines() or [f"rc={rc}"])[0][:200]
            return dict.fromkeys(units, why)
        return dict(zip(units, lines))

    def module_loaded(self, name: str) -> bool:
        """A kernel module is loaded or built in (built-ins have no line in /proc/modules
        but do appear under /sys/module)."""
        return name in self.modules or self.host.file(self.path(f"/sys/module/{name}")).is_directory

    def nearest_existing(self, path: str) -> str:
        p = path.rstrip("/") or "/"
        while p != "/" and not self.host.file(self.path(p)).exists:
            p = p.rsplit("/", 1)[0] or "/"
        return p

    def free_bytes(self, path: str) -> tuple[str, int | None]:
        """(the path measured, bytes free there) for path or its nearest existing parent."""
        where = self.nearest_existing(path)
        rc, out = self.command("df", "df -B1 --output=avail %s", self.path(where))
        lines = out.split()
        if rc == 0 and len(lines) >= 2 and lines[-1].isdigit():
            return where, int(lines[-1])
        return where, None


# --- the facts every lab reads, in one exchange ----------------------------------------

#: The commands testinfra and our probes run at the start of every lab on a remote host:
#: testinfra's system_info (``uname -s``, ``cat /etc/os-release``, ``uname -m``), the
#: release of :attr:`HostFacts.os_release`, and the learner (:mod:`checker.probes.learner`,
#: testinfra's ``User``). Each is (template, arguments), quoted by testinfra as it would be.
def _start_commands(user: str) -> list[tuple[str, tuple[str, ...]]]:
    return [
        ("uname -s", ()),
        ("cat /etc/os-release", ()),
        ("uname -m", ()),
        ("test -f %s && cat -- %s", ("/etc/os-release", "/etc/os-release")),
        ("id -nu", ()),
        ("id %s", (user,)),
        ("id -nG %s", (user,)),
        ("getent passwd %s", (user,)),
        ("id -u %s", (user,)),  # testinfra's User.uid
    ]


#: A command to prefetch: testinfra's template and its arguments (``("test -d %s", ("/x",))``).
Prefetch = tuple[str, tuple[str, ...]]


class WithStderr(str):
    """The template of a ``PREFETCH`` command whose standard error a check reads:
    ``(WithStderr("env LC_ALL=C virt-host-validate qemu"),)``. The prefetch exchange then
    brings its standard error too, byte for byte and apart from its output, with its exit
    status: the answer the command run alone would have given (:func:`prefetch`)."""

    __slots__ = ()


def prefetch(host: Any, user: str, home_file: str = "", extra: Iterable[Prefetch] = ()) -> Any:
    """Run the commands every lab starts with (:func:`_start_commands`, and the learner's
    ``~/HOME_FILE`` read as :func:`checker.probes.read_file` reads it) in ONE remote
    exchange, with the labs' own ``extra`` ones (their checks modules' ``PREFETCH``; those
    whose standard error a check reads have a :class:`WithStderr` template), and leave their
    answers in the current output budget
    (:mod:`checker.probes.output`), where testinfra's later ``host.run`` of the same command
    finds them: on a link with latency, one round trip instead of about ten per lab.

    The commands are the very strings testinfra would run (``backend.quote``), each in its
    own group under ``/bin/sh``, stderr dropped unless asked for (:func:`_parts`); each
    one's output is followed by a line
    made of a random marker and its exit status, so that nothing the host prints (a file,
    a user name) can pass for a marker. Every answer is decoded as its own command would
    have been. Commands the budget already holds an answer for (an earlier lab of the same
    grading job) are not asked again.

    Returns the script's own result (its exit status says whether it ran at all), or None
    when no exchange was needed (every answer known, the host's shell open) or when the
    script's output passed the per-command cap (:data:`checker.probes.output.COMMAND_CAP`:
    many commands' output is not one command's flood; its bytes stay counted in the budget
    and the commands then run one by one, the one that floods flooding then). Raises what
    testinfra raises when the connection fails (never a fact). When there is no budget, or
    the output is not what the script prints (a shell that is not POSIX, a cut), nothing is
    kept and the commands run one by one, as before.
    """
    import secrets

    from checker.probes.output import current

    backend = host.backend
    b = current()
    known = b.answers if b is not None else {}
    marker = "virtlab-" + secrets.token_hex(16)
    start = _start_commands(user)
    extra = list(extra)
    home = _home_of(backend, known, user)
    # commands under the learner's home (an argument "~/…"): with the paths the probes
    # will build, once the home is known; else the home is found in the script
    in_home = [(t, a) for t, a in extra if any(x.startswith(IN_HOME) for x in a)]
    if home is not None:
        extra = [(t, _at_home(a, home)) for t, a in extra]
        in_home = []
    else:
        extra = [x for x in extra if x not in in_home]
    cmds = [c for c in dict.fromkeys(backend.quote(t, *a) for t, a in [*start, *extra])
            if (backend, c) not in known]
    with_err = {backend.quote(t, *a) for t, a in extra if isinstance(t, WithStderr)}
    if home_file and _home_file_command(backend, known, user, home_file) in known:
        home_file = ""
    in_home = list(dict.fromkeys(in_home))
    if not cmds and not home_file and not in_home and getattr(
            backend, "connected", lambda: False)():
        return None
    parts = _parts(cmds, marker, with_err)
    if home_file or in_home:
        # the learner's home as testinfra's User.home finds it, then the files under it
        parts.append(f"h=$(getent passwd {shlex.quote(user)} 2>/dev/null | cut -d: -f6); "
                     f"printf '%s\\n{marker} 0\\n' \"$h\"")
    if home_file:
        parts.append(f"( f=\"$h\"/{shlex.quote(home_file)}; test -f \"$f\" && cat -- \"$f\" ) "
                     f"2>/dev/null; printf '\\n{marker} %d\\n' \"$?\"")
    # each one as testinfra quotes it (``template % quoted arguments``), the home as "$h"
    parts += _parts([t % tuple(f'"$h"/{shlex.quote(x[len(IN_HOME):])}' if x.startswith(IN_HOME)
                               else shlex.quote(x) for x in a) for t, a in in_home], marker)
    result = _run_script(host, parts)
    if result is None or b is None or result.rc != 0:
        return result
    homes = 1 if home_file or in_home else 0
    pieces = len(cmds) + len(with_err.intersection(cmds))
    answers = _split(result, marker, pieces + homes + (1 if home_file else 0) + len(in_home))
    if answers is None:
        return result
    _keep(b, backend, cmds, with_err, answers)
    if not homes:
        return result
    said_home = backend.decode(answers[pieces][1])
    if _home_of(backend, b.answers, user) != said_home:
        return result  # not the home the probes will find: nothing kept under it
    if home_file:
        rc, out = answers[pieces + 1]
        key = _home_file_command(backend, b.answers, user, home_file)
        if key is not None:
            b.answers.setdefault(key, backend.result(rc, backend.encode(key[1]), out, b""))
    first = pieces + homes + (1 if home_file else 0)
    for (t, a), (rc, out) in zip(in_home, answers[first:]):
        cmd = backend.quote(t, *_at_home(a, said_home))
        b.answers.setdefault((backend, cmd), backend.result(rc, backend.encode(cmd), out, b""))
    return result


#: In a lab's ``PREFETCH``, an argument starting with this is a path under the learner's
#: home: ``("test -e %s", "~/.config/libvirt/libvirt.conf")`` answers the probes' run of
#: ``test -e HOME/.config/libvirt/libvirt.conf`` (HOME from ``getent passwd``, as
#: testinfra's ``User.home`` finds it; a checks module writes ``f"{learner.home}/…"``).
IN_HOME = "~/"


def _at_home(args: tuple[str, ...], home: str) -> tuple[str, ...]:
    return tuple(f"{home}/{x[len(IN_HOME):]}" if x.startswith(IN_HOME) else x for x in args)


def _home_of(backend: Any, answers: dict[tuple[Any, str], Any], user: str) -> str | None:
    """The learner's home in the budget's answer to ``getent passwd USER`` (None: not known)."""
    passwd = answers.get((backend, backend.quote("getent passwd %s", user)))
    if passwd is None or passwd.rc != 0:
        return None
    fields = passwd.stdout.rstrip("\r\n").split(":")
    return fields[5] if len(fields) > 5 else None


def _home_file_command(backend: Any, answers: dict[tuple[Any, str], Any], user: str,
                       home_file: str) -> tuple[Any, str] | None:
    """The key under which the budget keeps ``read_file(~USER/HOME_FILE)`` (None: the home
    is not known yet)."""
    home = _home_of(backend, answers, user)
    if home is None:
        return None
    path = f"{home}/{home_file}"
    return backend, backend.quote("test -f %s && cat -- %s", path, path)


def fetch(host: Any, commands: Iterable[Prefetch]) -> None:
    """Run read-only ``commands`` (testinfra templates and arguments; one whose standard
    error a caller reads has a :class:`WithStderr` template) in ONE exchange, as
    :func:`prefetch` does, and leave their answers in the current output budget, where the
    caller's ``host.run`` of each finds it: for reads that depend on what an earlier one
    said (every file of a directory, a command built from the learner's home). Commands
    the budget knows already are not sent; with no budget, or fewer than two to send,
    nothing is done (the commands then run one by one, as before). A lost connection
    raises."""
    import secrets

    from checker.probes.output import current

    b = current()
    if b is None:
        return
    backend = host.backend
    commands = list(commands)
    cmds = [c for c in dict.fromkeys(backend.quote(t, *a) for t, a in commands)
            if (backend, c) not in b.answers]
    if len(cmds) < 2:
        return
    with_err = {backend.quote(t, *a) for t, a in commands if isinstance(t, WithStderr)}
    marker = "virtlab-" + secrets.token_hex(16)
    result = _run_script(host, _parts(cmds, marker, with_err))
    if result is None or result.rc != 0:
        return
    answers = _split(result, marker, len(cmds) + len(with_err.intersection(cmds)))
    if answers is not None:
        _keep(b, backend, cmds, with_err, answers)


#: Commands run in the script's own shell (a ``{ …; }`` group) rather than a subshell
#: (:func:`in_script_shell`): ``test`` and ``command -v`` change nothing in the shell, so the
#: subshell's fork bought nothing (about 20 per host of the seven labs; a script of 28
#: commands, 12 of them such builtins, cost dash 26 ms of CPU with subshells, 17 without).
#: Any other command keeps its subshell (a failing or state-changing builtin cannot touch the
#: rest of the script); an external command costs one fork either way (the shell execs the
#: last command of a subshell in place).
IN_SCRIPT_SHELL = ("test ", "command -v ")

#: The words that may start each command of a list run in the script's own shell: builtins
#: that change nothing in it, and the external commands labs chain after them.
_HARMLESS_FIRST_WORDS = frozenset({"test", "command", "cat", "ls", "stat", "true", "false"})


def in_script_shell(cmd: str) -> bool:
    r"""Whether ``cmd`` may run in the prefetch script's own shell: it starts as
    :data:`IN_SCRIPT_SHELL` says, and it is a list of simple commands joined by ``&&`` or
    ``||`` whose first words are harmless. Anything else (``exit``, ``cd``, ``set``, a
    ``;``, a pipe, a redirection, a substitution, a line break…) keeps its subshell, so a
    lab's template can never end or change the script.

    >>> in_script_shell("test -f '/a b' && cat -- '/a b'"), in_script_shell("command -v virsh")
    (True, True)
    >>> [in_script_shell(c) for c in ("test -d /x; exit 3", "test -d /x && cd /",
    ...  "test -d /x || exit", "test a#b; exit", "test $(exit)", "test -d /x\nexit", "cat /x")]
    [False, False, False, False, False, False, False]
    """
    if not cmd.startswith(IN_SCRIPT_SHELL) or "\n" in cmd or "\r" in cmd:
        return False
    lex = shlex.shlex(cmd, posix=True, punctuation_chars=True)
    lex.whitespace_split, lex.commenters = True, ""
    try:
        words = list(lex)
    except ValueError:  # an unbalanced quote
        return False
    first = True
    for word in words:
        if first:
            if word not in _HARMLESS_FIRST_WORDS:
                return False
            first = False
        elif word in ("&&", "||"):
            first = True
        elif word and set(word) <= set(lex.punctuation_chars):
            return False
    return not first


def _parts(cmds: list[str], marker: str, with_err: set[str] | frozenset[str] = frozenset()
           ) -> list[str]:
    """Each command in a group of its own (:data:`IN_SCRIPT_SHELL`: braces, else a
    subshell), stderr dropped, then the marker and its status.
    A command of ``with_err`` keeps its stderr apart: its output goes to the script's
    (file descriptor 4), its stderr through a pipe to ``od``, whose hexadecimal dump is
    held in a variable until the command ended; then the marker and its status, the dump,
    the marker and ``od``'s status (two answers: :func:`_keep`). Nothing is written on
    the host."""
    out = []
    for c in cmds:
        if c in with_err:
            out.append(f"{{ e=$( {{ ( {c} ) 2>&1 1>&4 4>&-; "
                       f"printf '\\n{marker} %d\\n' \"$?\" >&4; }}"
                       f" | od -An -v -tx1 ); printf '%s\\n{marker} %d\\n' \"$e\" \"$?\"; }} 4>&1")
        else:
            group = f"{{ {c}; }}" if in_script_shell(c) else f"( {c} )"
            out.append(f"{group} 2>/dev/null; printf '\\n{marker} %d\\n' \"$?\"")
    return out


def _keep(b: Any, backend: Any, cmds: list[str], with_err: set[str],
          answers: list[tuple[int, bytes]]) -> None:
    """Each command's answer in the budget ``b``, as testinfra's ``backend`` would have
    made it: a command of ``with_err`` takes two answers (its output and status, then its
    stderr's dump: not kept, and the command left to run alone, when the dump is not
    one)."""
    i = 0
    for cmd in cmds:
        rc, out = answers[i]
        err = b""
        i += 1
        if cmd in with_err:
            dumped, (status, dump) = True, answers[i]
            i += 1
            try:
                err = bytes.fromhex(dump.decode("ascii")) if status == 0 else b""
            except (UnicodeDecodeError, ValueError):
                dumped = False
            if status != 0 or not dumped:
                continue
        b.answers.setdefault((backend, cmd), backend.result(rc, backend.encode(cmd), out, err))


def _run_script(host: Any, parts: list[str]) -> Any:
    """The script's result; None when its output passed the per-command cap (many commands'
    output is not one command's flood: the budget keeps the bytes, not the flood)."""
    from checker.probes.output import OutputFlood, current

    try:
        return host.run("/bin/sh -c %s", "\n".join(parts) or "true")
    except OutputFlood as e:
        b = current()
        if e.per != "command" or b is None or b.flood is not e:
            raise
        b.flood = None
        return None


def _split(result: Any, marker: str, expected: int) -> list[tuple[int, bytes]] | None:
    """(exit status, stdout) of each command of the script; None when the output is not
    what the script prints (a shell that is not POSIX, a cut)."""
    import re

    pieces = re.split(rb"\n" + marker.encode() + rb" (\d+)\n", result.stdout_bytes)
    if len(pieces) != 2 * expected + 1 or pieces[-1] != b"":
        return None
    return [(int(pieces[2 * i + 1]), pieces[2 * i]) for i in range(expected)]
