"""Lab 06-virtualbox against the REAL VBoxManage 7.2 (no stand-in).

The root filesystem with Debian unstable's ``virtualbox`` is built by the test session
(:mod:`vbox_real`, cached under /var/cache/virtlab/rootfs); in CI a failure to build it is a
test failure. The learner is a real user made for the test, in group ``vboxusers``; the
checker runs ``VBoxManage`` as that user (runuser, timeout) and finds the wrapper first on
PATH; the wrapper runs the real binary as the learner's uid on the learner's real home.

What the real tool cannot do here (no /dev/vboxdrv, no /dev/vboxnetctl): start a VM,
``hostonlyif create``, and so load vboxdrv: ``vbox-kernel-driver`` is asserted with its real
outcome on this machine, and the stand-in tests (test_lab06_checks.py) cover the rest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import vbox_real
from apt_sandbox import check_with_apt
from conftest import cannot_run, run_virtlab, statuses
from rootfs import RootfsError

from checker.model import Report
from checker.reporters import render

pytestmark = pytest.mark.integration

FIX = Path(__file__).resolve().parent / "fixtures" / "vbox"
VM = "debian-vbox"
VM_IDS = ("vbox-vm-created", "vbox-vm-resources", "vbox-vm-disk", "vbox-nic-nat",
          "vbox-nic-private", "vbox-snapshot")
ORACLE_SOURCES = ("Types: deb\nURIs: https://download.virtualbox.org/virtualbox/debian\n"
                  "Suites: trixie\nComponents: contrib\nArchitectures: amd64\n"
                  "Signed-By: /etc/apt/keyrings/oracle-virtualbox-2016.gpg\n")


@pytest.fixture(scope="session")
def vbox_root() -> Path:
    if os.geteuid() != 0:
        cannot_run("building VirtualBox's root filesystem (mmdebstrap --mode=root) needs root")
    if vbox_real.rootfs.tool_path() is None:
        cannot_run("mmdebstrap is not installed (bash .ci/install --test installs it)")
    try:
        return vbox_real.build_root()
    except (RootfsError, OSError, subprocess.SubprocessError) as e:
        cannot_run(f"cannot build VirtualBox's root filesystem from Debian unstable: {e}")


@pytest.fixture(scope="module")
def real_vbox(vbox_root):
    vb = vbox_real.RealVBox(vbox_root)
    yield vb
    vb.close()


def _group_exists(name: str) -> bool:
    return subprocess.run(["getent", "group", name], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def vboxusers():
    if os.geteuid() != 0:
        cannot_run("creates real users and group vboxusers: needs root")
    created = not _group_exists("vboxusers")
    if created:
        subprocess.run(["groupadd", "--system", "vboxusers"], check=True, capture_output=True)
    yield "vboxusers"
    if created:
        subprocess.run(["groupdel", "vboxusers"], capture_output=True)


def _new_learner(groups=("vboxusers",)) -> str:
    name = "vl06r" + uuid.uuid4().hex[:8]
    args = ["useradd", "-m", "-s", "/bin/bash"]
    if groups:
        args += ["-G", ",".join(groups)]
    subprocess.run([*args, name], check=True, capture_output=True)
    return name


def _drop_learner(name: str) -> list:
    left = vbox_real.end_processes(name)
    subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
    return left


#: The APT root of the running test (apt_root fixture): every check of this file reads it.
_APT_ROOT: list[Path] = []


def check(*args, **kw) -> Report:
    """checker.engine.check with the apt_root fixture's files at /etc/apt (apt_sandbox)."""
    assert _APT_ROOT, "a check of this file needs the apt_root fixture (through on_path)"
    return check_with_apt(_APT_ROOT[-1], *args, **kw)


@pytest.fixture
def apt_root():
    """Oracle's repository as the lab teaches it: /etc/apt/keyrings and Signed-By."""
    d = Path(tempfile.mkdtemp(prefix="virtlab-vbox-apt-"))
    (d / "etc/apt/sources.list.d").mkdir(parents=True)
    (d / "etc/apt/keyrings").mkdir(parents=True)
    (d / "etc/apt/sources.list.d/virtualbox.sources").write_text(ORACLE_SOURCES)
    shutil.copy(FIX / "test-oracle-uid.gpg", d / "etc/apt/keyrings/oracle-virtualbox-2016.gpg")
    _APT_ROOT.append(d)
    yield d
    _APT_ROOT.remove(d)
    shutil.rmtree(d, ignore_errors=True)


