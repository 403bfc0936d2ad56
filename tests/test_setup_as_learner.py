"""The README's set-up, typed by a real learner (issue 18).

A real plain Unix user, allowed to use sudo (a sudoers drop-in, NOPASSWD for the test, removed
after), clones this repository into their home and types the README's set-up line exactly as
the README writes it; then every command the README and the install page show, as that user.
After each step, no file of their home (the checkout included) may belong to anyone else.
Also: root without sudo (a shell from `su -`) in that checkout, and a learner without root on a
machine where Debian packages are missing (a real dpkg-query reading a status database where
they are not installed), and the package names of Debian 12 and 13 against their archives.

The clone is of this repository's HEAD (`git clone`): commit a change to `.ci/install` or to
the README before running this file on it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from conftest import REPO, add_user, cannot_run, remove_user
from rootfs import host_release, other_release

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
    r"^(sudo )?bash \.ci/install$|^su -c 'bash \.ci/install'$|^(sudo )?bash \.ci/install && \.venv/bin/jupyter lab notebooks/$":
        "the set-up itself: the tests above and below",
    r"^sudo bash \.ci/run$": "the whole test suite as root: what CI runs",
    r"^su -$|^exit$|^apt install sudo && usermod -aG sudo alice$":
        "root's commands where sudo is missing: test_learner_without_sudo_is_told_how",
    r"^sudo apt install ": "the system part: its packages are checked to be installed here",
    r"^sudo \.venv/bin/python benchmarks/": "the benchmarks: root, 3.5 min",
    r"--watch": "runs until Ctrl-C",
    r"--host ssh://": "a remote learner host: no network here",
    r"^virtlab (start|finish|solve) ": "changes the machine's libvirt state (tested in the sandbox)",
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
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)

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
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer in {timeout} s: {log_of(proc)}")
            time.sleep(0.5)


def log_of(proc: subprocess.Popen[str]) -> str:
    f = proc.stdout
    if f is None:
        return ""
    f.seek(0)
    return f.read()[-3000:]


def stop(proc: subprocess.Popen[str]) -> None:
    """End a process this test started, by its PID."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc.stdout:
        proc.stdout.close()


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

    t0 = time.monotonic()
    r = learner.run(setup, timeout=1200)
    first = time.monotonic() - t0
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

    # Again: nothing to do, in seconds, pip not run.
    t0 = time.monotonic()
    r = learner.run(setup, timeout=300)
    again = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pip not run again" in r.stdout
    assert again < 10, f"second run took {again:.1f} s (first {first:.1f} s)"
    assert learner.foreign_files() == []


def test_every_command_of_the_pages_works_as_the_learner(learner):
    rules_used: set[str] = set()
    ran: list[str] = []
    for page in PAGES:
        for cmd in page_commands(page):
            rule = next((p for p in NOT_RUN_HERE if re.search(p, cmd)), None)
            if rule:
                rules_used.add(rule)
                if cmd.startswith("sudo apt install "):
                    pkgs = cmd.split()[3:]
                    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}\\n", *pkgs],
                                       capture_output=True, text=True)
                    assert r.stdout.count("install ok installed") == len(pkgs), (cmd, r.stderr)
                continue
            expanded = ([cmd.replace(" [--check]", ""), cmd.replace("[--check]", "--check")]
                        if "[--check]" in cmd else [cmd])
            for c in expanded:
                # `. .venv/bin/activate` opens the README's and the page's blocks: each command
                # runs in a shell where it was typed.
                r = learner.run(f". .venv/bin/activate && {c}", timeout=600)
                out = r.stdout + r.stderr
                ok = (0, 1) if c.startswith("virtlab check ") else (0,)
                assert r.returncode in ok, f"{page.name}: `{c}` exited {r.returncode}:\n{out[-3000:]}"
                assert "Traceback" not in out and "PermissionError" not in out, f"`{c}`:\n{out}"
                assert learner.foreign_files() == [], f"after `{c}`"
                ran.append(c)
    assert set(NOT_RUN_HERE) == rules_used, f"stale rules: {set(NOT_RUN_HERE) - rules_used}"
    for needed in ("virtlab check 01", "virtlab build", "virtlab build --check",
                   ".venv/bin/mkdocs build --strict", "virtlab --version"):
        assert needed in ran, f"{needed!r} is no longer shown by the README or the install page"
    # `virtlab build` regenerated the checkout's files as they are committed (editable install)
    r = learner.run("git status --porcelain --untracked-files=no")
    assert r.stdout == "", r.stdout
    assert (learner.checkout / "build" / "site" / "install" / "index.html").is_file()


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
    proc = learner.start([".venv/bin/mkdocs", "serve", "--dev-addr", f"127.0.0.1:{port}"])
    try:
        status, body = wait_http(f"http://127.0.0.1:{port}/install/", proc)
        assert status == 200 and "Pas de <code>sudo</code> ?" in body.decode(), body[:500]
        status, body = http(f"http://127.0.0.1:{port}/en/install/")
        assert status == 200 and "No <code>sudo</code>?" in body.decode(), body[:500]
    finally:
        stop(proc)
    assert learner.foreign_files() == []


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
           "-o", "Dir::Etc::sourceparts=/nonexistent", "-o", f"Dir::State::Lists={tmp_path / 'lists'}",
           "-o", f"Dir::State::status={tmp_path / 'status'}", "-o", f"Dir::Cache={tmp_path / 'cache'}",
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
    # The README's test command itself, through sudo, on one quick test file: the tests run as
    # root (they must), and leave nothing of root's in the learner's checkout.
    r = learner.run("sudo bash .ci/run tests/test_catalog.py -q", timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " passed" in r.stdout
    assert learner.foreign_files() == []
