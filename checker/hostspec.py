"""Host specs and inventory values a learner (or a class list) hands us: validated once, here.

A learner's "address" ends up on the instructor's command lines: testinfra pastes the host of
``ssh://user@host:port`` into an ``ssh`` command (a shell string), after *percent-decoding*
it, and reads ``?key=value`` options out of the URL (``ssh_config=``, ``ssh_identity_file=``…);
libvirt's ``qemu+ssh://`` decodes it again; an Ansible inventory's ``ansible_host`` /
``ansible_user`` / ``ansible_port`` are pasted by testinfra into such a URL. So a value is
judged the way every one of those readers will see it:

- no ``%`` at all (``%2DoProxyCommand%3D…`` decodes to an ssh option; ``%252D`` to ``%2D``,
  which another decoder turns into ``-``): a real host name or user never needs it;
- ASCII only, no blank, no control character (``%0a``, unicode dashes such as ``‐oX``);
- a host is a DNS name or an IPv4 address (letters, digits, ``.``, ``-``, ``_``, starting with a
  letter, digit or ``_``: never ``-``, which ssh reads as an option) or an IPv6 address (in
  brackets inside a spec);
- a user is letters, digits, ``.``, ``-``, ``_``, not starting with ``-`` or ``.`` (no ``@``,
  ``:`` — testinfra would read what follows as a password — or ``%``);
- a port is 1 to 65535 written in ASCII digits (not ``22 -oX``, not ``٢٢``);
- a spec has no path, no ``?`` options, no ``#`` fragment.

    >>> parse_ssh_spec("ssh://alice@pc12:2222")
    SshDest(user='alice', host='pc12', port=2222)
    >>> parse_ssh_spec("ssh://u@%2DoProxyCommand%3Dtouch%20x")    # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    checker.hostspec.UnsafeHost: hôte refusé ...

Every message is French then English (one line each) and shows the refused value with
``repr()`` (control characters escaped), never a password.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HOST_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,252}")
USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
PORT_RE = re.compile(r"[0-9]{1,5}")

HELP_FR = ("un hôte est un nom (lettres, chiffres, « . », « - », « _ », sans « - » au début : "
           "ssh le lirait comme une option) ou une adresse IP ; ni « % », ni « ? », ni « # », "
           "ni espace, ni caractère de contrôle")
HELP_EN = ("a host is a name (letters, digits, '.', '-', '_', not starting with '-': ssh "
           "would read it as an option) or an IP address; no '%', '?', '#', blank or control "
           "character")
USER_HELP_FR = ("un utilisateur est fait de lettres, chiffres, « . », « - », « _ », sans « - » "
                "ni « . » au début")
USER_HELP_EN = "a user is letters, digits, '.', '-', '_', not starting with '-' or '.'"

#: Inventory variables that would hand ssh (or sshpass) options or secrets; grading takes its
#: SSH settings from --ssh-config only.
# ansible_ssh_common_args and ansible_ssh_extra_args are the instructor's own ssh options
# (their inventory, not a learner's value): they are honoured, after the forced settings of
# checker.grade.sshconf, which they cannot undo (ssh keeps the first value of an option).
REFUSED_VARS = ("ansible_ssh_args", "ansible_ssh_executable", "ansible_ssh_pass",
                "ansible_password", "ansible_ssh_password")
SSH_CONNECTIONS = ("ssh", "smart")


class UnsafeHost(ValueError):
    """A host spec or inventory value that could become an option, a command or a URL
    option; the message is French then English."""

    def __init__(self, fr: str, en: str):
        self.fr, self.en = fr, en
        super().__init__(f"{fr}\n{en}")


@dataclass(frozen=True)
class SshDest:
    user: str | None
    host: str
    port: int | None


def _plain(value: str) -> bool:
    """Printable ASCII without blanks and without '%'."""
    return value.isascii() and value.isprintable() and not any(
        c.isspace() or c == "%" for c in value)


def valid_host(value: Any) -> bool:
    """A host name, an IPv4 or an IPv6 address (bare, without brackets).

    >>> [valid_host(h) for h in ("pc12", "10.0.0.5", "::1", "-oX", "%2Dx", "a b", "h?x=1")]
    [True, True, True, False, False, False, False]
    """
    if not isinstance(value, str) or not _plain(value):
        return False
    if HOST_RE.fullmatch(value):
        return True
    try:
        return ipaddress.ip_address(value).version == 6
    except ValueError:
        return False


def valid_user(value: Any) -> bool:
    """A user name.

    >>> [valid_user(u) for u in ("alice", "etu_1.x", "-oX", "a:b", "a@b", "%2D")]
    [True, True, False, False, False, False]
    """
    return isinstance(value, str) and _plain(value) and bool(USER_RE.fullmatch(value))


def parse_port(value: Any) -> int | None:
    """A port 1..65535 (an int, or ASCII digits); None when invalid.

    >>> [parse_port(p) for p in (22, "2222", "22 -oX", " 22", "0", "99999", "\u0662\u0662", True)]
    [22, 2222, None, None, None, None, None, None]
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and PORT_RE.fullmatch(value):
        n = int(value)
    else:
        return None
    return n if 1 <= n <= 65535 else None


