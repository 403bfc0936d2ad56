"""Lab 07-troubleshooting against a real libvirtd: the broken scene fails every objective,
the reference fix scores full marks, each objective broken alone fails alone, `finish`
leaves nothing named lab07-* and nothing else changed; progressive hints are recorded.
On both Debian releases (``release_sandbox``: this machine's, and the other one's rootfs)."""

from __future__ import annotations

import json
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from conftest import run_virtlab, statuses

from checker.catalog import resolve
from checker.markup import plain

LAB = "07-troubleshooting"
WEB_MAC = "52:54:00:07:00:01"


def lab07_objects(sb: Any) -> dict[str, list[str]]:
    c = sb.conn()
    return {
        "domains": sorted(d.name() for d in c.listAllDomains(0) if d.name().startswith("lab07-")),
        "networks": sorted(n.name() for n in c.listAllNetworks(0) if n.name().startswith("lab07-")),
        "pools": sorted(p.name() for p in c.listAllStoragePools(0)
                        if p.name().startswith("lab07-")),
    }


def start(sb: Any) -> None:
    r = sb.virtlab("start", LAB, "--yes", "--connect", sb.uri)
    assert r.returncode == 0, r.stdout + r.stderr


def solve(sb: Any) -> None:
    r = sb.virtlab("solve", LAB, "--yes", "--connect", sb.uri)
    assert r.returncode == 0, r.stdout + r.stderr


def report(sb: Any, lang: str = "en") -> Any:
    return sb.check(LAB, connect=sb.uri, lang=lang)


@pytest.fixture
def scene(clean_release_sandbox: Any, monkeypatch: Any) -> Any:
    """A fresh broken scene (hints state kept out of the learner's real home: in a folder of
    the sandbox, which has the same path on the learner's host)."""
    sb = clean_release_sandbox
    xdg = tempfile.mkdtemp(prefix="xdg-", dir=sb.root)
    monkeypatch.setattr(sb, "env", {**sb.env, "XDG_DATA_HOME": xdg})
    start(sb)
    return sb


@pytest.mark.integration
def test_start_builds_a_scene_where_every_objective_fails(scene: Any) -> None:
    rep = report(scene)
    assert set(statuses(rep).values()) == {"fail"}, statuses(rep)
    assert rep.score == 0 and rep.max_score == resolve(LAB).max_score
    assert lab07_objects(scene) == {"domains": ["lab07-db", "lab07-web"],
                                    "networks": ["lab07-net"], "pools": ["lab07-pool"]}
    web = scene.conn().lookupByName("lab07-web")
    root = ET.fromstring(web.XMLDesc(0))
    assert root.get("type") in ("qemu", "kvm")
    assert int(root.findtext("memory")) <= 256 * 1024
    assert web.snapshotNum(0) == 5
    vol = scene.conn().storageVolLookupByPath("/var/lib/libvirt/lab07-pool/lab07-web.qcow2")
    _type, capacity, allocation = vol.info()
    assert allocation < capacity  # thin


@pytest.mark.integration
def test_reference_fix_scores_full_marks_then_finish_leaves_only_what_was_there(
        clean_release_sandbox: Any) -> None:
    sb = clean_release_sandbox
    c = sb.conn()
    c.defineXML(sb.domain_xml("test-debian-12", nics=[{"network": "default"}]))
    before = c.lookupByName("test-debian-12").XMLDesc(0)
    nets_before = {n.name(): n.XMLDesc(0) for n in c.listAllNetworks(0)}
    start(sb)
    solve(sb)
    rep = report(sb)
    assert rep.passed and rep.score == rep.max_score, statuses(rep)

    r = sb.virtlab("finish", LAB, "--yes", "--connect", sb.uri, "--lang", "en")
    assert r.returncode == 0, r.stdout + r.stderr
    assert lab07_objects(sb) == {"domains": [], "networks": [], "pools": []}
    assert "lab07-isolated" in r.stdout  # made by the learner, named lab07-*: removed too
    assert c.lookupByName("test-debian-12").XMLDesc(0) == before
    assert {n.name(): n.XMLDesc(0) for n in c.listAllNetworks(0)} == nets_before
    assert not any(p.name.startswith("lab07-") for p in sb.lib.iterdir())


# Each objective broken alone: labs/07-troubleshooting/breaks.toml, run by tests/test_labs.py.


@pytest.mark.integration
def test_a_fix_made_live_only_is_not_enough(scene: Any) -> None:
    scene.virsh("net-start", "lab07-net")
    scene.virsh("start", "lab07-web")
    scene.virsh("domif-setlink", "lab07-web", WEB_MAC, "up")  # live, not --config
    rep = report(scene)
    res = {o.id: o for o in rep.objectives}
    assert res["vm-link-up"].status == "fail"
    assert "next boot" in res["vm-link-up"].message
    assert res["vm-link-up"].evidence["live"][0]["link_state"] == "up"
    assert res["vm-link-up"].evidence["config"][0]["link_state"] == "down"


@pytest.mark.integration
def test_db_on_a_missing_network_is_not_isolated(scene: Any) -> None:
    import libvirt

    dom = scene.conn().lookupByName("lab07-db")
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).replace(
        "network='lab07-net'", "network='lab07-nowhere'")
    scene.conn().defineXML(xml)
    res = {o.id: o for o in report(scene).objectives}
    assert res["db-isolated"].status == "fail"
    assert "lab07-nowhere" in res["db-isolated"].message
    assert "does not exist" in res["db-isolated"].message


