"""Debian root filesystems built from Debian's archive for the tests (mmdebstrap), cached.

The tests run the other Debian release (Debian 13 on a Debian 12 machine and the reverse) and
programs Debian ships only in unstable (VirtualBox 7.2) from root filesystems of their own.
They are built once per machine and kept under ``/var/cache/virtlab/rootfs/`` (a fresh clone
in CI reuses them); the cache key is the suite, components, packages and apt options, so
changing the package list rebuilds.

Safety: everything that mounts (mmdebstrap's own /proc and /dev, and :func:`chroot_argv`'s)
happens inside a private mount namespace (``unshare --mount --propagation private``): the
machine's own mount table never sees a mount inside a root filesystem, so deleting one can never
reach the machine's /dev. :func:`remove` still checks that nothing is mounted inside first.

>>> root = build("trixie", "trixie", ["libvirt-daemon-system"])      # doctest: +SKIP
>>> subprocess.run(chroot_argv(root, ["virsh", "--version"]))        # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

CACHE = Path(os.environ.get("VIRTLAB_ROOTFS_CACHE", "/var/cache/virtlab/rootfs"))
# The machine's own mirror (its apt sources name it); the same registry the machine installs from.
MIRROR = os.environ.get("VIRTLAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Bump when the way root filesystems are built changes, so that old caches are not reused.
FORMAT = 1

RELEASES = {"12": "bookworm", "13": "trixie"}


class RootfsError(RuntimeError):
    pass


def host_release() -> str:
    """The machine's Debian codename (``bookworm``, ``trixie``) from /etc/os-release."""
    fields: dict[str, str] = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value.strip().strip('"')
    codename = fields.get("VERSION_CODENAME", "")
    if not codename:
        codename = RELEASES.get(fields.get("VERSION_ID", ""), "")
    if codename not in RELEASES.values():
        raise RootfsError(f"this machine is not Debian 12 or 13 ({fields.get('PRETTY_NAME', '?')})")
    return codename


def other_release() -> str:
    """The Debian release that is not the machine's: the one the tests run from a rootfs."""
    return "trixie" if host_release() == "bookworm" else "bookworm"


def _key(suite: str, packages: Sequence[str], components: Sequence[str],
          apt_options: Sequence[str], setup_hooks: Sequence[str]) -> str:
    blob = json.dumps([FORMAT, suite, sorted(packages), list(components), list(apt_options),
                       list(setup_hooks), MIRROR])
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def build(name: str, suite: str, packages: Iterable[str], *, components: Sequence[str] = ("main",),
          apt_options: Sequence[str] = (), customize: Sequence[str] = (),
          timeout: float = 1800) -> Path:
    """The root filesystem ``name`` of ``suite`` with ``packages``: cached, else built now.

    ``apt_options`` are ``--aptopt`` values (e.g. ``Acquire::Check-Valid-Until "false"``);
    ``customize`` are shell commands run by mmdebstrap after the install, with ``$1`` the
    root (``--customize-hook``). Concurrent callers wait for one build (a lock file).
    """
    pkgs = sorted(set(packages))
    key = _key(suite, pkgs, components, apt_options, customize)
    CACHE.mkdir(parents=True, exist_ok=True)
    root = CACHE / f"{name}-{key}"
    with open(CACHE / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / ".virtlab-complete").exists():
            return root
        for stale in CACHE.glob(f"{name}-*"):  # older keys, or a build cut short
            remove(stale)
        tmp = CACHE / f".{name}-{key}.building"
        remove(tmp)
        cmd = ["mmdebstrap", "--mode=root", "--variant=apt", f"--components={','.join(components)}",
               *([f"--include={','.join(pkgs)}"] if pkgs else [])]
        for opt in apt_options:
            cmd.append(f"--aptopt={opt}")
        for hook in customize:
            cmd.append(f"--customize-hook={hook}")
        cmd += [suite, str(tmp), MIRROR]
        started = time.monotonic()
        # mmdebstrap mounts /proc, /dev and /sys inside the target: a private mount namespace
        # keeps every one of those mounts out of the machine's mount table.
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", *cmd],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            remove(tmp)
            raise RootfsError(f"mmdebstrap {suite} failed ({r.returncode}):\n{r.stderr[-3000:]}")
        (tmp / ".virtlab-complete").write_text(
            json.dumps({"suite": suite, "packages": pkgs,
                        "seconds": round(time.monotonic() - started)}))
        tmp.rename(root)
        return root


