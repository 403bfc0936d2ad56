"""The real VBoxManage (VirtualBox 7.2 from Debian unstable's contrib) for the tests.

Debian 12 and 13 do not ship VirtualBox; unstable's ``contrib`` does. Installed in a root
filesystem of its own (:mod:`rootfs`, cached under /var/cache/virtlab/rootfs), its VBoxManage
manages VMs for real without the kernel driver: createvm, modifyvm, createmedium,
storagectl/storageattach, snapshot take/list, showvminfo, list vms. Out of reach here:
``hostonlyif create`` (needs /dev/vboxnetctl, module vboxnetadp) and starting a VM (needs
/dev/vboxdrv).

The learner runs it through a thin exec wrapper (``tests/fixtures/vbox/real/VBoxManage``)
put first on PATH: it enters the root filesystem in user, mount and PID namespaces of its
own and runs the real binary as the learner's uid, with the learner's real home. VBoxSVC
lives in that PID namespace and ends with the command; :func:`processes_of` and
:func:`end_processes` let a test prove it and end, by PID, anything left.

>>> root = build_root()                                    # doctest: +SKIP
>>> vb = RealVBox(root); vb.run("alice", "list", "vms")   # doctest: +SKIP
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import rootfs

FIX = Path(__file__).resolve().parent / "fixtures" / "vbox"
WRAPPER = FIX / "real" / "VBoxManage"

# What the root filesystem holds: VirtualBox and, to satisfy its driver dependency without
# DKMS, virtualbox-source; `mount` (no longer Essential) for the wrapper's umount. A frozen
# mirror's unstable Release file is past its Valid-Until, hence the apt option.
SUITE = "unstable"
PACKAGES = ("virtualbox", "virtualbox-source", "mount")
COMPONENTS = ("main", "contrib")
APT_OPTIONS = ('Acquire::Check-Valid-Until "false"',)
# The machine's usual PATH after the wrapper's folder.
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


def build_root() -> Path:
    """The cached root filesystem with VirtualBox (built now when missing: ~2 min)."""
    return rootfs.build("vbox", SUITE, PACKAGES, components=COMPONENTS, apt_options=APT_OPTIONS)


class RealVBox:
    """A folder with ``bin/VBoxManage`` (the wrapper) and ``rootfs`` (the root's path),
    readable by any user: put :attr:`bin_dir` first on the learner's PATH."""

    def __init__(self, root: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="virtlab-realvbox-"))
        os.chmod(self.dir, 0o755)
        bin_dir = self.dir / "bin"
        bin_dir.mkdir(mode=0o755)
        os.chmod(bin_dir, 0o755)
        shutil.copy(WRAPPER, bin_dir / "VBoxManage")
        os.chmod(bin_dir / "VBoxManage", 0o755)
        (self.dir / "rootfs").write_text(str(root) + "\n", encoding="utf-8")
        os.chmod(self.dir / "rootfs", 0o644)
        self.root = root

    @property
    def bin_dir(self) -> Path:
        return self.dir / "bin"

    @property
    def path(self) -> str:
        return f"{self.bin_dir}:{SYSTEM_PATH}"

    def run(self, user: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``VBoxManage ARGS`` as ``user`` (runuser, the way the checker runs it)."""
        return subprocess.run(["runuser", "-u", user, "--", "env", f"PATH={self.path}",
                               "VBoxManage", *args], capture_output=True, text=True,
                              timeout=timeout, cwd="/")

    def ok(self, user: str, *args: str) -> str:
        """Like :meth:`run`, and the command must succeed; returns its stdout."""
        r = self.run(user, *args)
        assert r.returncode == 0, (args, r.returncode, r.stdout[-2000:], r.stderr[-2000:])
        return r.stdout

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def processes_of(user: str) -> list[tuple[int, str]]:
    """(PID, command name) of every process running as ``user``'s uid."""
    uid = pwd.getpwnam(user).pw_uid
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if p.stat().st_uid != uid:
                continue
            found.append((int(p.name), (p / "comm").read_text().strip()))
        except OSError:
            continue
    return found


def end_processes(user: str) -> list[tuple[int, str]]:
    """End, by PID, every process of the test learner ``user`` (a user made by the test);
    returns what was found running."""
    left = processes_of(user)
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while processes_of(user) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left
