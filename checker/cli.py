"""The ``virtlab`` command line (also ``python -m checker``).

Exit codes of ``check``: 0 every objective passed; 1 at least one did not; 2 bad usage
(unknown lab, bad option, unreadable file); 3 the target could not be inspected at all;
70 an internal error of the checker (a bug: ``VIRTLAB_DEBUG=1`` shows the traceback).
Heavy modules (testinfra, libvirt, rich, jinja2) are imported inside the commands so that
``--help`` and ``list`` start fast; ``tests/test_cli.py`` asserts it.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

from checker.exitcodes import Exit, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = Exit.OK, Exit.FAILED, Exit.USAGE
EXIT_UNREACHABLE = Exit.UNREACHABLE
EXIT_INTERNAL = Exit.INTERNAL


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def _lang(args: argparse.Namespace | None) -> str:
    from checker.model import resolve_lang

    return resolve_lang(getattr(args, "lang", None))


def _tr(lang: str, fr: str, en: str) -> str:
    return en if lang == "en" else fr


# --- commands --------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    from checker.catalog import CatalogError, lab_ids, resolve

    lang = _lang(args)
    labs, broken = [], []
    for lab_id in lab_ids():
        try:
            labs.append(resolve(lab_id))
        except CatalogError as e:  # list the others; say which one is broken, and why
            broken.append(str(e))
    if args.format == "json":
        import json

        print(json.dumps([{
            "id": lab.id, "number": lab.number, "title": lab.title.get(lang),
            "section": lab.section, "objectives": len(lab.objectives),
            "max_score": lab.max_score, "has_lifecycle": lab.has_lifecycle,
        } for lab in labs], ensure_ascii=False, indent=2))
    else:
        w = max((len(lab.id) for lab in labs), default=0) + 2
        for lab in labs:
            n = len(lab.objectives)
            print(f"{lab.id:<{w}}{lab.title.get(lang)}")
            print(f"{'':<{w}}{n} {_tr(lang, 'objectifs', 'objectives')} · {lab.max_score} points"
                  f" · {lab.section}")
        print()
        print(_tr(lang, "Détails : virtlab show NN · vérifier : virtlab check NN",
                  "Details: virtlab show NN · check: virtlab check NN"))
    for msg in broken:
        _say(_tr(lang, f"virtlab : lab mal formé : {msg}", f"virtlab: malformed lab: {msg}"))
    return EXIT_USAGE if broken else EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from checker.catalog import resolve

    lab = resolve(args.lab)
    lang = _lang(args)
    import textwrap

    from checker.reporters.text import default_width

    width = default_width()
    print(f"{lab.id} — {lab.title.get(lang)}")
    print(f"{_tr(lang, 'Section du cours :', 'Course section:')} {lab.section}")
    print()
    print(lab.summary.get(lang))
    print()
    print(_tr(lang, "Objectifs :", "Objectives:"))
    id_w = max(len(o.id) for o in lab.objectives) + 2
    lead = 2 + id_w + len("99 pts  ")
    for o in lab.objectives:
        title = textwrap.wrap(o.title.get(lang), width=max(30, width - lead),
                              break_on_hyphens=False) or [""]
        print(f"  {o.id:<{id_w}}{o.points:>2} pts  {title[0]}")
        for more in title[1:]:
            print(" " * lead + more)
    print()
    print(_tr(lang, f"Vérifier : virtlab check {lab.id}", f"Check: virtlab check {lab.id}"))
    if lab.has_lifecycle:
        print(_tr(lang, f"Préparer : virtlab start {lab.id}", f"Prepare: virtlab start {lab.id}"))
    return EXIT_OK


def _writable(path: str, lang: str) -> None:
    """Refuse an --output path that cannot be written, before spending time on the check."""
    target = os.path.abspath(path)
    parent = os.path.dirname(target)
    if os.path.isdir(target):
        raise UsageError(_tr(lang, f"impossible d'écrire {path} : c'est un dossier",
                             f"cannot write {path}: it is a directory"))
    if not os.path.isdir(parent):
        raise UsageError(_tr(lang, f"impossible d'écrire {path} : le dossier {parent} n'existe pas",
                             f"cannot write {path}: folder {parent} does not exist"))
    if not os.access(target if os.path.exists(target) else parent, os.W_OK):
        raise UsageError(_tr(lang, f"impossible d'écrire {path} : permission refusée",
                             f"cannot write {path}: permission denied"))


def cmd_progress(args: argparse.Namespace) -> int:
    from checker.progress import store_path, summary

    lang = _lang(args)
    rows = summary(lang)
    if args.format == "json":
        import json
        from dataclasses import asdict

        print(json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2))
        return EXIT_OK
    print(_tr(lang, f"Progression (enregistrée dans {store_path()})",
              f"Progress (stored in {store_path()})"))
    for r in rows:
        if r.best_score is None:
            state = _tr(lang, "jamais vérifié", "never checked")
        else:
            state = _tr(lang, f"meilleur score {r.best_score}/{r.max_score}, dernière vérification {r.last_check}",
                        f"best score {r.best_score}/{r.max_score}, last check {r.last_check}")
        print(f"{r.lab:<24} {state}")
        if r.left and r.best_score is not None:
            print("    " + _tr(lang, "reste : ", "left: ") + ", ".join(r.left))
        elif r.best_score is not None:
            print("    " + _tr(lang, "tout est réussi", "all done"))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from checker.catalog import resolve

    lang = _lang(args)
    resolve(args.lab)  # an unknown lab is bad usage: say so before anything else
    if args.output:
        _writable(args.output, lang)
    if getattr(args, "watch", False):
        from checker.watch import watch_terminal

        return watch_terminal(args.lab, args.host, connect=args.connect, user=args.user,
                              lang=args.lang, fmt=args.format)
    from checker.engine import check
    from checker.progress import record
    from checker.reporters import render

    report = check(args.lab, args.host, connect=args.connect, user=args.user,
                   lang=args.lang, ssh_config=getattr(args, "ssh_config", None),
                   timeout=args.timeout)
    record(report)
    opts: dict[str, Any] = {}
    if args.format == "text" and args.output:
        opts["color"] = False
    out = render(report, args.format, **opts)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(out)
        except OSError as e:
            raise UsageError(_tr(lang, f"impossible d'écrire {args.output} : {e.strerror}",
                                 f"cannot write {args.output}: {e.strerror}")) from None
        if args.format != "text":
            print(render(report, "text"), end="")
    else:
        sys.stdout.write(out)
    return EXIT_OK if report.passed else EXIT_FAILED


def cmd_solve(args: argparse.Namespace) -> int:
    import subprocess

    from checker.catalog import resolve
    from checker.probes.learner import default_learner

    lab = resolve(args.lab)
    lang = _lang(args)
    script = lab.path / "solution.sh"
    if not script.is_file():
        raise UsageError(_tr(lang, f"{lab.id} n'a pas de solution de référence ({script} absent)",
                             f"{lab.id} has no reference solution ({script} missing)"))
    learner = default_learner(args.user)
    _say(_tr(lang,
             f"La solution de référence de {lab.id} va être appliquée sur cet hôte "
             f"(apprenant : {learner}). Elle exécute :",
             f"The reference solution of {lab.id} will be applied to this host "
             f"(learner: {learner}). It runs:"))
    _say(script.read_text(encoding="utf-8"))
    if not args.yes:
        _say(_tr(lang, "Refusé sans --yes (réservé aux formateurs et aux tests).",
                 "Refused without --yes (for instructors and tests)."))
        return EXIT_USAGE
    env = dict(os.environ, VIRTLAB_USER=learner)
    if args.connect:
        env["LIBVIRT_DEFAULT_URI"] = args.connect
    return subprocess.call(["bash", "-eu", str(script)], env=env, cwd=str(lab.path))


def _ask_tty(lang: str):
    """A yes/no question on the terminal, or None when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        return None

    def ask(question: str) -> bool:
        try:
            answer = input(question + _tr(lang, " [o/N] ", " [y/N] "))
        except EOFError:
            return False
        return answer.strip().lower() in ("y", "yes", "o", "oui")
    return ask


