"""Hostile input: every parser of the checker on generated data, and hostile names on a real
libvirtd. Each parser gives its result or its documented error, never another exception.

Covered elsewhere, not repeated here: ``VBoxManage`` output (tests/test_vbox_parsers.py:
hostile names and descriptions round-tripped, garbage, unterminated quotes) and
``/etc/network/interfaces`` plus NetworkManager keyfiles (tests/test_lab05.py:
``test_any_interfaces_file_parses_without_raising``, ``test_any_keyfile_parses_without_raising``).

Here: lab metadata (``lab.toml``), class rosters (``--hosts`` specs, Ansible INI and YAML
inventories), APT sources and keyrings, libvirt domain and network XML; then VM and network
names with quotes, blanks, shell metacharacters and non-ASCII defined on the sandbox, with
every lab checked and every report format rendered. libvirt itself refuses ``/``, line
breaks, control characters, empty names and names too long for a file name
(``test_libvirt_refuses_these_names`` records which).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import string
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from conftest import run_virtlab
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from checker.catalog import CatalogError, lab_ids, load_lab
from checker.grade.targets import HostTarget, TargetError, from_inventory, from_specs
from checker.model import Lab
from checker.probes.apt import dearmor, parse_deb822, parse_one_line, read_keys
from checker.probes.libvirt import parse_domain_xml, parse_network_xml

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
SLOW = settings(max_examples=20, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# Any Unicode a file or a command may hold, surrogates excepted (not encodable).
anytext = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)
odd = st.sampled_from(["", " ", "'", '"', "\\", "\n", "\r\n", "\t", "\x00", "\x7f", "$(id)",
                       "`id`", ";", "|", "&", "<", ">", "é", "日本", "🙂", "\u202e", "-", "--",
                       "#", "=", "[", "]", "{", "}", "%", "9" * 40])
weird_text = st.one_of(anytext, st.lists(odd, max_size=6).map("".join))


# --- lab metadata ------------------------------------------------------------------------

def toml_value(v: object) -> str:
    """A TOML inline value (valid TOML as long as the strings are)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return ("nan" if math.isnan(v)
                else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)} = {toml_value(x)}"
                               for k, x in v.items()) + "}"
    raise TypeError(type(v))


def to_toml(doc: dict) -> str:
    return "".join(f"{json.dumps(str(k), ensure_ascii=False)} = {toml_value(v)}\n"
                   for k, v in doc.items())


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), weird_text)
values = st.recursive(scalars.filter(lambda x: x is not None),
                      lambda kids: st.one_of(st.lists(kids, max_size=3),
                                             st.dictionaries(weird_text, kids, max_size=3)),
                      max_leaves=8)


def valid_lab(lab_id: str) -> dict:
    text = {"fr": "Un titre", "en": "A title"}
    return {"id": lab_id, "section": "8.1.1", "title": dict(text), "summary": dict(text),
            "objectives": [{"id": "first-one", "points": 2, "section": "8.1.1",
                            "title": dict(text), "hint": dict(text),
                            "more_hints": [dict(text)]},
                           {"id": "second", "points": 1, "section": "8.1.2",
                            "title": dict(text), "hint": dict(text)}]}


@st.composite
def mutated_labs(draw) -> dict:
    """A valid lab.toml document with a few fields replaced, removed or added."""
    doc = valid_lab("42-hostile")
    for _ in range(draw(st.integers(1, 4))):
        # walk down to a random container and change one of its entries
        node: object = doc
        for _depth in range(draw(st.integers(0, 3))):
            if isinstance(node, dict) and node:
                node = node[draw(st.sampled_from(sorted(node)))]
            elif isinstance(node, list) and node:
                node = node[draw(st.integers(0, len(node) - 1))]
            else:
                break
        if isinstance(node, dict):
            key = draw(st.one_of(st.sampled_from(sorted(node) or ["id"]), weird_text))
            if draw(st.booleans()) and key in node:
                del node[key]
            else:
                node[key] = draw(values)
        elif isinstance(node, list):
            node.append(draw(values))
    return doc


def lab_dir(tmp: Path, name: str, toml: str | bytes) -> Path:
    d = tmp / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for lang in ("fr", "en"):
        (d / f"instructions.{lang}.md").write_text("# T\n", encoding="utf-8")
    data = toml if isinstance(toml, bytes) else toml.encode("utf-8", "surrogatepass")
    (d / "lab.toml").write_bytes(data)
    return d


