"""Benchmark: grading a class over SSH (not a test; run as root).

    sudo .venv/bin/python benchmarks/bench_grade.py [--hosts 60] [--lab 01]
        [--sizes 10,30,60] [--baseline-hosts 10] [--workers N] [--sweep 1,2,4,8,16]

Sets up a real sshd on 127.0.0.1 and one learner user per host (tests/sshd.py), half of them in
group kvm, then measures, wall clock, each a fresh ``virtlab grade`` process:

- ``virtlab grade LAB --hosts ...`` for class sizes 10, 30, 60: total and time per host;
- the baseline: the same checks with plain ``pytest --hosts=... labs/LAB/checks``, host after
  host as testinfra runs them. It is serial, hence linear in the number of hosts: by default it
  runs on ``--baseline-hosts`` hosts and the full class's time is extrapolated (printed as
  such); ``--baseline-hosts 60`` measures it all (~7 min for lab 01);
- optionally (``--sweep``) the class graded with several worker counts, which is how the
  default (``checker.grade.runner.DEFAULT_WORKERS``) was chosen.

Targets (design/README.md): 60 hosts within 60 s on 2 cores, at least 4x faster than the
baseline. Exit status 1 when a target is missed. ``benchmarks/run_all.py`` calls :func:`run`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from sshd import LearnerUsers, Sshd  # noqa: E402


def grade(specs: list[str], sshd: Sshd, lab: str, workdir: Path, workers: int | None) -> float:
    db = workdir / f"bench-{time.monotonic_ns()}.sqlite"
    argv = [sys.executable, "-m", "checker", "grade", lab, "--hosts", ",".join(specs),
            "--ssh-config", str(sshd.ssh_config), "--db", str(db)]
    if workers:
        argv += ["--workers", str(workers)]
    t0 = time.perf_counter()
    r = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"virtlab grade failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return dt


def baseline(specs: list[str], sshd: Sshd, lab_dir: Path) -> float:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
            f"--hosts={','.join(specs)}", f"--ssh-config={sshd.ssh_config}", str(lab_dir)]
    t0 = time.perf_counter()
    r = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode not in (0, 1):  # 1: some objectives fail, as expected
        raise SystemExit(f"pytest baseline failed ({r.returncode}):\n{r.stdout[-3000:]}\n"
                         f"{r.stderr}")
    return dt


@dataclass
class GradeResult:
    lab: str
    hosts: int
    workers: int
    totals: dict[int, float] = field(default_factory=dict)  # class size -> seconds
    sweep: dict[int, float] = field(default_factory=dict)   # workers -> seconds
    baseline_hosts: int = 0
    baseline_s: float = 0.0           # measured, on baseline_hosts hosts
    baseline_full_s: float = 0.0      # for `hosts` hosts (extrapolated unless all measured)
    setup_s: float = 0.0

    @property
    def ours(self) -> float:
        return self.totals[self.hosts]

    @property
    def speedup(self) -> float:
        return self.baseline_full_s / self.ours

    @property
    def extrapolated(self) -> bool:
        return self.baseline_hosts != self.hosts

    @property
    def ok(self) -> bool:
        return self.ours <= 60 and self.speedup >= 4


def run(hosts: int = 60, lab: str = "01", sizes: str | list[int] = "10,30,60",
        baseline_hosts: int = 10, workers: int | None = None, sweep: str = "",
        out: Any = sys.stdout) -> GradeResult:
    """Set up sshd and ``hosts`` learners, measure, remove them all (even on Ctrl-C)."""
    if os.geteuid() != 0:
        raise PermissionError("run as root: the benchmark starts sshd and creates learner users")
    sys.path.insert(0, str(REPO))
    from checker.catalog import resolve
    from checker.grade.runner import DEFAULT_WORKERS

    def say(*a: Any) -> None:
        print(*a, file=out, flush=True)

    lab_ = resolve(lab)
    if isinstance(sizes, str):
        sizes = [int(x) for x in sizes.split(",") if x.strip()]
    sizes = sorted({min(n, hosts) for n in sizes} | {hosts})
    res = GradeResult(lab_.id, hosts, workers or DEFAULT_WORKERS)
    say(f"lab {lab_.id}, {hosts} learner hosts on one loopback sshd, {os.cpu_count()} CPUs, "
        f"workers {res.workers}")
    with Sshd() as sshd, tempfile.TemporaryDirectory(prefix="vl-bench-") as tmp:
        users = LearnerUsers(sshd)
        try:
            t0 = time.perf_counter()
            specs = [sshd.spec(users.add(f"b{i:02d}", groups=("kvm",) if i % 2 else ()))
                     for i in range(hosts)]
            res.setup_s = time.perf_counter() - t0
            say(f"set-up: {hosts} users in {res.setup_s:.1f} s")
            say("\nvirtlab grade (a fresh process each time):")
            say(f"  {'hosts':>5}  {'total s':>8}  {'s/host':>7}")
            for n in sizes:
                dt = grade(specs[:n], sshd, lab_.id, Path(tmp), workers)
                res.totals[n] = dt
                say(f"  {n:>5}  {dt:>8.2f}  {dt / n:>7.3f}")
            if sweep:
                say(f"\nworker counts, {hosts} hosts:")
                for w in [int(x) for x in sweep.split(",")]:
                    dt = grade(specs, sshd, lab_.id, Path(tmp), w)
                    res.sweep[w] = dt
                    say(f"  workers {w:>3}: {dt:6.2f} s")
            nb = min(baseline_hosts, hosts)
            say(f"\nplain pytest --hosts, host after host ({nb} hosts):")
            res.baseline_hosts = nb
            res.baseline_s = baseline(specs[:nb], sshd, lab_.checks_path)
            res.baseline_full_s = res.baseline_s / nb * hosts
            how = "measured" if nb == hosts else f"extrapolated from {nb} hosts (serial: linear)"
            say(f"  {nb} hosts: {res.baseline_s:.2f} s ({res.baseline_s / nb:.3f} s/host); "
                f"{hosts} hosts: {res.baseline_full_s:.1f} s ({how})")
            say(f"\n{hosts} hosts: virtlab grade {res.ours:.2f} s vs plain pytest "
                f"{res.baseline_full_s:.1f} s: {res.speedup:.1f}x faster")
            if nb in res.totals:
                say(f"{nb} hosts, both measured: virtlab grade {res.totals[nb]:.2f} s vs plain "
                    f"pytest {res.baseline_s:.2f} s: {res.baseline_s / res.totals[nb]:.1f}x faster")
        finally:
            users.remove_all()
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=60)
    ap.add_argument("--lab", default="01")
    ap.add_argument("--sizes", default="10,30,60")
    ap.add_argument("--baseline-hosts", type=int, default=10)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--sweep", default="", help="worker counts to compare, e.g. 1,2,4,8,16")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root: the benchmark starts sshd and creates learner users", file=sys.stderr)
        return 2
    res = run(a.hosts, a.lab, a.sizes, a.baseline_hosts, a.workers, a.sweep)
    if res.ours > 60:
        print("TARGET MISSED: more than 60 s for the class")
    if res.speedup < 4:
        print("TARGET MISSED: less than 4x faster than plain pytest")
    return 0 if res.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
