"""Lab 06-virtualbox's files: the catalogue contract, the instructions, the solution."""

from __future__ import annotations

import json
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
        assert "KVM" in text and "modprobe -r kvm_intel" in text and "VERR_VMX_IN_VMX_ROOT_MODE" in text


def test_every_objective_has_a_check(lab):
    assert sorted(load_checks(lab)) == sorted(IDS)


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_instructions_correct_the_course_for_debian_12(lang):
    text = (LAB / f"instructions.{lang}.md").read_text(encoding="utf-8")
    assert text.count('!!! warning "Debian 12') >= 3
    for needle in ("apt install virtualbox", "apt-key", "signed-by=", "/usr/share/keyrings/",
                   "Signed-By:", "fasttrack", "lsmod | grep kvm", "VERR_VMX_IN_VMX_ROOT_MODE",
                   "sudo modprobe -r kvm_intel", "kvm_amd",
                   "VBoxManage createvm --name debian-vbox --ostype Debian_64 --register",
                   "--memory 2048 --cpus 2", "--nic1 nat", "--nic2 hostonly", "--nic2 intnet",
                   "createmedium disk", "--format VDI", "storagectl", "storageattach",
                   "snapshot debian-vbox take", "virtlab check 06"):
        assert needle in text, needle
    # the course's GUI steps and VBoxManage side by side, as content tabs
    assert text.count('=== "VBoxManage"') >= 4
    gui = '=== "Interface graphique"' if lang == "fr" else '=== "Graphical interface"'
    assert text.count(gui) == text.count('=== "VBoxManage"')
    # tab bodies are indented by four spaces (mkdocs-material content tabs)
    for m in re.finditer(r'^=== ".*"\n(.*)\n', text, re.M):
        assert m.group(1).startswith("    "), m.group(0)


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_instructions_map_the_five_network_modes_to_libvirt(lang):
    text = (LAB / f"instructions.{lang}.md").read_text(encoding="utf-8")
    rows = [r for r in text.splitlines() if r.startswith("| **")]
    assert len(rows) == 5
    for libvirt_name in ("mon-reseau-prive", "br0", "reseau-isole", "<forward"):
        assert any(libvirt_name in r for r in rows), libvirt_name


def test_solution_is_bash_for_the_learner_and_says_it_cannot_run_here():
    script = (LAB / "solution.sh").read_text(encoding="utf-8")
    assert subprocess.run(["bash", "-n", str(LAB / "solution.sh")]).returncode == 0
    assert "$VIRTLAB_USER" in script or "${VIRTLAB_USER" in script
    assert "CANNOT run on the project's test machines" in script
    assert "apt-key" not in script.replace("(never apt-key)", "")
    assert "signed-by=/usr/share/keyrings/oracle-virtualbox-2016.gpg" in script


def test_the_stand_ins_good_scenario_is_what_the_solution_leaves():
    """The recorded-format scenario the checks are tested on matches solution.sh."""
    script = (LAB / "solution.sh").read_text(encoding="utf-8")
    vm = json.loads((REPO / "tests/fixtures/vbox/good.json").read_text(encoding="utf-8"))["vms"][0]
    assert vm["name"] == "debian-vbox" and f"--ostype {vm['ostype_id']}" in script
    assert f"--memory {vm['memory']} --cpus {vm['cpus']}" in script
    assert "--format VDI" in script and vm["controllers"][0]["name"] == "SATA"
    assert "--nic1 nat" in script and vm["nics"][0]["attachment"] == "nat"
    assert f"--nic2 hostonly --hostonlyadapter2 {vm['nics'][1]['network']}" in script
    assert f'take "{vm["snapshots"][0]["name"]}"' in script
