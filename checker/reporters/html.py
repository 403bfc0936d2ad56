"""A self-contained HTML page (and the notebook scoreboard fragment), escaped by Jinja2.

Every string of the report is escaped (autoescape is on for every template, whatever its
name); the page loads nothing from elsewhere (its CSS is inlined), so it can be mailed or
opened offline.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from checker.i18n import format_date, format_duration, message
from checker.markup import to_html
from checker.model import Report
from checker.reporters.text import ICON, clean, labels

if TYPE_CHECKING:
    from jinja2 import Environment

#: Labels only the HTML page has (the others: checker.reporters.text.LABELS).
EVIDENCE = message("report.html.evidence", fr="Faits relevés", en="Evidence")
GENERATED = message("report.html.generated", fr="Vérifié le", en="Checked on")


def finalize(v: Any) -> Any:
    # Markup (e.g. the output of |tojson) is already safe, controls included.
    return clean(v) if isinstance(v, str) and not hasattr(v, "__html__") else v


def md(v: Any) -> Markup:
    """The ``|md`` filter: lab text (inline Markdown) as HTML, controls shown as ``\\xNN``
    first, every character that is not Markdown escaped (see :mod:`checker.markup`)."""
    return to_html(clean(str(v))) if v is not None else Markup("")


def environment(**options: Any) -> Environment:
    """A Jinja2 environment on ``checker/templates``: autoescape on for every template,
    :func:`finalize`, the ``|md`` filter. The single report and the class report use it."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    # finalize: control characters and bidi overrides from the learner's machine are shown
    # as \xNN (as in the text report) before Jinja2 escapes the markup characters.
    env = Environment(loader=PackageLoader("checker", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      finalize=finalize, **options)
    env.filters["md"] = md
    return env


@lru_cache(maxsize=1)
def _env() -> Environment:
    return environment()


def _ctx(report: Report) -> dict[str, Any]:
    lang = report.lang
    return {"r": report, "t": {**labels(lang), "evidence": EVIDENCE.get(lang),
                               "generated": GENERATED.get(lang)},
            "icons": ICON, "when": format_date(report.started_at, lang),
            "duration": format_duration(report.duration_s, lang, 2)}


def render(report: Report) -> str:
    # the page's own heading is its <h1>
    return _env().get_template("report.html.j2").render(**_ctx(report), heading=1, page=True)


def render_fragment(report: Report) -> str:
    # inside a notebook, under the lab's own title: an <h2>
    css = _env().get_template("report.css").render()
    return f"<style>{css}</style>" + _env().get_template("scoreboard.html.j2").render(
        **_ctx(report), heading=2)
