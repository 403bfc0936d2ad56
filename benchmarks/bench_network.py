"""Benchmark: checking and grading over a real network, round trips counted (not a test).

    sudo .venv/bin/python benchmarks/bench_network.py [--rtts 0,1,2,20,60] [--hosts 60]
        [--class-rtts 0,20,60] [--labs 01,...,07] [-n 1] [--pytest-rtts 0,2,20,60]
        [--no-libvirt] [--no-solve] [--skip-check] [--skip-grade] [--skip-pytest]
        [--json FILE] [--selftest]

Loopback hides latency. This benchmark makes a link that delays every frame by an exact
amount, between two private network namespaces it creates (``netlink.DelayedLink``): the
instructor's and the learners'. This kernel has no netem (``modprobe sch_netem`` fails and
``tc qdisc add dev lo root netem delay 10ms`` answers "Specified qdisc kind is unknown"), so
the delay is made by a small userspace forwarder between two TAP devices, which also counts
every frame that crosses. The machine's own network is never used: the addresses
(198.18.0.0/15, RFC 2544's benchmarking range) exist only in the two namespaces.

On the learners' side: one real sshd (``tests/sshd.py``, key authentication, host keys
checked) on port 22 of the learners' namespace, which has one address per learner host
(198.18.1.1, 198.18.1.2, …; each host's key is in known_hosts under its address),
one real learner user (group ``libvirt``) and, unless ``--no-libvirt``, a real libvirtd
(``tests/sandbox.py``) that the hosts' ``qemu+ssh`` connections reach through its socket
(``?socket=…`` in the URI; the sshd session runs libvirt's netcat helper). Each lab whose
contract (``breaks.toml``, tests/contract.py) runs in the libvirt sandbox is started and
solved for that learner, as ``run_all.py`` does; the others (01 reads the hardware, 05's
bridge would live in another namespace, 06 needs VirtualBox, …) are checked as they are.

For each round-trip time (default 0, 1 (a LAN), 2, 20, 60 ms), measured first with ping:

(a) what crosses the wire, per lab and host, from the forwarder's counters: TCP connections
    opened, data-carrying TCP segments from the instructor to the host ("messages"), and
    *turns* (a request after an answer on a connection: round trips the instructor waited
    for); plus the round trips implied by the wall clock, (t(RTT) - t(0)) / RTT;
(b) ``virtlab check NN --host ssh://learner@198.18.1.1`` for each lab, a fresh process each
    (median of ``-n`` runs); the row "all labs" is their sum;
(c) ``virtlab grade`` of the labs on 1 host, then, at the ``--class-rtts`` (default 0, 20
    and 60 ms: a class of 60 takes ~1-2 min per RTT before issue #17's work), on
    ``--hosts`` hosts (default 60, the issue's class size), one process, default
    (automatic) workers; the peak count of grading workers alive is sampled (every 0.25 s,
    the runner's descendants) and shown;
(d) at the ``--pytest-rtts`` (default 0, 2, 20, 60 ms: the slowest part, ~15 min),
    plain ``pytest --hosts=ssh://… labs/NN/checks`` for each lab, with a shared ControlPath
    (``--ssh-config`` with ControlMaster/ControlPath/ControlPersist) and without one. NB: the
    virtlab pytest plugin puts its own ``ControlPath`` in the ssh_config it hands testinfra
    (checker/pytest_plugin.py -> engine._ssh_wrapper) and testinfra always adds
    ``ControlMaster=auto`` (its ``--ssh-extra-args`` option is not passed to the hosts by
    testinfra 10.2's plugin; a host spec's ``?controlpersist=0`` is refused by the virtlab
    plugin), so "shared" is what ``pytest --hosts`` with the plugin does anyway, and
    "without" is obtained with an ``ssh`` first on PATH that adds ``-o ControlMaster=no -o
    ControlPath=none`` before everything else (:data:`NO_MASTER_SSH`): what testinfra alone
    does without a ControlPath, one connection per command. The connection counts on the
    wire show what each variant really opened.

Prints a table and, with ``--json FILE``, writes every figure as JSON. ``run_all.py`` calls
:func:`run`. Everything made (namespaces, forwarder, sshd, ssh masters, libvirtd, the user)
is removed at the end, on an error and on Ctrl-C, by PID / by name it made. ``--selftest``
only checks the link: ping at each RTT within tolerance (``netlink.rtt_ok``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(REPO / "tests"), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import bench_check  # noqa: E402
import netlink  # noqa: E402
from netlink import DelayedLink, RttStats  # noqa: E402
from sshd import SSHD, LearnerUsers, Sshd, SshdError  # noqa: E402

from checker.catalog import lab_dirs  # noqa: E402

#: every lab folder of this checkout, by number (a new lab is measured without a change here)
ALL_LABS = tuple(d.name[:2] for d in lab_dirs(REPO / "labs"))
DEFAULT_RTTS = (0.0, 1.0, 2.0, 20.0, 60.0)
#: the RTTs at which the class (``--hosts``) is graded, and plain pytest runs
DEFAULT_CLASS_RTTS = (0.0, 20.0, 60.0)
DEFAULT_PYTEST_RTTS = (0.0, 2.0, 20.0, 60.0)
DEFAULT_HOSTS = 60
# the targets (#17), for reference in the table
T_SEVEN_LABS_60MS = 3.0
T_CLASS_60MS = 20.0        # 60 hosts x 7 labs at 60 ms
T_MSGS_01_02_06 = 40
TRIO = ("01", "02", "06")
#: plain pytest "without a shared ControlPath": an ``ssh`` first on PATH that forbids
#: multiplexing. ssh keeps the first value of an option, and the virtlab plugin's own wrapper
#: (checker/grade/sshconf.py) execs the first ``ssh`` on PATH that is not one of its wrappers,
#: i.e. this one, which puts these options before all the others.
NO_MASTER_SSH = """#!/bin/sh
# bench_network.py: plain testinfra without a shared ControlPath (one connection per command)
exec {ssh} -o ControlMaster=no -o ControlPath=none "$@"
"""


def say(*a: Any) -> None:
    print(*a, flush=True)


class NetSshd(Sshd):
    """tests/sshd.py's server in the learners' namespace, on port 22 of each of its addresses."""

    def __init__(self, link: DelayedLink, addrs: list[str]) -> None:
        super().__init__()
        self.link = link
        self.addrs = addrs

    def _write_configs(self) -> None:
        super()._write_configs()
        # every address of the learners' namespace (its own, private): one ListenAddress
        # per host would stop at sshd's MAX_LISTEN_SOCKS (16)
        self.config.write_text(self.config.read_text().replace("ListenAddress 127.0.0.1\n",
                                                               "ListenAddress 0.0.0.0\n"))
        pub = self.host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text("".join(f"{a} {pub[0]} {pub[1]}\n" for a in self.addrs))

    def start(self) -> NetSshd:
        if not self.host_key.exists():
            self._keygen(self.host_key, "virtlab-bench-host")
            self._keygen(self.client_key, "virtlab-bench-grader")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.port = 22
        self._write_configs()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.link.exec_prefix("l") + [SSHD, "-D", "-e", "-f",
                                                                       str(self.config)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        probe = ("import socket,sys\n"
                 "s=socket.create_connection((sys.argv[1],22),2)\n"
                 "sys.exit(0 if s.recv(4)==b'SSH-' else 1)\n")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            r = subprocess.run(self.link.exec_prefix("i") + [sys.executable, "-c", probe,
                                                             self.addrs[-1]],
                               capture_output=True)
            if r.returncode == 0:
                return self
            time.sleep(0.1)
        self.stop()
        raise SshdError(f"sshd did not start; its log: {self.log.read_text(errors='replace')}")

    def net_spec(self, user: str, addr: str, query: str = "") -> str:
        return f"ssh://{user}@{addr}" + (f"?{query}" if query else "")


@dataclass
class Run:
    """One timed command and what crossed the link meanwhile."""
    seconds: float
    wire: dict[str, Any]
    note: str = ""
    times: list[float] = field(default_factory=list)
    #: grading workers alive at once, at most (sampled), for ``virtlab grade``
    peak_workers: int | None = None
    #: CPU time of every process of the command on the instructor's side (a cpuacct
    #: cgroup: ssh masters and forked workers included), seconds; None where unavailable
    cpu_s: float | None = None
    #: CPU time spent meanwhile on the learners' side: their sshd (its sessions, the shells
    #: and commands it runs, libvirt's netcat helper) and libvirtd (:class:`LearnerCpu`)
    learner_cpu_s: float | None = None
    #: CPU time spent meanwhile by the sandbox's running QEMU guests (TCG): the bench's own
    #: making, not grading (the solved labs 04 and 07 leave a VM running)
    guest_cpu_s: float | None = None

    @property
    def msgs(self) -> int:
        return int(self.wire["to_learner"]["data_segments"])

    @property
    def conns(self) -> int:
        return int(self.wire["to_learner"]["syns"])

    @property
    def turns(self) -> int:
        return int(self.wire["to_learner"]["turns"])

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "times": self.times, "note": self.note,
                "connections": self.conns, "messages_to_learner": self.msgs,
                "turns": self.turns, "peak_workers": self.peak_workers, "cpu_s": self.cpu_s,
                "learner_cpu_s": self.learner_cpu_s, "guest_cpu_s": self.guest_cpu_s,
                "wire": self.wire}


@dataclass
class NetResult:
    labs: list[str]
    hosts: int
    libvirt: bool
    ping: dict[float, RttStats] = field(default_factory=dict)
    check: dict[float, dict[str, Run]] = field(default_factory=dict)
    grade: dict[float, dict[int, Run]] = field(default_factory=dict)
    #: ``virtlab grade 01 02 06`` of one host at each RTT: the issue's "labs 01+02+06
    #: together", one connection (three ``virtlab check`` runs pay it three times)
    trio: dict[float, Run] = field(default_factory=dict)
    pytest: dict[float, dict[str, dict[str, Run]]] = field(default_factory=dict)
    setup_s: float = 0.0
    class_rtts: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)  # lab -> "solved", "as is", …

    def check_all(self, rtt: float) -> float | None:
        c = self.check.get(rtt)
        return sum(r.seconds for r in c.values()) if c else None

    def msgs(self, labs: tuple[str, ...], rtt: float | None = None) -> int | None:
        """Messages to one host for ``labs``: one grading job of them when measured (the
        trio), else the sum of each lab's own ``virtlab check``."""
        if labs == TRIO and self.trio:
            return self.trio[rtt if rtt is not None else min(self.trio)].msgs
        if not self.check:
            return None
        c = self.check[rtt if rtt is not None else min(self.check)]
        if not all(lab in c for lab in labs):
            return None
        return sum(c[lab].msgs for lab in labs)

    def per_lab(self) -> dict[str, dict[str, Any]]:
        """Per lab and host (``virtlab check``): connections, messages and turns on the wire
        at the lowest RTT measured, and the round trips the clock implies at each RTT of at
        least 10 ms, (t(RTT) - t(lowest)) / RTT."""
        if not self.check:
            return {}
        r0 = min(self.check)
        out: dict[str, dict[str, Any]] = {}
        for lab in self.labs:
            c = self.check[r0].get(lab)
            if c is None:
                continue
            out[lab] = {"rtt_ms": r0, "connections": c.conns, "messages": c.msgs,
                        "turns": c.turns, "implied_round_trips": {
                            f"{r:g}": round((self.check[r][lab].seconds - c.seconds) / (r / 1000))
                            for r in sorted(self.check)
                            if r >= 10 and r > r0 and lab in self.check[r]}}
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "labs": self.labs, "hosts": self.hosts, "libvirt": self.libvirt,
            "class_rtts": self.class_rtts, "per_lab": self.per_lab(),
            "setup_s": self.setup_s, "notes": self.notes, "states": self.states,
            "ping": {str(k): v.as_dict() for k, v in self.ping.items()},
            "check": {str(k): {lab: r.as_dict() for lab, r in v.items()}
                      for k, v in self.check.items()},
            "grade": {str(k): {str(n): r.as_dict() for n, r in v.items()}
                      for k, v in self.grade.items()},
            "grade_01_02_06": {str(k): r.as_dict() for k, r in self.trio.items()},
            "pytest": {str(k): {var: {lab: r.as_dict() for lab, r in d.items()}
                                for var, d in v.items()} for k, v in self.pytest.items()},
        }


