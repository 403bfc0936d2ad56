"""Every reporter renders one fixed Report, hostile strings included, like its golden file.

Regenerate the golden files after a deliberate change of a format, then review the diff:

    VIRTLAB_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/test_reporters.py
"""

from __future__ import annotations

import json
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from consumers import check_json, xmllint_junit

from checker.markup import plain
from checker.model import ObjectiveResult, Report
from checker.reporters import FORMATS, RENDERERS, render

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("VIRTLAB_REGEN_GOLDEN") == "1"


@pytest.fixture(autouse=True)
def _paris_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Times shown to people are in the local time zone: the golden files are in Paris's."""
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()

SCRIPT = "<script>alert('x')</script>"
FORMULA = "=cmd|' /C calc'!A0"
ESC = "\x1b[31m"  # a terminal escape sequence smuggled into a VM description


def hostile_report(lang: str = "fr") -> Report:
    """One report with every status and strings a learner's machine could hand us."""
    objectives = (
        ObjectiveResult(
            id="cpu-virt-flags", title="Le processeur expose VT-x (vmx) ou AMD-V (svm)",
            section="8.1.1 Vérification du support matériel", points=3, earned=3,
            status="pass", message="Le processeur expose vmx : Intel VT-x est disponible.",
            hint="", evidence={"vendor": "GenuineIntel", "virt_flag": "vmx", "cpus": 4},
            duration_s=0.0123),
        ObjectiveResult(
            id="vm-description", title=f'La VM « test-debian-12 » a une description "{SCRIPT}"',
            section="8.1.4 Tags et descriptions", points=2, earned=0, status="fail",
            message=f"Description trouvée : $(id) `uname -a` {FORMULA}\nligne 2 : 日本語 ü "
                    f"{ESC}rouge\x00 & <b>gras</b>",
            hint="Ajoutez-en une : virsh desc test-debian-12 --config --new-desc 'Serveur de test'",
            evidence={"description": f"</pre>{SCRIPT}", "formula": FORMULA,
                      "lines": ["a\"b", "c'd", "e\nf"], "nested": {"<k>": "&amp;"},
                      "none": None, "ok": True}, hints_shown=1, duration_s=0.5),
        ObjectiveResult(
            id="libvirtd-active", title="Le démon libvirt répond", section="8.1.1 Installation",
            points=2, earned=0, status="error",
            message="Le démon libvirt ne répond pas sur qemu:///system (Failed to connect "
                    "socket to '/var/run/libvirt/libvirt-sock': No such file or directory).",
            hint="sudo systemctl start libvirtd", evidence={}, hints_shown=1, duration_s=0.25),
        ObjectiveResult(
            id="libvirtd-enabled", title="Le service démarre au boot", section="8.1.1 Installation",
            points=1, earned=0, status="skip",
            message="systemd n'est pas le système d'init ici : sans objet.", hint="", evidence={}),
    )
    return Report(lab="04-create-vm", title="Créer « test-debian-12 » & la gérer",
                  host='ssh://o\'brien@pc-12"; rm -rf /', libvirt_uri="qemu+ssh://pc-12/system",
                  user="o'brien <admin>", lang=lang, started_at="2025-03-04T10:11:12+01:00",
                  duration_s=1.234, checker_version="0.1.0", objectives=objectives)


def golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="")
    if not path.exists():
        pytest.fail(f"{path} missing: run with VIRTLAB_REGEN_GOLDEN=1 and review it")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, (f"{name} differs from its golden file "
                                "(VIRTLAB_REGEN_GOLDEN=1 regenerates)")


# --- text ---------------------------------------------------------------------------------

@pytest.mark.parametrize("lang, width", [("fr", 80), ("en", 100)])
def test_text_matches_golden(lang, width):
    out = render(hostile_report(lang), "text", color=False, width=width)
    golden(f"report.{lang}.{width}.txt", out)


