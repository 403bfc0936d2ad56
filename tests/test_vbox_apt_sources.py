"""Does the checker read APT sources and keyrings the way apt does?

Parsers of ``checker/probes/apt.py`` on one-line ``.list`` and deb822 ``.sources`` files,
and its OpenPGP reader on real keys: Debian's ``fasttrack-archive-keyring`` key (a real
public key, copied from that Debian package) and test keys made with gpg for these tests
(``test-oracle-uid.*`` carries Oracle's user id but is NOT Oracle's key).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import testinfra

from checker.probes.apt import AptSources, dearmor, parse_deb822, parse_one_line, read_keys

FIX = Path(__file__).parent / "fixtures" / "vbox"
FASTTRACK_FPR = "6387B08A37B33C80BA4837B742C1F1CB97D3A73C"


def test_one_line_with_options_and_comments():
    text = """\
# deb https://download.virtualbox.org/virtualbox/debian bookworm contrib
deb http://deb.debian.org/debian bookworm main   # trailing comment
deb [ arch=amd64,i386 signed-by=/usr/share/keyrings/oracle-virtualbox-2016.gpg ] \
https://download.virtualbox.org/virtualbox/debian bookworm contrib
deb-src [signed-by=/k.gpg] http://x.org/d bookworm main contrib
not a source line
"""
    srcs = parse_one_line(text, "/etc/apt/sources.list")
    assert [(s.types, s.uris[0], s.where) for s in srcs] == [
        (("deb",), "http://deb.debian.org/debian", "line 2"),
        (("deb",), "https://download.virtualbox.org/virtualbox/debian", "line 3"),
        (("deb-src",), "http://x.org/d", "line 4")]
    vb = srcs[1]
    assert vb.signed_by == "/usr/share/keyrings/oracle-virtualbox-2016.gpg"
    assert vb.options["arch"] == "amd64,i386"
    assert vb.suites == ("bookworm",) and vb.components == ("contrib",)
    assert srcs[0].signed_by is None


def test_deb822_stanzas_enabled_and_inline_key():
    armored = (FIX / "test-oracle-uid.asc").read_text()
    inline = "\n".join(" " + (line if line.strip() else ".") for line in armored.splitlines())
    text = f"""\
# VirtualBox from Oracle
Types: deb
URIs: https://download.virtualbox.org/virtualbox/debian
Suites: bookworm
Components: contrib
Architectures: amd64
Signed-By: /usr/share/keyrings/oracle-virtualbox-2016.gpg

Types: deb deb-src
URIs: https://fasttrack.debian.net/debian-fasttrack/
Suites: bookworm-fasttrack bookworm-backports-staging
Components: main contrib
Enabled: no

