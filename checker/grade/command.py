"""``virtlab grade``: the command-line side of grading a class.

    virtlab grade 01 02 --inventory classe/ --limit 'tp1:!pc13' --ssh-config prof_ssh_config \\
        --csv notes.csv --csv-id email --scale 20 --html classe.html
    virtlab grade 01 --inventory classe/ --limit tp1 --list-hosts   # who would be graded
    virtlab grade --retry-unreachable --csv notes.csv     # hosts that were off last time
    virtlab grade --resume                                 # finish an interrupted run

Every command this module prints as advice is complete: it carries ``--db`` and the export
options of the run it comes from.

Exit codes: 0 every host graded (whatever the scores); 3 at least one host could not be graded
(unreachable, timeout, error: listed at the end and in the exports); 2 bad usage; 130
interrupted (every host already graded is kept: ``--resume`` continues). A gradebook that
cannot be read or written (damaged, foreign, disk full) is exit 2 with the reason; the hosts
recorded before it failed are kept.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_USAGE, EXIT_NOT_ALL, EXIT_INTERRUPTED = 0, 2, 3, 130


class GradeUsageError(Exception):
    pass


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("labs", metavar="LAB", nargs="*",
                    help="lab ids or numbers (may be left out with --resume/--retry-unreachable)")
    who = sp.add_mutually_exclusive_group()
    who.add_argument("--hosts", metavar="SPEC,...", action="append",
                     help="learner hosts: ssh://user@host[:port], comma-separated (the SSH user "
                          "is the learner)")
    who.add_argument("--inventory", metavar="INVENTORY",
                     help="Ansible inventory: a file (INI, YAML) or a directory (with "
                          "group_vars/, host_vars/), read by ansible-core; host variables "
                          "virtlab_learner (else ansible_user), email, virtlab_username, "
                          "virtlab_idnumber, ansible_host/port/user, "
                          "ansible_ssh_private_key_file, ansible_ssh_common_args")
    sp.add_argument("--limit", metavar="PATTERN",
                    help="only the inventory hosts this Ansible pattern selects "
                         "(e.g. 'tp1:!pc13', 'pc0*')")
    sp.add_argument("--list-hosts", action="store_true",
                    help="print the hosts that would be graded, grade nothing")
    sp.add_argument("--ssh-config", metavar="FILE",
                    help="ssh_config for the class (keys, known_hosts); default ~/.ssh/config")
    sp.add_argument("--accept-new-host-keys", action="store_true", default=None,
                    help="trust a learner host seen for the first time and record its key "
                         "(ssh's StrictHostKeyChecking accept-new); default: a host whose key "
                         "is not in known_hosts is refused")
    sp.add_argument("--workers", type=int, metavar="N",
                    # the rule, not its value here: the site's reference embeds this help
                    # (checker.grade.runner.default_workers)
                    help="hosts graded at once (default: 4 per CPU, from 2 to 16)")
    sp.add_argument("--timeout", type=int, metavar="S",
                    help="SSH connect timeout per host, seconds (default 10)")
    sp.add_argument("--host-timeout", type=float, metavar="S",
                    help="the most one host may take, all labs together (default 120)")
    sp.add_argument("--connect", metavar="URI",
                    help="libvirt URI template on each host, with {user} {host} {port} "
                         "(default qemu+ssh://{user}@{host}:{port}/system)")
    sp.add_argument("--db", metavar="FILE",
                    help="gradebook (default $XDG_DATA_HOME/virtlab/gradebook.sqlite)")
    sp.add_argument("--csv", metavar="FILE", help="write grades for the LMS (Moodle CSV import)")
    sp.add_argument("--csv-id", choices=("username", "email", "idnumber"), default=None,
                    help="the Moodle user field the CSV identifies learners by (default email)")
    sp.add_argument("--roster", metavar="FILE",
                    help="Moodle's participants export (CSV): the learners' Moodle identity, "
                         "matched to the hosts")
    sp.add_argument("--scale", choices=("points", "20", "100"), default=None,
                    help="grades in the CSV: lab points (default), on 20 or on 100")
    sp.add_argument("--json", metavar="FILE", help="write every result as JSON")
    sp.add_argument("--html", metavar="FILE", help="write the class report (HTML)")
    sp.add_argument("--retry-unreachable", action="store_true",
                    help="grade again only the hosts that failed to connect in the last run")
    sp.add_argument("--resume", action="store_true",
                    help="grade the hosts an interrupted last run did not reach")
    sp.add_argument("--lang", choices=("fr", "en"), help="language of messages (default fr)")


def _tr(lang: str, fr: str, en: str) -> str:
    return en if lang == "en" else fr


#: Optional libraries: (module, extra of the virtlab package, what needs it).
OPTIONAL = {"html": ("matplotlib", "grade", "--html (the class report's chart)"),
            "inventory": ("ansible", "grade", "--inventory (ansible-core reads it)")}


def install_hint(extra: str) -> str:
    """How to install an extra of virtlab, for the two ways the README installs it."""
    return (f"pip install 'virtlab[{extra}]' (in a checkout set up with `sudo bash .ci/install`:"
            f" .venv/bin/pip install '.[{extra}]')")


def _need(key: str) -> None:
    import importlib

    module, extra, what = OPTIONAL[key]
    try:
        importlib.import_module(module)
    except ImportError:
        raise GradeUsageError(f"{what} : il faut le paquet Python {module!r}, absent ici / "
                              f"needs the Python package {module!r}, not installed here: "
                              f"{install_hint(extra)}") from None


def _csv_options(args: argparse.Namespace) -> Any:
    from checker.grade.exports import CsvOptions, ExportError, Roster

    opts = CsvOptions(identity=args.csv_id or "email", scale=args.scale or "points",
                      roster=str(Path(args.roster).resolve()) if args.roster else None)
    if opts.roster:
        try:
            roster = Roster.read(opts.roster)
        except ExportError as e:
            raise GradeUsageError(str(e)) from None
        if opts.identity not in roster.fields:
            raise GradeUsageError(f"--roster {args.roster}: no {opts.identity} column for "
                                  f"--csv-id {opts.identity} (found: {', '.join(roster.fields)})")
    return opts


def _check_outputs(args: argparse.Namespace) -> None:
    if args.html:
        _need("html")
    if args.inventory:
        _need("inventory")
    if args.limit and not args.inventory:
        raise GradeUsageError("--limit selects hosts of an Ansible inventory: give --inventory")
    for opt in ("csv", "json", "html"):
        path = getattr(args, opt)
        if path:
            parent = Path(path).resolve().parent
            if not parent.is_dir():
                raise GradeUsageError(f"--{opt} {path}: directory {parent} does not exist")
            if Path(path).is_dir():
                raise GradeUsageError(f"--{opt} {path} is a directory")


def _options(args: argparse.Namespace, lang: str, stored: dict[str, Any] | None = None) -> Any:
    from checker.grade.grading import GradeOptions

    o = GradeOptions(**{k: v for k, v in (stored or {}).items()
                        if k in GradeOptions.__dataclass_fields__})
    o.lang = lang
    for name, attr in (("ssh_config", "ssh_config"), ("timeout", "timeout"),
                       ("host_timeout", "host_timeout"), ("workers", "workers"),
                       ("connect", "connect"),
                       ("accept_new_host_keys", "accept_new_host_keys")):
        v = getattr(args, attr)
        if v is not None:
            setattr(o, name, v)
    if o.workers < 1:
        raise GradeUsageError(f"--workers {o.workers}: must be at least 1")
    if o.timeout < 1:
        raise GradeUsageError(f"--timeout {o.timeout}: must be at least 1 second")
    if o.host_timeout <= 0:
        raise GradeUsageError(f"--host-timeout {o.host_timeout:g}: must be positive")
    if o.ssh_config and not Path(o.ssh_config).is_file():
        raise GradeUsageError(f"--ssh-config {o.ssh_config}: no such file")
    if o.ssh_config:
        o.ssh_config = str(Path(o.ssh_config).resolve())
        if any(c in o.ssh_config for c in '"\n\r'):
            raise GradeUsageError(f"--ssh-config {o.ssh_config!r}: a path with a double quote "
                                  "or a line break cannot be included in an ssh_config")
    for key in ("{user}", "{host}"):
        if key not in o.connect and "+ssh" in o.connect.split("://", 1)[0]:
            raise GradeUsageError(f"--connect {o.connect}: a qemu+ssh template needs {key}")
    try:
        o.connect.format(user="u", host="h", port=22)
    except (KeyError, IndexError, ValueError) as e:
        raise GradeUsageError(f"--connect {o.connect}: bad template ({e}); "
                              "use {user}, {host} and {port}") from None
    return o


class _Progress:
    """A rich progress bar on a terminal; nothing when stdout is not one."""

    def __init__(self, lang: str):
        self.lang = lang
        self.bar: Any = None
        self.task: Any = None
        self.failed = 0
        if sys.stdout.isatty():
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)

            self.bar = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(),
                TextColumn(_tr(lang, "[red]{task.fields[failed]} non évalué(s)",
                               "[red]{task.fields[failed]} not graded")),
                TimeElapsedColumn(), TextColumn("·"), TimeRemainingColumn(), transient=False)

    def start(self, run_id: int, total: int) -> None:
        if self.bar is not None:
            self.bar.start()
            self.task = self.bar.add_task(_tr(self.lang, f"Évaluation #{run_id}",
                                              f"Grading #{run_id}"), total=total, failed=0)

    def host(self, outcome: Any) -> None:
        if any(r["status"] != "graded" for r in outcome.results):
            self.failed += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1, failed=self.failed)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from checker.catalog import resolve
    from checker.model import resolve_lang
    from checker.grade.gradebook import Gradebook, GradebookError, default_path
    from checker.grade.targets import TargetError

    lang = resolve_lang(args.lang)
    say = lambda fr, en: print(_tr(lang, fr, en), file=sys.stderr)  # noqa: E731
    try:
        _check_outputs(args)
        csv_options = _csv_options(args)
        labs = [resolve(x).id for x in args.labs]
        if len(set(labs)) != len(labs):
            raise GradeUsageError(f"a lab is given twice: {' '.join(args.labs)}")
        if args.list_hosts:
            return _list_hosts(args, lang)
        db_path = Path(args.db) if args.db else default_path()
        gb = Gradebook(db_path)
    except (GradeUsageError, GradebookError, TargetError) as e:
        print(f"virtlab grade: {e}", file=sys.stderr)
        return EXIT_USAGE

    try:
        continuing = args.resume or args.retry_unreachable
        if continuing:
            if args.hosts or args.inventory:
                raise GradeUsageError("--resume and --retry-unreachable take the hosts of the last "
                                      "run: do not give --hosts or --inventory")
            last = gb.last_run(labs or None)
            if last is None:
                raise GradeUsageError(f"no earlier run{' of ' + ' '.join(labs) if labs else ''} "
                                      f"in {db_path}: nothing to resume or retry")
            root = gb.chain(last.id)[0]
            labs = list(root.labs)
            options = _options(args, lang if args.lang else last.lang, last.options)
            lang = options.lang
            targets = gb.pending(last.id, missing=args.resume,
                                 failed_to_connect=args.retry_unreachable)
            kind = "resume" if args.resume else "retry"
            if not targets:
                say(f"Rien à refaire : chaque hôte de l'exécution #{last.id} a été évalué.",
                    f"Nothing to do: every host of run #{last.id} was graded.")
                run_id = last.id
            else:
                run_id = gb.start_run(labs, targets, lang=lang, options=options.to_dict(),
                                      parent_id=last.id, kind=kind)
        else:
            if not labs:
                raise GradeUsageError("which lab? give at least one LAB (e.g. 01 or 01-hardware)")
            targets = _targets(args)
            options = _options(args, lang)
            run_id = gb.start_run(labs, targets, lang=lang, options=options.to_dict())
    except (GradeUsageError, TargetError, GradebookError) as e:
        print(f"virtlab grade: {e}", file=sys.stderr)
        gb.close()
        return EXIT_USAGE

    from checker.grade.grading import grade

    progress = _Progress(lang)
    # advice names files by absolute paths: it works as printed from any directory
    db_opt = f" --db {shlex.quote(str(db_path.resolve()))}"
    outs = [(fmt, getattr(args, fmt)) for fmt in ("csv", "json", "html") if getattr(args, fmt)]
    again = _export_options(args)
    t0 = time.monotonic()
    stage = "grading"  # then "exports": what an interrupt or a gradebook error stopped
    # SIGTERM (a closed session, a scheduler) ends the run like Ctrl-C: workers stopped,
    # the run marked interrupted, every host already graded kept.
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if targets:
            grade(gb, labs, targets, options, run_id=run_id,
                  on_start=progress.start, on_host=progress.host)
        stage = "exports"
        progress.stop()
        from checker.grade import exports

        view = gb.class_view(run_id)
        for fmt, path in outs:
            try:
                exports.write(view, path, fmt, csv_options)
            except exports.ExportError as e:
                print(f"virtlab grade: {e}", file=sys.stderr)
                return EXIT_USAGE
            except OSError as e:
                print(f"virtlab grade: cannot write {path}: {e.strerror}", file=sys.stderr)
                return EXIT_USAGE
    except KeyboardInterrupt:
        progress.stop()
        if stage != "exports":
            # an interrupt held while the run was being closed lands here once it is
            # complete: then only the exports are missing
            try:
                if gb.run(run_id).status == "complete":
                    stage = "exports"
            except GradebookError:
                pass
        if stage == "exports":
            say(f"Interrompu pendant l'écriture des exports. Toutes les notes sont enregistrées "
                f"(exécution #{run_id}). Réécrire les exports : "
                f"virtlab grade --resume{db_opt}{again}",
                f"Interrupted while writing the exports. Every grade is recorded "
                f"(run #{run_id}). Write the exports again: virtlab grade --resume{db_opt}{again}")
        else:
            say(f"Interrompu. Les hôtes déjà évalués sont enregistrés (exécution #{run_id}). "
                f"Reprendre : virtlab grade --resume{db_opt}{again}",
                f"Interrupted. The hosts already graded are recorded (run #{run_id}). "
                f"Continue with: virtlab grade --resume{db_opt}{again}")
        return EXIT_INTERRUPTED
    except GradebookError as e:
        # e.g. the disk filled up: every host recorded before stays; the others are pending.
        progress.stop()
        print(f"virtlab grade: {e}", file=sys.stderr)
        say(f"Arrêt : le carnet de notes ne peut plus être lu ou écrit. Les hôtes déjà "
            f"enregistrés sont conservés (exécution #{run_id}). Après correction (place "
            f"disque…), reprendre : virtlab grade --resume{db_opt}{again}",
            f"Stopped: the gradebook cannot be read or written. The hosts already recorded "
            f"are kept (run #{run_id}). Once fixed (disk space…), continue with: "
            f"virtlab grade --resume{db_opt}{again}")
        return EXIT_USAGE
    finally:
        progress.stop()
        signal.signal(signal.SIGTERM, old_term)
        gb.close()
    _summary(view, lang, time.monotonic() - t0, db_path, f"{db_opt}{again}",
             csv_options if args.csv else None)
    all_graded = all(lab in row.results and row.results[lab].status == "graded"
                     for row in view.rows for lab in view.labs)
    return EXIT_OK if all_graded else EXIT_NOT_ALL


def _export_options(args: argparse.Namespace) -> str:
    """The export options of this command line, quoted (files by absolute path), to repeat
    them in advice."""
    out = ""
    for opt in ("csv", "csv_id", "scale", "roster", "json", "html"):
        v = getattr(args, opt)
        if v:
            if opt in ("csv", "roster", "json", "html"):
                v = Path(v).resolve()
            out += f" --{opt.replace('_', '-')} {shlex.quote(str(v))}"
    return out


def _targets(args: argparse.Namespace) -> list[Any]:
    """The hosts of ``--inventory`` (with ``--limit``) or ``--hosts``."""
    from checker.grade.targets import from_inventory, from_specs

    if args.inventory:
        return from_inventory(args.inventory, args.limit)
    if args.hosts:
        return from_specs([s for h in args.hosts for s in h.split(",")])
    raise GradeUsageError("which hosts? give --hosts ssh://user@host,... or "
                          "--inventory INVENTORY")


def _list_hosts(args: argparse.Namespace, lang: str) -> int:
    """``--list-hosts``: the hosts the command would grade; nothing is graded or recorded."""
    if args.resume or args.retry_unreachable:
        raise GradeUsageError("--list-hosts lists the hosts of --inventory or --hosts")
    targets = _targets(args)
    from checker.reporters.text import clean as visible

    print(_tr(lang, f"  hôtes ({len(targets)}) :", f"  hosts ({len(targets)}):"))
    for t in targets:
        port = f":{t.ssh_port}" if t.ssh_port else ""
        who = [f"learner={t.learner}", f"ssh={t.ssh_user}@{t.ssh_host}{port}"]
        who += [f"{k}={v}" for k, v in (("email", t.email), ("username", t.username),
                                        ("idnumber", t.idnumber)) if v]
        print(visible(f"    {t.host}  " + " ".join(who)))
    return EXIT_OK


def _summary(view: Any, lang: str, elapsed: float, db_path: Path, again: str = "",
             csv_options: Any = None) -> None:
    not_done = []
    for row in view.rows:
        rs = [row.results.get(lab) for lab in view.labs]
        bad = next((r for r in rs if r is None or r.status != "graded"), "ok")
        if bad != "ok":
            not_done.append((row, bad))
    n = len(view.rows)
    print(_tr(lang, f"Exécution #{view.run.id} : {n - len(not_done)}/{n} hôte(s) évalué(s) "
                    f"en {elapsed:.1f} s — carnet de notes : {db_path}",
              f"Run #{view.run.id}: {n - len(not_done)}/{n} host(s) graded in {elapsed:.1f} s "
              f"— gradebook: {db_path}"))
    from checker.safetext import clean

    def visible(line: str) -> str:
        # host, learner and reason may come from the learner's machine: shown, never obeyed
        return clean(line).replace("\n", " ").rstrip()

    for row, r in not_done:
        status, reason = (r.status, r.reason) if r is not None else ("missing", "")
        print(visible(f"  {status:<11} {row.target.host} ({row.target.learner}) {reason}".rstrip()))
    if csv_options is not None:
        from checker.grade.exports import csv_plan

        plan = csv_plan(view, csv_options)
        print(_tr(lang, f"CSV : {len(plan.rows)} ligne(s) ; les apprenants non évalués n'y sont "
                        "pas (une note vide effacerait leur note dans Moodle).",
                  f"CSV: {len(plan.rows)} row(s); learners not graded are left out (an empty "
                  "grade would erase their grade in Moodle)."))
        for x in plan.left_out:
            if x.kind != "not_graded":  # those are listed above
                print(visible(_tr(lang, f"  absent du CSV : {x.host} ({x.learner}) : {x.fr}",
                                  f"  left out of the CSV: {x.host} ({x.learner}): {x.en}")))
    if not_done:
        print(_tr(lang, f"Réessayer ces hôtes : virtlab grade --retry-unreachable{again} "
                        f"(ou --resume)",
                  f"Retry those hosts: virtlab grade --retry-unreachable{again} (or --resume)"))
