"""libvirt is read in as few calls as its API allows (issue #17): over ``qemu+ssh`` every call
is a network round trip.

Counted, not timed: libvirt's own client log (``LIBVIRT_LOG_OUTPUTS``, in the checking
process only) names every public API call and every RPC message the client sends to a real
libvirtd (tests/sandbox.py) with labs 03, 04 and 07 solved. Each lab checked alone, and the
three graded as one job (``checker.grade.worker.grade_host``, as a grading worker does), must
open one connection, list each kind of object once per flag, read each XML once, and never
look an object up by name or ask its flags one by one. A memo must not outlive its run: a
new run (a re-check, the watch) sees what changed (checked on libvirt's ``test:///default``).
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import solved_state

#: libvirt's remote program and its CONNECT_OPEN procedure (remote_protocol.x)
REMOTE_PROGRAM, PROC_OPEN = 536903814, 1
TX = re.compile(r"RPC_CLIENT_MSG_TX_QUEUE: .*? prog=(\d+) vers=\d+ proc=(\d+) ")
API = re.compile(r" : (vir[A-Z]\w+):\d+ : (.*)$")
FLAGS = re.compile(r"flags=(0x[0-9a-f]+)")
DOM_NAME = re.compile(r"\(VM: name=([^,]+),")
#: calls that a listing or its handles answer: none is made
NEVER = ("virDomainLookupByName", "virNetworkLookupByName", "virStoragePoolLookupByName",
         "virDomainIsActive", "virDomainIsPersistent", "virDomainGetAutostart",
         "virDomainGetState", "virDomainGetInfo", "virDomainSnapshotNum",
         "virNetworkIsActive", "virNetworkIsPersistent", "virNetworkGetAutostart",
         "virStoragePoolIsActive", "virStoragePoolIsPersistent", "virStoragePoolGetAutostart",
         "virStorageVolGetInfo")
LISTINGS = ("virConnectListAllDomains", "virConnectGetAllDomainStats",
            "virConnectListAllNetworks", "virConnectListAllStoragePools")


class Calls:
    """What one process's libvirt client log says it did."""

    def __init__(self, log: Path) -> None:
        self.rpcs = 0
        self.opens = 0
        self.api: collections.Counter[tuple[str, str]] = collections.Counter()
        self.domain_xml: collections.Counter[tuple[str, str]] = collections.Counter()
        for line in log.read_text(errors="replace").splitlines():
            if (m := TX.search(line)) is not None:
                self.rpcs += 1
                self.opens += (int(m[1]), int(m[2])) == (REMOTE_PROGRAM, PROC_OPEN)
            elif (a := API.search(line)) is not None:
                flags = (FLAGS.search(a[2]) or ["", ""])[1]
                self.api[(a[1], flags)] += 1
                if a[1] == "virDomainGetXMLDesc" and (d := DOM_NAME.search(a[2])):
                    self.domain_xml[(d[1], flags)] += 1

    def count(self, name: str) -> int:
        return sum(n for (api, _), n in self.api.items() if api == name)


def log_env(log: Path) -> dict[str, str]:
    return {"LIBVIRT_LOG_FILTERS": "1:rpc.netclient 1:libvirt",
            "LIBVIRT_LOG_OUTPUTS": f"1:file:{log}"}


@pytest.fixture(scope="module")
def solved(sandbox: Any) -> Iterator[Any]:
    """Labs 03 and 04 solved, lab 07's scene started and solved."""
    with solved_state(sandbox, ("03", "04", "07"), start="07") as user:
        yield sandbox, user


def objects(sb: Any) -> dict[str, int]:
    c = sb.conn()
    doms = c.listAllDomains(0)
    return {"domains": len(doms),
            "live_configs": sum(d.isActive() and d.isPersistent() for d in doms),
            "networks": len(c.listAllNetworks(0)), "pools": len(c.listAllStoragePools(0))}


