"""Lab text as text in every medium: the inline Markdown of titles, hints and messages.

Objective titles, hints (``lab.toml``) and check verdicts may use a little inline Markdown:
a command or a name between backticks (`` `virsh net-list --all` ``), emphasis. Nothing else
is Markdown in them, and nothing in them is ever markup: ``<forward mode='nat'/>`` is text
(XML the learner writes), and a string from the learner's machine quoted in a message (a VM
name, a file's content) must never become a link, a tag or a terminal style.

One parser (markdown-it-py, which rich depends on), with every rule off but code spans,
emphasis and backslash escapes, and raw HTML off, gives each medium its form:

- :func:`to_html`: HTML for the HTML report, the notebook scoreboard and the class report
  (code spans in ``<code>``, emphasis in ``<em>``/``<strong>``, every other character escaped);
- :func:`plain`: the text without its Markdown marks, for media that render nothing (JUnit,
  a terminal without colour);
- :func:`segments`: the text in pieces tagged ``code``/``em``/``strong``, for a terminal that
  styles them (ANSI or rich, never through rich's own markup);
- :func:`md_source`: Markdown source to write into a generated Markdown page or notebook cell
  (the site, the notebooks): the code spans and emphasis kept, ``<``, ``>`` and ``&`` outside
  code spans written as entities so that the page shows them instead of swallowing a tag.

The JSON report keeps the source text (the contract: a consumer renders it as it can).

>>> str(to_html("VM `test-debian-12` introuvable <script>"))
'VM <code>test-debian-12</code> introuvable &lt;script&gt;'
>>> plain("VM `test-debian-12` *introuvable*")
'VM test-debian-12 introuvable'
>>> md_source("en mode NAT (<forward mode='nat'/>), voir `<forward>`")
"en mode NAT (&lt;forward mode='nat'/&gt;), voir `<forward>`"
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from markupsafe import Markup

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

Kind = Literal["text", "code", "em", "strong"]


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    # "zero": every rule off, raw HTML off, no links, no typographer; then only what lab text
    # uses. Without the "html_inline", "autolink", "link", "image" and "entity" rules, a
    # learner's <script>, [x](javascript:…) or &lt; stays the characters it is.
    return MarkdownIt("zero").enable(["backticks", "emphasis", "escape", "newline"])


def _nul(text: str) -> str:
    # markdown-it turns NUL into U+FFFD: show it as checker.safetext.clean does instead
    return text.replace("\x00", "\\x00")


def _tokens(text: str) -> list[Token]:
    tokens = _parser().parseInline(_nul(text))
    return list(tokens[0].children or []) if tokens else []


def to_html(text: str) -> Markup:
    """``text`` (inline Markdown) as safe HTML: code spans, emphasis, line breaks; every other
    character escaped."""
    if not text:
        return Markup("")
    out = _parser().renderInline(_nul(text)).rstrip("\n")
    # softbreaks come out as "\n" (shown by CSS white-space: pre-line where it matters)
    return Markup(out)


def segments(text: str) -> list[tuple[str, Kind]]:
    """``text`` in pieces: ``(piece, kind)``, kind ``code``, ``em``, ``strong`` or ``text``;
    the Markdown marks dropped."""
    out: list[tuple[str, Kind]] = []
    em = strong = 0
    for tok in _tokens(text):
        if tok.type == "em_open":
            em += 1
        elif tok.type == "em_close":
            em -= 1
        elif tok.type == "strong_open":
            strong += 1
        elif tok.type == "strong_close":
            strong -= 1
        elif tok.type == "code_inline":
            out.append((tok.content, "code"))
        elif tok.type in ("softbreak", "hardbreak"):
            out.append(("\n", "text"))
        else:
            kind: Kind = "strong" if strong else "em" if em else "text"
            if out and out[-1][1] == kind and kind != "code":
                out[-1] = (out[-1][0] + tok.content, kind)
            else:
                out.append((tok.content, kind))
    return out


def plain(text: str) -> str:
    """``text`` without its Markdown marks (backticks, asterisks, backslash escapes)."""
    return "".join(piece for piece, _ in segments(text)) if text else ""


# A code span: a run of backticks, its content, the same run (CommonMark's rule).
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)


def _md_text(text: str) -> str:
    # tags and entities as text; no link either (a bracket escaped: "\[x](javascript:…)")
    return html.escape(text, quote=False).replace("[", "\\[").replace("]", "\\]")


def md_source(text: str) -> str:
    """``text`` as Markdown source for a generated page: code spans as they are (Markdown
    shows their content literally), ``&``, ``<`` and ``>`` elsewhere as entities, brackets
    escaped (no link), emphasis kept."""
    out: list[str] = []
    pos = 0
    for m in _CODE_SPAN.finditer(text):
        out.append(_md_text(text[pos:m.start()]))
        out.append(m.group())
        pos = m.end()
    out.append(_md_text(text[pos:]))
    return "".join(out)
