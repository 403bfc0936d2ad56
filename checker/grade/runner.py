"""Grading many hosts at once: a pool of worker processes, each host bounded in time.

Why processes and not threads: a host that hangs (a remote command that never returns, a
connection that stalls after login) must cost at most its deadline and hold up no other host.
A thread cannot be stopped; a worker process can. Each worker (``checker.grade.worker``) runs
in its own session, so on its deadline the runner kills its whole process group (the worker
and its ``ssh`` children) and starts a fresh worker for the next host. Workers are long-lived,
and forked from one process of the run that has already paid the imports and loaded the labs
(:class:`ForkServer`): a worker costs a fork, not a Python start-up (~0.45 s of CPU each).

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
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checker.grade.worker import classify_ssh_words
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
#: a host graded for this long already tells how much its worker waits (automatic count)
INFLIGHT_AFTER = 1.0


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


def worker_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a worker: it must import this very checker package, installed or from the
    source tree."""
    out = dict(env)
    root = str(Path(__file__).resolve().parents[2])
    out["PYTHONPATH"] = root + (os.pathsep + out["PYTHONPATH"] if out.get("PYTHONPATH") else "")
    return out


class ForkServer:
    """One ``python -m checker.grade.worker --fork-server LAB…`` per run: it imports and
    loads the labs once (``checker.grade.worker.warm_up``), then forks each worker the pool
    asks for (``checker.grade.worker.fork_server``). A worker then costs a fork (~10 ms)
    instead of a Python start-up, its imports and its first lab's loading (~0.45 s of CPU):
    32 workers on 2 cores started ~7 s sooner.

    It runs in its own session; :meth:`close` ends it (its workers are the pool's, each in
    its own session too)."""

    def __init__(self, env: dict[str, str], log: Path, labs: list[str], own_log: bool = False):
        self.log = log
        #: the log is this server's own temporary file, removed by :meth:`close`
        self.own_log = own_log
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with open(log, "ab") as err:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "checker.grade.worker", "--fork-server", *labs],
                    stdin=theirs.fileno(), stdout=subprocess.DEVNULL, stderr=err, env=env,
                    start_new_session=True)
        finally:
            theirs.close()
        self.sock = ours
        self.lock = threading.Lock()
        self.ready = False
        self.closed = False

    def _wait_ready(self) -> None:
        if self.ready:
            return
        r, _, _ = select.select([self.sock], [], [], READY_TIMEOUT)
        msg = self.sock.recv(4096) if r else b""
        if not msg or "ready" not in json.loads(msg):
            raise WorkerNotStarted(NOT_STARTED.format(stderr=_tail(self.log)))
        self.ready = True

    @classmethod
    def early(cls, labs: list[str]) -> ForkServer | None:
        """A fork server started before the run is set up (the labs as the command line
        names them: it resolves them itself), so that its imports overlap the runner's own
        start; its workers get the run's environment with each fork (:meth:`fork`). None when
        it cannot start (the pool then starts its own)."""
        fd, log = tempfile.mkstemp(prefix="virtlab-fork-server-", suffix=".log")
        os.close(fd)
        try:
            return cls(worker_env(dict(os.environ)), Path(log), labs, own_log=True)
        except OSError:
            os.unlink(log)
            return None

    def fork(self, log: Path, env: dict[str, str] | None = None) -> socket.socket:
        """A new worker (its stderr to ``log``, ``env`` its environment when given, else the
        server's); its end of the protocol. OSError or WorkerNotStarted when the server
        cannot fork one."""
        mine, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        request = {"log": str(log), **({"env": env} if env is not None else {})}
        try:
            with self.lock:
                if self.closed:
                    raise OSError("the fork server is closed")
                self._wait_ready()
                socket.send_fds(self.sock, [json.dumps(request).encode()], [its.fileno()])
        except BaseException:
            mine.close()
            raise
        finally:
            its.close()
        return mine

    def close(self) -> None:
        """End the server (again: nothing more)."""
        with self.lock:
            self.closed = True
            self.sock.close()  # EOF: the server ends
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            pass
        _end_group(self.proc)
        if self.own_log:
            try:
                self.log.unlink()
            except OSError:
                pass


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` and its process group (it leads its own session) if it still runs."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(5)


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-3:])[-500:]


def _alive(pid: int) -> bool:
    """A process that has not ended (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


#: the most of ssh's words kept when it could not connect (the tail: its last line says why)
CONNECT_WORDS_MAX = 64 * 1024


def down(job: Job, status: str, reason: str) -> dict[str, Any]:
    """The answer for a host none of whose labs could be graded: each lab ``status``, with
    ``reason`` (visible text only: control characters shown, as the worker sends them)."""
    from checker.safetext import clean_data

    answer: dict[str, Any] = clean_data({"host": job.host, "results": [
        {"lab": lab, "status": status, "reason": reason, "report": None}
        for lab in job.payload["labs"]]})
    return answer


#: ssh's exit status when it could not connect or log in
SSH_FAILED = 255
#: an early connection still opening this long after its ConnectTimeout (TCP and the server's
#: greeting) is not what ssh does on its own (e.g. two hosts sharing one ControlPath): it is
#: ended and the worker connects itself, within what is left of the host's time
EARLY_SLACK = 10.0


class EarlyConnection:
    """One host's shared ssh connection, opened by the runner as soon as the host is taken
    (``job.payload["connect_argv"]``, see :func:`checker.grade.sshconf.connect_argv`), while
    its worker is forked and warms up: over a slow link the key exchange and the login are a
    dozen round trips, which then overlap the worker's start instead of following it. The
    worker's ``ssh`` (testinfra's, libvirt's) then rides that connection.

    Its own session (Ctrl-C in the terminal is the runner's to handle); its words go to a
    file (a host that prints much cannot fill a pipe and stall it), read back capped."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.words = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=self.words, env=env,
                                         start_new_session=True)
        except BaseException:
            self.words.close()
            raise

    def wait(self, deadline: float) -> tuple[int | None, str]:
        """(ssh's exit status, its last words); status None when the deadline came first
        (the attempt is then killed)."""
        try:
            rc: int | None = self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            rc = None
        try:
            size = self.words.seek(0, os.SEEK_END)
            self.words.seek(max(0, size - CONNECT_WORDS_MAX))
            text = self.words.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            text = ""
        self.words.close()
        return rc, text

    def kill(self) -> None:
        """End the attempt if it still runs (a master it already started is the run's, closed
        with the run: ``SshSetup.close``)."""
        _end_group(self.proc)
        self.words.close()


class _Worker:
    """One grading worker: forked by the run's :class:`ForkServer` when given, else a
    process of its own (``python -m checker.grade.worker``)."""

    def __init__(self, env: dict[str, str], log: Path, server: ForkServer | None = None):
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.pid: int | None = None
        if server is not None:
            self.sock = server.fork(log, env)
            self._fd = self.sock.fileno()
        else:
            with open(log, "ab") as err:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "checker.grade.worker"], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=err, env=env, start_new_session=True)
            assert self.proc.stdout is not None
            self._fd = self.proc.stdout.fileno()
            self.pid = self.proc.pid
        self._buf = b""
        self.ready = False

    def send(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj) + "\n").encode()
        if self.sock is not None:
            self.sock.sendall(data)
            return
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The next JSON line, or None when the deadline passes. EOFError if the worker died."""
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self._fd], [], [], min(left, 0.5))
            if not r:
                continue
            chunk = os.read(self._fd, 1 << 16)
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
            if self.pid is None:
                self.pid = int(msg["ready"])
            self.ready = True

    def stderr_tail(self) -> str:
        return _tail(self.log)

    def _wait(self, seconds: float) -> bool:
        """True once the worker has ended (within ``seconds``)."""
        if self.proc is not None:
            try:
                self.proc.wait(seconds)
                return True
            except subprocess.TimeoutExpired:
                return False
        end = time.monotonic() + seconds
        while self.pid is not None and _alive(self.pid):
            if time.monotonic() >= end:
                return False
            time.sleep(0.02)
        return True

    def kill(self) -> None:
        """Kill the worker and everything it started (its own session / process group)."""
        if self.pid is not None and (self.proc is None or self.proc.poll() is None):
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._wait(5)
        for f in (self.sock, *((self.proc.stdin, self.proc.stdout) if self.proc else ())):
            try:
                if f:
                    f.close()
            except OSError:
                pass

    def stop(self) -> None:
        """Ask politely (EOF on its input), then kill."""
        try:
            if self.sock is not None:
                self.sock.shutdown(socket.SHUT_WR)
            elif self.proc is not None and self.proc.stdin:
                self.proc.stdin.close()
            self._wait(3)
        except (OSError, ValueError):
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
    #: fork the workers from one warmed-up process (:class:`ForkServer`); False: each
    #: worker starts Python itself (also the fallback when the fork server fails)
    fork: bool = True
    #: a fork server the caller started early (:meth:`ForkServer.early`): the pool uses it
    #: and closes it
    server: ForkServer | None = None

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
        env = worker_env(self.env)
        logdir = self.logdir or Path("/tmp")
        auto = self.workers is None
        n = max(1, min(self.workers or default_workers(), len(jobs)))
        ratios: list[float] = []  # wall / CPU of each host graded (automatic count)
        #: the hosts being graded: slot -> (start, worker's CPU then, worker pid)
        inflight: dict[int, tuple[float, float, int]] = {}
        labs = sorted({lab for j in jobs for lab in j.payload.get("labs", ())})
        server: list[ForkServer] = []
        if self.server is not None:
            server.append(self.server)
        elif self.fork:
            try:
                server.append(ForkServer(env, logdir / "fork-server.log", labs))
            except OSError:
                pass

        def new_worker(i: int) -> _Worker:
            log = logdir / f"worker-{i}.log"
            with lock:
                srv = server[0] if server else None
            if srv is not None:
                try:
                    return _Worker(env, log, srv)
                except (OSError, WorkerNotStarted):
                    with lock:  # no fork server for the rest of the run
                        if server and server[0] is srv:
                            server.clear()
                    srv.close()
            return _Worker(env, log)

        #: the hosts whose connection is being opened early: slot -> attempt
        connecting: dict[int, EarlyConnection] = {}

        def early_connection(i: int, job: Job) -> EarlyConnection | None:
            argv = job.payload.get("connect_argv")
            if not argv or stop.is_set():
                return None
            try:
                attempt = EarlyConnection(list(argv), env)
            except OSError:
                return None  # the worker connects itself, as without
            with lock:
                connecting[i] = attempt
            return attempt

        def connected(i: int, job: Job, early: EarlyConnection) -> dict[str, Any] | None:
            """None once the host's connection is up (or when its attempt tells nothing:
            the worker then tries itself); else the host's answer, every lab unreachable
            or timed out with ssh's words, as the worker says it (no second attempt: a
            host that does not answer costs its timeout once)."""
            limit = min(self.host_timeout, float(job.payload.get("timeout") or 10) + EARLY_SLACK)
            rc, words = early.wait(early.started + limit)
            with lock:
                connecting.pop(i, None)
            lang = job.payload.get("lang") or "fr"
            if rc is None:
                if limit < self.host_timeout:  # not what ssh does: let the worker try
                    return None
                reason = NO_ANSWER.format(seconds=f"{self.host_timeout:g}").get(lang)
                return down(job, "timeout", reason)
            if rc != SSH_FAILED:
                return None
            return down(job, *classify_ssh_words(words, lang))

        def graded(i: int, worker: _Worker, job: Job, deadline: float) -> dict[str, Any] | None:
            """The worker's answer for the job, None when the deadline came first; the
            automatic count learns from the host how much its worker waited."""
            cpu0 = cpu_seconds(worker.pid) if auto and worker.pid else None
            t0 = time.monotonic()
            if cpu0 is not None and worker.pid:
                with lock:
                    inflight[i] = (t0, cpu0, worker.pid)
            worker.send(job.payload)
            try:
                answer = worker.read(deadline)
            finally:
                with lock:
                    inflight.pop(i, None)
            cpu1 = cpu_seconds(worker.pid) if worker.pid and cpu0 is not None else None
            if answer is not None and cpu0 is not None and cpu1 is not None:
                with lock:
                    ratios.append((time.monotonic() - t0) / max(cpu1 - cpu0, 0.01))
            return answer

        def slot(i: int) -> None:
            worker: _Worker | None = None
            try:
                while not stop.is_set():
                    try:
                        job = todo.get_nowait()
                    except queue.Empty:
                        return
                    wall0 = time.time()
                    lang = job.payload.get("lang") or "fr"
                    # the host's connection first: it opens while the worker is forked
                    early = early_connection(i, job)
                    spent = 0.0  # the host's time so far: its early connection
                    t0 = time.monotonic()
                    status, reason, answer = "", "", None
                    try:
                        if worker is None:
                            worker = new_worker(i)
                            with lock:
                                live[i] = worker
                        if early is not None:
                            answer = connected(i, job, early)  # None: connected
                            spent = time.monotonic() - early.started
                        t0 = time.monotonic()
                        if answer is None:
                            worker.wait_ready()
                            t0 = time.monotonic()  # the deadline counts the host, not our imports
                            answer = graded(i, worker, job, t0 + self.host_timeout - spent)
                            if answer is None:
                                status = "timeout"
                                reason = NO_ANSWER.format(
                                    seconds=f"{self.host_timeout:g}").get(lang)
                    except (EOFError, BrokenPipeError, OSError, ValueError) as e:
                        status = "error"
                        why = e.text.get(lang) if isinstance(e, WorkerNotStarted) else e
                        reason = WORKER_DIED.format(error=why).get(lang).strip()
                    finally:
                        if early is not None:
                            early.kill()
                            with lock:
                                connecting.pop(i, None)
                    if answer is None and worker is not None:
                        worker.kill()
                        worker = None
                        with lock:
                            live.pop(i, None)
                    if answer is None:
                        answer = down(job, status, reason)
                    done.put(Outcome(host=job.host, results=answer["results"], started_at=wall0,
                                     duration_s=round(spent + time.monotonic() - t0, 3),
                                     worker_pid=worker.pid if worker else None))
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
            """Automatic count: more slots while the hosts graded so far mostly waited, and
            the hosts being graded for at least :data:`INFLIGHT_AFTER` seconds too (over a
            slow link the first hosts take seconds: waiting for them to end kept the pool at
            its starting size that long)."""
            now = time.monotonic()
            with lock:
                seen = list(ratios)
                running = [v for v in inflight.values() if now - v[0] >= INFLIGHT_AFTER]
            for t0, cpu0, pid in running:
                cpu = cpu_seconds(pid)
                if cpu is not None:
                    seen.append((now - t0) / max(cpu - cpu0, 0.01))
            want = min(workers_for(seen), len(jobs))
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
                attempts = list(connecting.values())
            for w in workers:  # interrupted: do not wait for the hosts in flight
                w.kill()
            for a in attempts:
                a.kill()
            for t in threads:
                t.join(10)
            with lock:
                servers = list(server)
                server.clear()
            for srv in servers:
                srv.close()