def _refuse_host(shown: str, why_fr: str, why_en: str) -> UnsafeHost:
    return UnsafeHost(f"hôte refusé {shown} : {why_fr} ; {HELP_FR}",
                      f"host refused {shown}: {why_en}; {HELP_EN}")


def parse_ssh_spec(spec: str, *, need_user: bool = False) -> SshDest:
    """``ssh://[user@]host[:port][/]`` split the way testinfra and ssh will read it, every
    part checked; :class:`UnsafeHost` otherwise."""
    if not isinstance(spec, str) or not spec.startswith("ssh://"):
        raise UnsafeHost(f"hôte refusé {spec!r} : attendu ssh://utilisateur@hôte[:port]",
                         f"host refused {spec!r}: expected ssh://user@host[:port]")
    rest = spec[len("ssh://"):]
    if rest.endswith("/"):
        rest = rest[:-1]
    user, at, hostport = rest.rpartition("@")
    if at and ":" in user:
        # never echo the password: reports and terminals would show it
        shown = repr(f"ssh://{user.split(':', 1)[0]}:***@{hostport}")
        raise UnsafeHost(f"hôte refusé {shown} : pas de mot de passe dans un hôte (la "
                         "correction tourne en mode batch SSH : utilisez des clés)",
                         f"host refused {shown}: no password in a host spec (grading runs in "
                         "SSH batch mode: use key authentication)")
    shown = repr(spec)
    if not spec.isascii() or not spec.isprintable() or any(c.isspace() for c in spec):
        raise _refuse_host(shown, "caractère non ASCII, espace ou caractère de contrôle",
                           "non-ASCII, blank or control character")
    if "%" in spec:
        raise _refuse_host(shown, "encodage « % » (testinfra le décoderait : « %2D » devient "
                                  "« - », une option de ssh)",
                           "'%' encoding (testinfra would decode it: '%2D' becomes '-', an ssh "
                           "option)")
    if any(c in rest for c in "/?#&;"):
        raise _refuse_host(shown, "chemin, options « ? » ou « # » (testinfra les lirait comme "
                                  "ses propres options)",
                           "path, '?' options or '#' (testinfra would read them as its own "
                           "options)")
    if at and not valid_user(user):
        raise UnsafeHost(f"hôte refusé {shown} : utilisateur {user!r} invalide ; {USER_HELP_FR}",
                         f"host refused {shown}: invalid user {user!r}; {USER_HELP_EN}")
    if need_user and not at:
        raise UnsafeHost(f"hôte refusé {shown} : pas d'utilisateur, donc pas d'apprenant "
                         "(ssh://utilisateur@hôte[:port])",
                         f"host refused {shown}: no user, so no learner "
                         "(ssh://user@host[:port])")
    port_s = None
    if hostport.startswith("["):
        host, sep, tail = hostport[1:].partition("]")
        if not sep or (tail and not tail.startswith(":")):
            raise _refuse_host(shown, "adresse IPv6 mal formée", "malformed IPv6 address")
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError(host)
        except ValueError:
            raise _refuse_host(shown, "pas une adresse IPv6 entre [ ]",
                               "not an IPv6 address inside [ ]") from None
        port_s = tail[1:] if tail else None
    else:
        host, sep, port_s = hostport.partition(":")
        port_s = port_s if sep else None
        if not HOST_RE.fullmatch(host):
            raise _refuse_host(shown, f"nom d'hôte {host!r} invalide",
                               f"invalid host name {host!r}")
    port = None
    if port_s is not None:
        port = parse_port(port_s)
        if port is None:
            raise UnsafeHost(f"hôte refusé {shown} : le port doit être un nombre de 1 à 65535",
                             f"host refused {shown}: the port must be a number in 1..65535")
    return SshDest(user=user if at else None, host=host, port=port)


