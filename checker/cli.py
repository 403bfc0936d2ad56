"""The ``virtlab`` command line (also ``python -m checker``).

Exit codes of ``check``: 0 every objective passed; 1 at least one did not; 2 bad usage
(unknown lab, bad option, unreadable file); 3 the target could not be inspected at all.
Heavy modules are imported inside the commands so that ``--help`` and ``list`` start fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class UsageError(Exception):
    pass


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def _lang(args: argparse.Namespace) -> str:
    from checker.engine import resolve_lang

    return resolve_lang(getattr(args, "lang", None))


def _tr(lang: str, fr: str, en: str) -> str:
    return en if lang == "en" else fr


# --- commands --------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    from checker.catalog import all_labs

    lang = _lang(args)
    labs = all_labs()
    if args.format == "json":
        import json

        print(json.dumps([{
            "id": lab.id, "number": lab.number, "title": lab.title.get(lang),
            "section": lab.section, "objectives": len(lab.objectives),
            "max_score": lab.max_score, "has_lifecycle": lab.has_lifecycle,
        } for lab in labs], ensure_ascii=False, indent=2))
        return EXIT_OK
    for lab in labs:
        n = len(lab.objectives)
        print(f"{lab.id:<22} {lab.title.get(lang)}  "
              f"({n} {_tr(lang, 'objectifs', 'objectives')}, {lab.max_score} pts; {lab.section})")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from checker.catalog import resolve

    lab = resolve(args.lab)
    lang = _lang(args)
    print(f"{lab.id} — {lab.title.get(lang)}")
    print(f"{_tr(lang, 'Section du cours', 'Course section')}: {lab.section}")
    print()
    print(lab.summary.get(lang))
    print()
    print(_tr(lang, "Objectifs :", "Objectives:"))
    for o in lab.objectives:
        print(f"  {o.id:<24} {o.points:>2} pts  {o.title.get(lang)}")
    print()
    print(_tr(lang, f"Vérifier : virtlab check {lab.id}", f"Check: virtlab check {lab.id}"))
    if lab.has_lifecycle:
        print(_tr(lang, f"Préparer : virtlab start {lab.id}", f"Prepare: virtlab start {lab.id}"))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from checker.engine import check
    from checker.reporters import render

    report = check(args.lab, args.host, connect=args.connect, user=args.user,
                   lang=args.lang, ssh_config=getattr(args, "ssh_config", None),
                   timeout=args.timeout)
    opts: dict[str, Any] = {}
    if args.format == "text" and args.output:
        opts["color"] = False
    out = render(report, args.format, **opts)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(out)
        except OSError as e:
            raise UsageError(f"cannot write {args.output}: {e.strerror}") from None
        if args.format != "text":
            print(render(report, "text"), end="")
    else:
        sys.stdout.write(out)
    return EXIT_OK if report.passed else EXIT_FAILED


def _confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        return False
    try:
        return input(question + " [y/N] ").strip().lower() in ("y", "yes", "o", "oui")
    except EOFError:
        return False


def cmd_solve(args: argparse.Namespace) -> int:
    import subprocess

    from checker.catalog import resolve
    from checker.probes.learner import default_learner

    lab = resolve(args.lab)
    lang = _lang(args)
    script = lab.path / "solution.sh"
    if not script.is_file():
        raise UsageError(f"{lab.id} has no reference solution ({script} missing)")
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


# --- parser ----------------------------------------------------------------------------

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
    sp.add_argument("--timeout", type=int, default=None, metavar="S",
                    help="connect timeout for remote hosts, in seconds")
    lang_opt(sp)
    sp.set_defaults(func=cmd_check)

    sp = sub.add_parser("solve", help="apply a lab's reference solution (instructors, tests)")
    sp.add_argument("lab", metavar="LAB")
    sp.add_argument("--yes", action="store_true", help="do it (refused without)")
    sp.add_argument("--user", metavar="NAME")
    sp.add_argument("--connect", metavar="URI")
    lang_opt(sp)
    sp.set_defaults(func=cmd_solve)

    sp = sub.add_parser("build", help="regenerate notebooks and site pages from labs/")
    sp.add_argument("--check", action="store_true", help="fail (exit 1) if a committed output is stale")
    sp.set_defaults(func=cmd_build)
    return p


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

    try:
        return int(args.func(args) or 0)
    except UnknownLab as e:
        _say(f"virtlab: unknown lab {e.query!r}. Valid labs: {', '.join(e.valid)}")
        return EXIT_USAGE
    except CatalogError as e:
        _say(f"virtlab: malformed lab: {e}")
        return EXIT_USAGE
    except UsageError as e:
        _say(f"virtlab: {e}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("virtlab: interrupted")
        return 130
    except Exception as e:
        from checker.engine import BadHostSpec, TargetUnreachable

        if isinstance(e, BadHostSpec):
            _say(f"virtlab: {e}")
            return EXIT_USAGE
        if isinstance(e, TargetUnreachable):
            _say(f"virtlab: cannot inspect {e.host}: {e.reason}")
            return EXIT_UNREACHABLE
        raise


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
