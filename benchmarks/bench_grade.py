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
baseline. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
        raise SystemExit(f"pytest baseline failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr}")
    return dt


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
    sys.path.insert(0, str(REPO))
    from checker.catalog import resolve
    from checker.grade.runner import DEFAULT_WORKERS

    lab = resolve(a.lab)
    sizes = sorted({min(int(x), a.hosts) for x in a.sizes.split(",") if x.strip()})
    print(f"lab {lab.id}, {a.hosts} learner hosts on one loopback sshd, {os.cpu_count()} CPUs, "
          f"workers {a.workers or DEFAULT_WORKERS}")
    ok = True
    with Sshd() as sshd, tempfile.TemporaryDirectory(prefix="vl-bench-") as tmp:
        users = LearnerUsers(sshd)
        try:
            t0 = time.perf_counter()
            specs = [sshd.spec(users.add(f"b{i:02d}", groups=("kvm",) if i % 2 else ()))
                     for i in range(a.hosts)]
            print(f"set-up: {a.hosts} users in {time.perf_counter() - t0:.1f} s")
            print("\nvirtlab grade (a fresh process each time):")
            print(f"  {'hosts':>5}  {'total s':>8}  {'s/host':>7}")
            results = {}
            for n in sizes:
                dt = grade(specs[:n], sshd, lab.id, Path(tmp), a.workers)
                results[n] = dt
                print(f"  {n:>5}  {dt:>8.2f}  {dt / n:>7.3f}")
            if a.sweep:
                print(f"\nworker counts, {a.hosts} hosts:")
                for w in [int(x) for x in a.sweep.split(",")]:
                    dt = grade(specs, sshd, lab.id, Path(tmp), w)
                    print(f"  workers {w:>3}: {dt:6.2f} s")
            nb = min(a.baseline_hosts, a.hosts)
            print(f"\nplain pytest --hosts, host after host ({nb} hosts):")
            bt = baseline(specs[:nb], sshd, lab.checks_path)
            full = bt / nb * a.hosts
            how = "measured" if nb == a.hosts else f"extrapolated from {nb} hosts (serial: linear)"
            print(f"  {nb} hosts: {bt:.2f} s ({bt / nb:.3f} s/host); "
                  f"{a.hosts} hosts: {full:.1f} s ({how})")
            ours = results.get(a.hosts) or grade(specs, sshd, lab.id, Path(tmp), a.workers)
            speedup = full / ours
            print(f"\n{a.hosts} hosts: virtlab grade {ours:.2f} s vs plain pytest {full:.1f} s: "
                  f"{speedup:.1f}x faster")
            if ours > 60:
                print("TARGET MISSED: more than 60 s for the class")
                ok = False
            if speedup < 4:
                print("TARGET MISSED: less than 4x faster than plain pytest")
                ok = False
        finally:
            users.remove_all()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