# --- the measures ------------------------------------------------------------------------

def grading_workers(root: int) -> int:
    """How many grading workers (``checker.grade.worker``, not its fork server) descend
    from process ``root`` now (the family as ``checker.probes.output.descendants`` finds it)."""
    from checker.probes.output import descendants

    def read(pid: int) -> tuple[int, bytes]:
        """(parent, command line) of ``pid``; (0, b"") once it is gone."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
            return int(stat[1]), Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            return 0, b""

    # a forked worker keeps its fork server's command line: the server is the one whose
    # parent is not a worker
    mark = b"checker.grade.worker"
    count = 0
    for pid in [root, *descendants(root)]:
        ppid, cmd = read(pid)
        if mark in cmd and not (b"--fork-server" in cmd and mark not in read(ppid)[1]):
            count += 1
    return count


CPUACCT = Path("/sys/fs/cgroup/cpuacct")


class CpuGroup:
    """A cgroup v1 ``cpuacct`` group of our own: the CPU time of every process put in it and
    of all their descendants, whoever reaps them (``ssh`` masters detach, forked grading
    workers are not the runner's children). ``prefix()`` is a command prefix that enters
    it; ``None`` where there is no writable cpuacct hierarchy (cgroup v2 only: use the
    unified ``cpu.stat`` some day)."""

    def __init__(self) -> None:
        self.path = CPUACCT / f"vlbn-{os.getpid()}-{time.monotonic_ns()}"
        self.path.mkdir()

    @classmethod
    def make(cls) -> CpuGroup | None:
        try:
            return cls() if (CPUACCT / "cpuacct.usage").exists() else None
        except OSError:
            return None

    def prefix(self) -> list[str]:
        return ["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "cpu"]

    def seconds(self) -> float:
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def add(self, pid: int) -> None:
        """Put process ``pid`` (all its threads) in the group; what it starts from now on
        is in it too."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def close(self) -> None:
        """Move what is left to the root group, then remove this one."""
        try:
            for pid in (self.path / "cgroup.procs").read_text().split():
                try:
                    (CPUACCT / "cgroup.procs").write_text(pid)
                except OSError:
                    pass
            self.path.rmdir()
        except OSError:
            pass


class LearnerCpu:
    """The learners' side's CPU time: a :class:`CpuGroup` holding their sshd (so every
    session, shell and command it starts) and the sandbox's libvirtd and virtlogd; and,
    apart, the sandbox's running QEMU guests (the ``qemu-system-*`` processes in libvirtd's
    network namespace, the sandbox's own: libvirt gives each its own mount namespace), whose CPU
    under TCG is the bench's artefact, not grading's."""

    def __init__(self) -> None:
        self.group = CpuGroup.make()
        #: libvirtd's network namespace (``/proc/PID/ns/net``), its guests' too
        self.guest_mark: str | None = None

    def add(self, *pids: int) -> None:
        for pid in pids:
            if self.group is not None:
                try:
                    self.group.add(pid)
                except OSError:
                    pass

    def seconds(self) -> float | None:
        return self.group.seconds() if self.group is not None else None

    def guests(self) -> float | None:
        """CPU seconds of the sandbox's QEMU processes alive now (None: no sandbox)."""
        if self.guest_mark is None:
            return None
        from checker.grade.runner import cpu_seconds

        total = 0.0
        for d in os.listdir("/proc"):
            try:
                if not (d.isdigit() and Path(f"/proc/{d}/comm").read_text().startswith(
                        "qemu-system") and os.readlink(f"/proc/{d}/ns/net") == self.guest_mark):
                    continue
            except OSError:
                continue
            total += cpu_seconds(int(d)) or 0.0
        return total

    def close(self) -> None:
        if self.group is not None:
            self.group.close()


def _delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else round(after - before, 3)


def _timed(link: DelayedLink, argv: list[str], env: dict[str, str], n: int = 1,
           codes: tuple[int, ...] = (0, 1), timeout: float = 900,
           count_workers: bool = False, learners: LearnerCpu | None = None
           ) -> tuple[Run, str]:
    """``argv`` run ``n`` times on the instructor's side; the wire counters of the last run
    (and, with ``count_workers``, the most grading workers seen alive at once; with
    ``learners``, the CPU time the learners' side and the guests spent meanwhile)."""
    times: list[float] = []
    lcpu: list[float] = []
    gcpu: list[float] = []
    out = ""
    wire: dict[str, Any] = {}
    peak: int | None = None
    cpu: list[float] = []
    for _ in range(n):
        link.reset_counters()
        group = CpuGroup.make()
        l0 = learners.seconds() if learners else None
        g0 = learners.guests() if learners else None
        try:
            t0 = time.perf_counter()
            # the group first: `ip netns exec` mounts a sysfs of the namespace, without cgroups
            with subprocess.Popen((group.prefix() if group else []) + link.exec_prefix("i") + argv,
                                  cwd=REPO, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL) as proc:
                result: list[tuple[str, str]] = []
                reader = threading.Thread(target=lambda p=proc, out=result: out.append(
                    p.communicate()), daemon=True)
                reader.start()
                peak = 0 if count_workers else None
                while reader.is_alive():
                    if time.perf_counter() - t0 > timeout:
                        proc.kill()
                        reader.join()
                        raise RuntimeError(f"{' '.join(argv)}: no end after {timeout:g} s")
                    if peak is not None:
                        peak = max(peak, grading_workers(proc.pid))
                    reader.join(0.25 if count_workers else 0.05)
                times.append(time.perf_counter() - t0)
            wire = link.counters()
            if group is not None:
                time.sleep(0.2)  # the ssh masters closed at the end of the run
                cpu.append(group.seconds())
            if learners is not None:
                for acc, v in ((lcpu, _delta(learners.seconds(), l0)),
                               (gcpu, _delta(learners.guests(), g0))):
                    if v is not None:
                        acc.append(v)
        finally:
            if group is not None:
                group.close()
        stdout, stderr = result[0]
        if proc.returncode not in codes:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n"
                               f"{stdout[-2000:]}\n{stderr[-2000:]}")
        out = stdout
    return Run(statistics.median(times), wire, times=times, peak_workers=peak,
               cpu_s=statistics.median(cpu) if cpu else None,
               learner_cpu_s=statistics.median(lcpu) if lcpu else None,
               guest_cpu_s=statistics.median(gcpu) if gcpu else None), out


