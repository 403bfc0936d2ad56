"""Live checking and notebook re-checks, measured against the design targets.

- `--watch` shows a change of libvirt state within 1 s (driven by libvirt events);
- a re-check inside a running (notebook) kernel takes at most 0.15 s.

Runs a private libvirtd (tests/sandbox.py; needs root) and a small fixture lab (lab 90 of
tests/fixtures/labs: one domain, "is it running?"). Usage:
    sudo .venv/bin/python benchmarks/bench_live.py [--runs 15]

``benchmarks/run_all.py`` imports :func:`warm_rechecks` and :func:`watch_latency` and runs
them on the real labs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

FIXTURE_LABS = REPO / "tests" / "fixtures" / "labs"


def warm_rechecks(lab: str, uri: str, runs: int, user: str | None = None) -> list[float]:
    """Times of ``runs`` checks in this process after a first one (a notebook's re-checks)."""
    from checker.engine import check

    check(lab, connect=uri, user=user)
    warm = []
    for _ in range(runs):
        t = time.perf_counter()
        check(lab, connect=uri, user=user)
        warm.append(time.perf_counter() - t)
    return warm


def watch_latency(lab: str, uri: str, conn: Any, domain: str, objective: str, runs: int,
                  user: str | None = None) -> list[float]:
    """Start/stop ``domain`` (through the read-write ``conn``) ``runs`` times; for each, the
    time from the libvirt call's return to the watcher's update showing ``objective`` with
    the new state (pass when running, fail when not). Leaves the domain as it found it."""
    from checker.watch import Watcher

    dom = conn.lookupByName(domain)
    was_active = bool(dom.isActive())
    seen = threading.Event()
    want = {"status": "pass"}

    def on_update(u: Any) -> None:
        if {o.id: o.status for o in u.report.objectives}.get(objective) == want["status"]:
            seen.set()

    # interval=30: a poll cannot explain a sub-second update, only an event can
    w = Watcher(lab, connect=uri, user=user, interval=30, on_update=on_update)
    th = threading.Thread(target=w.run, daemon=True)
    th.start()
    lat = []
    try:
        time.sleep(2)
        for _ in range(runs):
            start = not dom.isActive()
            seen.clear()
            want["status"] = "pass" if start else "fail"
            dom.create() if start else dom.destroy()
            t = time.perf_counter()  # the state has changed when the call returns
            if not seen.wait(10):
                raise RuntimeError(f"watch {lab}: no update showing {objective} "
                                   f"{want['status']} within 10 s")
            lat.append(time.perf_counter() - t)
    finally:
        w.stop()
        th.join(10)
        if bool(dom.isActive()) != was_active:
            dom.create() if was_active else dom.destroy()
    return lat


def row(name: str, xs: list[float], target: float) -> None:
    med = statistics.median(xs)
    print(f"{name:<34} median {med * 1000:7.1f} ms  max {max(xs) * 1000:7.1f} ms  "
          f"target {target * 1000:.0f} ms  {'OK' if med <= target else 'MISSED'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    from sandbox import Sandbox

    os.environ["VIRTLAB_LABS"] = str(FIXTURE_LABS)
    with Sandbox() as sb:
        sb.reset()
        sb.conn().defineXML(sb.domain_xml("watched"))
        warm = warm_rechecks("90", sb.uri, args.runs)
        lat = watch_latency("90", sb.uri, sb.conn(), "watched", "vm-running", args.runs)
    row("re-check in a warm kernel", warm, 0.15)
    row("--watch: libvirt change shown", lat, 1.0)
    ok = statistics.median(warm) <= 0.15 and statistics.median(lat) <= 1.0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
