"""Host facts, read through testinfra's host object (works on local://, ssh://, ansible://).

Probes state facts and never judge. Parsers are pure functions so that host variants
this machine cannot produce (Intel with vmx, AMD, BIOS-disabled) are tested on recorded
``/proc/cpuinfo`` contents.

>>> parse_cpuinfo("processor : 0\\nflags : fpu vmx sse\\n").flags
frozenset({'fpu', 'sse', 'vmx'})
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class CpuInfo:
    count: int
    vendor: str
    model_name: str
    flags: frozenset[str]

    @property
    def virt_flag(self) -> str | None:
        """'vmx' (Intel VT-x), 'svm' (AMD-V) or None."""
        if "vmx" in self.flags:
            return "vmx"
        if "svm" in self.flags:
            return "svm"
        return None

    @property
    def is_guest(self) -> bool:
        """The 'hypervisor' flag: this host is itself a virtual machine."""
        return "hypervisor" in self.flags


def parse_cpuinfo(text: str) -> CpuInfo:
    count = 0
    vendor = model = ""
    flags: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "processor":
            count += 1
        elif key == "vendor_id" and not vendor:
            vendor = value
        elif key == "model name" and not model:
            model = value
        elif key == "flags" and not flags:
            flags = set(value.split())
    return CpuInfo(count=count, vendor=vendor, model_name=model, flags=frozenset(flags))


def parse_proc_modules(text: str) -> frozenset[str]:
    return frozenset(line.split()[0] for line in text.splitlines() if line.strip())


def parse_meminfo(text: str) -> dict[str, int]:
    """Values in bytes."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?", line)
        if m:
            out[m.group(1)] = int(m.group(2)) * (1024 if line.rstrip().endswith("kB") else 1)
    return out


BIOS_DISABLED_RE = re.compile(r"(kvm|vmx|svm).*disabled by bios", re.IGNORECASE)


def bios_disabled_in(dmesg: str) -> bool:
    return bool(BIOS_DISABLED_RE.search(dmesg))


class HostFacts:
    """Facts about one host, memoised for one run.

    >>> facts = HostFacts(testinfra.get_host("local://"))   # doctest: +SKIP
    >>> facts.cpu.virt_flag                                    # doctest: +SKIP
    """

    def __init__(self, host: Any):
        self.host = host

    def read(self, path: str) -> str | None:
        f = self.host.file(path)
        try:
            return f.content_string if f.exists else None
        except Exception:  # unreadable (permissions): the caller reports it
            return None

    @cached_property
    def cpu(self) -> CpuInfo:
        return parse_cpuinfo(self.read("/proc/cpuinfo") or "")

    @cached_property
    def modules(self) -> frozenset[str]:
        return parse_proc_modules(self.read("/proc/modules") or "")

    @cached_property
    def meminfo(self) -> dict[str, int]:
        return parse_meminfo(self.read("/proc/meminfo") or "")

    @property
    def mem_total(self) -> int:
        return self.meminfo.get("MemTotal", 0)

    @cached_property
    def cores(self) -> int:
        """CPUs usable by the host (nproc), falling back on /proc/cpuinfo."""
        r = self.host.run("nproc")
        if r.rc == 0 and r.stdout.strip().isdigit():
            return int(r.stdout.strip())
        return self.cpu.count

    @cached_property
    def has_systemd(self) -> bool:
        # sd_booted(): systemd is PID 1 when /run/systemd/system exists.
        return self.host.file("/run/systemd/system").is_directory

    @cached_property
    def dmesg(self) -> str | None:
        """The kernel log when readable (dmesg may be restricted to root)."""
        r = self.host.run("dmesg")
        return r.stdout if r.rc == 0 else None

    def nearest_existing(self, path: str) -> str:
        p = path.rstrip("/") or "/"
        while p != "/" and not self.host.file(p).exists:
            p = p.rsplit("/", 1)[0] or "/"
        return p

    def free_bytes(self, path: str) -> tuple[str, int | None]:
        """(the path measured, bytes free there) for path or its nearest existing parent."""
        where = self.nearest_existing(path)
        r = self.host.run("df -B1 --output=avail %s", where)
        lines = r.stdout.split()
        if r.rc == 0 and len(lines) >= 2 and lines[-1].isdigit():
            return where, int(lines[-1])
        return where, None
