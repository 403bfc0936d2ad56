"""Checking never changes the learner's machine: proven on the real sandbox.

The whole libvirt state (every domain, network, pool, volume, snapshot, nwfilter XML, state
and autostart flag), the dpkg status and the hashes of /etc and of the learner's home are
snapshotted, every lab is checked 20 times, and the snapshot is compared: identical. On both
Debian releases (``release_sandbox``): in the other release's root filesystem, its dpkg
status, its /etc and the learner's home there, checked by virtlab running there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

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
            "inactive_xml": (d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) if d.isPersistent()
                             else None),
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
        state["pools"][p.name()] = {"xml": _POOL_NOISE.sub("", p.XMLDesc(0)),
                                    "active": p.isActive(),
                                    "autostart": p.autostart(), "volumes": vols}
    for f in conn.listAllNWFilters(0):
        state["nwfilters"][f.name()] = f.XMLDesc(0)
    return state


def tree_hashes(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=False):
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


def host_state(sb, home: Path) -> dict:
    """The learner's host of ``sb`` (this machine, or the rootfs) as this process sees it."""
    return {
        "dpkg": hashlib.sha256(sb.host_path("/var/lib/dpkg/status").read_bytes()).hexdigest(),
        "etc": tree_hashes(sb.host_path("/etc")),
        "home": tree_hashes(home),
    }


# Every lab checked RUNS times in one process on the learner's host (its Python).
CHECK_ALL = """
import json, sys
from checker.catalog import all_labs
from checker.engine import check
uri, learner, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
counts = {}
for lab in all_labs():
    for _ in range(runs):
        counts[lab.id] = len(check(lab, connect=uri, user=learner).objectives)
print(json.dumps(counts))
"""


@pytest.fixture
def busy_sandbox(clean_release_sandbox, make_learner):
    """A sandbox with something of every kind: the objects the labs look at, and odd names."""
    sb = clean_release_sandbox
    learner = make_learner(groups=("libvirt", "kvm"))
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
    return sb, learner, sb.home(learner)


def test_checking_every_lab_twenty_times_changes_nothing(busy_sandbox):
    sb, learner, home = busy_sandbox
    before = (libvirt_state(sb.conn()), host_state(sb, home))
    r = sb.python(CHECK_ALL, sb.uri, learner, str(RUNS), timeout=900)
    assert r.returncode == 0, r.stderr
    counts = json.loads(r.stdout)
    assert len(counts) >= 2 and all(counts.values()), counts  # every lab really ran
    after = (libvirt_state(sb.conn()), host_state(sb, home))
    assert after[0] == before[0], "checking changed libvirt state"
    assert after[1]["dpkg"] == before[1]["dpkg"]
    changed = {k for k in set(before[1]["etc"]) | set(after[1]["etc"])
               if before[1]["etc"].get(k) != after[1]["etc"].get(k)}
    assert not changed, f"checking changed files in /etc: {sorted(changed)[:10]}"
    assert after[1]["home"] == before[1]["home"], "checking changed the learner's home"