@pytest.mark.parametrize("width", [60, 80, 100])
def test_the_run_again_command_works_as_printed(width):
    """The closing command, pasted into a shell, checks the same lab on the same host for the
    same learner (hostile host and learner names included)."""
    import shlex

    r = hostile_report("en")
    out = render(r, "text", color=False, width=width)
    tail = out[out.index("virtlab check"):]
    argv = shlex.split(tail.replace("\\\n", " "))
    assert argv == ["virtlab", "check", r.lab, "--host", r.host, "--user", r.user]
    from checker.cli import build_parser

    args = build_parser().parse_args(argv[1:])
    assert (args.lab, args.host, args.user) == (r.lab, r.host, r.user)
    local = render(Report(**{**r.__dict__, "host": "local://"}), "text", color=False,
                   width=width)
    assert local.rstrip().endswith("virtlab check 04-create-vm")


@pytest.mark.parametrize("width", [60, 80, 100])
def test_text_fits_the_width_and_carries_no_escape_sequence(width):
    out = render(hostile_report(), "text", color=False, width=width)
    assert "\x1b" not in out and "\x00" not in out
    assert max(len(line) for line in out.splitlines()) <= width
    assert "\\x1b[31mrouge" in out  # shown, not obeyed


def test_text_in_colour_colours_statuses_but_not_the_data():
    out = render(hostile_report(), "text", color=True, width=80)
    assert "\x1b[31m✘ échec" in out  # our own colour for a failure
    assert f"{ESC}rouge" not in out  # the data's escape sequence is neutralised
    assert "\\x1b[31mrouge" in out


def test_text_says_what_happened_and_what_to_do():
    out = render(hostile_report("en"), "text", color=False, width=100)
    assert "Score: 3/7" in out  # 3+2+2: the skipped one counts in neither
    assert "→ Hint: Ajoutez-en une" in out
    assert "run again:\nvirtlab check 04-create-vm --host " in out
    fr = render(hostile_report("fr"), "text", color=False, width=80)
    assert "Score : 3/7" in fr and "→ Indice : " in fr


# --- json ---------------------------------------------------------------------------------

def test_json_matches_golden_and_is_the_report():
    r = hostile_report()
    out = render(r, "json")
    golden("report.json", out)
    data = check_json(out, "report")
    assert data == json.loads(json.dumps(r.to_dict()))
    assert Report.from_dict(data) == r


# --- junit --------------------------------------------------------------------------------

def test_junit_matches_golden():
    golden("report.junit.xml", render(hostile_report(), "junit"))


def test_junit_is_valid_for_jenkins():
    """Jenkins' xUnit plugin skips a file its junit-10.xsd refuses: xmllint must accept it."""
    xmllint_junit(render(hostile_report(), "junit"))
    xmllint_junit(render(hostile_report("en"), "junit"))


def test_junit_times_are_each_objectives_own():
    root = ET.fromstring(render(hostile_report(), "junit").encode("utf-8"))
    times = {c.get("name"): c.get("time") for c in root.iter("testcase")}
    assert times == {"cpu-virt-flags": "0.012", "vm-description": "0.500",
                     "libvirtd-active": "0.250", "libvirtd-enabled": "0.000"}
    assert root.get("time") == root.find("testsuite").get("time") == "1.234"


def test_a_real_check_measures_each_objective_and_renders_valid_junit():
    from checker.engine import check

    r = check("01", "local://", lang="en")
    assert all(o.duration_s > 0 for o in r.objectives)
    assert sum(o.duration_s for o in r.objectives) <= r.duration_s
    out = render(r, "junit")
    xmllint_junit(out)
    times = [float(c.get("time")) for c in ET.fromstring(out.encode()).iter("testcase")]
    assert times == [round(o.duration_s, 3) for o in r.objectives] and any(times)


