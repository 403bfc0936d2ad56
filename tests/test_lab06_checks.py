"""Lab 06-virtualbox: does each check pass on a correct setup and fail on exactly its fault?

VirtualBox cannot be installed on the test machines. ``VBoxManage`` is replaced here by a
test stand-in (``tests/fixtures/vbox/bin/VBoxManage``) that prints RECORDED-FORMAT outputs
of VBoxManage 7.0 for a scenario (``tests/fixtures/vbox/good.json`` and variants): it is
NOT a live VirtualBox. Everything else is real: the checks run through the real engine, as
a real learner created for the test (``useradd``, group ``vboxusers``) through ``runuser``
and ``timeout``; APT sources and keyrings are real files in a temp root
(``VIRTLAB_APT_ROOT``); the ``vboxdrv`` objective reads this machine's real
``/proc/modules`` and ``/sys/module``, and its real outcome here is asserted.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from checker.engine import check
from checker.reporters import render

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "tests" / "fixtures" / "vbox"
GOOD = json.loads((FIX / "good.json").read_text(encoding="utf-8"))
ORACLE_LIST = ("deb [arch=amd64 signed-by=/usr/share/keyrings/oracle-virtualbox-2016.gpg] "
               "https://download.virtualbox.org/virtualbox/debian bookworm contrib\n")
VBOX_IDS = ("vbox-installed", "vbox-vm-created", "vbox-vm-resources", "vbox-vm-disk",
            "vbox-nic-nat", "vbox-nic-private", "vbox-snapshot")

pytestmark = pytest.mark.integration


def _need_root() -> None:
    if os.geteuid() != 0:
        msg = "needs root: creates a real learner (useradd) and group vboxusers (groupadd)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _group_exists(name: str) -> bool:
    return subprocess.run(["getent", "group", name], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def fake_vbox_bin():
    """The stand-in, copied where any user may run it (the learner runs it via runuser)."""
    d = Path(tempfile.mkdtemp(prefix="virtlab-fakevbox-"))
    os.chmod(d, 0o755)
    (d / "bin").mkdir(mode=0o755)
    shutil.copy(FIX / "bin" / "VBoxManage", d / "bin" / "VBoxManage")
    shutil.copy(FIX / "vboxfmt.py", d / "vboxfmt.py")
    os.chmod(d / "bin" / "VBoxManage", 0o755)
    os.chmod(d / "vboxfmt.py", 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def vboxusers_group():
    _need_root()
    created = not _group_exists("vboxusers")
    if created:
        _sh("groupadd", "--system", "vboxusers")
    yield "vboxusers"
    if created:
        subprocess.run(["groupdel", "vboxusers"], capture_output=True)


def _make_user(groups: list[str]) -> str:
    name = "vl06-" + uuid.uuid4().hex[:8]
    args = ["useradd", "-m", "-s", "/bin/sh"]
    if groups:
        args += ["-G", ",".join(groups)]
    _sh(*args, name)
    return name


@pytest.fixture(scope="module")
def learner(vboxusers_group):
    """A real learner, member of vboxusers; deleted after the module."""
    name = _make_user([vboxusers_group])
    yield name
    subprocess.run(["userdel", "-r", name], capture_output=True)


@pytest.fixture
def outsider(vboxusers_group):
    name = _make_user([])
    yield name
    subprocess.run(["userdel", "-r", name], capture_output=True)


class Scene:
    """One scenario: the stand-in's JSON (readable by the learner) and an APT root."""

    def __init__(self, bin_dir: Path, monkeypatch: pytest.MonkeyPatch):
        self.dir = Path(tempfile.mkdtemp(prefix="virtlab-vbox-scene-"))
        os.chmod(self.dir, 0o755)
        self.data = copy.deepcopy(GOOD)
        self.apt = self.dir / "apt-root"
        self.bin_dir = bin_dir
        self.mp = monkeypatch
        self.oracle_apt()
        monkeypatch.setenv("PATH", f"{bin_dir / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        monkeypatch.setenv("VIRTLAB_APT_ROOT", str(self.apt))
        monkeypatch.delenv("VIRTLAB_VBOX_TIMEOUT", raising=False)

    @property
    def vm(self) -> dict:
        return self.data["vms"][0]

    def file(self, rel: str, content: str | bytes) -> Path:
        p = self.apt / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
        return p

    def oracle_apt(self) -> None:
        """Oracle's repository as the lab teaches it: keyring + signed-by=."""
        if self.apt.exists():
            shutil.rmtree(self.apt)
        self.file("etc/apt/sources.list",
                  "deb http://deb.debian.org/debian bookworm main\n"
                  "deb http://deb.debian.org/debian-security bookworm-security main\n")
        self.file("etc/apt/sources.list.d/virtualbox.list", ORACLE_LIST)
        self.file("usr/share/keyrings/oracle-virtualbox-2016.gpg",
                  (FIX / "test-oracle-uid.gpg").read_bytes())
        # another vendor's key in trusted.gpg.d must not count against the learner
        self.file("etc/apt/trusted.gpg.d/other-vendor.gpg", (FIX / "test-other-vendor.gpg").read_bytes())

    def run(self, user: str, **kw):
        path = self.dir / "scenario.json"
        path.write_text(json.dumps(self.data, ensure_ascii=False), encoding="utf-8")
        os.chmod(path, 0o644)
        self.mp.setenv("VIRTLAB_FAKE_VBOX_SCENARIO", str(path))
        return check("06", user=user, lang="en", **kw)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def scene(fake_vbox_bin, learner, monkeypatch):
    s = Scene(fake_vbox_bin, monkeypatch)
    yield s
    s.close()


def statuses(report) -> dict[str, str]:
    return {o.id: o.status for o in report.objectives}


def result(report, oid):
    return next(o for o in report.objectives if o.id == oid)


def vboxdrv_really_loaded() -> bool:
    try:
        with open("/proc/modules", encoding="utf-8") as f:
            if any(line.split()[0] == "vboxdrv" for line in f if line.strip()):
                return True
    except OSError:
        pass
    return os.path.isdir("/sys/module/vboxdrv")


# --- the correct setup -------------------------------------------------------------------

def test_good_setup_passes_everything_but_what_this_host_cannot_have(scene, learner):
    report = scene.run(learner)
    st = statuses(report)
    drv = st.pop("vbox-kernel-driver")
    assert set(st.values()) == {"pass"}, {o.id: o.message for o in report.objectives if o.status != "pass"}
    # vboxdrv: the real outcome on this machine (VirtualBox's module cannot be loaded here)
    r = result(report, "vbox-kernel-driver")
    if vboxdrv_really_loaded():
        assert drv == "pass"
    else:
        assert drv == "fail"
        assert "KVM" in r.hint and "modprobe -r kvm_intel" in r.hint
        assert "vboxdrv" in r.message
    assert report.user == learner
    assert result(report, "vbox-installed").evidence["version"] == "7.0.14r161095"
    assert result(report, "vbox-vm-created").evidence["ostype"] == "Debian (64-bit)"
    assert result(report, "vbox-nic-private").evidence["network"] == "vboxnet0"
    assert result(report, "vbox-snapshot").evidence["snapshots"] == ["installation propre"]


# --- each objective broken alone -------------------------------------------------------------

def _old_version(s):
    s.data["version"] = "6.1.50r161033"


def _ubuntu(s):
    s.vm["ostype_id"] = "Ubuntu_64"


def _small_memory(s):
    s.vm["memory"] = 512


def _too_many_cpus(s):
    s.vm["cpus"] = max(8, (os.cpu_count() or 1) + 1)


def _host_keeps_too_little(s):
    with open("/proc/meminfo") as f:
        total_mib = int(f.readline().split()[1]) // 1024
    s.vm["memory"] = total_mib - 1024  # plenty for the VM, 1 GiB left to the host


def _vmdk(s):
    att = s.vm["controllers"][0]["attachments"][0]
    att["medium"] = att["medium"].replace(".vdi", ".vmdk")


def _bridged(s):
    s.vm["nics"][0] = {"attachment": "bridged", "network": "eth0"}


def _no_adapter2(s):
    del s.vm["nics"][1]


def _no_snapshot(s):
    s.vm["snapshots"] = []
    s.vm.pop("current_snapshot", None)
    s.vm["controllers"][0]["attachments"][0]["medium"] = "/home/learner/VirtualBox VMs/debian-vbox/debian-vbox.vdi"


def _apt_key(s):
    # what `wget … | sudo apt-key add -` leaves: the key appended to /etc/apt/trusted.gpg
    s.file("etc/apt/trusted.gpg", (FIX / "test-other-vendor.gpg").read_bytes()
           + (FIX / "test-oracle-uid.gpg").read_bytes())


def _no_source(s):
    (s.apt / "etc/apt/sources.list.d/virtualbox.list").unlink()


BROKEN = [
    ("virtualbox-6.1", _old_version, "vbox-installed", "6.1.50"),
    ("ubuntu-type", _ubuntu, "vbox-vm-created", "Ubuntu (64-bit)"),
    ("512-mib", _small_memory, "vbox-vm-resources", "512 MiB"),
    ("too-many-vcpus", _too_many_cpus, "vbox-vm-resources", "vCPUs for"),
    ("host-keeps-too-little", _host_keeps_too_little, "vbox-vm-resources", "the host would keep only 1.0 GiB"),
    ("vmdk-disk", _vmdk, "vbox-vm-disk", "vmdk"),
    ("bridged-adapter-1", _bridged, "vbox-nic-nat", "bridged"),
    ("no-adapter-2", _no_adapter2, "vbox-nic-private", "disabled"),
    ("no-snapshot", _no_snapshot, "vbox-snapshot", "no snapshot"),
    ("apt-key-keyring", _apt_key, "vbox-source", "apt-key"),
    ("no-source", _no_source, "vbox-source", "No APT source"),
]


@pytest.mark.parametrize("name,breaks,oid,says", BROKEN, ids=[b[0] for b in BROKEN])
def test_each_fault_fails_exactly_its_objective(scene, learner, name, breaks, oid, says):
    good = statuses(scene.run(learner))
    breaks(scene)
    report = scene.run(learner)
    st = statuses(report)
    changed = {k for k in st if st[k] != good[k]}
    assert changed == {oid}, {k: result(report, k).message for k in changed}
    r = result(report, oid)
    assert r.status == "fail" and r.earned == 0
    assert says in r.message, r.message
    assert r.hint  # a failure always comes with its hint


def test_apt_key_fail_says_how_to_fix(scene, learner):
    scene.file("etc/apt/trusted.gpg.d/oracle_vbox_2016.gpg", (FIX / "test-oracle-uid.gpg").read_bytes())
    r = result(scene.run(learner, only=["vbox-source"]), "vbox-source")
    assert r.status == "fail"
    assert "sudo rm /etc/apt/trusted.gpg.d/oracle_vbox_2016.gpg" in r.message
    assert "signed-by=" in r.message


def test_learner_outside_vboxusers_fails_only_the_group(scene, learner, outsider):
    good = statuses(scene.run(learner))
    report = scene.run(outsider)
    st = statuses(report)
    assert {k for k in st if st[k] != good[k]} == {"user-group-vboxusers"}
    assert "usermod -aG vboxusers " + outsider in result(report, "user-group-vboxusers").message


# --- APT sources: the forms the lab teaches, and the usual mistakes ---------------------------

def _deb822_oracle(s):
    (s.apt / "etc/apt/sources.list.d/virtualbox.list").unlink()
    s.file("etc/apt/sources.list.d/virtualbox.sources",
           "Types: deb\nURIs: https://download.virtualbox.org/virtualbox/debian\n"
           "Suites: bookworm\nComponents: contrib\nArchitectures: amd64\n"
           "Signed-By: /usr/share/keyrings/oracle-virtualbox-2016.gpg\n")


def _deb822_inline(s):
    (s.apt / "etc/apt/sources.list.d/virtualbox.list").unlink()
    armored = (FIX / "test-oracle-uid.asc").read_text()
    inline = "\n".join(" " + (x if x.strip() else ".") for x in armored.splitlines())
    s.file("etc/apt/sources.list.d/virtualbox.sources",
           "Types: deb\nURIs: https://download.virtualbox.org/virtualbox/debian\n"
           f"Suites: bookworm\nComponents: contrib\nSigned-By:\n{inline}\n")


def _fasttrack(s):
    (s.apt / "etc/apt/sources.list.d/virtualbox.list").unlink()
    s.file("etc/apt/sources.list.d/fasttrack.list",
           "deb https://fasttrack.debian.net/debian-fasttrack/ bookworm-fasttrack main contrib\n"
           "deb https://fasttrack.debian.net/debian-fasttrack/ bookworm-backports-staging main contrib\n")
    s.file("etc/apt/trusted.gpg.d/fasttrack-archive-keyring.gpg",
           (FIX / "fasttrack-archive-keyring.gpg").read_bytes())


def _asc_keyring(s):
    s.file("usr/share/keyrings/oracle-virtualbox-2016.asc", (FIX / "test-oracle-uid.asc").read_text())
    s.file("etc/apt/sources.list.d/virtualbox.list",
           ORACLE_LIST.replace("oracle-virtualbox-2016.gpg", "oracle-virtualbox-2016.asc"))


GOOD_SOURCES = [("deb822", _deb822_oracle), ("deb822-inline-key", _deb822_inline),
                ("fasttrack", _fasttrack), ("asc-keyring", _asc_keyring)]


@pytest.mark.parametrize("name,setup", GOOD_SOURCES, ids=[g[0] for g in GOOD_SOURCES])
def test_trusted_source_forms_pass(scene, learner, name, setup):
    setup(scene)
    r = result(scene.run(learner, only=["vbox-source"]), "vbox-source")
    assert r.status == "pass", r.message


def _no_signed_by(s):
    s.file("etc/apt/sources.list.d/virtualbox.list",
           "deb [arch=amd64] https://download.virtualbox.org/virtualbox/debian bookworm contrib\n")


def _keyring_missing(s):
    (s.apt / "usr/share/keyrings/oracle-virtualbox-2016.gpg").unlink()


def _armored_in_gpg(s):
    # `wget -O /usr/share/keyrings/oracle-virtualbox-2016.gpg …/oracle_vbox_2016.asc` without --dearmor
    s.file("usr/share/keyrings/oracle-virtualbox-2016.gpg", (FIX / "test-oracle-uid.asc").read_text())


def _wrong_key(s):
    s.file("usr/share/keyrings/oracle-virtualbox-2016.gpg", (FIX / "test-other-vendor.gpg").read_bytes())


def _commented_out(s):
    s.file("etc/apt/sources.list.d/virtualbox.list", "# " + ORACLE_LIST)


def _deb822_disabled(s):
    _deb822_oracle(s)
    p = s.apt / "etc/apt/sources.list.d/virtualbox.sources"
    p.write_text(p.read_text() + "Enabled: no\n")


def _fasttrack_without_key(s):
    _fasttrack(s)
    (s.apt / "etc/apt/trusted.gpg.d/fasttrack-archive-keyring.gpg").unlink()


BAD_SOURCES = [("no-signed-by", _no_signed_by, "no signed-by="),
               ("keyring-missing", _keyring_missing, "does not exist"),
               ("armored-key-named-gpg", _armored_in_gpg, "gpg --dearmor"),
               ("wrong-key", _wrong_key, "does not hold Oracle's key"),
               ("commented-out", _commented_out, "No APT source"),
               ("deb822-enabled-no", _deb822_disabled, "No APT source"),
               ("fasttrack-without-key", _fasttrack_without_key, "fasttrack-archive-keyring")]


@pytest.mark.parametrize("name,setup,says", BAD_SOURCES, ids=[b[0] for b in BAD_SOURCES])
def test_untrusted_source_forms_fail(scene, learner, name, setup, says):
    setup(scene)
    r = result(scene.run(learner, only=["vbox-source"]), "vbox-source")
    assert r.status == "fail" and says in r.message, r.message


# --- bad input from VBoxManage -------------------------------------------------------------

def test_vboxmanage_missing(scene, learner, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
    report = scene.run(learner)
    inst = result(report, "vbox-installed")
    assert inst.status == "fail" and "not installed" in inst.message
    assert "virtualbox-7.0" in inst.hint
    for oid in VBOX_IDS[1:]:
        r = result(report, oid)
        assert r.status == "error" and "VBoxManage not found" in r.message, (oid, r.message)
    assert result(report, "vbox-source").status == "pass"
    assert result(report, "user-group-vboxusers").status == "pass"


def _fake_processes(marker: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if marker in (p / "cmdline").read_bytes().decode("utf-8", "replace"):
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def test_vboxmanage_hanging_is_bounded_and_reported(scene, learner, monkeypatch, fake_vbox_bin):
    scene.data["behaviour"] = {"*": "hang"}
    monkeypatch.setenv("VIRTLAB_VBOX_TIMEOUT", "1")
    t0 = time.monotonic()
    report = scene.run(learner)
    elapsed = time.monotonic() - t0
    # one timeout for the whole run: after the first hang nothing else waits
    assert elapsed < 6, elapsed
    for oid in VBOX_IDS:
        r = result(report, oid)
        assert r.status == "error" and "did not answer within 1 s" in r.message, (oid, r.message)
        assert "VBoxSVC" in r.message
    assert _fake_processes(str(fake_vbox_bin)) == []  # timeout ended the stand-in


def test_vboxmanage_failing_service(scene, learner):
    scene.data["behaviour"] = {"showvminfo": "fail", "snapshot": "fail", "list": "fail"}
    report = scene.run(learner)
    assert result(report, "vbox-installed").status == "pass"
    for oid in VBOX_IDS[1:]:
        r = result(report, oid)
        assert r.status == "error", (oid, r.status)
        assert "exit 1" in r.message and "VBoxSVC.log" in r.message
        assert "COM server is not running" in r.message


def test_vboxmanage_printing_garbage(scene, learner):
    scene.data["behaviour"] = {"showvminfo": "garbage", "--version": "garbage"}
    report = scene.run(learner)
    inst = result(report, "vbox-installed")
    assert inst.status == "error" and "no readable version" in inst.message
    for oid in VBOX_IDS[1:]:
        r = result(report, oid)
        assert r.status == "error" and "machine-readable format" in r.message, (oid, r.message)


def test_hostile_vm_names_are_reported_not_crashing(scene, learner):
    hostile = ['debian-vbox"\n{evil}', "<script>alert(1)</script>", "Debian-VBox"]
    scene.data["vms"] = [dict(copy.deepcopy(GOOD["vms"][0]), name=n,
                              uuid=f"0000000{i}-0000-4000-8000-000000000000")
                         for i, n in enumerate(hostile)]
    report = scene.run(learner)
    created = result(report, "vbox-vm-created")
    assert created.status == "fail"
    assert created.evidence["registered_vms"] == hostile
    assert "Debian-VBox" in created.message and "--name debian-vbox" in created.message
    for oid in VBOX_IDS[2:]:
        assert result(report, oid).status == "fail"
    html = render(report, "html")
    assert "<script>alert(1)</script>" not in html
    json.loads(report.to_json())


def test_hostile_values_inside_the_good_vm(scene, learner):
    scene.vm["description"] = 'ligne 1\n"ligne 2" \\ C:\\temp\nname="pirate"'
    scene.vm["snapshots"][0]["name"] = 'avant "mise à jour" \\o/'
    scene.vm["nics"][1] = {"attachment": "intnet", "network": 'lab "net" 1'}
    report = scene.run(learner)
    st = statuses(report)
    st.pop("vbox-kernel-driver")
    assert set(st.values()) == {"pass"}
    assert result(report, "vbox-snapshot").evidence["snapshots"] == ['avant "mise à jour" \\o/']
    assert result(report, "vbox-nic-private").evidence["network"] == 'lab "net" 1'
    assert result(report, "vbox-vm-created").evidence["vm"] == "debian-vbox"


def test_unknown_learner_is_an_error_not_a_crash(scene):
    report = scene.run("vl06-nobody-" + uuid.uuid4().hex[:6])
    assert result(report, "user-group-vboxusers").status == "error"
    for oid in VBOX_IDS:
        r = result(report, oid)
        assert r.status in ("error", "fail") and "Could not evaluate" not in r.message, (oid, r.message)


# --- the real machine, through the command line -----------------------------------------------

def test_cli_on_this_machine_without_virtualbox():
    # this machine as it is: no stand-in, no temp APT root (VIRTLAB_DATA, the tests'
    # private progress store, stays)
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTLAB_APT_ROOT", "VIRTLAB_FAKE_VBOX_SCENARIO", "VIRTLAB_VBOX_TIMEOUT")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    assert shutil.which("VBoxManage", path=env["PATH"]) is None, "VirtualBox is installed here"
    p = subprocess.run([sys.executable, "-m", "checker", "check", "06", "--format", "json",
                        "--lang", "en"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode == 1, (p.returncode, p.stderr)
    data = json.loads(p.stdout)
    inst = next(o for o in data["objectives"] if o["id"] == "vbox-installed")
    assert inst["status"] == "fail"
    assert "virtualbox-7.0" in inst["hint"] and "not installed" in inst["message"]
    assert {o["status"] for o in data["objectives"]} <= {"pass", "fail", "error", "skip"}
    text = subprocess.run([sys.executable, "-m", "checker", "check", "06", "--lang", "en"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert text.returncode == 1 and "Traceback" not in text.stderr + text.stdout
    assert "vbox-installed" in text.stdout
