"""Checking never changes the learner's machine: proven on the real sandbox.

The whole libvirt state (every domain, network, pool, volume, snapshot, nwfilter XML, state
and autostart flag), the dpkg status and the hashes of /etc and of the learner's home are
snapshotted, every lab is checked 20 times, and the snapshot is compared: identical.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from checker.catalog import all_labs
from checker.engine import check

pytestmark = pytest.mark.integration
RUNS = 20


# What changes on its own, whoever looks: a pool's free space follows the file system, and a
# running VM's disk has its access times touched by QEMU.
_POOL_NOISE = re.compile(r"<(capacity|allocation|available)[^>]*>\d+</\1>")
_VOLUME_NOISE = re.compile(r"<allocation[^>]*>\d+</allocation>|<timestamps>.*?</timestamps>", re.S)


def libvirt_state(conn) -> dict:
    import libvirt

    state: dict = {"domains": {}, "networks": {}, "pools": {}, "nwfilters": {}}
    for d in conn.listAllDomains(0):
        state["domains"][d.name()] = {
            "xml": d.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE),
            "inactive_xml": d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) if d.isPersistent() else None,
            "state": d.state(), "autostart": d.autostart(),
            "snapshots": {s.getName(): s.getXMLDesc(0) for s in d.listAllSnapshots(0)},
        }
    for n in conn.listAllNetworks(0):
        state["networks"][n.name()] = {"xml": n.XMLDesc(0), "active": n.isActive(),
                                       "autostart": n.autostart()}
    for p in conn.listAllStoragePools(0):
        vols = {}
        if p.isActive():
            for v in p.listAllVolumes(0):
                vols[v.name()] = {"xml": _VOLUME_NOISE.sub("", v.XMLDesc(0)),
                                  "type_capacity": v.info()[:2]}
        state["pools"][p.name()] = {"xml": _POOL_NOISE.sub("", p.XMLDesc(0)), "active": p.isActive(),
                                    "autostart": p.autostart(), "volumes": vols}
    for f in conn.listAllNWFilters(0):
        state["nwfilters"][f.name()] = f.XMLDesc(0)
    return state


def tree_hashes(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            p = Path(dirpath) / name
            try:
                if p.is_symlink():
                    out[str(p)] = "-> " + os.readlink(p)
                elif p.is_file():
                    out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            except OSError:
                out[str(p)] = "unreadable"
    return out


def host_state(home: Path) -> dict:
    return {
        "dpkg": hashlib.sha256(Path("/var/lib/dpkg/status").read_bytes()).hexdigest(),
        "etc": tree_hashes(Path("/etc")),
        "home": tree_hashes(home),
    }


@pytest.fixture
def busy_sandbox(clean_sandbox, make_user):
    """A sandbox with something of every kind: the objects the labs look at, and odd names."""
    sb = clean_sandbox
    learner = make_user(groups=("libvirt", "kvm"))
    sb.virsh("net-start", "default")
    sb.virsh("net-autostart", "default")
    sb.virsh("pool-define-as", "default", "dir", "--target", "/var/lib/libvirt/images")
    sb.virsh("pool-start", "default")
    sb.virsh("vol-create-as", "default", "test-debian-12.qcow2", "1G", "--format", "qcow2")
    c = sb.conn()
    c.defineXML(sb.domain_xml(
        "test-debian-12", disks=[{"pool": "default", "volume": "test-debian-12.qcow2"}],
        nics=[{"network": "default"}], graphics="vnc", title="VM de test"))
    c.defineXML(sb.domain_xml("odd $(id) 'name' é", description="<b>x</b>"))
    c.lookupByName("test-debian-12").create()
    sb.virsh("snapshot-create-as", "test-debian-12", "snap1")
    home = Path(subprocess.run(["getent", "passwd", learner], capture_output=True, text=True)
                .stdout.split(":")[5])
    return sb, learner, home


def test_checking_every_lab_twenty_times_changes_nothing(busy_sandbox):
    sb, learner, home = busy_sandbox
    before = (libvirt_state(sb.conn()), host_state(home))
    labs = all_labs()
    assert len(labs) >= 2
    for lab in labs:
        for _ in range(RUNS):
            report = check(lab, connect=sb.uri, user=learner)
            assert report.objectives  # every lab really ran
    after = (libvirt_state(sb.conn()), host_state(home))
    assert after[0] == before[0], "checking changed libvirt state"
    assert after[1]["dpkg"] == before[1]["dpkg"]
    changed = {k for k in set(before[1]["etc"]) | set(after[1]["etc"])
               if before[1]["etc"].get(k) != after[1]["etc"].get(k)}
    assert not changed, f"checking changed files in /etc: {sorted(changed)[:10]}"
    assert after[1]["home"] == before[1]["home"], "checking changed the learner's home"
