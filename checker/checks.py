"""Helpers shared by the labs' checks (``labs/*/checks/*.py``).

Checks judge facts that probes read (:mod:`checker.probes`); what several labs say the same
way lives here, once, instead of being copied from one lab module to the next: lists of
names in a message, decimal numbers in both languages, a domain's persistent definition.
Every helper returns a :class:`checker.i18n.Text` (both languages) or a fact; none reads
the host itself.

A name or a string read on the learner's machine goes into a message as data, never as
Markdown: :func:`checker.markup.code` for a name shown as code, :func:`checker.markup.literal`
for running text (see CONTRIBUTING.md, "Add a check"). :func:`listed` does it for a list.

>>> listed(["default", "lab"]).en
'`default`, `lab`'
>>> listed([], none=NONE_F).fr
'aucune'
>>> decimal(1.5).fr, decimal(1.5).en
('1,5', '1.5')
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from checker.i18n import Text, format_number, message
from checker.markup import code, literal

if TYPE_CHECKING:
    from checker.probes.libvirt import DomainInfo, Virt

#: "none" for a list of masculine French nouns (réseaux, pools)
NONE = message("checks.none", "aucun", "none")
#: "none" for a list of feminine French nouns (VM)
NONE_F = message("checks.none-f", "aucune", "none")
#: the binary gigabyte, as each language writes it
GIB = message("checks.unit-gib", "Gio", "GiB")
#: the binary megabyte, as each language writes it
MIB = message("checks.unit-mib", "Mio", "MiB")


def listed(names: Iterable[str], limit: int | None = 10, *, as_code: bool = True,
           none: Text = NONE) -> Text:
    """``names`` (read on the learner's machine) for a message: each as code
    (:func:`checker.markup.code`), or as text when not ``as_code``
    (:func:`checker.markup.literal`), the first ``limit`` of them then ``(+N)``; ``none`` when
    there is none.

    >>> listed(["a", "b", "c"], limit=2, as_code=False).fr
    'a, b (+1)'
    >>> listed(["we`ird*vm_", "x_y_"]).en, listed(["*x*"], as_code=False).en
    ('``we`ird*vm_``, `x_y_`', '\\\\*x\\\\*')
    """
    names = list(names)
    if not names:
        return none
    shown = names if limit is None else names[:limit]
    text = ", ".join(code(n) if as_code else literal(n) for n in shown)
    if len(names) > len(shown):
        text += f" (+{len(names) - len(shown)})"
    return Text(text, text)


def decimal(x: float, digits: int = 1) -> Text:
    """A number with ``digits`` decimals as each language writes it (a decimal comma and
    grouped thousands in French, a point in English): :func:`checker.i18n.format_number`."""
    return Text(format_number(x, "fr", digits), format_number(x, "en", digits))


def definition(virt: Virt, name: str) -> DomainInfo | None:
    """The persistent definition of domain ``name`` (what ``virsh edit`` changes), or its
    live one when it has none (a transient domain); None when there is no such domain."""
    return virt.domain_config(name) or virt.domain(name)