Types: deb
URIs: https://download.virtualbox.org/virtualbox/debian
Suites: bookworm
Components: contrib
Signed-By:
{inline}
"""
    srcs = parse_deb822(text, "/etc/apt/sources.list.d/vbox.sources")
    assert len(srcs) == 3
    a, b, c = srcs
    assert a.signed_by == "/usr/share/keyrings/oracle-virtualbox-2016.gpg" and a.enabled
    assert a.options["architectures"] == "amd64"
    assert b.types == ("deb", "deb-src") and b.suites == ("bookworm-fasttrack",
                                                          "bookworm-backports-staging")
    assert not b.enabled
    assert "BEGIN PGP PUBLIC KEY BLOCK" in c.signed_by
    assert read_keys(c.signed_by.encode()).has(uid_marker="info@virtualbox.org")
    assert c.to_evidence()["signed_by"] == "(inline key)"


def test_real_fasttrack_key_fingerprints_match_gpg():
    keys = read_keys((FIX / "fasttrack-archive-keyring.gpg").read_bytes())
    assert keys.valid and not keys.armored
    # what `gpg --show-keys --with-colons` prints for this file
    assert keys.fingerprints == (FASTTRACK_FPR, "1FC324F50C00F13AE448A88CC47F8A8AAD743EF7")
    assert keys.uids == ("Debian Fast Track Archive Signing Key <team@fasttrack.debian.net>",)
    assert keys.has(frozenset({FASTTRACK_FPR}))
    assert not keys.has(frozenset({"B9F8D658297AF3EFC18D5CDFA2F683C52980AECF"}),
                        "info@virtualbox.org")


def test_armored_and_binary_forms_of_one_key_agree():
    binary = read_keys((FIX / "test-oracle-uid.gpg").read_bytes())
    armored = read_keys((FIX / "test-oracle-uid.asc").read_bytes())
    assert binary.valid and armored.valid and armored.armored and not binary.armored
    assert binary.fingerprints == armored.fingerprints
    assert (dearmor((FIX / "test-oracle-uid.asc").read_text())
            == (FIX / "test-oracle-uid.gpg").read_bytes())


@pytest.mark.parametrize("content", [b"", b"not a key at all", b"\x99\x01", b"\xff" * 40])
def test_garbage_keyrings_are_not_valid(content):
    keys = read_keys(content)
    assert not keys.valid and keys.fingerprints == ()


def test_keybox_like_file_still_shows_user_ids():
    blob = (b"KBXf\x00\x00" + b"\x00" * 20
            + b"Oracle Corporation (VirtualBox archive signing key) <info@virtualbox.org>"
            + b"\x00")
    assert read_keys(blob).has(uid_marker="info@virtualbox.org")


def test_probe_reads_only_files_apt_reads_under_a_root(tmp_path):
    d = tmp_path / "etc/apt/sources.list.d"
    d.mkdir(parents=True)
    (tmp_path / "etc/apt/sources.list").write_text("deb http://deb.debian.org/debian bookworm "
                                                   "main\n")
    (d / "vbox.list").write_text("deb [signed-by=/usr/share/keyrings/k.gpg] "
                                 "https://download.virtualbox.org/virtualbox/debian bookworm "
                                 "contrib\n")
    (d / "ft.sources").write_text("Types: deb\n"
                                  "URIs: https://fasttrack.debian.net/debian-fasttrack/\n"
                                  "Suites: bookworm-fasttrack\nComponents: main contrib\n")
    (d / "vbox.list.save").write_text("deb https://ignored.example/ bookworm main\n")
    (d / "bad name.list").write_text("deb https://ignored.example/ bookworm main\n")
    (d / "vbox.list.disabled").write_text("deb https://ignored.example/ bookworm main\n")
    tg = tmp_path / "etc/apt/trusted.gpg.d"
    tg.mkdir()
    (tg / "fasttrack-archive-keyring.gpg").write_bytes(
        (FIX / "fasttrack-archive-keyring.gpg").read_bytes())
    (tg / "notes.txt").write_text("ignored")
    apt = AptSources(testinfra.get_host("local://"), str(tmp_path))
    assert apt.source_files() == ["/etc/apt/sources.list", "/etc/apt/sources.list.d/ft.sources",
                                  "/etc/apt/sources.list.d/vbox.list"]
    assert [s.uris[0] for s in apt.sources()] == [
        "http://deb.debian.org/debian", "https://fasttrack.debian.net/debian-fasttrack/",
        "https://download.virtualbox.org/virtualbox/debian"]
    kr = apt.legacy_keyrings()
    assert [k.path for k in kr] == ["/etc/apt/trusted.gpg.d/fasttrack-archive-keyring.gpg"]
    assert kr[0].keys.has(frozenset({FASTTRACK_FPR}))
    missing = apt.keyring("/usr/share/keyrings/k.gpg")
    assert not missing.exists and missing.keys is None


def test_default_root_is_the_machine_itself():
    apt = AptSources(testinfra.get_host("local://"))
    assert apt.path("/etc/apt/sources.list") == "/etc/apt/sources.list"