def cmd_lifecycle(args: argparse.Namespace) -> int:
    """virtlab start / finish LAB: build or remove the lab's scene (checker.lifecycle)."""
    from checker.catalog import resolve
    from checker.lifecycle import run

    lab = resolve(args.lab)
    lang = _lang(args)
    return run(lab, args.command, args.connect, yes=args.yes, lang=lang, ask=_ask_tty(lang))


def _local_release():
    """This machine's Debian release (the learner asks for hints on their own machine)."""
    from checker.engine import get_host
    from checker.probes.host import HostFacts

    return HostFacts(get_host("local://")).release


def cmd_hint(args: argparse.Namespace) -> int:
    """virtlab hint LAB OBJECTIVE: the next level of hint, recorded for the report."""
    from checker import hints
    from checker.catalog import resolve

    lab = resolve(args.lab)
    lang = _lang(args)
    try:
        obj = lab.objective(args.objective)
    except KeyError:
        raise UsageError(_tr(
            lang, f"{lab.id} n'a pas d'objectif {args.objective!r}. Objectifs : "
                  + ", ".join(o.id for o in lab.objectives),
            f"{lab.id} has no objective {args.objective!r}. Objectives: "
            + ", ".join(o.id for o in lab.objectives))) from None
    try:
        level = hints.reveal(lab, obj)
    except OSError as e:
        raise UsageError(_tr(lang, f"impossible d'enregistrer l'indice : {e}",
                             f"cannot record the hint: {e}")) from None
    total = len(obj.hints)
    release = _local_release()
    print(f"{lab.id} / {obj.id} — {obj.title.get(lang)}")
    for i, h in enumerate(obj.hints[:level], 1):
        print(_tr(lang, f"  Indice {i}/{total} : ", f"  Hint {i}/{total}: ")
              + release.expand(h.get(lang)))
    if level >= total:
        print(_tr(lang, "C'était le dernier indice. Relisez les instructions : virtlab show "
                        f"{lab.id}", f"That was the last hint. Read the instructions again: "
                                     f"virtlab show {lab.id}"))
    else:
        print(_tr(lang, f"Indice suivant : virtlab hint {lab.id} {obj.id}",
                  f"Next hint: virtlab hint {lab.id} {obj.id}"))
    return EXIT_OK