@pytest.mark.integration
def test_a_renamed_vm_is_named_as_a_candidate(scene: Any) -> None:
    scene.virsh("domrename", "lab07-web", "web")
    res = {o.id: o for o in report(scene).objectives}
    for oid in ("vm-link-up", "vm-nic-virtio", "vm-running", "snapshots-pruned", "nic-filtered"):
        assert res[oid].status == "fail"
        assert "cannot be found" in res[oid].message
        assert "web" in res[oid].evidence["candidates"], res[oid].evidence
        assert "virsh domrename web lab07-web" in res[oid].message

    # start will not delete the disk of a VM not named lab07-*; finish keeps it too.
    r = scene.virtlab("start", LAB, "--yes", "--connect", scene.uri, "--lang", "en")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "used by VM web" in r.stdout and "Nothing was changed" in r.stderr
    r = scene.virtlab("finish", LAB, "--yes", "--connect", scene.uri, "--lang", "en")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "disk of VM web" in r.stdout
    web = scene.conn().lookupByName("web")
    path = ET.fromstring(web.XMLDesc(0)).find("devices/disk/source").get("file")
    assert scene.conn().storageVolLookupByPath(path) is not None
    assert lab07_objects(scene) == {"domains": [], "networks": [], "pools": ["lab07-pool"]}


# --- progressive hints -----------------------------------------------------------------

@pytest.mark.integration
def test_hints_progress_and_the_report_counts_them(scene: Any) -> None:
    xdg = Path(scene.env["XDG_DATA_HOME"])
    lab = resolve(LAB)
    hints = lab.objective("vm-link-up").hints
    assert len(hints) == 3

    rep = report(scene)
    first = {o.id: o for o in rep.objectives}["vm-link-up"]
    assert (first.hints_shown, first.hint) == (1, hints[0].en)

    r = scene.virtlab("hint", "07", "vm-link-up", "--lang", "en")
    assert r.returncode == 0, r.stderr
    # (a terminal shows the hints' inline Markdown plainly: no backticks)
    shown = [plain(h.en) for h in hints]
    assert shown[0] in r.stdout and shown[1] in r.stdout and shown[2] not in r.stdout
    assert "`" not in r.stdout
    assert "virtlab hint 07-troubleshooting vm-link-up" in r.stdout
    res = {o.id: o for o in report(scene).objectives}
    assert (res["vm-link-up"].hints_shown, res["vm-link-up"].hint) == (2, hints[1].en)
    assert res["vm-nic-virtio"].hints_shown == 1  # the others are untouched

    for _ in range(3):  # asking past the last level stays at the last level
        r = scene.virtlab("hint", LAB, "vm-link-up", "--lang", "en")
    assert "last hint" in r.stdout
    state = json.loads((xdg / "virtlab" / "hints.json").read_text())
    assert state["labs"][LAB] == {"vm-link-up": 3}

    # the JSON report (what instructors read) carries the count, even once it passes
    solve(scene)
    r = scene.virtlab("check", LAB, "--connect", scene.uri, "--format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    objs = {o["id"]: o for o in json.loads(r.stdout)["objectives"]}
    assert objs["vm-link-up"]["status"] == "pass" and objs["vm-link-up"]["hints_shown"] == 3
    assert objs["vm-nic-virtio"]["hints_shown"] == 0


def test_hint_for_an_unknown_objective_lists_the_valid_ones(tmp_path: Any) -> None:
    r = run_virtlab("hint", "07", "no-such-thing", "--lang", "en",
                    env={"XDG_DATA_HOME": str(tmp_path)})
    assert r.returncode == 2
    assert "no-such-thing" in r.stderr and "vm-link-up" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "virtlab").exists()


def test_hints_state_survives_garbage(tmp_path: Any, monkeypatch: Any) -> None:
    from checker import hints

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    path = hints.state_path()
    assert path == tmp_path / "virtlab" / "hints.json"
    assert hints.levels(LAB) == {}
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert hints.levels(LAB) == {}
    lab = resolve(LAB)
    assert hints.reveal(lab, lab.objective("net-restored")) == 2
    assert hints.levels(LAB) == {"net-restored": 2}
    path.write_text(json.dumps({"version": 1, "labs": {LAB: {"net-restored": "x",
                                                             "vm-running": True}}}))
    assert hints.levels(LAB) == {}
    assert hints.shown(0, failing=True) == 1 and hints.shown(0, failing=False) == 0
    assert hints.shown(3, failing=False) == 3


def test_hints_seen_on_a_remote_learner_host_are_read_there(tmp_path):
    """hints_shown of a host graded over SSH comes from the learner's file on that host."""
    import json

    import testinfra

    from checker.hints import levels

    home = tmp_path / "home"
    (home / ".local/share/virtlab").mkdir(parents=True)
    (home / ".local/share/virtlab/hints.json").write_text(json.dumps(
        {"version": 1, "labs": {"07-troubleshooting": {"vm-link-up": 3, "bad": "x"}}}))

    class Remote:
        """A testinfra host seen as remote (NAME != local) whose user's home is tmp."""

        def __init__(self):
            self._h = testinfra.get_host("local://")
            self.backend = type("B", (), {"NAME": "ssh"})()

        def user(self, name=None):
            return type("U", (), {"home": str(home)})()

        def file(self, path):
            return self._h.file(path)

        def run(self, command, *args):  # read_file reads with one command
            return self._h.run(command, *args)

    assert levels("07-troubleshooting", "alice", host=Remote()) == {"vm-link-up": 3}
    assert levels("03-libvirt-basics", "alice", host=Remote()) == {}
