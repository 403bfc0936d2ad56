"""``virtlab build``: one source (``labs/``), three outputs (checker, notebooks, site pages).

From every lab folder it generates ``notebooks/NN-slug.ipynb`` and the site pages
``site/labs/NN-slug.md`` (French) and ``site/labs/NN-slug.en.md`` (English); from the whole
catalogue, ``notebooks/index.ipynb``, the lab map on the home pages (``site/index.md``,
``site/index.en.md``, between ``<!-- virtlab:labmap -->`` markers) and the "Labs" entries of
the nav in ``mkdocs.yml`` (between ``# virtlab:labs`` markers). Outputs are deterministic, byte
for byte, so that a test can tell when a committed one is stale.

>>> stale = build(check_only=True)     # doctest: +SKIP
>>> stale                              # doctest: +SKIP
['notebooks/02-install-kvm.ipynb']

The output tree is ``root`` if given, else ``$VIRTLAB_ROOT``, else the virtlab source tree
holding the working directory (a folder with ``mkdocs.yml`` and ``labs/``: the checkout, found
from any folder inside it, whether virtlab is installed from it in editable mode or not), else
the folder holding the labs. The labs are read from that tree's ``labs/`` (``$VIRTLAB_LABS``
if set), never from an installed copy.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from checker import __version__
from checker.catalog import CatalogError, lab_dirs, labs_root, load_lab
from checker.exitcodes import UsageError
from checker.dsl import PASS_MSG
from checker.model import LANGS, Lab, ObjectiveResult, Report, Text
from checker.releases import both
from checker.notebook import InstructionsError, chunks, sections, split_title, to_site_md

LABMAP_START, LABMAP_END = "<!-- virtlab:labmap -->", "<!-- /virtlab:labmap -->"
NAV_START, NAV_END = "# virtlab:labs", "# /virtlab:labs"
CLI_START, CLI_END = "<!-- virtlab:cli -->", "<!-- /virtlab:cli -->"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


class BuildError(UsageError):
    """The tree cannot be built (missing marker, not a source tree); exit code 2."""


T = {
    "fr": {
        "lab": "Lab", "objectives": "Objectifs", "objective": "Objectif", "points": "Points",
        "section": "Section du cours", "total": "Total",
        "subject": "Sujet", "objs_pts": "{n} objectifs, {p} points",
        "notebook": "Notebook", "check": "Vérifier votre travail",
        "generated": "Page générée par `virtlab build` depuis `labs/{id}/` : "
                     "modifiez la source, pas cette page.",
        "check_intro": "Dans un terminal, depuis votre compte (le vérificateur ne modifie rien, "
                       "`sudo` est inutile) :",
        "check_nb": "Ou, dans le notebook du lab, exécutez la cellule de vérification :",
        "check_report": "Le rapport donne, pour chaque objectif, son état (réussi, échec, "
                        "erreur, sans objet), les points gagnés, ce que le vérificateur a "
                        "constaté et, en cas d'échec, un indice. Par exemple, avec un objectif "
                        "encore en échec :",
        "check_exit": "La commande se termine avec le code 0 quand tout est réussi, 1 sinon. "
                      "Pour garder une trace : `virtlab check {n} --format html --output "
                      "rapport.html` ; pour un programme : `--format json` (voir la "
                      "[référence](../reference.md)).",
        "example_msg": "Exemple : le constat dit ce qui était attendu et ce qui a été trouvé.",
        "nb_howto": "**Mode d'emploi.** Les blocs `bash` sont des commandes à taper dans un "
                    "terminal (JupyterLab : *Fichier › Nouveau › Terminal*) ; celles qui "
                    "commencent par `sudo` demandent les droits root et ne sont jamais "
                    "exécutées par le notebook. Les cellules Python se lancent ici "
                    "(<kbd>Maj</kbd>+<kbd>Entrée</kbd>) et ne modifient rien. La dernière "
                    "cellule vérifie votre travail ; relancez-la autant que vous voulez.",
        "nb_check": "Exécutez cette cellule pour vérifier votre travail (relancez-la après "
                    "chaque étape) :",
        "nb_watch": "Pour un tableau qui se met à jour tout seul pendant que vous travaillez "
                    "(événements libvirt), lancez cette cellule ; `w.stop()` l'arrête :",
        "nb_progress": "Votre progression (chaque vérification est enregistrée) :",
        "nb_en_link": "*English version: [below](#English-version).*",
        "nb_index_title": "virtlab : les labs du chapitre 8.1 « Virtualisation système »",
        "nb_index_intro": "Un notebook par lab. Chaque notebook suit les instructions du lab "
                          "et se termine par une cellule qui vérifie votre machine.",
    },
    "en": {
        "lab": "Lab", "objectives": "Objectives", "objective": "Objective", "points": "Points",
        "section": "Course section", "total": "Total",
        "subject": "Subject", "objs_pts": "{n} objectives, {p} points",
        "notebook": "Notebook", "check": "Check your work",
        "generated": "Page generated by `virtlab build` from `labs/{id}/`: "
                     "edit the source, not this page.",
        "check_intro": "In a terminal, from your own account (the checker changes nothing, "
                       "no need for `sudo`):",
        "check_nb": "Or, in the lab's notebook, run the check cell:",
        "check_report": "The report gives, for each objective, its status (pass, fail, error, "
                        "skip), the points earned, what the checker found and, on failure, a "
                        "hint. For example, with one objective still failing:",
        "check_exit": "The command exits with code 0 when everything passes, 1 otherwise. "
                      "To keep a record: `virtlab check {n} --format html --output "
                      "report.html`; for a program: `--format json` (see the "
                      "[reference](../reference.md)).",
        "example_msg": "Example: the finding says what was expected and what was found.",
        "nb_howto": "**How to use it.** `bash` blocks are commands to type in a terminal "
                    "(JupyterLab: *File › New › Terminal*); those starting with `sudo` need "
                    "root and are never run by the notebook. Python cells run here "
                    "(<kbd>Shift</kbd>+<kbd>Enter</kbd>) and change nothing. The last cell "
                    "checks your work; run it as often as you like.",
        "nb_check": "Run this cell to check your work (run it again after each step):",
        "nb_watch": "For a scoreboard that updates itself while you work (libvirt events), "
                    "run this cell; `w.stop()` stops it:",
        "nb_progress": "Your progress (every check is recorded):",
        "nb_en_link": "",
        "nb_index_title": "virtlab: the labs of chapter 8.1 \"Virtualisation système\"",
        "nb_index_intro": "One notebook per lab. Each follows the lab's instructions and ends "
                          "with a cell that checks your machine.",
    },
}


# --- helpers ---------------------------------------------------------------------------

def _cell(text: str) -> str:
    """A Markdown table cell: no pipe, no newline."""
    return " ".join(text.replace("|", "\\|").split())


def _num(lab_id: str) -> str:
    return lab_id.split("-", 1)[0]


def _instructions(lab: Lab, lang: str) -> tuple[str, str]:
    path = lab.path / f"instructions.{lang}.md"
    try:
        return split_title(path.read_text(encoding="utf-8"), str(path))
    except InstructionsError as e:
        raise CatalogError(str(e)) from None


def _load_labs(labs_dir: Path) -> tuple[Lab, ...]:
    # Uncached: a build must see the files as they are now.
    return tuple(load_lab(p) for p in lab_dirs(labs_dir))


def example_report(lab: Lab, lang: str) -> Report:
    """A made-up report for the lab page: every objective met but the last one."""
    results = []
    for i, o in enumerate(lab.objectives):
        failing = i == len(lab.objectives) - 1
        results.append(ObjectiveResult(
            id=o.id, title=o.title.get(lang), section=o.section, points=o.points,
            earned=0 if failing else o.points, status="fail" if failing else "pass",
            message=T[lang]["example_msg"] if failing else PASS_MSG.get(lang),
            hint=both(o.hint.get(lang), lang) if failing else ""))
    return Report(lab=lab.id, title=lab.title.get(lang), host="local://",
                  libvirt_uri="qemu:///system", user="alice", lang=lang,
                  started_at="2025-01-06T09:00:00+01:00", duration_s=0.2,
                  checker_version=__version__, objectives=tuple(results))


# --- site pages ------------------------------------------------------------------------

def objectives_table(lab: Lab, lang: str) -> str:
    t = T[lang]
    rows = [f"| {t['objective']} | {t['points']} | {t['section']} |", "|---|---:|---|"]
    for o in lab.objectives:
        title = _cell(o.title.get(lang))
        rows.append(f"| `{o.id}` — {title} | {o.points} | {_cell(o.section)} |")
    rows.append(f"| **{t['total']}** | **{lab.max_score}** | |")
    return "\n".join(rows)


def site_page(lab: Lab, lang: str) -> str:
    from checker.reporters.text import render as render_text

    t = T[lang]
    _, body = _instructions(lab, lang)
    num = _num(lab.id)
    example = render_text(example_report(lab, lang), color=False, width=76).rstrip()
    colon = " :" if lang == "fr" else ":"  # French typography: space before the colon
    parts = [
        f"# {t['lab']} {num} · {lab.title.get(lang)}",
        f"<!-- {t['generated'].format(id=lab.id)} -->",
        f"**{t['section']}{colon}** {lab.section}  \n"
        f"**{t['notebook']}{colon}** `notebooks/{lab.id}.ipynb`",
        lab.summary.get(lang),
        f"## {t['objectives']}",
        objectives_table(lab, lang),
        to_site_md(body),
        f"## {t['check']}",
        t["check_intro"],
        f"```bash\nvirtlab check {num}\n```",
        t["check_nb"],
        f'```python\nfrom checker import check\ncheck("{lab.id}")\n```',
        t["check_report"],
        f"```text\n{example}\n```",
        t["check_exit"].format(n=num),
    ]
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"


def lab_map(labs: tuple[Lab, ...], lang: str, link: str) -> str:
    """The lab map as a Markdown table, one row per lab folder in the order of their
    numbers; ``link`` formats a lab id into a relative link."""
    t = T[lang]
    out = [f"| {t['lab']} | {t['subject']} | {t['section']} | {t['objectives']} |",
           "|---|---|---|---|"]
    for lab in sorted(labs, key=lambda lab: lab.id):
        subject = f"[{_cell(lab.title.get(lang))}]({link.format(id=lab.id)})"
        objs = t["objs_pts"].format(n=len(lab.objectives), p=lab.max_score)
        out.append(f"| {_num(lab.id)} | {subject} | {_cell(lab.section)} | {objs} |")
    return "\n".join(out)


def _replace_region(text: str, start: str, end: str, new: str, where: str) -> str:
    pat = re.compile(rf"(?P<indent>[ \t]*){re.escape(start)}[^\n]*\n.*?^[ \t]*{re.escape(end)}",
                     re.S | re.M)
    m = pat.search(text)
    if not m:
        raise BuildError(f"{where}: markers '{start}' ... '{end}' not found")
    indent = m.group("indent")
    first_line = text[m.start():text.index("\n", m.start())]
    body = "".join(f"{indent}{line}\n" if line else "\n" for line in new.splitlines())
    return text[:m.start()] + first_line + "\n" + body + indent + end + text[m.end():]


def nav_entries(labs: tuple[Lab, ...]) -> str:
    return "\n".join(f"- labs/{lab.id}.md" for lab in labs)


def cli_reference(lang: str) -> str:
    """The commands and options of ``virtlab``, read from its argparse parser."""
    import argparse

    from checker.cli import build_parser

    head = {"fr": ("Option", "Description", "défaut"), "en": ("Option", "Description", "default")}
    h_opt, h_desc, h_default = head[lang]
    colon = " :" if lang == "fr" else ":"
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out: list[str] = []
    for choice in sub._choices_actions:
        sp = sub.choices[choice.dest]
        sp.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=10_000)
        usage = sp.format_usage().strip().removeprefix("usage: ")
        summary = (choice.help or "").rstrip(".")
        out += [f"### `virtlab {choice.dest}`", "", summary[:1].upper() + summary[1:] + ".", "",
                f"```text\n{usage}\n```", ""]
        rows = []
        for a in sp._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            name = ", ".join(a.option_strings) or (a.metavar or a.dest)
            if a.option_strings and a.nargs != 0:
                if a.metavar:
                    name += f" {a.metavar}"
                elif a.choices:
                    name += " {" + ",".join(a.choices) + "}"
                else:
                    name += f" {a.dest.upper()}"
            desc = a.help or ""
            if a.default not in (None, False, argparse.SUPPRESS):
                desc += f" ({h_default}{colon} `{a.default}`)"
            rows.append(f"| `{name}` | {_cell(desc.strip())} |")
        if rows:
            out += [f"| {h_opt} | {h_desc} |", "|---|---|", *rows, ""]
    return "\n".join(out).strip("\n")


# --- notebooks -------------------------------------------------------------------------

def _notebook(cells: list[Any], lab_id: str | None) -> Any:
    import nbformat
    from nbformat import v4

    nb = v4.new_notebook()
    nb.cells = cells
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    if lab_id:
        nb.metadata["virtlab"] = {"lab": lab_id, "generated_by": "virtlab build"}
    nbformat.validate(nb)
    return nb


def _dump(nb: Any) -> str:
    import nbformat

    s = nbformat.writes(nb, version=4)
    return s if s.endswith("\n") else s + "\n"


def lab_notebook(lab: Lab) -> str:
    from nbformat import v4

    md = v4.new_markdown_cell
    code = v4.new_code_cell
    cells = []
    head = [
        f"# {T['fr']['lab']} {_num(lab.id)} · {lab.title.fr}",
        f"*{lab.title.en}*",
        f"**{T['fr']['section']} :** {lab.section}",
        lab.summary.fr,
        T["fr"]["nb_en_link"],
        f"## {T['fr']['objectives']} / {T['en']['objectives']}",
        "\n".join([
            "| Objectif / Objective | Points |", "|---|---:|",
            *(f"| `{o.id}` — {_cell(o.title.fr)}<br>*{_cell(o.title.en)}* | {o.points} |"
              for o in lab.objectives),
            f"| **Total** | **{lab.max_score}** |"]),
    ]
    cells.append(md("\n\n".join(head), id="intro"))
    for lang in LANGS:
        t = T[lang]
        _, body = _instructions(lab, lang)
        n = 0

        def cid(kind: str) -> str:
            nonlocal n
            n += 1
            return f"{lang}-{kind}-{n:02d}"

        first = t["nb_howto"] if lang == "fr" else "\n\n".join(
            ["# English version", f"## {lab.title.en}", lab.summary.en, t["nb_howto"]])
        cells.append(md(first, id=cid("md")))
        for section in sections(body):
            for ch in chunks(section):
                if ch.kind == "code":
                    cells.append(code(ch.source, id=cid("code")))
                else:
                    cells.append(md(ch.source, id=cid("md")))
        # Live scoreboard first, then the check cell: each half ends with its check.
        cells.append(md(f"## {t['check']}\n\n{t['nb_watch']}", id=f"{lang}-watch-md"))
        cells.append(code(f'from checker.watch import watch\nw = watch("{lab.id}", lang="{lang}")',
                          id=f"{lang}-watch"))
        cells.append(md(t["nb_check"], id=cid("md")))
        cells.append(code(f'from checker import check\ncheck("{lab.id}", lang="{lang}")',
                          id=f"{lang}-check"))
    return _dump(_notebook(cells, lab.id))


def index_notebook(labs: tuple[Lab, ...]) -> str:
    from nbformat import v4

    cells = []
    for lang in LANGS:
        t = T[lang]
        text = "\n\n".join([
            f"# {t['nb_index_title']}", t["nb_index_intro"],
            lab_map(labs, lang, "{id}.ipynb")])
        cells.append(v4.new_markdown_cell(text, id=f"{lang}-map"))
        cells.append(v4.new_markdown_cell(t["nb_progress"], id=f"{lang}-progress-md"))
        cells.append(v4.new_code_cell(f'from checker.progress import show\nshow(lang="{lang}")',
                                      id=f"{lang}-progress"))
    return _dump(_notebook(cells, None))


# --- the build -------------------------------------------------------------------------

def _is_source_tree(d: Path) -> bool:
    return (d / "mkdocs.yml").is_file() and (d / "labs").is_dir()


def source_tree(start: Path | None = None) -> Path | None:
    """The virtlab source tree holding ``start`` (default: the working directory)."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if _is_source_tree(d):
            return d
    return None