def assert_lab_or_named_error(path: Path) -> Lab | None:
    try:
        lab = load_lab(path)
    except CatalogError as e:
        assert str(path) in str(e), e  # the message names the file (or the folder)
        return None
    assert isinstance(lab, Lab) and lab.id == path.name and lab.objectives
    assert all(isinstance(o.points, int) and o.points > 0 for o in lab.objectives)
    assert all(o.title.fr.strip() and o.title.en.strip() for o in lab.objectives)
    return lab


def test_the_unmutated_document_is_a_valid_lab(tmp_path):
    assert assert_lab_or_named_error(lab_dir(tmp_path, "42-hostile",
                                             to_toml(valid_lab("42-hostile"))))


@FAST
@given(mutated_labs())
def test_any_lab_toml_gives_a_lab_or_a_catalog_error_naming_the_file(tmp_path, doc):
    assert_lab_or_named_error(lab_dir(tmp_path, "42-hostile", to_toml(doc)))


@FAST
@given(st.binary(max_size=300) | anytext.map(lambda t: t.encode("utf-8")))
@example(b"\xff\xfe" + "id = 1".encode("utf-16-le"))
@example(b'id = "42-hostile"\n[[objectives]]\n[[objectives]]\n')
@example(b'id = "42-hostile"\nobjectives = [1, "x", {}]\n')
def test_any_bytes_as_lab_toml(tmp_path, data):
    assert_lab_or_named_error(lab_dir(tmp_path, "42-hostile", data))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(string.ascii_letters + string.digits + "-_. 'é$", min_size=1, max_size=20))
def test_any_folder_name(tmp_path, name):
    assume(name not in (".", "..") and "/" not in name)
    assert_lab_or_named_error(lab_dir(tmp_path / "root", name, to_toml(valid_lab(name))))


# --- class rosters ---------------------------------------------------------------------

def assert_safe_targets(targets: list[HostTarget]) -> None:
    from checker.hostspec import valid_host, valid_user

    assert targets
    for t in targets:
        assert t.learner and not t.learner.startswith("-")
        assert valid_host(t.ssh_host) and valid_user(t.ssh_user), t
        assert t.ssh_port is None or 1 <= t.ssh_port <= 65535


@FAST
@given(st.lists(st.one_of(weird_text.map(lambda s: "ssh://" + s),
                          st.builds(lambda u, h, p: f"ssh://{u}@{h}{p}", weird_text, weird_text,
                                    st.sampled_from(["", ":22", ":0", ":99999", ":x", ":-1"])),
                          weird_text), min_size=1, max_size=4))
@example(["ssh://u@-oProxyCommand=touch${IFS}pwned"])
@example(["ssh://-oProxyCommand=x@h"])
@example(["ssh://u:secret@h"])
@example(["ssh://u@[::1]:2222", "ssh://u@[::1"])
def test_any_host_spec_gives_targets_or_a_target_error(specs):
    try:
        targets = from_specs(specs)
    except TargetError as e:
        assert str(e)
        return
    assert_safe_targets(targets)
    for t in targets:
        assert t.libvirt_uri("qemu+ssh://{user}@{host}:{port}/system").startswith("qemu+ssh://")


inv_value = st.one_of(weird_text, st.integers(-5, 70000).map(str))


@st.composite
def inventories(draw) -> tuple[str, str, list[dict[str, str]]]:
    """(format, text, hosts as written) of an Ansible inventory with hostile values."""
    hosts = []
    for i in range(draw(st.integers(1, 3))):
        # mostly plain names and users (ansible refuses many odd host names outright),
        # always a hostile email
        plain = draw(st.integers(0, 3)) > 0
        h = {"name": draw(st.sampled_from([f"pc{i:02d}", f"pc-{i}.lab", f"pc_{i}"])
                          if plain else weird_text),
             "ansible_user": draw(st.just(f"etu{i}") if plain else inv_value),
             "email": draw(inv_value)}
        if draw(st.booleans()):
            h["ansible_host"] = draw(st.one_of(st.just("127.0.0.1"), inv_value))
        if draw(st.booleans()):
            h["ansible_port"] = draw(inv_value)
        hosts.append(h)
    fmt = draw(st.sampled_from(["yaml", "ini"]))
    if fmt == "yaml":
        # JSON is YAML: every value written as a JSON string
        doc = {"all": {"hosts": {h["name"]: {k: v for k, v in h.items() if k != "name"}
                                 for h in hosts}}}
        return fmt, json.dumps(doc, ensure_ascii=False), hosts
    lines = ["[class]"]
    for h in hosts:
        lines.append(h["name"] + "".join(f" {k}={json.dumps(v, ensure_ascii=False)}"
                                         for k, v in h.items() if k != "name"))
    return fmt, "\n".join(lines) + "\n", hosts


