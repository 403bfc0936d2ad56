"""``virtlab grade``: the command-line side of grading a class.

    virtlab grade 01 02 --inventory classe/ --limit 'tp1:!pc13' --ssh-config prof_ssh_config \\
        --csv notes.csv --csv-id email --scale 20 --html classe.html
    virtlab grade 01 --inventory classe/ --limit tp1 --list-hosts   # who would be graded
    virtlab grade --retry-unreachable --csv notes.csv     # hosts that were off last time
    virtlab grade --resume                                 # finish an interrupted run

Every command this module prints as advice is complete: it carries ``--db`` and the export
options of the run it comes from.

Exit codes (:class:`checker.exitcodes.Exit`): OK every host graded (whatever the scores);
UNREACHABLE at least one host could not be graded (unreachable, timeout, error: listed at the
end and in the exports); USAGE bad usage; INTERRUPTED (every host already graded is kept:
``--resume`` continues). A gradebook that cannot be read or written (damaged, foreign, disk
full) is USAGE with the reason; the hosts recorded before it failed are kept. The options are
data, in :mod:`checker.commands`; every message is in the catalogue (:mod:`checker.i18n`).
"""

from __future__ import annotations

import argparse
import gc
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from checker.exitcodes import Exit, UsageError
from checker.grade.formats import EXPORTS
from checker.i18n import Text, format_number, message
from checker.writable import why_unwritable, write_failed


