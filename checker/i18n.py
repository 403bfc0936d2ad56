"""The one way a text a person reads is written: :class:`Text`, French and English together.

Every string a learner, an instructor or a course author reads — a check's verdict, a hint,
a CLI message, a help line, a report heading — is a :class:`Text`. Texts the code says
itself are declared once, by key, with :func:`message`; the catalogue they fill
(:data:`CATALOGUE`) is what ``tests/test_messages.py`` proves complete (both languages,
the same ``{placeholders}``). Lab content (titles, hints in ``lab.toml``) and the verdicts of
checks (``obj.fail(fr=…, en=…)``) are Texts too, checked by the catalogue and lab tests.

Why one message type rather than gettext: virtlab shows French first *and* English too
(the learners are French-speaking, some read English better), reports carry both languages
from one run, and course authors write both side by side in ``lab.toml``. gettext's model
— one language per process, chosen from the environment, the English text as key — fits
neither; a Text holds both, so a missing translation is a missing argument, not a silent
fallback at run time. See the design notes (``site/design.en.md``, "Messages").

>>> HELLO = Text(fr="Bonjour {name}", en="Hello {name}")
>>> HELLO.format(name="Ada").get("en")
'Hello Ada'
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LANGS = ("fr", "en")
DEFAULT_LANG = "fr"


@dataclass(frozen=True)
class Text:
    """A string a person reads, in French and in English."""

    fr: str
    en: str

    def get(self, lang: str) -> str:
        """The text in ``lang`` (French unless ``lang`` is ``"en"``)."""
        return self.en if lang == "en" else self.fr

    def format(self, **kwargs: Any) -> Text:
        """Both languages formatted with the same values (``str.format`` rules); a value
        that is itself a :class:`Text` gives each language its own."""
        return Text(self.fr.format(**{k: v.fr if isinstance(v, Text) else v
                                      for k, v in kwargs.items()}),
                    self.en.format(**{k: v.en if isinstance(v, Text) else v
                                      for k, v in kwargs.items()}))

    def both(self, sep: str = " / ") -> str:
        """French first, then English (for outputs read by both, e.g. a pytest summary)."""
        return self.fr if self.fr == self.en else f"{self.fr}{sep}{self.en}"

    def placeholders(self) -> tuple[set[str], set[str]]:
        """The ``{names}`` each language uses (they must be the same)."""
        return _fields(self.fr), _fields(self.en)


def _fields(s: str) -> set[str]:
    return {name.split(".")[0].split("[")[0]
            for _, name, _, _ in string.Formatter().parse(s) if name}


#: Every message the code declares with :func:`message`, by key (``"cli.no-such-lab"``).
CATALOGUE: dict[str, Text] = {}


def message(key: str, fr: str, en: str) -> Text:
    """Declare the message ``key`` once, in both languages, and return it.

    Called at module level, so importing a module fills the catalogue; a key declared twice
    with different words is a programming error.
    """
    text = Text(fr, en)
    known = CATALOGUE.get(key)
    if known is not None and known != text:
        raise ValueError(f"message {key!r} declared twice with different words")
    CATALOGUE[key] = text
    return text


#: The environment variables naming the reader's locale, strongest first (POSIX order).
LOCALE_VARS = ("LC_ALL", "LC_MESSAGES", "LANG")


def _lang_of(value: str) -> str:
    """``fr_FR.UTF-8`` -> ``fr``; a language we do not write -> French."""
    code = value.split(".")[0].split("@")[0].split("_")[0].split("-")[0].lower()
    return code if code in LANGS else DEFAULT_LANG


def _is_c_locale(value: str) -> bool:
    return value in ("", "C", "POSIX") or value.startswith("C.")


def resolve_lang(lang: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The reader's language: ``lang`` if given (``--lang``), else the environment, else French.

    The environment is read in POSIX order, as GNU gettext reads it for messages: the first
    entry of ``LANGUAGE`` (a colon-separated list), but only when the locale is not ``C`` or
    ``POSIX`` (gettext ignores ``LANGUAGE`` then); else the first non-empty of ``LC_ALL``,
    ``LC_MESSAGES``, ``LANG``. A language virtlab does not write (``de_DE``) or the ``C``
    locale gives French.

    >>> resolve_lang("en")
    'en'
    >>> resolve_lang(None, {"LC_ALL": "en_US.UTF-8", "LANG": "fr_FR.UTF-8"})
    'en'
    >>> resolve_lang(None, {"LANGUAGE": "en:fr", "LANG": "fr_FR.UTF-8"})
    'en'
    >>> resolve_lang(None, {"LANGUAGE": "en", "LANG": "C"})
    'fr'
    """
    if lang in LANGS:
        return lang
    env = os.environ if env is None else env
    locale = next((env[v] for v in LOCALE_VARS if env.get(v)), "")
    if _is_c_locale(locale):
        return DEFAULT_LANG
    first = env.get("LANGUAGE", "").split(":")[0]
    return _lang_of(first or locale)


# --- what C libraries say (libvirt, the C library's strerror) ------------------------------
#: locales tried, in order, when the environment's own is not of the reader's language
LIBRARY_LOCALES = {"fr": ("fr_FR.UTF-8", "fr_FR.utf8", "fr_BE.UTF-8", "fr_CA.UTF-8",
                          "fr_CH.UTF-8", "fr_LU.UTF-8"),
                   "en": ("C",)}


