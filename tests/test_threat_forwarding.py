"""Threat: the instructor's agent, environment and forwardings reach the learner's host.

The learner is root on the host we connect to. An instructor's ``~/.ssh/config`` commonly says
``ForwardAgent yes`` (a class config may too): before this fix, every learner host saw the
instructor's ssh agent (a learner root can then log in elsewhere as the instructor), the
variables named by ``SendEnv``/``SetEnv``, and a ``LocalCommand`` ran on the instructor's
machine at each connection. ``checker.grade.sshconf`` now forces the safe settings ahead of
any config file.

Real parts: a real sshd on loopback that accepts every variable (``AcceptEnv *``) and agent
forwarding, a real ``ssh-agent`` holding a key, an instructor config asking for everything,
and a learner account whose ``~/.ssh/rc`` and ``~/.bashrc`` record the environment of every
session (testinfra's commands and libvirt's ``qemu+ssh`` alike). The same config used by plain
``ssh`` shows each leak for real (so the recording can see them); through ``virtlab grade``
none arrives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import cannot_run, run_virtlab

SECRET = "vl-instructor-secret-7f3a"


@pytest.fixture(scope="module")
def loose_sshd():
    """An sshd that accepts any variable the client sends."""
    from sshd import Sshd, SshdError

    if os.geteuid() != 0:
        cannot_run("tests over SSH start sshd and create learner users: they need root")
    try:
        server = Sshd(extra_config="AcceptEnv *\nAllowAgentForwarding yes\n"
                                   "AllowTcpForwarding yes\nPermitUserRC yes\n").start()
    except (SshdError, OSError, subprocess.SubprocessError) as e:
        cannot_run(f"cannot start sshd: {e}")
    yield server
    server.close()


@pytest.fixture
def agent(tmp_path):
    """A real ssh-agent (stopped by its PID) holding one key."""
    sock = Path(tempfile.mkdtemp(prefix="vl-agent-", dir="/tmp")) / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"])
        key = tmp_path / "agent_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        subprocess.run(["ssh-add", str(key)], env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
                       check=True, capture_output=True)
        yield str(sock)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(sock.parent, ignore_errors=True)


RECORD = ('{ printf "=== %s pid=$$ cmd=%s\\n" "$1" "$2"; env; } >> "$HOME/sessions.log" '
          "2>/dev/null\n")


def recording_learner(users, label: str) -> tuple[str, Path]:
    name = users.add(label)
    home = users.home(name)
    (home / ".ssh").mkdir(exist_ok=True)
    (home / ".ssh" / "rc").write_text(
        "#!/bin/sh\nrecord() {\n" + RECORD.replace("$1", "$1").replace("$2", "$2") + "}\n"
        'record rc "$SSH_ORIGINAL_COMMAND"\n', encoding="utf-8")
    # bash sources ~/.bashrc for the commands sshd runs: BASH_EXECUTION_STRING is the command
    (home / ".bashrc").write_text(
        "record() {\n" + RECORD + "}\n"
        'record bashrc "$BASH_EXECUTION_STRING"\n', encoding="utf-8")
    subprocess.run(["chown", "-R", f"{name}:{name}", str(home)], check=True)
    return name, home / "sessions.log"


def instructor_config(tmp_path: Path, sshd, marker: Path, known_hosts: Path,
                      lport: int) -> Path:
    cfg = tmp_path / "instructor_ssh_config"
    cfg.write_text(
        "Host *\n"
        "  ForwardAgent yes\n"
        "  ForwardX11 yes\n"
        "  ForwardX11Trusted yes\n"
        "  SendEnv LANG LC_* VLSECRET_*\n"
        f"  SetEnv VLSETENV={SECRET}\n"
        "  PermitLocalCommand yes\n"
        f"  LocalCommand touch {marker}\n"
        f"  LocalForward 127.0.0.1:{lport} 127.0.0.1:{sshd.port}\n"
        "  StrictHostKeyChecking no\n"
        f"  UserKnownHostsFile {known_hosts}\n"
        "  GlobalKnownHostsFile /dev/null\n"
        f"  IdentityFile {sshd.client_key}\n"
        "  LogLevel ERROR\n", encoding="utf-8")
    return cfg


def sessions(log: Path) -> list[str]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return [s for s in text.split("=== ") if s.strip()]


@pytest.mark.integration
def test_nothing_of_the_instructor_reaches_a_learner_host(loose_sshd, agent, tmp_path):
    from sshd import LearnerUsers, free_port

    sshd = loose_sshd
    users = LearnerUsers(sshd)
    try:
        learner, log = recording_learner(users, "fwd")
        marker = tmp_path / "local-command-ran"
        known = tmp_path / "known_hosts"
        shutil.copy(sshd.known_hosts, known)
        lport = free_port()
        cfg = instructor_config(tmp_path, sshd, marker, known, lport)
        env = {**os.environ, "SSH_AUTH_SOCK": agent, "VLSECRET_TOKEN": SECRET,
               "LANG": "C.UTF-8"}

        # 1. the attack, reproduced: plain ssh with this config leaks it all
        r = subprocess.run(["/usr/bin/ssh", "-F", str(cfg), "-p", str(sshd.port),
                            f"{learner}@127.0.0.1",
                            "true"], env=env, capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        leaked = "\n".join(sessions(log))
        assert "SSH_AUTH_SOCK=" in leaked and f"VLSECRET_TOKEN={SECRET}" in leaked
        assert f"VLSETENV={SECRET}" in leaked
        assert marker.exists()
        log.unlink()
        marker.unlink()

        # 2. the same config through virtlab grade: nothing arrives
        db = tmp_path / "gb.sqlite"
        r = run_virtlab("grade", "01", "02", "--hosts", sshd.spec(learner), "--ssh-config",
                        str(cfg), "--db", str(db), "--workers", "1", env=env)
        assert r.returncode in (0, 3), r.stdout + r.stderr
        got = sessions(log)
        assert len(got) >= 3, got  # testinfra's commands (and libvirt's) were recorded
        for s in got:
            assert "SSH_AUTH_SOCK=" not in s, s
            assert SECRET not in s, s
            assert "LANG=C.UTF-8" not in s, s
        assert not marker.exists(), "LocalCommand ran on the instructor's machine"
        # libvirt's qemu+ssh session went through the same forced settings
        assert any("virt-ssh-helper" in s or " nc " in s or "nc -U" in s for s in got), \
            [s.splitlines()[0] for s in got]
    finally:
        users.remove_all()


def effective(wrapper: Path, *args: str) -> dict[str, list[str]]:
    """What ssh will really apply (``ssh -G``) when started through the run's wrapper."""
    out = subprocess.run([str(wrapper), "-G", *args], capture_output=True, text=True,
                         check=True).stdout
    eff: dict[str, list[str]] = {}
    for ln in out.splitlines():
        k, _, v = ln.partition(" ")
        eff.setdefault(k.lower(), []).append(v)
    return eff


