"""The facts every lab reads, fetched in one exchange over SSH (issue #17).

A real sshd on loopback and a real learner: each lab checked over SSH with the prefetch
gives exactly the report it gives without it (status, message, evidence, hints shown) in
far fewer remote commands; every command a lab declares in ``PREFETCH`` is one its checks
really run (a stale declaration would cost bytes and save nothing); and nothing the
learner writes (a hints file imitating the script's markers) changes what is read.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from sshd import LearnerUsers

from checker.catalog import resolve
from checker.engine import check, lab_prefetch

pytestmark = pytest.mark.integration

LABS = ["01", "02", "05", "06"]
CONNECT = "test:///default"  # libvirt's test driver: the libvirt parts read the same here


@pytest.fixture(scope="module", autouse=True)
def own_ssh_closed():
    """check() over ssh:// in this process sets up its own ssh wrapper (on PATH) and shared
    connections: closed when this module is done, as at the end of a learner's process."""
    yield
    from checker.engine import close_own_ssh

    close_own_ssh()


@pytest.fixture(scope="module")
def learner(sshd):
    users = LearnerUsers(sshd)
    name = users.add("pf", groups=("kvm",))
    home = users.home(name)
    # a hints file that imitates the script's marker lines (as JSON whitespace) and asks
    # for a hint on one objective of each lab
    d = home / ".local" / "share" / "virtlab"
    d.mkdir(parents=True)
    text = ('{"version": 1,\nvirtlab-00000000000000000000000000000000 0\n"labs": '
            + json.dumps({
                "01-hardware": {"cpu-virt-flags": 2, "kvm-modules": 1, "dev-kvm": 1},
                "02-install-kvm": {"user-group-libvirt": 1, "libvirtd-active": 1},
                "03-libvirt-basics": {"user-default-uri": 1, "default-network-active": 1},
                "05-networks": {"net-nat-defined": 1},
                "06-virtualbox": {"vbox-installed": 1, "vbox-source": 1}})
            + "}\n\nvirtlab-0 1\n")
    (d / "hints.json").write_text(text)
    for p in (d / "hints.json", d, d.parent, d.parent.parent):
        os.chown(p, users.home(name).stat().st_uid, users.home(name).stat().st_gid)
    yield name
    users.remove_all()


def _recorder(monkeypatch) -> list[str]:
    """Every command the probes ask testinfra to run (answered from memory or not)."""
    from checker.probes.output import BoundedBackend

    asked: list[str] = []
    original = BoundedBackend.run

    def record(backend: Any, command: str, *args: str, **kw: Any) -> Any:
        asked.append(backend.quote(command, *args))
        return original(backend, command, *args, **kw)

    monkeypatch.setattr(BoundedBackend, "run", record)
    return asked


def _exchanges(monkeypatch) -> list[str]:
    """Every command that really went to the host (the remote shell sends each once)."""
    from checker.probes.shell import ShellBackend

    sent: list[str] = []
    original = ShellBackend.run_ssh

    def record(backend: Any, command: str) -> Any:
        sent.append(command)
        return original(backend, command)

    monkeypatch.setattr(ShellBackend, "run_ssh", record)
    return sent


#: evidence that moves between two runs a second apart (other programs write to the disk)
VOLATILE = {"disk_free_bytes"}


def _view(report) -> list[tuple]:
    return [(o.id, o.status, o.message, o.hint, o.hints_shown,
             json.dumps({k: v for k, v in o.evidence.items() if k not in VOLATILE},
                        sort_keys=True)) for o in report.objectives]


@pytest.mark.parametrize("lab", LABS)
def test_every_declared_prefetch_is_run_by_the_checks(lab, sshd, learner, monkeypatch):
    """Over SSH as the learner (where the prefetch serves), without it: every command a lab
    declares is one its checks ask for."""
    from testinfra.backend.base import BaseBackend

    import checker.probes.host as host_probes

    asked = _recorder(monkeypatch)
    monkeypatch.setattr(host_probes, "prefetch",
                        lambda host, user, home_file="", extra=(): host.run("true"))
    check(lab, sshd.spec(learner), connect=CONNECT, lang="en", ssh_config=str(sshd.ssh_config))
    declared = [BaseBackend.quote(t, *a) for t, a in lab_prefetch(resolve(lab))]
    assert declared, f"lab {lab} declares nothing to prefetch"
    assert [c for c in declared if c not in asked] == []