def _score(stdout: str) -> str:
    try:
        rep = json.loads(stdout)
        return f"{rep['score']}/{rep['max_score']}"
    except (ValueError, KeyError, TypeError):
        return "?"


def measure_check(link: DelayedLink, lab: str, spec: str, uri: str, env: dict[str, str],
                  n: int) -> Run:
    argv = bench_check.virtlab_cmd() + ["check", lab, "--host", spec, "--format", "json",
                                        "--connect", uri]
    run, out = _timed(link, argv, env, n)
    run.note = f"score {_score(out)}"
    return run


def measure_grade(link: DelayedLink, labs: list[str], specs: list[str], ssh_config: Path,
                  template: str, env: dict[str, str], tmp: Path,
                  workers: int | None = None, learners: LearnerCpu | None = None) -> Run:
    db = tmp / f"grade-{time.monotonic_ns()}.sqlite"
    js = tmp / f"grade-{time.monotonic_ns()}.json"
    argv = [sys.executable, "-m", "checker", "grade", *labs, "--hosts", ",".join(specs),
            "--ssh-config", str(ssh_config), "--db", str(db), "--json", str(js),
            "--connect", template] + (["--workers", str(workers)] if workers else [])
    run, _ = _timed(link, argv, env, count_workers=True, learners=learners)
    run.note = _grade_note(js) + f", at most {run.peak_workers} workers at once"
    return run


