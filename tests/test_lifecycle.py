"""`virtlab start` / `virtlab finish` (checker.lifecycle), with lab 07's scene as the real
case: says what it will do and asks, idempotent, converges after an interruption, resets
only with consent, refuses names outside its prefix, and fails cleanly on bad input."""

from __future__ import annotations

import io
import os
import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, run_virtlab

from checker.catalog import CatalogError, load_lab, resolve
from checker.lifecycle import PAUSE_ENV, LifecycleModuleError, Step, run, validate

LAB = "07-troubleshooting"


def scene(sb: Any, normalize: bool = False) -> dict[str, Any]:
    """Every lab07-* object as libvirt describes it (definitions, state, snapshots).

    normalize=True drops what differs between two equal scenes made at different times
    (UUIDs, snapshot creation times)."""
    import libvirt

    c = sb.conn()
    out: dict[str, Any] = {}

    def clean(xml: str) -> str:
        # a pool's XML also reports the free space of its filesystem, which moves on its own
        # (normalize: a network's bridge MAC is generated, like UUIDs)
        drop = {"capacity", "allocation", "available"} | (
            {"uuid", "mac"} if normalize else set())
        root = ET.fromstring(xml)
        for child in list(root):
            if child.tag in drop:
                root.remove(child)
        return ET.tostring(root, encoding="unicode")

    for d in c.listAllDomains(0):
        if d.name().startswith("lab07-"):
            out[f"domain {d.name()}"] = (
                clean(d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)), d.isActive(),
                sorted(d.snapshotListNames(0)))
    for n in c.listAllNetworks(0):
        if n.name().startswith("lab07-"):
            out[f"network {n.name()}"] = (clean(n.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE)),
                                          n.isActive(), n.autostart())
    for p in c.listAllStoragePools(0):
        if p.name().startswith("lab07-"):
            vols = (sorted((v.name(), v.info()[1]) for v in p.listAllVolumes(0))
                    if p.isActive() else [])
            out[f"pool {p.name()}"] = (clean(p.XMLDesc(libvirt.VIR_STORAGE_XML_INACTIVE)),
                                       p.isActive(), vols)
    return out


