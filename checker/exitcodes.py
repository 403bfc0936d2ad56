"""Exit codes of every ``virtlab`` command, defined once: :class:`Exit`, each with its
meaning (:attr:`Exit.description`), which ``virtlab --help`` and the site's reference page
(``virtlab build``) print."""

from __future__ import annotations

from enum import IntEnum

from checker.i18n import Text, message


class Exit(IntEnum):
    """What a ``virtlab`` command's exit status means."""

    #: check: every objective passed · grade: every host graded · other commands: done.
    OK = 0
    #: check: at least one objective did not pass · start/finish: a step failed.
    FAILED = 1
    #: Bad usage: unknown lab, bad option or host spec, unreadable or unwritable file.
    USAGE = 2
    #: check/start/finish: the target could not be inspected at all · grade: not every host
    #: could be graded (unreachable, daemon down, flood).
    UNREACHABLE = 3
    #: An internal error of the checker (a bug: ``VIRTLAB_DEBUG=1`` shows the traceback).
    INTERNAL = 70
    #: Interrupted (Ctrl-C); what was done so far is kept and reported.
    INTERRUPTED = 130

    @property
    def description(self) -> Text:
        """What this exit status means, for a person (``--help``, the reference page)."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS: dict[Exit, Text] = {
    Exit.OK: message(
        "exit.ok",
        fr="check : tous les objectifs sont atteints (ou sans objet) · grade : chaque hôte a "
           "été évalué · autres commandes : terminé",
        en="check: every objective is met (or skipped) · grade: every host was graded · "
           "other commands: done"),
    Exit.FAILED: message(
        "exit.failed",
        fr="check : au moins un objectif n'est pas atteint (échec ou erreur) · start/finish : "
           "une étape a échoué · build --check : une sortie générée n'est plus à jour",
        en="check: at least one objective is not met (fail or error) · start/finish: a step "
           "failed · build --check: a generated output is stale"),
    Exit.USAGE: message(
        "exit.usage",
        fr="mauvaise utilisation : lab inconnu, option ou hôte invalide, fichier illisible ou "
           "impossible à écrire ; le message dit quoi et liste les choix valides",
        en="bad usage: unknown lab, bad option or host spec, unreadable or unwritable file; "
           "the message says what and lists the valid choices"),
    Exit.UNREACHABLE: message(
        "exit.unreachable",
        fr="check/start/finish : la cible n'a pas pu être inspectée du tout (hôte injoignable) "
           "· grade : au moins un hôte n'a pas pu être évalué (injoignable, démon arrêté, "
           "sortie démesurée)",
        en="check/start/finish: the target could not be inspected at all (host unreachable) "
           "· grade: at least one host could not be graded (unreachable, daemon down, "
           "output flood)"),
    Exit.INTERNAL: message(
        "exit.internal",
        fr="erreur interne du vérificateur (un bogue : VIRTLAB_DEBUG=1 affiche la trace)",
        en="an internal error of the checker (a bug: VIRTLAB_DEBUG=1 shows the traceback)"),
    Exit.INTERRUPTED: message(
        "exit.interrupted",
        fr="interrompu (Ctrl-C) ; ce qui était fait est conservé et rapporté",
        en="interrupted (Ctrl-C); what was done so far is kept and reported"),
}


class UsageError(Exception):
    """Bad usage of a command or of the library (exit :attr:`Exit.USAGE`)."""