def _grade_note(path: Path) -> str:
    """"N/N hosts graded, score S/M" from the run's ``--json`` (a host not graded would spoil
    the timing: it must show)."""
    try:
        data = json.loads(path.read_text())
        learners = data["learners"]
        results = [r for x in learners for r in x["results"].values()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "no usable --json written"
    graded = [r for r in results if r and r.get("status") == "graded"]
    hosts_ok = sum(1 for x in learners
                   if all(r and r.get("status") == "graded" for r in x["results"].values()))
    pts = sum(r.get("score") or 0 for r in graded)
    top = sum(r.get("max_score") or 0 for r in graded)
    return f"{hosts_ok}/{len(learners)} hosts fully graded, {pts:g}/{top:g} points"


def measure_pytest(link: DelayedLink, lab: str, spec: str, ssh_config: Path, uri: str,
                   user: str, env: dict[str, str]) -> Run:
    d = bench_check.lab_dir(lab)
    assert d is not None
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
            f"--hosts={spec}", f"--ssh-config={ssh_config}", f"--virtlab-user={user}",
            f"--virtlab-connect={uri}", str(d / "checks")]
    run, out = _timed(link, argv, env)
    last = out.strip().splitlines()[-1] if out.strip() else ""
    run.note = last
    return run


# --- set-up and the run --------------------------------------------------------------------

