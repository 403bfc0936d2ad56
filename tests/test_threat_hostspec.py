"""Threat: a learner's "address" runs a command on the instructor's machine.

Before this fix, ``ssh://u@%2DoProxyCommand%3Dtouch%20%2Ftmp%2Fx:22`` in ``--host``, in
``--hosts`` or as an inventory's ``ansible_host`` created ``/tmp/x`` on the instructor's machine:
the host check allowed ``%``, and testinfra percent-decodes the host before pasting it into
the ``ssh`` command, which then read ``-oProxyCommand=…``. Inventory host names went unchecked
into testinfra URLs (``pc?ssh_config=…&x=`` rewrote testinfra's options).

Now one function (``checker.hostspec``) judges every host spec and inventory value, for
``virtlab check --host`` and ``virtlab grade`` alike, the way testinfra and ssh will read it.
Here: the attack and the variants an attacker tries next, each against a real sshd on
loopback with a real learner account (so that a spec that slipped through WOULD connect and
run its proxy command), each refused with exit 2 and a French + English message, and no
marker file anywhere.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from conftest import run_virtlab

from checker.grade.targets import TargetError, from_specs
from checker.hostspec import UnsafeHost, check_inventory_host, parse_ssh_spec
from checker.i18n import Text

TOKEN = f"vlhs{uuid.uuid4().hex[:8]}"


@pytest.fixture
def scratch():
    d = Path(tempfile.mkdtemp(prefix="vl-hs-", dir="/tmp"))
    d.chmod(0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def markers(*dirs: Path) -> list[Path]:
    return [p for d in dirs if d.is_dir() for p in d.glob(f"{TOKEN}*")]


@pytest.fixture(scope="module")
def learner(sshd):
    from sshd import LearnerUsers

    users = LearnerUsers(sshd)
    name = users.add("hs")
    yield name
    users.remove_all()


def attacks(user: str, port: int, scratch: Path) -> list[str]:
    """ssh:// specs that would run ``touch MARKER`` if anything decoded them into an option."""
    m = lambda i: f"{scratch}/{TOKEN}-{i}"  # noqa: E731
    enc = lambda s: "".join(f"%{ord(c):02X}" for c in s)  # noqa: E731
    return [
        # the reported attack: percent-encoded option as the host
        f"ssh://{user}@%2DoProxyCommand%3Dtouch%20{enc(m(1))}:{port}",
        # double encoding (a second decoder would turn %25 into % then %2D into -)
        f"ssh://{user}@%252DoProxyCommand%253Dtouch%2520{enc(m(2))}:{port}",
        # plain option as host, and as user
        f"ssh://{user}@-oProxyCommand=touch${{IFS}}{m(3)}:{port}",
        f"ssh://-oProxyCommand=touch${{IFS}}{m(4)}@127.0.0.1:{port}",
        # encoded option as user (testinfra decodes the user too)
        f"ssh://%2DoProxyCommand%3Dtouch%20{enc(m(5))}@127.0.0.1:{port}",
        # a port carrying an option
        f"ssh://{user}@127.0.0.1:{port}%20-oProxyCommand=touch%20{enc(m(6))}",
        f"ssh://{user}@127.0.0.1:{port} -oProxyCommand=touch${{IFS}}{m(7)}",
        # a newline, a unicode dash (U+2010) in front of an option
        f"ssh://{user}@127.0.0.1%0a-oProxyCommand=touch%20{enc(m(8))}:{port}",
        f"ssh://{user}@\u2010oProxyCommand=touch${{IFS}}{m(9)}:{port}",
        # testinfra URL options: its own ssh_config / identity file, from the learner
        f"ssh://{user}@127.0.0.1:{port}?ssh_config={scratch}/evil_config",
        f"ssh://{user}@127.0.0.1:{port}/?ssh_identity_file=/root/.ssh/id_rsa",
        f"ssh://{user}@127.0.0.1:{port}#x",
        # a second @ (testinfra splits on the first, urllib on the last)
        f"ssh://{user}@-oProxyCommand=touch${{IFS}}{m(10)}@127.0.0.1:{port}",
        # shell and ssh token metacharacters
        f"ssh://{user}@127.0.0.1;touch${{IFS}}{m(11)}:{port}",
        f"ssh://{user}@$(touch${{IFS}}{m(12)}):{port}",
        f"ssh://{user}@[::1;touch${{IFS}}{m(13)}]:{port}",
        f"ssh://{user}@[-oProxyCommand=x]:{port}",
    ]


def _evil_config(scratch: Path) -> None:
    (scratch / "evil_config").write_text(f"ProxyCommand touch {scratch}/{TOKEN}-cfg\n")


REFUSED = Text("hôte refusé", "host refused")
INVENTORY = Text("inventaire", "inventory")


