"""The ``virtlab`` command line (also ``python -m checker``).

The commands and their options are data (:mod:`checker.commands`); this module builds the
argparse parser from them in the reader's language (``--lang``, read from the command line
before parsing, else the locale: :func:`checker.i18n.resolve_lang`; help, usage and usage
errors included) and runs the command. Exit codes are :class:`checker.exitcodes.Exit`
(``virtlab --help`` lists them).
Heavy modules (testinfra, libvirt, rich, jinja2) are imported inside the commands so that
``--help`` and ``list`` start fast; ``tests/test_cli.py`` asserts it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from checker.commands import (
    COMMANDS,
    DESCRIPTION,
    HELP,
    V_COMMAND,
    VERSION,
    Command,
    Option,
    exit_codes,
)
from checker.exitcodes import Exit, UsageError
from checker.i18n import Text, format_date, library_messages, message, resolve_lang
from checker.markup import plain
from checker.writable import why_unwritable, write_failed

__all__ = ["UsageError", "build_parser", "main"]

# --- messages ----------------------------------------------------------------------------

M_OBJECTIVES_COUNT = message("cli.list.objectives",
                             fr="{n} objectifs · {points} points · {section}",
                             en="{n} objectives · {points} points · {section}")
M_LIST_NEXT = message("cli.list.next", fr="Détails : virtlab show NN · vérifier : virtlab check NN",
                      en="Details: virtlab show NN · check: virtlab check NN")
M_MALFORMED = message("cli.malformed-lab", fr="virtlab : lab mal formé : {error}",
                      en="virtlab: malformed lab: {error}")
M_SECTION = message("cli.show.section", fr="Section du cours : {section}",
                    en="Course section: {section}")
M_OBJECTIVES = message("cli.show.objectives", fr="Objectifs :", en="Objectives:")
M_SHOW_CHECK = message("cli.show.check", fr="Vérifier : virtlab check {lab}",
                       en="Check: virtlab check {lab}")
M_SHOW_START = message("cli.show.start", fr="Préparer : virtlab start {lab}",
                       en="Prepare: virtlab start {lab}")
M_PROGRESS_HEAD = message("cli.progress.head", fr="Progression (enregistrée dans {path})",
                          en="Progress (stored in {path})")
M_NEVER = message("cli.progress.never", fr="jamais vérifié", en="never checked")
M_BEST = message("cli.progress.best",
                 fr="meilleur score {best}/{max}, dernière vérification {last}",
                 en="best score {best}/{max}, last check {last}")
M_LEFT = message("cli.progress.left",
                 fr="non réussis à la dernière vérification : {objectives}",
                 en="not passed at the last check: {objectives}")
M_ALL_DONE = message("cli.progress.all-done", fr="tout est réussi", en="all done")
M_NO_SOLUTION = message("cli.solve.none",
                        fr="{lab} n'a pas de solution de référence ({script} absent)",
                        en="{lab} has no reference solution ({script} missing)")
M_SOLVE_PLAN = message("cli.solve.plan",
                       fr="La solution de référence de {lab} va être appliquée sur cet hôte "
                          "(apprenant : {learner}). Elle exécute :",
                       en="The reference solution of {lab} will be applied to this host "
                          "(learner: {learner}). It runs:")
M_SOLVE_REFUSED = message("cli.solve.refused",
                          fr="Refusé sans --yes (réservé aux formateurs et aux tests).",
                          en="Refused without --yes (for instructors and tests).")
M_YES_NO = message("cli.ask.yes-no", fr=" [o/N] ", en=" [y/N] ")
M_NO_OBJECTIVE = message("cli.hint.no-objective",
                         fr="{lab} n'a pas d'objectif {objective!r}. Objectifs : {valid}",
                         en="{lab} has no objective {objective!r}. Objectives: {valid}")
M_HINT_NOT_RECORDED = message("cli.hint.cannot-record",
                              fr="impossible d'enregistrer l'indice : {error}",
                              en="cannot record the hint: {error}")
M_HINT = message("cli.hint.level", fr="  Indice {i}/{total} : {hint}",
                 en="  Hint {i}/{total}: {hint}")
M_HINT_LAST = message("cli.hint.last",
                      fr="C'était le dernier indice. Relisez les instructions : virtlab show {lab}",
                      en="That was the last hint. Read the instructions again: virtlab show {lab}")
M_HINT_NEXT = message("cli.hint.next", fr="Indice suivant : virtlab hint {lab} {objective}",
                      en="Next hint: virtlab hint {lab} {objective}")
M_STALE = message("cli.build.stale", fr="sorties périmées (lancez `virtlab build`) :\n  {files}",
                  en="stale outputs (run `virtlab build`):\n  {files}")
M_UNKNOWN_LAB = message("cli.unknown-lab",
                        fr="virtlab : lab inconnu {query!r}. Labs valides : {valid} (virtlab list)",
                        en="virtlab: unknown lab {query!r}. Valid labs: {valid} (virtlab list)")
M_ERROR = message("cli.error", fr="virtlab : {error}", en="virtlab: {error}")
M_INTERRUPTED = message("cli.interrupted", fr="virtlab : interrompu", en="virtlab: interrupted")
M_UNREACHABLE = message("cli.unreachable", fr="virtlab : impossible d'inspecter {host} : {reason}",
                        en="virtlab: cannot inspect {host}: {reason}")
M_FLOOD = message("cli.flood", fr="virtlab : {host} : {reason}", en="virtlab: {host}: {reason}")
M_INTERNAL = message("cli.internal",
                     fr="virtlab : erreur interne : {error}\nvirtlab : c'est un bogue du "
                        "vérificateur ; VIRTLAB_DEBUG=1 affiche les détails.",
                     en="virtlab: internal error: {error}\nvirtlab: this is a bug of the "
                        "checker; VIRTLAB_DEBUG=1 shows the details.")
# argparse's own words, through its public API (formatter prefix, group titles, error())
M_USAGE = message("cli.usage", fr="usage : ", en="usage: ")
M_POSITIONALS = message("cli.positionals", fr="arguments positionnels",
                        en="positional arguments")
M_OPTIONS = message("cli.options", fr="options", en="options")
M_COMMANDS = message("cli.commands", fr="commandes", en="commands")
# argparse writes "TITLE:" after a group's title: French typography wants a space before it
M_HEADING = message("cli.heading", fr="{title} ", en="{title}")
M_EXIT_CODES = message("cli.exit-codes", fr="codes de sortie :", en="exit codes:")
M_USAGE_ERROR = message("cli.usage-error", fr="{prog} : erreur : {error}\nAide : {prog} --help",
                        en="{prog}: error: {error}\nHelp: {prog} --help")

# argparse's error sentences (its English words, the variable parts captured), said again in
# the reader's language by _Parser.error(); a sentence not listed here is shown as it is.
_ARGPARSE_ERRORS: tuple[tuple[re.Pattern[str], Text], ...] = tuple(
    (re.compile(pattern, re.S), text) for pattern, text in (
        (r"unrecognized arguments: (?P<args>.*)", message(
            "cli.argparse.unrecognized", fr="arguments non reconnus : {args}",
            en="unrecognized arguments: {args}")),
        (r"the following arguments are required: (?P<args>.*)", message(
            "cli.argparse.required", fr="arguments obligatoires manquants : {args}",
            en="the following arguments are required: {args}")),
        (r"argument (?P<arg>[^:]+): invalid choice: (?P<value>.*) \(choose from (?P<choices>.*)\)",
         message("cli.argparse.choice",
                 fr="argument {arg} : choix invalide : {value} (choix possibles : {choices})",
                 en="argument {arg}: invalid choice: {value} (choose from {choices})")),
        (r"argument (?P<arg>[^:]+): expected one argument", message(
            "cli.argparse.one-value", fr="argument {arg} : une valeur est attendue",
            en="argument {arg}: expected one argument")),
        (r"argument (?P<arg>[^:]+): not allowed with argument (?P<other>.*)", message(
            "cli.argparse.exclusive", fr="argument {arg} : incompatible avec l'argument {other}",
            en="argument {arg}: not allowed with argument {other}")),
        (r"argument (?P<arg>[^:]+): invalid (?P<type>\w+) value: (?P<value>.*)", message(
            "cli.argparse.bad-value", fr="argument {arg} : valeur invalide ({type}) : {value}",
            en="argument {arg}: invalid {type} value: {value}")),
        (r"argument (?P<arg>[^:]+): ignored explicit argument (?P<value>.*)", message(
            "cli.argparse.no-value", fr="argument {arg} : valeur inattendue {value}",
            en="argument {arg}: ignored explicit argument {value}")),
        # last: our own converters' messages (already in the reader's language)
        (r"argument (?P<arg>[^:]+): (?P<message>.*)", message(
            "cli.argparse.argument", fr="argument {arg} : {message}",
            en="argument {arg}: {message}")),
    ))


def _argparse_error(error: str, lang: str) -> str:
    """argparse's error sentence ``error`` in ``lang`` (as it is when not recognised)."""
    for pattern, text in _ARGPARSE_ERRORS:
        m = pattern.fullmatch(error)
        if m:
            return text.format(**m.groupdict()).get(lang)
    return error


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def _lang(args: argparse.Namespace | None) -> str:
    return resolve_lang(getattr(args, "lang", None))


