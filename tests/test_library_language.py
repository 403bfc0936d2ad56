"""What libvirt and the C library say, inside our messages, in the reader's language.

Python sets only ``LC_CTYPE`` from the environment: before, a French learner read "(Failed to
connect socket to '…': No such file or directory)" inside a French sentence. Now virtlab sets
``LC_MESSAGES`` for the reader's language while it checks (``checker.i18n.library_messages``):
the C library's reasons and libvirt's translated messages (libvirt-l10n) come in French, and
the words libvirt's catalogue lacks for a stopped daemon are ours. Whether the daemon is down
or refuses the account is read from libvirt's error code and errno, not from its words, which
are now French.
"""

from __future__ import annotations

import json
import locale

import pytest
from conftest import run_virtlab

from checker.i18n import library_messages
from checker.probes.libvirt import Connections, LibvirtUnavailable

NO_DAEMON = "qemu:///nonexistent"   # the socket of a daemon that is not running


def _network_message(*args: str, env: dict[str, str]) -> str:
    """The message of lab 03's first objective (libvirt's own words are in it; another
    objective quotes the learner's own ``virsh``, in the learner's session language)."""
    r = run_virtlab("check", "03", "--connect", NO_DAEMON, "--format", "json", *args, env=env)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    report = json.loads(r.stdout)
    by_id = {o["id"]: o for o in report["objectives"]}
    assert by_id["default-network-active"]["status"] == "error"
    return str(by_id["default-network-active"]["message"])


def test_a_french_learner_reads_why_libvirt_fails_in_french(french_locale):
    said = _network_message(env=french_locale)
    assert said.startswith("Le démon libvirt ne répond pas sur qemu:///nonexistent (connexion "
                           "impossible au socket /var/run/libvirt/libvirt-sock-ro : Aucun "
                           "fichier ou dossier de ce type)"), said
    assert "Failed" not in said and "No such file" not in said


def test_an_english_reader_on_a_french_host_reads_english(french_locale):
    said = _network_message("--lang", "en", env=french_locale)
    assert said.startswith("The libvirt daemon does not answer on qemu:///nonexistent (Failed "
                           "to connect socket to '/var/run/libvirt/libvirt-sock-ro': No such "
                           "file or directory)"), said


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_daemon_is_down_in_any_language_and_the_locale_is_put_back(
        french_locale, monkeypatch, lang):
    for k, v in french_locale.items():
        monkeypatch.setenv(k, v)
    before = locale.setlocale(locale.LC_MESSAGES)
    with library_messages(lang) as used:
        assert used == ("fr_FR.UTF-8" if lang == "fr" else "C")
        with pytest.raises(LibvirtUnavailable) as err:
            Connections().get(NO_DAEMON)
    # (the C library's reason is not asserted here: GLib's g_strerror, which libvirt uses,
    # keeps the first language it answered in for the life of the process; the two tests
    # above run one process per language, as the command line, a notebook and a worker do)
    assert err.value.kind == "daemon-down"
    assert locale.setlocale(locale.LC_MESSAGES) == before


@pytest.mark.parametrize("said, french, kind", [
    ("Failed to connect socket to '/run/libvirt/libvirt-sock': Permission denied",
     "connexion impossible au socket /run/libvirt/libvirt-sock : Permission denied", "denied"),
    ("authentication unavailable: no polkit agent available to authenticate action "
     "'org.libvirt.unix.manage'",
     "authentification impossible : aucun agent polkit pour autoriser l'action "
     "org.libvirt.unix.manage", "denied"),
    ("End of file while reading data: nc: unix connect failed: No such file or directory",
     "fin de la connexion en lisant les données : nc: unix connect failed: No such file or "
     "directory", "daemon-down"),
    ("Cannot recv data: ssh: connect to host pc12 port 22: Connection refused",
     "impossible de recevoir les données : ssh: connect to host pc12 port 22: Connection "
     "refused", "daemon-down"),
    ("Domaine non trouvé : x", "Domaine non trouvé : x", "other"),   # French already
])
def test_libvirt_s_words_its_catalogue_lacks_are_ours_in_french(said, french, kind):
    """The failures a learner meets most, which libvirt-l10n leaves in English; the English
    reader gets libvirt's own words, the classification is unchanged."""
    from checker.markup import plain
    from checker.probes.libvirt import classify_error, libvirt_said

    t = libvirt_said(said)
    assert (plain(t.fr), plain(t.en)) == (french, said)
    e = classify_error("qemu:///system", said)
    assert e.kind == kind
    assert french in plain(e.message.fr) and said in plain(e.message.en)
