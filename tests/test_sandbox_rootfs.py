"""The other Debian release's sandbox is what it claims to be, and leaves the machine alone.

Run on both members of ``release_sandbox``: each one must be the release its id names (its
/etc/os-release, Python, libvirtd and QEMU, virtlab running with that Python), and the
rootfs one must leave no mount in the machine's mount table and the machine's /dev/kvm as
it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from rootfs import RELEASES, chroot_argv, host_release, mounted_inside

# What each release ships (Debian's versions; checked again on the real packages here).
PYTHON = {"bookworm": "3.11", "trixie": "3.13"}
LIBVIRT_MAJOR = {"bookworm": 9, "trixie": 11}
QEMU_MAJOR = {"bookworm": 7, "trixie": 10}


@pytest.mark.integration
def test_the_learner_host_is_the_release_its_id_names(release_sandbox):
    sb = release_sandbox
    assert sb.label.endswith(sb.release)
    osr = sb.run(["cat", "/etc/os-release"]).stdout
    assert f"VERSION_CODENAME={sb.release}" in osr
    version_id = next(k for k, v in RELEASES.items() if v == sb.release)
    assert f'VERSION_ID="{version_id}"' in osr
    if sb.label.startswith("host-"):
        assert sb.release == host_release()
    else:
        assert sb.release != host_release()

    # virtlab itself runs there with that release's Python, from this checkout.
    code = ("import json, sys, checker, pathlib; print(json.dumps([sys.version_info[:2], "
            "str(pathlib.Path(checker.__file__).resolve().parent.parent)]))")
    r = sb.python(code)
    assert r.returncode == 0, r.stderr
    (major, minor), where = json.loads(r.stdout)
    if sb.label.startswith("host-"):  # this test process's own Python (.venv)
        assert (major, minor) == sys.version_info[:2]
    else:  # that release's python3, and this checkout bound at /virtlab
        assert f"{major}.{minor}" == PYTHON[sb.release]
        assert where == "/virtlab"

    # libvirtd and QEMU are that release's, reached from this process through the socket.
    c = sb.conn()
    assert c.getLibVersion() // 1_000_000 == LIBVIRT_MAJOR[sb.release]
    assert c.getVersion() // 1_000_000 == QEMU_MAJOR[sb.release]
    # and the checker inside reports the same daemon
    report = sb.check("03", connect=sb.uri, user="root", lang="en")
    assert report.libvirt_uri == sb.uri


@pytest.mark.integration
def test_the_rootfs_sandbox_leaves_the_machine_alone(rootfs_sandbox):
    sb = rootfs_sandbox
    assert sb.rootfs is not None
    # Every mount is in a private namespace: the machine's table has none inside the rootfs.
    assert mounted_inside(sb.rootfs) == []
    # /dev/kvm: the sandbox's node carries the rootfs's group; the machine's keeps its own.
    if os.path.exists("/dev/kvm"):
        host = os.stat("/dev/kvm")
        inside = sb.run(["stat", "-c", "%t:%T %g", "/dev/kvm"]).stdout.split()
        assert int(inside[0].split(":")[0], 16) == os.major(host.st_rdev)
        kvm_gid = sb.run(["getent", "group", "kvm"]).stdout.split(":")[2]
        assert inside[1] == kvm_gid
        assert os.stat("/dev/kvm").st_gid == host.st_gid
    # Inside the network namespace there is no route out: a solution's `apt-get` cannot
    # change the cached rootfs.
    r = sb.run(["ip", "route", "show", "default"])
    assert r.returncode == 0 and r.stdout.strip() == ""


@pytest.mark.integration
def test_chroot_argv_gives_a_clean_environment_and_binds_files(rootfs_sandbox, tmp_path):
    sb = rootfs_sandbox
    f = tmp_path / "note.txt"
    f.write_text("bound\n")
    argv = chroot_argv(sb.rootfs, ["sh", "-c", 'cat /vl-note.txt; echo "${VIRTUAL_ENV:-none}"'],
                       binds=[(str(f), "/vl-note.txt")], env={"PATH": "/usr/bin:/bin"})
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, VIRTUAL_ENV=sys.prefix))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["bound", "none"]
    # the empty file made as the mount point is all that remains, and nothing is mounted
    assert (sb.rootfs / "vl-note.txt").read_text() == ""
    (sb.rootfs / "vl-note.txt").unlink()
    assert mounted_inside(sb.rootfs) == []


def test_a_bind_through_a_symlink_of_the_rootfs_is_refused(tmp_path):
    """Bind targets are resolved from outside the chroot: a symlink would lead out of it."""
    from rootfs import RootfsError

    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")                      # merged /usr: relative
    (root / "etc").mkdir()
    (root / "etc/resolv.conf").symlink_to("/run/elsewhere")   # absolute: out of the root
    for dst in ("/bin/x", "/etc/resolv.conf"):
        with pytest.raises(RootfsError, match="symlink"):
            chroot_argv(root, ["true"], binds=[("/etc/hostname", dst)])
    assert chroot_argv(root, ["true"], binds=[("/etc/hostname", "/etc/hostname")])
    assert not (root / "etc/hostname").exists()  # nothing is made before the command runs