class GradeUsageError(UsageError):
    """Bad usage of ``virtlab grade``: the message, in both languages."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.en)
        self.text = text


M_ERROR = message("grade.error", fr="virtlab grade : {error}", en="virtlab grade: {error}")
M_NEED = message("grade.need-package",
                 fr="{what} : il faut le paquet Python {module!r}, absent ici : {install}",
                 en="{what}: needs the Python package {module!r}, not installed here: {install}")
M_INSTALL = message("grade.install-extra",
                    fr="pip install 'virtlab[{extra}]' (dans une copie installée avec `sudo bash "
                       ".ci/install` : .venv/bin/pip install '.[{extra}]')",
                    en="pip install 'virtlab[{extra}]' (in a checkout set up with `sudo bash "
                       ".ci/install`: .venv/bin/pip install '.[{extra}]')")
M_NO_COLUMN = message("grade.roster-no-column",
                      fr="--roster {roster} : pas de colonne {identity} pour --csv-id {identity} "
                         "(trouvées : {found})",
                      en="--roster {roster}: no {identity} column for --csv-id {identity} "
                         "(found: {found})")
M_LIMIT = message("grade.limit-needs-inventory",
                  fr="--limit sélectionne des hôtes d'un inventaire Ansible : donnez --inventory",
                  en="--limit selects hosts of an Ansible inventory: give --inventory")
M_OUTPUT = message("grade.output-refused", fr="--{opt} : {reason}", en="--{opt}: {reason}")
M_WORKERS = message("grade.workers-min", fr="--workers {n} : il en faut au moins 1",
                    en="--workers {n}: must be at least 1")
M_TIMEOUT = message("grade.timeout-min", fr="--timeout {n} : au moins 1 seconde",
                    en="--timeout {n}: must be at least 1 second")
M_HOST_TIMEOUT = message("grade.host-timeout-min", fr="--host-timeout {n} : doit être positif",
                         en="--host-timeout {n}: must be positive")
M_NO_SSH_CONFIG = message("grade.ssh-config-missing",
                          fr="--ssh-config {path} : fichier introuvable",
                          en="--ssh-config {path}: no such file")
M_SSH_CONFIG_CHARS = message(
    "grade.ssh-config-chars",
    fr="--ssh-config {path!r} : un chemin avec un guillemet double ou un saut de ligne ne peut "
       "pas être inclus dans un ssh_config",
    en="--ssh-config {path!r}: a path with a double quote or a line break cannot be included "
       "in an ssh_config")
M_CONNECT_KEY = message("grade.connect-key",
                        fr="--connect {uri} : un modèle qemu+ssh doit contenir {key}",
                        en="--connect {uri}: a qemu+ssh template needs {key}")
M_CONNECT_BAD = message("grade.connect-bad",
                        fr="--connect {uri} : modèle invalide ({error}) ; utilisez {{user}}, "
                           "{{host}} et {{port}}",
                        en="--connect {uri}: bad template ({error}); use {{user}}, {{host}} "
                           "and {{port}}")
M_TWICE = message("grade.lab-twice", fr="un lab est donné deux fois : {labs}",
                  en="a lab is given twice: {labs}")
M_RESUME_HOSTS = message(
    "grade.resume-hosts",
    fr="--resume et --retry-unreachable reprennent les hôtes de la dernière exécution : ne "
       "donnez ni --hosts ni --inventory",
    en="--resume and --retry-unreachable take the hosts of the last run: do not give --hosts "
       "or --inventory")
M_NO_RUN = message("grade.no-earlier-run",
                   fr="aucune exécution précédente dans {db} : rien à reprendre ni à réessayer",
                   en="no earlier run in {db}: nothing to resume or retry")
M_NO_RUN_OF = message("grade.no-earlier-run-of",
                      fr="aucune exécution précédente de {labs} dans {db} : rien à reprendre ni à "
                         "réessayer",
                      en="no earlier run of {labs} in {db}: nothing to resume or retry")
M_WHICH_LAB = message("grade.which-lab",
                      fr="quel lab ? donnez au moins un LAB (par exemple 01 ou 01-hardware)",
                      en="which lab? give at least one LAB (e.g. 01 or 01-hardware)")
M_WHICH_HOSTS = message("grade.which-hosts",
                        fr="quels hôtes ? donnez --hosts ssh://utilisateur@hôte,... ou "
                           "--inventory INVENTORY",
                        en="which hosts? give --hosts ssh://user@host,... or "
                           "--inventory INVENTORY")
M_LIST_HOSTS = message("grade.list-hosts-only",
                       fr="--list-hosts liste les hôtes de --inventory ou de --hosts",
                       en="--list-hosts lists the hosts of --inventory or --hosts")
M_BAR_FAILED = message("grade.bar.failed", fr="[red]{task.fields[failed]} non évalué(s)",
                       en="[red]{task.fields[failed]} not graded")
M_BAR_RUN = message("grade.bar.run", fr="Évaluation #{run}", en="Grading #{run}")
M_NOTHING = message("grade.nothing-to-do",
                    fr="Rien à refaire : chaque hôte de l'exécution #{run} a été évalué.",
                    en="Nothing to do: every host of run #{run} was graded.")
M_STOPPED_EXPORTS = message(
    "grade.interrupted-exports",
    fr="Interrompu pendant l'écriture des exports. Toutes les notes sont enregistrées "
       "(exécution #{run}). Réécrire les exports : virtlab grade --resume{again}",
    en="Interrupted while writing the exports. Every grade is recorded "
       "(run #{run}). Write the exports again: virtlab grade --resume{again}")
M_STOPPED = message(
    "grade.interrupted",
    fr="Interrompu. Les hôtes déjà évalués sont enregistrés (exécution #{run}). "
       "Reprendre : virtlab grade --resume{again}",
    en="Interrupted. The hosts already graded are recorded (run #{run}). "
       "Continue with: virtlab grade --resume{again}")
M_GRADEBOOK_LOST = message(
    "grade.gradebook-lost",
    fr="Arrêt : le carnet de notes ne peut plus être lu ou écrit. Les hôtes déjà "
       "enregistrés sont conservés (exécution #{run}). Après correction (place "
       "disque…), reprendre : virtlab grade --resume{again}",
    en="Stopped: the gradebook cannot be read or written. The hosts already recorded "
       "are kept (run #{run}). Once fixed (disk space…), continue with: "
       "virtlab grade --resume{again}")
M_HOSTS = message("grade.hosts", fr="  hôtes ({n}) :", en="  hosts ({n}):")
M_SUMMARY = message("grade.summary",
                    fr="Exécution #{run} : {done}/{n} hôte(s) évalué(s) en {seconds} s — carnet "
                       "de notes : {db}",
                    en="Run #{run}: {done}/{n} host(s) graded in {seconds} s — gradebook: {db}")
M_CSV_ROWS = message("grade.csv-rows",
                     fr="CSV : {n} ligne(s) ; les apprenants non évalués n'y sont pas (une note "
                        "vide effacerait leur note dans Moodle).",
                     en="CSV: {n} row(s); learners not graded are left out (an empty grade "
                        "would erase their grade in Moodle).")
M_CSV_LEFT_OUT = message("grade.csv-left-out", fr="  absent du CSV : {host} ({learner}) : {why}",
                         en="  left out of the CSV: {host} ({learner}): {why}")
M_RETRY = message("grade.retry",
                  fr="Réessayer ces hôtes : virtlab grade --retry-unreachable{again} (ou --resume)",
                  en="Retry those hosts: virtlab grade --retry-unreachable{again} (or --resume)")

#: Optional libraries: (module, extra of the virtlab package, what needs it).
OPTIONAL: dict[str, tuple[str, str, Text]] = {
    "html": ("matplotlib", "grade", message("grade.need.html",
                                            fr="--html (le graphique du rapport de classe)",
                                            en="--html (the class report's chart)")),
    "inventory": ("ansible", "grade", message("grade.need.inventory",
                                              fr="--inventory (ansible-core le lit)",
                                              en="--inventory (ansible-core reads it)"))}


def install_hint(extra: str) -> Text:
    """How to install an extra of virtlab, for the two ways the README installs it."""
    return M_INSTALL.format(extra=extra)


def _need(key: str) -> None:
    import importlib

    module, extra, what = OPTIONAL[key]
    try:
        importlib.import_module(module)
    except ImportError:
        hint = install_hint(extra)
        raise GradeUsageError(Text(
            M_NEED.fr.format(what=what.fr, module=module, install=hint.fr),
            M_NEED.en.format(what=what.en, module=module, install=hint.en))) from None


def _csv_options(args: argparse.Namespace) -> Any:
    from checker.grade.exports import CsvOptions, Roster

    opts = CsvOptions(identity=args.csv_id or "email", scale=args.scale or "points",
                      roster=str(Path(args.roster).resolve()) if args.roster else None)
    if opts.roster:
        roster = Roster.read(opts.roster)  # an ExportError is bad usage (run() says it)
        if opts.identity not in roster.fields:
            raise GradeUsageError(M_NO_COLUMN.format(roster=args.roster, identity=opts.identity,
                                                     found=", ".join(roster.fields)))
    return opts


def _check_outputs(args: argparse.Namespace) -> None:
    if args.html:
        _need("html")
    if args.inventory:
        _need("inventory")
    if args.limit and not args.inventory:
        raise GradeUsageError(M_LIMIT)
    for opt in EXPORTS:
        path = getattr(args, opt)
        why = why_unwritable(path) if path else None
        if why is not None:
            raise GradeUsageError(M_OUTPUT.format(opt=opt, reason=why))


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
        if v is not None and not (attr == "accept_new_host_keys" and v is False):
            setattr(o, name, v)
    if o.workers is not None and o.workers < 1:
        raise GradeUsageError(M_WORKERS.format(n=o.workers))
    if o.timeout < 1:
        raise GradeUsageError(M_TIMEOUT.format(n=o.timeout))
    if o.host_timeout <= 0:
        raise GradeUsageError(M_HOST_TIMEOUT.format(n=f"{o.host_timeout:g}"))
    if o.ssh_config and not Path(o.ssh_config).is_file():
        raise GradeUsageError(M_NO_SSH_CONFIG.format(path=o.ssh_config))
    if o.ssh_config:
        o.ssh_config = str(Path(o.ssh_config).resolve())
        if any(c in o.ssh_config for c in '"\n\r'):
            raise GradeUsageError(M_SSH_CONFIG_CHARS.format(path=o.ssh_config))
    for key in ("{user}", "{host}"):
        if key not in o.connect and "+ssh" in o.connect.split("://", 1)[0]:
            raise GradeUsageError(M_CONNECT_KEY.format(uri=o.connect, key=key))
    try:
        o.connect.format(user="u", host="h", port=22)
    except (KeyError, IndexError, ValueError) as e:
        raise GradeUsageError(M_CONNECT_BAD.format(uri=o.connect, error=e)) from None
    return o


class _Progress:
    """A rich progress bar on a terminal; nothing when stdout is not one."""

    def __init__(self, lang: str):
        self.lang = lang
        self.bar: Any = None
        self.task: Any = None
        self.failed = 0
        if sys.stdout.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(),
                TextColumn(M_BAR_FAILED.get(lang)),
                TimeElapsedColumn(), TextColumn("·"), TimeRemainingColumn(), transient=False)

    def start(self, run_id: int, total: int) -> None:
        if self.bar is not None:
            self.bar.start()
            self.task = self.bar.add_task(M_BAR_RUN.format(run=run_id).get(self.lang),
                                          total=total, failed=0)

    def host(self, outcome: Any) -> None:
        if any(r["status"] != "graded" for r in outcome.results):
            self.failed += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1, failed=self.failed)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


#: :func:`_ready_the_end` waits this long first: the run's critical path (its fork server
#: started, ~0.05 s after grading begins) is not slowed by it
READY_THE_END_AFTER = 0.3


def _ready_the_end(lang: str) -> None:
    """Load, while the hosts are graded, what the end of the run needs: Babel's locale data
    for the summary's and the exports' figures and dates (~0.1 s of CPU when loaded after
    the last host), and the exports module. Only loads: the end does the same calls."""
    time.sleep(READY_THE_END_AFTER)
    from checker.grade import exports  # noqa: F401
    from checker.i18n import format_date, format_number

    format_number(1.5, lang)
    format_date(0.0, lang)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from checker.grade.runner import ForkServer
    from checker.grade.sshconf import ask_kex

    # The workers' fork server first: its imports (~0.5 s) then run while this process sets
    # the run up (a resumed run's labs come from the gradebook: its pool starts its own).
    early = None
    if args.labs and not (args.resume or args.retry_unreachable or args.list_hosts):
        early = ForkServer.early(list(args.labs))
    ask_kex()  # answered while the run imports and starts (sshconf.kex_preference)
    try:
        return _run(args, early)
    finally:
        if early is not None:
            early.close()  # (the run's pool closed it already, unless it did not start)


def _run(args: argparse.Namespace, early: Any) -> int:
    from checker.catalog import resolve
    from checker.grade.exports import ExportError
    from checker.grade.gradebook import Gradebook, GradebookError, default_path
    from checker.grade.targets import TargetError
    from checker.i18n import resolve_lang

    lang = resolve_lang(args.lang)

    def say(text: Text) -> None:
        print(text.get(lang), file=sys.stderr)

    def error(e: Exception) -> None:
        text = getattr(e, "text", None)  # GradeUsageError, ExportError: both languages
        why = text.get(lang) if isinstance(text, Text) else str(e)
        say(M_ERROR.format(error=why))

    try:
        _check_outputs(args)
        csv_options = _csv_options(args)
        labs = [resolve(x).id for x in args.labs]
        if len(set(labs)) != len(labs):
            raise GradeUsageError(M_TWICE.format(labs=" ".join(args.labs)))
        if args.list_hosts:
            return _list_hosts(args, lang)
        db_path = Path(args.db) if args.db else default_path()
        gb = Gradebook(db_path)
    except (GradeUsageError, GradebookError, TargetError, ExportError) as e:
        error(e)
        return Exit.USAGE

    try:
        continuing = args.resume or args.retry_unreachable
        if continuing:
            if args.hosts or args.inventory:
                raise GradeUsageError(M_RESUME_HOSTS)
            last = gb.last_run(labs or None)
            if last is None:
                raise GradeUsageError(M_NO_RUN_OF.format(labs=" ".join(labs), db=db_path)
                                      if labs else M_NO_RUN.format(db=db_path))
            root = gb.chain(last.id)[0]
            labs = list(root.labs)
            options = _options(args, lang if args.lang else last.lang, last.options)
            lang = options.lang
            targets = gb.pending(last.id, missing=args.resume,
                                 failed_to_connect=args.retry_unreachable)
            kind = "resume" if args.resume else "retry"
            if not targets:
                say(M_NOTHING.format(run=last.id))
                run_id = last.id
            else:
                run_id = gb.start_run(labs, targets, lang=lang, options=options.to_dict(),
                                      parent_id=last.id, kind=kind)
        else:
            if not labs:
                raise GradeUsageError(M_WHICH_LAB)
            targets = _targets(args)
            options = _options(args, lang)
            run_id = gb.start_run(labs, targets, lang=lang, options=options.to_dict())
    except (GradeUsageError, TargetError, GradebookError) as e:
        error(e)
        gb.close()
        return Exit.USAGE

    from checker.grade.grading import grade

    progress = _Progress(lang)
    # advice names files by absolute paths: it works as printed from any directory
    db_opt = f" --db {shlex.quote(str(db_path.resolve()))}"
    outs = [(fmt, getattr(args, fmt)) for fmt in EXPORTS if getattr(args, fmt)]
    again = _export_options(args)
    t0 = time.monotonic()
    stage = "grading"  # then "exports": what an interrupt or a gradebook error stopped
    # SIGTERM (a closed session, a scheduler) ends the run like Ctrl-C: workers stopped,
    # the run marked interrupted, every host already graded kept.
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    # the imports and set-up so far live as long as the run: out of the collector's sight,
    # its collections then walk only what each host's answer makes
    gc.freeze()
    if targets:
        threading.Thread(target=_ready_the_end, args=(lang,), daemon=True,
                         name="virtlab-ready-the-end").start()
    try:
        if targets:
            grade(gb, labs, targets, options, run_id=run_id,
                  on_start=progress.start, on_host=progress.host, fork_server=early)
        stage = "exports"
        progress.stop()
        from checker.grade import exports

        view = gb.class_view(run_id)
        for fmt, path in outs:
            try:
                exports.write(view, path, fmt, csv_options)
            except exports.ExportError as e:
                error(e)
                return Exit.USAGE
            except OSError as e:
                say(M_ERROR.format(error=write_failed(path, e).get(lang)))
                return Exit.USAGE
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
            say(M_STOPPED_EXPORTS.format(run=run_id, again=f"{db_opt}{again}"))
        else:
            say(M_STOPPED.format(run=run_id, again=f"{db_opt}{again}"))
        return Exit.INTERRUPTED
    except GradebookError as e:
        # e.g. the disk filled up: every host recorded before stays; the others are pending.
        progress.stop()
        error(e)
        say(M_GRADEBOOK_LOST.format(run=run_id, again=f"{db_opt}{again}"))
        return Exit.USAGE
    finally:
        progress.stop()
        signal.signal(signal.SIGTERM, old_term)
        gb.close()
        gc.unfreeze()  # run() called in a longer process (tests): collected as before
    print_summary(view, lang, time.monotonic() - t0, db_path, f"{db_opt}{again}",
             csv_options if args.csv else None)
    all_graded = all(lab in row.results and row.results[lab].status == "graded"
                     for row in view.rows for lab in view.labs)
    return Exit.OK if all_graded else Exit.UNREACHABLE


def _export_options(args: argparse.Namespace) -> str:
    """The export options of this command line, quoted (files by absolute path), to repeat
    them in advice."""
    out = ""
    files = ("roster", *EXPORTS)
    for opt in ("csv", "csv_id", "scale", "roster", *(e for e in EXPORTS if e != "csv")):
        v = getattr(args, opt)
        if v:
            if opt in files:
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
    raise GradeUsageError(M_WHICH_HOSTS)


def _list_hosts(args: argparse.Namespace, lang: str) -> int:
    """``--list-hosts``: the hosts the command would grade; nothing is graded or recorded."""
    if args.resume or args.retry_unreachable:
        raise GradeUsageError(M_LIST_HOSTS)
    targets = _targets(args)
    from checker.reporters.text import clean as visible

    print(M_HOSTS.format(n=len(targets)).get(lang))
    for t in targets:
        port = f":{t.ssh_port}" if t.ssh_port else ""
        who = [f"learner={t.learner}", f"ssh={t.ssh_user}@{t.ssh_host}{port}"]
        who += [f"{k}={v}" for k, v in (("email", t.email), ("username", t.username),
                                        ("idnumber", t.idnumber)) if v]
        print(visible(f"    {t.host}  " + " ".join(who)))
    return Exit.OK


def print_summary(view: Any, lang: str, elapsed: float, db_path: Path, again: str = "",
             csv_options: Any = None) -> None:
    not_done = []
    for row in view.rows:
        rs = [row.results.get(lab) for lab in view.labs]
        bad = [r for r in rs if r is None or r.status != "graded"]
        if bad:
            not_done.append((row, bad[0]))
    n = len(view.rows)
    print(M_SUMMARY.format(run=view.run.id, done=n - len(not_done), n=n,
                           seconds=format_number(elapsed, lang, 1), db=db_path).get(lang))
    from checker.safetext import clean

    def visible(line: str) -> str:
        # host, learner and reason may come from the learner's machine: shown, never obeyed
        return clean(line).replace("\n", " ").rstrip()

    from checker.grade.exports import HOST_STATUS

    for row, r in not_done:
        status, reason = (r.status, r.reason) if r is not None else ("missing", "")
        label = HOST_STATUS[status].get(lang) if status in HOST_STATUS else status
        print(visible(f"  {label:<15} {row.target.host} ({row.target.learner}) {reason}".rstrip()))
    if csv_options is not None:
        from checker.grade.exports import csv_plan

        plan = csv_plan(view, csv_options)
        print(M_CSV_ROWS.format(n=len(plan.rows)).get(lang))
        for x in plan.left_out:
            if x.kind != "not_graded":  # those are listed above
                print(visible(M_CSV_LEFT_OUT.format(host=x.host, learner=x.learner,
                                                    why=x.why.get(lang)).get(lang)))
    if not_done:
        print(M_RETRY.format(again=again).get(lang))