def output_root(root: Path | None = None) -> Path:
    if root is None:
        env = os.environ.get("VIRTLAB_ROOT")
        root = Path(env) if env else (source_tree() or labs_root().resolve().parent)
    if not (root / "mkdocs.yml").is_file():
        raise BuildError(f"{root}: not a virtlab source tree (no mkdocs.yml); run from the "
                         "repository (or a folder inside it) or set VIRTLAB_ROOT / "
                         f"{Path.cwd()} : pas un dépôt virtlab (pas de mkdocs.yml) ; lancez "
                         "depuis le dépôt (ou un dossier du dépôt) ou définissez VIRTLAB_ROOT")
    return root


def source_labs(root: Path) -> Path:
    """The labs a build reads: $VIRTLAB_LABS, else the tree's own labs/."""
    env = os.environ.get("VIRTLAB_LABS")
    if env:
        return Path(env)
    return root / "labs" if (root / "labs").is_dir() else labs_root()


def outputs(root: Path) -> dict[str, str]:
    """Every generated file: relative path -> its exact content."""
    labs = _load_labs(source_labs(root))
    out: dict[str, str] = {}
    for lab in labs:
        out[f"notebooks/{lab.id}.ipynb"] = lab_notebook(lab)
        out[f"site/labs/{lab.id}.md"] = site_page(lab, "fr")
        out[f"site/labs/{lab.id}.en.md"] = site_page(lab, "en")
    out["notebooks/index.ipynb"] = index_notebook(labs)
    # the JSON Schemas, published with the site (the reference page links them)
    from checker.schemas import NAMES
    from checker.schemas import path as schema_path

    for name in NAMES:
        src = root / "checker" / "schemas" / f"{name}.schema.json"
        text = _read(src if src.is_file() else schema_path(name), f"{name}.schema.json")
        # the i18n plugin serves a file to a language only with that language's suffix
        out[f"site/schemas/{name}.schema.json"] = text
        out[f"site/schemas/{name}.schema.en.json"] = text
    for lang, name in (("fr", "site/index.md"), ("en", "site/index.en.md")):
        current = _read(root / name, name)
        out[name] = _replace_region(current, LABMAP_START, LABMAP_END,
                                    lab_map(labs, lang, "labs/{id}.md"), name)
    for lang, name in (("fr", "site/reference.md"), ("en", "site/reference.en.md")):
        current = _read(root / name, name)
        out[name] = _replace_region(current, CLI_START, CLI_END, cli_reference(lang), name)
    current = _read(root / "mkdocs.yml", "mkdocs.yml")
    out["mkdocs.yml"] = _replace_region(current, NAV_START, NAV_END, nav_entries(labs),
                                        "mkdocs.yml")
    return out


def _read(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BuildError(f"{name}: file missing") from None


def _orphans(root: Path, wanted: dict[str, str]) -> list[str]:
    """Generated-looking files that no lab produces any more (a lab was removed/renamed)."""
    found = [*(root / "notebooks").glob("*.ipynb"), *(root / "site" / "labs").glob("*.md")]
    return sorted(rel for rel in (p.relative_to(root).as_posix() for p in found)
                  if rel not in wanted)


def build(check_only: bool = False, root: Path | None = None) -> list[str]:
    """Regenerate the outputs (or, with ``check_only``, only compare); return stale paths."""
    root = output_root(root)
    wanted = outputs(root)
    stale = []
    for rel, content in sorted(wanted.items()):
        path = root / rel
        try:
            same = path.read_bytes() == content.encode("utf-8")
        except FileNotFoundError:
            same = False
        if same:
            continue
        stale.append(rel)
        if not check_only:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode("utf-8"))
    for rel in _orphans(root, wanted):
        stale.append(rel)
        if not check_only:
            (root / rel).unlink()
    return stale