@SLOW
@given(inventories())
@example(("ini", '[class]\npc01 ansible_host=-oProxyCommand=x ansible_user=a\n', []))
@example(("yaml", "all: [unclosed\n", []))
@example(("ini", "\x00\xff garbage ]]]\n", []))
def test_any_inventory_gives_targets_or_a_target_error(tmp_path, inv):
    fmt, text, written = inv
    path = tmp_path / f"classe.{'yml' if fmt == 'yaml' else 'ini'}"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        targets = from_inventory(str(path))
    except TargetError as e:
        assert str(path) in str(e) or "inventory" in str(e), e
        return
    assert_safe_targets(targets)
    by_name = {h["name"]: h for h in written}
    for t in targets:
        if fmt == "yaml" and t.host in by_name:  # YAML keeps every string exactly
            assert t.email == by_name[t.host]["email"]


# --- APT sources and keys ----------------------------------------------------------------

apt_token = st.one_of(odd, st.sampled_from(["deb", "deb-src", "[", "]", "signed-by=/k.gpg",
                                            "arch=amd64", "arch+=i386", "https://x.org/d",
                                            "bookworm", "contrib", "Types:", "URIs:", "Suites:",
                                            "Signed-By:", "Enabled: no", " .", ":"]), anytext)
apt_text = st.lists(st.lists(apt_token, max_size=8).map(" ".join), max_size=12).map("\n".join)


@FAST
@given(apt_text)
@example("deb [signed-by= arch=] x y\ndeb-src [ ] a b c d\ndeb [unclosed x y z")
@example("Types: deb\n .\n\n\n URIs: x\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n")
def test_any_sources_file_parses_without_raising(text):
    for parse in (parse_one_line, parse_deb822):
        for src in parse(text, "/etc/apt/sources.list.d/x"):
            assert src.file == "/etc/apt/sources.list.d/x"
            assert all(isinstance(x, str) for x in src.types + src.uris + src.suites)
            json.dumps(src.to_evidence(), ensure_ascii=False)


def _armored(b64: str) -> bytes:
    return (f"-----BEGIN PGP PUBLIC KEY BLOCK-----\nComment: x\n\n{b64}\n=abcd\n"
            "-----END PGP PUBLIC KEY BLOCK-----\n").encode()


@FAST
@given(st.one_of(st.binary(max_size=400),
                 st.binary(max_size=300).map(lambda b: bytes([0x99, 0x01, 0x0D]) + b),
                 st.binary(max_size=300).map(lambda b: bytes([0xC6, 0xFF]) + b),
                 st.text(string.ascii_letters + string.digits + "+/=:\n -", max_size=300)
                 .map(_armored)))
@example(bytes([0xC6, 0xC0]))  # a two-byte length cut short
@example(bytes([0x99]))
@example(bytes([0x98, 0x00, 0x00, 0x00]))
def test_any_keyring_reads_without_raising(data):
    info = read_keys(data)
    assert all(re.fullmatch(r"[0-9A-F]{40}", fp) for fp in info.fingerprints)
    assert info.valid == bool(info.fingerprints)
    dearmor(data.decode("latin-1"))


# --- libvirt XML -------------------------------------------------------------------------

units = st.sampled_from(["", "b", "bytes", "KiB", "k", "KB", "MiB", "M", "mb", "GiB", "G",
                         "GB", "TiB", "t", "PiB", "EiB", "e", "furlongs", "kib ", "ＭiB", "é"])
numbers = st.one_of(st.integers(0, 2**70).map(str), st.integers(-10**6, -1).map(str),
                    st.sampled_from(["", " 512 ", "2.5", "1e3", "0x10", "²", "٣", "+4", "NaN",
                                     "9" * 400, "9" * 5000, "１２"]), weird_text)