def mounted_inside(root: Path) -> list[str]:
    """Mount points at or below ``root`` in this mount namespace."""
    r = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True)
    prefix = str(root.resolve())
    return [m for m in r.stdout.split() if m == prefix or m.startswith(prefix + "/")]


def remove(root: Path) -> None:
    """Delete a root filesystem, never across a mount (and never while one is inside)."""
    if not root.exists():
        return
    mounts = mounted_inside(root)
    if mounts:
        raise RootfsError(f"refusing to delete {root}: mounted inside: {', '.join(mounts)}")
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=True)


def chroot_argv(root: Path, argv: Sequence[str], *, binds: Sequence[tuple[str, str]] = (),
                netns: str | None = None, run: str | Path | None = None,
                env: dict[str, str] | None = None, cwd: str = "/") -> list[str]:
    """An argv that runs ``argv`` chrooted in ``root``, in a private mount namespace with its
    own /proc, the machine's /dev and /sys bound, and ``binds`` (host path, path inside; a
    file is bound onto a file, made empty in the root filesystem if missing).

    ``run``: a host folder bound as /run (several commands then share their sockets and pid
    files, as daemons and clients on one host do); else a fresh tmpfs. With ``env``, the
    command gets exactly that environment (``env -i``), never this process's; ``cwd`` is the
    working folder inside. With ``netns``, it runs inside that network namespace
    (``ip netns exec``, which also gives /sys that namespace's view) first.
    """
    lines = ["set -e", f"r={shlex.quote(str(root))}",
             'mount -t proc proc "$r/proc"', 'mount --rbind /dev "$r/dev"',
             'mount --rbind /sys "$r/sys"']
    if run is None:
        lines.append('mount -t tmpfs tmpfs "$r/run"')
    else:
        lines.append(f'mount --bind {shlex.quote(str(run))} "$r/run"')
    lines.append('mkdir -p "$r/run/lock"')
    for src, dst in binds:
        _no_symlink_inside(root, str(dst))
        qs, qd = shlex.quote(str(src)), shlex.quote(str(dst))
        if os.path.isdir(src):
            lines.append(f'mkdir -p "$r"{qd}')
        else:
            lines.append(f'mkdir -p "$(dirname "$r"{qd})"; [ -e "$r"{qd} ] || : > "$r"{qd}')
        lines.append(f'mount --bind {qs} "$r"{qd}')
    inner = list(argv)
    if env is not None:
        inner = ["env", "-i", "-C", cwd, *(f"{k}={v}" for k, v in env.items()), *inner]
    elif cwd != "/":
        inner = ["env", "-C", cwd, *inner]
    lines.append(f'exec chroot "$r" {shlex.join(inner)}')
    cmd = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "\n".join(lines)]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    return cmd


def _no_symlink_inside(root: Path, dst: str) -> None:
    """A bind target is resolved (and, for a file, made) from outside the chroot: a symlink
    on its way would lead out of the root filesystem. Refuse it."""
    here = Path(root)
    for part in Path(dst).relative_to("/").parts:
        here = here / part
        if here.is_symlink():
            raise RootfsError(f"bind target {dst} goes through a symlink in {root}: {here}")


def tool_path() -> str | None:
    """mmdebstrap on PATH (installed by .ci/install --test), or None."""
    return shutil.which("mmdebstrap")