@pytest.mark.integration
def test_hostile_specs_are_refused_by_check_and_grade(sshd, learner, scratch):
    from checker.i18n import resolve_lang

    lang = resolve_lang()
    _evil_config(scratch)
    for spec in attacks(learner, sshd.port, scratch):
        r = run_virtlab("check", "01", "--host", spec, "--timeout", "3", cwd=scratch)
        assert r.returncode == 2, (spec, r.stdout, r.stderr)
        # in the reader's language (the command inherits our environment), one language
        assert REFUSED.get(lang) in r.stderr, r.stderr
        assert REFUSED.get("en" if lang == "fr" else "fr") not in r.stderr, r.stderr
        assert "\x00" not in r.stderr and "Traceback" not in r.stderr
        r = run_virtlab("grade", "01", "--hosts", spec, "--timeout", "3", "--ssh-config",
                        str(sshd.ssh_config), "--db", str(scratch / "gb.sqlite"), cwd=scratch)
        assert r.returncode == 2, (spec, r.stdout, r.stderr)
        assert REFUSED.get(lang) in r.stderr, r.stderr
    assert markers(scratch, Path("/tmp")) == []
    # and the learner's real spec still connects (the same sshd, the same account)
    r = run_virtlab("grade", "01", "--hosts", sshd.spec(learner), "--ssh-config",
                    str(sshd.ssh_config), "--db", str(scratch / "gb.sqlite"), cwd=scratch)
    assert r.returncode == 0, r.stdout + r.stderr


def inventory_attacks(port: int, user: str, scratch: Path) -> list[tuple[str, str]]:
    """(what, YAML host entry) that would run a command, or rewrite testinfra's options."""
    m = lambda i: f"{scratch}/{TOKEN}-inv{i}"  # noqa: E731
    enc = lambda s: "".join(f"%{ord(c):02X}" for c in s)  # noqa: E731
    base = f"ansible_port: {port}\n      ansible_user: {user}\n"
    return [
        ("encoded ansible_host", f"pc1:\n      ansible_host: '%2DoProxyCommand%3Dtouch%20"
                                 f"{enc(m(1))}'\n      {base}"),
        ("option ansible_host", f"pc1:\n      ansible_host: '-oProxyCommand=touch {m(2)}'\n"
                                f"      {base}"),
        ("option ansible_user", f"pc1:\n      ansible_host: 127.0.0.1\n      ansible_port: "
                                f"{port}\n      ansible_user: '-oProxyCommand=touch {m(3)}'\n"),
        ("encoded ansible_user", f"pc1:\n      ansible_host: 127.0.0.1\n      ansible_port: "
                                 f"{port}\n      ansible_user: '%2DoProxyCommand%3Dtouch%20"
                                 f"{enc(m(4))}'\n"),
        ("user with a password", f"pc1:\n      ansible_host: 127.0.0.1\n      ansible_port: "
                                 f"{port}\n      ansible_user: '{user}:pw'\n"),
        ("port with an option", f"pc1:\n      ansible_host: 127.0.0.1\n      ansible_port: "
                                f"'{port} -oProxyCommand=touch {m(5)}'\n      ansible_user: "
                                f"{user}\n"),
        ("name with testinfra options", f"'pc1?ssh_config={scratch}/evil_config&x=':\n"
                                        f"      ansible_host: 127.0.0.1\n      {base}"),
        ("encoded name, no ansible_host", f"'%2DoProxyCommand%3Dtouch%20{enc(m(6))}':\n"
                                          f"      {base}"),
        ("local connection", f"pc1:\n      ansible_host: 127.0.0.1\n      {base}"
                             "      ansible_connection: local\n"),
    ]


@pytest.mark.integration
def test_hostile_inventory_values_are_refused(sshd, learner, scratch):
    from checker.i18n import resolve_lang

    lang = resolve_lang()  # the commands inherit our environment: the same reader
    _evil_config(scratch)
    for what, entry in inventory_attacks(sshd.port, learner, scratch):
        inv = scratch / "classe.yml"
        inv.write_text("all:\n  hosts:\n    " + entry, encoding="utf-8")
        r = run_virtlab("grade", "01", "--inventory", str(inv), "--timeout", "3",
                        "--ssh-config", str(sshd.ssh_config), "--db",
                        str(scratch / "gb.sqlite"), cwd=scratch)
        assert r.returncode == 2, (what, r.stdout, r.stderr)
        assert INVENTORY.get(lang) in r.stderr, (what, r.stderr)
        # the same inventory host through `virtlab check --host ansible://…`
        name = entry.split(":\n", 1)[0].strip("'")
        r = run_virtlab("check", "01", "--host", f"ansible://{name}?ansible_inventory={inv}",
                        "--timeout", "3", cwd=scratch)
        assert r.returncode == 2, (what, r.stdout, r.stderr)
    assert markers(scratch, Path("/tmp")) == []


