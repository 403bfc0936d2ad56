"""Peak memory of the instructor's side while grading a learner host that floods (not a test).

    sudo .venv/bin/python benchmarks/bench_flood.py [--flood-mib 2048] [--lab 01] [--json FILE]

Root only: starts a loopback sshd (tests/sshd.py) and real learner accounts, removed at the end.
Two runs of ``virtlab grade LAB --workers 1``, one host each:

- ``normal``: a plain learner (the reference);
- ``flood``: a learner whose ``~/.bashrc`` prints ``--flood-mib`` MiB (default 2 GiB) before
  every command sshd runs for it: every command testinfra runs there floods.

While each run goes, the resident memory (VmRSS) of the whole process tree of ``virtlab
grade`` (the runner, its worker, their ssh clients and shared connections) is summed every
20 ms, and each process's own peak (VmHWM) is kept: their sum bounds the tree's peak from
above, short spikes included (a 4 MiB read lasts a few milliseconds). Target (design notes): a
flooding learner costs the instructor under 100 MB: the flood run's whole tree stays under 100 MB at
its peak, and the flooding host is reported as not graded (its output cut).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(REPO), str(REPO / "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

TARGET_MB = 100.0


def tree(pid: int) -> list[int]:
    """``pid`` and every process it started (the checker's own /proc walk)."""
    from checker.probes.output import descendants

    return [pid, *descendants(pid)]


def mem_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM: the process's own peak RSS so far) in KiB."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    rss = int(ln.split()[1])
                elif ln.startswith("VmHWM:"):
                    hwm = int(ln.split()[1])
    except (OSError, ValueError):
        pass
    return rss, hwm


def sample_peak(proc: subprocess.Popen[Any], every: float = 0.02) -> tuple[float, float, int]:
    """Of proc's process tree until it ends: (peak of the summed RSS, sampled; the sum of
    each process's own peak, VmHWM: an upper bound that no short spike escapes; most
    processes seen at once), in MB."""
    peak = most = 0
    hwm: dict[int, int] = {}
    while proc.poll() is None:
        pids = tree(proc.pid)
        total = 0
        for p in pids:
            rss, h = mem_kib(p)
            total += rss
            hwm[p] = max(hwm.get(p, 0), h)
        peak = max(peak, total)
        most = max(most, len(pids))
        time.sleep(every)
    return peak / 1024, sum(hwm.values()) / 1024, most


def grade_once(spec: str, sshd: Any, lab: str, work: Path) -> dict[str, Any]:
    db = work / f"gb-{time.monotonic_ns()}.sqlite"
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "checker", "grade", lab, "--hosts", spec, "--ssh-config",
         str(sshd.ssh_config), "--workers", "1", "--db", str(db), "--lang", "en"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak: list[tuple[float, float, int]] = []
    t = threading.Thread(target=lambda: peak.append(sample_peak(proc)))
    t.start()
    out, err = proc.communicate(timeout=600)
    t.join()
    wall = time.monotonic() - t0
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT status, reason FROM results").fetchall()
    return {"peak_mb": round(peak[0][0], 1), "hwm_sum_mb": round(peak[0][1], 1),
            "processes": peak[0][2], "wall_s": round(wall, 2), "exit": proc.returncode,
            "results": rows, "stderr": err[-300:]}


def run(flood_mib: int = 2048, lab: str = "01") -> dict[str, Any]:
    from sshd import LearnerUsers, Sshd

    with Sshd() as sshd:
        users = LearnerUsers(sshd)
        try:
            normal = users.add("bnormal")
            flood = users.add("bflood")
            home = users.home(flood)
            # every command sshd runs for this learner first prints flood_mib MiB
            (home / ".bashrc").write_text(
                f"head -c {flood_mib * 1024 * 1024} /dev/zero | tr '\\0' F\n", encoding="utf-8")
            subprocess.run(["chown", f"{flood}:{flood}", str(home / ".bashrc")], check=True)
            with tempfile.TemporaryDirectory(prefix="vl-bflood-") as d:
                work = Path(d)
                ref = grade_once(sshd.spec(normal), sshd, lab, work)
                fl = grade_once(sshd.spec(flood), sshd, lab, work)
        finally:
            users.remove_all()
    cut = bool(fl["results"]) and all(s == "error" and "MiB" in r for s, r in fl["results"])
    return {"flood_mib": flood_mib, "lab": lab, "normal": ref, "flood": fl,
            "flood_cut_and_reported": cut, "target_mb": TARGET_MB,
            "ok": fl["hwm_sum_mb"] < TARGET_MB and cut}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flood-mib", type=int, default=2048)
    ap.add_argument("--lab", default="01")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_flood: needs root (sshd, learner accounts)", file=sys.stderr)
        return 2
    res = run(a.flood_mib, a.lab)
    print(f"normal learner: peak {res['normal']['peak_mb']} MB, sum of the processes' own "
          f"peaks {res['normal']['hwm_sum_mb']} MB "
          f"({res['normal']['processes']} processes), {res['normal']['wall_s']} s, "
          f"{res['normal']['results']}")
    print(f"flooding learner ({a.flood_mib} MiB per command): peak {res['flood']['peak_mb']} MB, "
          f"sum of the processes' own peaks {res['flood']['hwm_sum_mb']} MB "
          f"({res['flood']['processes']} processes), "
          f"{res['flood']['wall_s']} s, {res['flood']['results']}")
    print(f"target: < {TARGET_MB:g} MB with the flood cut and reported: "
          f"{'OK' if res['ok'] else 'MISSED'}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2), encoding="utf-8")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
