"""checker.probes.netdev: /sys/class/net facts, absent only when really absent.

Real parts: this machine's own devices through testinfra's local backend, and a real
``ssh`` client to a loopback port nobody listens on (ssh exits 255: testinfra's ssh backend
raises, as when a learner's machine goes away mid-check). Lab 05's host checks run on
that host must let that error through (the engine reports a lost connection), never
turn it into a verdict saying br0 is missing.
"""

from __future__ import annotations

import inspect

import pytest
import testinfra
from sshd import dead_port

from checker.catalog import resolve
from checker.dsl import Verdict
from checker.engine import load_checks
from checker.probes import ssh_lost
from checker.probes.host import HostFacts
from checker.probes.netdev import NetDevice, net_device, parse_net_device


def _lost_host():
    return testinfra.get_host(f"ssh://root@127.0.0.1:{dead_port()}",
                              ssh_extra_args="-o BatchMode=yes -o ConnectTimeout=5")


def test_a_device_of_this_machine():
    dev = net_device(testinfra.get_host("local://"), "lo")
    assert dev.exists and not dev.is_bridge and dev.ports == ()
    assert dev.admin_up and dev.flags_text is not None and dev.flags_text.startswith("0x")


def test_an_absent_device_is_absent():
    host = testinfra.get_host("local://")
    assert net_device(host, "vlnope0") == NetDevice(name="vlnope0", exists=False)
    # a name the kernel cannot have is absent without asking (and never reaches a path)
    assert not net_device(host, "../../etc").exists
    assert not net_device(host, "a b").exists


def test_parse_a_bridge_with_ports_and_a_down_device():
    br = parse_net_device("br0", "present\nbridge\nflags=0x1002\noperstate=down\n"
                                 "port=vnet1\nport=eth0\n")
    assert br.is_bridge and br.ports == ("eth0", "vnet1") and not br.admin_up
    assert br.operstate == "down" and br.flags_text == "0x1002"
    odd = parse_net_device("x0", "present\nflags=zz\noperstate=\n")
    assert odd.exists and odd.flags is None and odd.operstate is None and not odd.admin_up


def test_a_lost_connection_raises_instead_of_reading_absent():
    with pytest.raises(RuntimeError) as e:
        net_device(_lost_host(), "br0")
    assert ssh_lost(e.value)


@pytest.mark.parametrize("oid", ["host-bridge", "host-bridge-persistent"])
def test_lab05_host_checks_let_a_lost_connection_through(oid):
    """The check raises the backend's error (the engine reports it as a lost connection):
    it never turns it into its own verdict ("no br0", "declared nowhere")."""
    lab = resolve("05")
    host = _lost_host()
    fn = load_checks(lab)[oid]
    values = {"host": host, "facts": HostFacts(host), "obj": Verdict(oid)}
    with pytest.raises(RuntimeError) as e:
        fn(**{k: values[k] for k in inspect.signature(fn).parameters})
    assert ssh_lost(e.value)