# --- parser ----------------------------------------------------------------------------

def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of seconds, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 second, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="virtlab",
        description="Labs for « 8.1 Virtualisation système » and the checker that grades them. "
                    "/ Labs for chapter 8.1 (system virtualisation) and their checker.")
    from checker import __version__

    p.add_argument("--version", action="version", version=f"virtlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def lang_opt(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--lang", choices=("fr", "en"), help="language (default: LANG, else fr)")

    sp = sub.add_parser("list", help="list the labs")
    sp.add_argument("--format", choices=("text", "json"), default="text")
    lang_opt(sp)
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("show", help="describe one lab and its objectives")
    sp.add_argument("lab", metavar="LAB", help="lab id (04-create-vm) or number (04, 4)")
    lang_opt(sp)
    sp.set_defaults(func=cmd_show)

    sp = sub.add_parser("check", help="check a lab on a host and print the report")
    sp.add_argument("lab", metavar="LAB")
    sp.add_argument("--host", default="local://",
                    help="testinfra host spec: local://, ssh://user@host[:port], ansible://name")
    sp.add_argument("--connect", metavar="URI",
                    help="libvirt URI (default: LIBVIRT_DEFAULT_URI, else qemu:///system)")
    sp.add_argument("--user", metavar="NAME", help="the learner (default: SUDO_USER, else you)")
    sp.add_argument("--format", choices=("text", "json", "junit", "html"), default="text")
    sp.add_argument("--output", metavar="FILE", help="write the report to FILE")
    sp.add_argument("--timeout", type=_positive_int, default=None, metavar="S",
                    help="connect timeout for remote hosts, in seconds")
    lang_opt(sp)
    sp.add_argument("--watch", action="store_true",
                    help="keep checking as you work (libvirt events; Ctrl-C to stop)")
    sp.set_defaults(func=cmd_check)

    sp = sub.add_parser("progress", help="your labs: best scores, last check, what is left")
    sp.add_argument("--format", choices=("text", "json"), default="text")
    lang_opt(sp)
    sp.set_defaults(func=cmd_progress)

    sp = sub.add_parser("solve", help="apply a lab's reference solution (instructors, tests)")
    sp.add_argument("lab", metavar="LAB")
    sp.add_argument("--yes", action="store_true", help="do it (refused without)")
    sp.add_argument("--user", metavar="NAME")
    sp.add_argument("--connect", metavar="URI")
    lang_opt(sp)
    sp.set_defaults(func=cmd_solve)

    for verb, text in (("start", "build the lab's scene (labs with setup; says what, asks)"),
                       ("finish", "remove what the lab's start made (asks)")):
        sp = sub.add_parser(verb, help=text)
        sp.add_argument("lab", metavar="LAB")
        sp.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
        sp.add_argument("--connect", metavar="URI",
                        help="libvirt URI (default: LIBVIRT_DEFAULT_URI, else qemu:///system)")
        lang_opt(sp)
        sp.set_defaults(func=cmd_lifecycle)

    sp = sub.add_parser("hint", help="the next level of hint for one objective")
    sp.add_argument("lab", metavar="LAB")
    sp.add_argument("objective", metavar="OBJECTIVE")
    lang_opt(sp)
    sp.set_defaults(func=cmd_hint)

    sp = sub.add_parser("grade", help="grade a class's hosts over SSH: gradebook, CSV/HTML/JSON")
    from checker.grade.command import add_arguments as grade_arguments

    grade_arguments(sp)
    sp.set_defaults(func=cmd_grade)

    sp = sub.add_parser("build", help="regenerate notebooks and site pages from labs/")
    sp.add_argument("--check", action="store_true", help="fail (exit 1) if a committed output is stale")
    sp.set_defaults(func=cmd_build)
    return p