def test_the_wrapper_forces_the_safe_settings_over_any_config(tmp_path):
    from checker.grade.sshconf import SshSetup

    marker = tmp_path / "m"
    cfg = tmp_path / "cfg"
    cfg.write_text("Host *\n  ForwardAgent yes\n  ForwardX11 yes\n  SendEnv LANG VL_*\n"
                   "  SetEnv A=b\n  PermitLocalCommand yes\n  LocalCommand touch " + str(marker)
                   + "\n  StrictHostKeyChecking no\n  BatchMode no\n  UpdateHostKeys yes\n"
                   "  LocalForward 127.0.0.1:5999 127.0.0.1:22\n  DynamicForward 1080\n"
                   "  Tunnel yes\n", encoding="utf-8")
    for accept_new, strict in ((False, "true"), (True, "accept-new")):
        s = SshSetup(str(cfg), timeout=5, accept_new=accept_new)
        try:
            # what testinfra, libvirt and an inventory's ansible_ssh_common_args add after
            # it cannot undo it either
            eff = effective(s.wrapper, "-o", "ForwardAgent=yes", "-o", "StrictHostKeyChecking=no",
                            "-p", "22", "learner@pc12")
            assert eff["forwardagent"] == ["no"]
            assert eff["forwardx11"] == ["no"] and eff["forwardx11trusted"] == ["no"]
            assert eff["permitlocalcommand"] == ["no"]
            assert eff["batchmode"] == ["yes"]
            assert eff["stricthostkeychecking"] == [strict]
            assert eff["updatehostkeys"] == ["false"]
            assert eff["tunnel"] == ["false"]
            assert eff["clearallforwardings"] == ["yes"]
            assert "sendenv" not in eff, eff.get("sendenv")
            assert eff["setenv"] == ["VIRTLAB_GRADER=1"]
            assert eff["controlpath"][0].startswith(str(s.dir))
        finally:
            s.close()


