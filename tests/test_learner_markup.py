"""A value from the learner's machine quoted in a verdict reads as exactly its characters.

Verdicts are inline Markdown (:mod:`checker.markup`); a VM, pool or user name, a description
or a line of a file is put into one with :func:`checker.markup.code` (as code) or
:func:`checker.markup.literal` (as text). Here:

- the two helpers, on examples and as properties (hypothesis) through the project's parser:
  the value comes back from :func:`plain`, :func:`segments` and :func:`to_html` as it was,
  alone or between other Markdown, and through a full CommonMark parser too (what a
  consumer of the JSON report may use);
- real verdicts of real lab checks on the sandboxed libvirtd (labs 03, 04 and 07) about
  objects with hostile names, rendered in every format of ``RENDERERS``, the live watch
  view and the class report's CSV: each name is there, character for character;
- a verdict quoting line breaks and control characters, shown as the project shows them.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import escape

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from checker.markup import code, literal, plain, segments, to_html
from checker.model import ObjectiveResult, Report
from checker.reporters import RENDERERS, render
from checker.safetext import clean

# --- the helpers ----------------------------------------------------------------------------

# Text as a report shows it unchanged: no control character, line or paragraph separator,
# bidi control, tab or lone surrogate (those are shown as \xNN: tested further down).
shown_as_is = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
                      max_size=40).filter(lambda s: clean(s) == s)
# and what Markdown would make something of
markdownish = st.lists(st.sampled_from(
    ["`", "``", "```", "*", "**", "_", "__", "\\", "[x](y)", "![i](j)", "<b>", "</b>", "&amp;",
     "&#42;", " ", "  ", "a", "é", "日本", "#", "- ", "1. ", "> ", "~~", "|", "$x$", "<http://x>",
     "{", "}", "^", "!", ":"]), max_size=8).map("".join)
values = st.one_of(shown_as_is, markdownish)

PROPS = settings(max_examples=300, deadline=None)


def html_text(fragment: str) -> str:
    """The text of an HTML fragment whose every ``<`` that is text is escaped."""
    return html.unescape(re.sub(r"<[^>]*>", "", fragment))


def test_code_examples():
    assert code("test-debian-12") == "`test-debian-12`"
    assert code("we`ird*vm_") == "``we`ird*vm_``"
    assert code("a``b```c") == "````a``b```c````"
    assert code("`x") == "`` `x ``" and code("x`") == "`` x` ``"
    assert code(" a ") == "`  a  `" and code("  ") == "`  `" and code(" a") == "` a`"
    assert code("") == '`""`' and plain(code("")) == '""'
    assert plain(code("a\nb")) == "a\\x0ab"  # a code span cannot hold a line break
    assert plain(code("\x1b[31m")) == "\\x1b[31m"
    assert str(to_html(code("<b>"))) == "<code>&lt;b&gt;</code>"


def test_literal_examples():
    assert literal("test-debian-12") == "test-debian-12"  # names stay readable in the JSON
    assert literal("kvm_intel") == "kvm_intel"  # an underscore inside a word is no emphasis
    assert literal("**bold** _x_ `code`") == "\\*\\*bold\\*\\* \\_x\\_ \\`code\\`"
    assert literal("- item") == "\\- item" and literal("# title") == "\\# title"
    assert plain(literal("[x](y) <b> &amp; \\")) == "[x](y) <b> &amp; \\"
    assert str(to_html(literal("<b>&amp;</b>"))) == "&lt;b&gt;&amp;amp;&lt;/b&gt;"
    assert plain(literal("a\nb")) == "a\\x0ab" and plain(literal("a\tb")) == "a b"


@PROPS
@given(values.filter(bool))
@example("``a``")
@example(" ` ")
@example("  ")
@example(" a ")
@example("\\`")
def test_a_code_span_shows_its_value_verbatim(s):
    q = code(s)
    assert segments(q) == [(s, "code")]
    assert plain(q) == s
    out = str(to_html(q))
    assert out.startswith("<code>") and out.count("<code>") == 1 and html_text(out) == s


@PROPS
@given(values)
@example("*a*")
@example("_a_")
@example("a_b_")
@example("\\*")
@example("[x](javascript:y)")
def test_literal_text_shows_its_value_verbatim(s):
    q = literal(s)
    assert plain(q) == s
    assert all(kind == "text" for _, kind in segments(q))
    out = str(to_html(q))
    assert "<" not in out.replace("&lt;", "") and html_text(out) == s


@PROPS
@given(values.filter(bool), values)
def test_quoted_values_leave_the_markdown_around_them_alone(name, text):
    msg = f"*VM* {code(name)} : `virsh list` « {literal(text)} » **fin**"
    assert plain(msg) == f"VM {name} : virsh list « {text} » fin"
    spans = [(p, kind) for p, kind in segments(msg) if kind != "text"]
    assert spans == [("VM", "em"), (name, "code"), ("virsh list", "code"), ("fin", "strong")]


@PROPS
@given(values)
def test_literal_text_stays_text_for_a_full_commonmark_reader(s):
    # the JSON report carries the Markdown source: a consumer may render it as CommonMark
    # with raw HTML, links, images, autolinks and entities on
    from markdown_it import MarkdownIt

    out = MarkdownIt("commonmark").renderInline(f"VM {literal(s)} ici")
    assert html_text(out) == f"VM {s} ici"
    assert not re.search(r"<(?!/?(code|em|strong)>)", out.replace("&lt;", "")), out


@PROPS
@given(values.filter(lambda s: s == s.strip()))
@example("- item")
@example("12. x")
@example("> q")
@example("# h")
@example("---")
@example("+1")
def test_literal_text_starting_a_message_starts_no_block(s):
    # a verdict may begin with the value ("alice n'est pas membre…"): at a line's start, no
    # list, quote, heading, rule or fence comes out of it for a CommonMark reader either
    from markdown_it import MarkdownIt

    out = MarkdownIt("commonmark").render(literal(s))
    assert out == (f"<p>{out[3:-5]}</p>\n" if s else ""), out
    assert html_text(out).strip("\n") == s


# any text at all (surrogates excepted: no report can carry them): as every report shows it
anything = st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
                     st.lists(st.sampled_from(["\n", "\r\n", "\r", "\t", "\x1b", "\x00", "\x07",
                                               "\u202e", "\u2028", "`", "*", "_", " ", "a"]),
                              max_size=8).map("".join))


def visible(s: str) -> str:
    """``s`` as a report shows it: controls as ``\\xNN``, a line break as ``\\x0a``."""
    return clean(s.replace("\r\n", "\n").replace("\n", "\\x0a"))


@PROPS
@given(anything)
@example("a\nb")
@example("\x1b]52;c;eA==\x07")
@example("\t`\t")
@example("\\\x1b")
def test_control_characters_are_shown_as_the_project_shows_them(s):
    # the engine and every renderer clean a message once more: nothing changes then
    for q in ([literal(s), code(s)] if s else [literal(s)]):
        assert clean(q) == q
        assert plain(q) == visible(s), (s, q)
        assert html_text(str(to_html(q))) == visible(s)


# --- real verdicts, every output ------------------------------------------------------------

SGR = re.compile(r"\x1b\[[0-9;]*m")
MSG_DIV = re.compile(r'<div class="vl-msg">(.*?)</div>', re.DOTALL)


def class_csv(reports: list[Report], tmp_path: Any) -> str:
    """The class report's CSV (Moodle feedback) for one learner graded on ``reports``."""
    from checker.grade import exports
    from checker.grade.gradebook import Gradebook
    from checker.grade.targets import HostTarget

    gb = Gradebook(tmp_path / f"gb-{len(list(tmp_path.iterdir()))}.sqlite")
    roster = [HostTarget(host="pc1", spec="ssh://ada@pc1", learner="ada", email="ada@example.org",
                         ssh_user="ada", ssh_host="pc1")]
    run = gb.start_run([r.lab for r in reports], roster, lang=reports[0].lang)
    gb.record(run, "pc1", [{"lab": r.lab, "status": "graded", "reason": "",
                            "report": r.to_dict()} for r in reports])
    gb.finish_run(run, "complete")
    return exports.to_csv(gb.class_view(run))