@st.composite
def domain_xmls(draw) -> str:
    parts = ["<domain", f" type={quoteattr(draw(weird_text))}" if draw(st.booleans()) else "", ">"]
    for tag in ("name", "uuid", "title", "description"):
        if draw(st.booleans()):
            parts.append(f"<{tag}>{escape(draw(weird_text))}</{tag}>")
    for tag in ("memory", "currentMemory"):
        if draw(st.booleans()):
            unit = draw(units)
            attr = f" unit={quoteattr(unit)}" if unit else ""
            parts.append(f"<{tag}{attr}>{escape(draw(numbers))}</{tag}>")
    if draw(st.booleans()):
        parts.append(f"<vcpu placement='static'>{escape(draw(numbers))}</vcpu>")
    if draw(st.booleans()):
        parts.append("<devices>")
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(["disk", "interface", "graphics", "serial", "console"]))
            attrs = "".join(f" {k}={quoteattr(draw(weird_text))}"
                            for k in draw(st.lists(st.sampled_from(["type", "device"]),
                                                   unique=True)))
            inner = "".join(f"<{t} {a}={quoteattr(draw(weird_text))}/>" for t, a in draw(
                st.lists(st.sampled_from([("source", "file"), ("source", "network"),
                                          ("source", "pool"), ("target", "dev"),
                                          ("driver", "type"), ("mac", "address"),
                                          ("model", "type"), ("link", "state")]),
                         max_size=4, unique=True)))
            parts.append(f"<{kind}{attrs}>{inner}</{kind}>")
        parts.append("</devices>")
    parts.append("</domain>")
    return "".join(parts)


def _xml_ok(text: str) -> bool:
    try:
        ET.fromstring(text)
        return True
    except ET.ParseError:
        return False


@settings(max_examples=300, deadline=None)
@given(domain_xmls())
@example("<domain><memory unit='KiB'>" + "9" * 5000 + "</memory><vcpu>" + "9" * 5000
         + "</vcpu></domain>")
@example("<domain><memory unit='EiB'>99999999999999999999</memory></domain>")
@example("<domain><memory unit='parsecs'>4</memory><vcpu>two</vcpu></domain>")
@example("<domain><memory>-1</memory><vcpu>-2</vcpu><currentMemory>x</currentMemory></domain>")
@example("<domain><vcpu>²</vcpu><devices><disk><source/></disk><interface/></devices></domain>")
def test_any_domain_xml_gives_facts(xml):
    assume(_xml_ok(xml))  # libvirt only ever hands out well-formed XML
    f = parse_domain_xml(xml)
    for key in ("vcpus", "memory_kib", "current_memory_kib", "serials", "consoles"):
        assert isinstance(f[key], int) and f[key] >= 0, (key, f[key])
    assert isinstance(f["name"], str) and isinstance(f["description"], str)
    assert all(isinstance(i.link_state, str) for i in f["interfaces"])


@pytest.mark.parametrize("xml, memory_kib, vcpus", [
    ("<domain><memory unit='KiB'>2097152</memory><vcpu>2</vcpu></domain>", 2097152, 2),
    ("<domain><memory unit='GiB'>2</memory><vcpu> 2 </vcpu></domain>", 2097152, 2),
    ("<domain><memory unit='G'>2</memory></domain>", 2097152, 1),
    ("<domain><memory unit='GB'>2</memory></domain>", 1953125, 1),
    ("<domain><memory unit='bytes'>1048576</memory></domain>", 1024, 1),
    ("<domain><memory unit='mib'>512</memory></domain>", 524288, 1),
    ("<domain><memory unit='TiB'>1</memory></domain>", 1024**3, 1),
    # malformed: 0, so that a check reports the memory (or vCPU count) as wrong
    ("<domain><memory unit='parsecs'>4</memory><vcpu>two</vcpu></domain>", 0, 0),
    ("<domain><memory>-1</memory><vcpu>-2</vcpu></domain>", 0, 0),
    ("<domain><memory>" + "9" * 5000 + "</memory><vcpu>²</vcpu></domain>", 0, 0),
    ("<domain/>", 0, 1),
])
def test_memory_units_and_malformed_values(xml, memory_kib, vcpus):
    f = parse_domain_xml(xml)
    assert (f["memory_kib"], f["vcpus"]) == (memory_kib, vcpus)


