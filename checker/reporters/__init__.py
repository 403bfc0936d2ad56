"""Reporters: each renders one Report to one format. They read the Report, nothing else.

>>> render(report, "json")            # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from checker.model import Report

FORMATS = ("text", "json", "junit", "html")
_MODULES = {"text": "text", "json": "json_", "junit": "junit", "html": "html",
            "notebook": "html"}


def render(report: Report, fmt: str, **options: Any) -> str:
    if fmt not in _MODULES:
        raise ValueError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    mod = import_module(f"checker.reporters.{_MODULES[fmt]}")
    if fmt == "notebook":
        return mod.render_fragment(report)
    return mod.render(report, **options)