def watch_text(report: Report) -> str:
    from rich.console import Console

    from checker.watch import Update, live_view

    console = Console(record=True, width=4000, force_terminal=True, color_system="standard",
                      file=io.StringIO())
    console.print(live_view(Update(report=report, reason="start", at=0.0)))
    return console.export_text(clear=False)


def assert_shown_everywhere(report: Report, oid: str, values: list[str], tmp_path: Any) -> None:
    """Each of ``values`` (as a report shows it) is in the verdict of ``oid`` in every output:
    the Markdown source's text (JSON), the terminal (plain and in colour), the HTML report
    and the notebook scoreboard (the text of the verdict's element), JUnit (the verdict's
    attribute, for a failure, an error or a skip), the live watch view and the class CSV."""
    i = next(n for n, o in enumerate(report.objectives) if o.id == oid)
    o = report.objectives[i]
    seen: dict[str, str] = {}
    assert set(RENDERERS) == {"text", "json", "junit", "html", "notebook"}, \
        "a new format: show learner values in it here"
    doc = json.loads(render(report, "json"))
    seen["json"] = plain(doc["objectives"][i]["message"])
    for color in (False, True):
        seen[f"text color={color}"] = SGR.sub("", render(report, "text", color=color,
                                                          width=4000))
    for fmt in ("html", "notebook"):
        divs = MSG_DIV.findall(render(report, fmt))
        assert len(divs) == len(report.objectives), fmt
        seen[fmt] = html_text(divs[i])
    if o.status != "pass":
        root = ET.fromstring(render(report, "junit").encode())
        case = next(c for c in root.iter("testcase") if c.get("name") == oid)
        seen["junit"] = case[0].get("message") or ""
    seen["watch"] = watch_text(report)
    if o.status in ("fail", "error"):
        rows = list(csv.reader(io.StringIO(class_csv([report], tmp_path))))
        seen["csv"] = " ".join(cell for row in rows[1:] for cell in row)
    for where, shown in seen.items():
        for v in values:
            assert v in shown, f"{oid}, {where}: {v!r} is not shown in {shown!r}"