def _solve(labs: list[str], user: str, uri: str, env: dict[str, str]) -> dict[str, str]:
    """Each lab in the state its contract (``breaks.toml``, tests/contract.py) reaches in the
    libvirt sandbox, as run_all.py does: ``virtlab start`` first when it has a scene, then
    ``virtlab solve`` of each lab the contract names (cumulative). Other labs stay as they
    are. Returns each lab's state."""
    import contract

    def virtlab(*args: str) -> None:
        r = subprocess.run([sys.executable, "-m", "checker", *args], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"virtlab {' '.join(args)} exited {r.returncode}:\n"
                               f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    states: dict[str, str] = {}
    solved: set[str] = set()
    for lab in labs:
        d = bench_check.lab_dir(lab)
        assert d is not None  # checked by the caller
        c = contract.load(d)
        if c.environment != "libvirt":
            states[lab] = "as is"
            continue
        t = time.perf_counter()
        if c.start:
            virtlab("start", lab, "--yes", "--connect", uri)
        for s in c.solve:
            if s not in solved:
                virtlab("solve", s, "--yes", "--user", user, "--connect", uri)
                solved.add(s)
        states[lab] = "start + solve" if c.start else "solved"
        say(f"  {states[lab]} {lab} in {time.perf_counter() - t:.1f} s")
    return states


def run(rtts: list[float] | tuple[float, ...] = DEFAULT_RTTS, hosts: int = DEFAULT_HOSTS,
        labs: list[str] | tuple[str, ...] = ALL_LABS, n: int = 1,
        pytest_rtts: list[float] | tuple[float, ...] | None = DEFAULT_PYTEST_RTTS,
        libvirt: bool = True, solve: bool = True, do_check: bool = True, do_grade: bool = True,
        do_pytest: bool = True,
        class_rtts: list[float] | tuple[float, ...] | None = DEFAULT_CLASS_RTTS,
        workers: int | None = None) -> NetResult:
    """Make the link, the learners' side and measure; everything made is removed at the end
    (also on an error or KeyboardInterrupt). ``pytest_rtts``, ``class_rtts``: the RTTs at
    which plain pytest runs and the ``hosts`` hosts are graded (None: every RTT)."""
    if os.geteuid() != 0:
        raise PermissionError("run as root: namespaces, TAP devices, sshd, libvirtd, a user")
    labs = list(labs)
    res = NetResult(labs, hosts, libvirt)
    pytest_rtts = list(rtts) if pytest_rtts is None else list(pytest_rtts)
    res.class_rtts = list(rtts) if class_rtts is None else \
        [r for r in rtts if r in set(class_rtts)]
    t_setup = time.perf_counter()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vlbn-run-")))
        home = tmp / "home"
        (home / ".ssh").mkdir(parents=True)
        # compiled bytecode kept (in this run's folder), as an installed virtlab has it:
        # without it every process of the run compiles the checker again (~0.3 s of CPU)
        env = dict(os.environ, VIRTLAB_DATA=str(tmp / "data"), XDG_DATA_HOME=str(tmp / "data"),
                   HOME=str(home), LANG="C.UTF-8", PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
        for k in ("VIRTLAB_LABS", "LIBVIRT_DEFAULT_URI", "SSH_AUTH_SOCK",
                  "PYTHONDONTWRITEBYTECODE"):
            env.pop(k, None)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "checker"),
                        str(REPO / "labs")], env=env, check=False, capture_output=True)

        learners = LearnerCpu()
        stack.callback(learners.close)  # after sshd and libvirtd have stopped
        sock: str | None = None
        if libvirt:
            from sandbox import Sandbox, read_pid
            sb = Sandbox()
            stack.callback(sb.close)
            sb.open()
            sb.reset()
            sock = str(sb.socket)
            if sb.daemon is not None:  # `ip netns exec … exec libvirtd`: the same process
                learners.add(sb.daemon.pid)
                learners.guest_mark = os.readlink(f"/proc/{sb.daemon.pid}/ns/net")
            virtlogd = read_pid(sb.root / "virtlogd.pid")
            if virtlogd:
                learners.add(virtlogd)
            say(f"libvirtd up ({sb.uri})")

        addrs = [netlink.host_addr(i) for i in range(max(1, hosts))]
        link = DelayedLink(hosts=len(addrs))
        stack.callback(link.close)  # last in, first out: after sshd and users below
        link.open()
        say(f"link up: {link.ns_i} <-> {link.ns_l}, {len(addrs)} learner addresses")
        sshd = NetSshd(link, addrs)
        stack.callback(sshd.close)
        sshd.start()
        if sshd.proc is not None:
            learners.add(sshd.proc.pid)  # `ip netns exec … sshd`: the same process
        subprocess.run(["groupadd", "-f", "libvirt"], check=True)
        users = LearnerUsers(sshd)
        stack.callback(users.remove_all)
        user = users.add("net", groups=("libvirt",))
        say(f"sshd on port 22 of {addrs[0]}…{addrs[-1]}; learner {user} (group libvirt)")
        if libvirt and solve:
            assert sock is not None
            res.states = _solve(labs, user, f"qemu:///system?socket={sock}", env)
        # `virtlab check --host` reads ~/.ssh/config (this run's HOME): keys, known_hosts
        (home / ".ssh" / "config").write_text(sshd.ssh_config.read_text(), encoding="utf-8")
        shared = tmp / "ssh_config_shared"
        cm = Path(tempfile.mkdtemp(prefix="vlbn-cm-", dir="/tmp"))
        stack.callback(shutil.rmtree, cm, True)
        shared.write_text(sshd.ssh_config.read_text() + "  ControlMaster auto\n"
                          f"  ControlPath {cm}/%C\n  ControlPersist 60\n", encoding="utf-8")
        nocm = tmp / "nocm"
        nocm.mkdir()
        (nocm / "ssh").write_text(NO_MASTER_SSH.format(ssh=shutil.which("ssh") or "/usr/bin/ssh"))
        (nocm / "ssh").chmod(0o755)
        env_nocm = dict(env, PATH=f"{nocm}{os.pathsep}{env.get('PATH', os.defpath)}")
        if sock is None:  # never the machine's own libvirtd: a socket where nothing listens
            sock = str(tmp / "no-libvirtd-here")
        uri = f"qemu+ssh://{user}@{addrs[0]}/system?socket={sock}"
        template = f"qemu+ssh://{{user}}@{{host}}:{{port}}/system?socket={sock}"
        spec0 = sshd.net_spec(user, addrs[0])
        specs = [sshd.net_spec(user, a) for a in addrs[:hosts]]
        res.setup_s = time.perf_counter() - t_setup
        say(f"set-up in {res.setup_s:.1f} s")
        if not libvirt:
            res.notes.append("--no-libvirt: the URIs name a socket where nothing listens; "
                             "libvirt objectives fail to connect (host parts only)")

        for rtt in rtts:
            link.set_rtt(rtt / 1000)
            link.ping(addrs[0], count=3)  # warm-up
            p = res.ping[rtt] = link.ping(addrs[0])
            flag = "" if netlink.rtt_ok(p) else "  (OUT OF TOLERANCE)"
            say(f"\nRTT {rtt:g} ms: ping min/avg/max {p.min_ms:.2f}/{p.avg_ms:.2f}/"
                f"{p.max_ms:.2f} ms{flag}")
            if do_check:
                res.check[rtt] = {}
                for lab in labs:
                    r = res.check[rtt][lab] = measure_check(link, lab, spec0, uri, env, n)
                    r.note = f"{res.states.get(lab, 'as is')}, {r.note}"
                    say(f"  virtlab check {lab}: {r.seconds:6.2f} s  {r.conns:3d} conn "
                        f"{r.msgs:4d} msgs {r.turns:4d} turns  {r.note}")
            if do_grade:
                res.grade[rtt] = {}
                for size in sorted({1, hosts} if rtt in res.class_rtts else {1}):
                    r = res.grade[rtt][size] = measure_grade(link, labs, specs[:size],
                                                             sshd.ssh_config, template, env, tmp,
                                                             workers, learners)
                    say(f"  virtlab grade {len(labs)} labs x {size} hosts: {r.seconds:6.2f} s "
                        f"{r.conns:4d} conn {r.msgs:5d} msgs {r.turns:5d} turns "
                        f"({r.turns / size:.0f} per host), CPU per host: instructor's "
                        f"{_per_host_cpu(r, size)}, learners' {_per_host_cpu(r, size, 'l')}, "
                        f"guests' {_per_host_cpu(r, size, 'g')}  {r.note}")
            if do_grade and set(TRIO) <= set(labs):
                r = res.trio[rtt] = measure_grade(link, list(TRIO), specs[:1], sshd.ssh_config,
                                                  template, env, tmp, workers)
                say(f"  virtlab grade 01 02 06 x 1 host: {r.seconds:6.2f} s {r.conns:4d} conn "
                    f"{r.msgs:5d} msgs {r.turns:5d} turns  {r.note}")
            if do_pytest and rtt in pytest_rtts:
                res.pytest[rtt] = {"shared": {}, "none": {}}
                for lab in labs:
                    for var in ("shared", "none"):
                        cfg, penv = (shared, env) if var == "shared" else \
                            (sshd.ssh_config, env_nocm)
                        r = res.pytest[rtt][var][lab] = measure_pytest(link, lab, spec0, cfg, uri,
                                                                       user, penv)
                        say(f"  pytest {lab} ({var:6}): {r.seconds:6.2f} s {r.conns:4d} conn "
                            f"{r.msgs:5d} msgs {r.turns:5d} turns  {r.note}")
    return res


