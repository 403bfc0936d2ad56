"""Lab text survives every output: every objective of every lab, in both languages.

Each objective's title and hints (every level), and a verdict carrying inline Markdown and
hostile strings, go through every medium a person reads them in: the site page (the generated
Markdown converted as mkdocs converts it), the notebook (its Markdown cells converted as
JupyterLab does: CommonMark with tables and raw HTML allowed), the terminal report (plain and
in colour), the live watch view (rich), the HTML report, the notebook scoreboard, JUnit, JSON
and the class report. In each, the words are there (``<forward mode='nat'/>`` is not
swallowed as a tag), no Markdown backtick is left where Markdown is rendered or dropped, and
the hostile strings stay inert: no tag, no link, no rich or terminal style of theirs.
"""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from checker.build import lab_notebook, site_page
from checker.catalog import lab_dirs, labs_root, load_lab
from checker.markup import md_source, plain, segments, to_html
from checker.model import Lab, ObjectiveResult, Report
from checker.reporters import render

REPO = Path(__file__).resolve().parent.parent
LABS: tuple[Lab, ...] = tuple(load_lab(p) for p in lab_dirs(labs_root()))
STATUSES = ("fail", "error", "pass", "skip")

SCRIPT = "<script>alert(1)</script>"
LINK = "[x](javascript:alert(1))"
RICH = "[bold red]gras[/bold red]"
# what a learner's machine could hand us, quoted in a verdict
HOSTILE = f"{SCRIPT} {LINK} {RICH} <b>b</b> &amp;"
VERDICT = {"fr": "VM `test-debian-12` introuvable : *{title}*",
           "en": "VM `test-debian-12` not found: *{title}*"}


def lab_report(lab: Lab, lang: str) -> Report:
    """Every objective of ``lab``, each with its title, all its hints, and a verdict quoting
    its title in Markdown and a hostile string."""
    objs = []
    for i, o in enumerate(lab.objectives):
        title = o.title.get(lang)
        objs.append(ObjectiveResult(
            id=o.id, title=title, section=o.section, points=o.points,
            earned=o.points if STATUSES[i % 4] == "pass" else 0, status=STATUSES[i % 4],
            message=f"{VERDICT[lang].format(title=title)} {RICH}\n{HOSTILE}",
            hint="\n".join(h.get(lang) for h in o.hints), evidence={"text": HOSTILE}))
    return Report(lab=lab.id, title=lab.title.get(lang), host="local://",
                  libvirt_uri="qemu:///system", user="alice", lang=lang,
                  started_at="2026-01-05T09:00:00+01:00", duration_s=0.5,
                  checker_version="0.1.0", objectives=tuple(objs))


CASES = [(lab, lang) for lab in LABS for lang in ("fr", "en")]
IDS = [f"{lab.id}-{lang}" for lab, lang in CASES]


def squeeze(s: str) -> str:
    """Without any whitespace (lines wrapped or not, cells padded or not)."""
    return re.sub(r"\s+", "", s)


def lab_texts(r: Report) -> list[str]:
    """What must be readable, as plain text: the lab title, every title, verdict, hint."""
    out = [r.title]
    for o in r.objectives:
        out += [o.title, o.message, o.hint]
    return [plain(t) for t in out if t]


class Page(HTMLParser):
    """The visible text of an HTML document, its tags and attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        if tag in ("style", "title"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def page(html: str) -> Page:
    p = Page()
    p.feed(html)
    p.close()
    return p


def assert_inert_html(p: Page, where: str) -> None:
    """No tag, link or script came from lab text or the learner's strings."""
    assert "script" not in p.tags and "a" not in p.tags and "b" not in p.tags, where
    bad = [a for a in p.attrs if a[0] in ("href", "src") or a[0].startswith("on")]
    assert bad == [], (where, bad)


def assert_all_there(texts: list[str], shown: str, where: str) -> None:
    flat = squeeze(shown)
    for t in texts:
        assert squeeze(t) in flat, f"{where}: {t!r} is not shown"


def assert_no_backticks(shown: str, where: str) -> None:
    assert "`" not in shown, f"{where}: a Markdown backtick is shown: " + shown[
        max(0, shown.find("`") - 60):shown.find("`") + 60]


# --- the reports -------------------------------------------------------------------------

