"""Grading a class: targets in, a gradebook run out. A consumer of ``check()``.

    >>> from checker.grade import Gradebook, GradeOptions, grade, from_specs
    >>> gb = Gradebook("class.sqlite")                                          # doctest: +SKIP
    >>> run_id = grade(gb, ["01-hardware"], from_specs(["ssh://alice@pc12"]),
    ...                GradeOptions(ssh_config="class_ssh_config"))             # doctest: +SKIP
    >>> gb.class_view(run_id).rows[0].results["01-hardware"].score             # doctest: +SKIP
    7

Each host is checked by a worker process (``checker.grade.runner``) calling
``checker.engine.check()`` once per lab over the run's SSH set-up
(``checker.grade.sshconf``), and its outcome is committed to the gradebook as soon as it
arrives: an interrupted run keeps every host already graded.

libvirt over SSH: the read-only libvirt connection is libvirt's own ``qemu+ssh://`` transport,
opened by the worker with the learner's SSH identity and riding the host's shared SSH
connection (the workers' ``ssh`` is the run's wrapper, see ``checker.grade.sshconf``). Chosen
over ``virsh`` run through testinfra because it reuses the libvirt probes unchanged (the API's
XML, not parsed virsh output), needs nothing on the learner's host beyond sshd, key
authentication and group ``libvirt`` (libvirt's ``virt-ssh-helper``, or ``nc`` when the URI
names a ``socket``), and is the fastest. Measured on loopback (2 cores, 3 domains; open, list,
read every domain's XML; median of 6): qemu+ssh on the shared connection 40 ms, qemu+ssh with
its own SSH handshake 250 ms, ``virsh list`` + ``virsh dumpxml`` per domain over testinfra
125 ms.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from checker.grade.gradebook import Gradebook
from checker.grade.hostssh import host_bin
from checker.grade.runner import ForkServer, Job, Outcome, WorkerPool
from checker.grade.sshconf import SshSetup, connect_argv
from checker.grade.targets import HostTarget

DEFAULT_CONNECT = "qemu+ssh://{user}@{host}:{port}/system"


@dataclass
class GradeOptions:
    ssh_config: str | None = None
    timeout: int = 10  # SSH connect timeout, s
    host_timeout: float = 120.0  # the most one host may take, all its labs together, s
    #: hosts graded at once; None: automatic (checker.grade.runner.workers_for)
    workers: int | None = None
    connect: str = DEFAULT_CONNECT  # libvirt URI template: {user} {host} {port}
    lang: str = "fr"
    #: StrictHostKeyChecking accept-new instead of yes (--accept-new-host-keys)
    accept_new_host_keys: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def grade(gradebook: Gradebook, labs: list[str], targets: list[HostTarget],
          options: GradeOptions, *, run_id: int | None = None,
          on_start: Callable[[int, int], None] | None = None,
          on_host: Callable[[Outcome], None] | None = None,
          fork_server: ForkServer | None = None) -> int:
    """Grade ``targets`` on ``labs`` into run ``run_id`` (a new run when None);
    ``fork_server``: one the caller started early (:meth:`ForkServer.early`), used and closed.

    The run ends ``complete``; on KeyboardInterrupt it is marked ``interrupted`` (the hosts
    already recorded stay) and the interrupt propagates.
    """
    if run_id is None:
        run_id = gradebook.start_run(labs, targets, lang=options.lang, options=options.to_dict())
    if on_start:
        on_start(run_id, len(targets))
    ssh = SshSetup(options.ssh_config, options.timeout, accept_new=options.accept_new_host_keys)
    # Hosts that did not answer last time first: their connect timeouts then run while the
    # live hosts are graded, instead of stretching the end of the run.
    down = gradebook.failed_to_connect_last()
    targets = sorted(targets, key=lambda t: t.host not in down)
    jobs = [Job(host=t.host, payload={
        "host": t.host, "spec": t.spec, "user": t.learner, "labs": list(labs),
        "connect": t.libvirt_uri(options.connect),
        "ssh_config": str(ssh.config), "timeout": options.timeout, "lang": options.lang,
        "ssh_bin": str(host_bin(ssh, t.ssh_args)),
        # the runner opens the host's connection while the worker starts
        "connect_argv": early_argv(ssh, t),
    }) for t in targets]
    pool = WorkerPool(workers=options.workers, host_timeout=options.host_timeout,
                      logdir=ssh.dir, env=ssh.path_env(dict(os.environ)), server=fork_server)
    status = "interrupted"
    try:
        for outcome in pool.run(jobs):
            gradebook.record(run_id, outcome.host, outcome.results, outcome.duration_s)
            if on_host:
                on_host(outcome)
        status = "complete"
    finally:
        # A second Ctrl-C here must not leave the run "running" nor shared SSH
        # connections behind: it is held until the run is closed, then raised.
        with _interrupts_deferred():
            try:
                gradebook.finish_run(run_id, status)
            finally:
                ssh.close()
    return run_id


def early_argv(ssh: SshSetup, target: HostTarget) -> list[str] | None:
    """The ``ssh`` that opens the target's connection ahead of its worker, as the worker's
    would (same login, host and port: same ControlPath); None when that login is not known
    (an inventory without ``ansible_user``: ssh chooses) or when the inventory's own options
    for the host decide about shared connections (testinfra then adds none of its own:
    neither does the runner)."""
    if not target.ssh_login_known():
        return None
    if any(w in " ".join(target.ssh_args).lower() for w in CONTROL_WORDS):
        return None
    return connect_argv(host_bin(ssh, target.ssh_args), target.ssh_user, target.ssh_host,
                        target.ssh_port)


#: ssh options about shared connections (an inventory that sets one keeps its say)
CONTROL_WORDS = ("controlmaster", "controlpath", "controlpersist")


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM during a short critical section; raise KeyboardInterrupt after it
    if one came. Only the main thread can set handlers: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = {s: signal.signal(s, lambda n, _f: got.append(n))
           for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if got:
        raise KeyboardInterrupt