# Names libvirt takes (it refuses "/", line breaks and control characters: see
# tests/test_hostile.py), each of which Markdown would make something of.
HOSTILE = ["we`ird*vm_", "a``b```c", "**gras** _x_", "[x](y)", "<b>b<\\b>", "back\\slash",
           " lead", "trail ", "é-日本-🙂"]
POOL_NAME = "po`ol *x* _y_"
TITLE = "**gras** _x_ `code` <i>t</i> \\o/"


@pytest.mark.integration
def test_hostile_names_survive_in_real_verdicts_of_every_output(clean_sandbox, make_user,
                                                               tmp_path):
    from checker.engine import check

    sb = clean_sandbox
    c = sb.conn()
    for name in HOSTILE:  # each on lab 07's network: each is a candidate for its missing VMs
        c.defineXML(sb.domain_xml(name, nics=[{"network": "lab07-net"}]))
    # a pool on the folder of pool "default", under another name
    c.storagePoolDefineXML(f"<pool type='dir'><name>{escape(POOL_NAME)}</name><target>"
                           "<path>/var/lib/libvirt/images</path></target></pool>", 0)
    user = make_user(groups=("libvirt",))
    for lang in ("fr", "en"):
        r03 = check("03", connect=sb.uri, user=user, lang=lang)
        r04 = check("04", connect=sb.uri, user=user, lang=lang)
        r07 = check("07", connect=sb.uri, user=user, lang=lang)
        status = {(r.lab[:2], o.id): o.status for r in (r03, r04, r07) for o in r.objectives}
        assert status[("03", "default-pool-active")] == "fail"
        assert status[("04", "vm-defined")] == "fail"
        assert status[("07", "vm-running")] == "fail"
        assert_shown_everywhere(r03, "default-pool-active", [POOL_NAME], tmp_path)
        assert_shown_everywhere(r04, "vm-defined", HOSTILE, tmp_path)
        assert_shown_everywhere(r07, "vm-running", HOSTILE, tmp_path)
    # the lab's VM, its title quoted in the verdict
    c.defineXML(sb.domain_xml("test-debian-12", title=TITLE))
    for lang in ("fr", "en"):
        r04 = check("04", connect=sb.uri, user=user, lang=lang)
        o = next(o for o in r04.objectives if o.id == "vm-description")
        assert o.status == "pass", o.message
        assert_shown_everywhere(r04, "vm-description", [TITLE], tmp_path)


@pytest.mark.parametrize("status", ["fail", "error", "skip", "pass"])
def test_line_breaks_and_control_characters_are_shown_in_every_output(status, tmp_path):
    values = ["line 1\nline 2", "red \x1b[31mtext\x1b[0m", "tab\there", "\u202eevil",
              "bell\x07 `x` *y*"]
    msg = " ; ".join(f"{code(v)} « {literal(v)} »" for v in values)
    o = ObjectiveResult(id="vm-description", title="Titre", section="s", points=1,
                        earned=int(status == "pass"), status=status, message=clean(msg),
                        hint="", evidence={})
    report = Report(lab="04-create-vm", title="Créer une VM", host="local://",
                    libvirt_uri="qemu:///system", user="ada", lang="fr",
                    started_at="2026-12-01T09:00:00+00:00", duration_s=0.1,
                    checker_version="0.1.0", objectives=(o,))
    assert_shown_everywhere(report, "vm-description", [visible(v) for v in values], tmp_path)
    assert "\x1b[31mtext" not in render(report, "text", color=True)  # the learner's own
