"""Lab 06-virtualbox's files: the catalogue contract, the instructions, the solution."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from checker.catalog import load_lab
from checker.engine import load_checks

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "labs" / "06-virtualbox"
IDS = ["vbox-source", "vbox-installed", "vbox-kernel-driver", "user-group-vboxusers",
       "vbox-vm-created", "vbox-vm-resources", "vbox-vm-disk", "vbox-nic-nat",
       "vbox-nic-private", "vbox-snapshot"]
COMMAND_RE = re.compile(r"\b(VBoxManage|sudo|lsmod|grep|apt|modprobe|usermod|id|wget|gpg)\b")


@pytest.fixture(scope="module")
def lab():
    return load_lab(LAB)


def test_objectives_are_the_catalogue_of_labs_md(lab):
    assert [o.id for o in lab.objectives] == IDS
    labs_md = REPO.parent / "shared" / "design" / "labs.md"
    if labs_md.is_file():
        text = labs_md.read_text(encoding="utf-8")
        part = text.split("## 06-virtualbox", 1)[1].split("\n## ", 1)[0]
        assert re.findall(r"^\| ([a-z0-9-]+) \|", part, re.M)[1:] == IDS  # [0] is the header


def test_every_objective_has_points_titles_hints_and_section(lab):
    for o in lab.objectives:
        assert o.points >= 1 and o.section.startswith("8.1.")
        assert o.title.fr != o.title.en
        for h in o.hints:
            assert h.fr and h.en and h.fr != h.en
        assert COMMAND_RE.search(o.hint.fr) and COMMAND_RE.search(o.hint.en), o.id
    drv = lab.objective("vbox-kernel-driver")
    for text in (drv.hint.fr, drv.hint.en):
        assert ("KVM" in text and "modprobe -r kvm_intel" in text
                and "VERR_VMX_IN_VMX_ROOT_MODE" in text)
        # the fix for each kernel: 6.1 unloads the module, 6.12 defers VT-x
        assert "6.1" in text and "6.12" in text and "enable_virt_at_load=0" in text
    for o in (lab.objective("vbox-source"), lab.objective("vbox-installed")):
        for text in (o.hint.fr, o.hint.en, *(h.fr for h in o.hints), *(h.en for h in o.hints)):
            assert "/usr/share/keyrings/oracle" not in text and "virtualbox-7.0" not in text
    src = lab.objective("vbox-source")
    assert "/etc/apt/keyrings/oracle-virtualbox-2016.gpg" in src.hint.fr + src.hint.en
    inst = lab.objective("vbox-installed")
    assert "virtualbox-7.2" in inst.hint.en and "7.0" in inst.hint.en


def test_every_objective_has_a_check(lab):
    assert sorted(load_checks(lab)) == sorted(IDS)


TAB_13, TAB_12 = '=== "Debian 13 (trixie)"', '=== "Debian 12 (bookworm)"'


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_instructions_correct_the_course_for_debian_13_and_12(lang):
    text = (LAB / f"instructions.{lang}.md").read_text(encoding="utf-8")
    for needle in ("apt install virtualbox", "apt-key", "apt 3.0", "signed-by=",
                   "/etc/apt/keyrings/oracle-virtualbox-2016.gpg",
                   "sudo install -d -m 0755 /etc/apt/keyrings",
                   "Signed-By:", "Suites: trixie", "bookworm contrib", "virtualbox-7.2",
                   "fasttrack", "Signed-By: /usr/share/keyrings/fasttrack-archive-keyring.gpg",
                   "PUEL", "lsmod | grep kvm", "VERR_VMX_IN_VMX_ROOT_MODE",
                   "sudo modprobe -r kvm_intel", "kvm_amd", "options kvm enable_virt_at_load=0",
                   "VBoxManage createvm --name debian-vbox --ostype Debian_64 --register",
                   "--memory 2048 --cpus 2", "--nic1 nat", "--nic2 hostonly",
                   "--host-only-adapter2 vboxnet0", "hostonlyif create", "--nic2 intnet",
                   "createmedium disk", "--format VDI", "storagectl", "storageattach",
                   "snapshot debian-vbox take", "virtlab check 06"):
        assert needle in text, needle
    # what is wrong today is not taught: apt-key add, keyrings in /usr/share for Oracle,
    # VirtualBox 7.0, `hostonlynet` (other host systems: the real 7.2 here rejects it)
    assert "apt-key add -" not in text and "virtualbox-7.0\n" not in text
    assert "/usr/share/keyrings/oracle" not in text
    assert "VBoxManage hostonlynet" not in text and "Invalid command 'hostonlynet'" in text
    # the course's GUI steps and VBoxManage side by side, as content tabs
    assert text.count('=== "VBoxManage"') >= 4
    gui = '=== "Interface graphique"' if lang == "fr" else '=== "Graphical interface"'
    assert text.count(gui) == text.count('=== "VBoxManage"')
    # both releases side by side, Debian 13 first, each pair together
    assert text.count(TAB_13) == text.count(TAB_12) >= 4
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if line.strip() == TAB_12:
            before = [x for x in lines[:n] if x.strip().startswith("=== ")]
            assert before and before[-1].strip() == TAB_13, n
    # tab bodies are indented by four spaces (mkdocs-material content tabs)
    for m in re.finditer(r'^( *)=== ".*"\n(.*)\n', text, re.M):
        assert m.group(2).startswith(m.group(1) + "    "), m.group(0)


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_instructions_map_the_five_network_modes_to_libvirt(lang):
    text = (LAB / f"instructions.{lang}.md").read_text(encoding="utf-8")
    rows = [r for r in text.splitlines() if r.startswith("| **")]
    assert len(rows) == 5
    for libvirt_name in ("mon-reseau-prive", "br0", "reseau-isole", "<forward"):
        assert any(libvirt_name in r for r in rows), libvirt_name


def test_solution_is_bash_for_the_learner_and_says_what_cannot_run_here():
    script = (LAB / "solution.sh").read_text(encoding="utf-8")
    assert subprocess.run(["bash", "-n", str(LAB / "solution.sh")]).returncode == 0
    assert "$VIRTLAB_USER" in script or "${VIRTLAB_USER" in script
    assert "CANNOT run on the project's test machines" in script
    assert "VIRTLAB_VBOX_STEPS=vm" in script  # the part the tests run for real
    assert "apt-key" not in script.replace("never apt-key", "")
    assert "Signed-By: /etc/apt/keyrings/oracle-virtualbox-2016.gpg" in script
    assert "VERSION_CODENAME" in script and "virtualbox-7.2" in script
    assert "--host-only-adapter2 vboxnet0" in script and "--intnet2 labnet" in script