@pytest.mark.parametrize("lab", ["02", "03", "06"])
def test_every_command_built_to_prefetch_is_run_by_the_checks(lab, sshd, learner,
                                                              monkeypatch):
    """What a lab builds from the first exchange's answers (``prefetch_next``: lab 02's
    virsh as the learner, lab 03's login shell, lab 06's apt files) is what its checks
    really run, quoted the same: a stale builder would cost bytes and save nothing."""
    from testinfra.backend.base import BaseBackend

    import checker.probes.host as host_probes
    from checker.engine import get_host, lab_prefetch_next
    from checker.probes.learner import Learner
    from checker.probes.output import budget

    spec = sshd.spec(learner)
    asked = _recorder(monkeypatch)
    monkeypatch.setattr(host_probes, "prefetch",
                        lambda host, user, home_file="", extra=(): host.run("true"))
    check(lab, spec, connect=CONNECT, lang="en", ssh_config=str(sshd.ssh_config))
    h = get_host(spec, str(sshd.ssh_config))
    with budget():
        built = [BaseBackend.quote(t, *a)
                 for t, a in lab_prefetch_next(resolve(lab), h, Learner(h, learner), CONNECT)]
    assert built, f"lab {lab} builds nothing to prefetch"
    assert [c for c in built if c not in asked] == []


@pytest.mark.parametrize("lab", [*LABS, "03"])
def test_the_prefetch_changes_no_verdict_and_saves_exchanges(lab, sshd, learner, monkeypatch):
    import checker.probes.host as host_probes

    spec = sshd.spec(learner)
    sent = _exchanges(monkeypatch)
    fast = check(lab, spec, connect=CONNECT, lang="en", ssh_config=str(sshd.ssh_config))
    n_fast = len(sent)
    assert any("/bin/sh -c " in c for c in sent), sent  # the one exchange was made
    sent.clear()
    monkeypatch.setattr(host_probes, "prefetch",
                        lambda host, user, home_file="", extra=(): host.run("true"))
    import checker.probes.apt as apt_probes

    # and the files of a directory one by one (apt's sources and keyrings)
    monkeypatch.setattr(apt_probes, "fetch", lambda host, commands: None)
    slow = check(lab, spec, connect=CONNECT, lang="en", ssh_config=str(sshd.ssh_config))
    n_slow = len(sent)
    assert _view(fast) == _view(slow)
    # the hints file was read (through the prefetch, despite its fake markers)
    assert any(o.hints_shown for o in fast.objectives if o.status in ("fail", "error"))
    assert n_fast < n_slow, (n_fast, n_slow)
    if lab == "01":
        assert n_fast <= 2, sent  # everything lab 01 reads is declared


#: commands whose stderr a check would read: bytes that are not text, no final newline, a
#: fake marker line, an empty stderr, a status that is not 0, both streams interleaved
WITH_STDERR = [
    "printf 'out\\nx'; printf 'err\\0\\377\\n\\n' >&2; exit 3",
    "echo plain; printf '\\nvirtlab-0 0\\n' >&2",
    "echo only-out",
    "for i in 1 2 3; do echo o$i; echo e$i >&2; done; exit 141",
    "printf %s >&2",
]


def test_a_command_with_its_stderr_answers_as_it_would_alone(sshd, learner, monkeypatch):
    """A PREFETCH command marked WithStderr (its stderr is read: virt-host-validate, the net
    device script, VBoxManage --version) is answered by the one exchange with its exit
    status, output and stderr exactly as the command run alone gives them, and is not sent
    again; a plain one still drops its stderr (no check reads it)."""
    from checker.engine import get_host
    from checker.probes.host import WithStderr, prefetch
    from checker.probes.output import budget
    from checker.probes.shell import close_all

    close_all()
    h = get_host(sshd.spec(learner), str(sshd.ssh_config))
    alone = [h.run(c) for c in WITH_STDERR]
    sent = _exchanges(monkeypatch)
    with budget():
        r = prefetch(h, learner, extra=[(WithStderr(c), ()) for c in WITH_STDERR]
                     + [("echo dropped >&2; echo kept", ())])
        assert r is not None and r.rc == 0 and len(sent) == 1, sent
        got = [h.run(c) for c in WITH_STDERR]
        plain = h.run("echo dropped >&2; echo kept")
        assert len(sent) == 1, sent[1:]  # every answer from the one exchange
    assert [(x.rc, x.stdout_bytes, x.stderr_bytes) for x in got] == [
        (x.rc, x.stdout_bytes, x.stderr_bytes) for x in alone]
    assert any(x.stderr_bytes for x in alone) and any(x.rc for x in alone)
    assert (plain.stdout, plain.stderr) == ("kept\n", "")


def _preloads(monkeypatch) -> list[set[str]]:
    """What each libvirt read-ahead of the run was asked to read (Virt.preload)."""
    from checker.probes.libvirt import Virt

    started: list[set[str]] = []
    original = Virt.preload

    def record(virt: Any, kinds: Any = ()) -> None:
        started.append(set(kinds))
        original(virt, kinds)

    monkeypatch.setattr(Virt, "preload", record)
    return started


