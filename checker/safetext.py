"""Learner-controlled text made harmless to show: one rule for every output.

A string read on a learner's machine (a VM description, a command's output, what a
``~/.bashrc`` prints, a host variable) may hold terminal escapes (OSC 52 writes the
clipboard, a title change, cursor moves, a fake line), NUL and BEL bytes, bidirectional
overrides (text shown in another order than stored) or lone surrogates (which no UTF-8 file,
SQLite row or pipe can carry: they crashed a grading worker). :func:`clean` shows each such
character as ``\\xNN`` / ``\\uNNNN`` text; newlines stay, tabs become spaces.

The engine cleans every string of a report as it builds it (message, hint, evidence, host,
user), and the grading worker every reason it sends; the renderers (terminal, HTML, CSV, JSON,
notebook, watch, the grade summary) clean again what they print, so that a report or a
gradebook written by an older version is shown safely too.

>>> clean("a\\x1b]52;c;ZXZpbA==\\x07b\\u202ec\\ud800")
'a\\\\x1b]52;c;ZXZpbA==\\\\x07b\\\\u202ec\\\\ud800'
"""

from __future__ import annotations

import json
import re
from typing import Any

# C0 controls but newline, DEL, C1, line/paragraph separators, bidirectional embeddings,
# overrides and isolates, lone surrogates.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                    "\ud800-\udfff]")
# In JSON text (json.dumps(ensure_ascii=False) escapes C0 but leaves these raw).
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _show(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def clean(s: str) -> str:
    """Text safe to print on a terminal or to store: controls shown as ``\\xNN``, tabs as
    spaces, newlines kept."""
    s = s.replace("\r\n", "\n").replace("\t", " ")
    return UNSAFE.sub(_show, s)


def clean_data(obj: Any) -> Any:
    """:func:`clean` applied to every string (keys too) of a JSON-like value."""
    if isinstance(obj, str):
        return clean(obj)
    if isinstance(obj, dict):
        return {clean_data(k): clean_data(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [clean_data(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(clean_data(v) for v in obj)
    return obj


def json_safe(text: str) -> str:
    """JSON text (``ensure_ascii=False``) with the characters a terminal or a UTF-8 file
    cannot take raw written as ``\\uNNNN`` escapes: same JSON value, safe bytes.

    >>> json_safe(json.dumps("a\\u009bb\\ud800", ensure_ascii=False))
    '"a\\\\u009bb\\\\ud800"'
    """
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def dumps(obj: Any, **kw: Any) -> str:
    """``json.dumps(obj, ensure_ascii=False, **kw)`` made safe by :func:`json_safe`."""
    return json_safe(json.dumps(obj, ensure_ascii=False, **kw))
