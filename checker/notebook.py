"""Lab instructions (mkdocs-material Markdown) turned into Jupyter notebooks.

The instruction format (``labs/NN-slug/instructions.{fr,en}.md``) is plain Markdown with a
few mkdocs-material extensions; see ``site/reference.md`` ("Le format des instructions"):

- first line ``# Title``; sections ``## ...`` (each becomes one notebook cell or more);
- admonitions ``!!! note "Debian 12"`` with a 4-space indented body (a blockquote in Jupyter);
- content tabs ``=== "virt-manager"`` with a 4-space indented body (a bold label in Jupyter);
- fenced ```` ```bash ```` blocks are terminal commands: shown, never run by the kernel;
- a fenced ```` ```python notebook ```` block at the top level of a section becomes a runnable
  code cell in the notebook (on the site it is an ordinary Python block).

>>> to_jupyter_md('!!! note "Debian 12"\\n    Use `qemu-system-x86`.')
'> **Debian 12**\\n>\\n> Use `qemu-system-x86`.'
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from checker.i18n import Text, message

FENCE_RE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
NOTEBOOK_INFO_RE = re.compile(r"^\s*python\s+notebook\s*$")
ADMONITION_RE = re.compile(r'^(?:!!!|\?\?\?\+?)\s+(?P<kind>[\w-]+)(?:\s+"(?P<title>[^"]*)")?\s*$')
TAB_RE = re.compile(r'^===\+?\s+"(?P<label>[^"]*)"\s*$')
INDENT = "    "


class InstructionsError(ValueError):
    """The instructions do not follow the format; the message says where, French then
    English (the course author reads it from ``virtlab build``)."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.both())
        self.text = text


NO_TITLE = message("notebook.no-title",
                   fr="{where} : la première ligne doit être le titre, « # Titre »",
                   en="{where}: the first line must be the title, '# Title'")
NOT_CLOSED = message("notebook.not-closed", fr="un bloc ```python notebook n'est pas fermé",
                     en="a ```python notebook block is not closed")


@dataclass(frozen=True)
class Chunk:
    kind: Literal["markdown", "code"]
    source: str


def split_title(text: str, where: str) -> tuple[str, str]:
    """``# Title`` on the first line, then the body."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or not lines[0].startswith("# ") or not lines[0][2:].strip():
        raise InstructionsError(NO_TITLE.format(where=where))
    return lines[0][2:].strip(), "\n".join(lines[1:]).strip("\n")


def _fence_close(line: str, fence: str) -> bool:
    s = line.strip()
    return s.startswith(fence[0] * len(fence)) and set(s) == {fence[0]}


def iter_lines(md: str) -> Iterator[tuple[str, bool]]:
    """Yield (line, in_fence) for top-level lines: fenced lines are flagged."""
    fence = None
    for line in md.splitlines():
        if fence is not None:
            yield line, True
            if _fence_close(line, fence):
                fence = None
            continue
        m = FENCE_RE.match(line)
        if m:
            fence = m.group("fence")
            yield line, True
            continue
        yield line, False


def sections(body: str) -> list[str]:
    """Split at ``## `` headings outside code blocks; text before the first one is kept."""
    out: list[list[str]] = [[]]
    for line, fenced in iter_lines(body):
        if not fenced and line.startswith("## "):
            out.append([])
        out[-1].append(line)
    return [s for s in ("\n".join(x).strip("\n") for x in out) if s.strip()]


def _indented_block(lines: list[str], start: int) -> tuple[list[str], int]:
    """The 4-space indented body starting at ``start``, dedented; and the next index."""
    body: list[str] = []
    i = start
    while i < len(lines):
        line = lines[i]
        if line.strip() and not line.startswith(INDENT):
            break
        body.append(line[len(INDENT):] if line.startswith(INDENT) else "")
        i += 1
    while body and not body[-1].strip():
        body.pop()
        i -= 1
    return body, i


def to_jupyter_md(md: str) -> str:
    """mkdocs-material Markdown -> Markdown that JupyterLab renders the same way."""
    lines = md.splitlines()
    out: list[str] = []
    i = 0
    fence = None
    while i < len(lines):
        line = lines[i]
        if fence is not None:
            out.append(line)
            if _fence_close(line, fence):
                fence = None
            i += 1
            continue
        m = FENCE_RE.match(line)
        if m:
            fence = m.group("fence")
            if NOTEBOOK_INFO_RE.match(m.group("info")):
                line = f"{m.group('indent')}{fence}python"
            out.append(line)
            i += 1
            continue
        m = ADMONITION_RE.match(line)
        if m:
            body, i = _indented_block(lines, i + 1)
            title = m.group("title") or m.group("kind").capitalize()
            inner = to_jupyter_md("\n".join(body))
            quoted = [f"> {x}" if x else ">" for x in inner.splitlines()]
            out.extend([f"> **{title}**", ">", *quoted])
            continue
        m = TAB_RE.match(line)
        if m:
            body, i = _indented_block(lines, i + 1)
            out.extend([f"**{m.group('label')}**", "", to_jupyter_md("\n".join(body))])
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def to_site_md(md: str) -> str:
    """Instructions -> the site's Markdown: ``python notebook`` blocks become ``python``."""
    return re.sub(r"^(\s*)(`{3,}|~{3,})\s*python\s+notebook\s*$", r"\1\2python", md, flags=re.M)


def chunks(section_md: str) -> list[Chunk]:
    """One section -> markdown and code chunks (top-level ``python notebook`` blocks)."""
    result: list[Chunk] = []
    buf: list[str] = []
    code: list[str] | None = None
    fence = None
    lines = section_md.splitlines()

    def flush() -> None:
        text = "\n".join(buf).strip("\n")
        if text.strip():
            result.append(Chunk("markdown", to_jupyter_md(text)))
        buf.clear()

    for line in lines:
        if code is not None:
            if _fence_close(line, fence or "```") and not line.startswith(" "):
                result.append(Chunk("code", "\n".join(code).strip("\n")))
                code = None
                fence = None
            else:
                code.append(line)
            continue
        if fence is not None:
            buf.append(line)
            if _fence_close(line, fence):
                fence = None
            continue
        m = FENCE_RE.match(line)
        if m and not m.group("indent") and NOTEBOOK_INFO_RE.match(m.group("info")):
            flush()
            code = []
            fence = m.group("fence")
            continue
        if m:
            fence = m.group("fence")
        buf.append(line)
    if code is not None:
        raise InstructionsError(NOT_CLOSED)
    flush()
    return result