@pytest.mark.parametrize("lab, lang", CASES, ids=IDS)
def test_the_text_report_shows_lab_text_plainly(lab, lang):
    r = lab_report(lab, lang)
    for color in (False, True):
        out = render(r, "text", color=color, width=80)
        shown = re.sub(r"\x1b\[[0-9;]*m", "", out)
        assert "\x1b" not in shown  # only our styles: a learner's string adds none
        assert_all_there(lab_texts(r), shown, f"text color={color}")
        assert_no_backticks(shown, f"text color={color}")
        assert squeeze(RICH) in squeeze(shown)  # rich-like markup is text here
    # in colour, the code spans are styled: `test-debian-12` is bold, its backticks gone
    coloured = render(r, "text", color=True, width=80)
    assert "\x1b[1mtest-debian-12\x1b[0m" in coloured


@pytest.mark.parametrize("lab, lang", CASES, ids=IDS)
def test_the_watch_view_shows_lab_text_through_rich_without_its_markup(lab, lang):
    from rich.console import Console

    from checker.watch import Update, live_view

    r = lab_report(lab, lang)
    console = Console(record=True, width=400, force_terminal=True, color_system="standard",
                      file=io.StringIO())
    console.print(live_view(Update(report=r, reason="start", at=0.0)))
    shown = console.export_text(clear=False)
    first_lines = [plain(o.message).splitlines()[0] for o in r.objectives]
    assert_all_there([plain(r.title), *first_lines], shown, "watch")
    assert_no_backticks(shown, "watch")
    hinted = next(o for o in r.objectives if o.status in ("fail", "error"))
    assert squeeze(plain(hinted.hint)) in squeeze(shown)
    # a learner's rich markup is printed as it is, never interpreted
    assert RICH in shown
    styled = console.export_text(styles=True)
    assert "\x1b[1;36mtest-debian-12" in styled  # a code span, in the code style


@pytest.mark.parametrize("fmt", ["html", "notebook"])
@pytest.mark.parametrize("lab, lang", CASES, ids=IDS)
def test_the_html_report_and_scoreboard_render_the_markdown_and_nothing_else(lab, lang, fmt):
    r = lab_report(lab, lang)
    html = render(r, fmt)
    p = page(html)
    shown = "".join(p.text)
    assert_all_there(lab_texts(r), shown, fmt)
    assert_no_backticks(shown, fmt)
    assert_inert_html(p, fmt)
    assert SCRIPT in shown and LINK in shown and RICH in shown
    # inline code in <code>: every code span of every verdict, title and hint
    spans = sum(1 for o in r.objectives for t in (o.title, o.message, o.hint)
                for _, kind in segments(t) if kind == "code")
    assert html.count("<code>") >= spans
    assert "<code>test-debian-12</code>" in html


@pytest.mark.parametrize("lab, lang", CASES, ids=IDS)
def test_junit_carries_lab_text_as_plain_text(lab, lang):
    r = lab_report(lab, lang)
    root = ET.fromstring(render(r, "junit").encode())
    shown = ET.tostring(root, encoding="unicode", method="text") + " ".join(
        v for el in root.iter() for v in el.attrib.values())
    # JUnit has no lab title, and a passed testcase no message
    texts = [o.title for o in r.objectives]
    texts += [o.message for o in r.objectives if o.status != "pass"]
    texts += [o.hint for o in r.objectives if o.status in ("fail", "error") and o.hint]
    assert_all_there([plain(t) for t in texts], shown, "junit")
    assert_no_backticks(shown, "junit")


@pytest.mark.parametrize("lab, lang", CASES, ids=IDS)
def test_json_keeps_the_source_text(lab, lang):
    r = lab_report(lab, lang)
    doc = json.loads(render(r, "json"))
    for o, d in zip(r.objectives, doc["objectives"]):
        assert (d["title"], d["message"], d["hint"]) == (o.title, o.message, o.hint)
    assert Report.from_json(render(r, "json")) == r


