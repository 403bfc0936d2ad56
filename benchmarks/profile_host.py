"""Where one host's grading spends the instructor's CPU (not a test, not a timing target).

    sudo .venv/bin/python benchmarks/profile_host.py [--labs 01,...,07] [--hosts 3]
        [--no-libvirt] [--top 30] [--sort tottime] [--pstats FILE]

Root only (a loopback sshd and a real learner, ``tests/sshd.py``; a private libvirtd,
``tests/sandbox.py``, unless ``--no-libvirt``). It does in this process what one grading
worker does (``checker.grade.worker``): the worker's imports, then ``grade_host`` of one
job per host, exactly the job ``checker.grade.grading.grade`` sends (the run's ssh
set-up, its wrapper first on PATH), ``--hosts`` times in a row on the same learner (a
worker grades host after host: the first host pays the lazy imports and the lab loading,
the others show the steady cost). For each host it prints the worker's own CPU time, the
CPU time of the processes it started and waited for (``ssh`` clients: the round trips'
cost on the instructor's side), and the wall time; then cProfile's table of the last host
(or ``--pstats FILE`` to keep it). Everything made is removed at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(REPO / "tests"), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    from bench_network import ALL_LABS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--labs", default=",".join(ALL_LABS))
    ap.add_argument("--hosts", type=int, default=3, help="hosts graded in a row (default 3)")
    ap.add_argument("--no-libvirt", action="store_true")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--sort", default="cumulative")
    ap.add_argument("--pstats", metavar="FILE")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root (sshd, a learner user, a libvirtd)", file=sys.stderr)
        return 2
    labs = [f"{int(x):02d}" for x in a.labs.split(",") if x.strip()]

    with ExitStack() as stack:
        from sshd import LearnerUsers, Sshd

        sock = "/nonexistent/libvirt-sock"
        if not a.no_libvirt:
            from sandbox import Sandbox
            sb = Sandbox()
            stack.callback(sb.close)
            sb.open()
            sock = str(sb.socket)
        sshd = Sshd()
        stack.callback(sshd.close)
        sshd.start()
        subprocess.run(["groupadd", "-f", "libvirt"], check=True)
        users = LearnerUsers(sshd)
        stack.callback(users.remove_all)
        user = users.add("prof", groups=("libvirt",))

        t0, c0 = time.perf_counter(), time.process_time()
        import testinfra  # noqa: F401  (what a worker imports before saying ready)

        import checker.engine  # noqa: F401
        print(f"worker imports: {time.process_time() - c0:.3f} s CPU, "
              f"{time.perf_counter() - t0:.3f} s wall")

        from checker.catalog import resolve
        from checker.grade.hostssh import host_bin, ssh_bin_on_path
        from checker.grade.sshconf import SshSetup
        from checker.grade.worker import grade_host

        setup = SshSetup(str(sshd.ssh_config), 10)
        stack.callback(setup.close)
        os.environ.update(setup.path_env(dict(os.environ)))
        job: dict[str, Any] = {
            "host": "127.0.0.1", "spec": sshd.spec(user), "user": user,
            "labs": [resolve(x).id for x in labs],
            "connect": f"qemu+ssh://{user}@127.0.0.1:{sshd.port}/system?socket={sock}",
            "ssh_config": str(setup.config), "timeout": 10, "lang": "fr",
            "ssh_bin": str(host_bin(setup, ())),
        }
        prof = cProfile.Profile()
        for i in range(a.hosts):
            last = i == a.hosts - 1
            cpu0, ch0, w0 = time.process_time(), _children_cpu(), time.perf_counter()
            if last:
                prof.enable()
            with ssh_bin_on_path(job):
                answer = grade_host(job)
            if last:
                prof.disable()
            cpu, ch, wall = (time.process_time() - cpu0, _children_cpu() - ch0,
                             time.perf_counter() - w0)
            scores = " ".join(
                f"{r['lab'][:2]}:{r['report']['score']}/{r['report']['max_score']}"
                if r["report"] else f"{r['lab'][:2]}:{r['status']}" for r in answer["results"])
            print(f"host {i + 1}: worker CPU {cpu:.3f} s, its children (ssh, …) {ch:.3f} s, "
                  f"wall {wall:.3f} s  [{scores}]")
        out = io.StringIO()
        st = pstats.Stats(prof, stream=out)
        st.sort_stats(a.sort).print_stats(a.top)
        print(out.getvalue())
        if a.pstats:
            st.dump_stats(a.pstats)
        from checker.engine import close_own_ssh
        from checker.probes.libvirt import CONNECTIONS
        CONNECTIONS.close_all()
        close_own_ssh()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