def test_junit_parses_and_has_one_testcase_per_objective():
    r = hostile_report()
    root = ET.fromstring(render(r, "junit").encode("utf-8"))
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [o.id for o in r.objectives]
    assert suite.get("tests") == "4" and suite.get("failures") == "1"
    assert suite.get("errors") == "1" and suite.get("skipped") == "1"
    by_id = {c.get("name"): c for c in cases}
    assert by_id["cpu-virt-flags"].find("failure") is None
    failure = by_id["vm-description"].find("failure")
    assert failure is not None
    # Attributes survive with their newline and quotes; the control characters XML cannot
    # carry are shown as \xNN.
    # (as plain text: the inline Markdown marks dropped, a CI dashboard renders none)
    assert failure.get("message") == (plain(r.objectives[1].message)
                                      .replace("\x1b", "\\x1b").replace("\x00", "\\x00"))
    assert by_id["libvirtd-active"].find("error") is not None
    assert by_id["libvirtd-enabled"].find("skipped") is not None
    evidence = json.loads(by_id["vm-description"].findtext("system-out"))
    assert evidence["description"] == f"</pre>{SCRIPT}"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert (props["score"], props["max_score"], props["user"]) == ("3", "7", "o'brien <admin>")
    # each objective's details, as properties of the suite (junit-10.xsd has none per case)
    assert (props["vm-description.points"], props["vm-description.status"]) == ("2", "fail")
    assert props["vm-description.section"] == "8.1.4 Tags et descriptions"
    assert all(c.find("properties") is None for c in cases)
    assert root.get("skipped") is None


# --- html ---------------------------------------------------------------------------------

class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data):
        self.text.append(data)


@pytest.mark.parametrize("fmt, name", [("html", "report.html"), ("notebook", "scoreboard.html")])
def test_html_matches_golden(fmt, name):
    golden(name, render(hostile_report(), fmt))


@pytest.mark.parametrize("fmt", ["html", "notebook"])
def test_html_escapes_every_string_from_the_report(fmt):
    out = render(hostile_report(), fmt)
    assert "<script" not in out.lower()
    assert "<b>gras</b>" not in out
    assert "&lt;script&gt;" in out or "\\u003cscript\\u003e" in out
    p = _Text()
    p.feed(out)
    # The hostile strings reach the reader as text, intact: escaped, not stripped.
    text = "".join(p.text)
    assert SCRIPT in text and "<b>gras</b>" in text and FORMULA in text
    assert 'o\'brien@pc-12"; rm -rf /' in text
    # (em: the inline Markdown of lab text; a learner's string never adds a tag)
    assert set(p.tags) <= {"html", "head", "meta", "title", "style", "body", "main", "div",
                           "h1", "h2", "p", "code", "em", "table", "thead", "tbody", "tr", "th",
                           "td", "strong", "br", "small", "details", "summary", "pre"}


@pytest.mark.parametrize("fmt", ["html", "notebook"])
def test_html_is_self_contained(fmt):
    out = render(hostile_report(), fmt)
    p = _Text()
    p.feed(out)
    assert not [a for a in p.attrs if a[0] in ("src", "href", "action", "srcset")]
    assert "url(" not in out and "@import" not in out
    assert not re.search(r"https?://", out)


def test_html_page_is_in_the_reports_language():
    assert '<html lang="en">' in render(hostile_report("en"), "html")
    assert "Indice : " in render(hostile_report("fr"), "html")
    assert "Hint: " in render(hostile_report("en"), "html")


def test_the_notebook_scoreboard_is_the_reports_html_repr():
    r = hostile_report()
    assert r._repr_html_() == render(r, "notebook")


def test_unknown_format_lists_the_valid_ones():
    with pytest.raises(ValueError) as e:
        render(hostile_report(), "csv")
    for fmt in FORMATS:
        assert fmt in str(e.value)


@pytest.mark.parametrize("fmt", list(RENDERERS))  # every registered format, a new one too
def test_no_control_character_reaches_a_file(fmt):
    out = render(hostile_report(), fmt, **({"color": False} if fmt == "text" else {}))
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", out)
