"""The other Debian release's libvirt host, for the tests: :class:`RootfsSandbox`.

On a Debian 12 machine the lab suites also run against Debian 13 "trixie" (and the reverse
on a Debian 13 machine): a root filesystem of that release, built from Debian's archive by
:mod:`rootfs` (mmdebstrap, cached under /var/cache/virtlab/rootfs), in which that release's
own D-Bus, polkitd, virtlogd, libvirtd, dnsmasq and QEMU run, inside a private network
namespace and private mount namespaces, like :class:`sandbox.Sandbox`.

Where the checker runs. The root filesystem *is* the learner's host: Debian release
(/etc/os-release), packages (its dpkg database), users and groups, files, virt-host-validate,
polkit's decisions, and libvirt (its libvirtd). So the checker under test runs chrooted in
it, from a venv made there with that release's python3 (3.13 on trixie) in which virtlab is
installed in editable mode from the checkout bound at /virtlab, and libvirt-python is built
against that release's libvirt (its python3-dev, gcc, pkg-config, libvirt-dev). Test users
are made there with its own useradd. The test process itself only sets things up: it reaches
the daemon from outside through its socket (this machine's libvirt-python and virsh client
speak the same RPC) and the files through the root filesystem's folders.

Layout (``self.root`` is a temp dir of this machine, bound inside at the SAME path, so that
``self.uri`` — ``qemu:///system?socket=<root>/run/libvirt/libvirt-sock`` — names the
daemon both outside and inside):

======================  ==================================================================
inside the rootfs       this machine
======================  ==================================================================
/run                    ``root/run`` (D-Bus, polkitd, virtlogd and libvirtd sockets, pids)
/etc/libvirt            ``root/etc`` (a copy of the rootfs's, qemu.conf ``namespaces = []``)
/var/lib/libvirt        ``root/lib`` (a copy of the rootfs's: images, qemu, network…)
/var/log/libvirt        ``root/log``
/etc/network            ``root/etc-network`` (lab 05 writes its declarations there)
/virtlab                this checkout
/dev/kvm                the machine's device (same numbers), group ``kvm`` of the rootfs
/var/cache/libvirt      the cached rootfs's own: QEMU's capabilities (probed once, 8-12 s
                        here, at the sandbox's start) survive between runs
======================  ==================================================================

Everything else (users, homes, /tmp) is the cached rootfs's own; the users made here are
removed by the tests that make them. libvirt's per-domain mount namespace cannot be set up
under chroot ("Failed disable mount propagation out of the root filesystem"), hence
``namespaces = []``. The machine's /dev/kvm belongs to the machine's group ``kvm``, whose
number is not the rootfs's: seen from the rootfs, QEMU's probe and libvirt's own test of
/dev/kvm then disagree, and libvirt throws its capabilities cache away and probes again
(~30 s) at every domain definition. So the sandbox's /dev/kvm is a node of the same device
owned by the rootfs's group, as on a real host of that release. Commands that may read
stdin (virsh, virt-install) are never fed a script on stdin: scripts are run as files.

Commands on the learner's host run in the sandbox's network namespace, where there is no
route out: a solution's ``apt-get install`` fails there instead of changing the cached rootfs
(lab 02's solution on Debian 13 shows it). Only the venv's set-up reaches PyPI, with this
machine's pip configuration and CA bundle bound inside.

First build on a machine (measured here, 2 shared cores): root filesystem 130-210 s, venv
27-51 s (libvirt-python compiled), capabilities 8-12 s; about 3-4.6 min in all, once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import time
import uuid as uuidlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rootfs import CACHE, RootfsError, build, chroot_argv, other_release
from sandbox import CHECK_CODE, REPO, Sandbox, SandboxError, read_pid, stop_pid

# What the root filesystem holds: the packages a learner of that release has after lab 02's
# reference solution (its Debian names), plus what the test set-up needs (D-Bus, polkitd,
# the firewall tools libvirt's NAT needs, the build dependencies of libvirt-python).
COMMON_PACKAGES = [
    "libvirt-daemon-system", "libvirt-daemon-config-network", "libvirt-daemon-config-nwfilter",
    "libvirt-clients", "qemu-system-x86", "qemu-utils", "bridge-utils", "virt-manager",
    "virt-viewer", "dnsmasq-base", "dbus", "polkitd", "iproute2", "nftables", "iptables",
    "python3", "python3-venv", "python3-dev", "gcc", "pkg-config", "libvirt-dev", "sudo",
    "kmod", "procps", "passwd", "ca-certificates",
]
RELEASE_PACKAGES = {
    # Debian 13: virtinst is only a transitional package; the real one is virt-install.
    "trixie": ["virt-install"],
    "bookworm": ["virtinst"],
}
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# This machine's pip configuration and CA bundle: pip inside the rootfs reaches PyPI (and
# this machine's local indexes) exactly as pip here does.
PIP_FILES = ["/etc/pip.conf", "/etc/xdg/pip", "/root/.config/pip", "/etc/ssl/certs",
             "/etc/resolv.conf"]
PIP_ENV_PREFIXES = ("PIP_", "SSL_CERT_", "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY",
                    "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def rootfs_for(release: str) -> Path:
    """The cached root filesystem of ``release`` (built now if missing)."""
    if release not in RELEASE_PACKAGES:
        raise RootfsError(f"no root filesystem recipe for {release!r}")
    return build(release, release, COMMON_PACKAGES + RELEASE_PACKAGES[release])


def pip_sources() -> list[str]:
    """Local package folders this machine's pip configuration names (find-links, indexes):
    the top folder of each (/opt/pypi for file:///opt/pypi/simple), to bind inside."""
    words: list[str] = []
    for conf in ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", "/root/.config/pip/pip.conf"):
        try:
            words += Path(conf).read_text().replace("=", " ").split()
        except OSError:
            pass
    for env in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL"):
        words += os.environ.get(env, "").split()
    found: list[str] = []
    for word in words:
        path = word.removeprefix("file://")
        if path.startswith("/") and Path(path).is_dir():
            top = "/" + "/".join(Path(path).parts[1:3])
            if top not in found:
                found.append(top)
    return found


def ensure_venv(root: Path, timeout: float = 1200) -> str:
    """virtlab's venv inside ``root`` (its python3; virtlab editable from /virtlab): its path
    inside. Keyed by pyproject.toml, so that changed dependencies make a new one."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    venv = f"/opt/virtlab-venv-{key}"
    done = root / venv.lstrip("/") / ".virtlab-complete"
    with open(CACHE / f".{root.name}.venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return venv
        shutil.rmtree(root / venv.lstrip("/"), ignore_errors=True)
        binds = [(str(REPO), "/virtlab")]
        binds += [(p, p) for p in PIP_FILES + pip_sources() if Path(p).exists()]
        env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8"}
        env |= {k: v for k, v in os.environ.items() if k.startswith(PIP_ENV_PREFIXES)}
        script = (f"python3 -m venv {venv} && {venv}/bin/python -m pip install -q --upgrade pip"
                  f" && {venv}/bin/python -m pip install -q -e /virtlab")
        started = time.monotonic()
        r = subprocess.run(chroot_argv(root, ["sh", "-c", script], binds=binds, env=env),
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RootfsError(f"installing virtlab in {root.name} failed:\n{r.stderr[-3000:]}")
        done.write_text(json.dumps({"seconds": round(time.monotonic() - started)}))
        return venv


class RootfsSandbox(Sandbox):
    """The other Debian release's host and libvirtd; the interface of :class:`Sandbox`."""

    def __init__(self, release: str | None = None, name: str | None = None):
        self._release = release or other_release()
        super().__init__(name or f"virtlab-rfs-{os.getpid()}-{uuidlib.uuid4().hex[:6]}")
        self.run_dir = self.root / "run"                 # the whole /run inside
        self.socket = self.run_dir / "libvirt" / "libvirt-sock"
        self.uri = f"qemu:///system?socket={self.socket}"
        self.etc_network_dir = self.root / "etc-network"
        self.data_dir = self.root / "data"               # VIRTLAB_DATA of the checker inside
        self.kvm_node = self.root / "kvm"
        self.rootfs: Path | None = None
        self.venv: str | None = None
        self.timings: dict[str, float] = {}

    # --- what differs from the machine's own -------------------------------------------
    @property
    def release(self) -> str:
        return self._release

    @property
    def label(self) -> str:
        return f"rootfs-{self.release}"

    @property
    def etc_network(self) -> Path:
        return self.etc_network_dir

    def lab_path(self, lab_dir: str) -> str:
        return f"/virtlab/labs/{lab_dir}"

    def host_path(self, inside: str | Path) -> Path:
        assert self.rootfs is not None
        p = Path(inside)
        if p == self.root or self.root in p.parents:
            return p
        return self.rootfs / p.relative_to("/")

    def _binds(self) -> list[tuple[str, str]]:
        binds = [(str(self.root), str(self.root)), (str(self.etc), "/etc/libvirt"),
                 (str(self.lib), "/var/lib/libvirt"), (str(self.log_dir), "/var/log/libvirt"),
                 (str(self.etc_network_dir), "/etc/network"), (str(REPO), "/virtlab")]
        if self.kvm_node.exists():
            binds.append((str(self.kvm_node), "/dev/kvm"))
        return binds

    def _make_kvm_node(self) -> None:
        """/dev/kvm as a node of the machine's device, owned by the rootfs's group kvm."""
        try:
            dev = os.stat("/dev/kvm")
        except FileNotFoundError:
            return
        assert self.rootfs is not None
        gid = next((int(line.split(":")[2])
                    for line in (self.rootfs / "etc/group").read_text().splitlines()
                    if line.startswith("kvm:")), None)
        if gid is None:  # no group kvm in that release's packages: leave the device as it is
            return
        os.mknod(self.kvm_node, 0o660 | stat.S_IFCHR, dev.st_rdev)
        os.chown(self.kvm_node, 0, gid)
        os.chmod(self.kvm_node, stat.S_IMODE(dev.st_mode))

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {"PATH": PATH, "HOME": "/root", "USER": "root", "LOGNAME": "root",
               "LANG": "C.UTF-8", "VIRTLAB_DATA": str(self.data_dir)}
        env.update(self.env)
        env.update(extra or {})
        return env

    def argv(self, argv: Iterable[str], *, netns: bool = True,
             env: dict[str, str] | None = None, cwd: str = "/") -> list[str]:
        """The argv running ``argv`` on the learner's host: chrooted in the rootfs, its /run
        and libvirt folders bound, with a clean environment (``env`` added)."""
        assert self.rootfs is not None, "the sandbox is not open"
        return chroot_argv(self.rootfs, list(argv), binds=self._binds(), run=self.run_dir,
                           netns=self.netns if netns else None, env=self._env(env), cwd=cwd)

    def run(self, argv: Iterable[str], *, netns: bool = True, env: dict[str, str] | None = None,
            input: str | None = None, timeout: float = 120, cwd: str | Path | None = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run a command on the learner's host: chrooted in the rootfs, as root. It runs in
        the sandbox's network namespace by default, with no route out (apt cannot reach the
        archive: the cached rootfs is never changed by a lab's solution)."""
        return subprocess.run(self.argv(argv, netns=netns, env=env, cwd=str(cwd or "/")),
                              capture_output=True, text=True, timeout=timeout,
                              input=input, stdin=None if input is not None else subprocess.DEVNULL)

    def run_script(self, script: str, *, env: dict[str, str] | None = None,
                   cwd: str | Path | None = None, timeout: float = 300,
                   ) -> subprocess.CompletedProcess[str]:
        """A bash script (``bash -eu``) as root on the learner's host (the chroot, whose
        libvirt folders are the sandbox's), in the sandbox's network namespace."""
        return self.run(["bash", "-euc", script], env=env, cwd=cwd, timeout=timeout)

    def virtlab(self, *args: str, env: dict[str, str] | None = None, input: str | None = None,
                timeout: float = 120, netns: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([f"{self.venv}/bin/python", "-m", "checker", *args], env=env,
                        input=input, timeout=timeout, netns=netns, cwd="/virtlab")

    def python(self, code: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """``python -c`` with that release's python3, from the venv made in the rootfs."""
        return self.run([f"{self.venv}/bin/python", "-c", code, *args], env=env,
                        cwd="/virtlab", timeout=timeout)

    def check(self, lab: str, *, connect: str | None = None, user: str | None = None,
              lang: str | None = None, only: list[str] | None = None,
              env: dict[str, str] | None = None) -> Any:
        """``checker.engine.check`` run inside, with that release's Python: its Report."""
        from checker.model import Report

        kw = {"lab": lab, "connect": connect, "user": user, "lang": lang, "only": only}
        r = self.python(CHECK_CODE, json.dumps(kw), env=env)
        if r.returncode != 0:
            raise SandboxError(f"check {lab} in {self.label} failed ({r.returncode}):\n"
                               f"{r.stderr[-3000:]}")
        return Report.from_json(r.stdout)

    def checker_python(self) -> tuple[str, str]:
        return f"{self.venv}/bin/python", "/virtlab"

    # --- life -----------------------------------------------------------------------
    def open(self) -> None:
        if os.geteuid() != 0:
            raise SandboxError("the libvirt sandbox needs root (network and mount namespaces)")
        t0 = time.monotonic()
        self.rootfs = rootfs_for(self.release)
        self.timings["rootfs"] = time.monotonic() - t0
        t0 = time.monotonic()
        self.venv = ensure_venv(self.rootfs)
        self.timings["venv"] = time.monotonic() - t0
        self.default_network_xml = self.rootfs / "usr/share/libvirt/networks/default.xml"
        # The package's own libvirt configuration and state skeleton, copied (owners kept).
        subprocess.run(["cp", "-a", str(self.rootfs / "etc/libvirt"), str(self.etc)], check=True)
        subprocess.run(["cp", "-a", str(self.rootfs / "var/lib/libvirt"), str(self.lib)],
                       check=True)
        qemu_conf = self.etc / "qemu.conf"
        qemu_conf.write_text(qemu_conf.read_text() + "\n# virtlab tests: libvirtd runs chrooted"
                             "\nnamespaces = []\n")
        for sub in ("images", "boot", "dnsmasq", "network"):
            (self.lib / sub).mkdir(exist_ok=True)
        (self.lib / "images").chmod(0o711)
        for d in (self.run_dir, self.log_dir, self.etc_network_dir, self.data_dir):
            d.mkdir()
        self.run_dir.chmod(0o755)
        (self.etc_network_dir / "interfaces.d").mkdir()
        subprocess.run(["ip", "netns", "add", self.netns], check=True, capture_output=True)
        self._netns_made = True
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        self._make_kvm_node()
        self._must(["chown", "-R", "libvirt-qemu:kvm", "/var/lib/libvirt/qemu"])
        self.start()
        self._wait_polkit()
        # libvirt probes QEMU's capabilities once (about two minutes under TCG), then reads
        # them from /var/cache/libvirt of the cached rootfs: do it now, not in a test.
        t0 = time.monotonic()
        self.conn().getCapabilities()
        self.timings["capabilities"] = time.monotonic() - t0
        t0 = time.monotonic()
        self.reset()
        d = self.conn().defineXML(self.domain_xml("virtlab-probe"))  # the first definition
        d.undefine()
        self.timings["first-domain"] = time.monotonic() - t0

    def _wait_polkit(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        argv = ["dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.PolicyKit1"]
        while time.monotonic() < deadline:
            if "boolean true" in self.run(argv, timeout=20).stdout:
                return
            time.sleep(0.2)
        raise SandboxError(f"polkitd did not come up in {self.label}:\n" + self.daemon_log())

    def _launcher(self) -> list[str]:
        """D-Bus, polkitd and virtlogd (each only if not running: a restart of libvirtd keeps
        them), then libvirtd; all chrooted in the rootfs, in the sandbox's namespaces."""
        script = "\n".join([
            "set -e",
            "mkdir -p /run/dbus /run/libvirt /run/lock",
            'alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }',
            "if ! alive /run/dbus/pid; then",
            "  rm -f /run/dbus/pid /run/dbus/system_bus_socket",
            "  dbus-daemon --system --fork",
            "fi",
            "if ! alive /run/virtlab-polkitd.pid; then",
            "  /usr/lib/polkit-1/polkitd --no-debug </dev/null &",
            "  echo $! > /run/virtlab-polkitd.pid",
            "fi",
            "alive /run/virtlogd.pid || virtlogd --daemon --pid-file /run/virtlogd.pid",
            "exec libvirtd --pid-file /run/libvirtd.pid",
        ])
        return self.argv(["sh", "-c", script])

    def start(self, timeout: float = 60) -> None:
        if self._daemon and self._daemon.poll() is None:
            return
        log = open(self.root / "libvirtd.out", "ab")
        self._daemon = subprocess.Popen(self._launcher(), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        import libvirt

        libvirt.registerErrorHandler(lambda *_: None, None)
        while time.monotonic() < deadline:
            if self._daemon.poll() is not None:
                raise SandboxError(f"libvirtd of {self.label} exited at start:\n"
                                   + self.daemon_log())
            if self.socket.exists():
                try:
                    libvirt.open(self.uri).close()
                    return
                except libvirt.libvirtError:
                    pass
            time.sleep(0.1)
        raise SandboxError(f"libvirtd of {self.label} did not answer within {timeout} s:\n"
                           + self.daemon_log())

    def _stop_helpers(self) -> None:
        """This release's own virtlogd, polkitd and D-Bus, by their pid files."""
        for pidfile in ("virtlogd.pid", "virtlab-polkitd.pid", "dbus/pid"):
            pid = read_pid(self.run_dir / pidfile)
            if pid:
                stop_pid(pid)

    def _remove_dirs(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        if self.rootfs is not None:  # the mount point made for self.root inside
            try:
                (self.rootfs / str(self.root).lstrip("/")).rmdir()
            except OSError:
                pass

    def _kill_leftovers(self) -> None:
        lv = self.run_dir / "libvirt"
        for pidfile in list(lv.glob("network/*.pid")) + list(lv.glob("qemu/*.pid")):
            pid = read_pid(pidfile)
            if pid:
                stop_pid(pid)


def _selftest() -> None:  # python3 tests/sandbox_rootfs.py: open one, print its timings
    t0 = time.monotonic()
    with RootfsSandbox() as sb:
        print(sb.label, sb.uri, sb.timings, f"open {time.monotonic() - t0:.1f} s")
        print(sb.run(["virsh", "-c", sb.uri, "version"]).stdout)
        print(sb.check("03", connect=sb.uri, user="root", lang="en").to_json()[:300])


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    _selftest()
