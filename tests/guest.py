"""A tiny bootable guest that asks for a DHCP lease: Debian's kernel + a busybox initramfs.

Built at test time from the test machine's own packages: the kernel ``/boot/vmlinuz-*``
(``linux-image-amd64``), its virtio modules from ``/lib/modules/<version>/`` and a static
busybox (``busybox-static``). Debian builds virtio as modules, so ``/init`` inserts them in
dependency order (read from ``modinfo -F depends``: virtio_ring, virtio,
virtio_pci_modern_dev, virtio_pci_legacy_dev, virtio_pci, failover, net_failover,
virtio_net), brings ``eth0`` up and runs ``udhcpc``. Booted with ``<kernel>``/``<initrd>``
under QEMU/TCG it holds a lease within about 10 s.

>>> g = build_guest(Path("/tmp/g"))             # doctest: +SKIP
>>> g.kernel, g.initrd                          # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
# What the guest needs: the PCI transport and the network driver (their deps come along).
ROOT_MODULES = ("virtio_pci", "virtio_net")
APPLETS = ("sh", "mount", "insmod", "ip", "udhcpc", "sleep", "cat", "echo", "ls")
CMDLINE = "console=ttyS0 panic=-1 quiet"

INIT = r"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in {modules}; do
    insmod /lib/modules/$m.ko || echo "virtlab-guest: insmod $m failed"
done
ip link set lo up
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 50 ]; do sleep 0.2; n=$((n+1)); done
ip link set eth0 up
echo "virtlab-guest: asking for a lease on eth0"
udhcpc -i eth0 -s /udhcpc.script -t 30 -T 2 -A 2 -b
while true; do sleep 3600; done
"""

# udhcpc calls this on each event; "bound"/"renew" carry the address in $ip and $mask.
UDHCPC_SCRIPT = r"""#!/bin/sh
case "$1" in
    deconfig) ip addr flush dev "$interface" ;;
    bound|renew)
        ip addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        echo "virtlab-guest: lease $ip on $interface" ;;
esac
exit 0
"""


class GuestBuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Guest:
    kernel: Path
    initrd: Path
    version: str
    modules: tuple[str, ...]
    cmdline: str = CMDLINE


def kernel_version() -> str:
    """The newest kernel with both an image in /boot and modules in /lib/modules."""
    found = []
    for img in Path("/boot").glob("vmlinuz-*"):
        ver = img.name[len("vmlinuz-"):]
        if Path(f"/lib/modules/{ver}").is_dir():
            found.append(ver)
    if not found:
        raise GuestBuildError("no /boot/vmlinuz-* with matching /lib/modules "
                              "(install linux-image-amd64)")
    return sorted(found)[-1]


def _modinfo(version: str, field: str, module: str) -> str:
    r = subprocess.run(["modinfo", "-k", version, "-F", field, module], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise GuestBuildError(f"modinfo {module} ({version}): {r.stderr.strip()}")
    return r.stdout.strip()


def module_order(version: str, roots: tuple[str, ...] = ROOT_MODULES) -> list[str]:
    """Modules to insert, dependencies first (depth-first on ``modinfo -F depends``).

    A module built into the kernel (``modinfo -F filename`` says ``(builtin)``) is skipped.
    """
    order: list[str] = []
    seen: set[str] = set()

    def visit(m: str) -> None:
        if m in seen:
            return
        seen.add(m)
        if _modinfo(version, "filename", m).startswith("(builtin)"):
            return
        for dep in filter(None, _modinfo(version, "depends", m).split(",")):
            visit(dep.strip())
        order.append(m)

    for r in roots:
        visit(r)
    return order


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        r = subprocess.run(["zstd", "-dc", str(path)], capture_output=True)
        if r.returncode != 0:
            raise GuestBuildError(f"cannot decompress {path} (install zstd)")
        return r.stdout
    return data


def build_guest(workdir: Path) -> Guest:
    """Write ``vmlinuz`` and ``initrd.gz`` into ``workdir`` and return them."""
    if not BUSYBOX.is_file():
        raise GuestBuildError(f"{BUSYBOX} missing (install busybox-static)")
    if not shutil.which("cpio"):
        raise GuestBuildError("cpio missing (install cpio)")
    version = kernel_version()
    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "root"
    if root.exists():
        shutil.rmtree(root)
    for d in ("bin", "proc", "sys", "dev", "lib/modules", "tmp"):
        (root / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    mods = module_order(version)
    for m in mods:
        src = Path(_modinfo(version, "filename", m))
        (root / "lib/modules" / f"{m}.ko").write_bytes(_module_bytes(src))
    init = root / "init"
    init.write_text(INIT.replace("{modules}", " ".join(mods)))
    script = root / "udhcpc.script"
    script.write_text(UDHCPC_SCRIPT)
    for f in (init, script):
        f.chmod(f.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    r = subprocess.run(["cpio", "--create", "--format=newc", "--quiet", "--owner=0:0"],
                       input=("\n".join(names) + "\n").encode(), cwd=root, capture_output=True)
    if r.returncode != 0:
        raise GuestBuildError(f"cpio: {r.stderr.decode(errors='replace').strip()}")
    initrd = workdir / "initrd.gz"
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(r.stdout)
    initrd.write_bytes(buf.getvalue())
    kernel = workdir / "vmlinuz"
    shutil.copyfile(f"/boot/vmlinuz-{version}", kernel)
    for f in (kernel, initrd):
        os.chmod(f, 0o644)
    shutil.rmtree(root)
    return Guest(kernel=kernel, initrd=initrd, version=version, modules=tuple(mods))
