"""Lab 04-create-vm against the real libvirt sandbox (QEMU/TCG domains), on both Debian
releases (``release_sandbox``: this machine's, and the other one's root filesystem).

The reference solutions of labs 03 and 04 are applied once to an empty sandbox. Breaking each
part of the VM `test-debian-12` (or of its surroundings) alone is the lab's contract, declared
in labs/04-create-vm/breaks.toml and run for every lab by tests/test_labs.py; the cases here
are the other states of the VM. The checker judges the VM's persistent definition, so most
changes are made to it alone (as `virsh edit` or `--config` would, fast); a few are applied
the way a learner's restart would (stop, redefine, start), so that the running VM agrees too.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import libvirt_state, solved_state, statuses

from checker.markup import code, plain

pytestmark = pytest.mark.integration

LAB = "04"
VM = "test-debian-12"
OBJECTIVES = ("vm-defined", "vm-vcpus", "vm-memory", "vm-disk-qcow2", "vm-disk-thin",
              "vm-nic-virtio", "vm-console", "vm-description", "vm-running", "vm-snapshot")
ALL_PASS = dict.fromkeys(OBJECTIVES, "pass")
ODD = ["vm \"cit\u00e9e\" $(id) `id`", "x'; touch vl-pwned #", "\u65e5\u672c \u00e9t\u00e9"]


def _by_id(report: Any) -> dict[str, Any]:
    return {o.id: o for o in report.objectives}


def _messages(report: Any) -> dict[str, str]:
    return {o.id: f"{o.status}: {o.message}" for o in report.objectives}


# --- no VM at all --------------------------------------------------------------------------

def test_no_vm_fails_every_objective_and_lists_the_vms_that_exist(clean_release_sandbox):
    sb = clean_release_sandbox
    c = sb.conn()
    for name in ODD:
        c.defineXML(sb.domain_xml(name))
    fr = sb.check(LAB, connect=sb.uri, user="root", lang="fr")
    en = sb.check(LAB, connect=sb.uri, user="root", lang="en")
    assert statuses(fr) == statuses(en) == dict.fromkeys(OBJECTIVES, "fail")
    for o in fr.objectives:
        assert o.message.startswith(f"VM `{VM}` introuvable ; VM existantes : "), o.message
        for name in ODD:  # each a code span holding the name verbatim, backticks and all
            assert code(name) in o.message and name in plain(o.message)
        assert o.hint
    for o in en.objectives:
        assert o.message.startswith(f"VM `{VM}` not found; existing VMs: "), o.message


def test_no_vm_on_an_empty_libvirt_says_none(clean_release_sandbox):
    sb = clean_release_sandbox
    report = sb.check(LAB, connect=sb.uri, user="root", lang="fr")
    assert {o.message for o in report.objectives} == {
        f"VM `{VM}` introuvable ; VM existantes : aucune."}


# --- the solved state ------------------------------------------------------------------

class Solved:
    def __init__(self, sb: Any, user: str):
        self.sb, self.user = sb, user

    def check(self, lang: str = "en", lab: str = LAB) -> Any:
        return self.sb.check(lab, connect=self.sb.uri, user=self.user, lang=lang)

    def virsh(self, *args: str) -> str:
        return self.sb.virsh(*args).stdout

    @property
    def dom(self) -> Any:
        return self.sb.conn().lookupByName(VM)

    def config(self) -> str:
        import libvirt

        return self.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


@pytest.fixture(scope="module")
def solved(release_sandbox: Any) -> Iterator[Solved]:
    """`virtlab solve 03` then `virtlab solve 04` on an empty sandbox."""
    with solved_state(release_sandbox, ("03", "04")) as user:
        yield Solved(release_sandbox, user)


def test_the_reference_solutions_score_full_marks_on_both_labs(solved):
    r = solved.sb.virtlab("check", LAB, "--connect", solved.sb.uri, "--user", solved.user,
                "--format", "json", "--lang", "fr")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["score"] == report["max_score"] == 14
    assert {o["id"]: o["status"] for o in report["objectives"]} == ALL_PASS
    ev = {o["id"]: o["evidence"] for o in report["objectives"]}
    assert ev["vm-disk-qcow2"]["volume_pool"] == "default"
    assert ev["vm-disk-thin"]["allocation"] < ev["vm-disk-thin"]["capacity"]
    lab03 = solved.check(lab="03")
    assert all(o.status == "pass" for o in lab03.objectives), _messages(lab03)
    # A TCG domain: this machine has no VT-x (the solution chose --virt-type qemu itself).
    assert ET.fromstring(solved.config()).get("type") in ("qemu", "kvm")


def test_checking_changes_nothing(solved):
    before = libvirt_state(solved.sb)
    assert statuses(solved.check()) == ALL_PASS
    assert statuses(solved.check("fr")) == ALL_PASS
    assert libvirt_state(solved.sb) == before


def test_solving_twice_is_harmless(solved):
    r = solved.sb.virtlab("solve", LAB, "--yes", "--user", solved.user, "--connect", solved.sb.uri)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(solved.check()) == ALL_PASS
    assert len(solved.dom.listAllSnapshots(0)) == 1


# --- other states of the VM ----------------------------------------------------------------

def _wait_state(s: Solved, active: bool) -> None:
    import time

    deadline = time.monotonic() + 30
    while bool(s.dom.isActive()) != active and time.monotonic() < deadline:
        time.sleep(0.1)


def _redefine(s: Solved, edit: Callable[[ET.Element], None],
              restart: bool = False) -> Callable[[], None]:
    """Change the VM's definition; with restart, apply it by a stop and a start."""
    original = s.config()
    root = ET.fromstring(original)
    edit(root)
    c = s.sb.conn()

    def apply(xml: str) -> None:
        if restart and s.dom.isActive():
            s.dom.destroy()
            _wait_state(s, False)
        c.defineXML(xml)
        if restart:
            s.dom.create()

    apply(ET.tostring(root, encoding="unicode"))
    return lambda: apply(original)


