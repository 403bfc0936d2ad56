"""One long-lived remote shell per host (checker.probes.shell, issue #17).

Real parts: a real sshd on loopback (tests/sshd.py), real learner accounts, the ssh wrapper
and shared connection of the engine's own set-up. The host is this machine, so what runs on
the host's side is seen in /proc: the remote shell is the parent of every command
(``$PPID``), and when the run is over it is gone, as is every ssh client we started.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sshd import LearnerUsers, dead_port

from checker.engine import TargetUnreachable, check, close_own_ssh, get_host
from checker.probes import ssh_lost
from checker.probes.output import COMMAND_CAP, HOST_CAP, MiB, OutputFlood, budget, descendants
from checker.probes.shell import OPEN, ShellBackend, close_all

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def own_ssh_closed():
    """The in-process hosts' ssh set-up (wrapper, shared connections) ends with the module."""
    yield
    close_own_ssh()


@pytest.fixture(scope="module")
def users(sshd):
    u = LearnerUsers(sshd)
    yield u
    u.remove_all()


@pytest.fixture(scope="module")
def learner(users):
    name = users.add("sh")
    home = users.home(name)
    # a login shell that talks: whatever ~/.bashrc prints is not any command's output
    (home / ".bashrc").write_text("echo 'hello from bashrc'; echo 'to stderr' >&2\n",
                                  encoding="utf-8")
    subprocess.run(["chown", "-R", f"{name}:{name}", str(home)], check=True)
    return name


def _host(sshd, name):
    h = get_host(sshd.spec(name), str(sshd.ssh_config))
    assert isinstance(h.backend, ShellBackend)
    return h


def _ssh_children() -> list[int]:
    """Our own processes that are ssh clients (the detached shared master is not ours)."""
    out = []
    for pid in descendants(os.getpid()):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "ssh":
                out.append(pid)
        except OSError:
            pass
    return out


def _gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_one_shell_serves_every_command_exactly(sshd, learner):
    h = _host(sshd, learner)
    home = str(LearnerUsers(sshd).home(learner))
    before = h.backend.sessions
    with budget(reuse=False):
        parents = set()
        for i in range(25):
            r = h.run("echo $PPID; printf 'err %%s' %s >&2; exit %s", str(i), str(i % 4))
            assert (r.rc, r.stderr) == (i % 4, f"err {i}")
            parents.add(int(r.stdout))
        assert len(parents) == 1, parents  # one shell on the host's side ran them all
        (shell_pid,) = parents
        assert Path(f"/proc/{shell_pid}/cmdline").read_bytes().split(b"\0")[0] == b"/bin/sh"
        assert h.backend.sessions == before + 1 and len(_ssh_children()) == 1
        # the ssh client stays in our process group: the runner's host deadline kills it
        (client,) = _ssh_children()
        assert os.getpgid(client) == os.getpgid(0)
        # bytes exact: binary, no final newline, stdout and stderr apart
        r = h.run("printf 'a\\000b\\377c'; printf 'e\\001' >&2")
        assert (r.rc, r.stdout_bytes, r.stderr_bytes) == (0, b"a\0b\xffc", b"e\x01")
        # output that imitates a marker line, the host's own text in its encoding
        r = h.run("printf 'x\\nvirtlab-%s 0\\n\\nvirtlab-%s\\n'; echo été", "0" * 32, "f" * 32)
        assert r.stdout == f"x\nvirtlab-{'0' * 32} 0\n\nvirtlab-{'f' * 32}\nété\n"
        # each command in its own sh -c: cd, variables, exit and stdin do not carry over
        r = h.run("cd /; X=1; export Y=2; cat; exit 3")
        assert (r.rc, r.stdout, r.stderr) == (3, "", "")
        r = h.run("pwd; echo ${X:-unset} ${Y:-unset}")
        assert r.stdout == f"{home}\nunset unset\n"
        assert h.run("'unbalanced").rc == 2  # a syntax error is the command's, not the shell's
        assert h.run("command -v no-such-command-here || exit 127").rc == 127
        # a big answer, exact
        size = COMMAND_CAP - MiB
        r = h.run("head -c %s /dev/urandom | tee /dev/stderr | sha256sum", str(size))
        assert len(r.stderr_bytes) == size
        assert r.stdout.split()[0] == hashlib.sha256(r.stderr_bytes).hexdigest()
        assert len(parents | {int(h.run("echo $PPID").stdout)}) == 1
    # the budget is over: the shell is closed, on both sides
    assert h.backend.proc is None and h.backend not in OPEN
    assert _ssh_children() == []
    assert _gone(shell_pid)