def test_the_class_report_shows_every_message_in_the_page(tmp_path):
    from checker.grade import exports
    from checker.grade.gradebook import Gradebook
    from checker.grade.targets import HostTarget

    gb = Gradebook(tmp_path / "gb.sqlite")
    roster = [HostTarget(host="pc1", spec="ssh://ada@pc1", learner="ada <b>x</b>",
                         email="ada@example.org", ssh_user="ada", ssh_host="pc1")]
    run = gb.start_run([lab.id for lab in LABS], roster, lang="fr")
    reports = [lab_report(lab, "fr") for lab in LABS]
    gb.record(run, "pc1", [{"lab": r.lab, "status": "graded", "reason": "",
                            "report": r.to_dict()} for r in reports])
    gb.finish_run(run, "complete")
    view = gb.class_view(run)
    # the CSV for Moodle: the feedback is plain text, each verdict without its Markdown marks
    csv_text = exports.to_csv(view)
    assert "`" not in csv_text and "VM test-debian-12 introuvable" in csv_text
    html = exports.to_html(view)
    p = page(html)
    shown = "".join(p.text)
    # every verdict is in the page itself, not only in a cell's tooltip
    assert_all_there([plain(o.message) for r in reports for o in r.objectives], shown,
                     "class report")
    assert_no_backticks(shown, "class report")
    assert_inert_html(p, "class report")
    assert "<code>test-debian-12</code>" in html
    assert p.tags.count("h1") == 1
    # the chart has a text alternative and its numbers are in a table
    assert re.search(r'<svg role="img" aria-label="[^"]+"', html)
    assert "Taux de réussite" in shown and "%" in shown


# --- the generated pages -----------------------------------------------------------------

def _mkdocs_markdown(text: str) -> str:
    """``text`` converted as mkdocs converts it: Python-Markdown with the extensions of
    mkdocs.yml."""
    import markdown
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml may use mkdocs' own tags (!ENV, !!python/name): not needed here
    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    conf = yaml.load((REPO / "mkdocs.yml").read_text("utf-8"), Loader=Loader)
    names, configs = [], {}
    for ext in conf["markdown_extensions"]:
        if isinstance(ext, dict):
            (name, cfg), = ext.items()
            names.append(name)
            configs[name] = cfg or {}
        else:
            names.append(ext)
    return markdown.markdown(text, extensions=names, extension_configs=configs)


@pytest.mark.parametrize("lab, lang", CASES, ids=IDS)
def test_the_site_page_shows_every_title_as_text(lab, lang):
    html = _mkdocs_markdown(site_page(lab, lang))
    p = page(html)
    shown = "".join(p.text)
    texts = [plain(lab.title.get(lang))] + [plain(o.title.get(lang)) for o in lab.objectives]
    assert_all_there(texts, shown, "site page")
    # the objective table: a row per objective, the title in its cell, nothing swallowed
    for o in lab.objectives:
        cell = next(c for c in re.findall(r"<td>(.*?)</td>", html, re.DOTALL)
                    if f"<code>{o.id}</code>" in c)
        assert squeeze(plain(o.title.get(lang))) in squeeze("".join(page(cell).text)), o.id


@pytest.mark.parametrize("lab", LABS, ids=[lab.id for lab in LABS])
def test_the_notebook_shows_every_title_as_text(lab):
    import nbformat
    from markdown_it import MarkdownIt

    # JupyterLab renders Markdown cells as GFM with raw HTML allowed (then sanitised): a
    # title's <forward mode='nat'/> written raw would be swallowed as a tag
    md = MarkdownIt("commonmark").enable("table")
    nb = nbformat.reads(lab_notebook(lab), as_version=4)
    shown = "".join("".join(page(md.render(c.source)).text)
                    for c in nb.cells if c.cell_type == "markdown")
    texts = [plain(o.title.get(lang)) for o in lab.objectives for lang in ("fr", "en")]
    assert_all_there(texts + [plain(lab.title.fr), plain(lab.title.en)], shown, "notebook")


def test_markdown_source_keeps_code_spans_and_shows_tags():
    assert md_source("mode <forward mode='nat'/> et `<forward>`") == \
        "mode &lt;forward mode='nat'/&gt; et `<forward>`"
    assert md_source(LINK) == "\\[x\\](javascript:alert(1))"
    assert str(to_html(LINK)) == LINK
    assert str(to_html("`a` *b* <i>")) == "<code>a</code> <em>b</em> &lt;i&gt;"
    assert plain("a\x00b") == "a\\x00b"  # a NUL is shown, not made U+FFFD