@pytest.mark.parametrize("parse", [parse_domain_xml, parse_network_xml])
@pytest.mark.parametrize("text", ["", "<domain>", "not xml", "<a>\x01</a>", "<?xml?><x/><y/>",
                                  "\ufeff<domain/",
                                  "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"
                                  "<x>&e;</x>"])
def test_xml_that_is_not_well_formed_raises_value_error(parse, text):
    with pytest.raises(ValueError, match="XML"):
        parse(text)


@st.composite
def network_xmls(draw) -> str:
    parts = ["<network>"]
    if draw(st.booleans()):
        parts.append(f"<name>{escape(draw(weird_text))}</name>")
    if draw(st.booleans()):
        mode = draw(st.one_of(st.none(), weird_text))
        parts.append("<forward/>" if mode is None else f"<forward mode={quoteattr(mode)}/>")
    if draw(st.booleans()):
        parts.append(f"<bridge name={quoteattr(draw(weird_text))}/>")
    for _ in range(draw(st.integers(0, 3))):
        attrs = "".join(f" {k}={quoteattr(draw(st.one_of(weird_text, numbers)))}"
                        for k in draw(st.lists(st.sampled_from(
                            ["address", "netmask", "prefix", "family"]), unique=True)))
        dhcp = ""
        if draw(st.booleans()):
            dhcp = "<dhcp>" + "".join(
                f"<range start={quoteattr(draw(weird_text))} end={quoteattr(draw(weird_text))}/>"
                for _ in range(draw(st.integers(0, 2)))) + "</dhcp>"
        parts.append(f"<ip{attrs}>{dhcp}</ip>")
    parts.append("</network>")
    return "".join(parts)


@settings(max_examples=200, deadline=None)
@given(network_xmls())
@example("<network><ip address='10.0.0.1' prefix='²'/><ip prefix='٣'/><ip prefix='-1'/>"
         "<ip prefix='" + "9" * 5000 + "'/></network>")
def test_any_network_xml_gives_facts(xml):
    assume(_xml_ok(xml))
    f = parse_network_xml(xml)
    for ip in f["ips"]:
        assert ip.prefix is None or (isinstance(ip.prefix, int) and ip.prefix >= 0)
    assert f["forward_mode"] is None or isinstance(f["forward_mode"], str)


def test_odd_prefixes_read_as_absent():
    f = parse_network_xml("<network><ip address='10.0.0.1' prefix='²'/><ip prefix=' 24 '/>"
                          "<ip prefix='٣'/></network>")
    assert [ip.prefix for ip in f["ips"]] == [None, 24, None]


# --- hostile names on a real libvirtd ------------------------------------------------------

# What libvirt accepts in a domain or network name (found on the sandbox, libvirt 9):
# quotes, blanks, tabs, shell metacharacters, a leading dash, backslashes, non-ASCII.
HOSTILE_NAMES = ["it's \"quoted\"", "with  space", "tab\there", "$(id)", "`id`",
                 "a;b|c&d>e<f", "-leading-dash", "back\\slash", "é-ünï-日本-🙂", "   ",
                 "\u202eevil-bidi", "<script>alert(1)<\\script>"]
# and what it refuses
REFUSED_NAMES = ["slash/name", "new\nline", "", "x" * 300]


@pytest.mark.integration
def test_libvirt_refuses_these_names(clean_sandbox):
    import libvirt

    c = clean_sandbox.conn()
    for name in REFUSED_NAMES:
        with pytest.raises(libvirt.libvirtError):
            c.defineXML(clean_sandbox.domain_xml(name))


def define_hostile_scene(sb) -> None:
    """Domains and networks with hostile names, and the labs' VM with hostile details."""
    c = sb.conn()
    for i, name in enumerate(HOSTILE_NAMES):
        c.defineXML(sb.domain_xml(name, title=name, description=name * 3,
                                  nics=[{"network": name}]))
        c.networkDefineXML(f"<network><name>{escape(name)}</name>"
                           f"<bridge name='vlhost{i}'/><ip address='10.{i}.0.1' "
                           f"prefix='24'/></network>")
    # the VM the labs look for, pointing at hostile things
    c.defineXML(sb.domain_xml("test-debian-12", vcpus=2, memory_mib=2048,
                              title=HOSTILE_NAMES[0], description=HOSTILE_NAMES[-1],
                              disks=[{"path": "/var/lib/libvirt/images/$(id) x.qcow2"}],
                              nics=[{"network": HOSTILE_NAMES[5]}, {"bridge": "-br0;ls"}]))


