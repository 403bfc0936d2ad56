"""Lab 06-virtualbox: APT sources, groups, the kernel driver, release-specific messages,
and what the real VBoxManage cannot be made to do here.

The VM objectives run against the REAL VBoxManage 7.2 in tests/test_lab06_real.py. This
file uses a stand-in (``tests/fixtures/vbox/bin/VBoxManage``) only where the real tool
cannot go: a VBoxManage that hangs, prints garbage or is older than 7.0. Everything the
stand-in prints otherwise is recorded from the real VBoxManage 7.2 (``recorded/``).
Everything else is real: the engine, a learner created for the test (``useradd``, group
``vboxusers``) through ``runuser`` and ``timeout``; APT sources and keyrings are real files
of a temp root, mounted at /etc/apt and /usr/share/keyrings for the check
(``tests/apt_sandbox.py``); ``vbox-kernel-driver`` reads this machine's real
``/proc/modules`` and ``/sys/module``, or a recorded host (Debian 12 or 13, kernel 6.1 or
6.12) read through the same host probe.
"""

from __future__ import annotations

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
from apt_sandbox import check_with_apt

from checker.catalog import resolve
from checker.engine import Fixtures, get_host, load_checks, run_objective
from checker.probes.host import HostFacts
from checker.probes.learner import Learner
from checker.probes.libvirt import Virt

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "tests" / "fixtures" / "vbox"
ORACLE_KEYRING = "etc/apt/keyrings/oracle-virtualbox-2016.gpg"
ORACLE_LIST = ("deb [arch=amd64 signed-by=/etc/apt/keyrings/oracle-virtualbox-2016.gpg] "
               "https://download.virtualbox.org/virtualbox/debian trixie contrib\n")
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
    shutil.copytree(FIX / "recorded", d / "recorded")
    os.chmod(d / "bin" / "VBoxManage", 0o755)
    os.chmod(d / "recorded", 0o755)
    for f in (d / "recorded").iterdir():
        os.chmod(f, 0o644)
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
        self.data: dict = {"behaviour": {}}
        self.apt = self.dir / "apt-root"
        self.bin_dir = bin_dir
        self.mp = monkeypatch
        self.oracle_apt()
        monkeypatch.setenv("PATH",
                           f"{bin_dir / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        monkeypatch.delenv("VIRTLAB_VBOX_TIMEOUT", raising=False)

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
        self.file(ORACLE_KEYRING, (FIX / "test-oracle-uid.gpg").read_bytes())
        # another vendor's key in trusted.gpg.d must not count against the learner
        self.file("etc/apt/trusted.gpg.d/other-vendor.gpg",
                  (FIX / "test-other-vendor.gpg").read_bytes())

    def run(self, user: str, **kw):
        path = self.dir / "scenario.json"
        path.write_text(json.dumps(self.data, ensure_ascii=False), encoding="utf-8")
        os.chmod(path, 0o644)
        self.mp.setenv("VIRTLAB_FAKE_VBOX_SCENARIO", str(path))
        return check_with_apt(self.apt, "06", user=user, lang="en", **kw)

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


# --- the stand-in replays the real tool; what only it can do -----------------------------

def test_the_stand_in_replays_the_recorded_solved_vm(scene, learner):
    report = scene.run(learner)
    st = statuses(report)
    assert all(st[o] == "pass" for o in VBOX_IDS), {o: result(report, o).message for o in VBOX_IDS}
    assert result(report, "vbox-installed").evidence["version"].startswith("7.2.22_Debian")
    assert result(report, "vbox-source").status == "pass"


def test_virtualbox_older_than_7_0_fails_only_vbox_installed(scene, learner):
    good = statuses(scene.run(learner))
    scene.data["version"] = "6.1.50r161033"
    report = scene.run(learner)
    st = statuses(report)
    assert {k for k in st if st[k] != good[k]} == {"vbox-installed"}
    r = result(report, "vbox-installed")
    assert r.status == "fail" and "6.1.50" in r.message and "virtualbox-7.2" in r.message
    assert "7.0" in r.hint and "7.2" in r.hint


def test_virtualbox_7_0_passes_but_is_told_it_is_out_of_support(scene, learner):
    scene.data["version"] = "7.0.26r168464"
    r = result(scene.run(learner, only=["vbox-installed"]), "vbox-installed")
    assert r.status == "pass" and "no longer supports 7.0" in r.message


def _apt_key(s):
    # what `wget … | sudo apt-key add -` leaves: the key appended to /etc/apt/trusted.gpg
    s.file("etc/apt/trusted.gpg", (FIX / "test-other-vendor.gpg").read_bytes()
           + (FIX / "test-oracle-uid.gpg").read_bytes())


def _no_source(s):
    (s.apt / "etc/apt/sources.list.d/virtualbox.list").unlink()


@pytest.mark.parametrize("breaks,says", [(_apt_key, "apt-key"), (_no_source, "No APT source")],
                         ids=["apt-key-keyring", "no-source"])
def test_source_faults_fail_only_vbox_source(scene, learner, breaks, says):
    good = statuses(scene.run(learner))
    breaks(scene)
    report = scene.run(learner)
    st = statuses(report)
    assert {k for k in st if st[k] != good[k]} == {"vbox-source"}
    r = result(report, "vbox-source")
    assert r.status == "fail" and says in r.message and r.hint


def test_apt_key_fail_says_how_to_fix(scene, learner):
    scene.file("etc/apt/trusted.gpg.d/oracle_vbox_2016.gpg",
               (FIX / "test-oracle-uid.gpg").read_bytes())
    r = result(scene.run(learner, only=["vbox-source"]), "vbox-source")
    assert r.status == "fail"
    assert "sudo rm /etc/apt/trusted.gpg.d/oracle_vbox_2016.gpg" in r.message
    assert "signed-by=" in r.message


def test_learner_outside_vboxusers_fails_only_the_group(scene, learner, outsider):
    assert result(scene.run(learner, only=["user-group-vboxusers"]),
                  "user-group-vboxusers").status == "pass"
    r = result(scene.run(outsider, only=["user-group-vboxusers"]), "user-group-vboxusers")
    assert r.status == "fail" and "usermod -aG vboxusers " + outsider in r.message


# --- APT sources: the forms the lab teaches, and the usual mistakes ---------------------------

def _deb822_oracle(s):
    (s.apt / "etc/apt/sources.list.d/virtualbox.list").unlink()
    s.file("etc/apt/sources.list.d/virtualbox.sources",
           "Types: deb\nURIs: https://download.virtualbox.org/virtualbox/debian\n"
           "Suites: trixie\nComponents: contrib\nArchitectures: amd64\n"
           "Signed-By: /etc/apt/keyrings/oracle-virtualbox-2016.gpg\n")


def _deb822_inline(s):
    (s.apt / "etc/apt/sources.list.d/virtualbox.list").unlink()
    armored = (FIX / "test-oracle-uid.asc").read_text()
    inline = "\n".join(" " + (x if x.strip() else ".") for x in armored.splitlines())
    s.file("etc/apt/sources.list.d/virtualbox.sources",
           "Types: deb\nURIs: https://download.virtualbox.org/virtualbox/debian\n"
           f"Suites: bookworm\nComponents: contrib\nSigned-By:\n{inline}\n")


def _usr_share_keyrings(s):
    # the older advice (a keyring where packages keep theirs): still accepted
    s.file("usr/share/keyrings/oracle-virtualbox-2016.gpg",
           (FIX / "test-oracle-uid.gpg").read_bytes())
    (s.apt / ORACLE_KEYRING).unlink()
    s.file("etc/apt/sources.list.d/virtualbox.list",
           ORACLE_LIST.replace("/etc/apt/keyrings/", "/usr/share/keyrings/")
           .replace("trixie", "bookworm"))


def _fasttrack_trixie(s):
    # Debian 13's fasttrack-archive-keyring keeps its key in /usr/share/keyrings: signed-by=
    (s.apt / "etc/apt/sources.list.d/virtualbox.list").unlink()
    s.file("etc/apt/sources.list.d/fasttrack.sources",
           "Types: deb\nURIs: https://fasttrack.debian.net/debian-fasttrack/\n"
           "Suites: trixie-fasttrack trixie-backports-staging\nComponents: main contrib\n"
           "Signed-By: /usr/share/keyrings/fasttrack-archive-keyring.gpg\n")
    s.file("usr/share/keyrings/fasttrack-archive-keyring.gpg",
           (FIX / "fasttrack-archive-keyring.gpg").read_bytes())


def _fasttrack(s):
    (s.apt / "etc/apt/sources.list.d/virtualbox.list").unlink()
    s.file("etc/apt/sources.list.d/fasttrack.list",
           "deb https://fasttrack.debian.net/debian-fasttrack/ bookworm-fasttrack main contrib\n"
           "deb https://fasttrack.debian.net/debian-fasttrack/ bookworm-backports-staging main "
           "contrib\n")
    s.file("etc/apt/trusted.gpg.d/fasttrack-archive-keyring.gpg",
           (FIX / "fasttrack-archive-keyring.gpg").read_bytes())


def _asc_keyring(s):
    s.file("etc/apt/keyrings/oracle-virtualbox-2016.asc", (FIX / "test-oracle-uid.asc").read_text())
    s.file("etc/apt/sources.list.d/virtualbox.list",
           ORACLE_LIST.replace("oracle-virtualbox-2016.gpg", "oracle-virtualbox-2016.asc"))


GOOD_SOURCES = [("deb822", _deb822_oracle), ("deb822-inline-key", _deb822_inline),
                ("usr-share-keyrings", _usr_share_keyrings),
                ("fasttrack-bookworm-package-key", _fasttrack),
                ("fasttrack-trixie-signed-by", _fasttrack_trixie), ("asc-keyring", _asc_keyring)]


@pytest.mark.parametrize("name,setup", GOOD_SOURCES, ids=[g[0] for g in GOOD_SOURCES])
def test_trusted_source_forms_pass(scene, learner, name, setup):
    setup(scene)
    r = result(scene.run(learner, only=["vbox-source"]), "vbox-source")
    assert r.status == "pass", r.message


def _no_signed_by(s):
    s.file("etc/apt/sources.list.d/virtualbox.list",
           "deb [arch=amd64] https://download.virtualbox.org/virtualbox/debian bookworm contrib\n")


def _keyring_missing(s):
    (s.apt / ORACLE_KEYRING).unlink()


def _armored_in_gpg(s):
    # `wget -O /usr/share/keyrings/oracle-virtualbox-2016.gpg …/oracle_vbox_2016.asc` without
    # --dearmor
    s.file(ORACLE_KEYRING, (FIX / "test-oracle-uid.asc").read_text())


def _wrong_key(s):
    s.file(ORACLE_KEYRING, (FIX / "test-other-vendor.gpg").read_bytes())


def _commented_out(s):
    s.file("etc/apt/sources.list.d/virtualbox.list", "# " + ORACLE_LIST)


def _deb822_disabled(s):
    _deb822_oracle(s)
    p = s.apt / "etc/apt/sources.list.d/virtualbox.sources"
    p.write_text(p.read_text() + "Enabled: no\n")


def _fasttrack_without_key(s):
    _fasttrack(s)
    (s.apt / "etc/apt/trusted.gpg.d/fasttrack-archive-keyring.gpg").unlink()


def _fasttrack_trixie_without_signed_by(s):
    _fasttrack_trixie(s)
    p = s.apt / "etc/apt/sources.list.d/fasttrack.sources"
    p.write_text("".join(x for x in p.read_text().splitlines(True)
                         if not x.startswith("Signed-By")))


BAD_SOURCES = [("no-signed-by", _no_signed_by, "no signed-by="),
               ("keyring-missing", _keyring_missing, "does not exist"),
               ("armored-key-named-gpg", _armored_in_gpg, "gpg --dearmor"),
               ("wrong-key", _wrong_key, "does not hold Oracle's key"),
               ("commented-out", _commented_out, "No APT source"),
               ("deb822-enabled-no", _deb822_disabled, "No APT source"),
               ("fasttrack-without-key", _fasttrack_without_key, "fasttrack-archive-keyring"),
               ("fasttrack-trixie-without-signed-by", _fasttrack_trixie_without_signed_by,
                "add [signed-by=/usr/share/keyrings/fasttrack-archive-keyring.gpg]")]


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
    assert "virtualbox-7.2" in inst.hint and "virtualbox-7.2" in inst.message
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


def test_vboxmanage_printing_garbage(scene, learner):
    scene.data["behaviour"] = {"showvminfo": "garbage", "--version": "garbage"}
    report = scene.run(learner)
    inst = result(report, "vbox-installed")
    assert inst.status == "error" and "no readable version" in inst.message
    for oid in VBOX_IDS[1:]:
        r = result(report, oid)
        assert r.status == "error" and "machine-readable format" in r.message, (oid, r.message)


def test_unknown_learner_is_an_error_not_a_crash(scene):
    report = scene.run("vl06-nobody-" + uuid.uuid4().hex[:6])
    assert result(report, "user-group-vboxusers").status == "error"
    for oid in VBOX_IDS:
        r = result(report, oid)
        assert (r.status in ("error", "fail")
                and "Could not evaluate" not in r.message), (oid, r.message)


# --- the real machine, through the command line -----------------------------------------------

def test_cli_on_this_machine_without_virtualbox():
    # this machine as it is: no stand-in, no temp APT root (VIRTLAB_DATA, the tests'
    # private progress store, stays)
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTLAB_FAKE_VBOX_SCENARIO", "VIRTLAB_VBOX_TIMEOUT")}
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
    assert "virtualbox-7.2" in inst["hint"] and "not installed" in inst["message"]
    assert {o["status"] for o in data["objectives"]} <= {"pass", "fail", "error", "skip"}
    text = subprocess.run([sys.executable, "-m", "checker", "check", "06", "--lang", "en"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert text.returncode == 1 and "Traceback" not in text.stderr + text.stdout
    assert "vbox-installed" in text.stdout


# --- messages for the learner's release and kernel (recorded hosts) -----------------------------

OS_RELEASE = FIX / "os-release"  # base-files' /usr/lib/os-release of Debian 12 and 13
KERNELS = {"bookworm": "6.1.0-41-amd64", "trixie": "6.12.57+deb13-amd64"}


def recorded_host(tmp_path: Path, release: str, kvm: str | None = "kvm_intel",
                  virt_at_load: str | None = "Y", apt: Path | None = None) -> Path:
    """A host as HostFacts(root=…) reads it: os-release, kernel release, modules, and the
    APT files of ``apt`` (a scene's APT root) when given."""
    root = tmp_path / release
    if apt is not None:
        shutil.copytree(apt, root)
    (root / "etc").mkdir(parents=True, exist_ok=True)
    shutil.copy(OS_RELEASE / release, root / "etc" / "os-release")
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text(KERNELS[release] + "\n")
    mods = ["bridge 311296 0 - Live 0x0000000000000000"]
    if kvm:
        mods = [f"{kvm} 380928 0 - Live 0x0000000000000000",
                f"kvm 1142784 1 {kvm}, Live 0x0000000000000000"] + mods
        if virt_at_load is not None:
            (root / "sys/module/kvm/parameters").mkdir(parents=True)
            (root / "sys/module/kvm/parameters/enable_virt_at_load").write_text(virt_at_load + "\n")
    (root / "proc/modules").write_text("\n".join(mods) + "\n")
    return root


def run_on(root: Path, oid: str, user: str, lang: str = "en"):
    lab = resolve("06")
    host = get_host("local://")
    fx = Fixtures(lab, host, Virt("qemu:///system"), Learner(host, user))
    fx.values["facts"] = HostFacts(host, root=root)
    return run_objective(lab, oid, load_checks(lab)[oid], fx, lang)


@pytest.mark.parametrize("release,number", [("trixie", "13"), ("bookworm", "12")])
def test_no_source_names_the_learners_release(scene, learner, tmp_path, release, number):
    _no_source(scene)
    r = run_on(recorded_host(tmp_path, release, apt=scene.apt), "vbox-source", learner)
    assert r.status == "fail" and r.evidence["release"] == release
    assert f"Debian {number}'s archive" in r.message
    assert f"/virtualbox/debian {release} contrib" in r.message
    assert "signed-by=/etc/apt/keyrings/oracle-virtualbox-2016.gpg" in r.message
    fr = run_on(recorded_host(tmp_path / "fr", release, apt=scene.apt), "vbox-source", learner,
                lang="fr")
    assert f"l'archive de Debian {number}" in fr.message


@pytest.mark.parametrize("release,fix", [
    ("trixie", "sudo gpg --no-default-keyring --keyring /etc/apt/trusted.gpg"),
    ("bookworm", "sudo apt-key --keyring /etc/apt/trusted.gpg del 2980AECF")])
def test_apt_key_fix_is_the_one_the_release_has(scene, learner, tmp_path, release, fix):
    _apt_key(scene)
    r = run_on(recorded_host(tmp_path, release, apt=scene.apt), "vbox-source", learner)
    assert r.status == "fail" and fix in r.message
    assert ("apt-key --keyring" in r.message) is (release == "bookworm")
    assert ("apt 3.0" in r.message) is (release == "trixie")
    assert "/etc/apt/keyrings/oracle-virtualbox-2016.gpg" in r.message


def test_kvm_on_kernel_6_12_names_enable_virt_at_load(tmp_path, learner):
    r = run_on(recorded_host(tmp_path, "trixie"), "vbox-kernel-driver", learner)
    assert r.status == "fail" and r.evidence["kvm_modules"] == ["kvm_intel"]
    assert r.evidence["kernel"] == "6.12" and r.evidence["kvm_enable_virt_at_load"] == "Y"
    assert "options kvm enable_virt_at_load=0" in r.message and "/etc/modprobe.d/" in r.message
    assert "enable_virt_at_load=0" in r.hint and "modprobe -r kvm_intel" in r.hint


def test_kvm_on_kernel_6_1_names_unloading_the_module(tmp_path, learner):
    r = run_on(recorded_host(tmp_path, "bookworm", kvm="kvm_amd"), "vbox-kernel-driver", learner)
    assert r.status == "fail" and r.evidence["kernel"] == "6.1"
    assert "sudo modprobe -r kvm_amd" in r.message and "enable_virt_at_load" not in r.message


def test_kvm_already_deferred_on_6_12_is_told_only_to_stop_kvm_vms(tmp_path, learner):
    r = run_on(recorded_host(tmp_path, "trixie", virt_at_load="N"), "vbox-kernel-driver", learner)
    assert "enable_virt_at_load" not in r.message and "Stop the KVM VMs" in r.message


def test_no_kvm_no_kvm_advice(tmp_path, learner):
    r = run_on(recorded_host(tmp_path, "trixie", kvm=None), "vbox-kernel-driver", learner)
    assert r.status == "fail" and "KVM" not in r.message and "modprobe vboxdrv" in r.message


def test_what_vboxmanage_prints_is_quoted_as_text(scene, learner):
    """A VBoxManage of the learner's host prints Markdown: the verdict shows its characters
    (not emphasis, code or a link) in plain text and in HTML."""
    from checker.markup import plain, to_html

    printed = "**gras** _x_ `c` [l](u) <b>"
    scene.data["behaviour"] = {"--version": "garbage"}
    scene.data["garbage"] = printed + "\n"
    inst = result(scene.run(learner), "vbox-installed")
    assert inst.status == "error", inst.message
    assert repr(printed) in plain(inst.message), inst.message
    html = str(to_html(inst.message))
    assert "<strong>" not in html and "<em>" not in html and "<a " not in html, html
    assert "**gras** _x_ `c` [l](u) &lt;b&gt;" in html, html