def test_the_caps_hold_on_the_shell(sshd, learner):
    h = _host(sshd, learner)
    with budget(reuse=False) as b:
        pid = int(h.run("echo $PPID").stdout)
        with pytest.raises(OutputFlood) as e:
            h.run("head -c %s /dev/zero", str(COMMAND_CAP + MiB))
        assert e.value.per == "command" and b.flood is e.value
        assert h.backend.proc is None and _ssh_children() == []  # cut: the session killed
        assert _gone(pid)
        with pytest.raises(OutputFlood):  # a flooded host: every later command fails at once
            h.run("true")
    with budget(reuse=False) as b:
        size = COMMAND_CAP - MiB
        with pytest.raises(OutputFlood) as e:
            for i in range(HOST_CAP // size + 1):
                assert len(h.run("head -c %s /dev/zero", str(size - i)).stdout_bytes) == size - i
        assert e.value.per == "host" and b.used <= HOST_CAP + COMMAND_CAP
    with budget(reuse=False):  # another budget: a new session, and it works
        assert h.run("echo again").stdout == "again\n"


def test_a_session_lost_mid_run_is_a_lost_connection_then_a_new_one(sshd, learner):
    """sshd's process of this connection killed during a command: testinfra's answer to a
    lost connection (RuntimeError, exit status 255, ssh's words), then a fresh session."""
    h = _host(sshd, learner)
    with budget(reuse=False):
        with pytest.raises(RuntimeError) as e:
            # the remote shell's parent is sshd's process serving this connection
            h.run("kill -9 $(ps -o ppid= -p $PPID); sleep 10")
        assert ssh_lost(e.value)
        assert h.backend.proc is None
        assert h.run("echo back").stdout == "back\n"


def test_a_login_shell_that_runs_nothing_else_gets_one_ssh_per_command(sshd, users):
    name = users.add("nologin")
    subprocess.run(["usermod", "-s", "/usr/sbin/nologin", name], check=True)
    h = _host(sshd, name)
    with budget(reuse=False):
        for cmd in ("true", "echo hi"):
            r = h.run(cmd)  # what sshd answers for each command, as with testinfra's own
            assert r.rc == 1 and "not available" in r.stdout + r.stderr, r
    assert h.backend.shell_usable is False and h.backend.proc is None


def test_unreachable_and_refused_hosts_say_it_in_ssh_words(sshd, users, learner, tmp_path):
    h = get_host(f"ssh://{learner}@127.0.0.1:{dead_port()}", str(sshd.ssh_config), 3)
    with pytest.raises(RuntimeError) as e:
        h.run("true")
    assert ssh_lost(e.value) and "refused" in e.value.args[0].stderr.lower()
    with pytest.raises(TargetUnreachable) as u:
        check("01", f"ssh://{learner}@127.0.0.1:{dead_port()}", connect="test:///default",
              ssh_config=str(sshd.ssh_config), timeout=3)
    assert "refused" in u.value.reason.lower()
    # a host key that is not the one known for this host
    other = tmp_path / "known_hosts"
    key = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                          str(tmp_path / "k")], check=True)
    assert key.returncode == 0
    pub = (tmp_path / "k.pub").read_text().split()
    other.write_text(f"[127.0.0.1]:{sshd.port} {pub[0]} {pub[1]}\n")
    cfg = tmp_path / "ssh_config"
    cfg.write_text(sshd.ssh_config.read_text().replace(str(sshd.known_hosts), str(other)))
    fresh = users.add("hk")  # no shared connection of an earlier test to ride on
    with pytest.raises(TargetUnreachable) as u:
        check("01", sshd.spec(fresh), connect="test:///default", ssh_config=str(cfg))
    assert "host key verification failed" in u.value.reason.lower()