def test_a_job_reads_libvirt_ahead_from_its_first_run(sshd, learner, monkeypatch):
    """libvirt's read-ahead starts in the job's first run, once the one exchange answered,
    whatever the lab order (lab 01 reads no libvirt; lab 02 reads systemd's unit states in
    that exchange, before any connection); lab 02 checked alone reads ahead too. The
    verdicts are those of a job without any read-ahead."""
    import checker.engine as engine
    from checker.probes.output import budget

    spec = sshd.spec(learner)
    kw: dict[str, Any] = {"connect": CONNECT, "lang": "en", "ssh_config": str(sshd.ssh_config)}
    started = _preloads(monkeypatch)
    with budget():
        fast = [check("01", spec, prefetch_labs=["02", "05"], **kw)]
        assert started == [{"domains", "networks", "version"}]  # lab 01's run: the union
        fast += [check("02", spec, prefetch_labs=["01", "05"], **kw),
                 check("05", spec, prefetch_labs=["01", "02"], **kw)]
    started.clear()
    check("02", spec, **kw)
    assert started == [{"version"}]
    started.clear()
    with budget():
        check("01", spec, prefetch_labs=["06"], **kw)
    assert started == []  # no lab of that job reads libvirt
    monkeypatch.setattr(engine, "_read_libvirt_ahead", lambda *a, **k: None)
    with budget():
        slow = [check(lab, spec, prefetch_labs=[x for x in ("01", "02", "05") if x != lab],
                      **kw) for lab in ("01", "02", "05")]
    assert [_view(r) for r in fast] == [_view(r) for r in slow]


def test_without_the_prefetch_lab_02_connects_when_its_check_does(sshd, learner,
                                                                    monkeypatch):
    """When the exchange kept nothing (here: no prefetch at all), systemd's unit states
    are read by lab 02's check itself: nothing is read ahead, and each check connects to
    libvirt when it reads it, in order."""
    import checker.probes.host as host_probes
    from checker.probes.output import budget

    spec = sshd.spec(learner)
    kw: dict[str, Any] = {"connect": CONNECT, "lang": "en", "ssh_config": str(sshd.ssh_config)}
    monkeypatch.setattr(host_probes, "prefetch",
                        lambda host, user, home_file="", extra=(): host.run("true"))
    started = _preloads(monkeypatch)
    with budget():
        check("01", spec, prefetch_labs=["02", "05"], **kw)
        check("02", spec, prefetch_labs=["01", "05"], **kw)
        check("05", spec, prefetch_labs=["01", "02"], **kw)
    assert started == []


def test_without_a_budget_nothing_is_remembered(sshd, learner):
    """Outside a check run (no output budget), every command runs: nothing goes stale."""
    from checker.engine import get_host
    from checker.probes.host import prefetch

    h = get_host(sshd.spec(learner), str(sshd.ssh_config))
    r = prefetch(h, learner, ".local/share/virtlab/hints.json")
    assert r.rc == 0
    # a new random UUID at every read (/proc/uptime can stay the same for 10 ms: a command
    # costs less than that on the remote shell)
    first = h.run("cat /proc/sys/kernel/random/uuid").stdout
    assert h.run("cat /proc/sys/kernel/random/uuid").stdout != first and first


def test_a_grading_job_reads_the_facts_of_all_its_labs_in_one_exchange(sshd, learner,
                                                                         monkeypatch):
    """The grading worker's job for one host (all its labs, one output budget): one prefetch
    exchange for the union of every lab's declared commands, one more for the commands
    they build from its answers, the same verdicts as each lab
    checked alone, and the host's shell closed when the job is done."""
    from checker.engine import get_host, lab_prefetch_next
    from checker.grade.worker import grade_host
    from checker.probes.learner import Learner
    from checker.probes.output import budget

    spec = sshd.spec(learner)
    labs = [resolve(lab).id for lab in [*LABS, "03"]]
    alone = {lab: check(lab, spec, connect=CONNECT, lang="en", ssh_config=str(sshd.ssh_config))
             for lab in labs}
    from checker.probes.shell import close_all

    close_all()  # no shell left open by an earlier test outside any budget
    backend = get_host(spec, str(sshd.ssh_config)).backend
    started = backend.sessions
    sent = _exchanges(monkeypatch)
    answer = grade_host({"host": "pc", "spec": spec, "user": learner, "labs": labs,
                         "connect": CONNECT, "ssh_config": str(sshd.ssh_config),
                         "lang": "en"})
    sent = list(sent)  # the job's (the lab_prefetch_next calls below send their own)
    # the prefetch script starts with testinfra's own first command (uname -s)
    scripts = [c for c in sent if c.startswith("/bin/sh -c ") and "uname -s" in c]
    assert len(scripts) == 1, [c[:80] for c in scripts]
    for res in answer["results"]:
        assert res["status"] == "graded", res
        got = [(o["id"], o["status"], o["message"]) for o in res["report"]["objectives"]]
        assert got == [(o.id, o.status, o.message) for o in alone[res["lab"]].objectives]
    # every command declared by a lab was answered by that exchange: none was sent again
    from testinfra.backend.base import BaseBackend

    declared = {BaseBackend.quote(t, *a) for lab in labs for t, a in lab_prefetch(resolve(lab))}
    assert not declared & set(sent), sorted(declared & set(sent))
    assert backend.sessions == started + 1  # one shell for the whole job…
    assert backend.proc is None  # …closed with it
    # and what the labs build from its answers (the learner's login shell, virsh as the
    # learner, apt's files: lab_prefetch_next) came in ONE more exchange: nothing else
    learner_ = Learner(get_host(spec, str(sshd.ssh_config)), learner)
    with budget():
        nxt = {BaseBackend.quote(t, *a) for lab in labs
               for t, a in lab_prefetch_next(resolve(lab), learner_.host, learner_, CONNECT)}
    assert len(nxt) >= 4, nxt
    assert not nxt & set(sent), sorted(nxt & set(sent))
    assert len(sent) == 2, [c[:80] for c in sent]