def start(sb: Any, *extra: str,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_virtlab("start", LAB, "--connect", sb.uri, "--lang", "en", *extra, env=env)


# --- pure parts (no libvirt) ------------------------------------------------------------

def test_a_step_on_an_object_outside_the_prefix_is_refused() -> None:
    ok = Step("create", "network", "lab07-net", run=lambda c: None)
    validate([ok, Step("keep", "domain", "test-debian-12")], "lab07-", "here")
    with pytest.raises(LifecycleModuleError, match="test-debian-12"):
        validate([ok, Step("remove", "domain", "test-debian-12", run=lambda c: None)],
                 "lab07-", "here")
    with pytest.raises(LifecycleModuleError, match="no run"):
        validate([Step("create", "network", "lab07-x")], "lab07-", "here")


def _fake_lab(tmp_path: Path, lifecycle: str) -> Any:
    src = REPO / "labs" / "01-hardware"
    dst = tmp_path / "labs" / "09-fake"
    dst.mkdir(parents=True)
    (dst / "lab.toml").write_text((src / "lab.toml").read_text().replace(
        'id = "01-hardware"', 'id = "09-fake"'))
    for f in ("instructions.fr.md", "instructions.en.md"):
        (dst / f).write_text((src / f).read_text())
    (dst / "lifecycle.py").write_text(lifecycle)
    return load_lab(dst)


def test_a_malformed_lifecycle_is_a_catalog_error(tmp_path: Path) -> None:
    lab = _fake_lab(tmp_path, "PREFIX = 'x'\ndef plan(conn):\n    return []\n")
    with pytest.raises(CatalogError, match="PREFIX"):
        run(lab, "start", "test:///default", yes=True, lang="en")


def test_a_lab_whose_plan_touches_another_name_changes_nothing(tmp_path: Path) -> None:
    lab = _fake_lab(tmp_path, (
        "from checker.lifecycle import Step\n"
        "PREFIX = 'lab09-'\n"
        "touched = []\n"
        "def plan(conn):\n"
        "    return [Step('create', 'network', 'lab09-net', run=touched.append),\n"
        "            Step('remove', 'network', 'default', run=touched.append)]\n"
        "def cleanup(conn):\n"
        "    return []\n"))
    # test:///default is libvirt's built-in mock driver: a throw-away in-process hypervisor.
    with pytest.raises(LifecycleModuleError, match="'default'.*lab09-"):
        run(lab, "start", "test:///default", yes=True, lang="en", out=io.StringIO())
    assert sys.modules["virtlab_lifecycle_09_fake"].touched == []


def test_a_step_that_fails_midway_says_what_was_done_and_what_was_not(tmp_path: Path) -> None:
    lab = _fake_lab(tmp_path, (
        "import libvirt\n"
        "from checker.lifecycle import Step\n"
        "PREFIX = 'lab09-'\n"
        "ran = []\n"
        "def boom(conn):\n"
        "    raise libvirt.libvirtError('Cannot recv data: Connection reset by peer')\n"
        "def plan(conn):\n"
        "    return [Step('create', 'network', 'lab09-a', run=ran.append),\n"
        "            Step('create', 'domain', 'lab09-b', run=boom),\n"
        "            Step('create', 'domain', 'lab09-c', run=ran.append)]\n"
        "def cleanup(conn):\n"
        "    return []\n"))
    out, err = io.StringIO(), io.StringIO()
    code = run(lab, "start", "test:///default", yes=True, lang="en", out=out, err=err)
    assert code == 1
    assert len(sys.modules["virtlab_lifecycle_09_fake"].ran) == 1  # lab09-c never ran
    e = err.getvalue()
    assert "failed at VM lab09-b: Cannot recv data" in e
    assert "Already done: network lab09-a" in e
    assert "Not done: VM lab09-b, VM lab09-c" in e
    assert "virtlab start 09-fake" in e and "virtlab finish 09-fake" in e


SCENE_LAB = """
from checker.i18n import Text
from checker.lifecycle import Scene, SceneDomain, SceneNetwork, ScenePool, SceneVolume

def vm_xml(virt_type):
    return (f"<domain type='{virt_type}'><name>lab09-vm</name><memory unit='MiB'>64</memory>"
            "<os><type arch='x86_64'>hvm</type></os><devices>"
            "<disk type='file' device='disk'><source file='/lab09-pool/lab09-vm.qcow2'/>"
            "<target dev='vda' bus='virtio'/></disk>"
            "<interface type='network'><mac address='52:54:00:09:00:01'/>"
            "<source network='lab09-net'/><model type='virtio'/></interface>"
            "</devices></domain>")

SCENE = Scene(
    prefix="lab09-",
    pool=ScenePool("lab09-pool", "/lab09-pool", what=Text("pool", "pool")),
    networks=(SceneNetwork("lab09-net", "<network><name>lab09-net</name>"
                           "<bridge name='virbr-lab09'/><ip address='192.168.109.1' "
                           "netmask='255.255.255.0'/></network>", what=Text("isolé", "isolated")),),
    domains=(SceneDomain("lab09-vm", vm_xml, SceneVolume("lab09-vm.qcow2"),
                         what=Text("éteinte ({virt_type})", "shut off ({virt_type})")),),
)
"""


def test_a_new_lab_declares_its_scene_and_gets_start_and_finish(tmp_path: Path) -> None:
    """A lab's lifecycle.py that only declares its objects (no code of its own): start makes
    them, start again keeps them, a changed one is reset, finish removes every lab09-*
    object and nothing else. On libvirt's test driver (an in-process hypervisor; one
    connection held open keeps its state between the runs)."""
    import libvirt

    lab = _fake_lab(tmp_path, SCENE_LAB)
    held = libvirt.open("test:///default")
    try:
        before = ({n.name() for n in held.listAllNetworks(0)},
                  {d.name() for d in held.listAllDomains(0)})
        out = io.StringIO()
        assert run(lab, "start", "test:///default", yes=True, lang="en", out=out) == 0
        assert "To create:" in out.getvalue() and "shut off (qemu)" in out.getvalue()
        assert held.lookupByName("lab09-vm").isActive() == 0
        assert not held.networkLookupByName("lab09-net").isActive()
        assert held.storagePoolLookupByName("lab09-pool").storageVolLookupByName("lab09-vm.qcow2")
        out = io.StringIO()
        assert run(lab, "start", "test:///default", yes=True, lang="en", out=out) == 0
        assert "Nothing to do" in out.getvalue(), out.getvalue()
        held.networkLookupByName("lab09-net").setAutostart(1)
        out = io.StringIO()
        assert run(lab, "start", "test:///default", yes=True, lang="en", out=out) == 0
        assert "network lab09-net — autostarts (scene: no)" in out.getvalue(), out.getvalue()
        assert not held.networkLookupByName("lab09-net").autostart()
        out = io.StringIO()
        assert run(lab, "finish", "test:///default", yes=True, lang="en", out=out) == 0
        after = ({n.name() for n in held.listAllNetworks(0)},
                 {d.name() for d in held.listAllDomains(0)})
        assert after == before, (before, after)
        assert not [p for p in held.listAllStoragePools(0) if p.name().startswith("lab09-")]
    finally:
        held.close()


def test_a_scene_that_names_an_object_outside_its_prefix_is_refused(tmp_path: Path) -> None:
    lab = _fake_lab(tmp_path, SCENE_LAB.replace('SceneNetwork("lab09-net"',
                                                'SceneNetwork("default"'))
    with pytest.raises(LifecycleModuleError, match="default not named lab09-"):
        run(lab, "start", "test:///default", yes=True, lang="en", out=io.StringIO())


def test_a_lab_without_lifecycle_has_nothing_to_prepare() -> None:
    for verb in ("start", "finish"):
        r = run_virtlab(verb, "01", "--lang", "en", "--connect", "test:///default")
        assert r.returncode == 0, r.stderr
        assert "has nothing to" in r.stdout and "01-hardware" in r.stdout


def test_unknown_lab_is_a_usage_error() -> None:
    r = run_virtlab("start", "99", "--yes")
    assert r.returncode == 2 and "07-troubleshooting" in r.stderr and "Traceback" not in r.stderr


# --- against the real sandbox ------------------------------------------------------------

@pytest.mark.integration
def test_start_twice_gives_the_same_scene(clean_sandbox: Any) -> None:
    r = start(clean_sandbox, "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "To create:" in r.stdout and "lab07-web" in r.stdout and "lab07-net" in r.stdout
    first = scene(clean_sandbox)
    assert set(first) == {"domain lab07-web", "domain lab07-db", "network lab07-net",
                          "pool lab07-pool"}
    r = start(clean_sandbox, "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Nothing to do" in r.stdout
    assert scene(clean_sandbox) == first


@pytest.mark.integration
def test_start_without_yes_and_without_terminal_refuses(clean_sandbox: Any) -> None:
    r = start(clean_sandbox)  # stdin of subprocess.run is not a terminal
    assert r.returncode == 2
    assert "--yes" in r.stderr and "Nothing was changed" in r.stderr
    assert "lab07-web" in r.stdout  # it still said what it would do
    assert scene(clean_sandbox) == {}


@pytest.mark.integration
def test_a_changed_object_is_named_and_reset_only_with_consent(clean_sandbox: Any) -> None:
    sb = clean_sandbox
    assert start(sb, "--yes").returncode == 0
    untouched = scene(sb)["domain lab07-db"]
    sb.virsh("net-start", "lab07-net")
    sb.virsh("net-autostart", "lab07-net")

    questions: list[str] = []
    out = io.StringIO()
    code = run(resolve(LAB), "start", sb.uri, yes=False, lang="en", out=out, err=io.StringIO(),
               ask=lambda q: questions.append(q) or False)
    assert code == 1
    assert "Changed since the scene was made" in out.getvalue()
    assert "network lab07-net — active (scene: stopped), autostarts (scene: no)" in out.getvalue()
    assert len(questions) == 1 and "1 object(s) changed" in questions[0]
    assert sb.conn().networkLookupByName("lab07-net").isActive()  # declined: untouched

    code = run(resolve(LAB), "start", sb.uri, yes=False, lang="en", out=io.StringIO(),
               err=io.StringIO(), ask=lambda q: True)
    assert code == 0
    net = sb.conn().networkLookupByName("lab07-net")
    assert not net.isActive() and not net.autostart()
    assert scene(sb)["domain lab07-db"] == untouched  # only the changed object was reset


def _start_then_interrupt(sb: Any, sig: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **{PAUSE_ENV: "60"})
    p = subprocess.Popen([sys.executable, "-m", "checker", "start", LAB, "--yes", "--connect",
                          sb.uri, "--lang", "en"], cwd=REPO, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "[1/" in line:  # the first step is done; the run now pauses
            break
    else:
        p.kill()
    assert any("[1/" in s for s in seen), "".join(seen) + p.stderr.read()
    os.kill(p.pid, sig)
    stdout, stderr = p.communicate(timeout=60)
    return subprocess.CompletedProcess(p.args, p.returncode, "".join(seen) + stdout, stderr)


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_an_interrupted_start_converges_when_run_again(clean_sandbox: Any, sig: int) -> None:
    sb = clean_sandbox
    assert start(sb, "--yes").returncode == 0
    reference = scene(sb, normalize=True)
    assert run_virtlab("finish", LAB, "--yes", "--connect", sb.uri).returncode == 0
    assert scene(sb) == {}

    r = _start_then_interrupt(sb, sig)
    half = scene(sb)
    assert half and set(half) != set(reference), half  # really halfway
    if sig == signal.SIGINT:
        assert r.returncode == 130, r.stderr
        assert "Already done: storage pool lab07-pool" in r.stderr
        assert "Not done: network lab07-net" in r.stderr
        # the advice names the libvirt of the command: it works as printed
        assert f"virtlab start 07-troubleshooting --connect {shlex.quote(sb.uri)}" in r.stderr
    else:
        assert r.returncode == -signal.SIGKILL

    r = start(sb, "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "already in place" in r.stdout  # what the first run made is kept
    assert f"virtlab check 07-troubleshooting --connect {shlex.quote(sb.uri)}" in r.stdout
    assert scene(sb, normalize=True) == reference


@pytest.mark.integration
def test_start_with_the_daemon_down_says_so_and_changes_nothing(clean_sandbox: Any) -> None:
    sb = clean_sandbox
    sb.stop()
    try:
        r = start(sb, "--yes")
        assert r.returncode == 3, r.stdout + r.stderr
        assert "libvirt daemon does not answer" in r.stderr
        assert "Nothing was changed" in r.stderr
        assert "Traceback" not in r.stderr
        r = run_virtlab("finish", LAB, "--yes", "--connect", sb.uri, "--lang", "en")
        assert r.returncode == 3 and "Nothing was changed" in r.stderr
    finally:
        sb.start()
    assert scene(sb) == {}


@pytest.mark.integration
def test_finish_when_nothing_was_started(clean_sandbox: Any) -> None:
    r = run_virtlab("finish", LAB, "--connect", clean_sandbox.uri, "--lang", "en")
    assert r.returncode == 0, r.stderr
    assert "Nothing to remove" in r.stdout


@pytest.mark.integration
def test_finish_removes_every_lab07_object_and_nothing_else(clean_sandbox: Any) -> None:
    sb = clean_sandbox
    c = sb.conn()
    c.defineXML(sb.domain_xml("test-debian-12"))
    keep = {"domain": c.lookupByName("test-debian-12").XMLDesc(0),
            "network": c.networkLookupByName("default").XMLDesc(0)}
    assert start(sb, "--yes").returncode == 0
    # objects the learner made under the lab's prefix go too
    c.networkDefineXML("<network><name>lab07-extra</name></network>")
    c.defineXML(sb.domain_xml("lab07-scratch"))

    r = run_virtlab("finish", LAB, "--connect", sb.uri, "--lang", "en")
    assert r.returncode == 2 and "--yes" in r.stderr  # no terminal: asks for --yes
    assert "lab07-extra" in r.stdout and "lab07-scratch" in r.stdout
    r = run_virtlab("finish", LAB, "--yes", "--connect", sb.uri, "--lang", "en")
    assert r.returncode == 0, r.stdout + r.stderr
    assert scene(sb) == {}
    assert c.lookupByName("test-debian-12").XMLDesc(0) == keep["domain"]
    assert c.networkLookupByName("default").XMLDesc(0) == keep["network"]


@pytest.mark.integration
def test_start_on_a_host_without_kvm_makes_tcg_domains(clean_sandbox: Any) -> None:
    from checker.lifecycle import domain_type

    assert start(clean_sandbox, "--yes").returncode == 0
    expected = domain_type(clean_sandbox.conn())
    usable_kvm = (any(Path(f"/sys/module/{m}").is_dir() for m in ("kvm_intel", "kvm_amd"))
                  and os.access("/dev/kvm", os.R_OK | os.W_OK))
    assert expected == ("kvm" if usable_kvm else "qemu")
    for name in ("lab07-web", "lab07-db"):
        root = ET.fromstring(clean_sandbox.conn().lookupByName(name).XMLDesc(0))
        assert root.get("type") == expected
