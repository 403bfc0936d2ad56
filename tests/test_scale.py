"""Scale and huge outputs: a host with 1,000 domains, a VM description of megabytes, a tool
printing a flood of lines. Checks stay bounded in time and memory, and so do their reports:
testinfra and libvirt hand over outputs whole, so the bound is where we control it, in what
a check keeps (``checker.dsl``: evidence and messages are cut, saying how much was left out).

Time and memory of each CLI run are measured on the process itself (``os.wait4``: its own
maximum RSS), and the bounds are generous (CI machines are slow and shared); the measured
values are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest
from conftest import REPO

from checker.dsl import MAX_EVIDENCE_CHARS, MAX_EVIDENCE_ITEMS, MAX_MESSAGE_CHARS

pytestmark = pytest.mark.integration

N_DOMAINS = 1000
MAX_SECONDS = 90  # per check of a 1,000-domain host (measured: a few seconds)
MAX_RSS_MIB = 400  # per checker process (measured: ~100 MiB)
MAX_REPORT_BYTES = 300_000


def measured(*args: str, env: dict[str, str] | None = None,
             timeout: float = 300) -> tuple[int, str, str, float, float]:
    """Run the CLI; (exit code, stdout, stderr, seconds, max RSS in MiB) of that process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.Popen([sys.executable, "-m", "checker", *args], cwd=REPO, stdout=out,
                             stderr=err, env={**os.environ, **(env or {})})
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                raise AssertionError(f"virtlab {' '.join(args)}: no answer in {timeout} s")
            time.sleep(0.02)
        seconds = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (p.returncode, out.read().decode(), err.read().decode(), seconds,
                usage.ru_maxrss / 1024)


def assert_bounded(report: dict) -> None:
    for o in report["objectives"]:
        assert len(o["message"]) <= MAX_MESSAGE_CHARS + 40, o["id"]

        def walk(v):
            if isinstance(v, str):
                assert len(v) <= MAX_EVIDENCE_CHARS + 40
            elif isinstance(v, list):
                assert len(v) <= MAX_EVIDENCE_ITEMS + 1
                for x in v:
                    walk(x)
            elif isinstance(v, dict):
                assert len(v) <= MAX_EVIDENCE_ITEMS + 1
                for x in v.values():
                    walk(x)
        walk(o["evidence"])


@pytest.fixture(scope="module")
def crowded(sandbox):
    """The sandbox with 1,000 small persistent domains (defined in a few seconds)."""
    if not sandbox.running:
        sandbox.start()
    sandbox.reset()
    c = sandbox.conn()
    t0 = time.monotonic()
    for i in range(N_DOMAINS):
        c.defineXML(sandbox.domain_xml(f"crowd-{i:04d}", memory_mib=64,
                                       description=f"domain {i} of a crowded host"))
    # and the labs' VM, so that lab 04 walks every objective (one sums all domains' memory)
    c.defineXML(sandbox.domain_xml("test-debian-12", vcpus=2, memory_mib=2048,
                                   description="the lab's VM among a crowd"))
    print(f"\n{N_DOMAINS + 1} domains defined in {time.monotonic() - t0:.1f} s")
    assert len(c.listAllDomains(0)) == N_DOMAINS + 1
    yield sandbox
    if not sandbox.running:
        sandbox.start()
    sandbox.reset()


@pytest.mark.parametrize("lab", ["04", "03", "07"])
def test_a_host_with_a_thousand_domains(crowded, lab):
    rc, out, err, seconds, rss = measured("check", lab, "--connect", crowded.uri,
                                          "--format", "json", "--lang", "en")
    print(f"check {lab} with {N_DOMAINS} domains: {seconds:.1f} s, max RSS {rss:.0f} MiB")
    assert rc in (0, 1), out + err
    assert "Traceback" not in err
    report = json.loads(out)
    assert {o["status"] for o in report["objectives"]} <= {"pass", "fail", "skip"}, \
        [(o["id"], o["message"]) for o in report["objectives"] if o["status"] == "error"]
    assert seconds < MAX_SECONDS and rss < MAX_RSS_MIB
    assert len(out) < MAX_REPORT_BYTES
    assert_bounded(report)


def test_a_vm_description_of_megabytes(clean_sandbox):
    """As large as libvirt carries: its RPC refuses a string over 4 MiB ("Unable to encode
    message payload"), so a learner's description stays below that."""
    sb = clean_sandbox
    desc = ("Notes du TP : " + "é" * 60 + "\n") * 22_000  # ~3 MB of UTF-8
    sb.conn().defineXML(sb.domain_xml("test-debian-12", vcpus=2, memory_mib=2048,
                                      description=desc, title="t" * 100_000))
    rc, out, err, seconds, rss = measured("check", "04", "--connect", sb.uri, "--format",
                                          "json", "--lang", "en")
    print(f"check 04 with a {len(desc.encode()) / 1e6:.1f} MB description: {seconds:.1f} s, "
          f"max RSS {rss:.0f} MiB")
    assert rc in (0, 1), out + err
    report = json.loads(out)
    st = {o["id"]: o for o in report["objectives"]}
    assert st["vm-description"]["status"] == "pass"
    assert seconds < 60 and rss < MAX_RSS_MIB and len(out) < MAX_REPORT_BYTES
    assert_bounded(report)
    for fmt in ("html", "junit", "text"):
        rc, out, err, _, _ = measured("check", "04", "--connect", sb.uri, "--format", fmt)
        assert rc in (0, 1) and "Traceback" not in err and len(out) < 2 * MAX_REPORT_BYTES


def test_a_tool_printing_a_flood_of_lines(sandbox, tmp_path):
    """``virt-host-validate`` replaced on PATH by one printing 40,000 failing checks (~3.7 MB,
    under the 4 MiB a command may print, checker.probes.output): the check reads them all,
    keeps a bounded report. (Past the cap the host is not graded: tests/test_threat_flood.py.)"""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "virt-host-validate"
    tool.write_text("#!/bin/sh\nexec python3 -c \"import sys\n"
                    "w = sys.stdout.write\n"
                    "for i in range(40000): w(f'  QEMU: Checking for thing {i:06d}"
                    "                     : FAIL (a detail that goes on and on)\\\\n')\"\n")
    tool.chmod(0o755)
    flood = subprocess.run([str(tool)], capture_output=True, text=True).stdout
    assert flood.count("\n") == 40_000 and len(flood) > 3_500_000
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    rc, out, err, seconds, rss = measured("check", "02", "--connect", sandbox.uri,
                                          "--format", "json", "--lang", "en", env=env)
    print(f"check 02 with a 3.7 MB virt-host-validate: {seconds:.1f} s, max RSS {rss:.0f} MiB")
    assert rc == 1, out + err
    report = json.loads(out)
    hv = {o["id"]: o for o in report["objectives"]}["host-validate"]
    assert hv["status"] == "fail" and "40000 failure(s)" in hv["message"]
    assert hv["message"].endswith("chars)")  # cut, and says so
    assert len(hv["evidence"]["lines"]) == MAX_EVIDENCE_ITEMS + 1
    assert hv["evidence"]["lines"][-1] == f"… (+{40_000 - MAX_EVIDENCE_ITEMS} more)"
    assert seconds < 60 and rss < MAX_RSS_MIB and len(out) < MAX_REPORT_BYTES
    assert_bounded(report)
