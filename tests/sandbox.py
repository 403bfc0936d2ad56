"""A real libvirtd with QEMU (TCG) for the tests, isolated from the machine.

The daemon runs in a private network namespace (every bridge, NAT rule and dnsmasq stays
there) and a private mount namespace whose /etc/libvirt, /var/lib/libvirt, /run/libvirt,
/var/log/libvirt and /var/cache/libvirt are folders of a temp dir: nothing of the
machine's own libvirt state is read or written, and several sandboxes can run at once.
Clients outside reach it through its socket, named in the URI
(``qemu:///system?socket=/tmp/virtlab-sb-…/run/libvirt-sock``).

The system D-Bus and polkitd must run before libvirtd, otherwise a non-root client gets
"Unable to get system bus connection"; with them, Debian's polkit rule lets members of
group ``libvirt`` in and refuses others, exactly as on a learner's Debian host. virtlogd
must run before a domain starts. Everything started here is stopped by PID.

Besides libvirt, a sandbox stands for the learner's whole host: :meth:`Sandbox.check`,
:meth:`Sandbox.virtlab`, :meth:`Sandbox.run`, :meth:`Sandbox.add_user` … run the checker,
the CLI, commands and user management *on that host*. For this class the host is this
machine (its Debian release, its dpkg database, its users); ``sandbox_rootfs.RootfsSandbox``
has the same interface for the other Debian release, run from its own root filesystem, so
that one lab suite is parametrised over both (fixture ``release_sandbox``).

>>> with Sandbox() as sb:                                  # doctest: +SKIP
...     sb.conn().defineXML(sb.domain_xml("vm1"))
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

DEFAULT_NETWORK_XML = Path("/usr/share/libvirt/networks/default.xml")
REPO = Path(__file__).resolve().parent.parent
#: ``python -c`` code printing ``checker.engine.check(**json argv[1])`` as JSON
CHECK_CODE = ("import json, sys; from checker.engine import check; "
              "print(check(**json.loads(sys.argv[1])).to_json())")


class SandboxError(RuntimeError):
    pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after timeout; only for processes this module started."""
    if not _pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            if not _pid_alive(pid):
                return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class SystemBus:
    """The system D-Bus and polkitd, started only if not already running.

    Several sandboxes may run at once (parallel test sessions): they share the bus, count
    themselves in /run/virtlab-bus/users/, and the last one to leave stops what any of
    them started (the PIDs recorded in /run/virtlab-bus/pids).
    """

    SOCKET = Path("/run/dbus/system_bus_socket")
    STATE = Path("/run/virtlab-bus")

    def __init__(self, user: str) -> None:
        self.user = user

    def _lock(self) -> Any:
        import fcntl

        self.STATE.mkdir(parents=True, exist_ok=True)
        (self.STATE / "users").mkdir(exist_ok=True)
        f = open(self.STATE / "lock", "w")
        fcntl.flock(f, fcntl.LOCK_EX)
        return f

    def _record(self, pid: int) -> None:
        with open(self.STATE / "pids", "a") as f:
            f.write(f"{pid}\n")

    def _bus_answers(self) -> bool:
        if not self.SOCKET.exists():
            return False
        r = subprocess.run(["dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus",
                            "/org/freedesktop/DBus", "org.freedesktop.DBus.ListNames"],
                           capture_output=True, text=True, timeout=10)
        return r.returncode == 0

    def _polkit_answers(self) -> bool:
        r = subprocess.run(["dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus",
                            "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner",
                            "string:org.freedesktop.PolicyKit1"],
                           capture_output=True, text=True, timeout=10)
        return "boolean true" in r.stdout

    def ensure(self) -> None:
        with self._lock():
            if not self._bus_answers():
                Path("/run/dbus").mkdir(parents=True, exist_ok=True)
                for stale in (self.SOCKET, Path("/run/dbus/pid")):  # left by a dead daemon
                    if stale.exists():
                        stale.unlink()
                out = subprocess.run(["dbus-daemon", "--system", "--fork", "--print-pid"],
                                     capture_output=True, text=True, timeout=20)
                if out.returncode != 0:
                    raise SandboxError(f"dbus-daemon --system failed: {out.stderr.strip()}")
                self._record(int(out.stdout.split()[0]))
                self._wait(self._bus_answers, "the system D-Bus")
            if not self._polkit_answers():
                p = subprocess.Popen(["/usr/lib/polkit-1/polkitd", "--no-debug"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
                self._record(p.pid)
                self._wait(self._polkit_answers, "polkitd")
            (self.STATE / "users" / self.user).touch()

    @staticmethod
    def _wait(pred: Any, what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.1)
        raise SandboxError(f"{what} did not come up within {timeout} s")

    def stop(self) -> None:
        with self._lock():
            (self.STATE / "users" / self.user).unlink(missing_ok=True)
            if any((self.STATE / "users").iterdir()):
                return  # another sandbox still uses the bus
            pids = (self.STATE / "pids")
            for line in reversed(pids.read_text().split() if pids.exists() else []):
                stop_pid(int(line))
            pids.unlink(missing_ok=True)


class Sandbox:
    """A private libvirtd; see the module docstring."""

    def __init__(self, name: str | None = None):
        self.name = name or f"virtlab-sb-{os.getpid()}-{uuidlib.uuid4().hex[:6]}"
        self.netns = self.name
        self.root = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir="/tmp"))
        self.root.chmod(0o755)
        self.etc = self.root / "etc"
        self.lib = self.root / "lib"
        self.run_dir = self.root / "run"
        self.log_dir = self.root / "log"
        self.cache_dir = self.root / "cache"
        self.images_dir = self.lib / "images"
        self.socket = self.run_dir / "libvirt-sock"
        self.uri = f"qemu:///system?socket={self.socket}"
        self.default_network_xml = DEFAULT_NETWORK_XML
        # Environment added to every command, check and CLI run on the learner's host.
        self.env: dict[str, str] = {}
        self.bus = SystemBus(self.name)
        self._daemon: subprocess.Popen[bytes] | None = None
        self._netns_made = False
        self._conn: Any = None

    # --- life -----------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open(self) -> None:
        for tool in ("libvirtd", "virtlogd", "ip", "unshare", "dbus-daemon", "qemu-system-x86_64"):
            if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
                raise SandboxError(f"{tool} is not installed (run .ci/install)")
        if os.geteuid() != 0:
            raise SandboxError("the libvirt sandbox needs root (network and mount namespaces)")
        shutil.copytree("/etc/libvirt", self.etc, symlinks=True)
        self.lib.mkdir()
        for sub in ("images", "qemu", "boot", "dnsmasq", "network"):
            (self.lib / sub).mkdir(exist_ok=True)
        (self.lib / "images").chmod(0o711)
        for d in (self.run_dir, self.log_dir, self.cache_dir):
            d.mkdir()
        # qemu runs as libvirt-qemu: it must traverse to the images and its state dirs.
        subprocess.run(["chown", "-R", "libvirt-qemu:kvm", str(self.lib / "qemu")], check=False)
        Path("/run/libvirt").mkdir(exist_ok=True)  # mount point only (the real one stays empty)
        self.bus.ensure()
        subprocess.run(["ip", "netns", "add", self.netns], check=True, capture_output=True)
        self._netns_made = True
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        self.start()

    def _mounts(self) -> list[tuple[Path, str]]:
        """The sandbox's folders and where the daemon (and a root script) sees them."""
        return [
            (self.etc, "/etc/libvirt"), (self.lib, "/var/lib/libvirt"),
            (self.run_dir, "/run/libvirt"), (self.log_dir, "/var/log/libvirt"),
            (self.cache_dir, "/var/cache/libvirt"),
        ]

    def run_script(self, script: str, *, env: dict[str, str] | None = None,
                   cwd: str | Path | None = None, timeout: float = 300,
                   ) -> subprocess.CompletedProcess[str]:
        """A bash script (``bash -eu``) as root on the learner's host as the daemon sees it:
        in a private mount namespace where /etc/libvirt, /var/lib/libvirt… are the
        sandbox's (never the machine's own), outside the network namespace."""
        binds = "\n".join(f"mkdir -p {dst}; mount --bind {src} {dst}"
                          for src, dst in self._mounts())
        wrapper = f"set -e\n{binds}\nexec bash -euc \"$0\""
        return self.run(["unshare", "--mount", "--propagation", "private", "--",
                         "bash", "-c", wrapper, script], env=env, timeout=timeout, cwd=cwd)

    def _launcher(self) -> list[str]:
        mounts = self._mounts()
        script = ["set -e"]
        for src, dst in mounts:
            script.append(f"mkdir -p {dst}")
            script.append(f"mount --bind {src} {dst}")
        # stop() ends libvirtd alone: a restart reuses the virtlogd still running (a second
        # one would fail on its pid file and, under set -e, abort the start).
        vl_pid = f"{self.root}/virtlogd.pid"
        script.append(f'if ! {{ [ -s {vl_pid} ] && kill -0 "$(cat {vl_pid})" 2>/dev/null; }}; then '
                      f"virtlogd --daemon --pid-file {vl_pid}; fi")
        script.append(f"exec libvirtd --pid-file {self.root}/libvirtd.pid")
        return ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation",
                "private", "--", "bash", "-c", "\n".join(script)]

    def start(self, timeout: float = 60) -> None:
        """Start (or restart) the daemon and wait until it answers."""
        if self._daemon and self._daemon.poll() is None:
            return
        log = open(self.root / "libvirtd.out", "ab")
        self._daemon = subprocess.Popen(self._launcher(), stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._daemon.poll() is not None:
                raise SandboxError("libvirtd exited at start:\n" + self.daemon_log())
            if self.socket.exists():
                r = subprocess.run(["virsh", "-c", self.uri, "version"], capture_output=True,
                                   text=True, timeout=20)
                if r.returncode == 0:
                    return
            time.sleep(0.1)
        raise SandboxError(f"libvirtd did not answer within {timeout} s:\n" + self.daemon_log())

    def stop(self) -> None:
        """Stop the daemon alone (domains and networks keep running, as on a real host)."""
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 (closing at teardown: the daemon may be gone already)
                pass
            self._conn = None
        if self._daemon is not None:
            stop_pid(self._daemon.pid, timeout=20)
            self._daemon = None

    @property
    def running(self) -> bool:
        return self._daemon is not None and self._daemon.poll() is None

    @property
    def daemon(self) -> subprocess.Popen[bytes] | None:
        """The libvirtd process this sandbox started (a fault test kills it); None once
        stopped."""
        return self._daemon

    def close(self) -> None:
        import atexit

        atexit.unregister(self._close_conn)
        try:
            if self.running:
                self.reset(keep_default=False)
        finally:
            self.stop()
            self._stop_helpers()
            self._kill_leftovers()
            if self._netns_made:
                subprocess.run(["ip", "netns", "del", self.netns], check=False, capture_output=True)
                self._netns_made = False
            self._remove_dirs()

    def _stop_helpers(self) -> None:
        """The daemons started beside libvirtd (virtlogd), by their pid files."""
        vl = read_pid(self.root / "virtlogd.pid")
        if vl:
            stop_pid(vl)

    def _remove_dirs(self) -> None:
        self.bus.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        """dnsmasq and qemu started by this sandbox's daemon, found by their pid files."""
        for pidfile in (list(self.run_dir.glob("network/*.pid"))
                        + list(self.run_dir.glob("qemu/*.pid"))):
            pid = read_pid(pidfile)
            if pid:
                stop_pid(pid)

    def daemon_log(self) -> str:
        try:
            return (self.root / "libvirtd.out").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # --- use ------------------------------------------------------------------------
    def conn(self) -> Any:
        """A read-write connection for test set-up (the checker itself opens read-only)."""
        import libvirt

        if self._conn is not None:
            try:
                # isAlive() stays true after the daemon died, until a call fails.
                if self._conn.isAlive() and self._conn.getVersion():
                    return self._conn
            except libvirt.libvirtError:
                pass
        libvirt.registerErrorHandler(lambda *_: None, None)
        self._conn = libvirt.open(self.uri)
        import atexit

        atexit.register(self._close_conn)  # before module teardown, not in libvirt's __del__
        return self._conn

    def _close_conn(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 (closing at teardown: the daemon may be gone already)
                pass
            self._conn = None

    def netns_exec(self, argv: Iterable[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], **kw)

    def virsh(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(["virsh", "-c", self.uri, *args], capture_output=True, text=True,
                           timeout=120)
        if check and r.returncode != 0:
            raise SandboxError(f"virsh {' '.join(args)}: {r.stderr.strip()}")
        return r

    def reset(self, keep_default: bool = True) -> None:
        """Back to the state of a fresh install of its release: network `default` defined as the
        package ships it, inactive and not autostarted; no domain, no pool, no volume."""
        import libvirt

        c = self.conn()
        for dom in c.listAllDomains(0):
            try:
                if dom.isActive():
                    dom.destroy()
            except libvirt.libvirtError:
                pass
            try:
                for snap in dom.listAllSnapshots(0):
                    try:
                        snap.delete(libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)
                    except libvirt.libvirtError:
                        pass
                if dom.isPersistent():
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                                      | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                                      | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
            except libvirt.libvirtError:
                pass
        for pool in c.listAllStoragePools(0):
            try:
                if pool.isActive():
                    for vol in pool.listAllVolumes(0):
                        try:
                            vol.delete(0)
                        except libvirt.libvirtError:
                            pass
                    pool.destroy()
                if pool.isPersistent():
                    pool.undefine()
            except libvirt.libvirtError:
                pass
        for net in c.listAllNetworks(0):
            try:
                if net.isActive():
                    net.destroy()
                if net.isPersistent():
                    net.undefine()
            except libvirt.libvirtError:
                pass
        for f in self.images_dir.iterdir():
            if f.is_file():
                f.unlink()
        if keep_default:
            c.networkDefineXML(self.default_network_xml.read_text())

    def images(self, name: str) -> Path:
        """Host path of a file the daemon sees as /var/lib/libvirt/images/NAME."""
        return self.images_dir / name

    # --- the learner's host: this machine ----------------------------------------------
    @property
    def release(self) -> str:
        """The Debian codename of the learner's host this sandbox stands for."""
        from rootfs import host_release

        return host_release()

    @property
    def label(self) -> str:
        """The test id of this sandbox: ``host-bookworm``, ``rootfs-trixie``."""
        return f"host-{self.release}"

    @property
    def etc_network(self) -> Path:
        """The host folder that commands run with ``netns=True`` see as /etc/network
        (``ip netns exec`` binds /etc/netns/NAME/network there)."""
        return Path("/etc/netns") / self.netns / "network"

    def lab_path(self, lab_dir: str) -> str:
        """The path of ``labs/<lab_dir>`` as commands on the learner's host see it."""
        return str(REPO / "labs" / lab_dir)

    def host_path(self, inside: str | Path) -> Path:
        """The path, from this test process, of a file the learner's host names ``inside``."""
        return Path(inside)

    def run(self, argv: Iterable[str], *, netns: bool = False, env: dict[str, str] | None = None,
            input: str | None = None, timeout: float = 120, cwd: str | Path | None = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run a command on the learner's host (as root), optionally inside the sandbox's
        network namespace; ``env`` is added to this process's environment."""
        argv = list(argv)
        if netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        return subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout,
                              env={**os.environ, **self.env, **(env or {})}, cwd=cwd or REPO)

    def virtlab(self, *args: str, env: dict[str, str] | None = None, input: str | None = None,
                timeout: float = 120, netns: bool = False) -> subprocess.CompletedProcess[str]:
        """The CLI as a learner runs it on that host (``python -m checker``)."""
        return self.run([sys.executable, "-m", "checker", *args], env=env, input=input,
                        timeout=timeout, netns=netns)

    def python(self, code: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """``python -c code args…`` with virtlab importable, on that host (its Python), in the
        checkout (``tests`` importable as ``sys.path.insert(0, "tests")``)."""
        return self.run([sys.executable, "-c", code, *args], env=env, timeout=timeout)

    def check(self, lab: str, *, connect: str | None = None, user: str | None = None,
              lang: str | None = None, only: list[str] | None = None,
              env: dict[str, str] | None = None) -> Any:
        """``checker.engine.check`` on that host: a :class:`checker.model.Report`."""
        from checker.engine import check

        with _environ({**self.env, **(env or {})}):
            return check(lab, connect=connect, user=user, lang=lang, only=only)

    def check_after(self, lab: str, script: str, *, connect: str | None = None,
                    user: str | None = None, lang: str | None = None,
                    env: dict[str, str] | None = None) -> Any:
        """``checker.engine.check`` on that host as :meth:`check` runs it, but in a private
        mount namespace where the root shell ``script`` ran first: its mounts (a tmpfs over a
        folder, a file bound over another) make the host lack something for this one check,
        and vanish with the namespace. The script may also narrow the CPUs the check's
        processes may use (``taskset -pc 0 $$``): the checker, which this method starts after
        it in the same shell, inherits that. Nothing of the machine changes."""
        from checker.model import Report

        kw = {"lab": lab, "connect": connect, "user": user, "lang": lang}
        python, checkout = self.checker_python()
        run = f"{script}\nexec {shlex.join([python, '-c', CHECK_CODE, json.dumps(kw)])}"
        r = self.run_script(run, env=env, cwd=checkout, timeout=180)
        if r.returncode != 0:
            raise SandboxError(f"check {lab} after {script!r} in {self.label} failed "
                               f"({r.returncode}):\n{r.stderr[-3000:]}")
        return Report.from_json(r.stdout)

    def checker_python(self) -> tuple[str, str]:
        """The Python that runs virtlab on that host, and the checkout's path there."""
        return sys.executable, str(REPO)

    def add_user(self, groups: Iterable[str] = (), shell: str = "/bin/bash") -> str:
        """A real user of that host (home made) in ``groups`` (made if missing)."""
        name = f"vl{uuidlib.uuid4().hex[:8]}"
        groups = list(groups)
        for g in groups:
            self._must(["groupadd", "-f", g])
        self._must(["useradd", "-m", "-s", shell, *(["-G", ",".join(groups)] if groups else []),
                    name])
        return name

    def remove_user(self, name: str) -> None:
        self.run(["userdel", "-r", "-f", name])

    def passwd(self, user: str) -> list[str]:
        """The user's passwd fields on that host (KeyError if unknown)."""
        r = self.run(["getent", "passwd", user])
        if r.returncode != 0:
            raise KeyError(user)
        return r.stdout.strip().split(":")

    def home(self, user: str) -> Path:
        """The user's home as this test process reaches it."""
        return self.host_path(self.passwd(user)[5])

    def uid(self, user: str) -> int:
        return int(self.passwd(user)[2])

    def _must(self, argv: list[str]) -> None:
        r = self.run(argv)
        if r.returncode != 0:
            raise SandboxError(f"{' '.join(argv)}: {r.stderr.strip()}")

    # --- helpers for tests ------------------------------------------------------------
    @staticmethod
    def domain_xml(name: str, *, vcpus: int = 1, memory_mib: int = 256,
                   disks: Iterable[dict[str, str]] = (), nics: Iterable[dict[str, str]] = (),
                   graphics: str | None = None, serial: bool = False, title: str | None = None,
                   description: str | None = None, kernel: str | None = None,
                   initrd: str | None = None, cmdline: str | None = None) -> str:
        """A TCG domain (<domain type='qemu'>): these machines have no usable VT-x.

        disks: {"path": ..., "format": "qcow2"} or {"pool": ..., "volume": ...}
        nics: {"network": name} or {"bridge": name}, plus optional "model", "link", "filter", "mac"
        """
        parts = [f"<domain type='qemu'><name>{escape(name)}</name>",
                 f"<memory unit='MiB'>{memory_mib}</memory><vcpu>{vcpus}</vcpu>"]
        if title is not None:
            parts.append(f"<title>{escape(title)}</title>")
        if description is not None:
            parts.append(f"<description>{escape(description)}</description>")
        os_el = "<os><type arch='x86_64' machine='pc'>hvm</type>"
        if kernel:
            os_el += f"<kernel>{escape(kernel)}</kernel>"
            if initrd:
                os_el += f"<initrd>{escape(initrd)}</initrd>"
            if cmdline:
                os_el += f"<cmdline>{escape(cmdline)}</cmdline>"
        else:
            os_el += "<boot dev='hd'/>"
        parts.append(os_el + "</os>")
        parts.append("<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><devices>")
        parts.append("<emulator>/usr/bin/qemu-system-x86_64</emulator>")
        for i, d in enumerate(disks):
            dev = f"vd{chr(ord('a') + i)}"
            fmt = d.get("format", "qcow2")
            if "pool" in d:
                parts.append("<disk type='volume' device='disk'>"
                             f"<driver name='qemu' type={quoteattr(fmt)}/>"
                             f"<source pool={quoteattr(d['pool'])}"
                             f" volume={quoteattr(d['volume'])}/>"
                             f"<target dev='{dev}' bus='virtio'/></disk>")
            else:
                parts.append("<disk type='file' device='disk'>"
                             f"<driver name='qemu' type={quoteattr(fmt)}/>"
                             f"<source file={quoteattr(d['path'])}/>"
                             f"<target dev='{dev}' bus='virtio'/></disk>")
        for n in nics:
            if "bridge" in n:
                src = f"<source bridge={quoteattr(n['bridge'])}/>"
                kind = "bridge"
            else:
                src = f"<source network={quoteattr(n.get('network', 'default'))}/>"
                kind = "network"
            extra = ""
            if n.get("mac"):
                extra += f"<mac address={quoteattr(n['mac'])}/>"
            extra += f"<model type={quoteattr(n.get('model', 'virtio'))}/>"
            if n.get("link"):
                extra += f"<link state={quoteattr(n['link'])}/>"
            if n.get("filter"):
                extra += f"<filterref filter={quoteattr(n['filter'])}/>"
            parts.append(f"<interface type='{kind}'>{src}{extra}</interface>")
        if graphics:
            parts.append(f"<graphics type={quoteattr(graphics)} autoport='yes'"
                         " listen='127.0.0.1'/>")
        if serial:
            parts.append("<serial type='pty'><target port='0'/></serial>"
                         "<console type='pty'><target type='serial' port='0'/></console>")
        parts.append("<memballoon model='none'/></devices></domain>")
        return "".join(parts)


@contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``env`` added, restored after."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
