"""Lab 03-libvirt-basics against the real libvirt sandbox and real Unix users, on both Debian
releases (``release_sandbox``: this machine's, and the other one's root filesystem).

The reference solution is applied once (``virtlab solve 03``) to an empty sandbox. Breaking
each part of that solved state alone is the lab's contract, declared in
labs/03-libvirt-basics/breaks.toml and run for every lab by tests/test_labs.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import libvirt_state, solved_state, statuses

pytestmark = pytest.mark.integration

LAB = "03"
OBJECTIVES = ("default-network-active", "default-network-autostart", "default-pool-active",
              "default-pool-autostart", "user-default-uri", "config-backup")
ALL_PASS = dict.fromkeys(OBJECTIVES, "pass")
ODD = ["r\u00e9seau \"cit\u00e9\" $(id) `id`", "x'; touch vl-pwned #", "\u65e5\u672c \u00e9t\u00e9"]


def _by_id(report: Any) -> dict[str, Any]:
    return {o.id: o for o in report.objectives}


def home_state(home: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every path under a home with its mode, mtime and content (files)."""
    out: dict[str, tuple[int, int, bytes]] = {}
    for p in [home, *sorted(home.rglob("*"))]:
        st = p.lstat()
        out[str(p)] = (st.st_mode, st.st_mtime_ns, p.read_bytes() if p.is_file() else b"")
    return out


def processes_of(sb: Any, user: str) -> list[str]:
    r = sb.run(["ps", "-o", "pid=,args=", "-u", str(sb.uid(user))])
    return [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]


# --- from an empty sandbox -------------------------------------------------------------

def test_a_fresh_debian_fails_every_objective_with_a_clear_message(clean_release_sandbox,
                                                                   make_learner):
    user = make_learner(groups=("libvirt",))
    sb = clean_release_sandbox
    report = sb.check(LAB, connect=sb.uri, user=user, lang="fr")
    assert statuses(report) == dict.fromkeys(OBJECTIVES, "fail")
    o = _by_id(report)
    assert "sudo virsh net-start default" in o["default-network-active"].message
    assert "Aucun pool `default`" in o["default-pool-active"].message
    assert ("pool-define-as default dir --target /var/lib/libvirt/images"
            in o["default-pool-active"].message)
    assert "qemu:///session" in o["user-default-uri"].message
    assert o["config-backup"].message.endswith("~/virtlab/backup/default-network.xml")
    for r in report.objectives:
        assert r.hint, r.id


def test_an_unknown_learner_is_an_error_not_a_traceback(clean_release_sandbox):
    sb = clean_release_sandbox
    report = sb.check(LAB, connect=sb.uri, user="no-such-learner-vl", lang="en")
    s = statuses(report)
    assert s["user-default-uri"] == s["config-backup"] == "error"
    assert "no-such-learner-vl does not exist" in _by_id(report)["config-backup"].message


# --- the solved state ------------------------------------------------------------------

class Solved:
    def __init__(self, sb: Any, user: str):
        self.sb, self.user, self.home = sb, user, sb.home(user)

    def check(self, lang: str = "en") -> Any:
        return self.sb.check(LAB, connect=self.sb.uri, user=self.user, lang=lang)

    def virsh(self, *args: str) -> str:
        return self.sb.virsh(*args).stdout


@pytest.fixture(scope="module")
def solved(release_sandbox: Any) -> Iterator[Solved]:
    """`virtlab solve 03` applied to an empty sandbox, for a learner in group libvirt."""
    with solved_state(release_sandbox, (LAB,)) as user:
        yield Solved(release_sandbox, user)