# --- commands --------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    from checker.catalog import CatalogError, lab_ids, resolve

    lang = _lang(args)
    labs, broken = [], []
    for lab_id in lab_ids():
        try:
            labs.append(resolve(lab_id))
        except CatalogError as e:  # list the others; say which one is broken, and why
            broken.append(e.text.get(lang))
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
            print(f"{lab.id:<{w}}{plain(lab.title.get(lang))}")
            print(f"{'':<{w}}" + M_OBJECTIVES_COUNT.format(
                n=len(lab.objectives), points=lab.max_score, section=lab.section).get(lang))
        print()
        print(M_LIST_NEXT.get(lang))
    for msg in broken:
        _say(M_MALFORMED.format(error=msg).get(lang))
    return Exit.USAGE if broken else Exit.OK


def cmd_show(args: argparse.Namespace) -> int:
    from checker.catalog import resolve

    lab = resolve(args.lab)
    lang = _lang(args)
    from checker.reporters.text import default_width

    width = default_width()
    print(f"{lab.id} — {plain(lab.title.get(lang))}")
    print(M_SECTION.format(section=lab.section).get(lang))
    print()
    print(plain(lab.summary.get(lang).strip()))
    print()
    print(M_OBJECTIVES.get(lang))
    id_w = max(len(o.id) for o in lab.objectives) + 2
    lead = 2 + id_w + len("99 pts  ")
    for o in lab.objectives:
        title = textwrap.wrap(plain(o.title.get(lang)), width=max(30, width - lead),
                              break_on_hyphens=False) or [""]
        print(f"  {o.id:<{id_w}}{o.points:>2} pts  {title[0]}")
        for more in title[1:]:
            print(" " * lead + more)
    print()
    print(M_SHOW_CHECK.format(lab=lab.id).get(lang))
    if lab.has_lifecycle:
        print(M_SHOW_START.format(lab=lab.id).get(lang))
    return Exit.OK