def _devices(root: ET.Element) -> ET.Element:
    devices = root.find("devices")
    assert devices is not None
    return devices


def _set_text(tag: str, text: str) -> Callable[[ET.Element], None]:
    def edit(root: ET.Element) -> None:
        for t in tag.split(","):
            el = root.find(t)
            if el is not None:
                el.text = text
                el.set("unit", "MiB") if t in ("memory", "currentMemory") else None
    return edit


def _drop(*tags: str) -> Callable[[ET.Element], None]:
    def edit(root: ET.Element) -> None:
        for parent in (root, _devices(root)):
            for tag in tags:
                for el in parent.findall(tag):
                    parent.remove(el)
    return edit


def _first_disk_to(path: str, fmt: str) -> Callable[[ET.Element], None]:
    def edit(root: ET.Element) -> None:
        disk = _devices(root).find("disk[@device='disk']")
        assert disk is not None
        disk.find("driver").set("type", fmt)
        src = disk.find("source")
        for k in list(src.attrib):
            del src.attrib[k]
        src.set("file", path)
        bs = disk.find("backingStore")
        if bs is not None:
            disk.remove(bs)
    return edit


def test_a_change_not_yet_applied_is_judged_on_the_definition_and_says_restart(solved):
    # As `virsh setvcpus test-debian-12 2 --config --maximum` on the running VM (1 vCPU).
    restore = _redefine(solved, _set_text("vcpu", "2"))
    try:
        en, fr = solved.check(), solved.check("fr")
    finally:
        restore()
    o = _by_id(en)["vm-vcpus"]
    assert o.status == "pass"
    assert o.evidence["vcpus"] == 2 and o.evidence["live_vcpus"] == 1
    assert "restart it to apply it" in o.message
    assert "redémarrez-la" in _by_id(fr)["vm-vcpus"].message


def test_a_description_set_on_the_running_vm_only_counts(solved):
    restore = _redefine(solved, _drop("title", "description"), restart=True)  # live = config
    try:
        solved.virsh("desc", VM, "--live", "Seulement en marche")
        report = solved.check()
    finally:
        restore()
    o = _by_id(report)["vm-description"]
    assert o.status == "pass" and o.evidence["in_config"] is False


def test_dozens_of_disks_are_fine_when_the_first_is_right(solved):
    def add_disks(root: ET.Element) -> None:
        devices = _devices(root)
        for i in range(40):
            d = ET.SubElement(devices, "disk", type="file", device="disk")
            ET.SubElement(d, "driver", name="qemu", type="qcow2")
            ET.SubElement(d, "source", file=f"/var/lib/libvirt/images/extra{i}.qcow2")
            ET.SubElement(d, "target", dev=f"sd{chr(97 + i // 26)}{chr(97 + i % 26)}", bus="scsi")

    restore = _redefine(solved, add_disks, restart=False)
    try:
        report = solved.check()
    finally:
        restore()
    assert statuses(report) == ALL_PASS, _messages(report)
    assert _by_id(report)["vm-disk-qcow2"].evidence["disks"] == 41


def test_a_volume_deleted_behind_libvirts_back_is_a_clear_failure(solved):
    solved.virsh("vol-create-as", "default", "gone.qcow2", "64M", "--format", "qcow2")
    restore = _redefine(solved, _first_disk_to("/var/lib/libvirt/images/gone.qcow2", "qcow2"),
                        restart=False)
    solved.sb.images("gone.qcow2").unlink()
    try:
        report = solved.check()
    finally:
        restore()
        solved.virsh("pool-refresh", "default")
    o = _by_id(report)
    assert o["vm-disk-qcow2"].status == "fail"
    assert "pool-refresh default" in o["vm-disk-qcow2"].message
    assert o["vm-disk-thin"].status == "fail"
    assert statuses(solved.check()) == ALL_PASS


def test_odd_names_elsewhere_in_libvirt_do_not_disturb(solved):
    from xml.sax.saxutils import escape

    c = solved.sb.conn()
    made = []
    try:
        for i, name in enumerate(ODD):
            made.append(c.defineXML(solved.sb.domain_xml(name, memory_mib=64)))
            made[-1].setAutostart(1)
            made.append(c.networkDefineXML(f"<network><name>{escape(name)}</name>"
                                           f"<bridge name='vlodd{i}'/></network>"))
        report = solved.check()
        assert statuses(report) == ALL_PASS, _messages(report)
        counted = _by_id(report)["vm-memory"].evidence["domains_counted"]
        assert set(ODD) <= set(counted)
    finally:
        for obj in made:
            obj.undefine()