# --- the report ----------------------------------------------------------------------------

def table(res: NetResult) -> str:
    lines: list[str] = []
    rtts = sorted(res.ping)
    head = "".join(f"{f'{r:g} ms':>20}" for r in rtts)
    lines.append(f"{'RTT asked (ping avg)':<34}" + "".join(
        f"{f'{r:g} ({res.ping[r].avg_ms:.2f})':>20}" for r in rtts))
    lines.append(f"{'':<34}{head}")

    def row(name: str, cell: Any) -> None:
        lines.append(f"{name:<34}" + "".join(f"{cell(r):>20}" for r in rtts))

    def fmt(run: Run | None) -> str:
        return "-" if run is None else f"{run.seconds:.2f}s {run.conns}c/{run.msgs}m"

    if res.check:
        for lab in res.labs:
            row(f"virtlab check {lab}", lambda r, lab=lab: fmt(res.check.get(r, {}).get(lab)))
        row("virtlab check, all labs (sum)", lambda r: "-" if res.check_all(r) is None
            else f"{res.check_all(r):.2f}s")
    for size in sorted({1, res.hosts}) if res.grade else []:
        row(f"virtlab grade {len(res.labs)} labs x {size} host(s)",
            lambda r, s=size: fmt(res.grade.get(r, {}).get(s)))
        row("  turns/host; workers; CPU/host",
            lambda r, s=size: "-" if s not in res.grade.get(r, {}) else
            f"{res.grade[r][s].turns / s:.0f}; {res.grade[r][s].peak_workers}; "
            + _per_host_cpu(res.grade[r][s], s))
        row("  learners' CPU/host; guests'",
            lambda r, s=size: "-" if s not in res.grade.get(r, {}) else
            f"{_per_host_cpu(res.grade[r][s], s, 'l')}; {_per_host_cpu(res.grade[r][s], s, 'g')}")
    for var in ("shared", "none") if res.pytest else ():
        def tot(r: float, var: str = var) -> str:
            d = res.pytest.get(r, {}).get(var)
            if not d:
                return "-"
            return (f"{sum(x.seconds for x in d.values()):.2f}s "
                    f"{sum(x.conns for x in d.values())}c/{sum(x.msgs for x in d.values())}m")
        row(f"plain pytest, all labs ({var})", tot)
    lines.append("  (c: TCP connections opened; m: data-carrying TCP segments instructor -> host)")

    if res.check:
        r0 = min(res.check)
        lines.append("")
        lines.append(f"per lab and host, at {r0:g} ms (counted on the wire) and round trips "
                     "implied by the clock, (t(RTT) - t(0)) / RTT, for RTT >= 10 ms (below, "
                     "the CPU's noise outweighs the delay):")
        for lab, d in res.per_lab().items():
            implied = [f"{v}@{k}ms" for k, v in d["implied_round_trips"].items()]
            lines.append(f"  lab {lab}: {d['connections']} connections, {d['messages']} messages, "
                         f"{d['turns']} turns; implied round trips {', '.join(implied) or '-'}")
        m = res.msgs(TRIO)
        if m is not None:
            how = "one grading job" if res.trio else "three checks"
            lines.append(f"  labs 01+02+06: {m} messages to the host, {how} (issue #17: <= "
                         f"{T_MSGS_01_02_06})")
    s60 = res.grade.get(60.0, {}).get(1)
    if s60:
        lines.append(f"virtlab grade, {len(res.labs)} labs, one host, 60 ms: {s60.seconds:.2f} s"
                     f" (issue #17, all 7 labs: <= {T_SEVEN_LABS_60MS:g} s)")
    c60 = res.grade.get(60.0, {}).get(res.hosts)
    if c60 and res.hosts > 1:
        lines.append(f"virtlab grade, {len(res.labs)} labs, {res.hosts} hosts, 60 ms: "
                     f"{c60.seconds:.2f} s (issue #17, 7 labs x 60 hosts: <= {T_CLASS_60MS:g} s)")
    for note in res.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _per_host_cpu(run: Run, hosts: int, side: str = "i") -> str:
    """CPU seconds per host: the instructor's (``i``), the learners' (``l``) or the
    guests' (``g``) during the run."""
    cpu = {"i": run.cpu_s, "l": run.learner_cpu_s, "g": run.guest_cpu_s}[side]
    return "-" if cpu is None else f"{cpu / hosts:.2f}s"


