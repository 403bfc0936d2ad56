"""Threat: a learner's host floods the instructor's memory.

Before this fix every remote output was read whole (testinfra's ``communicate()``): a learner
printing 256 MiB per command cost the instructor ~1.8 GB; ``yes`` until the host timeout,
4 to 7 GB, per worker. Now every command's output is read with a cap per command and per host
(``checker.probes.output``): past it the command is killed, the host is reported as not
graded (its output cut), and every other learner is graded as usual.

Real parts: a real sshd on loopback and real learner accounts: one whose ``~/.bashrc`` runs
``yes`` forever before every command, one whose fake ``dpkg-query`` prints 64 MiB, one plain.
Peak memory with a 2 GB flood is measured by ``benchmarks/bench_flood.py`` (not a timed test).
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from conftest import run_virtlab

from checker.probes.output import COMMAND_CAP, HOST_CAP, MiB, OutputFlood, budget


def flooding_learners(users) -> dict[str, str]:
    out = {}
    name = users.add("fyes", groups=("kvm",))
    home = users.home(name)
    (home / ".bashrc").write_text("yes 'flood flood flood flood'\n", encoding="utf-8")
    subprocess.run(["chown", "-R", f"{name}:{name}", str(home)], check=True)
    out["yes"] = name
    name = users.add("fdpkg", groups=("kvm",))
    home = users.home(name)
    (home / "bin").mkdir()
    (home / "bin" / "dpkg-query").write_text("#!/bin/sh\nhead -c 67108864 /dev/zero\n")
    (home / "bin" / "dpkg-query").chmod(0o755)
    (home / ".bashrc").write_text('PATH="$HOME/bin:$PATH"\n', encoding="utf-8")
    subprocess.run(["chown", "-R", f"{name}:{name}", str(home)], check=True)
    out["dpkg"] = name
    out["plain"] = users.add("fplain", groups=("kvm",))
    return out


@pytest.mark.integration
def test_a_flooding_host_is_cut_reported_and_the_others_graded(sshd, tmp_path):
    from sshd import LearnerUsers

    users = LearnerUsers(sshd)
    try:
        who = flooding_learners(users)
        db = tmp_path / "gb.sqlite"
        t0 = time.monotonic()
        r = run_virtlab("grade", "01", "02", "--hosts",
                        ",".join(sshd.spec(u) for u in who.values()), "--ssh-config",
                        str(sshd.ssh_config), "--db", str(db), "--workers", "2", "--lang", "en",
                        "--json", str(tmp_path / "c.json"), timeout=300)
        wall = time.monotonic() - t0
        assert r.returncode == 3, r.stdout + r.stderr
        assert wall < 90, wall  # cut at the cap, not read until the host timeout
        doc = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
        res = {x["learner"]: x["results"] for x in doc["learners"]}
        # every command floods: nothing graded; only dpkg-query floods: lab 01 (which does
        # not run it) is graded, lab 02 is not
        for kind, labs in (("yes", ("01-hardware", "02-install-kvm")),
                           ("dpkg", ("02-install-kvm",))):
            for lab in labs:
                v = res[who[kind]][lab]
                assert v["status"] == "error", (kind, lab, v)
                assert "more than 4 MiB" in v["reason"] and "not graded" in v["reason"], v
        assert res[who["dpkg"]]["01-hardware"]["status"] == "graded"
        assert all(v["status"] == "graded" for v in res[who["plain"]].values())
        assert "more than 4 MiB" in r.stdout  # said in the run summary too
        # and `virtlab check --host` on the flooding host: exit 3, the same reason
        home = tmp_path / "home"
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "config").write_text(sshd.ssh_config.read_text(), encoding="utf-8")
        r = run_virtlab("check", "02", "--host", sshd.spec(who["dpkg"]), "--lang", "fr",
                        env={"HOME": str(home)}, timeout=120)
        assert r.returncode == 3, r.stdout + r.stderr
        assert "plus de 4 Mio" in r.stderr
    finally:
        users.remove_all()


def test_the_caps_hold_on_a_local_backend():
    """The same reader under every testinfra backend: one command over the cap, then a host
    whose commands together exceed the host cap."""
    from checker.engine import get_host

    host = get_host("local://")
    with budget(reuse=False) as b:
        assert host.run("printf ok").stdout == "ok"
        with pytest.raises(OutputFlood) as e:
            host.run("head -c %s /dev/zero", str(COMMAND_CAP + MiB))
        assert e.value.per == "command" and b.flood is e.value
        with pytest.raises(OutputFlood):  # a flooded host: every later command fails at once
            host.run("true")
    with budget(reuse=False) as b:
        size = COMMAND_CAP - MiB
        with pytest.raises(OutputFlood) as e:
            # each command differs: one asked twice in a budget is answered from memory
            for i in range(HOST_CAP // size + 1):
                assert len(host.run("head -c %s /dev/zero", str(size - i)).stdout_bytes) == size - i
        assert e.value.per == "host" and b.used <= HOST_CAP + COMMAND_CAP
    # outside any budget: the per-command cap still holds, exit codes and stderr are kept
    r = host.run("printf out; printf err >&2; exit 7")
    assert (r.rc, r.stdout, r.stderr) == (7, "out", "err")
    with pytest.raises(OutputFlood):
        host.run("yes")
