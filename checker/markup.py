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

A check that quotes a value from the learner's machine in its verdict (a VM, pool or user
name, a description, a line of a file) writes it as data, never as Markdown of its own:

- :func:`code`: the value as a code span (a name, a command's word), shown as code, its
  characters verbatim whatever backticks it holds;
- :func:`literal`: the value as running text (a description, a file's line), its Markdown
  characters backslash-escaped so that none of them becomes emphasis or code.

In every medium (:func:`to_html`, :func:`segments`, :func:`plain`) the value then reads as
exactly its characters, with the control characters shown as :func:`checker.safetext.clean`
shows them; a line break in it is shown as ``\\x0a`` (a verdict is one line, and Markdown
would drop the blanks around a line break).

The JSON report keeps the source text (the contract: a consumer renders it as it can).

>>> str(to_html("VM `test-debian-12` introuvable <script>"))
'VM <code>test-debian-12</code> introuvable &lt;script&gt;'
>>> plain("VM `test-debian-12` *introuvable*")
'VM test-debian-12 introuvable'
>>> md_source("en mode NAT (<forward mode='nat'/>), voir `<forward>`")
"en mode NAT (&lt;forward mode='nat'/&gt;), voir `<forward>`"
>>> plain(f"VM {code('we`ird*vm_')} : « {literal('**gras** _x_')} »")
'VM we`ird*vm_ : « **gras** _x_ »'
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from markupsafe import Markup

from checker.safetext import clean

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


#: How a line break in a quoted value is shown: as checker.safetext.clean shows a control
#: character (a verdict is one line; Markdown would also drop the blanks around a break).
LINE_BREAK = "\\x0a"
_BACKTICKS = re.compile(r"`+")


def _visible(s: str) -> str:
    # the value as every report shows it (checker.safetext.clean: controls as \xNN, tabs as
    # blanks), its line breaks shown too, BEFORE the Markdown is written around it: a tab
    # made a blank afterwards would change what a code span strips
    return clean(s.replace("\r\n", "\n").replace("\n", LINE_BREAK))


def code(s: str) -> str:
    """``s`` as a CommonMark code span that shows exactly its characters.

    The fence is one backtick longer than the longest run of backticks in ``s``; one space
    pads each side when ``s`` starts or ends with a backtick, or starts and ends with a blank
    (CommonMark drops one blank each side of such a content). A line break in ``s`` is shown
    as ``\\x0a`` (a code span turns it into a blank), the other control characters as
    :func:`checker.safetext.clean` shows them (``\\x1b``; a tab as a blank). The empty string
    is shown as the code ``""`` (an empty code span does not exist: two backticks are text).

    >>> code("test-debian-12")
    '`test-debian-12`'
    >>> code("we`ird*vm_"), code("`x``"), code(" a ")
    ('``we`ird*vm_``', '``` `x`` ```', '`  a  `')
    >>> code("")
    '`""`'
    >>> plain(code("`x``")), plain(code(" a ")), plain(code("a\\nb"))
    ('`x``', ' a ', 'a\\\\x0ab')
    """
    if not s:
        return '`""`'
    s = _visible(s)
    fence = "`" * (max((len(m) for m in _BACKTICKS.findall(s)), default=0) + 1)
    blank = not s.strip(" ")
    pad = " " if s[0] == "`" or s[-1] == "`" or (s[0] == s[-1] == " " and not blank) else ""
    return f"{fence}{pad}{s}{pad}{fence}"


# What Markdown may read as markup in running text: CommonMark's inline syntax (backslash,
# code, emphasis, links, images, autolinks, raw HTML, entities), GFM's strikethrough and
# tables, and the extensions of Python-Markdown and Jupyter a consumer of the JSON report
# may use (^, ~, {, }, $ for math). Every other ASCII punctuation (- . / : , @ ' " = % + ( )
# ; ? !) means something only before a bracket (escaped) or at the start of a line, where
# literal() escapes what starts a list item, a quote or a heading underline: names such as
# test-debian-12, /var/lib/libvirt or kvm_intel stay readable in the Markdown source (JSON).
_SPECIAL = re.compile(r"[\\`*\[\]<>&|~^{}$#]|_+")
_LINE_START = re.compile(r"[-+>=]|[0-9]{1,9}[.)]")


def _escape(m: re.Match[str]) -> str:
    text, run = m.string, m.group()
    # A run of underscores inside a word (kvm_intel, oracle_vbox_2016.gpg) can neither open
    # nor close emphasis (CommonMark's flanking rules): it stays as it is, readable.
    if run[0] == "_" and 0 < m.start() and m.end() < len(text) \
            and text[m.start() - 1].isalnum() and text[m.end()].isalnum():
        return run
    return "".join("\\" + c for c in run)


def literal(s: str) -> str:
    """``s`` as running Markdown text that shows exactly its characters: each ASCII
    punctuation Markdown could read as markup is backslash-escaped (CommonMark lets any ASCII
    punctuation be), so no emphasis, code, link or tag comes out of it (underscores inside a
    word cannot make emphasis: they stay as they are); at its start, what would begin a list
    item, a quote or a heading underline at a line's start is escaped too (``- ``, ``1.``). A
    line break is shown as ``\\x0a``, the other control characters as
    :func:`checker.safetext.clean` shows them (see :func:`code`).

    >>> literal("**bold** _x_ `code`")
    '\\\\*\\\\*bold\\\\*\\\\* \\\\_x\\\\_ \\\\`code\\\\`'
    >>> plain(literal("**bold** _x_ `code` [x](y) <b> \\\\")), literal("test-debian-12")
    ('**bold** _x_ `code` [x](y) <b> \\\\', 'test-debian-12')
    >>> literal("oracle_vbox_2016.gpg"), literal("_x_")
    ('oracle_vbox_2016.gpg', '\\\\_x\\\\_')
    """
    out = _SPECIAL.sub(_escape, _visible(s))
    start = _LINE_START.match(out)
    if start:  # what makes a list item, a quote or a heading underline at a line's start
        out = out[:start.end() - 1] + "\\" + out[start.end() - 1:]
    return out