def _writable(path: str, lang: str) -> None:
    """Refuse an --output path that cannot be written, before spending time on the check."""
    why = why_unwritable(path)
    if why is not None:
        raise UsageError(why.get(lang))


def cmd_progress(args: argparse.Namespace) -> int:
    from checker.progress import store_path, summary

    lang = _lang(args)
    rows = summary(lang)
    if args.format == "json":
        import json
        from dataclasses import asdict

        print(json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2))
        return Exit.OK
    print(M_PROGRESS_HEAD.format(path=store_path()).get(lang))
    for r in rows:
        if r.best_score is None:
            state = M_NEVER.get(lang)
        else:
            state = M_BEST.format(best=r.best_score, max=r.max_score,
                                  last=format_date(r.last_check, lang)).get(lang)
        print(f"{r.lab:<24} {state}")
        if r.left and r.best_score is not None:
            print("    " + M_LEFT.format(objectives=", ".join(r.left)).get(lang))
        elif r.best_score is not None:
            print("    " + M_ALL_DONE.get(lang))
    return Exit.OK


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
            raise UsageError(write_failed(args.output, e).get(lang)) from None
        if args.format != "text":
            print(render(report, "text"), end="")
    else:
        sys.stdout.write(out)
    return Exit.OK if report.passed else Exit.FAILED


def cmd_solve(args: argparse.Namespace) -> int:
    import subprocess

    from checker.catalog import resolve
    from checker.probes.learner import default_learner

    lab = resolve(args.lab)
    lang = _lang(args)
    script = lab.path / "solution.sh"
    if not script.is_file():
        raise UsageError(M_NO_SOLUTION.format(lab=lab.id, script=script).get(lang))
    learner = default_learner(args.user)
    _say(M_SOLVE_PLAN.format(lab=lab.id, learner=learner).get(lang))
    _say(script.read_text(encoding="utf-8"))
    if not args.yes:
        _say(M_SOLVE_REFUSED.get(lang))
        return Exit.USAGE
    env = dict(os.environ, VIRTLAB_USER=learner)
    if args.connect:
        env["LIBVIRT_DEFAULT_URI"] = args.connect
    return subprocess.call(["bash", "-eu", str(script)], env=env, cwd=str(lab.path))


