"""Every ``virtlab`` command and its options, as data: the one list the CLI's argparse
parser (:func:`checker.cli.build_parser`) and the site's reference page
(:func:`checker.build.cli_reference`) are both built from.

Help texts are messages of the catalogue (:mod:`checker.i18n`), shown in the reader's
language; choices come from the registries (formats: :data:`checker.reporters.FORMATS`,
class exports: :data:`checker.grade.formats.EXPORTS`, languages: :data:`checker.i18n.LANGS`).
Adding a command is one :class:`Command` here and its ``cmd_*`` function in
:mod:`checker.cli`. This module stays light: ``virtlab --help`` imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from checker.exitcodes import Exit
from checker.grade.formats import EXPORTS, IDENTITIES, SCALES
from checker.i18n import LANGS, Text, message
from checker.reporters import FORMATS

#: the names of option values in usage lines and help, in the reader's language
V_LAB = message("cli.metavar.lab", fr="LAB", en="LAB")
V_SPECS = message("cli.metavar.specs", fr="SPEC,...", en="SPEC,...")
V_INVENTORY = message("cli.metavar.inventory", fr="INVENTAIRE", en="INVENTORY")
V_PATTERN = message("cli.metavar.pattern", fr="MOTIF", en="PATTERN")
V_FILE = message("cli.metavar.file", fr="FICHIER", en="FILE")
V_N = message("cli.metavar.n", fr="N", en="N")
V_SECONDS = message("cli.metavar.s", fr="S", en="S")
V_URI = message("cli.metavar.uri", fr="URI", en="URI")
V_NAME = message("cli.metavar.name", fr="NOM", en="NAME")
V_OBJECTIVE = message("cli.metavar.objective", fr="OBJECTIF", en="OBJECTIVE")
V_HOST = message("cli.metavar.host", fr="HÔTE", en="HOST")
V_COMMAND = message("cli.metavar.command", fr="COMMANDE", en="COMMAND")

#: A converter of an option's value; it raises ``ValueError`` with a message for the reader.
Converter = Callable[[str], Any]


@dataclass(frozen=True)
class Option:
    """One argument of a command: an option (``--host``) or a positional (``lab``)."""

    #: ``("--host",)``, ``("-h", "--help")``, or the destination of a positional (``("lab",)``)
    flags: tuple[str, ...]
    help: Text | None = None
    metavar: Text | None = None
    choices: tuple[str, ...] | None = None
    default: Any = None
    #: argparse's action: None (store a value), "store_true", "append"
    action: str | None = None
    #: how the value is read, given the reader's language (its errors are in that language)
    convert: Callable[[str], Converter] | None = None
    nargs: str | None = None
    #: options sharing this name are mutually exclusive
    exclusive: str | None = None

    @property
    def positional(self) -> bool:
        return not self.flags[0].startswith("-")

    @property
    def takes_value(self) -> bool:
        return self.action not in ("store_true", "help", "version")

    def label(self, lang: str) -> str:
        """How the option is written with its value: ``--format {text,json}``, ``LAB``."""
        if self.positional:
            return self.metavar.get(lang) if self.metavar else self.flags[0]
        name = ", ".join(self.flags)
        return f"{name} {self.value_name(lang)}" if self.takes_value else name

    def value_name(self, lang: str) -> str:
        if self.metavar:
            return self.metavar.get(lang)
        if self.choices:
            return "{" + ",".join(self.choices) + "}"
        return self.flags[-1].lstrip("-").replace("-", "_").upper()


@dataclass(frozen=True)
class Command:
    """One ``virtlab`` command."""

    name: str
    help: Text
    #: the name of its function in :mod:`checker.cli` (``cmd_check``)
    handler: str
    options: tuple[Option, ...]


# --- converters ---------------------------------------------------------------------------

NOT_WHOLE = message("cli.not-whole-seconds",
                    fr="un nombre entier de secondes est attendu, pas {text!r}",
                    en="expected a whole number of seconds, got {text!r}")
TOO_SMALL = message("cli.too-few-seconds", fr="au moins 1 seconde est attendue, pas {n}",
                    en="expected at least 1 second, got {n}")


def positive_seconds(lang: str) -> Converter:
    """A whole number of seconds, at least 1 (``--timeout``)."""

    def convert(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise ValueError(NOT_WHOLE.format(text=text).get(lang)) from None
        if n < 1:
            raise ValueError(TOO_SMALL.format(n=n).get(lang))
        return n
    return convert


def integer(lang: str) -> Converter:
    return int


def number(lang: str) -> Converter:
    return float


# --- help texts ----------------------------------------------------------------------------

DESCRIPTION = message(
    "cli.description",
    fr="Les labs de « 8.1 Virtualisation système » et le vérificateur qui les note.",
    en="Labs for chapter 8.1 (system virtualisation) and the checker that grades them.")
HELP = message("cli.opt.help", fr="afficher cette aide et quitter",
               en="show this help message and exit")
VERSION = message("cli.opt.version", fr="afficher la version et quitter",
                  en="show the version and exit")
LANG = message("cli.opt.lang",
               fr="langue (par défaut : LANGUAGE, LC_ALL, LC_MESSAGES, LANG, sinon fr)",
               en="language (default: LANGUAGE, LC_ALL, LC_MESSAGES, LANG, else fr)")
CONNECT = message("cli.opt.connect",
                  fr="URI libvirt (par défaut : LIBVIRT_DEFAULT_URI, sinon qemu:///system)",
                  en="libvirt URI (default: LIBVIRT_DEFAULT_URI, else qemu:///system)")
LAB = message("cli.opt.lab", fr="identifiant du lab (04-create-vm) ou son numéro (04, 4)",
              en="lab id (04-create-vm) or number (04, 4)")


def _lang_option(help: Text = LANG) -> Option:
    return Option(("--lang",), help, choices=LANGS)


def _lab() -> Option:
    return Option(("lab",), LAB, metavar=V_LAB)


def _formats(*names: str) -> str:
    return ", ".join(names)


def _described_formats() -> Text:
    """The report formats with their descriptions (:data:`checker.reporters.RENDERERS`)."""
    from checker.reporters import RENDERERS

    def one(lang: str) -> str:
        return FORMAT_CHECK.get(lang).format(formats=FORMAT_ITEM_SEP.get(lang).join(
            FORMAT_ITEM.get(lang).format(name=name,
                                         description=RENDERERS[name].description.get(lang))
            for name in FORMATS))
    return Text(*(one(lang) for lang in LANGS))


FORMAT_LIST = message("cli.opt.format-list", fr="format de sortie : {formats}",
                      en="output format: {formats}")
FORMAT_CHECK = message("cli.opt.format-check", fr="format du rapport : {formats}",
                       en="report format: {formats}")
FORMAT_ITEM = message("cli.opt.format-item", fr="{name} — {description}",
                      en="{name} — {description}")
FORMAT_ITEM_SEP = message("cli.opt.format-sep", fr=" ; ", en="; ")

#: The formats of ``list`` and ``progress`` (data for scripts, or text for a person).
LIST_FORMATS = ("text", "json")

GRADE_OPTIONS: tuple[Option, ...] = (
    Option(("labs",), message(
        "cli.grade.labs", fr="identifiants ou numéros de labs (facultatifs avec "
                             "--resume/--retry-unreachable)",
        en="lab ids or numbers (may be left out with --resume/--retry-unreachable)"),
        metavar=V_LAB, nargs="*"),
    Option(("--hosts",), message(
        "cli.grade.hosts", fr="hôtes des apprenants : ssh://utilisateur@hôte[:port], séparés par "
                              "des virgules (l'utilisateur SSH est l'apprenant)",
        en="learner hosts: ssh://user@host[:port], comma-separated (the SSH user is the "
           "learner)"), metavar=V_SPECS, action="append", exclusive="who"),
    Option(("--inventory",), message(
        "cli.grade.inventory",
        fr="inventaire Ansible : un fichier (INI, YAML) ou un dossier (avec group_vars/, "
           "host_vars/), lu par ansible-core ; variables d'hôte virtlab_learner (sinon "
           "ansible_user), email, virtlab_username, virtlab_idnumber, ansible_host/port/user, "
           "ansible_ssh_private_key_file, ansible_ssh_common_args",
        en="Ansible inventory: a file (INI, YAML) or a directory (with group_vars/, "
           "host_vars/), read by ansible-core; host variables virtlab_learner (else "
           "ansible_user), email, virtlab_username, virtlab_idnumber, ansible_host/port/user, "
           "ansible_ssh_private_key_file, ansible_ssh_common_args"),
        metavar=V_INVENTORY, exclusive="who"),
    Option(("--limit",), message(
        "cli.grade.limit", fr="seulement les hôtes de l'inventaire que ce motif Ansible "
                              "sélectionne (par ex. 'tp1:!pc13', 'pc0*')",
        en="only the inventory hosts this Ansible pattern selects (e.g. 'tp1:!pc13', 'pc0*')"),
        metavar=V_PATTERN),
    Option(("--list-hosts",), message(
        "cli.grade.list-hosts", fr="afficher les hôtes qui seraient évalués, sans rien évaluer",
        en="print the hosts that would be graded, grade nothing"), action="store_true"),
    Option(("--ssh-config",), message(
        "cli.grade.ssh-config", fr="ssh_config de la classe (clés, known_hosts) ; par défaut "
                                   "~/.ssh/config",
        en="ssh_config for the class (keys, known_hosts); default ~/.ssh/config"),
        metavar=V_FILE),
    Option(("--accept-new-host-keys",), message(
        "cli.grade.accept-new-host-keys",
        fr="faire confiance à un hôte d'apprenant vu pour la première fois et enregistrer sa "
           "clé (StrictHostKeyChecking accept-new de ssh) ; par défaut, un hôte dont la clé "
           "n'est pas dans known_hosts est refusé",
        en="trust a learner host seen for the first time and record its key (ssh's "
           "StrictHostKeyChecking accept-new); default: a host whose key is not in "
           "known_hosts is refused"), action="store_true"),
    # the rule, not its value here: the site's reference embeds this help
    # (checker.grade.runner.default_workers)
    Option(("--workers",), message(
        "cli.grade.workers",
        fr="hôtes évalués en même temps (par défaut : 4 par CPU, de 2 à 16, puis "
           "davantage, jusqu'à 32, tant que les hôtes attendent le réseau)",
        en="hosts graded at once (default: 4 per CPU, from 2 to 16, then more, up "
           "to 32, while the hosts wait on the network)"),
        metavar=V_N, convert=integer),
    Option(("--timeout",), message(
        "cli.grade.timeout", fr="délai de connexion SSH par hôte, en secondes (10 par défaut)",
        en="SSH connect timeout per host, seconds (default 10)"),
        metavar=V_SECONDS, convert=integer),
    Option(("--host-timeout",), message(
        "cli.grade.host-timeout", fr="le plus long qu'un hôte peut prendre, tous labs compris "
                                     "(120 par défaut)",
        en="the most one host may take, all labs together (default 120)"),
        metavar=V_SECONDS, convert=number),
    Option(("--connect",), message(
        "cli.grade.connect", fr="modèle d'URI libvirt sur chaque hôte, avec {user} {host} "
                                "{port} (par défaut qemu+ssh://{user}@{host}:{port}/system)",
        en="libvirt URI template on each host, with {user} {host} {port} (default "
           "qemu+ssh://{user}@{host}:{port}/system)"), metavar=V_URI),
    Option(("--db",), message(
        "cli.grade.db", fr="carnet de notes (par défaut $XDG_DATA_HOME/virtlab/gradebook.sqlite)",
        en="gradebook (default $XDG_DATA_HOME/virtlab/gradebook.sqlite)"), metavar=V_FILE),
    Option(("--csv",), EXPORTS["csv"].description, metavar=V_FILE),
    Option(("--csv-id",), message(
        "cli.grade.csv-id", fr="le champ utilisateur de Moodle qui identifie les apprenants dans "
                               "le CSV (email par défaut)",
        en="the Moodle user field the CSV identifies learners by (default email)"),
        choices=IDENTITIES),
    Option(("--roster",), message(
        "cli.grade.roster", fr="l'export des participants de Moodle (CSV) : l'identité Moodle "
                               "des apprenants, associée aux hôtes",
        en="Moodle's participants export (CSV): the learners' Moodle identity, matched to the "
           "hosts"), metavar=V_FILE),
    Option(("--scale",), message(
        "cli.grade.scale", fr="notes du CSV : points du lab (par défaut), sur 20 ou sur 100",
        en="grades in the CSV: lab points (default), on 20 or on 100"), choices=SCALES),
    *(Option((f"--{e.name}",), e.description, metavar=V_FILE)
      for e in EXPORTS.values() if e.name != "csv"),
    Option(("--retry-unreachable",), message(
        "cli.grade.retry-unreachable", fr="réévaluer seulement les hôtes injoignables lors de la "
                                          "dernière exécution",
        en="grade again only the hosts that failed to connect in the last run"),
        action="store_true"),
    Option(("--resume",), message(
        "cli.grade.resume", fr="évaluer les hôtes qu'une dernière exécution interrompue n'a pas "
                               "atteints",
        en="grade the hosts an interrupted last run did not reach"), action="store_true"),
    _lang_option(message("cli.grade.lang", fr="langue des messages (fr par défaut)",
                         en="language of messages (default fr)")),
)

COMMANDS: dict[str, Command] = {c.name: c for c in (
    Command("list", message("cli.cmd.list", fr="lister les labs", en="list the labs"),
            "cmd_list", (
                Option(("--format",), FORMAT_LIST.format(formats=_formats(*LIST_FORMATS)),
                       choices=LIST_FORMATS, default="text"),
                _lang_option())),
    Command("show", message("cli.cmd.show", fr="décrire un lab et ses objectifs",
                            en="describe one lab and its objectives"),
            "cmd_show", (_lab(), _lang_option())),
    Command("check", message("cli.cmd.check", fr="vérifier un lab sur un hôte et afficher le "
                                                 "rapport",
                             en="check a lab on a host and print the report"),
            "cmd_check", (
                Option(("lab",), metavar=V_LAB),
                Option(("--host",), message(
                    "cli.opt.host", fr="spécification d'hôte testinfra : local://, "
                                       "ssh://utilisateur@hôte[:port], ansible://nom",
                    en="testinfra host spec: local://, ssh://user@host[:port], ansible://name"),
                    metavar=V_HOST, default="local://"),
                Option(("--connect",), CONNECT, metavar=V_URI),
                Option(("--user",), message(
                    "cli.opt.user", fr="l'apprenant (par défaut : SUDO_USER, sinon vous)",
                    en="the learner (default: SUDO_USER, else you)"), metavar=V_NAME),
                Option(("--format",), _described_formats(),
                       choices=FORMATS, default="text"),
                Option(("--output",), message(
                    "cli.opt.output", fr="écrire le rapport dans FICHIER",
                    en="write the report to FILE"), metavar=V_FILE),
                Option(("--timeout",), message(
                    "cli.opt.timeout", fr="délai de connexion aux hôtes distants, en secondes",
                    en="connect timeout for remote hosts, in seconds"),
                    metavar=V_SECONDS, convert=positive_seconds),
                _lang_option(),
                Option(("--watch",), message(
                    "cli.opt.watch", fr="revérifier pendant que vous travaillez (événements "
                                        "libvirt ; Ctrl-C pour arrêter)",
                    en="keep checking as you work (libvirt events; Ctrl-C to stop)"),
                    action="store_true"))),
    Command("progress", message("cli.cmd.progress", fr="vos labs : meilleurs scores, dernière "
                                                       "vérification, ce qui reste",
                                en="your labs: best scores, last check, what is left"),
            "cmd_progress", (
                Option(("--format",), FORMAT_LIST.format(formats=_formats(*LIST_FORMATS)),
                       choices=LIST_FORMATS, default="text"),
                _lang_option())),
    Command("solve", message("cli.cmd.solve", fr="appliquer la solution de référence d'un lab "
                                                 "(formateurs, tests)",
                             en="apply a lab's reference solution (instructors, tests)"),
            "cmd_solve", (
                Option(("lab",), metavar=V_LAB),
                Option(("--yes",), message("cli.opt.yes-solve", fr="le faire (refusé sans)",
                                           en="do it (refused without)"), action="store_true"),
                Option(("--user",), metavar=V_NAME),
                Option(("--connect",), metavar=V_URI),
                _lang_option())),
    *(Command(verb, help, "cmd_lifecycle", (
        Option(("lab",), metavar=V_LAB),
        Option(("--yes",), message("cli.opt.yes", fr="ne pas demander (nécessaire sans terminal)",
                                   en="do not ask (needed without a terminal)"),
               action="store_true"),
        Option(("--connect",), CONNECT, metavar=V_URI),
        _lang_option())) for verb, help in (
        ("start", message("cli.cmd.start", fr="construire la scène du lab (labs qui en ont une ; "
                                              "dit quoi, demande)",
                          en="build the lab's scene (labs with setup; says what, asks)")),
        ("finish", message("cli.cmd.finish", fr="retirer ce que le start du lab a construit "
                                                "(demande)",
                           en="remove what the lab's start made (asks)")))),
    Command("hint", message("cli.cmd.hint", fr="le niveau d'indice suivant pour un objectif",
                            en="the next level of hint for one objective"),
            "cmd_hint", (
                Option(("lab",), metavar=V_LAB),
                Option(("objective",), metavar=V_OBJECTIVE),
                _lang_option())),
    Command("grade", message("cli.cmd.grade", fr="évaluer les hôtes d'une classe par SSH : "
                                                 "carnet de notes, {exports}",
                             en="grade a class's hosts over SSH: gradebook, {exports}").format(
                exports="/".join(e.upper() for e in EXPORTS)),
            "cmd_grade", GRADE_OPTIONS),
    Command("build", message("cli.cmd.build", fr="régénérer les notebooks et les pages du site "
                                                 "depuis labs/",
                             en="regenerate notebooks and site pages from labs/"),
            "cmd_build", (
                Option(("--check",), message(
                    "cli.opt.build-check", fr="échouer (code {code}) si une sortie enregistrée "
                                              "n'est plus à jour",
                    en="fail (exit {code}) if a committed output is stale").format(
                        code=int(Exit.FAILED)), action="store_true"),)),
)}


def usage(command: Command, lang: str, prog: str = "virtlab") -> str:
    """The command's usage line, as argparse writes it (options, then positionals)."""
    parts = ["[-h]"]
    done: set[str] = set()
    for o in command.options:
        if o.positional:
            continue
        if o.exclusive:
            if o.exclusive in done:
                continue
            done.add(o.exclusive)
            group = [x for x in command.options if x.exclusive == o.exclusive]
            parts.append("[" + " | ".join(_short(x, lang) for x in group) + "]")
        else:
            parts.append(f"[{_short(o, lang)}]")
    for o in command.options:
        if o.positional:
            name = o.label(lang)
            parts.append(f"[{name} ...]" if o.nargs == "*" else name)
    return f"{prog} {command.name} " + " ".join(parts)


def _short(o: Option, lang: str) -> str:
    return f"{o.flags[0]} {o.value_name(lang)}" if o.takes_value else o.flags[0]


def exit_codes() -> list[tuple[int, Text]]:
    """(code, meaning) of every exit status, from :class:`checker.exitcodes.Exit`."""
    return [(int(code), code.description) for code in Exit]