@pytest.mark.integration
def test_an_unknown_host_is_refused_unless_accept_new_is_asked(sshd, tmp_path):
    """Strict host-key checking whatever the instructor's config says (here
    ``StrictHostKeyChecking no``); ``--accept-new-host-keys`` trusts a new host and records its
    key, then a changed key is refused again."""
    import sqlite3

    from sshd import LearnerUsers

    users = LearnerUsers(sshd)
    try:
        learner = users.add("hk")
        known = tmp_path / "known_hosts"
        known.write_text("")
        cfg = tmp_path / "cfg"
        cfg.write_text(f"Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile {known}\n"
                       f"  GlobalKnownHostsFile /dev/null\n  IdentityFile {sshd.client_key}\n"
                       "  LogLevel ERROR\n", encoding="utf-8")

        def grade(*extra: str) -> tuple[str, str]:
            db = tmp_path / f"gb{len(list(tmp_path.glob('gb*')))}.sqlite"
            r = run_virtlab("grade", "01", "--hosts", sshd.spec(learner), "--ssh-config",
                            str(cfg), "--db", str(db), "--lang", "en", *extra)
            assert r.returncode in (0, 3), r.stdout + r.stderr
            with sqlite3.connect(db) as c:
                return c.execute("SELECT status, reason FROM results").fetchone()

        status, reason = grade()
        assert status == "unreachable" and "host key verification failed" in reason.lower()
        assert known.read_text() == ""
        status, _ = grade("--accept-new-host-keys")
        assert status == "graded"
        assert f"[127.0.0.1]:{sshd.port}" in known.read_text()  # recorded
        # a key that changed since: refused, even with accept-new
        other = tmp_path / "other_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                       check=True)
        pub = other.with_suffix(".pub").read_text().split()
        known.write_text(f"[127.0.0.1]:{sshd.port} {pub[0]} {pub[1]}\n")
        status, reason = grade("--accept-new-host-keys")
        assert status == "unreachable" and "verification failed" in reason.lower(), reason
    finally:
        users.remove_all()


def test_a_cheap_key_exchange_comes_first_unless_the_instructor_chose(tmp_path):
    """The run puts X25519 (or ML-KEM where this ssh has it) ahead of OpenSSH 9's costly
    default, sntrup761x25519, keeping every other exchange after it; an instructor's own
    ``KexAlgorithms`` wins. Read as ssh reads it (``ssh -G`` through the wrapper)."""
    from checker.grade.sshconf import KEX_FIRST, SshSetup, real_ssh

    known = subprocess.run([real_ssh(), "-Q", "kex"], capture_output=True, text=True,
                           check=True).stdout.split()
    default = subprocess.run([real_ssh(), "-F", "/dev/null", "-G", "pc12"], capture_output=True,
                             text=True, check=True).stdout
    default_kex = next(ln.split()[1] for ln in default.splitlines()
                       if ln.startswith("kexalgorithms ")).split(",")
    first = [k for k in KEX_FIRST if k in known]
    assert first, known
    plain = tmp_path / "plain"
    plain.write_text("Host *\n  ForwardAgent yes\n", encoding="utf-8")
    s = SshSetup(str(plain), timeout=5)
    try:
        kex = effective(s.wrapper, "learner@pc12")["kexalgorithms"][0].split(",")
        assert kex[:len(first)] == first
        assert sorted(kex) == sorted(set(default_kex) | set(first))  # nothing else dropped
    finally:
        s.close()
    chosen = tmp_path / "chosen"
    chosen.write_text("Host *\n  KexAlgorithms diffie-hellman-group14-sha256\n", encoding="utf-8")
    s = SshSetup(str(chosen), timeout=5)
    try:
        assert effective(s.wrapper, "learner@pc12")["kexalgorithms"] == [
            "diffie-hellman-group14-sha256"]
    finally:
        s.close()