def _ask_tty(lang: str) -> Callable[[str], bool] | None:
    """A yes/no question on the terminal, or None when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        return None

    def ask(question: str) -> bool:
        try:
            answer = input(question + M_YES_NO.get(lang))
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
    return int(run(lab, args.command, args.connect, yes=args.yes, lang=lang,
                   ask=_ask_tty(lang)))


def _local_release() -> Any:
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
        raise UsageError(M_NO_OBJECTIVE.format(
            lab=lab.id, objective=args.objective,
            valid=", ".join(o.id for o in lab.objectives)).get(lang)) from None
    try:
        level = hints.reveal(lab, obj)
    except OSError as e:
        raise UsageError(M_HINT_NOT_RECORDED.format(error=e).get(lang)) from None
    total = len(obj.hints)
    release = _local_release()
    print(f"{lab.id} / {obj.id} — {plain(obj.title.get(lang))}")
    for i, h in enumerate(obj.hints[:level], 1):
        print(M_HINT.format(i=i, total=total, hint=plain(release.expand(h.get(lang)))).get(lang))
    if level >= total:
        print(M_HINT_LAST.format(lab=lab.id).get(lang))
    else:
        print(M_HINT_NEXT.format(lab=lab.id, objective=obj.id).get(lang))
    return Exit.OK


def cmd_grade(args: argparse.Namespace) -> int:
    from checker.grade.command import run

    return run(args)


def cmd_build(args: argparse.Namespace) -> int:
    from checker.build import build

    stale = build(check_only=args.check)
    if args.check and stale:
        _say(M_STALE.format(files="\n  ".join(stale)).get(_lang(args)))
        return Exit.FAILED
    return Exit.OK


# --- parser: built from checker.commands, in the reader's language ---------------------

class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's help in the reader's language: the usage prefix is ours."""

    lang = "fr"
    prefix: str | None = None

    def add_usage(self, usage: str | None, actions: Any, groups: Any,
                  prefix: str | None = None) -> None:
        if prefix is None:
            prefix = self.prefix if self.prefix is not None else M_USAGE.get(self.lang)
        super().add_usage(usage, actions, groups, prefix)


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are in the reader's language (exit 2)."""

    def __init__(self, *args: Any, lang: str = "fr", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lang = lang

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(Exit.USAGE, M_USAGE_ERROR.format(prog=self.prog, error=_argparse_error(
            message, self.lang)).get(self.lang) + "\n")


def _argv_lang(argv: Sequence[str]) -> str:
    """The reader's language, read from ``--lang`` before the command line is parsed."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(argv):
            return resolve_lang(argv[i + 1])
        if arg.startswith("--lang="):
            return resolve_lang(arg.partition("=")[2])
    return resolve_lang(None)


def _width() -> int:
    return max(40, min(shutil.get_terminal_size().columns, 100) - 2)


def _epilog(lang: str) -> str:
    lines = [M_EXIT_CODES.get(lang)]
    for code, text in exit_codes():
        lines += textwrap.wrap(text.get(lang), width=_width(), initial_indent=f"  {code:<5}",
                               subsequent_indent=" " * 7, break_on_hyphens=False)
    return "\n".join(lines)


def _converter(opt: Option, lang: str) -> Callable[[str], Any] | None:
    if opt.convert is None:
        return None
    convert = opt.convert(lang)
    if convert in (int, float):
        return convert  # argparse says "invalid int value"

    def read(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return read


def _add_command(sub: Any, command: Command, lang: str, formatter: type[_Formatter]
                 ) -> _Parser:
    sp: _Parser = sub.add_parser(command.name, help=command.help.get(lang),
                                 description=textwrap.fill(_capital(command.help.get(lang)),
                                                           _width()),
                                 add_help=False, formatter_class=formatter, lang=lang)
    positionals = sp.add_argument_group(_heading(M_POSITIONALS, lang))
    optionals = sp.add_argument_group(_heading(M_OPTIONS, lang))
    optionals.add_argument("-h", "--help", action="help", help=HELP.get(lang))
    exclusive: dict[str, Any] = {}
    for o in command.options:
        kwargs: dict[str, Any] = {}
        if o.help is not None:
            kwargs["help"] = o.help.get(lang)
        if o.positional:
            target: Any = positionals
            kwargs["metavar"] = o.label(lang)
            if o.nargs:
                kwargs["nargs"] = o.nargs
        else:
            target = optionals
            if o.exclusive:
                if o.exclusive not in exclusive:
                    exclusive[o.exclusive] = optionals.add_mutually_exclusive_group()
                target = exclusive[o.exclusive]
            if o.action:
                kwargs["action"] = o.action
            if o.metavar:
                kwargs["metavar"] = o.metavar.get(lang)
            if o.default is not None:
                kwargs["default"] = o.default
        if o.choices:
            kwargs["choices"] = o.choices
        convert = _converter(o, lang)
        if convert is not None:
            kwargs["type"] = convert
        target.add_argument(*o.flags, **kwargs)
    sp.set_defaults(func=globals()[command.handler])
    return sp


def _heading(title: Text, lang: str) -> str:
    return M_HEADING.format(title=title.get(lang)).get(lang)


def _capital(s: str) -> str:
    s = s.rstrip(".")
    return s[:1].upper() + s[1:] + "."


def build_parser(lang: str | None = None) -> argparse.ArgumentParser:
    """The ``virtlab`` parser, every text in ``lang`` (default: the reader's language)."""
    lang = resolve_lang(lang)
    from checker import __version__

    formatter = type("Formatter", (_Formatter,), {"lang": lang})
    p = _Parser(prog="virtlab", description=textwrap.fill(DESCRIPTION.get(lang), _width()),
                epilog=_epilog(lang), add_help=False, formatter_class=formatter, lang=lang)
    options = p.add_argument_group(_heading(M_OPTIONS, lang))
    options.add_argument("-h", "--help", action="help", help=HELP.get(lang))
    options.add_argument("--version", action="version", version=f"virtlab {__version__}",
                         help=VERSION.get(lang))
    sub = p.add_subparsers(title=_heading(M_COMMANDS, lang), dest="command",
                             metavar=V_COMMAND.get(lang))
    sub.required = True
    for command in COMMANDS.values():
        _add_command(sub, command, lang, formatter)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_argv_lang(argv))
    args = parser.parse_args(argv)
    from checker.catalog import CatalogError, UnknownLab

    lang = _lang(args)
    try:
        # libvirt's own words inside our messages (start, finish, watch…) in the same language
        with library_messages(lang):
            return int(args.func(args) or 0)
    except UnknownLab as e:
        _say(M_UNKNOWN_LAB.format(query=e.query, valid=", ".join(e.valid)).get(lang))
        return Exit.USAGE
    except CatalogError as e:
        _say(M_MALFORMED.format(error=e.text.get(lang)).get(lang))
        return Exit.USAGE
    except UsageError as e:
        text = getattr(e, "text", None)  # BuildError, GradeUsageError: both languages
        _say(M_ERROR.format(error=text.get(lang) if isinstance(text, Text) else e).get(lang))
        return Exit.USAGE
    except KeyboardInterrupt:
        _say(M_INTERRUPTED.get(lang))
        return Exit.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`virtlab list | head`): not an error worth a traceback.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return Exit.OK
    except Exception as e:
        from checker.engine import BadHostSpec, TargetUnreachable
        from checker.probes.output import OutputFlood
        from checker.safetext import clean

        if isinstance(e, BadHostSpec):
            _say(M_ERROR.format(error=clean(e.text.get(lang))).get(lang))
            return Exit.USAGE
        if isinstance(e, TargetUnreachable):
            # the reason may be what the learner's host printed: shown, never obeyed
            host, reason = clean(e.host), clean(e.reason).replace("\n", " ")
            _say(M_UNREACHABLE.format(host=host, reason=reason).get(lang))
            return Exit.UNREACHABLE
        if isinstance(e, OutputFlood):
            _say(M_FLOOD.format(host=getattr(args, "host", ""), reason=e.text.get(lang))
                 .get(lang))
            return Exit.UNREACHABLE
        if os.environ.get("VIRTLAB_DEBUG"):
            raise
        _say(M_INTERNAL.format(error=f"{type(e).__name__}: {e}").get(lang))
        return Exit.INTERNAL


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