UNEXPECTED = ("Could not evaluate", "Vérification impossible", "Traceback")


@pytest.mark.integration
def test_every_lab_checks_hostile_names_and_renders_every_format(clean_sandbox, make_user):
    from checker.engine import check
    from checker.reporters import render

    sb = clean_sandbox
    define_hostile_scene(sb)
    user = make_user(groups=("libvirt",))
    for lab in lab_ids():  # every lab folder, found in labs/
        for lang in ("fr", "en"):
            report = check(lab, connect=sb.uri, user=user, lang=lang)
            for o in report.objectives:
                assert o.status in ("pass", "fail", "skip", "error")
                assert not any(m in o.message for m in UNEXPECTED), (lab, o.id, o.message)
            doc = json.loads(render(report, "json"))
            assert doc["lab"] == report.lab and len(doc["objectives"]) == len(report.objectives)
            ET.fromstring(render(report, "junit"))  # well-formed JUnit XML
            html = render(report, "html")
            assert "<script>alert(1)" not in html and "\u202e" not in html
            text = render(report, "text", color=False)
            assert "\u202e" not in text and "\x1b" not in text


@pytest.mark.integration
def test_the_cli_reports_hostile_names_without_a_traceback(clean_sandbox, tmp_path):
    sb = clean_sandbox
    define_hostile_scene(sb)
    for lab, fmt in (("04", "html"), ("03", "junit"), ("05", "json")):
        out = tmp_path / f"r-{lab}.{fmt}"
        r = run_virtlab("check", lab, "--connect", sb.uri, "--format", fmt, "--output", str(out),
                        "--lang", "en", cwd=tmp_path)
        assert r.returncode in (0, 1), r.stdout + r.stderr
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
        assert out.stat().st_size > 0
    doc = json.loads((tmp_path / "r-05.json").read_text(encoding="utf-8"))
    assert doc["lab"] == "05-networks"
    html = (tmp_path / "r-04.html").read_text(encoding="utf-8")
    assert "<script>alert(1)" not in html
    # the VM's title, shown escaped (lab text is inline Markdown, rendered with markup off)
    assert "it's &quot;quoted&quot;" in html


# --- hostile host strings and inventory values, as testinfra and ssh will read them -------

from checker.hostspec import UnsafeHost, check_inventory_host, parse_ssh_spec  # noqa: E402

# pieces an attacker combines: option dashes (ASCII and Unicode), percent-encodings (single
# and double), URL syntax testinfra reads options from, blanks and controls, shell syntax
hostile_piece = st.sampled_from([
    "-", "--", "%", "%2D", "%252D", "%2d", "%0a", "%00", "%20", "%3D", "%40", "%3A", "@", ":",
    "?", "&", "#", "=", "[", "]", "/", " ", "\n", "\t", "\x00", "\x1b", "\u2010", "\u2212",
    "\uff0d", "o", "oProxyCommand", "ProxyCommand=touch x", "ssh_config=/tmp/x",
    "ssh_identity_file=/x", "a", "pc12", "1", ".", "_", "::1", "127.0.0.1", "22", "2222",
    "$(id)", ";", "'", '"', "\\", "é", "\ud800", "%h", "%C"])
hostile_str = st.lists(hostile_piece, max_size=7).map("".join)


def _assert_plain_destination(backend, user, host, port) -> None:
    from sshd import ssh_argvs

    from checker.probes.shell import REMOTE_SHELL, ShellBackend

    assert isinstance(backend, ShellBackend)  # virtlab's (checker.probes.shell.install)
    backend.shell_usable = True  # a cached host learnt from the last example: tried afresh
    argvs = ssh_argvs(backend)  # what the backend's own run() starts ssh with
    # its remote shell, then (the recorder never says it is ready) the command alone
    assert [a[-1] for a in argvs] == [REMOTE_SHELL, "true"], argvs
    for argv in argvs:
        assert argv[0] == "ssh"
        assert argv[-2] == host and not host.startswith("-")  # the host: one plain word
        # every other word is testinfra's own: "-o" followed by one of its settings
        words = argv[1:-2]
        while words:
            flag, value = words[0], words[1]
            assert flag == "-o", argv
            key = value.split("=", 1)[0]
            assert key in ("User", "Port", "ConnectTimeout", "ControlMaster", "ControlPersist",
                           "BatchMode"), argv
            if key == "User":
                assert value == f"User={user}"
            if key == "Port":
                assert value == f"Port={port}"
            words = words[2:]
    assert (backend.host.user, backend.host.port) == (user, None if port is None else str(port))


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.none(), hostile_str), hostile_str,
       st.one_of(st.none(), hostile_str, st.integers(-1, 70000).map(str)))