def test_the_reference_solution_scores_full_marks(solved):
    r = solved.sb.virtlab("check", LAB, "--connect", solved.sb.uri, "--user", solved.user,
                "--format", "json", "--lang", "en")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["score"] == report["max_score"] == 10
    assert {o["id"]: o["status"] for o in report["objectives"]} == ALL_PASS
    ev = {o["id"]: o["evidence"] for o in report["objectives"]}
    assert ev["user-default-uri"]["virsh_uri"] == solved.sb.uri
    assert ev["user-default-uri"]["source"].startswith("uri_default")
    assert ev["config-backup"]["uuid"] == ev["config-backup"]["live_uuid"]
    # What the learner owns stays the learner's.
    for rel in (".config", ".config/libvirt", ".config/libvirt/libvirt.conf", "virtlab",
                "virtlab/backup", "virtlab/backup/default-network.xml"):
        assert (solved.home / rel).stat().st_uid == solved.sb.uid(solved.user), rel


def test_checking_changes_nothing(solved):
    before, home_before = libvirt_state(solved.sb), home_state(solved.home)
    assert statuses(solved.check()) == ALL_PASS
    assert statuses(solved.check("fr")) == ALL_PASS
    assert libvirt_state(solved.sb) == before
    # `virsh uri` as the learner neither starts a session daemon nor writes ~/.cache.
    assert home_state(solved.home) == home_before
    assert processes_of(solved.sb, solved.user) == []


def test_solving_twice_is_harmless(solved):
    r = solved.sb.virtlab("solve", LAB, "--yes", "--user", solved.user, "--connect", solved.sb.uri)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(solved.check()) == ALL_PASS


# --- other states ----------------------------------------------------------------------
# Each objective broken alone: labs/03-libvirt-basics/breaks.toml, run by tests/test_labs.py.

def _move_away(s: Solved, rel: str) -> Callable[[], None]:
    src = s.home / rel
    dst = src.with_name(src.name + ".vl-away")
    src.rename(dst)
    return lambda: dst.rename(src)


def test_the_default_uri_may_come_from_the_shell_profile(solved):
    restore_conf = _move_away(solved, ".config/libvirt")
    bashrc = solved.home / ".bashrc"
    old = bashrc.read_bytes()
    bashrc.write_bytes(old + f"\nexport LIBVIRT_DEFAULT_URI='{solved.sb.uri}'\n".encode())
    try:
        report = solved.check()
    finally:
        bashrc.write_bytes(old)
        restore_conf()
    o = _by_id(report)["user-default-uri"]
    assert o.status == "pass", o.message
    assert o.evidence["source"] == "LIBVIRT_DEFAULT_URI"
    assert o.evidence["env_uri"] == solved.sb.uri


def test_odd_names_elsewhere_in_libvirt_do_not_disturb(solved, tmp_path):
    c = solved.sb.conn()
    from xml.sax.saxutils import escape

    made_nets, made_pools, made_doms = [], [], []
    try:
        for i, name in enumerate(ODD):
            net = c.networkDefineXML(f"<network><name>{escape(name)}</name>"
                                     f"<bridge name='vlodd{i}'/></network>")
            made_nets.append(net)
            folder = tmp_path / f"pool{i}"
            folder.mkdir()
            pool = c.storagePoolDefineXML(
                f"<pool type='dir'><name>{escape(name)}</name><target><path>{folder}</path>"
                "</target></pool>", 0)
            made_pools.append(pool)
            made_doms.append(c.defineXML(solved.sb.domain_xml(name)))
        report = solved.check()
        assert statuses(report) == ALL_PASS, {o.id: o.message for o in report.objectives}
        assert not (Path.cwd() / "vl-pwned").exists()
        assert not (solved.home / "vl-pwned").exists()
    finally:
        for obj in made_doms + made_nets + made_pools:
            obj.undefine()


def test_a_stopped_daemon_is_an_error_that_says_so(solved):
    solved.sb.stop()
    try:
        report = solved.check()
    finally:
        solved.sb.start()
    s = statuses(report)
    for oid in ("default-network-active", "default-network-autostart", "default-pool-active",
                "default-pool-autostart", "config-backup"):
        assert s[oid] == "error", (oid, s[oid])
        assert "does not answer" in _by_id(report)[oid].message
    # The learner's configuration is still there to read.
    assert s["user-default-uri"] == "pass"
    assert statuses(solved.check()) == ALL_PASS
