"""Lab 05-networks: the parser of persistent bridge declarations, the topology drawing, and
the checker against a real libvirt (sandbox) with a real guest that takes a DHCP lease.

Everything network-related happens inside the sandbox's network namespace: br0 and its veth
port are made there, and the namespace's own /etc/network comes from
/etc/netns/<netns>/network (``ip netns exec`` bind-mounts it over /etc/network), so the
machine's real /etc/network/interfaces is never read or written. The checker itself runs
inside the namespace, so testinfra's ``host`` sees that br0 and that /etc.

The real-guest tests run on both Debian releases (``release_sandbox``): in the other
release's root filesystem, /etc/network is a folder of that sandbox bound there, and the
checker and solution.sh run chrooted in it (its own ip, brctl, virsh, virt-install).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import string
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.probes.ifupdown import (
    BridgeDeclaration,
    logical_lines,
    networkd_bridge,
    nm_bridge,
    parse_ini,
    parse_interfaces,
    parse_nmcli_terse,
    read_interfaces,
)

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "labs" / "05-networks"
ARTIFACTS = REPO / "artifacts"
OBJECTIVES = ["net-nat-defined", "net-nat-addressing", "net-nat-active", "net-nat-autostart",
              "net-isolated", "host-bridge", "host-bridge-persistent", "vm-nic-nat",
              "vm-nic-bridge", "vm-nic-isolated", "vm-dhcp-lease"]
NAT_VM_MAC = "52:54:00:05:00:01"
LEASE_TIMEOUT = 120  # s; a TCG guest gets its lease in about 10 s here


# --- the parser (pure) -------------------------------------------------------------------

def fs(files: dict[str, str]) -> tuple[Callable[[str], str | None],
                                       Callable[[str], list[str] | None]]:
    """A tiny in-memory file tree for read_interfaces (paths -> text)."""
    def read(p: str) -> str | None:
        return files.get(p)

    def listdir(d: str) -> list[str] | None:
        d = d.rstrip("/")
        names = {p[len(d) + 1:].split("/")[0] for p in files if p.startswith(d + "/")}
        return sorted(names) if names else None

    return read, listdir


DEBIAN_DEFAULT = """# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