def assert_minimal(calls: Calls, have: dict[str, int], what: str) -> None:
    assert calls.opens == 1, f"{what}: {calls.opens} connections opened"
    for name in NEVER:
        assert calls.count(name) == 0, f"{what}: {name} called {calls.count(name)}×"
    for (api, flags), n in calls.api.items():
        if api in LISTINGS:
            assert n == 1, f"{what}: {api} flags={flags} called {n}×"
    twice = {k: n for k, n in calls.domain_xml.items() if n > 1}
    assert not twice, f"{what}: a domain's XML read more than once: {twice}"
    assert calls.count("virDomainGetXMLDesc") <= have["domains"] + have["live_configs"]
    assert calls.count("virNetworkGetXMLDesc") <= have["networks"]
    assert calls.count("virStoragePoolGetXMLDesc") <= have["pools"]
    assert calls.count("virDomainListAllSnapshots") <= have["domains"]


def budget(have: dict[str, int]) -> int:
    """Every RPC a run may send at most: the handshake and close (5), the listings (3 each
    for domains, networks, pools), each XML once, a snapshot listing per domain, one volume
    read (lookup, pool, XML) and the host's memory."""
    return (5 + 3 + 3 + 3 + have["domains"] + have["live_configs"] + have["networks"]
            + have["pools"] + have["domains"] + 3 + 1)


@pytest.mark.integration
@pytest.mark.parametrize("lab", ["03", "04", "07"])
def test_a_lab_reads_libvirt_in_few_calls(solved: Any, lab: str, tmp_path: Path) -> None:
    sb, user = solved
    have = objects(sb)
    log = tmp_path / "libvirt.log"
    r = sb.virtlab("check", lab, "--connect", sb.uri, "--user", user, "--format", "json",
                   env=log_env(log))
    report = json.loads(r.stdout)
    assert report["score"] == report["max_score"], r.stdout + r.stderr  # verdicts unchanged
    calls = Calls(log)
    assert_minimal(calls, have, f"lab {lab}")
    assert 0 < calls.rpcs <= budget(have), (calls.rpcs, calls.api)


@pytest.mark.integration
def test_a_grading_job_shares_one_connection_and_one_snapshot(solved: Any,
                                                              tmp_path: Path) -> None:
    """Labs 03, 04 and 07 graded as one job: one handshake, each listing and each XML once
    for the three labs, and fewer calls than the three labs checked one by one."""
    sb, user = solved
    have = objects(sb)
    log = tmp_path / "libvirt.log"
    code = ("import json, sys\n"
            "from checker.grade.worker import grade_host\n"
            "a = grade_host({'host': 'h', 'spec': 'local://', 'connect': sys.argv[1],\n"
            "                'user': sys.argv[2], 'labs': ['03', '04', '07'], 'lang': 'en'})\n"
            "print(json.dumps([(x['status'], x['report']['score'], x['report']['max_score'])\n"
            "                  for x in a['results']]))\n")
    r = sb.python(code, sb.uri, user, env=log_env(log))
    assert r.returncode == 0, r.stdout + r.stderr
    for status, score, top in json.loads(r.stdout.strip().splitlines()[-1]):
        assert (status, score) == ("graded", top)
    calls = Calls(log)
    assert_minimal(calls, have, "job 03+04+07")
    assert calls.count("virConnectClose") == 1  # closed with the job
    assert calls.rpcs <= budget(have), (calls.rpcs, calls.api)