def _solve(real_vbox, learner: str):
    """The lab's reference solution, its VM part, through `virtlab solve` for real."""
    r = run_virtlab("solve", "06", "--yes", "--user", learner,
                    env={"PATH": real_vbox.path, "VIRTLAB_VBOX_STEPS": "vm"}, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def solved(real_vbox, vboxusers):
    """A learner for whom solution.sh's VM steps ran with the real VBoxManage."""
    learner = _new_learner()
    try:
        r = _solve(real_vbox, learner)
        yield learner, r
    finally:
        left = _drop_learner(learner)
        assert left == [], f"processes left running after the tests: {left}"


@pytest.fixture
def on_path(real_vbox, monkeypatch, apt_root):
    monkeypatch.setenv("PATH", real_vbox.path)
    monkeypatch.delenv("VIRTLAB_FAKE_VBOX_SCENARIO", raising=False)
    # each VBoxManage starts its VBoxSVC (~0.5 s here); the default 10 s bound is for a
    # learner's machine, not for six test sessions sharing two cores
    monkeypatch.setenv("VIRTLAB_VBOX_TIMEOUT", "60")
    return real_vbox


def result(report, oid):
    return next(o for o in report.objectives if o.id == oid)


def _vboxdrv_loaded() -> bool:
    try:
        if any(x.split()[0] == "vboxdrv" for x in Path("/proc/modules").read_text().splitlines()
               if x):
            return True
    except OSError:
        pass
    return Path("/sys/module/vboxdrv").is_dir()


# --- the reference solution -------------------------------------------------------------

def test_reference_solution_with_the_real_tool_scores_every_vm_objective(solved, on_path):
    learner, solve = solved
    # here `hostonlyif create` cannot work (no /dev/vboxnetctl): the solution says so and
    # takes the lab's other private network
    assert "internal network labnet" in solve.stderr
    report = check("06", user=learner, lang="en")
    st = statuses(report)
    for oid in (*VM_IDS, "vbox-installed", "vbox-source", "user-group-vboxusers"):
        assert st[oid] == "pass", (oid, result(report, oid).message)
    assert st["vbox-kernel-driver"] == ("pass" if _vboxdrv_loaded() else "fail")
    inst = result(report, "vbox-installed")
    assert re.fullmatch(r"7\.2\.\d+_Debianr\d+", inst.evidence["version"]), inst.evidence
    created = result(report, "vbox-vm-created")
    assert created.evidence["ostype"] == "Debian (64-bit)"
    assert created.evidence["state"] == "poweroff"
    res = result(report, "vbox-vm-resources").evidence
    assert (res["memory_mib"], res["cpus"]) == (2048, 2)
    disk = result(report, "vbox-vm-disk").evidence["disks"]
    # after the snapshot, the VM writes to a differencing image in Snapshots/ (still VDI)
    assert [d["format"] for d in disk] == ["vdi"] and "/Snapshots/{" in disk[0]["medium"]
    priv = result(report, "vbox-nic-private").evidence
    assert (priv["attachment"], priv["network"]) == ("intnet", "labnet")
    assert result(report, "vbox-snapshot").evidence["snapshots"] == ["installation propre"]
    # VirtualBox's files are the learner's own, where the learner's VirtualBox keeps them
    home = Path(os.path.expanduser(f"~{learner}"))
    vbox_file = home / "VirtualBox VMs" / VM / f"{VM}.vbox"
    assert vbox_file.is_file() and vbox_file.stat().st_uid == _uid(learner)
    assert (home / ".config/VirtualBox/VirtualBox.xml").is_file()
    # no VBoxSVC outlives a command: the wrapper's PID namespace ends with VBoxManage
    assert vbox_real.processes_of(learner) == []


def test_solution_is_idempotent_with_the_real_tool(solved, real_vbox, on_path):
    learner, _ = solved
    _solve(real_vbox, learner)
    report = check("06", user=learner, lang="en")
    assert all(result(report, oid).status == "pass" for oid in VM_IDS)
    assert result(report, "vbox-snapshot").evidence["snapshots"] == ["installation propre"]


def _uid(user: str) -> int:
    import pwd
    return pwd.getpwnam(user).pw_uid


def test_host_only_adapter_set_with_the_real_tool_passes(solved, on_path):
    """`--nic2 hostonly` is accepted without the interface (VirtualBox only warns), so
    the VM side of a host-only network is real here; `hostonlyif create` is not."""
    learner, _ = solved
    vb = on_path
    try:
        r = vb.run(learner, "modifyvm", VM, "--nic2", "hostonly", "--host-only-adapter2",
                   "vboxnet0")
        assert r.returncode == 0 and "vboxnet0" in r.stderr  # "doesn't seem to exist"
        report = check("06", user=learner, lang="en", only=["vbox-nic-private"])
        priv = result(report, "vbox-nic-private")
        assert priv.status == "pass" and priv.evidence["network"] == "vboxnet0", priv.message
        create = vb.run(learner, "hostonlyif", "create")
        assert create.returncode != 0 and "/dev/vboxnetctl" in create.stdout + create.stderr
    finally:
        vb.ok(learner, "modifyvm", VM, "--nic2", "intnet", "--intnet2", "labnet")


# --- each objective broken alone, with the real tool ---------------------------------------

def _host_mib() -> int:
    with open("/proc/meminfo") as f:
        return int(f.readline().split()[1]) // 1024


# (id, objective, says, commands that break it, commands that restore it)
BREAKS = [
    ("ubuntu-type", "vbox-vm-created", "Ubuntu (64-bit)",
     [["modifyvm", VM, "--ostype", "Ubuntu_64"]], [["modifyvm", VM, "--ostype", "Debian_64"]]),
    ("512-mib", "vbox-vm-resources", "512 MiB",
     [["modifyvm", VM, "--memory", "512"]], [["modifyvm", VM, "--memory", "2048"]]),
    ("too-many-vcpus", "vbox-vm-resources", "vCPUs for",
     [["modifyvm", VM, "--cpus", str((os.cpu_count() or 1) + 1)]],
     [["modifyvm", VM, "--cpus", "2"]]),
    ("host-keeps-too-little", "vbox-vm-resources", "the host would keep only 1.0 GiB",
     [["modifyvm", VM, "--memory", str(_host_mib() - 1024)]],
     [["modifyvm", VM, "--memory", "2048"]]),
    ("bridged-adapter-1", "vbox-nic-nat", "bridged",
     [["modifyvm", VM, "--nic1", "bridged", "--bridge-adapter1", "eth0"]],
     [["modifyvm", VM, "--nic1", "nat"]]),
    ("no-adapter-2", "vbox-nic-private", "disabled",
     [["modifyvm", VM, "--nic2", "none"]],
     [["modifyvm", VM, "--nic2", "intnet", "--intnet2", "labnet"]]),
    ("nat-network-adapter-2", "vbox-nic-private", "NAT Network",
     [["modifyvm", VM, "--nic2", "natnetwork", "--nat-network2", "NatNetwork"]],
     [["modifyvm", VM, "--nic2", "intnet", "--intnet2", "labnet"]]),
    ("no-snapshot", "vbox-snapshot", "no snapshot",
     [["snapshot", VM, "delete", "installation propre"]],
     [["snapshot", VM, "take", "installation propre", "--description", "après l'installation"]]),
]


@pytest.mark.parametrize("name,oid,says,breaks,restores", BREAKS, ids=[b[0] for b in BREAKS])
def test_each_objective_broken_alone_with_the_real_tool_fails_alone(solved, on_path, name, oid,
                                                                     says, breaks, restores):
    learner, _ = solved
    vb = on_path
    good = statuses(check("06", user=learner, lang="en"))
    assert all(good[o] == "pass" for o in VM_IDS), good
    try:
        for cmd in breaks:
            vb.ok(learner, *cmd)
        report = check("06", user=learner, lang="en")
        st = statuses(report)
        changed = {k for k in st if st[k] != good[k]}
        assert changed == {oid}, {k: result(report, k).message for k in changed}
        r = result(report, oid)
        assert r.status == "fail" and r.earned == 0 and says in r.message, r.message
        assert r.hint
    finally:
        for cmd in restores:
            vb.ok(learner, *cmd)


def test_a_vmdk_disk_made_with_the_real_tool_fails_only_the_disk(real_vbox, vboxusers, on_path):
    learner = _new_learner()
    try:
        vb = on_path
        vb.ok(learner, "createvm", "--name", VM, "--ostype", "Debian_64", "--register")
        vb.ok(learner, "modifyvm", VM, "--memory", "1024", "--cpus", "1", "--nic1", "nat",
              "--nic2", "intnet", "--intnet2", "labnet")
        disk = f"/home/{learner}/VirtualBox VMs/{VM}/{VM}.vmdk"
        vb.ok(learner, "createmedium", "disk", "--filename", disk, "--size", "64", "--format",
              "VMDK")
        vb.ok(learner, "storagectl", VM, "--name", "SATA", "--add", "sata")
        vb.ok(learner, "storageattach", VM, "--storagectl", "SATA", "--port", "0", "--device",
              "0", "--type", "hdd", "--medium", disk)
        report = check("06", user=learner, lang="en")
        st = statuses(report)
        why = {o.id: (o.status, o.message) for o in report.objectives}
        assert (st["vbox-vm-disk"] == "fail"
                and "vmdk" in result(report, "vbox-vm-disk").message), why
        assert st["vbox-snapshot"] == "fail", why  # none taken
        assert all(st[o] == "pass" for o in VM_IDS
                   if o not in ("vbox-vm-disk", "vbox-snapshot")), why
        # and a VM that does not exist at all: every VM objective fails, none crashes
        vb.ok(learner, "unregistervm", VM, "--delete")
        report = check("06", user=learner, lang="en")
        for oid in VM_IDS:
            r = result(report, oid)
            assert r.status == "fail" and VM in r.message, (oid, r.status, r.message)
    finally:
        assert _drop_learner(learner) == []


# --- hostile names and descriptions, made with the real tool -------------------------------

HOSTILE_NAMES = ['debian-vbox"\n{evil}', 'a\\b "c" $(touch /tmp/virtlab-pwned) é',
                 "<script>alert(1)</script>", "Debian-VBox"]


def test_hostile_vm_names_made_with_the_real_tool(real_vbox, vboxusers, on_path):
    learner = _new_learner()
    try:
        vb = on_path
        for n in HOSTILE_NAMES:
            vb.ok(learner, "createvm", "--name", n, "--ostype", "Debian_64", "--register")
        report = check("06", user=learner, lang="en")
        created = result(report, "vbox-vm-created")
        assert created.status == "fail", (created.status, created.message, created.evidence)
        assert sorted(created.evidence["registered_vms"]) == sorted(HOSTILE_NAMES), created.evidence
        assert "Debian-VBox" in created.message and "--name debian-vbox" in created.message
        for oid in VM_IDS[1:]:
            r = result(report, oid)
            assert r.status == "fail", (oid, r.status, r.message)
        assert not Path("/tmp/virtlab-pwned").exists()
        html = render(report, "html")
        assert "<script>alert(1)</script>" not in html
        json.loads(report.to_json())
        text = render(report, "text")
        assert "\x1b" not in text
    finally:
        assert _drop_learner(learner) == []


def test_hostile_description_snapshot_and_network_names_inside_the_good_vm(solved, on_path):
    learner, _ = solved
    vb = on_path
    desc = 'ligne 1\n"ligne 2" \\ C:\\temp\nname="pirate" $(id) é'
    snap = 'avant "mise à jour" \\o/ $(id)'
    net = 'lab "net" \\1 é'
    try:
        vb.ok(learner, "modifyvm", VM, "--description", desc, "--intnet2", net)
        vb.ok(learner, "snapshot", VM, "take", snap, "--description", 'multi\nligne "d"')
        report = check("06", user=learner, lang="en")
        assert all(result(report, oid).status == "pass" for oid in VM_IDS)
        assert result(report, "vbox-vm-created").evidence["vm"] == VM
        assert (result(report, "vbox-snapshot").evidence["snapshots"]
                == ["installation propre", snap])
        assert result(report, "vbox-nic-private").evidence["network"] == net
        from checker.engine import get_host
        from checker.probes.learner import Learner
        from checker.probes.vbox import VBox
        vm = VBox(Learner(get_host("local://"), learner)).vm(VM)
        assert vm.description == desc and vm.name == VM
    finally:
        vb.ok(learner, "snapshot", VM, "delete", snap)
        vb.ok(learner, "modifyvm", VM, "--description", "", "--intnet2", "labnet")


def test_no_vboxsvc_is_left_by_a_check(solved, on_path):
    learner, _ = solved
    check("06", user=learner, lang="en")
    assert vbox_real.processes_of(learner) == []


def test_a_vboxsvc_that_cannot_start_is_an_error_with_the_real_message(real_vbox, vboxusers,
                                                                       on_path):
    """~/.config/VirtualBox is a file: the real VBoxSVC cannot start (its real message)."""
    learner = _new_learner()
    try:
        cfg = Path(os.path.expanduser(f"~{learner}")) / ".config"
        cfg.mkdir()
        (cfg / "VirtualBox").write_text("not a folder\n")
        subprocess.run(["chown", "-R", f"{learner}:", str(cfg)], check=True)
        report = check("06", user=learner, lang="en")
        assert result(report, "vbox-installed").status == "pass"  # --version needs no VBoxSVC
        for oid in VM_IDS:
            r = result(report, oid)
            assert r.status == "error", (oid, r.status, r.message)
            assert "exit 1" in r.message and "VBoxSVC.log" in r.message
            assert "COM server is not running" in r.message
    finally:
        assert _drop_learner(learner) == []


@pytest.mark.parametrize("ostype,shown", [("Debian12_64", "Debian 12 Bookworm (64-bit)"),
                                          ("Debian13_64", "Debian 13 Trixie (64-bit)")])
def test_the_release_specific_debian_types_of_the_real_tool_pass(solved, on_path, ostype, shown):
    learner, _ = solved
    vb = on_path
    try:
        vb.ok(learner, "modifyvm", VM, "--ostype", ostype)
        r = result(check("06", user=learner, lang="en", only=["vbox-vm-created"]),
                   "vbox-vm-created")
        assert r.status == "pass" and r.evidence["ostype"] == shown, r.message
    finally:
        vb.ok(learner, "modifyvm", VM, "--ostype", "Debian_64")