source /etc/network/interfaces.d/*

# The loopback network interface
auto lo
iface lo inet loopback
"""


def test_course_stanza_is_a_bridge_brought_up_at_boot():
    cfg = parse_interfaces("""
# Interface physique
auto eth0
iface eth0 inet manual

# Pont réseau
auto br0
iface br0 inet dhcp
bridge_ports eth0
bridge_stp off
bridge_fd 0
bridge_maxwait 0
""")
    br = cfg.bridge("br0")
    assert br is not None and br.bridge_ports == ("eth0",)
    assert br.method == "dhcp" and br.option("bridge-fd") == "0"
    assert {"br0", "eth0"} <= cfg.auto
    assert cfg.bridge("eth0") is None and not cfg.problems


def test_source_glob_and_source_directory_are_followed():
    read, listdir = fs({
        "/etc/network/interfaces": DEBIAN_DEFAULT + "source-directory extra\n",
        "/etc/network/interfaces.d/br0": "auto br0\niface br0 inet dhcp\n"
                                         "  bridge-ports enp1s0 enp2s0\n",
        "/etc/network/interfaces.d/.hidden": "iface hidden inet manual\n  bridge_ports x\n",
        # relative to the directory of the including file; run-parts names only
        "/etc/network/extra/vlan": "iface br9 inet manual\n\tbridge_ports none\n",
        "/etc/network/extra/skipped.cfg": "iface skipped inet manual\n  bridge_ports y\n",
    })
    cfg = read_interfaces(read, listdir)
    assert cfg.files == ("/etc/network/interfaces", "/etc/network/interfaces.d/br0",
                         "/etc/network/extra/vlan")
    assert cfg.bridge("br0").bridge_ports == ("enp1s0", "enp2s0")
    assert cfg.bridge("br9").bridge_ports == ()  # "none": a bridge without ports
    assert cfg.bridge("hidden") is None and cfg.bridge("skipped") is None
    assert "br0" in cfg.auto and "br9" not in cfg.auto


def test_comments_odd_spacing_continuations_and_crlf():
    text = ("  # indented comment\r\n"
            "auto\tbr0   eth0\r\n"
            "iface   br0\tinet   static\r\n"
            "    address 10.0.0.2/24   # not a comment for ifupdown: part of the value\r\n"
            "    bridge_ports \\\r\n"
            "        eth0\r\n"
            "\r\n"
            "#iface br1 inet manual\r\n"
            "#  bridge_ports eth1\r\n")
    cfg = parse_interfaces(text)
    br = cfg.bridge("br0")
    assert br.bridge_ports == ("eth0",) and br.method == "static"
    assert cfg.bridge("br1") is None and cfg.auto == {"br0", "eth0"}


def test_missing_file_loops_and_bad_lines_are_reported_not_raised():
    read, listdir = fs({
        "/etc/network/interfaces": "source /etc/network/a\nsource /etc/network/missing\n"
                                   "bridge_ports stray\niface\nsource\n",
        "/etc/network/a": "source /etc/network/interfaces\n",
    })
    cfg = read_interfaces(read, listdir)
    text = "\n".join(cfg.problems)
    assert "missing or unreadable" in text and "loop" in text
    assert "outside any stanza" in text and "without an interface name" in text
    assert "without a path" in text


def test_no_interfaces_file_at_all():
    read, listdir = fs({})
    cfg = read_interfaces(read, listdir)
    assert cfg.ifaces == () and cfg.files == ()
    assert cfg.problems == ("/etc/network/interfaces: missing or unreadable",)


def test_networkmanager_and_networkd_bridges():
    nm = nm_bridge("[connection]\nid=br0\nuuid=1\ntype=bridge\ninterface-name=br0\n"
                   "autoconnect=false\n\n[bridge]\nstp=false\n", "/x/br0.nmconnection")
    assert nm == BridgeDeclaration("networkmanager", "/x/br0.nmconnection", "br0",
                                   at_boot=False, detail="id=br0")
    assert nm_bridge("[connection]\ntype=ethernet\ninterface-name=eth0\n", "/x") is None
    assert nm_bridge("garbage without sections\n=\n[\n", "/x") is None
    nd = networkd_bridge("# comment\n[NetDev]\nName = br0\nKind = bridge\n", "/y/br0.netdev")
    assert nd.name == "br0" and nd.kind == "networkd" and nd.at_boot
    assert networkd_bridge("[NetDev]\nName=bond0\nKind=bond\n", "/y") is None
    assert parse_ini("[A]\nk=v\\\n  w\n;c\n") == {"A": {"k": "v w"}}
    assert parse_nmcli_terse("u1:bridge:yes\nu\\:2:bridge:no\n") == [
        ["u1", "bridge", "yes"], ["u:2", "bridge", "no"]]


_word = st.text(alphabet=string.ascii_letters + string.digits + "_-.:/*#\\\t ", min_size=0,
                max_size=12)
_line = st.one_of(
    st.builds(lambda a, b: f"iface {a} inet {b}", _word, _word),
    st.builds(lambda a: f"auto {a}", _word),
    st.builds(lambda a: f"  bridge_ports {a}", _word),
    st.builds(lambda a: f"source {a}", _word),
    st.builds(lambda a: f"source-directory {a}", _word),
    st.builds(lambda a: f"# {a}", _word),
    st.just("mapping eth*"), st.just("  script /x"), st.just("\\"), st.just(""),
    st.text(max_size=30),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_line, max_size=25), st.sampled_from(["\n", "\r\n", "\r"]))
def test_any_interfaces_file_parses_without_raising(lines, eol):
    text = eol.join(lines)
    cfg = parse_interfaces(text)
    for i in cfg.ifaces:
        assert i.name and " " not in i.name
        assert i.bridge_ports is None or isinstance(i.bridge_ports, tuple)
    # following its source lines over an arbitrary tree never raises either
    read, listdir = fs({"/etc/network/interfaces": text, "/etc/network/interfaces.d/x": text})
    cfg2 = read_interfaces(read, listdir)
    assert all(i.name in text for i in cfg2.ifaces)
    assert all(n.strip() for _, n in logical_lines(text))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_keyfile_parses_without_raising(text):
    nm_bridge(text, "/f")
    networkd_bridge(text, "/f")


# --- the topology drawing ------------------------------------------------------------------

def _topology():
    spec = importlib.util.spec_from_file_location("lab05_topology", LAB / "topology.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_topology_renders_three_panels_to_png(lang):
    topo = _topology()
    ARTIFACTS.mkdir(exist_ok=True)
    out = topo.render(ARTIFACTS / f"lab05-topologies.{lang}.png", lang)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    fig = topo.figure(lang)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 3
    assert any("mon-reseau-prive" in t for t in titles)
    assert any("br0" in t for t in titles) and any("reseau-isole" in t for t in titles)
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert {"test-debian-12", "web-server-prod"} <= texts


def test_notebook_topology_cells_run_in_a_real_kernel():
    """The ```python notebook cells of both instructions, as `virtlab build` makes them."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from checker.build import lab_notebook
    from checker.catalog import resolve

    nb = nbformat.reads(lab_notebook(resolve("05-networks")), as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "topology.py" in c.source]
    assert len(cells) == 2  # French and English
    small = nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata)
    nbclient.NotebookClient(small, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}}).execute()
    for c in small.cells:
        pngs = [o for o in c.outputs if "image/png" in o.get("data", {})]
        assert len(pngs) == 1, c.outputs


def test_topology_module_needs_no_pyplot_nor_network():
    import ast

    tree = ast.parse((LAB / "topology.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert all(m.split(".")[0] in {"__future__", "io", "pathlib", "matplotlib"}
               or m == "checker.i18n" for m in imported), imported
    assert not any("pyplot" in m for m in imported), imported


def test_instructions_use_the_notebook_marker_and_cover_the_course():
    for lang in ("fr", "en"):
        md = (LAB / f"instructions.{lang}.md").read_text()
        assert "```python notebook" in md and "topology.py" in md
        assert "!!! warning \"Debian 13" in md and "bridge-utils" in md
        # the releases' own commands, side by side (Debian 13 first)
        assert md.index('=== "Debian 13 (trixie)"') < md.index('=== "Debian 12 (bookworm)"')
        for cmd in ("sudo dhcpcd br0", "sudo dhclient br0", "controller br0", "master br0",
                    "--osinfo debian13", "--osinfo debian11"):
            assert cmd in md, cmd
        for cmd in ("virsh net-list", "brctl show", "virsh net-dhcp-leases", "tcpdump -ni virbr1",
                    # the revert stops br0 while its configuration still exists
                    "ifdown br0; cp /etc/network/interfaces.bak /etc/network/interfaces",
                    "at now + 5 minutes", "sleep 300",
                    '=== "virt-manager"', "<forward mode='nat'/>"):
            assert cmd in md, (lang, cmd)


# --- the real thing: helpers ---------------------------------------------------------------

NAT_XML = """<network>
  <name>mon-reseau-prive</name>
  <forward mode='{mode}'/>
  <bridge name='{bridge}' stp='on' delay='0'/>
  <ip address='192.168.100.1' netmask='255.255.255.0'>
    <dhcp><range start='{start}' end='192.168.100.{end}'/></dhcp>
  </ip>
</network>"""
ISO_XML = """<network>
  <name>reseau-isole</name>{forward}
  <bridge name='virbr2' stp='on' delay='0'/>
  <ip address='192.168.200.1' netmask='255.255.255.0'/>
</network>"""


def nat_xml(mode="nat", bridge="virbr1", start="192.168.100.100", end=200):
    return NAT_XML.format(mode=mode, bridge=bridge, start=start, end=end)


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import cannot_run  # a failure in CI, a visible skip elsewhere
    from guest import GuestBuildError, build_guest

    if os.geteuid() != 0:
        cannot_run("the real-guest tests need root (sandbox)")
    try:
        return build_guest(tmp_path_factory.mktemp("lab05-guest"))
    except GuestBuildError as e:
        cannot_run(f"cannot build the tiny guest: {e}")


def install_guest(sandbox, guest) -> dict[str, str]:
    """Copy kernel and initrd where the daemon sees them; the domain_xml boot arguments."""
    shutil.copyfile(guest.kernel, sandbox.images("lab05-vmlinuz"))
    shutil.copyfile(guest.initrd, sandbox.images("lab05-initrd.gz"))
    return {"kernel": "/var/lib/libvirt/images/lab05-vmlinuz",
            "initrd": "/var/lib/libvirt/images/lab05-initrd.gz", "cmdline": guest.cmdline}


def with_console_log(xml: str, name: str) -> str:
    """The guest's serial console into a file of the images folder (for failure reports)."""
    return xml.replace("<memballoon", "<serial type='file'><source path='/var/lib/libvirt/"
                       f"images/{name}.console'/><target port='0'/></serial><memballoon", 1)


def console(sandbox, name: str) -> str:
    try:
        return sandbox.images(f"{name}.console").read_text(errors="replace")[-2000:]
    except OSError:
        return "(no console log)"


def leases(sandbox, network="mon-reseau-prive") -> list[dict[str, Any]]:
    return list(sandbox.conn().networkLookupByName(network).DHCPLeases())


def wait_lease(sandbox, mac: str, timeout: float = LEASE_TIMEOUT) -> tuple[dict[str, Any], float]:
    """Poll the network's lease list until ``mac`` holds a lease; (lease, seconds waited)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for le in leases(sandbox):
            if le["mac"].lower() == mac.lower():
                return le, time.monotonic() - t0
        time.sleep(0.25)
    pytest.fail(f"no DHCP lease for {mac} within {timeout} s; guest console:\n"
                f"{console(sandbox, 'test-debian-12')}")


def run_check(sandbox, in_netns: bool = True) -> tuple[dict[str, str], dict[str, Any]]:
    """`virtlab check 05` on the learner's host of ``sandbox`` (in its namespace or not)."""
    r = sandbox.virtlab("check", "05", "--connect", sandbox.uri, "--format", "json",
                        "--lang", "en", netns=in_netns)
    assert r.returncode in (0, 1), f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    report = json.loads(r.stdout)
    return {o["id"]: o["status"] for o in report["objectives"]}, report


def failing(st_: dict[str, str]) -> set[str]:
    return {k for k, v in st_.items() if v != "pass"}


def message(report: dict[str, Any], oid: str) -> str:
    return next(o["message"] for o in report["objectives"] if o["id"] == oid)


class Scene:
    """What one test session adds to the sandbox's namespace for lab 05, and its removal."""

    PORT, PEER = "vl5port", "vl5peer"

    def __init__(self, sandbox):
        self.sb = sandbox
        self.etc_net = sandbox.etc_network  # what the namespace's commands see as /etc/network
        self.etc_netns = self.etc_net.parent
        self.ns_etc = Path("/etc/netns") in self.etc_net.parents  # `ip netns exec`'s binds
        self.made_netns_root = False
        self.made_netns_dir = False

    def ip(self, *args: str) -> None:
        r = self.sb.netns_exec(["ip", *args])
        assert r.returncode == 0, f"ip {' '.join(args)}: {r.stderr}"

    def make_etc(self) -> None:
        if self.ns_etc and not Path("/etc/network").is_dir():
            pytest.fail("/etc/network is missing on this machine: `ip netns exec` needs it as "
                        "the mount point of /etc/netns/<ns>/network (install bridge-utils)")
        if self.ns_etc and not Path("/etc/netns").exists():
            self.made_netns_root = True
        if self.ns_etc and not self.etc_netns.exists():
            self.made_netns_dir = True
        (self.etc_net / "interfaces.d").mkdir(parents=True, exist_ok=True)
        (self.etc_net / "interfaces").write_text(DEBIAN_DEFAULT)

    def make_port(self) -> None:
        """A veth pair inside the namespace: one end becomes br0's port (like eth0)."""
        self.ip("link", "add", self.PORT, "type", "veth", "peer", "name", self.PEER)
        self.ip("link", "set", self.PEER, "up")

    def remove(self) -> None:
        for dev in ("br0", self.PORT):
            self.sb.netns_exec(["ip", "link", "del", dev])
        if self.etc_net.exists():
            shutil.rmtree(self.etc_net)
        if not self.ns_etc:  # the rootfs sandbox's own /etc/network folder: keep it, empty
            self.etc_net.mkdir()
        for d, made in ((self.etc_netns, self.made_netns_dir),
                        (Path("/etc/netns"), self.made_netns_root)):
            if made and d.is_dir() and not any(d.iterdir()):
                d.rmdir()

    def lab04_vm(self, guest) -> None:
        """test-debian-12 as lab 04 leaves it (NIC on `default`), booting the tiny guest."""
        boot = install_guest(self.sb, guest)
        xml = self.sb.domain_xml("test-debian-12", nics=[{"network": "default",
                                                          "mac": NAT_VM_MAC}], **boot)
        self.sb.conn().defineXML(with_console_log(xml, "test-debian-12"))


# --- the real thing: lease timing and bad networks (each from a clean sandbox) -----------

@pytest.mark.integration
def test_lease_objective_passes_only_once_the_guest_holds_its_lease(clean_release_sandbox, guest):
    sb = clean_release_sandbox
    c = sb.conn()
    net = c.networkDefineXML(nat_xml())
    net.create()
    boot = install_guest(sb, guest)
    xml = with_console_log(sb.domain_xml("test-debian-12", nics=[{"network": "mon-reseau-prive",
                                                                  "mac": NAT_VM_MAC}], **boot),
                           "test-debian-12")
    dom = c.defineXML(xml)
    try:
        dom.create()
        st_, rep = run_check(sb, in_netns=False)
        # the checker ran before the guest could have asked; prove it with the lease list
        assert not [le for le in leases(sb) if le["mac"] == NAT_VM_MAC]
        assert st_["vm-dhcp-lease"] == "fail"
        assert "No DHCP lease" in message(rep, "vm-dhcp-lease")
        lease, waited = wait_lease(sb, NAT_VM_MAC)
        assert lease["ipaddr"].startswith("192.168.100.")
        assert 100 <= int(lease["ipaddr"].rsplit(".", 1)[1]) <= 200
        st_, rep = run_check(sb, in_netns=False)
        assert st_["vm-dhcp-lease"] == "pass", message(rep, "vm-dhcp-lease")
        assert lease["ipaddr"] in message(rep, "vm-dhcp-lease")
        print(f"lease {lease['ipaddr']} after {waited:.1f} s")
    finally:
        if dom.isActive():
            dom.destroy()


@pytest.mark.integration
@pytest.mark.parametrize("xml, expected", [
    # (libvirt itself refuses NAT without an <ip>: this one is isolated)
    ("<network><name>mon-reseau-prive</name><bridge name='virbr1'/></network>",
     "no <ip> element"),
    ("<network><name>mon-reseau-prive</name><forward mode='nat'/><bridge name='virbr1'/>"
     "<ip address='192.168.100.1' prefix='24'/></network>", "no DHCP range"),
    ("<network><name>mon-reseau-prive</name><bridge name='virbr1'/>"
     "<ip family='ipv6' address='fd00:5::1' prefix='64'/></network>", "IPv6 only"),
], ids=["no-ip", "no-dhcp", "ipv6-only"])
def test_networks_without_ip_or_dhcp_are_reported_clearly(clean_release_sandbox, xml, expected):
    clean_release_sandbox.conn().networkDefineXML(xml)
    st_, rep = run_check(clean_release_sandbox, in_netns=False)
    assert st_["net-nat-addressing"] == "fail"
    assert expected in message(rep, "net-nat-addressing")
    assert "error" not in st_.values(), rep


# --- the real thing: reference solution, then each objective broken alone -----------------

@pytest.fixture(scope="module")
def scene(release_sandbox, guest):
    """The reference solution applied (solution.sh, run inside the namespace, on the
    learner's host of the sandbox: this machine, or the other release's rootfs)."""
    sandbox = release_sandbox
    if not sandbox.running:
        sandbox.start()
    sandbox.reset()
    s = Scene(sandbox)
    try:
        s.make_etc()
        s.make_port()
        s.lab04_vm(guest)
        env = dict(LIBVIRT_DEFAULT_URI=sandbox.uri, BR0_PORT=Scene.PORT,
                   LEASE_TIMEOUT=str(LEASE_TIMEOUT))
        lab = sandbox.lab_path(LAB.name)
        r = sandbox.run(["bash", "-eu", f"{lab}/solution.sh"], netns=True, env=env,
                        cwd=lab, timeout=LEASE_TIMEOUT + 120)
        assert r.returncode == 0, f"solution.sh failed:\n{r.stdout}\n{r.stderr}"
        s.solution_output = r.stdout
        yield s
    finally:
        s.remove()
        sandbox.reset()


@pytest.mark.integration
def test_reference_solution_scores_full_marks(scene):
    st_, rep = run_check(scene.sb)
    assert st_ == dict.fromkeys(OBJECTIVES, "pass"), json.dumps(rep["objectives"], indent=1)
    assert rep["score"] == rep["max_score"] == 20
    # the solution really wrote the namespace's /etc/network, not the machine's
    decl = (scene.etc_net / "interfaces.d" / "br0").read_text()
    assert f"bridge_ports {Scene.PORT}" in decl
    assert not Path("/etc/network/interfaces.d/br0").exists()
    assert "192.168.100." in message(rep, "vm-dhcp-lease")


def _redefine_net(sb, xml: str, start: bool = True) -> None:
    """Replace a network's definition (same UUID, as virsh net-edit does) and restart it."""
    c = sb.conn()
    root = ET.fromstring(xml)
    name = root.findtext("name")
    net = c.networkLookupByName(name)
    if root.find("uuid") is None:
        ET.SubElement(root, "uuid").text = net.UUIDString()
    if net.isActive():
        net.destroy()
    c.networkDefineXML(ET.tostring(root, encoding="unicode"))
    if start:
        c.networkLookupByName(name).create()


def _dom_xml(sb, name: str) -> str:
    import libvirt

    return sb.conn().lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def _edit_nic(xml: str, pred: Callable[[ET.Element], bool],
              change: Callable[[ET.Element], None]) -> str:
    root = ET.fromstring(xml)
    hits = [i for i in root.find("devices").findall("interface") if pred(i)]
    assert hits, "no such interface to edit"
    for i in hits:
        change(i)
    return ET.tostring(root, encoding="unicode")


def _src(i: ET.Element) -> dict[str, str]:
    s = i.find("source")
    return dict(s.attrib) if s is not None else {}


def _set_model(model: str) -> Callable[[ET.Element], None]:
    def change(i: ET.Element) -> None:
        i.find("model").set("type", model)
    return change


def _to_default(i: ET.Element) -> None:
    i.set("type", "network")
    s = i.find("source")
    s.attrib.clear()
    s.set("network", "default")


class Break:
    """One way to break exactly one objective: apply(scene) -> revert callable."""

    def __init__(self, name: str, objective: str, apply: Callable[[Scene], Callable[[], None]],
                 says: str):
        self.name, self.objective, self.apply, self.says = name, objective, apply, says


def b_routed(s):
    _redefine_net(s.sb, nat_xml(mode="route"))
    return lambda: _redefine_net(s.sb, nat_xml())


def b_wide_range(s):
    _redefine_net(s.sb, nat_xml(start="192.168.100.2", end=254))
    return lambda: _redefine_net(s.sb, nat_xml())


def _reboot_guest(s):
    dom = s.sb.conn().lookupByName("test-debian-12")
    if dom.isActive():
        dom.destroy()
    dom.create()
    wait_lease(s.sb, NAT_VM_MAC)


def b_wrong_bridge(s):
    # The leases live in a file named after the bridge: under virbr9 the guest must ask
    # again, so it is rebooted (then it holds a lease from mon-reseau-prive on virbr9).
    _redefine_net(s.sb, nat_xml(bridge="virbr9"))
    _reboot_guest(s)

    def revert():
        _redefine_net(s.sb, nat_xml())
        _reboot_guest(s)
    return revert


def b_nat_stopped(s):
    s.sb.conn().networkLookupByName("mon-reseau-prive").destroy()
    return lambda: s.sb.conn().networkLookupByName("mon-reseau-prive").create()


def b_no_autostart(s):
    s.sb.conn().networkLookupByName("mon-reseau-prive").setAutostart(0)
    return lambda: s.sb.conn().networkLookupByName("mon-reseau-prive").setAutostart(1)


def b_isolated_forwards(s):
    _redefine_net(s.sb, ISO_XML.format(forward="\n  <forward mode='nat'/>"))
    return lambda: _redefine_net(s.sb, ISO_XML.format(forward=""))


def b_isolated_stopped(s):
    s.sb.conn().networkLookupByName("reseau-isole").destroy()
    return lambda: s.sb.conn().networkLookupByName("reseau-isole").create()


def b_bridge_no_port(s):
    s.ip("link", "set", Scene.PORT, "nomaster")
    return lambda: s.ip("link", "set", Scene.PORT, "master", "br0")


def b_bridge_down(s):
    s.ip("link", "set", "br0", "down")
    return lambda: s.ip("link", "set", "br0", "up")


def b_bridge_missing(s):
    s.ip("link", "del", "br0")

    def revert():
        s.ip("link", "add", "br0", "type", "bridge", "forward_delay", "0")
        s.ip("link", "set", Scene.PORT, "master", "br0")
        s.ip("link", "set", "br0", "up")
    return revert


def b_not_persistent(s):
    f = s.etc_net / "interfaces.d" / "br0"
    saved = f.read_text()
    f.unlink()
    return lambda: f.write_text(saved)


def b_no_auto_line(s):
    f = s.etc_net / "interfaces.d" / "br0"
    saved = f.read_text()
    f.write_text(saved.replace("auto br0\n", ""))
    return lambda: f.write_text(saved)


def b_not_sourced(s):
    f = s.etc_net / "interfaces"
    saved = f.read_text()
    f.write_text(saved.replace("source /etc/network/interfaces.d/*", "# source disabled"))
    return lambda: f.write_text(saved)


def _redefine_dom(s, name, xml):
    s.sb.conn().defineXML(xml)


def b_nat_nic_e1000(s):
    # A running domain shows its live XML: stop it, change the model, leave it off. Its
    # lease (same MAC) stays valid, so only the NIC objective fails.
    dom = s.sb.conn().lookupByName("test-debian-12")
    saved = _dom_xml(s.sb, "test-debian-12")
    dom.destroy()
    _redefine_dom(s, "test-debian-12", _edit_nic(
        saved, lambda i: _src(i).get("network") == "mon-reseau-prive", _set_model("e1000")))

    def revert():
        _redefine_dom(s, "test-debian-12", saved)
        s.sb.conn().lookupByName("test-debian-12").create()
    return revert


def _web_edit(pred, change):
    def apply(s):
        saved = _dom_xml(s.sb, "web-server-prod")
        _redefine_dom(s, "web-server-prod", _edit_nic(saved, pred, change))
        return lambda: _redefine_dom(s, "web-server-prod", saved)
    return apply


def _on_br0(i):
    return _src(i).get("bridge") == "br0"


def _on_iso(i):
    return _src(i).get("network") == "reseau-isole"


def b_blank_disk(s):
    """test-debian-12 without its OS: a blank disk, a new NIC (new MAC), no lease."""
    sb = s.sb
    dom = sb.conn().lookupByName("test-debian-12")
    saved = _dom_xml(sb, "test-debian-12")
    dom.destroy()
    dom.undefine()
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(sb.images("lab05-blank.qcow2")),
                    "1G"], check=True, capture_output=True)
    new_mac = "52:54:00:05:00:99"
    xml = sb.domain_xml("test-debian-12",
                        disks=[{"path": "/var/lib/libvirt/images/lab05-blank.qcow2"}],
                        nics=[{"network": "mon-reseau-prive", "mac": new_mac}])
    blank = sb.conn().defineXML(xml)
    blank.create()
    # SeaBIOS finds nothing to boot and never asks for an address: give it a few seconds
    # (more than the tiny guest needs to get one) and make sure no lease appeared.
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        assert not [le for le in leases(sb) if le["mac"] == new_mac]
        time.sleep(0.5)

    def revert():
        blank.destroy()
        blank.undefine()
        sb.conn().defineXML(saved).create()
    return revert


BREAKS = [
    Break("routed-instead-of-nat", "net-nat-defined", b_routed, "'route'"),
    Break("dhcp-range-too-wide", "net-nat-addressing", b_wide_range,
          "192.168.100.2–192.168.100.254"),
    Break("wrong-bridge-name", "net-nat-addressing", b_wrong_bridge,
          "bridge virbr9 instead of virbr1"),
    Break("nat-stopped", "net-nat-active", b_nat_stopped, "stopped"),
    Break("nat-no-autostart", "net-nat-autostart", b_no_autostart, "net-autostart"),
    Break("isolated-forwards", "net-isolated", b_isolated_forwards, "<forward mode='nat'/>"),
    Break("isolated-stopped", "net-isolated", b_isolated_stopped, "stopped"),
    Break("bridge-without-port", "host-bridge", b_bridge_no_port, "has no port"),
    Break("bridge-down", "host-bridge", b_bridge_down, "is down"),
    Break("bridge-missing", "host-bridge", b_bridge_missing, "No interface br0"),
    Break("bridge-not-declared", "host-bridge-persistent", b_not_persistent, "declared nowhere"),
    Break("bridge-without-auto", "host-bridge-persistent", b_no_auto_line, "no 'auto br0' line"),
    Break("interfaces-d-not-sourced", "host-bridge-persistent", b_not_sourced,
          "Files not read by ifupdown: /etc/network/interfaces.d/br0"),
    Break("nat-nic-e1000", "vm-nic-nat", b_nat_nic_e1000, "e1000"),
    Break("bridge-nic-on-wrong-network", "vm-nic-bridge",
          _web_edit(_on_br0, _to_default), "no interface of type bridge on br0"),
    Break("bridge-nic-e1000", "vm-nic-bridge", _web_edit(_on_br0, _set_model("e1000")), "e1000"),
    Break("isolated-nic-on-wrong-network", "vm-nic-isolated",
          _web_edit(_on_iso, _to_default), "No VM has an interface on reseau-isole"),
    Break("guest-without-os", "vm-dhcp-lease", b_blank_disk, "No DHCP lease"),
]


@pytest.mark.integration
@pytest.mark.parametrize("brk", BREAKS, ids=[b.name for b in BREAKS])
def test_breaking_one_part_fails_exactly_that_objective(scene, brk):
    revert = brk.apply(scene)
    try:
        st_, rep = run_check(scene.sb)
        assert failing(st_) == {brk.objective}, json.dumps(
            [o for o in rep["objectives"] if o["status"] != "pass"], indent=1)
        assert st_[brk.objective] == "fail"
        assert brk.says in message(rep, brk.objective)
    finally:
        revert()
    st_, rep = run_check(scene.sb)
    assert failing(st_) == set(), f"revert of {brk.name} left: {failing(st_)}"


@pytest.mark.integration
def test_other_persistent_declarations_are_accepted(scene):
    """NetworkManager and systemd-networkd declarations, through the namespace's /etc."""
    restore = b_not_persistent(scene)  # no ifupdown declaration any more
    made = []
    try:
        for sub, name, text in (
            ("NetworkManager/system-connections", "br0.nmconnection",
             "[connection]\nid=br0\ntype=bridge\ninterface-name=br0\n"),
            ("systemd/network", "br0.netdev", "[NetDev]\nName=br0\nKind=bridge\n"),
        ):
            etc = scene.etc_netns if scene.ns_etc else scene.sb.host_path("/etc")
            real = Path("/etc") / sub.split("/")[0]
            if scene.ns_etc and not real.is_dir():
                continue  # `ip netns exec` can only mount over an existing /etc/<dir>
            d = etc / sub
            # only the folders made here are removed after (the rootfs's /etc is its own)
            made += [f for f in [d, *d.parents] if etc in f.parents and not f.exists()][::-1]
            d.mkdir(parents=True, exist_ok=True)
            (d / name).write_text(text)
            made.append(d / name)
            st_, rep = run_check(scene.sb)
            assert st_["host-bridge-persistent"] == "pass", message(rep, "host-bridge-persistent")
        if not made:
            pytest.skip("neither /etc/NetworkManager nor /etc/systemd exists on this machine")
    finally:
        for f in reversed(made):
            if f.is_dir():
                f.rmdir()
            else:
                f.unlink(missing_ok=True)
        restore()
    st_, _ = run_check(scene.sb)
    assert st_["host-bridge-persistent"] == "pass"


@pytest.mark.integration
def test_scene_removal_leaves_nothing_behind(scene):
    sb = scene.sb
    scene.remove()
    sb.reset()
    links = sb.netns_exec(["ip", "-o", "link", "show"]).stdout
    assert "br0" not in links and Scene.PORT not in links and Scene.PEER not in links
    assert not scene.etc_net.exists() or not any(scene.etc_net.iterdir())
    assert [d.name() for d in sb.conn().listAllDomains(0)] == []
    assert [n.name() for n in sb.conn().listAllNetworks(0)] == ["default"]
    assert not any(sb.images_dir.iterdir())