def test_one_run_reads_libvirt_once_and_the_next_run_afresh() -> None:
    """Within one output budget (a check, or a host's grading job) the ``virt`` of every lab
    is one snapshot; the next budget (a re-check, the watch) sees what changed since."""
    import libvirt

    from checker.probes.libvirt import CONNECTIONS, for_run
    from checker.probes.output import budget as output_budget

    uri = "test:///default"
    rw = libvirt.open(uri)
    name = "vl-calls-fresh"
    try:
        with output_budget(reuse=False):
            first = for_run(uri, CONNECTIONS)
            assert for_run(uri, CONNECTIONS) is first  # the next lab of the job
            assert first.domain(name) is None
            rw.defineXML(f"<domain type='test'><name>{name}</name><memory>65536</memory>"
                         "<os><type>hvm</type></os></domain>")
            assert first.domain(name) is None and name not in first.domain_names  # one snapshot
        with output_budget(reuse=False):
            again = for_run(uri, CONNECTIONS)
            assert again is not first
            dom = again.domain(name)
            assert dom is not None and dom.persistent and not dom.active
            assert name in again.domain_names
        with output_budget(reuse=False):
            lost = for_run(uri, CONNECTIONS)
            assert lost.domain_names
            lost.daemon_gone()  # the daemon died during a lab: the job's next lab reconnects
            assert for_run(uri, CONNECTIONS) is not lost
        assert for_run(uri, None) is not for_run(uri, None)  # no budget: a Virt each time
    finally:
        try:
            rw.lookupByName(name).undefine()
        except libvirt.libvirtError:
            pass
        rw.close()
        CONNECTIONS.close_all()


@pytest.mark.integration
def test_a_volume_is_read_from_its_xml_and_a_deleted_one_is_unreadable(clean_sandbox: Any,
                                                                      tmp_path: Path) -> None:
    """A volume is read from its XML alone (path, sizes, format; libvirt refreshes it for
    ``XMLDesc`` as for ``info``): its file deleted behind libvirt's back, it is reported as
    unreadable, by path and by pool and name, not as absent."""
    from checker.probes.libvirt import Virt, VolumeUnreadable

    sb = clean_sandbox
    c = sb.conn()
    pool = c.storagePoolCreateXML(
        f"<pool type='dir'><name>vl-calls</name><target><path>{tmp_path}</path></target>"
        "</pool>", 0)
    try:
        vol = pool.createXML("<volume><name>d.qcow2</name><capacity>1048576</capacity>"
                             "<target><format type='qcow2'/></target></volume>", 0)
        path = vol.path()
        virt = Virt(sb.uri)
        try:
            info = virt.volume_by_path(path)
            assert info is not None
            assert (info.name, info.path, info.pool, info.format, info.capacity) == (
                "d.qcow2", path, "vl-calls", "qcow2", 1048576)
            assert info.allocation > 0
            assert virt.volume("vl-calls", "d.qcow2") == info
            assert virt.volume("vl-calls", "nope.qcow2") is None
            Path(path).unlink()
            for read in (lambda v: v.volume_by_path(path),
                         lambda v: v.volume("vl-calls", "d.qcow2")):
                fresh = Virt(sb.uri)
                try:
                    with pytest.raises(VolumeUnreadable) as e:
                        read(fresh)
                    assert e.value.path == path
                finally:
                    fresh.close()
        finally:
            virt.close()
    finally:
        pool.destroy()


def test_calls_made_together_answer_in_order_and_raise_what_one_raised() -> None:
    """checker.probes.libvirt.together: the listings and XML reads made at once from threads
    (they then share round trips) give their results in the callers' order, and an error
    of one call (a libvirt error: no such domain, a lost connection) is not swallowed."""
    import threading

    import libvirt

    from checker.probes.libvirt import MAX_IN_FLIGHT, together

    seen: set[int] = set()

    def call(i: int) -> int:
        seen.add(threading.get_ident())
        return i * i

    n = MAX_IN_FLIGHT + 4
    assert together(*(lambda i=i: call(i) for i in range(n))) == [i * i for i in range(n)]
    assert len(seen) > 1  # made from several threads
    assert together() == [] and together(lambda: 7) == [7]

    conn = libvirt.open("test:///default")
    try:
        with pytest.raises(libvirt.libvirtError) as e:
            together(lambda: 1, lambda: conn.lookupByName("vl-calls-no-such-domain"))
        assert e.value.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
    finally:
        conn.close()