def test_shells_outside_a_budget_end_with_close_all(sshd, learner):
    h = _host(sshd, learner)
    pid = int(h.run("echo $PPID").stdout)
    assert h.run("echo $PPID").stdout == f"{pid}\n"  # no budget: kept, not remembered
    assert h.backend in OPEN
    close_all()
    assert h.backend.proc is None and _ssh_children() == [] and _gone(pid)


def test_a_command_interrupted_leaves_no_session_behind(sshd, learner):
    """Ctrl-C (here SIGALRM's exception) in the middle of a command: the session is killed,
    the next command gets a new one."""
    h = _host(sshd, learner)

    class Stop(Exception):
        pass

    def stop(*_):
        raise Stop

    old = signal.signal(signal.SIGALRM, stop)
    try:
        with budget(reuse=False):
            signal.setitimer(signal.ITIMER_REAL, 1.0)
            with pytest.raises(Stop):
                h.run("echo $PPID; sleep 60")
            assert h.backend.proc is None and _ssh_children() == []
            assert h.run("echo next").stdout == "next\n"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_pytest_hosts_ssh_runs_through_one_shell_and_leaves_nothing(sshd, users, tmp_path):
    """The plugin's ``--hosts=ssh://``: testinfra's host fixture gets virtlab's backend, its
    commands share one shell, and nothing of it is left when pytest is done: no process of
    the learner on the host's side (shell, sshd session), no ssh client on ours."""
    name = users.add("plug")
    t = tmp_path / "test_shell_plugin.py"
    t.write_text(
        "def test_one_shell(host):\n"
        "    assert type(host.backend).__name__ == 'ShellBackend'\n"
        "    parents = {host.run('echo $PPID; echo %s', str(i)).stdout.split()[0]\n"
        "               for i in range(10)}\n"
        "    assert len(parents) == 1, parents\n", encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                        f"--hosts={sshd.spec(name)}", f"--ssh-config={sshd.ssh_config}",
                        str(t)], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    uid = int(subprocess.run(["id", "-u", name], capture_output=True, text=True,
                             check=True).stdout)
    deadline = time.monotonic() + 10
    while True:
        pids = [d for d in os.listdir("/proc") if d.isdigit()]
        left = [d for d in pids if _owned(d, uid)]
        clients = [d for d in pids if f"User={name}".encode() in _cmdline(d)]
        if (not left and not clients) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left and not clients, (left, clients)


def _owned(pid: str, uid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}").st_uid == uid
    except OSError:
        return False


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_an_ansible_host_runs_through_one_shell(sshd, learner, tmp_path):
    """testinfra's ansible backend builds its ssh host through testinfra's table of backends:
    virtlab's shell, the same one for every command, closed with the budget."""
    inv = tmp_path / "classe.ini"
    inv.write_text(f"[tp]\npc ansible_host=127.0.0.1 ansible_port={sshd.port} "
                   f"ansible_user={learner}\n", encoding="utf-8")
    h = get_host(f"ansible://pc?ansible_inventory={inv}", str(sshd.ssh_config))
    with budget(reuse=False):
        parents = {h.run("echo $PPID; echo %s", str(i)).stdout.split()[0] for i in range(8)}
        assert len(parents) == 1, parents
        assert h.backend.connected()
    assert not h.backend.connected() and _ssh_children() == []
    assert _gone(int(parents.pop()))
