"""Benchmark: how fast a learner gets an answer (not a test).

    .venv/bin/python benchmarks/bench_check.py [-n 10] [--labs 01,02] [--connect URI]
        [--json FILE]

Measures wall time, each run a fresh process, and prints medians (and min/max) of N runs
after one warm-up run:

- ``virtlab --help`` and ``virtlab list``                       target < 0.3 s
- ``virtlab check NN`` for each lab (default 01, and 02 when present)   target <= 0.6 s
- a re-check in a running Python process (a notebook kernel):
  ``checker.engine.check("NN")`` after a first call            target <= 0.15 s
- the same lab's checks with plain ``pytest --hosts=local:// labs/NN/checks``
- ``virt-host-validate qemu`` (libvirt's own host check), when installed

and the ratios of ``virtlab check`` to the plain pytest run and to virt-host-validate.
Targets come from design/README.md ("Performance targets"). Exit status 1 when a target
is missed. Run it from anywhere; it uses the interpreter it is run with.

``benchmarks/run_all.py`` imports :func:`timed`, :func:`in_process` and :class:`Row`; it
also runs ``bench_check.py --recheck NN`` in a fresh process (inside a network namespace
for lab 05), which prints the in-process re-check times as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    name: str
    times: list[float] = field(default_factory=list)
    target: float | None = None
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def ok(self) -> bool | None:
        return None if self.target is None else self.median <= self.target


def virtlab_cmd() -> list[str]:
    """The console script next to this interpreter (what a learner runs), else -m."""
    script = Path(sys.executable).parent / "virtlab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "checker"]


def timed(argv: list[str], n: int, env: dict[str, str] | None, ok_codes: tuple[int, ...],
          prefix: list[str] | None = None) -> list[float]:
    """Wall times of ``n`` fresh runs of ``argv`` after one uncounted warm-up run.

    ``prefix`` goes before argv (e.g. ``ip netns exec NS``) and is timed with it."""
    times = []
    argv = (prefix or []) + argv
    for i in range(n + 1):  # the first run warms the page cache and is not counted
        t0 = time.perf_counter()
        r = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        dt = time.perf_counter() - t0
        if r.returncode not in ok_codes:
            raise SystemExit(f"{' '.join(argv)} exited {r.returncode}:\n{r.stderr[-2000:]}")
        if i:
            times.append(dt)
    return times


def in_process(lab: str, n: int, connect: str | None, user: str | None = None) -> list[float]:
    """Times of ``n`` re-checks in this process, after a first (uncounted) check."""
    sys.path.insert(0, str(REPO))
    # The engine's check: the same as checker.check() in a notebook, minus recording the
    # result in the learner's progress store (a benchmark must not write there).
    from checker.engine import check

    check(lab, connect=connect, user=user)  # a kernel's first check loads modules, connects
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        check(lab, connect=connect, user=user)
        times.append(time.perf_counter() - t0)
    return times


def recheck_argv(lab: str, n: int, connect: str | None, user: str | None = None) -> list[str]:
    """The command that measures :func:`in_process` in a fresh process (see ``--recheck``)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--recheck", lab, "-n", str(n)]
    if connect:
        argv += ["--connect", connect]
    if user:
        argv += ["--user", user]
    return argv


def print_table(rows: list[Row], out: Any = sys.stdout) -> None:
    name_w = max(len(r.name) for r in rows)
    print(f"{'command':<{name_w}}  {'median':>8}  {'min':>7}  {'max':>7}  {'target':>7}  ",
          file=out)
    for r in rows:
        verdict = "" if r.ok is None else ("ok" if r.ok else "MISSED")
        tgt = f"{r.target:.2f}" if r.target is not None else "-"
        print(f"{r.name:<{name_w}}  {r.median:8.3f}  {min(r.times):7.3f}  {max(r.times):7.3f}"
              f"  {tgt:>7}  {verdict}", file=out)


def lab_dir(num: str) -> Path | None:
    for p in sorted((REPO / "labs").glob(f"{int(num):02d}-*")):
        if (p / "lab.toml").is_file():
            return p
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=10, help="runs per command (default 10)")
    ap.add_argument("--labs", default=None,
                    help="labs to check, e.g. 01,02 (default: 01 and 02 if present)")
    ap.add_argument("--connect", default=None, metavar="URI", help="libvirt URI for the checks")
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--user", default=None, metavar="NAME", help="the learner to check")
    ap.add_argument("--recheck", default=None, metavar="LAB",
                    help="only time in-process re-checks of LAB and print them as JSON")
    args = ap.parse_args()
    if args.recheck:
        print(json.dumps(in_process(args.recheck, args.n, args.connect, args.user)))
        return 0

    env = dict(os.environ)
    env.pop("VIRTLAB_LABS", None)
    # `virtlab check` records every report in the learner's progress store: not these.
    data = tempfile.TemporaryDirectory(prefix="virtlab-bench-")
    env["VIRTLAB_DATA"] = data.name
    if args.connect:
        env["LIBVIRT_DEFAULT_URI"] = args.connect
    labs = args.labs.split(",") if args.labs else [x for x in ("01", "02") if lab_dir(x)]
    vl = virtlab_cmd()
    rows: list[Row] = []
    any_codes = (0, 1, 2)  # a check that finds failures (1) or a broken WIP lab (2) still times

    rows.append(Row("virtlab --help", timed(vl + ["--help"], args.n, env, (0,)), 0.3))
    rows.append(Row("virtlab list", timed(vl + ["list"], args.n, env, (0, 2)), 0.3))
    pairs: list[tuple[Row, Row | None]] = []
    for lab in labs:
        d = lab_dir(lab)
        if d is None:
            print(f"lab {lab}: not present, skipped", file=sys.stderr)
            continue
        check_argv = vl + ["check", lab, "--format", "json"]
        if args.connect:
            check_argv += ["--connect", args.connect]
        if args.user:
            check_argv += ["--user", args.user]
        c = Row(f"virtlab check {lab}", timed(check_argv, args.n, env, (0, 1)), 0.6)
        rows.append(c)
        rows.append(Row(f"re-check {lab} in-process",
                        in_process(lab, args.n, args.connect, args.user), 0.15,
                        "a notebook kernel's second check"))
        py = Row(f"pytest --hosts=local:// {d.relative_to(REPO)}/checks", timed(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
             "--hosts=local://", str(d / "checks")], args.n, env, (0, 1)))
        rows.append(py)
        pairs.append((c, py))
    vhv = shutil.which("virt-host-validate")
    vhv_row = None
    if vhv:
        vhv_row = Row("virt-host-validate qemu", timed([vhv, "qemu"], args.n, env, any_codes))
        rows.append(vhv_row)

    print(f"{sys.platform}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"{args.n} runs each (medians; a warm-up run first)\n")
    print_table(rows)
    print()
    for c, py in pairs:
        if py is not None:
            print(f"{c.name}: {c.median / py.median:.2f}x the time of plain pytest "
                  f"({py.median / c.median:.1f}x faster)")
        if vhv_row is not None:
            print(f"{c.name}: {c.median / vhv_row.median:.2f}x the time of virt-host-validate qemu")

    if args.json:
        Path(args.json).write_text(json.dumps([{
            "name": r.name, "median_s": r.median, "min_s": min(r.times), "max_s": max(r.times),
            "runs": len(r.times), "target_s": r.target, "ok": r.ok} for r in rows], indent=2))
    missed = [r.name for r in rows if r.ok is False]
    if missed:
        print(f"\ntargets missed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
