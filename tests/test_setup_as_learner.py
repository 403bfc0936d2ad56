"""The README's set-up, typed by a real learner (issue 18).

A real plain Unix user, allowed to use sudo (a sudoers drop-in, NOPASSWD for the test, removed
after), clones this repository into their home and types the README's set-up line exactly as
the README writes it; then every command the README and the install page show, as that user.
After each step, no file of their home (the checkout included) may belong to anyone else.
Also: root without sudo (a shell from `su -`) in that checkout, and a learner without root on a
machine where Debian packages are missing (a real dpkg-query reading a status database where
they are not installed), and the package names of Debian 12 and 13 against their archives.

The same on Debian 13 (``test_debian13_*``): a learner made with trixie's own useradd in a
Debian 13 root filesystem (tests/rootfs.py) holding what .ci/install computes for trixie, who
clones with trixie's git and types the same line with trixie's sudo; pip compiles
libvirt-python with Python 3.13 against trixie's libvirt; the pages' commands and JupyterLab
run in a network namespace with no route out (only pip reaches PyPI, as RootfsSandbox's venv
set-up does). First run on a machine: about 1.5 min more to build that root filesystem (cached).

The clone is of this repository's HEAD (`git clone`): commit a change to `.ci/install` or to
the README before running this file on it.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, add_user, cannot_run, remove_user
from rootfs import chroot_argv, host_release, other_release

pytestmark = pytest.mark.integration

README = REPO / "README.md"
PAGES = (REPO / "README.md", REPO / "site" / "install.md", REPO / "site" / "install.en.md")
JUPYTER = ".venv/bin/jupyter lab notebooks/"


# --- the commands the pages show ------------------------------------------------------------

def page_commands(page: Path) -> list[str]:
    """Every command line of the page's bash blocks (indented ones too), comments removed."""
    out: list[str] = []
    fence: str | None = None
    for line in page.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^(\s*)```(\w*)\s*$", line)
        if fence is None and m and m.group(2) in ("bash", "sh"):
            fence = m.group(1)
            continue
        if fence is not None and m and m.group(1) == fence and not m.group(2):
            fence = None
            continue
        if fence is not None:
            cmd = re.sub(r"\s+#(\s.*)?$", "", line).strip()
            if cmd:
                out.append(cmd)
    return out


def readme_setup_line() -> tuple[str, str]:
    """The README's first command, (set-up part, JupyterLab part), split at its last `&&`."""
    first = page_commands(README)[0]
    setup, sep, last = first.rpartition("&&")
    assert sep and last.strip() == JUPYTER, (
        f"the README's first command no longer ends with `&& {JUPYTER}`: {first!r}; "
        "update this test with the README")
    return setup.strip(), last.strip()


# What is not run as the learner in test_every_command_of_the_pages, and why. Each rule must
# still match some command (a stale rule fails the test).
NOT_RUN_HERE = {
    r"^(sudo )?bash \.ci/install$|^su -c 'bash \.ci/install'$|^(sudo )?bash \.ci/install && "
    r"\.venv/bin/jupyter lab notebooks/$":
        "the set-up itself: the tests above and below",
    r"^sudo bash \.ci/run$": "the whole test suite as root: what CI runs",
    r"^su -$|^exit$|^apt install sudo && usermod -aG sudo alice$":
        "root's commands where sudo is missing: test_learner_without_sudo_is_told_how",
    r"^sudo apt install ": "the system part: its packages are checked to be installed here",
    r"^sudo \.venv/bin/python benchmarks/": "the benchmarks: root, 3.5 min",
    r"--watch": "runs until Ctrl-C",
    r"--host ssh://": "a remote learner host: no network here",
    r"^virtlab (start|finish|solve) ":
        "changes the machine's libvirt state (tested in the sandbox)",
    r"^virtlab grade ": "a class of hosts (tests/test_grade.py)",
    r"^\.venv/bin/jupyter lab notebooks/$": "test_jupyterlab_answers_and_saves_as_the_learner",
    r"^\.venv/bin/mkdocs serve$": "test_mkdocs_serve_answers_as_the_learner",
}


# --- the learner --------------------------------------------------------------------------------

@dataclass
class Learner:
    name: str
    home: Path
    checkout: Path
    bare: Path            # the repository under test, cloned bare for the learner to clone
    tmp: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name,
               "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "SHELL": "/bin/bash"}
        env.update(extra)
        return env

    def run(self, cmd: str, cwd: Path | None = None, timeout: float = 300,
            **env: str) -> subprocess.CompletedProcess[str]:
        """`cmd` typed in bash by the learner (their uid, gid and groups; their environment)."""
        return subprocess.run(["bash", "-c", cmd], cwd=cwd or self.checkout, env=self.env(**env),
                              user=self.name, group=self.name, extra_groups=[],
                              capture_output=True, text=True, timeout=timeout)

    def start(self, argv: list[str]) -> subprocess.Popen[str]:
        """A long-running program of the learner's, in the background; its PID is the program's."""
        log = open(self.tmp / f"{Path(argv[0]).name}-{uuid.uuid4().hex[:6]}.log", "w+")
        return subprocess.Popen(argv, cwd=self.checkout, env=self.env(), user=self.name,
                                group=self.name, extra_groups=[], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                                start_new_session=True)

    def clone(self, dest: str) -> Path:
        r = self.run(f"git clone -q {self.bare} {dest}", cwd=self.home, timeout=120)
        assert r.returncode == 0, r.stderr
        return self.home / dest

    def foreign_files(self) -> list[str]:
        """Files under the learner's home (checkouts included) that belong to someone else."""
        r = subprocess.run(["find", str(self.home), "!", "-user", self.name], capture_output=True,
                           text=True, check=True)
        return r.stdout.split()


@pytest.fixture(scope="module")
def learner() -> Iterator[Learner]:
    if os.geteuid() != 0:
        cannot_run("making a learner with sudo rights needs root")
    for tool in ("sudo", "git", "visudo", "runuser"):
        if not shutil.which(tool):
            cannot_run(f"{tool} is not installed (.ci/install --test)")
    if not os.access("/usr/bin/python3", os.X_OK):
        cannot_run("Debian's /usr/bin/python3 is missing")
    tmp = Path(tempfile.mkdtemp(prefix="virtlab-learner-"))
    tmp.chmod(0o755)
    name = ""
    sudoers: Path | None = None
    try:
        name = add_user()
        sudoers = Path(f"/etc/sudoers.d/virtlab-test-{name}")
        # The learner may use sudo, as a learner in the sudo group would (without the password
        # prompt, which a test cannot type).
        staged = tmp / "sudoers"
        staged.write_text(f"{name} ALL=(ALL:ALL) NOPASSWD: ALL\n")
        subprocess.run(["visudo", "-cqf", str(staged)], check=True)
        staged.chmod(0o440)
        shutil.move(staged, sudoers)
        # The repository under test, as a bare clone the learner owns (git refuses to read a
        # repository of another user's), made from HEAD of this checkout.
        bare = tmp / "virtlab.git"
        subprocess.run(["git", "clone", "-q", "--bare", "--no-local", str(REPO), str(bare)],
                       check=True, capture_output=True)
        subprocess.run(["chown", "-R", f"{name}:{name}", str(bare)], check=True)
        home = Path(os.path.expanduser(f"~{name}"))
        who = Learner(name=name, home=home, checkout=home / "virtlab", bare=bare, tmp=tmp)
        who.clone("virtlab")
        yield who
    finally:
        if sudoers:
            sudoers.unlink(missing_ok=True)
        if name:
            remove_user(name)
            shutil.rmtree(f"/var/lib/sudo/lectured/{name}", ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, *, method: str = "GET", body: dict | None = None,
         token: str | None = None, timeout: float = 10) -> tuple[int, bytes]:
    assert url.startswith("http://127.0.0.1:"), url  # loopback only
    req = urllib.request.Request(url, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    if token:
        req.add_header("Authorization", f"token {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http(url: str, proc: subprocess.Popen[str], token: str | None = None,
              timeout: float = 120) -> tuple[int, bytes]:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"{proc.args[0]} exited with {proc.returncode}: {log_of(proc)}"
        try:
            return http(url, token=token)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer in {timeout} s: {log_of(proc)}") from e
            time.sleep(0.5)


def log_of(proc: subprocess.Popen[str]) -> str:
    f = proc.stdout
    if f is None:
        return ""
    f.seek(0)
    return f.read()[-3000:]


def stop(proc: subprocess.Popen[str]) -> None:
    """End a process this test started, by its PID: Ctrl-C first, as the pages tell the
    learner (mkdocs serve and JupyterLab then remove their temporary folders), then SIGTERM,
    then SIGKILL."""
    for sig, wait in ((signal.SIGINT, 20), (signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            break
        proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    if proc.stdout:
        proc.stdout.close()


def mkdocs_leftovers(tmp: Path, uid: int) -> list[Path]:
    """The temporary site folders ``mkdocs serve`` run by ``uid`` left in ``tmp``."""
    return [p for p in tmp.glob("mkdocs_*") if p.stat().st_uid == uid]


def fake_dpkg_admindir(base: Path, without: set[str]) -> Path:
    """A copy of this machine's dpkg status database where ``without`` are not installed."""
    d = Path(tempfile.mkdtemp(dir=base, prefix="dpkg-"))
    d.chmod(0o755)
    stanzas = Path("/var/lib/dpkg/status").read_text(encoding="utf-8").split("\n\n")
    kept = [s for s in stanzas
            if not (m := re.match(r"Package: (\S+)", s)) or m.group(1) not in without]
    (d / "status").write_text("\n\n".join(kept), encoding="utf-8")
    (d / "status").chmod(0o644)
    return d


def apt_line(out: str) -> set[str]:
    """The packages of the one `sudo apt-get install …` (or `su -c 'apt-get install …'`) line."""
    lines = re.findall(r"^\s+(?:sudo apt-get install (.+)|su -c 'apt-get install (.+)')$",
                       out, re.M)
    assert len(lines) == 1, f"expected one apt-get install line:\n{out}"
    return set((lines[0][0] or lines[0][1]).split())


# --- the tests, in the order a learner meets them -----------------------------------------------

def test_root_without_sudo_says_what_to_do_and_touches_nothing(learner):
    """A root shell from `su -` in the learner's checkout: packages only, then what to type."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": "/root", "LANG": "C.UTF-8"}
    r = subprocess.run(["bash", ".ci/install"], cwd=learner.checkout, env=env,
                       capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "bash .ci/install && .venv/bin/jupyter lab notebooks/" in out
    assert f"appartient à {learner.name}" in out and f"belongs to {learner.name}" in out
    # not in the sudo group: how to get sudo, with the learner's name filled in
    assert f"apt install sudo && usermod -aG sudo {learner.name}" in out
    assert not (learner.checkout / ".venv").exists()
    assert learner.foreign_files() == []


def test_readme_setup_line_as_the_learner(learner):
    setup, _ = readme_setup_line()
    # What the old set-up (everything as root) left behind: given back to the learner.
    old = learner.checkout / "build" / "site"
    old.mkdir(parents=True)
    (old / "index.html").write_text("built by root\n")
    assert learner.foreign_files() != []

    r = learner.run(setup, timeout=1200)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "ready (virtlab " in out and "Traceback" not in out
    assert learner.foreign_files() == [], out

    venv = learner.checkout / ".venv"
    # Debian's own python3, not root's (a pyenv under /root would not even run for the learner)
    cfg = (venv / "pyvenv.cfg").read_text()
    assert re.search(r"^home = /usr/bin$", cfg, re.M), cfg
    # editable: checker is imported from the checkout, so `virtlab build` finds the tree
    r = learner.run(".venv/bin/python -c 'import checker; print(checker.__file__)'")
    assert r.stdout.strip() == str(learner.checkout / "checker" / "__init__.py"), r.stderr
    # the instructor's extras are there (virtlab grade --html draws with matplotlib)
    r = learner.run(".venv/bin/python -c 'import matplotlib, ansible'")
    assert r.returncode == 0, r.stderr

    # Again: nothing to do, pip not run (how long it takes is not timed here: a loaded
    # machine would make that flaky; that pip is skipped is what makes it quick).
    r = learner.run(setup, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pip not run again" in r.stdout
    assert learner.foreign_files() == []


def test_every_command_of_the_pages_works_as_the_learner(learner):
    run_page_commands(learner, installed=lambda pkgs: subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}\\n", *pkgs], capture_output=True, text=True))


def run_page_commands(learner, installed) -> list[str]:
    """Each command of the README and the install pages, typed by ``learner`` (this machine's
    or the Debian 13 root filesystem's); ``installed(pkgs)``: dpkg-query's answer there."""
    rules_used: set[str] = set()
    ran: list[str] = []
    for page in PAGES:
        for cmd in page_commands(page):
            rule = next((p for p in NOT_RUN_HERE if re.search(p, cmd)), None)
            if rule:
                rules_used.add(rule)
                if cmd.startswith("sudo apt install "):
                    pkgs = cmd.split()[3:]
                    r = installed(pkgs)
                    assert r.stdout.count("install ok installed") == len(pkgs), (cmd, r.stderr)
                continue
            expanded = ([cmd.replace(" [--check]", ""), cmd.replace("[--check]", "--check")]
                        if "[--check]" in cmd else [cmd])
            for c in expanded:
                # `. .venv/bin/activate` opens the README's and the page's blocks: each command
                # runs in a shell where it was typed.
                # In the Debian 13 root filesystem only pip reaches the network (PyPI), as in
                # the set-up; every other command runs where there is no route out.
                pypi = {"net": True} if (isinstance(learner, RootfsLearner)
                                         and re.search(r"\bpip install\b", c)) else {}
                r = learner.run(f". .venv/bin/activate && {c}", timeout=600, **pypi)
                out = r.stdout + r.stderr
                ok = (0, 1) if c.startswith("virtlab check ") else (0,)
                assert r.returncode in ok, (f"{page.name}: `{c}` exited {r.returncode}:\n"
                                            f"{out[-3000:]}")
                assert "Traceback" not in out and "PermissionError" not in out, f"`{c}`:\n{out}"
                assert learner.foreign_files() == [], f"after `{c}`"
                ran.append(c)
    assert set(NOT_RUN_HERE) == rules_used, f"stale rules: {set(NOT_RUN_HERE) - rules_used}"
    for needed in ("virtlab check 01", "virtlab build", "virtlab build --check",
                   ".venv/bin/mkdocs build --strict", "virtlab --version"):
        assert needed in ran, f"{needed!r} is no longer shown by the README or the install page"
    # `virtlab build` regenerated the checkout's files as they are committed (editable install)
    r = learner.run("git status --porcelain --untracked-files=no")
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    assert (learner.checkout / "build" / "site" / "install" / "index.html").is_file()
    return ran


def test_jupyterlab_answers_and_saves_as_the_learner(learner):
    """The README's `.venv/bin/jupyter lab notebooks/`, on a loopback port with a token."""
    _, jupyter = readme_setup_line()
    port, token = free_port(), uuid.uuid4().hex
    proc = learner.start([*jupyter.split(), "--no-browser", "--ServerApp.ip=127.0.0.1",
                          f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                          f"--IdentityProvider.token={token}"])
    try:
        base = f"http://127.0.0.1:{port}"
        status, body = wait_http(f"{base}/api/status", proc, token)
        assert status == 200, body
        assert http(f"{base}/api/contents", token=None)[0] in (401, 403)  # the token is needed
        nb_file = learner.checkout / "notebooks" / "index.ipynb"
        before = nb_file.stat().st_mtime_ns
        status, body = http(f"{base}/api/contents/index.ipynb?content=1", token=token)
        assert status == 200, body
        model = json.loads(body)
        # Saving, as JupyterLab's Ctrl-S does: the notebook, then a checkpoint.
        status, body = http(f"{base}/api/contents/index.ipynb", method="PUT", token=token,
                            body={"type": "notebook", "format": "json",
                                  "content": model["content"]})
        assert status == 200, body
        status, body = http(f"{base}/api/contents/index.ipynb/checkpoints", method="POST",
                            token=token, body={})
        assert status == 201, body
        assert nb_file.stat().st_mtime_ns > before
        saved = json.loads(nb_file.read_text(encoding="utf-8"))
        assert [c["id"] for c in saved["cells"]] == [c["id"] for c in model["content"]["cells"]]
        assert (learner.checkout / "notebooks" / ".ipynb_checkpoints").is_dir()
        assert learner.foreign_files() == []
    finally:
        stop(proc)
    assert learner.foreign_files() == []


def test_mkdocs_serve_answers_as_the_learner(learner):
    port = free_port()
    uid = pwd.getpwnam(learner.name).pw_uid
    earlier = set(mkdocs_leftovers(Path("/tmp"), uid))  # a uid used before may have left some
    proc = learner.start([".venv/bin/mkdocs", "serve", "--dev-addr", f"127.0.0.1:{port}"])
    try:
        status, body = wait_http(f"http://127.0.0.1:{port}/install/", proc)
        assert status == 200 and "Pas de <code>sudo</code> ?" in body.decode(), body[:500]
        status, body = http(f"http://127.0.0.1:{port}/en/install/")
        assert status == 200 and "No <code>sudo</code>?" in body.decode(), body[:500]
    finally:
        stop(proc)
    assert learner.foreign_files() == []
    # stopped with Ctrl-C, it leaves nothing behind
    assert set(mkdocs_leftovers(Path("/tmp"), uid)) - earlier == set()


def test_learner_without_root_gets_the_venv_and_the_one_apt_line(learner):
    """`bash .ci/install` as the learner, on a machine where two lab packages are missing.

    The learner's .venv is made to look out of date (no stamp: as after a change to
    pyproject.toml), so that pip really runs without root; a whole new venv would only
    cost another minute for the same code path.
    """
    (learner.checkout / ".venv" / "virtlab-install.stamp").unlink()
    admin = fake_dpkg_admindir(learner.tmp, {"virt-viewer", "bridge-utils"})
    r = learner.run("bash .ci/install", timeout=1200, VIRTLAB_DPKG_ADMINDIR=str(admin))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "installing virtlab into .venv" in out           # pip ran, as the learner
    assert apt_line(out) == {"virt-viewer", "bridge-utils"}
    assert re.search(r"^\s+sudo apt-get install ", out, re.M), out
    assert "su -c 'bash .ci/install'" in out       # if sudo is refused
    assert (learner.checkout / ".venv" / "virtlab-install.stamp").is_file()
    r = learner.run(".venv/bin/virtlab --version")
    assert r.returncode == 0 and r.stdout.startswith("virtlab "), r.stderr
    assert learner.foreign_files() == []


def test_learner_without_the_build_packages_gets_no_broken_venv(learner):
    checkout = learner.clone("virtlab-nodev")
    admin = fake_dpkg_admindir(learner.tmp, {"libvirt-dev", "gcc"})
    r = learner.run("bash .ci/install", cwd=checkout, VIRTLAB_DPKG_ADMINDIR=str(admin))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert apt_line(out) == {"libvirt-dev", "gcc"}
    assert "no Python environment without these packages: gcc libvirt-dev" in out
    assert not (checkout / ".venv").exists()
    assert learner.foreign_files() == []


def test_learner_without_sudo_is_told_how(learner):
    """No sudo on the machine (Debian installed with a root password): the pages' advice."""
    admin = fake_dpkg_admindir(learner.tmp, {"sudo", "virt-viewer"})
    r = learner.run("bash .ci/install", VIRTLAB_DPKG_ADMINDIR=str(admin))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert apt_line(out) == {"sudo", "virt-viewer"}
    assert "sudo apt-get" not in out                    # no sudo to type
    assert re.search(r"^\s+su -c 'apt-get install ", out, re.M), out
    for said in ("su -", f"apt install sudo && usermod -aG sudo {learner.name}",
                 "reconnectez-vous", "log out and in again", "su -c 'bash .ci/install'"):
        assert said in out, (said, out)
    # the README and the install page say the same
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for said in ("su -", "apt install sudo && usermod -aG sudo", "su -c 'bash .ci/install'"):
            assert said in text, (page.name, said)
    assert learner.foreign_files() == []


# --- the package names of each release, against its archive -------------------------------------

def packages_named(learner: Learner, codename: str, mode: str) -> set[str]:
    """What .ci/install would install on ``codename`` (nothing installed, read from its line)."""
    empty = fake_dpkg_admindir(learner.tmp, set())
    (empty / "status").write_text("")
    osr = learner.tmp / f"os-release-{codename}"
    osr.write_text(f"ID=debian\nVERSION_CODENAME={codename}\n")
    osr.chmod(0o644)
    r = learner.run(f"bash .ci/install {mode}".strip(), VIRTLAB_DPKG_ADMINDIR=str(empty),
                    VIRTLAB_OS_RELEASE=str(osr))
    assert r.returncode == 1, r.stdout + r.stderr
    return apt_line(r.stdout + r.stderr)


def machine_mirror() -> str:
    """The Debian mirror this machine's apt sources name (deb822 or one-line form)."""
    for path in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        m = re.search(r"^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(https?://\S+/debian)/?\s", text, re.M)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


def test_package_names_exist_on_debian_12_and_13(learner, tmp_path):
    named = {codename: packages_named(learner, codename, "--test")
             for codename in ("bookworm", "trixie")}
    assert "virtinst" in named["bookworm"] and "virt-install" in named["trixie"]
    assert named["bookworm"] - {"virtinst"} == named["trixie"] - {"virt-install"}
    # This machine's release (Debian 12 or 13): .ci/install --test put them all here.
    here, other = host_release(), other_release()
    r = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Status}\\n", *sorted(named[here])],
                       capture_output=True, text=True)
    assert r.stdout.count("install ok installed") == len(named[here]), r.stdout + r.stderr
    assert_real_packages(named[here], [], here)
    # The other release: its archive, read by apt into a private directory.
    mirror = machine_mirror()
    (tmp_path / "lists" / "partial").mkdir(parents=True)
    (tmp_path / "cache" / "archives" / "partial").mkdir(parents=True)
    (tmp_path / "status").write_text("")
    (tmp_path / "sources.list").write_text(
        f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror} {other} main\n")
    apt = ["-o", f"Dir::Etc::sourcelist={tmp_path / 'sources.list'}",
           "-o", "Dir::Etc::sourceparts=/nonexistent", "-o",
           f"Dir::State::Lists={tmp_path / 'lists'}",
           "-o", f"Dir::State::status={tmp_path / 'status'}", "-o",
           f"Dir::Cache={tmp_path / 'cache'}",
           "-o", "APT::Architecture=amd64"]
    r = subprocess.run(["apt-get", *apt, "update"], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        cannot_run(f"the {other} archive cannot be read from {mirror}: {r.stderr[-500:]}")
    assert_real_packages(named[other], apt, other)


def assert_real_packages(names: set[str], apt_options: list[str], release: str) -> None:
    """Each name is a package of the release's archive, and not a transitional one."""
    r = subprocess.run(["apt-cache", *apt_options, "show", "--no-all-versions", *sorted(names)],
                       capture_output=True, text=True)
    found = {}
    for stanza in r.stdout.split("\n\n"):
        m = re.search(r"^Package: (\S+)$", stanza, re.M)
        if m:
            found[m.group(1)] = stanza
    assert set(found) == names, f"not in {release}: {names - set(found)} ({r.stderr})"
    transitional = {p for p, st in found.items()
                    if re.search(r"^Description:.*transitional", st, re.M | re.I)}
    assert not transitional, f"transitional packages in {release}: {transitional}"


def test_sudo_in_a_checkout_of_someone_else_says_so(learner):
    """`sudo bash .ci/install` in root's checkout: nothing made there for the learner."""
    other = learner.tmp / "roots-checkout"
    subprocess.run(["git", "clone", "-q", str(REPO), str(other)], check=True,
                   capture_output=True)
    r = learner.run("sudo bash .ci/install", cwd=other)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert f"{learner.name} cannot write to {other}" in out, out
    assert not (other / ".venv").exists()


def test_readme_test_command_keeps_the_checkout_the_learners(learner):
    """`sudo bash .ci/run` (its set-up `.ci/install --test`, then pytest as root)."""
    r = learner.run("sudo bash .ci/install --test", timeout=1200)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "pip install -e '.[test]'" in out
    assert learner.foreign_files() == []
    r = learner.run(".venv/bin/python -c 'import hypothesis, selenium, nbclient, checker'")
    assert r.returncode == 0, r.stderr
    # the static checks .ci/run runs first come with the test extra
    r = learner.run(".venv/bin/ruff --version && .venv/bin/mypy --version")
    assert r.returncode == 0, r.stderr
    # The README's test command itself, through sudo, on one quick test file: the tests run as
    # root (they must), and leave nothing of root's in the learner's checkout.
    r = learner.run("sudo bash .ci/run tests/test_catalog.py -q", timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " passed" in r.stdout
    assert "All checks passed!" in r.stdout and "Success: no issues found" in r.stdout
    assert learner.foreign_files() == []


# --- the same on Debian 13, in the trixie root filesystem ----------------------------------------
# A learner of the Debian 13 root filesystem (tests/rootfs.py, tests/sandbox_rootfs.py): its
# own useradd, sudo, git, python3 3.13 and libvirt, chrooted. Their commands run in a private
# network namespace with no route out, except the set-up line, whose pip reaches PyPI the way
# RootfsSandbox's venv set-up does (this machine's network, pip configuration and CA bundle
# bound inside). The Debian packages .ci/install computes for trixie are in the root filesystem
# (a cached build of its own: the sandbox's packages plus those and git), so that its apt step
# must find nothing missing; the test checks that it installed nothing.

@dataclass
class RootfsLearner:
    name: str
    uid: int
    root: Path            # the root filesystem, on this machine
    netns: str
    binds: list[tuple[str, str]]
    home: Path            # on this machine: root / home / name
    checkout: Path        # on this machine
    wanted: set[str]      # the packages .ci/install computes for Debian 13

    def inside(self, path: Path) -> str:
        return "/" + str(path.relative_to(self.root))

    def env(self, **extra: str) -> dict[str, str]:
        env = {"HOME": self.inside(self.home), "USER": self.name, "LOGNAME": self.name,
               "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "SHELL": "/bin/bash"}
        env.update(extra)
        return env

    def argv(self, argv: list[str], cwd: Path | None = None, net: bool = False,
             **env: str) -> list[str]:
        """``argv`` as the learner (setpriv: their uid, gid and groups, then exec) in the root
        filesystem; in the private network namespace unless ``net`` (the set-up's pip)."""
        return chroot_argv(self.root, ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}",
                                       "--init-groups", *argv],
                           binds=self.binds, netns=None if net else self.netns,
                           env=self.env(**env), cwd=self.inside(cwd or self.checkout))

    def run(self, cmd: str, cwd: Path | None = None, timeout: float = 300, net: bool = False,
            **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(["bash", "-c", cmd], cwd, net, **env),
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def start(self, argv: list[str], log: Path) -> subprocess.Popen[str]:
        """A long-running program of the learner's: every step execs, so its PID is the
        program's."""
        out = open(log, "w+")
        return subprocess.Popen(self.argv(argv), stdout=out, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def foreign_files(self) -> list[str]:
        r = subprocess.run(["find", str(self.home), "!", "-uid", str(self.uid)],
                           capture_output=True, text=True, check=True)
        return r.stdout.split()

    def root_run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(chroot_argv(self.root, argv,
                                          env={"PATH": PATH_ROOT, "LANG": "C.UTF-8"}),
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    def dpkg_query(self, pkgs: list[str]) -> subprocess.CompletedProcess[str]:
        """dpkg-query reading the root filesystem's own status database."""
        return subprocess.run(["dpkg-query", f"--admindir={self.root / 'var/lib/dpkg'}", "-W",
                               "-f=${Status}\\n", *pkgs], capture_output=True, text=True)


PATH_ROOT = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def trixie_learner(learner) -> Iterator[RootfsLearner]:
    from rootfs import RootfsError, build, tool_path
    from sandbox_rootfs import COMMON_PACKAGES, PIP_FILES, RELEASE_PACKAGES, pip_sources

    if not tool_path():
        cannot_run("mmdebstrap is not installed (.ci/install --test)")
    # What .ci/install itself computes for Debian 13 (read from its apt-get line).
    wanted = packages_named(learner, "trixie", "")
    t0 = time.monotonic()
    try:
        root = build("trixie-learner", "trixie",
                     COMMON_PACKAGES + RELEASE_PACKAGES["trixie"] + sorted(wanted) + ["git"])
    except (RootfsError, OSError, subprocess.SubprocessError) as e:
        cannot_run(f"cannot build the Debian 13 root filesystem: {e}")
    TIMINGS["rootfs"] = time.monotonic() - t0
    name = f"vl{uuid.uuid4().hex[:8]}"
    netns = f"virtlab-learner-{name}"
    sudoers = root / "etc/sudoers.d" / f"virtlab-test-{name}"
    bare = root / "var/tmp" / f"{name}.git"
    made_user = made_ns = False
    binds = [(p, p) for p in PIP_FILES + pip_sources() if Path(p).exists()]
    # apt has no source of packages in the learner's commands, even in the set-up, which runs
    # on this machine's network for pip: the cached root filesystem never changes.
    binds.append(("/dev/null", "/etc/apt/sources.list"))
    try:
        env = {"PATH": PATH_ROOT, "LANG": "C.UTF-8"}
        r = subprocess.run(chroot_argv(root, ["useradd", "-m", "-s", "/bin/bash", name], env=env),
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            cannot_run(f"useradd in the Debian 13 root filesystem failed: {r.stderr}")
        made_user = True
        uid = next(int(line.split(":")[2]) for line in
                   (root / "etc/passwd").read_text().splitlines() if line.startswith(f"{name}:"))
        sudoers.write_text(f"{name} ALL=(ALL:ALL) NOPASSWD: ALL\n")
        sudoers.chmod(0o440)
        r = subprocess.run(chroot_argv(root, ["visudo", "-cqf", f"/etc/sudoers.d/{sudoers.name}"],
                                       env=env), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True)
        made_ns = True
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        # This checkout's HEAD, as a bare repository the learner owns, cloned with trixie's git.
        subprocess.run(["git", "clone", "-q", "--bare", "--no-local", str(REPO), str(bare)],
                       check=True, capture_output=True)
        subprocess.run(["chown", "-R", f"{uid}:{uid}", str(bare)], check=True)
        home = root / "home" / name
        who = RootfsLearner(name=name, uid=uid, root=root, netns=netns, binds=binds, home=home,
                            checkout=home / "virtlab", wanted=wanted)
        r = who.run(f"git clone -q /var/tmp/{bare.name} virtlab", cwd=home, timeout=120)
        assert r.returncode == 0, r.stderr
        yield who
    finally:
        sudoers.unlink(missing_ok=True)
        if made_user:
            subprocess.run(chroot_argv(root, ["userdel", "-r", name], env={"PATH": PATH_ROOT}),
                           capture_output=True)
            shutil.rmtree(root / "var/lib/sudo/lectured" / name, ignore_errors=True)
        if made_ns:
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        shutil.rmtree(bare, ignore_errors=True)
        if TIMINGS:
            print(f"\nDebian 13 learner timings (s): {TIMINGS}")


def test_debian13_readme_setup_line_as_the_learner(trixie_learner):
    who = trixie_learner
    setup, _ = readme_setup_line()
    status = who.root / "var/lib/dpkg/status"
    before = status.read_bytes()
    # Every package .ci/install computes for Debian 13 exists in trixie and is installed here.
    r = who.dpkg_query(sorted(who.wanted))
    assert r.stdout.count("install ok installed") == len(who.wanted), r.stdout + r.stderr
    assert {"virt-install", "pkgconf", "python3-dev", "libvirt-dev", "sudo"} <= who.wanted
    t0 = time.monotonic()
    r = who.run(setup, timeout=1200, net=True)
    TIMINGS["setup"] = time.monotonic() - t0
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "ready (virtlab " in out and "Traceback" not in out, out
    # The packages .ci/install computes on Debian 13 are all there: its apt step did nothing.
    assert "installing Debian packages" not in out, out
    assert status.read_bytes() == before
    assert who.foreign_files() == [], out

    venv = who.checkout / ".venv"
    cfg = (venv / "pyvenv.cfg").read_text()
    assert re.search(r"^home = /usr/bin$", cfg, re.M), cfg
    assert re.search(r"^version(_info)? = 3\.13\.", cfg, re.M), cfg
    # libvirt-python compiled here, against trixie's libvirt (11.x), by Python 3.13
    r = who.run(".venv/bin/python -c 'import sys, libvirt, checker; "
                "print(sys.version_info[:2], libvirt.getVersion() // 1000000, checker.__file__)'")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == f"(3, 13) 11 {who.inside(who.checkout)}/checker/__init__.py"
    r = who.run(".venv/bin/python -c 'import matplotlib, ansible'")
    assert r.returncode == 0, r.stderr

    r = who.run(setup, timeout=300)          # in the namespace: nothing to fetch any more
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pip not run again" in r.stdout
    assert who.foreign_files() == []


def test_debian13_every_command_of_the_pages_works_as_the_learner(trixie_learner):
    t0 = time.monotonic()
    ran = run_page_commands(trixie_learner, installed=trixie_learner.dpkg_query)
    TIMINGS["commands"] = time.monotonic() - t0
    assert "virtlab list" in ran


def test_debian13_jupyterlab_answers_on_loopback_inside(trixie_learner):
    """The README's `.venv/bin/jupyter lab notebooks/`, in the namespace; asked from there."""
    who = trixie_learner
    _, jupyter = readme_setup_line()
    port, token = free_port(), uuid.uuid4().hex
    log = Path(tempfile.mkdtemp(prefix="virtlab-jl-")) / "jupyter.log"
    t0 = time.monotonic()
    proc = who.start([*jupyter.split(), "--no-browser", "--ServerApp.ip=127.0.0.1",
                      f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                      f"--IdentityProvider.token={token}"], log)
    # This machine's Python asks from inside the namespace (its loopback is the namespace's).
    probe = r'''
import json, sys, time, urllib.request, urllib.error
base, token = sys.argv[1], sys.argv[2]
def http(path, method="GET", body=None, auth=True):
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    if auth: req.add_header("Authorization", f"token {token}")
    if body is not None: req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r: return r.status, r.read()
    except urllib.error.HTTPError as e: return e.code, e.read()
deadline = time.monotonic() + 150
while True:
    try: status, _ = http("/api/status"); break
    except OSError:
        if time.monotonic() > deadline: raise
        time.sleep(0.5)
out = {"status": status, "anonymous": http("/api/contents", auth=False)[0]}
s, body = http("/api/contents/index.ipynb?content=1")
out["get"] = s
model = json.loads(body)
out["put"] = http("/api/contents/index.ipynb", "PUT",
                  {"type": "notebook", "format": "json", "content": model["content"]})[0]
out["checkpoint"] = http("/api/contents/index.ipynb/checkpoints", "POST", {})[0]
print(json.dumps(out))
'''
    try:
        nb_file = who.checkout / "notebooks" / "index.ipynb"
        before = nb_file.stat().st_mtime_ns
        r = subprocess.run(["ip", "netns", "exec", who.netns, sys.executable, "-c", probe,
                            f"http://127.0.0.1:{port}", token],
                           capture_output=True, text=True, timeout=200)
        assert proc.poll() is None, log.read_text()[-3000:]
        assert r.returncode == 0, r.stderr[-3000:] + log.read_text()[-3000:]
        TIMINGS["jupyterlab"] = time.monotonic() - t0
        answers = json.loads(r.stdout)
        assert answers.pop("anonymous") in (401, 403), r.stdout      # the token is needed
        assert answers == {"status": 200, "get": 200, "put": 200, "checkpoint": 201}, r.stdout
        assert nb_file.stat().st_mtime_ns > before
        assert (who.checkout / "notebooks" / ".ipynb_checkpoints").is_dir()
    finally:
        stop(proc)
        shutil.rmtree(log.parent, ignore_errors=True)
    assert who.foreign_files() == []


def netns_get(netns: str, urls: list[str], wait: float = 120) -> list[tuple[int, str]]:
    """GET each of ``urls`` (loopback of ``netns``) from inside it, with this machine's Python;
    waits up to ``wait`` s for the first to answer."""
    for url in urls:
        assert url.startswith("http://127.0.0.1:"), url  # loopback only
    code = r'''
import json, sys, time, urllib.request, urllib.error
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r: return r.status, r.read().decode()
    except urllib.error.HTTPError as e: return e.code, e.read().decode()
deadline = time.monotonic() + float(sys.argv[1])
while True:
    try: first = get(sys.argv[2]); break
    except OSError:
        if time.monotonic() > deadline: raise
        time.sleep(0.5)
print(json.dumps([first] + [get(u) for u in sys.argv[3:]]))
'''
    r = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code, str(wait),
                        *urls], capture_output=True, text=True, timeout=wait + 60)
    assert r.returncode == 0, r.stderr[-3000:]
    return [tuple(x) for x in json.loads(r.stdout)]


def test_debian13_mkdocs_serve_answers_on_loopback_inside(trixie_learner):
    who = trixie_learner
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="virtlab-mkdocs-")) / "mkdocs.log"
    # the cached root filesystem's /tmp outlives each run (and its learner is always uid 1000)
    earlier = set(mkdocs_leftovers(who.root / "tmp", who.uid))
    proc = who.start([".venv/bin/mkdocs", "serve", "--dev-addr", f"127.0.0.1:{port}"], log)
    try:
        (s_fr, fr), (s_en, en) = netns_get(who.netns, [f"http://127.0.0.1:{port}/install/",
                                                        f"http://127.0.0.1:{port}/en/install/"])
        assert proc.poll() is None, log.read_text()[-3000:]
        assert s_fr == 200 and "Pas de <code>sudo</code> ?" in fr, fr[:500]
        assert s_en == 200 and "No <code>sudo</code>?" in en, en[:500]
    finally:
        stop(proc)
        shutil.rmtree(log.parent, ignore_errors=True)
    assert who.foreign_files() == []
    # stopped with Ctrl-C, it leaves nothing behind
    assert set(mkdocs_leftovers(who.root / "tmp", who.uid)) - earlier == set()