def check_inventory_host(name: Any, hostvars: Mapping[str, Any], where: str) -> SshDest:
    """The SSH destination of one inventory host, every value testinfra will paste into a URL
    (and ssh into a command line) checked. ``where`` names the inventory in messages."""
    shown = repr(name)
    if not valid_host(name):
        # the name goes into ansible://NAME?ansible_inventory=…, and is the host when
        # ansible_host is not set
        raise UnsafeHost(f"inventaire {where} : nom d'hôte {shown} refusé ; {HELP_FR}",
                         f"inventory {where}: host name {shown} refused; {HELP_EN}")
    for var in REFUSED_VARS:
        if hostvars.get(var) not in (None, ""):
            raise UnsafeHost(
                f"inventaire {where} : hôte {shown} : {var} n'est pas accepté (mots de passe et "
                "autre ssh : utilisez des clés, ansible_ssh_common_args ou --ssh-config)",
                f"inventory {where}: host {shown}: {var} is not accepted (passwords and "
                "another ssh: use keys, ansible_ssh_common_args or --ssh-config)")
    conn = hostvars.get("ansible_connection")
    # (an empty ansible_connection is no connection testinfra knows: refused too)
    if conn is not None and conn not in SSH_CONNECTIONS:
        raise UnsafeHost(f"inventaire {where} : hôte {shown} : ansible_connection={conn!r} ; "
                         "seule la connexion ssh est évaluée",
                         f"inventory {where}: host {shown}: ansible_connection={conn!r}; only "
                         "ssh connections are graded")
    host = hostvars.get("ansible_host")
    host = name if host in (None, "") else host
    if not valid_host(host):
        raise UnsafeHost(f"inventaire {where} : hôte {shown} : ansible_host {host!r} refusé ; "
                         f"{HELP_FR}",
                         f"inventory {where}: host {shown}: ansible_host {host!r} refused; "
                         f"{HELP_EN}")
    user = hostvars.get("ansible_user")
    if user not in (None, "") and not valid_user(user):
        raise UnsafeHost(f"inventaire {where} : hôte {shown} : ansible_user {user!r} refusé ; "
                         f"{USER_HELP_FR}",
                         f"inventory {where}: host {shown}: ansible_user {user!r} refused; "
                         f"{USER_HELP_EN}")
    port = hostvars.get("ansible_port")
    port_n = None
    if port not in (None, ""):
        port_n = parse_port(port)
        if port_n is None:
            raise UnsafeHost(f"inventaire {where} : hôte {shown} : ansible_port {port!r} n'est "
                             "pas un port (1 à 65535)",
                             f"inventory {where}: host {shown}: ansible_port {port!r} is not a "
                             "port number (1 to 65535)")
    return SshDest(user=user or None, host=host, port=port_n)


#: testinfra URL options a spec may carry (the others, e.g. ``ssh_config=`` or
#: ``ssh_identity_file=``, would let a host name choose how we connect).
ALLOWED_OPTIONS = {"ansible": ("ansible_inventory",)}


def check_other_spec(spec: str) -> None:
    """Any other testinfra spec (``ansible://name?ansible_inventory=…``, ``docker://name``…):
    its host part is a plain name that no tool can read as an option, and it carries no
    testinfra option but the inventory."""
    from urllib.parse import parse_qsl

    scheme, _, rest = spec.partition("://")
    netloc, sep, query = rest.partition("?")
    shown = repr(spec)
    if "#" in spec or "/" in netloc or not netloc or not _plain(netloc) \
            or netloc.startswith("-") or not spec.isprintable():
        raise _refuse_host(shown, "caractère interdit ou « - » au début",
                           "forbidden character or leading '-'")
    if scheme == "ansible" and not valid_host(netloc):
        raise _refuse_host(shown, f"nom d'hôte {netloc!r} invalide",
                           f"invalid host name {netloc!r}")
    allowed = ALLOWED_OPTIONS.get(scheme, ())
    keys = [k for k, _ in parse_qsl(query, keep_blank_values=True)] if sep else []
    if any(k not in allowed for k in keys) or (sep and not keys):
        raise _refuse_host(shown, f"options refusées (seules {list(allowed)} sont admises)",
                           f"options refused (only {list(allowed)} are accepted)")


def check_inventory_text(name: Any, var: str, value: str, where: str) -> None:
    """A learner name or an email of a class list: any text, but no control character
    (stored in the gradebook, shown on terminals and in every export)."""
    from checker.safetext import UNSAFE

    if UNSAFE.search(value.replace("\t", " ")):
        raise UnsafeHost(f"inventaire {where} : hôte {name!r} : {var} {value!r} contient des "
                         "caractères de contrôle",
                         f"inventory {where}: host {name!r}: {var} {value!r} holds control "
                         "characters")