@pytest.mark.integration
def test_a_snapshot_read_ahead_is_the_one_the_checks_read(solved: Any, tmp_path: Path) -> None:
    """Virt.preload (a grading job on a remote host starts it once the host answered): the
    connection, each listing and each XML read once in a thread of its own; once joined,
    the checks' reads make no call of their own and see the same facts."""
    sb, _ = solved
    have = objects(sb)
    log = tmp_path / "libvirt.log"
    code = ("import json, sys, threading\n"
            "from checker.probes.libvirt import Virt\n"
            "v = Virt(sys.argv[1])\n"
            "v.preload(['domains', 'networks', 'pools', 'domain-configs', 'snapshots',\n"
            "           'version', 'unknown-kind'])\n"
            "v.preload(['domains'])\n"  # at most once per Virt
            "v.wait()\n"
            "print(json.dumps({'threads': threading.active_count(),\n"
            "  'domains': [d.name for d in v.domains()],\n"
            "  'networks': [n.name for n in v.networks()],\n"
            "  'pools': [p.name for p in v.pools()],\n"
            "  'configs': [bool(v.domain_config(d)) for d in v.domain_names],\n"
            "  'snapshots': [v.snapshot_names(d) for d in v.domain_names],\n"
            "  'versions': [v.lib_version(), v.hypervisor_version()]}))\n"
            "v.close()\n")
    r = sb.python(code, sb.uri, env=log_env(log))
    assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["threads"] == 1  # joined
    c = sb.conn()
    assert got["domains"] == sorted(d.name() for d in c.listAllDomains(0))
    assert got["networks"] == sorted(n.name() for n in c.listAllNetworks(0))
    assert got["pools"] == sorted(p.name() for p in c.listAllStoragePools(0))
    calls = Calls(log)
    assert_minimal(calls, have, "preload")
    assert calls.count("virDomainGetXMLDesc") == have["domains"] + have["live_configs"]
    assert calls.count("virDomainListAllSnapshots") == have["domains"]
    assert all(got["configs"]) and len(got["snapshots"]) == have["domains"]
    assert calls.count("virNetworkGetXMLDesc") == have["networks"]
    assert calls.count("virStoragePoolGetXMLDesc") == have["pools"]
    # the daemon's versions (lab 02), read with the listings, once
    assert calls.count("virConnectGetLibVersion") == calls.count("virConnectGetVersion") == 1
    v = c.getVersion()
    assert got["versions"] == [c.getLibVersion(), f"{v // 1000000}.{v // 1000 % 1000}.{v % 1000}"]


def test_a_failed_read_ahead_is_reported_by_the_check_as_before(tmp_path: Path) -> None:
    """No daemon: the read-ahead reports nothing; the check that reads the Virt gets the
    error it got without it (a daemon that is down, with libvirt's reason)."""
    from checker.probes.libvirt import LibvirtUnavailable, Virt

    uri = f"qemu:///system?socket={tmp_path}/no-such-sock"
    ahead, plain = Virt(uri), Virt(uri)
    ahead.preload(["domains", "networks"])
    ahead.wait()
    errors = []
    for v in (ahead, plain):
        with pytest.raises(LibvirtUnavailable) as e:
            v.domains()
        errors.append((e.value.kind, e.value.message))
    assert errors[0] == errors[1]
    assert errors[0][0] == "daemon-down"


def test_what_each_lab_reads_ahead() -> None:
    """What each lab reads ahead (checker.engine, from a job's first run): the kinds its
    checks declare in ``VIRT_PREFETCH`` (lab 02 its versions: it reads what systemd shows
    in the prefetch exchange, before anything connects); a lab that never asks for
    ``virt``: nothing."""
    from checker.catalog import resolve
    from checker.engine import lab_virt_prefetch
    from checker.probes.libvirt import Virt

    assert lab_virt_prefetch(resolve("01")) is None
    assert lab_virt_prefetch(resolve("02")) == {"version"}
    for lab in ("03", "04", "05", "07"):
        kinds = lab_virt_prefetch(resolve(lab))
        assert kinds and kinds <= set(Virt.PRELOADS), (lab, kinds)