def library_locales(lang: str, env: Mapping[str, str] | None = None) -> list[str]:
    """The ``LC_MESSAGES`` locales to try, best first, for C libraries to speak ``lang``:
    the environment's own locale when it is of that language, then the usual ones.

    >>> library_locales("fr", {"LANG": "fr_CA.UTF-8"})[:2]
    ['fr_CA.UTF-8', 'fr_FR.UTF-8']
    >>> library_locales("en", {"LANG": "fr_FR.UTF-8"})
    ['C']
    """
    env = os.environ if env is None else env
    own = next((env[v] for v in LOCALE_VARS if env.get(v)), "")
    code = own.split(".")[0].split("@")[0].split("_")[0].lower()
    first = [own] if code == lang and not _is_c_locale(own) else []
    return list(dict.fromkeys([*first, *LIBRARY_LOCALES[lang]]))


@contextmanager
def library_messages(lang: str) -> Iterator[str | None]:
    """libvirt's error messages, and the C library's (``strerror``) inside them, in ``lang``
    for the duration: Python sets only ``LC_CTYPE`` from the environment, so libvirt always
    spoke English, even to a French learner whose Debian has libvirt's French catalogue
    (package ``libvirt-l10n``, recommended by ``libvirt0``). Sets ``LC_MESSAGES`` to the
    first of :func:`library_locales` that exists on this machine and puts the previous one
    back after; yields the locale used (None when none exists: messages stay English).
    ``LANGUAGE`` is left alone: gettext reads it first, and it is the reader's own choice.
    Process-wide, like every locale setting: for the command-line tool, a notebook's check
    and a grading worker, which check in one thread."""
    import locale

    try:
        before = locale.setlocale(locale.LC_MESSAGES)
    except locale.Error:  # pragma: no cover - querying cannot fail on glibc
        before = None
    used = None
    for name in library_locales(lang):
        try:
            locale.setlocale(locale.LC_MESSAGES, name)
        except locale.Error:
            continue
        used = name
        break
    try:
        yield used
    finally:
        if used is not None and before is not None:
            locale.setlocale(locale.LC_MESSAGES, before)


# --- dates, numbers and units as the reader writes them (Babel, CLDR data) -------------------
# Only for what a person reads: machine files (JSON, JUnit, CSV) keep ISO times and dots.

#: A date and time as a person reads it (a CLDR pattern, in the local time zone).
DATETIME_PATTERN = message("i18n.datetime-pattern", fr="d MMMM y 'à' HH:mm", en="d MMMM y, HH:mm")


def _when(value: datetime | str | float) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    elif isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone()  # the reader's local time zone


def format_date(value: datetime | str | float | None, lang: str, empty: str = "—") -> str:
    """A time as a person reads it, in the local time zone: ``1 décembre 2026 à 05:40`` /
    ``1 December 2026, 05:40``. ``value``: a datetime, an ISO 8601 string (what reports and
    databases store) or a Unix timestamp; ``empty`` for None or an unreadable string.

    >>> format_date("2026-12-01T05:40:42+00:00", "fr")  # doctest: +SKIP
    '1 décembre 2026 à 05:40'
    """
    if value is None or value == "":
        return empty
    try:
        when = _when(value)
    except (ValueError, OverflowError, OSError):
        return value if isinstance(value, str) else empty
    from babel.dates import format_datetime

    return str(format_datetime(when, DATETIME_PATTERN.get(lang), locale=_locale(lang)))


def format_number(x: float, lang: str, digits: int = 1) -> str:
    """``x`` with exactly ``digits`` decimals, the reader's separators (``23,5`` / ``23.5``;
    thousands grouped: ``1 234,5`` / ``1,234.5``).

    >>> format_number(23.5, "fr"), format_number(23.5, "en"), format_number(3, "fr", 0)
    ('23,5', '23.5', '3')
    """
    from babel.numbers import format_decimal

    pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    return str(format_decimal(x, format=pattern, locale=_locale(lang), decimal_quantization=True))


def format_percent(ratio: float, lang: str, digits: int = 0) -> str:
    """A ratio (0.5) as a percentage, the reader's way: ``50 %`` (no-break space) / ``50%``.

    >>> format_percent(0.5, "en"), format_percent(0.125, "fr", 1)
    ('50%', '12,5\xa0%')
    """
    from babel import Locale
    from babel.numbers import format_percent as babel_percent

    pattern = str(Locale.parse(_locale(lang)).percent_formats[None].pattern)
    if digits > 0:
        pattern = pattern.replace("0", "0." + "0" * digits, 1) if "0" in pattern else pattern
    return str(babel_percent(ratio, format=pattern, locale=_locale(lang),
                             decimal_quantization=True))


SECONDS = message("i18n.seconds", fr="{n} s", en="{n} s")


def format_duration(seconds: float, lang: str, digits: int = 1) -> str:
    """A duration in seconds: ``1,2 s`` / ``1.2 s``.

    >>> format_duration(1.25, "fr", 2)
    '1,25 s'
    """
    return SECONDS.format(n=format_number(seconds, lang, digits)).get(lang)


def _locale(lang: str) -> str:
    return lang if lang in LANGS else DEFAULT_LANG
