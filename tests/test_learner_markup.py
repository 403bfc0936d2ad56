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
from html.parser import HTMLParser
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
