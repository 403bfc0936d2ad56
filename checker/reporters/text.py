"""The terminal report: a table, in colour when the output is a terminal."""

from __future__ import annotations

import io
import sys

from checker.model import Report

LABELS = {
    "fr": {"obj": "Objectif", "pts": "Points", "status": "État", "detail": "Constat / indice",
           "score": "Score", "host": "hôte", "user": "apprenant", "hint": "Indice",
           "pass": "réussi", "fail": "échec", "error": "erreur", "skip": "sans objet"},
    "en": {"obj": "Objective", "pts": "Points", "status": "Status", "detail": "Finding / hint",
           "score": "Score", "host": "host", "user": "learner", "hint": "Hint",
           "pass": "pass", "fail": "fail", "error": "error", "skip": "skip"},
}
STYLE = {"pass": "green", "fail": "red", "error": "yellow", "skip": "dim"}
ICON = {"pass": "✔", "fail": "✘", "error": "!", "skip": "–"}


def render(report: Report, color: bool | None = None, width: int | None = None) -> str:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = LABELS["en" if report.lang == "en" else "fr"]
    if color is None:
        color = sys.stdout.isatty()
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, no_color=not color, width=width or 100,
                      highlight=False, emoji=False, color_system="standard" if color else None)
    console.print(f"[bold]{escape(report.lab)}[/] — {escape(report.title)}")
    console.print(f"{t['host']}: {escape(report.host)}  libvirt: {escape(report.libvirt_uri)}  "
                  f"{t['user']}: {escape(report.user)}")
    table = Table(show_lines=False, expand=True)
    table.add_column(t["status"], no_wrap=True)
    table.add_column(t["obj"], ratio=2)
    table.add_column(t["pts"], justify="right", no_wrap=True)
    table.add_column(t["detail"], ratio=3)
    for o in report.objectives:
        st = f"[{STYLE[o.status]}]{ICON[o.status]} {t[o.status]}[/]"
        detail = escape(o.message)
        if o.hint:
            detail += f"\n[italic]{t['hint']} : {escape(o.hint)}[/]" if report.lang == "fr" else \
                f"\n[italic]{t['hint']}: {escape(o.hint)}[/]"
        pts = "—" if o.status == "skip" else f"{o.earned}/{o.points}"
        table.add_row(st, f"[bold]{escape(o.id)}[/]\n{escape(o.title)}", pts, detail)
    console.print(table)
    style = "green" if report.passed else "red"
    console.print(f"[bold {style}]{t['score']}: {report.score}/{report.max_score}[/]")
    return buf.getvalue()
