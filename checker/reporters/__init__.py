"""Reporters: each renders one Report to one format. They read the Report, nothing else.

The one list of formats is :data:`RENDERERS`: ``render()``, the CLI's ``--format`` choices
and help, and the site's reference page read it. Adding a format is one module in this
package (a ``render(report, **options) -> str`` function) and one :func:`register` call
below (see CONTRIBUTING.md, "Add a renderer").

>>> render(report, "json")            # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from checker.i18n import Text, message
from checker.model import Report


@dataclass(frozen=True)
class Renderer:
    """One output format of a single lab's report."""

    name: str
    #: the module of this package that renders it (imported only when used)
    module: str
    #: the suffix of a file holding it (``--output report.html``)
    suffix: str
    #: one line for ``--help`` and the reference page
    description: Text
    #: the module's function: ``render(report, **options) -> str``
    function: str = "render"
    #: offered by ``virtlab check --format`` (the notebook fragment is not)
    cli: bool = True


#: Every format, by name, in the order the CLI lists them.
RENDERERS: dict[str, Renderer] = {}


def register(renderer: Renderer) -> Renderer:
    """Add a format to the registry (its name must be new)."""
    if renderer.name in RENDERERS:
        raise ValueError(f"format {renderer.name!r} registered twice")
    RENDERERS[renderer.name] = renderer
    return renderer


register(Renderer("text", "text", ".txt", message(
    "format.text", fr="texte, en couleurs sur un terminal",
    en="text, in colour on a terminal")))
register(Renderer("json", "json_", ".json", message(
    "format.json", fr="JSON schema_version 1, le contrat que lisent les autres outils",
    en="JSON schema_version 1, the contract other tools read")))
register(Renderer("junit", "junit", ".xml", message(
    "format.junit", fr="JUnit XML, pour un serveur d'intégration continue",
    en="JUnit XML, for a CI server")))
register(Renderer("html", "html", ".html", message(
    "format.html", fr="une page HTML autonome, à ouvrir ou à envoyer",
    en="a self-contained HTML page, to open or to send")))
register(Renderer("notebook", "html", ".html", message(
    "format.notebook", fr="le tableau de score d'un notebook (fragment HTML)",
    en="a notebook's scoreboard (HTML fragment)"), function="render_fragment", cli=False))

#: The formats ``virtlab check --format`` offers.
FORMATS: tuple[str, ...] = tuple(name for name, r in RENDERERS.items() if r.cli)

UNKNOWN_FORMAT = message("format.unknown", fr="format inconnu {fmt!r} ; formats valides : {valid}",
                         en="unknown format {fmt!r}; valid formats: {valid}")


def render(report: Report, fmt: str, **options: Any) -> str:
    """The report in format ``fmt`` (a name of :data:`RENDERERS`)."""
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise ValueError(UNKNOWN_FORMAT.format(fmt=fmt, valid=", ".join(FORMATS)).get(report.lang))
    mod = import_module(f"checker.reporters.{renderer.module}")
    out: str = getattr(mod, renderer.function)(report, **options)
    return out
