"""Debian 13 and 12: the host's release read through the host probe, and the words (package
names, commands) that checks, hints, the site and the notebooks give for each release.

The releases' own /etc/os-release (copied from the base-files packages of trixie and
bookworm, with /etc/os-release the same relative symlink as on a real system) are read by
HostFacts through a real testinfra ``local://`` host (``tests/fixtures/hosts/debian13`` and
``debian12``); the lab's check module runs through the engine, as in test_lab01.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from conftest import cannot_run

from checker.build import example_report, lab_notebook, site_page
from checker.catalog import CatalogError, load_lab, resolve
from checker.engine import Fixtures, get_host, load_checks, run_objective
from checker.notebook import to_jupyter_md
from checker.probes.host import HostFacts, parse_os_release
from checker.probes.learner import Learner
from checker.probes.libvirt import Virt
from checker.releases import R12, R13, WORDS, both, release_of

HOSTS = Path(__file__).parent / "fixtures" / "hosts"
REPO = Path(__file__).parent.parent


def facts_of(root: Path) -> HostFacts:
    return HostFacts(get_host("local://"), root=root)


# --- the probe ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, major, codename, rel", [
    ("debian13", 13, "trixie", R13), ("debian12", 12, "bookworm", R12)])
def test_the_host_probe_reads_each_release_from_its_real_os_release(name, major, codename, rel):
    facts = facts_of(HOSTS / name)
    assert (HOSTS / name / "etc/os-release").is_symlink()  # as base-files ships it
    osr = facts.os_release
    assert (osr.id, osr.version_id, osr.codename) == ("debian", str(major), codename)
    assert osr.debian_major == major
    assert (facts.release.major == rel.major
            and facts.release.virt_install_pkg == rel.virt_install_pkg)
    assert facts.release.found == f"Debian {major} ({codename})"
    assert facts.os_release is osr  # read once per run


def test_this_machine_is_read_through_the_same_probe():
    facts = HostFacts(get_host("local://"))
    text = Path("/etc/os-release").read_text()
    assert facts.os_release == parse_os_release(text)


def test_a_host_without_os_release_gets_the_newest_words_and_says_unknown():
    facts = facts_of(HOSTS / "kvm-guest")  # a recording without /etc/os-release
    assert facts.os_release.debian_major is None
    assert facts.release.major == 13 and facts.release.found == "unknown"


@pytest.mark.parametrize("text, major, words_of", [
    ('ID=debian\nVERSION_CODENAME=forky\nPRETTY_NAME="Debian GNU/Linux forky/sid"\n', None, 13),
    ('ID=debian\nVERSION_ID="11"\nVERSION_CODENAME=bullseye\n', 11, 12),
    ('ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n', None, 13),
    ("ID='debian'\nVERSION_ID=12\n# a comment\nnot a line\n", 12, 12),
    ('ID=debian\nVERSION_ID="13"\nPRETTY_NAME="\\x1b[31mred\\"x"\n', 13, 13),
])
def test_os_release_variants(text, major, words_of):
    osr = parse_os_release(text)
    assert osr.debian_major == major
    assert release_of(osr).major == words_of
    assert all(c.isprintable() for c in osr.pretty_name)


def test_a_huge_os_release_is_read_with_a_cap():
    osr = parse_os_release("ID=debian\n" + "X=" + "y" * 10_000_000 + "\nVERSION_ID=12\n")
    assert osr.id == "debian" and osr.version_id == ""  # past the cap: not read


# --- the words ------------------------------------------------------------------------------

def test_the_words_are_the_ones_verified_on_each_release():
    assert (R13.virt_install_pkg, R12.virt_install_pkg) == ("virt-install", "virtinst")
    assert (R13.host_validate_pkg, R12.host_validate_pkg) == ("libvirt-daemon-common",
                                                              "libvirt-clients")
    assert (R13.dhcp_client, R12.dhcp_client) == ("dhcpcd", "dhclient")
    assert (R13.nm_port, R12.nm_port) == ("controller", "master")
    assert (R13.osinfo_debian12, R12.osinfo_debian12) == ("debian12", "debiantesting")
    assert (R13.osinfo_guest, R12.osinfo_guest) == ("debian13", "debian11")
    assert all(getattr(R13, w) and getattr(R12, w) for w in WORDS)


def test_both_names_each_release_only_where_they_differ():
    assert both("sudo apt install {virt_install_pkg}", "fr") == (
        "Debian 13 : sudo apt install virt-install — Debian 12 : sudo apt install virtinst")
    assert both("virsh list", "en") == "virsh list"


def test_an_unknown_word_in_a_hint_is_refused_naming_file_and_field(tmp_path):
    lab = tmp_path / "02-install-kvm"
    shutil.copytree(REPO / "labs" / "02-install-kvm", lab)
    toml = lab / "lab.toml"
    toml.write_text(toml.read_text().replace("{virt_install_pkg}", "{virtinstall}", 1))
    with pytest.raises(CatalogError) as e:
        load_lab(lab)
    assert "lab.toml" in str(e.value) and "pkg-virtinst" in str(e.value)
    assert "{virtinstall}" in str(e.value)


# --- lab 02 on each release -----------------------------------------------------------------

def _run(root: Path, oid: str, lang: str = "en"):
    lab = resolve("02")
    host = get_host("local://")
    fx = Fixtures(lab, host, Virt("qemu:///system"), Learner(host, "nobody"))
    fx.values["facts"] = HostFacts(host, root=root)
    return run_objective(lab, oid, load_checks(lab)[oid], fx, lang)


def _without(tmp_path: Path, name: str, package: str) -> Path:
    """A copy of a recorded host whose dpkg database lacks ``package``."""
    root = tmp_path / name
    shutil.copytree(HOSTS / name, root, symlinks=True)
    q = root / "commands" / "dpkg-query"
    q.write_text("".join(ln for ln in q.read_text().splitlines(True)
                         if not ln.startswith(package + "\t")))
    return root


@pytest.mark.parametrize("name, pkg", [("debian13", "virt-install"), ("debian12", "virtinst")])
def test_pkg_virtinst_accepts_the_package_of_each_release(name, pkg):
    r = _run(HOSTS / name, "pkg-virtinst")
    assert r.status == "pass", r.message
    assert pkg in r.message and r.evidence["packages"][pkg]


@pytest.mark.parametrize("name, pkg, lang", [
    ("debian13", "virt-install", "fr"), ("debian13", "virt-install", "en"),
    ("debian12", "virtinst", "fr"), ("debian12", "virtinst", "en")])
def test_a_missing_virt_install_names_the_release_package_in_message_and_hint(
        tmp_path, name, pkg, lang):
    r = _run(_without(tmp_path, name, pkg), "pkg-virtinst", lang)
    assert r.status == "fail"
    assert f"sudo apt install {pkg}" in r.message
    # the hint's placeholder, filled for this host (lab text: the command is a code span)
    assert f"`sudo apt install {pkg}`," in r.hint
    other = "virtinst" if pkg == "virt-install" else "virt-install"
    assert f"apt install {other}" not in r.message + r.hint
    assert r.evidence["debian"].startswith(f"Debian {name[-2:]}")


def test_the_transitional_virtinst_alone_also_passes_on_debian_13(tmp_path):
    root = _without(tmp_path, "debian13", "virt-install")
    q = root / "commands" / "dpkg-query"
    q.write_text(q.read_text() + "virtinst\tinstall ok installed\t1:5.0.0-5+deb13u1\n")
    assert _run(root, "pkg-virtinst").status == "pass"


@pytest.mark.parametrize("name, pkg", [("debian13", "libvirt-daemon-common"),
                                       ("debian12", "libvirt-clients")])
def test_the_host_validate_hint_names_the_package_of_virt_host_validate(name, pkg):
    # Any failing objective shows its first hint; pkg-virtinst's is checked above, this one
    # goes through the engine's filling of hints for an objective whose check passes here:
    # the hint text itself, filled with the host's release.
    lab = resolve("02")
    hint = lab.objective("host-validate").hint
    facts = facts_of(HOSTS / name)
    assert f"(paquet {pkg})" in facts.release.expand(hint.fr)
    assert f"(package {pkg})" in facts.release.expand(hint.en)


# --- instructions: tabs on the site, both releases in the notebook ---------------------------

RELEASE_LABS = ("02-install-kvm", "03-libvirt-basics", "04-create-vm", "05-networks")
#: lab 03's releases differ only in virsh's French output (libvirt 9.0 leaves two words in
#: English): tabs in the French text only.
TAB_LANGS = {"03-libvirt-basics": ("fr",)}


@pytest.mark.parametrize("lab_id", RELEASE_LABS)
def test_the_site_shows_both_releases_in_tabs_debian_13_first(lab_id):
    lab = resolve(lab_id)
    for lang in TAB_LANGS.get(lab_id, ("fr", "en")):
        page = site_page(lab, lang)
        i13, i12 = page.find('=== "Debian 13 (trixie)"'), page.find('=== "Debian 12 (bookworm)"')
        assert 0 <= i13 < i12, (lab_id, lang)


@pytest.mark.parametrize("lab_id", RELEASE_LABS)
def test_the_notebook_shows_both_releases_as_labelled_sections(lab_id):
    nb = nbformat.reads(lab_notebook(resolve(lab_id)), as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "===" not in text  # no raw tab syntax: Jupyter does not render it
    halves = len(TAB_LANGS.get(lab_id, ("fr", "en")))
    for label in ("**Debian 13 (trixie)**", "**Debian 12 (bookworm)**"):
        assert text.count(label) >= halves  # in the French and the English half
    assert text.index("**Debian 13 (trixie)**") < text.index("**Debian 12 (bookworm)**")


def test_nested_release_tabs_become_nested_labelled_sections():
    md = ('=== "Ligne de commande"\n    Texte.\n\n    === "Debian 13 (trixie)"\n'
          '        ```bash\n        virt-install --osinfo debian12\n        ```\n\n'
          '    === "Debian 12 (bookworm)"\n        ```bash\n'
          '        virt-install --osinfo debiantesting\n        ```\n')
    out = to_jupyter_md(md)
    assert out.index("**Ligne de commande**") < out.index("**Debian 13 (trixie)**") \
        < out.index("--osinfo debian12") < out.index("**Debian 12 (bookworm)**") \
        < out.index("--osinfo debiantesting")
    assert "```bash\nvirt-install --osinfo debian12\n```" in out  # dedented: a real code block


def test_the_site_example_hint_gives_each_release_its_command():
    lab = resolve("02")
    hint = example_report(lab, "en").objectives[-1].hint  # it fails the last objective
    assert hint.startswith("Debian 13: Run `virt-host-validate qemu` (package "
                           "libvirt-daemon-common)")
    assert " — Debian 12: Run `virt-host-validate qemu` (package libvirt-clients)" in hint
    page = " ".join(site_page(lab, "en").split())  # the same, wrapped in the page
    # the page shows the text report, where code spans are plain text
    assert "Hint: Debian 13: Run virt-host-validate qemu (package libvirt-daemon-common)" in page


@pytest.mark.parametrize("lab_id, oid, words", [
    ("04-create-vm", "vm-defined", {13: "--osinfo debian12 ", 12: "--osinfo debiantesting "}),
    ("05-networks", "vm-nic-bridge", {13: "--osinfo debian13 ", 12: "--osinfo debian11 "}),
    ("05-networks", "host-bridge", {13: "sudo dhcpcd br0", 12: "sudo dhclient br0"}),
    ("02-install-kvm", "pkg-libvirt-daemon", {13: "libvirt-daemon-common", 12: "created by "
                                              "libvirt-daemon-system"}),
])
def test_hints_name_the_command_of_the_host_release(lab_id, oid, words):
    hint = resolve(lab_id).objective(oid).hint
    for name, major in (("debian13", 13), ("debian12", 12)):
        rel = facts_of(HOSTS / name).release
        assert words[major] in rel.expand(hint.en), (oid, major)
        other = words[25 - major]
        assert other not in rel.expand(hint.en), (oid, major)
        assert "{" not in rel.expand(hint.fr)


# --- libvirtd: socket activation, read with systemd's own logic ------------------------------

def _systemd_host(tmp_path: Path, name: str, *steps: list[str]) -> Path:
    """A copy of a recorded host (with the release's real libvirtd units) on which the real
    ``systemctl --root`` ran ``steps`` (enable, mask…), as the packages' postinst and a
    learner would."""
    if shutil.which("systemctl") is None:
        cannot_run("systemctl is not installed (package systemd)")
    root = tmp_path / name
    shutil.copytree(HOSTS / name, root, symlinks=True)
    for step in steps:
        subprocess.run(["systemctl", f"--root={root}", *step], check=True, capture_output=True)
    return root


@pytest.mark.parametrize("name", ["debian13", "debian12"])
@pytest.mark.parametrize("steps, status, words", [
    pytest.param((), "fail", "Enable it: sudo systemctl enable --now libvirtd",
                 id="nothing-enabled"),
    # the postinst's `enable libvirtd.service` enables the sockets too (Also=)
    pytest.param((["enable", "libvirtd.service"],), "pass", "libvirtd.socket is enabled",
                 id="service-enabled"),
    pytest.param((["enable", "libvirtd.socket"],), "pass",
                 "starts libvirtd on the first connection", id="socket-enabled"),
    pytest.param((["enable", "libvirtd.service"], ["disable", "libvirtd.socket"]), "pass",
                 "libvirtd.service is enabled at boot", id="service-without-socket"),
    pytest.param((["enable", "libvirtd.service"], ["mask", "libvirtd.socket"]), "fail",
                 "libvirtd.socket is masked", id="socket-masked"),
])
def test_libvirtd_enabled_follows_systemd_on_each_release(tmp_path, name, steps, status, words):
    r = _run(_systemd_host(tmp_path, name, *steps), "libvirtd-enabled")
    assert r.status == status, r.message
    assert words in r.message
    assert set(r.evidence) >= {"libvirtd.service", "libvirtd.socket", "systemd"}


def test_libvirtd_enabled_says_why_in_french_too(tmp_path):
    r = _run(_systemd_host(tmp_path, "debian13", ["enable", "libvirtd.service"],
                           ["mask", "libvirtd.socket"]), "libvirtd-enabled", "fr")
    assert r.status == "fail" and "masqué" in r.message and "--timeout 120" in r.message


def test_a_daemon_down_is_told_with_the_state_of_its_socket(tmp_path):
    root = _systemd_host(tmp_path, "debian13", ["enable", "libvirtd.service"])
    (root / "commands" / "systemctl-is-active").write_text("inactive\ninactive\n")
    lab = resolve("02")
    host = get_host("local://")
    uri = f"qemu:///system?socket={tmp_path}/no-such-socket"
    fx = Fixtures(lab, host, Virt(uri), Learner(host, "nobody"))
    fx.values["facts"] = HostFacts(host, root=root)
    r = run_objective(lab, "libvirtd-active", load_checks(lab)["libvirtd-active"], fx, "en")
    assert r.status == "fail", r.message
    assert "libvirtd.socket: inactive" in r.message and "sudo systemctl start libvirtd" in r.message
    assert r.evidence["units"] == {"libvirtd.service": "inactive", "libvirtd.socket": "inactive"}


@pytest.mark.integration
def test_an_idle_libvirtd_behind_its_socket_is_explained_not_failed(clean_sandbox, tmp_path):
    """What `systemctl status` shows on an idle Debian host: libvirtd inactive (it exited
    after --timeout 120), its socket active; the daemon answers (here the sandbox's)."""
    root = _systemd_host(tmp_path, "debian13", ["enable", "libvirtd.service"])
    (root / "commands" / "systemctl-is-active").write_text("inactive\nactive\n")
    lab = resolve("02")
    host = get_host("local://")
    fx = Fixtures(lab, host, Virt(clean_sandbox.uri), Learner(host, "nobody"))
    fx.values["facts"] = HostFacts(host, root=root)
    for lang, words in (("en", "socket activation"), ("fr", "activation par socket")):
        r = run_objective(lab, "libvirtd-active", load_checks(lab)["libvirtd-active"], fx, lang)
        assert r.status == "pass", r.message
        assert words in r.message and "libvirtd.socket" in r.message


def test_virtlab_hint_names_this_machines_release(virtlab, tmp_path):
    """`virtlab hint` runs on the learner's machine: its words are that machine's."""
    rel = HostFacts(get_host("local://")).release
    r = virtlab("hint", "02", "pkg-virtinst", "--lang", "en", env={"XDG_DATA_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert f"sudo apt install {rel.virt_install_pkg}," in r.stdout and "{" not in r.stdout