@pytest.mark.parametrize("spec", [
    "ssh://u@%2DoX", "ssh://u@-oX", "ssh://-oX@h", "ssh://u@h:22%20-oX", "ssh://u@h:22 -oX",
    "ssh://u@h:٢٢", "ssh://u@h:+22", "ssh://u@h%0a", "ssh://u@h\n", "ssh://u@h\x00-oX",
    "ssh://u@\u2010oX",
    "ssh://u@h?ssh_config=/x", "ssh://u@h#x", "ssh://u@h/x", "ssh://u@h&x=1", "ssh://a@b@h",
    "ssh://u:pw@h", "ssh://u@[::1", "ssh://u@[::1]x", "ssh://u@[h]", "ssh://u@h:0",
    "ssh://u@h:65536", "ssh://u@", "ssh://u@h\ud800", "ssh://.u@h", "ssh://u@.h",
    "ssh://u@h\x1b]52;c;eA==\x07", "ssh://ü@h", "ssh://u@hé",
])
def test_parse_ssh_spec_refuses(spec):
    with pytest.raises(UnsafeHost) as e:
        parse_ssh_spec(spec, need_user=True)
    fr, en = str(e.value).split("\n")
    assert fr.startswith("hôte refusé") and en.startswith("host refused")
    assert "pw" not in str(e.value).replace("password", "")
    if spec.strip() == spec:  # (--hosts lists are split on commas and stripped)
        with pytest.raises(TargetError):
            from_specs([spec])


@pytest.mark.parametrize("spec, dest", [
    ("ssh://alice@pc12", ("alice", "pc12", None)),
    ("ssh://alice@pc12:2222/", ("alice", "pc12", 2222)),
    ("ssh://etu_1.x@10.0.0.5:22", ("etu_1.x", "10.0.0.5", 22)),
    ("ssh://a@[::1]:2222", ("a", "::1", 2222)),
    ("ssh://a@[fe80::1]", ("a", "fe80::1", None)),
])
def test_parse_ssh_spec_accepts(spec, dest):
    d = parse_ssh_spec(spec, need_user=True)
    assert (d.user, d.host, d.port) == dest


@pytest.mark.parametrize("name, hv", [
    ("pc?ssh_config=/x&x=", {"ansible_host": "127.0.0.1", "ansible_user": "a"}),
    ("pc#x", {"ansible_host": "127.0.0.1"}),
    ("%2DoX", {}),
    ("-oX", {"ansible_host": "127.0.0.1"}),
    ("pc", {"ansible_host": "%2DoX"}),
    ("pc", {"ansible_host": "h ost"}),
    ("pc", {"ansible_user": "-oX"}),
    ("pc", {"ansible_user": "a:b"}),
    ("pc", {"ansible_user": "a@b"}),
    ("pc", {"ansible_port": "22 -oX"}),
    ("pc", {"ansible_port": True}),
    ("pc", {"ansible_port": "0"}),
    ("pc", {"ansible_connection": "local"}),
    ("pc", {"ansible_ssh_args": "-oProxyCommand=x"}),
    ("pc", {"ansible_ssh_executable": "/tmp/x"}),
    ("pc", {"ansible_ssh_pass": "secret"}),
    ("pc", {"ansible_host": ["127.0.0.1"]}),
])
def test_inventory_values_refused(name, hv):
    with pytest.raises(UnsafeHost) as e:
        check_inventory_host(name, hv, "classe.yml")
    assert "secret" not in str(e.value)


@pytest.mark.parametrize("spec", ["paramiko://u@h", "salt://h", "winrm://u@h",
                                  "docker://-oX", "ansible://pc1?ssh_config=/x",
                                  "ansible://pc1?ansible_inventory=/i&ssh_identity_file=/k",
                                  "ansible://%2DoX?ansible_inventory=/i"])
def test_other_backends_that_would_bypass_the_caps_or_take_options_are_refused(spec):
    """paramiko, salt and winrm read output without our cap (and paramiko would follow an
    instructor's ForwardAgent); other specs carry no option but the inventory."""
    from checker.engine import BadHostSpec, get_host

    with pytest.raises(BadHostSpec):
        get_host(spec)


@pytest.mark.integration
def test_the_pytest_plugin_refuses_the_same_specs(sshd, learner, scratch):
    """``pytest --hosts=… labs/NN/checks`` (the plugin): the same validation."""
    import subprocess
    import sys

    from conftest import REPO

    for spec in attacks(learner, sshd.port, scratch)[:6]:
        p = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                            f"--hosts={spec}", "--ssh-config", str(sshd.ssh_config),
                            str(REPO / "labs" / "01-hardware" / "checks")],
                           capture_output=True, text=True, cwd=scratch, timeout=120,
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 4, (spec, p.stdout[-2000:], p.stderr[-2000:])  # usage error
        assert "host refused" in p.stderr, p.stderr
    assert markers(scratch, Path("/tmp")) == []


def test_an_ipv6_host_keeps_its_brackets_in_the_libvirt_uri():
    from checker.engine import Target

    assert Target("ssh://a@[::1]:2222").libvirt_uri() == "qemu+ssh://a@[::1]:2222/system"
    assert Target("ssh://a@pc12").libvirt_uri() == "qemu+ssh://a@pc12/system"