def test_files_under_the_learners_home_are_prefetched(sshd, learner, monkeypatch):
    """Lab 03 declares files under the learner's home ("~/", checker.probes.host.IN_HOME):
    each is fetched in the one exchange, under the path its checks build (the home as
    ``getent passwd`` says it), and none is sent again; the report is the one without the
    prefetch."""
    from testinfra.backend.base import BaseBackend

    import checker.probes.host as host_probes
    from checker.probes.host import IN_HOME

    home = LearnerUsers(sshd).home(learner)
    backup = home / "virtlab" / "backup" / "default-network.xml"
    backup.parent.mkdir(parents=True)
    backup.write_text("<network><name>default</name></network>\n")
    conf = home / ".config" / "libvirt" / "libvirt.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text('uri_default = "qemu:///system"\n')
    for p in (backup, backup.parent, backup.parent.parent, conf, conf.parent, conf.parent.parent):
        os.chown(p, home.stat().st_uid, home.stat().st_gid)
    spec = sshd.spec(learner)
    declared = [(t, a) for t, a in lab_prefetch(resolve("03"))
                if any(x.startswith(IN_HOME) for x in a)]
    assert len(declared) >= 2
    paths = [BaseBackend.quote(t, *(f"{home}/{x[2:]}" if x.startswith(IN_HOME) else x
                                    for x in a)) for t, a in declared]
    try:
        asked = _recorder(monkeypatch)
        sent = _exchanges(monkeypatch)
        fast = check("03", spec, connect=CONNECT, lang="en", ssh_config=str(sshd.ssh_config))
        assert [c for c in paths if c not in asked] == []  # each is one the checks run…
        assert not set(paths) & set(sent), sorted(set(paths) & set(sent))  # …none sent
        monkeypatch.setattr(host_probes, "prefetch",
                            lambda host, user, home_file="", extra=(): host.run("true"))
        sent.clear()
        slow = check("03", spec, connect=CONNECT, lang="en", ssh_config=str(sshd.ssh_config))
        assert set(paths) <= set(sent)  # without it, each one is its own exchange
        assert _view(fast) == _view(slow)
        backup_row = [o for o in fast.objectives if o.id == "config-backup"][0]
        assert backup_row.evidence.get("exists") is True, backup_row
    finally:
        import shutil

        shutil.rmtree(home / "virtlab", ignore_errors=True)
        shutil.rmtree(home / ".config", ignore_errors=True)


@pytest.mark.parametrize("lab", LABS)
def test_the_labs_tests_and_lookups_run_in_the_scripts_own_shell(lab):
    """What the rule of IN_SCRIPT_SHELL saves is kept: each `test`/`command -v` a lab
    prefetches passes in_script_shell (no fork), with its arguments quoted as testinfra
    quotes them; anything else keeps its subshell."""
    from testinfra.backend.base import BaseBackend

    from checker.probes.host import IN_SCRIPT_SHELL, in_script_shell

    declared = [BaseBackend.quote(t, *a) for t, a in lab_prefetch(resolve(lab))]
    builtins = [c for c in declared if c.startswith(IN_SCRIPT_SHELL)]
    assert builtins, f"lab {lab} prefetches no test nor command -v"
    assert [c for c in builtins if not in_script_shell(c)] == []
    assert not any(in_script_shell(c) for c in declared if c not in builtins)