def _csv(values: tuple[float, ...]) -> str:
    return ",".join(f"{x:g}" for x in values)


def _rtts(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


_interrupted = False


def _interrupt(signum: int, frame: Any) -> None:
    """The first Ctrl-C (SIGTERM, SIGHUP) unwinds the run, which removes what it made; the
    next ones are ignored so that the clean-up finishes."""
    global _interrupted
    if _interrupted:
        print("\n(cleaning up, please wait)", file=sys.stderr, flush=True)
        return
    _interrupted = True
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rtts", default=_csv(DEFAULT_RTTS),
                    help=f"round-trip times, ms (default {_csv(DEFAULT_RTTS)})")
    ap.add_argument("--hosts", type=int, default=DEFAULT_HOSTS,
                    help=f"learner hosts of the class (default {DEFAULT_HOSTS}, the issue's)")
    ap.add_argument("--class-rtts", default=_csv(DEFAULT_CLASS_RTTS),
                    help="RTTs at which the class is graded (default "
                         f"{_csv(DEFAULT_CLASS_RTTS)}; 'all': every RTT)")
    ap.add_argument("--workers", type=int, default=None,
                    help="virtlab grade --workers (default: automatic)")
    ap.add_argument("--labs", default=",".join(ALL_LABS), help="labs (default: all)")
    ap.add_argument("-n", type=int, default=1, help="runs of each virtlab check (median)")
    ap.add_argument("--pytest-rtts", default=_csv(DEFAULT_PYTEST_RTTS),
                    help="RTTs at which plain pytest runs (default "
                         f"{_csv(DEFAULT_PYTEST_RTTS)}; 'all': every RTT; it is the slowest)")
    ap.add_argument("--no-libvirt", action="store_true", help="no libvirtd: host parts only")
    ap.add_argument("--no-solve", action="store_true", help="check the labs unsolved")
    ap.add_argument("--skip-check", action="store_true")
    ap.add_argument("--skip-grade", action="store_true")
    ap.add_argument("--skip-pytest", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    ap.add_argument("--selftest", action="store_true",
                    help="only check the link's delays with ping (exit 1 if out of tolerance)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root: it makes network namespaces, TAP devices, an sshd, a libvirtd and "
              "a learner user", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        rtts = _rtts(a.rtts)
        prtts = None if a.pytest_rtts == "all" else _rtts(a.pytest_rtts)
        crtts = None if a.class_rtts == "all" else _rtts(a.class_rtts)
        labs = [f"{int(x):02d}" for x in a.labs.split(",") if x.strip()]
    except ValueError:
        print("--rtts/--pytest-rtts/--class-rtts/--labs: expected comma-separated numbers",
              file=sys.stderr)
        return 2
    unknown = [x for x in labs if bench_check.lab_dir(x) is None]
    if unknown or a.hosts < 1 or a.n < 1 or any(r < 0 for r in rtts):
        print(f"bad arguments (unknown labs: {', '.join(unknown) or 'none'}; --hosts and -n "
              "at least 1; RTTs >= 0)", file=sys.stderr)
        return 2
    try:
        if a.selftest:
            return 0 if netlink.selftest(rtts) else 1
        started = datetime.now().astimezone()
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        res = run(rtts, a.hosts, labs, a.n, prtts, not a.no_libvirt, not a.no_solve,
                  not a.skip_check, not a.skip_grade, not a.skip_pytest, crtts, a.workers)
    except KeyboardInterrupt:
        print("\ninterrupted: everything made was removed", file=sys.stderr)
        return 130
    load1 = os.getloadavg()
    say("\n" + "=" * 30 + " network summary " + "=" * 30)
    say(f"date {started.isoformat(timespec='minutes')}; {os.cpu_count()} cores, "
        f"{platform.machine()}, Linux {platform.release()}; load {load0[0]:.2f} -> "
        f"{load1[0]:.2f}; run took {time.perf_counter() - t0:.0f} s")
    say(table(res))
    if a.json:
        Path(a.json).write_text(json.dumps(dict(
            res.as_dict(), date=started.isoformat(timespec="seconds"), cores=os.cpu_count(),
            load_before=load0, load_after=load1), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
