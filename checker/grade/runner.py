"""Grading many hosts at once: a pool of worker processes, each host bounded in time.

Why processes and not threads: a host that hangs (a remote command that never returns, a
connection that stalls after login) must cost at most its deadline and hold up no other host.
A thread cannot be stopped; a worker process can. Each worker (``checker.grade.worker``) runs
in its own session, so on its deadline the runner kills its whole process group (the worker
and its ``ssh`` children) and starts a fresh worker for the next host. Workers are long-lived:
a worker pays its imports (~0.3 s) once, not per host.

How many: grading is mostly waiting on SSH round trips, so more workers than cores pays off
until the key exchanges saturate the CPU; see the measurements above :data:`DEFAULT_WORKERS`.
A thread pool in one process is also slower: 8 threads calling ``check()`` graded the same
60 hosts in 33 s against 16 s for 8 worker processes (one process forking an ssh client per
command, under one GIL, is the bottleneck).

    >>> pool = WorkerPool(workers=8, host_timeout=120)          # doctest: +SKIP
    >>> for outcome in pool.run(jobs): print(outcome.host)       # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checker.i18n import Text, message

# Measured (benchmarks/bench_grade.py, lab 01, 60 loopback hosts, 2 busy cores): 1 worker 31 s,
# 2 workers 25-36 s, 4 workers 20-27 s, 8 workers 15-17 s, 16 workers 15 s. Past ~4 per core
# the CPU (key exchanges at both ends, one ssh client per command) is the limit.
# (`virtlab grade --help` states this rule in words: keep checker/commands.py in step.)
DEFAULT_WORKERS_PER_CPU = 4
DEFAULT_WORKERS_MAX = 16


def default_workers() -> int:
    return max(2, min(DEFAULT_WORKERS_MAX, (os.cpu_count() or 1) * DEFAULT_WORKERS_PER_CPU))


DEFAULT_WORKERS = default_workers()
#: Over a slow link (a class behind a VPN), a worker spends most of a host waiting for round
#: trips, not computing: the automatic count grows with that wait, up to this bound (a worker
#: holds ~50 MB).
AUTO_WORKERS_MAX = 32


def workers_for(wait_ratios: list[float], cpus: int | None = None) -> int:
    """The worker count that keeps the CPUs busy when a host's grading takes ``ratio`` times
    the CPU time it uses (wall / CPU of its worker and the ssh clients it ran; the median of
    the hosts measured so far): ``cpus × ratio``, never under :func:`default_workers` (the
    count measured best on loopback, where the learners' sshd shares our CPUs) nor over
    :data:`AUTO_WORKERS_MAX`.

    >>> workers_for([1.5, 2.0, 2.5], cpus=2) == default_workers()   # loopback: the default
    True
    >>> workers_for([12.0, 14.0, 30.0], cpus=2)                     # 60 ms RTT: waits
    28
    >>> workers_for([200.0], cpus=2)
    32
    """
    base = default_workers()
    if not wait_ratios:
        return base
    ratios = sorted(wait_ratios)
    median = ratios[len(ratios) // 2]
    want = int((cpus or os.cpu_count() or 1) * median)
    return max(base, min(AUTO_WORKERS_MAX, want))


def cpu_seconds(pid: int) -> float | None:
    """CPU time of a process and of its children it has waited for (utime, stime, cutime,
    cstime of /proc/PID/stat), in seconds; None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
NO_ANSWER = message("grade.no-answer",
                    fr="pas de réponse en {seconds} s (évaluation arrêtée sur cet hôte)",
                    en="no answer within {seconds} s (grading stopped on this host)")
NOT_STARTED = message("grade.worker-not-started",
                      fr="le processus d'évaluation n'a pas démarré : {stderr}",
                      en="worker did not start: {stderr}")


class WorkerNotStarted(EOFError):
    """A grading worker died before saying it was ready; :attr:`text` says why."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.en)
        self.text = text


WORKER_DIED = message("grade.worker-died", fr="le processus d'évaluation s'est arrêté : {error}",
                      en="grading worker died: {error}")
READY_TIMEOUT = 60.0  # a worker that cannot even import in this time is broken


@dataclass
class Job:
    host: str
    payload: dict[str, Any]


@dataclass
class Outcome:
    """What became of one host: one entry per lab (see checker.grade.worker)."""

    host: str
    results: list[dict[str, Any]]
    started_at: float
    duration_s: float
    worker_pid: int | None = None


class _Worker:
    def __init__(self, env: dict[str, str], log: Path):
        self.log = log
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "checker.grade.worker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=err, env=env, start_new_session=True)
        self._buf = b""
        self.ready = False

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The next JSON line, or None when the deadline passes. EOFError if the worker died."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not r:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError(self.stderr_tail())
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        answer: dict[str, Any] | None = json.loads(line)
        return answer

    def wait_ready(self) -> None:
        if not self.ready:
            msg = self.read(time.monotonic() + READY_TIMEOUT)
            if msg is None or "ready" not in msg:
                raise WorkerNotStarted(NOT_STARTED.format(stderr=self.stderr_tail()))
            self.ready = True

    def stderr_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-3:])[-500:]

    def kill(self) -> None:
        """Kill the worker and everything it started (its own session / process group)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f:
                    f.close()
            except OSError:
                pass

    def stop(self) -> None:
        """Ask politely (EOF on stdin), then kill."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(3)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        self.kill()


@dataclass
class WorkerPool:
    #: how many hosts at once; None: automatic, :func:`default_workers` to start with, then
    #: more while hosts mostly wait on the network (:func:`workers_for`)
    workers: int | None = None
    host_timeout: float = 120.0
    logdir: Path | None = None
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def _env(self) -> dict[str, str]:
        env = dict(self.env)
        # the worker must import this very checker package, installed or from the source tree
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def run(self, jobs: list[Job]) -> Iterator[Outcome]:
        """Grade the jobs concurrently; yield each host's Outcome as soon as it is known.

        Leaving the iteration early (Ctrl-C in the consumer, an exception, ``break``) stops
        every worker at once; the hosts already yielded stay done.
        """
        if not jobs:
            return
        todo: queue.Queue[Job] = queue.Queue()
        for j in jobs:
            todo.put(j)
        done: queue.Queue[Outcome | BaseException] = queue.Queue()
        stop = threading.Event()
        live: dict[int, _Worker] = {}
        lock = threading.Lock()
        env = self._env()
        logdir = self.logdir or Path("/tmp")
        auto = self.workers is None
        n = max(1, min(self.workers or default_workers(), len(jobs)))
        ratios: list[float] = []  # wall / CPU of each host graded (automatic count)

        def slot(i: int) -> None:
            worker: _Worker | None = None
            try:
                while not stop.is_set():
                    try:
                        job = todo.get_nowait()
                    except queue.Empty:
                        return
                    if worker is None:
                        worker = _Worker(env, logdir / f"worker-{i}.log")
                        with lock:
                            live[i] = worker
                    t0 = time.monotonic()
                    wall0 = time.time()
                    status, reason, answer = "", "", None
                    try:
                        worker.wait_ready()
                        t0 = time.monotonic()  # the deadline counts the host, not our imports
                        cpu0 = cpu_seconds(worker.proc.pid) if auto else None
                        worker.send(job.payload)
                        answer = worker.read(t0 + self.host_timeout)
                        cpu1 = cpu_seconds(worker.proc.pid) if cpu0 is not None else None
                        if answer is not None and cpu0 is not None and cpu1 is not None:
                            with lock:
                                ratios.append((time.monotonic() - t0) / max(cpu1 - cpu0, 0.01))
                        if answer is None:
                            status = "timeout"
                            reason = NO_ANSWER.format(seconds=f"{self.host_timeout:g}").get(
                                job.payload.get("lang") or "fr")
                    except (EOFError, BrokenPipeError, OSError, ValueError) as e:
                        status = "error"
                        lang = job.payload.get("lang") or "fr"
                        why = e.text.get(lang) if isinstance(e, WorkerNotStarted) else e
                        reason = WORKER_DIED.format(error=why).get(lang).strip()
                    if answer is None:
                        worker.kill()
                        worker = None
                        with lock:
                            live.pop(i, None)
                        answer = {"host": job.host, "results": [
                            {"lab": lab, "status": status, "reason": reason, "report": None}
                            for lab in job.payload["labs"]]}
                    done.put(Outcome(host=job.host, results=answer["results"], started_at=wall0,
                                     duration_s=round(time.monotonic() - t0, 3),
                                     worker_pid=worker.proc.pid if worker else None))
            # surfaced to the consumer
            except BaseException as e:  # pragma: no cover  # noqa: BLE001
                done.put(e)
            finally:
                if worker is not None:
                    worker.stop()
                    with lock:
                        live.pop(i, None)

        threads = [threading.Thread(target=slot, args=(i,), name=f"grade-slot-{i}", daemon=True)
                   for i in range(n)]
        for t in threads:
            t.start()

        def grow() -> None:
            """Automatic count: more slots while the hosts graded so far mostly waited."""
            with lock:
                want = min(workers_for(ratios), len(jobs))
            while len(threads) < want and not todo.empty():
                t = threading.Thread(target=slot, args=(len(threads),),
                                     name=f"grade-slot-{len(threads)}", daemon=True)
                threads.append(t)
                t.start()

        received = 0
        try:
            while received < len(jobs):
                if auto:
                    grow()
                try:
                    item = done.get(timeout=0.2)
                except queue.Empty:
                    if not any(t.is_alive() for t in threads) and done.empty():
                        break
                    continue
                if isinstance(item, BaseException):
                    raise item
                received += 1
                yield item
        finally:
            stop.set()
            with lock:
                workers = list(live.values())
            for w in workers:  # interrupted: do not wait for the hosts in flight
                w.kill()
            for t in threads:
                t.join(10)