@example("u", "%2DoProxyCommand%3Dtouch%20%2Ftmp%2Fx", "22")
@example("u", "-oProxyCommand=touch x", None)
@example("%2DoProxyCommand%3Dx", "h", None)
@example("u", "h", "22 -oProxyCommand=x")
@example("u", "h?ssh_config=/tmp/x&x=", None)
@example("u", "[::1]", "2222")
def test_an_accepted_host_spec_reaches_ssh_as_plain_words(user, host, port):
    """For any spec virtlab accepts, testinfra's own parser (percent-decoding, URL options)
    and its own ssh command give exactly the validated user, host and port, the host as one
    word that is not an option, and no testinfra option from the URL."""
    from testinfra.backend import get_backend, parse_hostspec

    spec = "ssh://" + (f"{user}@" if user is not None else "") + host + \
        (f":{port}" if port is not None else "")
    try:
        dest = parse_ssh_spec(spec)
    except UnsafeHost as e:
        assert str(e).startswith("hôte refusé") and "\nhost refused" in str(e)
        return
    from checker.probes.shell import install

    _, kw = parse_hostspec(spec)
    assert set(kw) == {"connection"}  # nothing but the scheme read out of the URL
    install()  # virtlab's backends, as engine.get_host and the pytest plugin use them
    backend = get_backend(spec, controlpersist=0)
    _assert_plain_destination(backend, dest.user, dest.host, dest.port)


inventory_value = st.one_of(st.none(), hostile_str, st.integers(-2, 70000),
                            st.booleans(), st.lists(hostile_str, max_size=2))


@settings(max_examples=400, deadline=None)
@given(hostile_str, st.fixed_dictionaries({}, optional={
    "ansible_host": inventory_value, "ansible_user": inventory_value,
    "ansible_port": inventory_value, "ansible_connection": st.sampled_from(
        ["ssh", "smart", "local", "paramiko_ssh", "docker", ""]),
    "ansible_ssh_args": st.sampled_from(["", "-oProxyCommand=x"]),
    "ansible_ssh_pass": st.sampled_from(["", "secret"])}))
@example("pc1", {"ansible_host": "%2DoProxyCommand%3Dx", "ansible_user": "a"})
@example("pc1?ssh_config=/tmp/x&x=", {"ansible_host": "127.0.0.1"})
@example("%2DoX", {})
@example("pc1", {"ansible_user": "a:pw", "ansible_host": "h"})
@example("pc1", {"ansible_port": "22 -oProxyCommand=x", "ansible_host": "h"})
@example("pc1", {"ansible_host": "::1", "ansible_user": "a", "ansible_port": 2222})
@example("pc1", {"ansible_connection": ""})
def test_accepted_inventory_values_reach_ssh_as_plain_words(name, hostvars):
    """The same through testinfra's Ansible path (``get_ansible_host`` builds a spec from the
    host variables, then parses it): an accepted inventory host connects to exactly the
    validated destination, with no ssh option of the inventory's."""
    import configparser

    from testinfra.utils.ansible_runner import get_ansible_host

    hv = {k: v for k, v in hostvars.items() if v is not None}
    try:
        dest = check_inventory_host(name, hv, "classe.yml")
    except UnsafeHost as e:
        assert "inventaire classe.yml" in str(e) and "\ninventory classe.yml" in str(e)
        assert "secret" not in str(e)
        return
    from checker.probes.shell import install

    install()  # virtlab's backends, as engine.get_host and the pytest plugin use them
    inventory = {"_meta": {"hostvars": {name: hv}}, "all": {"hosts": [name]}}
    host = get_ansible_host(configparser.ConfigParser(), inventory, name)
    assert host is not None and host.backend.NAME == "ssh"
    assert host.backend.ssh_extra_args == ""
    host.backend.controlpersist = 0
    _assert_plain_destination(host.backend, dest.user, dest.host, dest.port)
