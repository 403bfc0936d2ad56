"""The Debian releases the labs support, and the words that differ between them.

Learners use Debian 13 "trixie" (stable) or Debian 12 "bookworm" (oldstable). A few
commands and package names differ (each verified on the releases' own packages; see
``site/reference.md``). Checks name the right one for the host they inspect, in one way:

- in a check, ``rel = facts.release`` (read once from the host's /etc/os-release through
  the host probe, so over SSH too), then ``f"sudo apt install {rel.virt_install_pkg}"``;
- in ``lab.toml`` hints, a placeholder ``{virt_install_pkg}``, filled by the engine with the
  checked host's release (the catalogue refuses an unknown placeholder);
- on the site, where no host is known, :func:`both` writes a hint once per release.

>>> R13.expand("sudo apt install {virt_install_pkg}")
'sudo apt install virt-install'
>>> R12.expand("sudo {dhcp_client} br0")
'sudo dhclient br0'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

from checker.i18n import message

if TYPE_CHECKING:
    from checker.probes.host import OsRelease


@dataclass(frozen=True)
class Release:
    """One release's words. ``found`` says what the host really is (for evidence)."""

    major: int
    codename: str
    #: the package of virt-install (virtinst is only a transitional package on 13)
    virt_install_pkg: str
    #: the package holding /usr/bin/virt-host-validate
    host_validate_pkg: str
    #: the package whose installation creates group libvirt (postinst's addgroup)
    libvirt_group_pkg: str
    #: the package whose installation creates group kvm
    kvm_group_pkg: str
    #: --osinfo for a Debian 12 guest (bookworm's osinfo-db of 2022-11 has no debian12)
    osinfo_debian12: str
    #: --osinfo for the guest of lab 05 (an installer of the host's release)
    osinfo_guest: str
    #: the DHCP client installed by default, as a command (isc-dhcp-client is no longer
    #: installed by default on 13: dhcpcd-base is)
    dhcp_client: str
    #: the same client releasing its lease
    dhcp_release: str
    #: nmcli's keyword attaching a port to a bridge (NetworkManager 1.52 says controller,
    #: 1.42 only knows master)
    nm_port: str
    found: str = ""

    @property
    def label(self) -> str:
        return f"Debian {self.major} ({self.codename})"

    def expand(self, text: str) -> str:
        """``text`` with each ``{word}`` replaced by this release's word."""
        return PLACEHOLDER_RE.sub(lambda m: str(getattr(self, _word(m.group(1)))), text)


PLACEHOLDER_RE = re.compile(r"\{([a-z][a-z0-9_]*)\}")
WORDS = tuple(f.name for f in fields(Release) if f.name not in ("major", "codename", "found"))


def _word(name: str) -> str:
    if name not in WORDS:
        raise KeyError(name)
    return name


R13 = Release(
    major=13, codename="trixie",
    virt_install_pkg="virt-install", host_validate_pkg="libvirt-daemon-common",
    libvirt_group_pkg="libvirt-daemon-common", kvm_group_pkg="libvirt-daemon-driver-qemu",
    osinfo_debian12="debian12", osinfo_guest="debian13",
    dhcp_client="dhcpcd", dhcp_release="dhcpcd -k", nm_port="controller",
)
R12 = Release(
    major=12, codename="bookworm",
    virt_install_pkg="virtinst", host_validate_pkg="libvirt-clients",
    libvirt_group_pkg="libvirt-daemon-system", kvm_group_pkg="libvirt-daemon-system",
    osinfo_debian12="debiantesting", osinfo_guest="debian11",
    dhcp_client="dhclient", dhcp_release="dhclient -r", nm_port="master",
)
#: Newest first: the site's tabs and :func:`both` follow this order.
RELEASES = (R13, R12)


def release_of(os_release: OsRelease) -> Release:
    """The release whose words fit a host. Debian 12 and older get Debian 12's; Debian 13,
    testing, unstable and any other system get Debian 13's (the current stable, and the
    closest to what newer systems ship). ``found`` keeps what the host really is."""
    major = os_release.debian_major
    found = os_release.describe()
    base = R12 if major is not None and major <= 12 else R13
    return replace(base, found=found)


def unknown_words(text: str) -> list[str]:
    """The placeholders of ``text`` that name no word (for the catalogue's validation)."""
    return [w for w in PLACEHOLDER_RE.findall(text) if w not in WORDS]


#: One release's variant of a text, for a reader whose release is unknown.
VARIANT = message("releases.variant", fr="Debian {major} : {text}", en="Debian {major}: {text}")


def both(text: str, lang: str) -> str:
    """``text`` for a reader whose release is unknown (the site): once per release when the
    words differ, else once.

    >>> both("sudo apt install {virt_install_pkg}", "en")
    'Debian 13: sudo apt install virt-install — Debian 12: sudo apt install virtinst'
    >>> both("virsh list", "fr")
    'virsh list'
    """
    variants = [r.expand(text) for r in RELEASES]
    if len(set(variants)) == 1:
        return variants[0]
    return " — ".join(VARIANT.format(major=r.major, text=v).get(lang)
                      for r, v in zip(RELEASES, variants))