def cmd_grade(args: argparse.Namespace) -> int:
    from checker.grade.command import run

    return run(args)


def cmd_build(args: argparse.Namespace) -> int:
    from checker.build import build

    stale = build(check_only=args.check)
    if args.check and stale:
        _say("stale outputs (run `virtlab build`):\n  " + "\n  ".join(stale))
        return EXIT_FAILED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from checker.catalog import CatalogError, UnknownLab

    lang = _lang(args)
    try:
        return int(args.func(args) or 0)
    except UnknownLab as e:
        _say(_tr(lang, f"virtlab : lab inconnu {e.query!r}. Labs valides : {', '.join(e.valid)} "
                       "(virtlab list)",
                 f"virtlab: unknown lab {e.query!r}. Valid labs: {', '.join(e.valid)} "
                 "(virtlab list)"))
        return EXIT_USAGE
    except CatalogError as e:
        _say(_tr(lang, f"virtlab : lab mal formé : {e}", f"virtlab: malformed lab: {e}"))
        return EXIT_USAGE
    except UsageError as e:
        _say(f"virtlab: {e}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say(_tr(lang, "virtlab : interrompu", "virtlab: interrupted"))
        return 130
    except BrokenPipeError:
        # The reader went away (`virtlab list | head`): not an error worth a traceback.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except Exception as e:
        from checker.engine import BadHostSpec, TargetUnreachable
        from checker.probes.output import OutputFlood
        from checker.reporters.text import clean

        if isinstance(e, BadHostSpec):
            _say(f"virtlab: {clean(str(e))}")
            return EXIT_USAGE
        if isinstance(e, TargetUnreachable):
            # the reason may be what the learner's host printed: shown, never obeyed
            host, reason = clean(e.host), clean(e.reason).replace("\n", " ")
            _say(_tr(lang, f"virtlab : impossible d'inspecter {host} : {reason}",
                     f"virtlab: cannot inspect {host}: {reason}"))
            return EXIT_UNREACHABLE
        if isinstance(e, OutputFlood):
            _say(f"virtlab: {getattr(args, 'host', '')}: {e.text.get(lang)}")
            return EXIT_UNREACHABLE
        if os.environ.get("VIRTLAB_DEBUG"):
            raise
        _say(f"virtlab: internal error: {type(e).__name__}: {e}\n"
             "virtlab: this is a bug of the checker; VIRTLAB_DEBUG=1 shows the details.")
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
