"""The three libvirt network topologies of lab 05 (NAT, bridge, isolated), drawn with matplotlib.

Pure matplotlib (object API, no pyplot, no backend choice), no network access, no root; its
labels are ``checker.i18n`` messages:
the notebook imports this file by path and shows the PNG; the tests render it to a file.

>>> png = png_bytes("fr")           # doctest: +SKIP
>>> render("topologies.png", "en")  # doctest: +SKIP
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, FancyArrowPatch, FancyBboxPatch

from checker.i18n import message

OK = "#2e7d32"
NO = "#c62828"
HOST = "#eceff1"
BR = "#1565c0"
VM = "#fff3e0"
NET = "#e3f2fd"

#: Every label of the drawing, in both languages (checker.i18n: one message type).
LABELS = {
    "title": message(
        "lab05.topology-title",
        fr="Trois façons de brancher une VM (libvirt)",
        en="Three ways to plug a VM in (libvirt)"),
    "nat": message(
        "lab05.topology-nat",
        fr="NAT : mon-reseau-prive",
        en="NAT: mon-reseau-prive"),
    "bridge": message(
        "lab05.topology-bridge",
        fr="Pont : br0",
        en="Bridge: br0"),
    "iso": message(
        "lab05.topology-iso",
        fr="Isolé : reseau-isole",
        en="Isolated: reseau-isole"),
    "host": message(
        "lab05.topology-host",
        fr="Hôte Debian",
        en="Debian host"),
    "lan": message(
        "lab05.topology-lan",
        fr="LAN / Internet",
        en="LAN / Internet"),
    "natbox": message(
        "lab05.topology-natbox",
        fr="NAT\n(iptables MASQUERADE)",
        en="NAT\n(iptables MASQUERADE)"),
    "out": message(
        "lab05.topology-out",
        fr="sortie OK",
        en="out OK"),
    "in": message(
        "lab05.topology-in",
        fr="entrée bloquée",
        en="in blocked"),
    "both": message(
        "lab05.topology-both",
        fr="entrée et sortie",
        en="in and out"),
    "none": message(
        "lab05.topology-none",
        fr="aucun routage",
        en="no routing"),
    "nat_note": message(
        "lab05.topology-nat-note",
        fr="VM en 192.168.100.100–200\n(DHCP dnsmasq sur virbr1)",
        en="VMs in 192.168.100.100–200\n(dnsmasq DHCP on virbr1)"),
    "br_note": message(
        "lab05.topology-br-note",
        fr="VM sur le LAN, IP donnée\npar le routeur du LAN",
        en="VMs on the LAN, address from\nthe LAN's router"),
    "iso_note": message(
        "lab05.topology-iso-note",
        fr="VM ↔ VM, et VM ↔ hôte si\nle réseau a une <ip> (host-only)",
        en="VM ↔ VM, and VM ↔ host when\nthe network has an <ip> (host-only)"),
    "port": message(
        "lab05.topology-port",
        fr="port",
        en="port"),
}


def _box(ax, x, y, w, h, text, color, edge="#37474f", size=9, weight="normal"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.15",
                                facecolor=color, edgecolor=edge, linewidth=1.2))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size,
            weight=weight)


def _arrow(ax, a, b, color, style="-|>", lw=1.8, ls="-", both=False):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle=("<|-|>" if both else style),
                                 mutation_scale=14, color=color, linewidth=lw, linestyle=ls))


def _cross(ax, x, y, color=NO):
    ax.plot([x - 0.18, x + 0.18], [y - 0.18, y + 0.18], color=color, linewidth=2.5)
    ax.plot([x - 0.18, x + 0.18], [y + 0.18, y - 0.18], color=color, linewidth=2.5)


def _frame(ax, title, t):
    ax.set_xlim(0, 10)
    ax.set_ylim(-1.0, 10)
    ax.set_axis_off()
    ax.set_title(title, fontsize=11, weight="bold")
    ax.add_patch(FancyBboxPatch((0.3, 2.6), 9.4, 7.0, boxstyle="round,pad=0.02,rounding_size=0.3",
                                facecolor=HOST, edgecolor="#90a4ae", linewidth=1.2))
    ax.text(0.6, 9.25, t["host"], fontsize=8, color="#546e7a", style="italic")
    ax.add_patch(Ellipse((5, 1.0), 6.0, 1.6, facecolor=NET, edgecolor="#64b5f6"))
    ax.text(5, 1.0, t["lan"], ha="center", va="center", fontsize=9, weight="bold")


def _vms(ax, names, bridge_y, x0=1.0):
    xs = []
    for i, name in enumerate(names):
        x = x0 + i * 2.9
        _box(ax, x, 7.4, 2.3, 1.1, name, VM, size=8)
        ax.plot([x + 1.15, x + 1.15], [7.4, bridge_y + 0.3], color="#37474f", linewidth=1.2)
        xs.append(x + 1.15)
    return xs


def draw_nat(ax, t):
    _frame(ax, t["nat"], t)
    _box(ax, 0.8, 5.9, 8.4, 0.6, "virbr1 · 192.168.100.1/24", BR, edge=BR, size=9)
    ax.texts[-1].set_color("white")
    _vms(ax, ["test-debian-12", "vm-2", "vm-3"], 5.9, x0=0.9)
    _box(ax, 3.3, 3.9, 3.4, 1.3, t["natbox"], "#fffde7", size=8)
    ax.plot([5, 5], [5.9, 5.2], color="#37474f", linewidth=1.2)
    _box(ax, 4.1, 2.8, 1.8, 0.7, "eth0", "#cfd8dc", size=9)
    ax.plot([5, 5], [3.9, 3.5], color="#37474f", linewidth=1.2)
    _arrow(ax, (3.4, 3.0), (3.4, 1.6), OK)
    ax.text(1.0, 2.15, t["out"], color=OK, fontsize=8, weight="bold")
    _arrow(ax, (6.6, 1.6), (6.6, 3.0), NO, ls="--")
    _cross(ax, 6.6, 2.3)
    ax.text(6.95, 2.15, t["in"], color=NO, fontsize=8, weight="bold")
    ax.text(5, -0.95, t["nat_note"], ha="center", va="bottom", fontsize=8, color="#455a64")


def draw_bridge(ax, t):
    _frame(ax, t["bridge"], t)
    _box(ax, 0.8, 5.9, 8.4, 0.6, "br0", BR, edge=BR, size=9)
    ax.texts[-1].set_color("white")
    _vms(ax, ["web-server-prod", "vm-2", "vm-3"], 5.9, x0=0.9)
    _box(ax, 4.1, 3.9, 1.8, 0.8, "eth0", "#cfd8dc", size=9)
    ax.text(6.1, 4.2, f"({t['port']} br0)", fontsize=8, color="#455a64")
    ax.plot([5, 5], [5.9, 4.7], color="#37474f", linewidth=1.2)
    _arrow(ax, (5, 3.9), (5, 1.8), OK, both=True)
    ax.text(5.25, 2.7, t["both"], color=OK, fontsize=8, weight="bold")
    ax.text(5, -0.95, t["br_note"], ha="center", va="bottom", fontsize=8, color="#455a64")


def draw_isolated(ax, t):
    _frame(ax, t["iso"], t)
    _box(ax, 0.8, 5.9, 8.4, 0.6, "virbr2 · 192.168.200.1/24", BR, edge=BR, size=9)
    ax.texts[-1].set_color("white")
    xs = _vms(ax, ["vm-a", "vm-b", "vm-c"], 5.9, x0=0.9)
    _arrow(ax, (xs[0] + 0.3, 7.0), (xs[1] - 0.3, 7.0), OK, both=True, lw=1.4)
    _box(ax, 4.1, 3.0, 1.8, 0.8, "eth0", "#cfd8dc", size=9)
    _arrow(ax, (5, 5.9), (5, 3.8), NO, ls="--", both=True)
    _cross(ax, 5, 4.85)
    ax.text(5.35, 4.7, t["none"], color=NO, fontsize=8, weight="bold")
    ax.text(5, -0.95, t["iso_note"], ha="center", va="bottom", fontsize=8, color="#455a64")


def figure(lang: str = "fr") -> Figure:
    """The three topologies side by side, labelled in ``lang`` (fr or en)."""
    t = {key: text.get(lang) for key, text in LABELS.items()}
    fig = Figure(figsize=(15, 5.6), dpi=100)
    axes = fig.subplots(1, 3)
    draw_nat(axes[0], t)
    draw_bridge(axes[1], t)
    draw_isolated(axes[2], t)
    fig.suptitle(t["title"], fontsize=13, weight="bold")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.88, bottom=0.02, wspace=0.05)
    return fig


def png_bytes(lang: str = "fr") -> bytes:
    buf = io.BytesIO()
    figure(lang).savefig(buf, format="png")
    return buf.getvalue()


def render(path: str | Path, lang: str = "fr") -> Path:
    """Write the PNG to ``path`` and return it."""
    p = Path(path)
    p.write_bytes(png_bytes(lang))
    return p
