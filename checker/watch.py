"""Live checking: re-check a lab as the learner works, driven by libvirt events.

libvirt changes arrive through libvirt's event API on a read-only connection (domain
lifecycle, devices, metadata, tunables; network and storage pool lifecycle): a change
triggers a re-check at once. Host facts (packages, groups, bridges) and what libvirt
raises no event for (snapshots, autostart flags) are re-read on a slower cadence. When
the daemon goes away, the watcher says so and reconnects when it returns.

    virtlab check 04 --watch          # a live table in the terminal (JSON lines when piped)

>>> w = watch("04")                   # doctest: +SKIP   (in a notebook: a live scoreboard)
>>> w.stop()                          # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from checker import i18n
from checker.exitcodes import Exit
from checker.i18n import message
from checker.model import Report

_LOOP_LOCK = threading.Lock()
_LOOP_STARTED = False


def _ensure_event_loop() -> None:
    """libvirt's default event loop, in a daemon thread, once per process."""
    global _LOOP_STARTED
    import libvirt

    with _LOOP_LOCK:
        if _LOOP_STARTED:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _LOOP_STARTED = True


@dataclass(frozen=True)
class Update:
    report: Report
    reason: str  # start | event:<kind> | interval | daemon-down | reconnected
    at: float


class Watcher:
    """Re-checks ``lab`` on libvirt events and every ``interval`` seconds."""

    def __init__(self, lab: str, host: str = "local://", *, connect: str | None = None,
                 user: str | None = None, lang: str | None = None, interval: float = 5.0,
                 on_update: Callable[[Update], None]):
        from checker.engine import Target

        self.lab, self.host, self.user, self.lang = lab, host, user, lang
        self.uri = Target(host=host, connect=connect).libvirt_uri()
        self.interval = interval
        self.on_update = on_update
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reason = "start"
        self._conn: Any = None
        self._callbacks: list[int] = []
        self._net_callbacks: list[int] = []
        self._pool_callbacks: list[int] = []

    # --- libvirt events ---------------------------------------------------------------
    def _changed(self, kind: str) -> None:
        self._reason = f"event:{kind}"
        self._wake.set()

    def _closed(self, *_: Any) -> None:
        self._conn = None
        self._reason = "daemon-down"
        self._wake.set()

    def _connect(self) -> bool:
        import libvirt

        from checker.probes.libvirt import CONNECTIONS, quiet_libvirt

        quiet_libvirt()
        try:
            conn = libvirt.openReadOnly(self.uri)
        except libvirt.libvirtError:
            return False
        dom_events = {
            "domain-lifecycle": "VIR_DOMAIN_EVENT_ID_LIFECYCLE",
            "domain-reboot": "VIR_DOMAIN_EVENT_ID_REBOOT",
            "domain-device-added": "VIR_DOMAIN_EVENT_ID_DEVICE_ADDED",
            "domain-device-removed": "VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED",
            "domain-tunable": "VIR_DOMAIN_EVENT_ID_TUNABLE",
            "domain-metadata": "VIR_DOMAIN_EVENT_ID_METADATA_CHANGE",
        }
        self._callbacks = []
        for kind, const in dom_events.items():
            if hasattr(libvirt, const):
                self._callbacks.append(conn.domainEventRegisterAny(
                    None, getattr(libvirt, const), lambda *a, k=kind: self._changed(k), None))
        self._net_callbacks = [conn.networkEventRegisterAny(
            None, libvirt.VIR_NETWORK_EVENT_ID_LIFECYCLE,
            lambda *a: self._changed("network-lifecycle"), None)]
        self._pool_callbacks = [conn.storagePoolEventRegisterAny(
            None, libvirt.VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE,
            lambda *a: self._changed("pool-lifecycle"), None)]
        conn.registerCloseCallback(self._closed, None)
        try:
            conn.setKeepAlive(1, 2)  # notice a dead daemon within a few seconds
        except libvirt.libvirtError:
            pass  # a driver without keepalive (test:///, a local embedded driver): none needed
        self._conn = conn
        CONNECTIONS.share(self.uri, conn)  # checks reuse this connection
        return True

    def _disconnect(self) -> None:
        from checker.probes.libvirt import CONNECTIONS

        conn, self._conn = self._conn, None
        if conn is None:
            return
        CONNECTIONS.forget(self.uri, conn)  # closed below: no check may borrow it now
        for cid in self._callbacks:
            try:
                conn.domainEventDeregisterAny(cid)
            except Exception:  # noqa: BLE001 (tearing down: the connection may be gone already)
                pass
        for cid in self._net_callbacks:
            try:
                conn.networkEventDeregisterAny(cid)
            except Exception:  # noqa: BLE001 (tearing down: the connection may be gone already)
                pass
        for cid in self._pool_callbacks:
            try:
                conn.storagePoolEventDeregisterAny(cid)
            except Exception:  # noqa: BLE001 (tearing down: the connection may be gone already)
                pass
        try:
            conn.unregisterCloseCallback()
            conn.close()
        except Exception:  # noqa: BLE001 (tearing down: the connection may be gone already)
            pass

    # --- loop -------------------------------------------------------------------------
    def _check(self, reason: str) -> None:
        from checker.engine import check
        from checker.probes.libvirt import CONNECTIONS

        if self._conn is None:
            CONNECTIONS.forget(self.uri)
        report = check(self.lab, self.host, connect=self.uri, user=self.user, lang=self.lang)
        self.on_update(Update(report, reason, time.time()))

    def run(self) -> None:
        """Block until stop() (or Ctrl-C in the caller's thread)."""
        _ensure_event_loop()
        self._connect()
        self._check("start")
        while not self._stop.is_set():
            down = self._conn is None
            woke = self._wake.wait(timeout=1.0 if down else self.interval)
            if self._stop.is_set():
                break
            if woke:
                time.sleep(0.05)  # gather a burst of events into one re-check
            self._wake.clear()
            reason = self._reason if woke else "interval"
            self._reason = "interval"
            if self._conn is None:
                if self._connect():
                    reason = "reconnected"
                elif reason != "daemon-down" and not woke:
                    continue  # still down: the last update already said so
            self._check(reason)
        self._disconnect()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()


# --- front ends --------------------------------------------------------------------------

#: Why an update came (``event:…``, ``start``…), and the live view's other words.
REASONS: dict[str, i18n.Text] = {
    "start": message("watch.start", fr="première vérification", en="first check"),
    "interval": message("watch.interval", fr="revérification périodique",
                        en="periodic re-check"),
    "daemon-down": message("watch.daemon-down", fr="le démon libvirt ne répond plus",
                           en="the libvirt daemon stopped answering"),
    "reconnected": message("watch.reconnected", fr="démon libvirt revenu",
                           en="libvirt daemon back"),
    "event": message("watch.event", fr="événement libvirt", en="libvirt event"),
}
NEXT = message("watch.next", fr="Prochaine étape ({id}) : {hint}", en="Next step ({id}): {hint}")
QUIT = message("watch.quit", fr="Ctrl-C pour quitter", en="Ctrl-C to quit")


def reason_text(reason: str, lang: str) -> str:
    """Why an update came, for the learner: ``event:domain-lifecycle`` ->
    ``événement libvirt (domain-lifecycle)``."""
    kind, _, detail = reason.partition(":")
    why = REASONS[kind].get(lang) if kind in REASONS else reason
    return why + (f" ({detail})" if detail else "")


#: rich styles of the inline Markdown of lab text (code spans, emphasis).
RICH_STYLES = {"text": "", "code": "bold cyan", "em": "italic", "strong": "bold"}


def rich_text(s: str, style: str = "") -> Any:
    """Lab text (inline Markdown) as a rich ``Text``: code spans in a code style, no
    backticks; built piece by piece (``Text.append``), never parsed as rich markup, so that a
    learner's ``[bold]`` stays those characters."""
    from rich.text import Text

    from checker.markup import segments
    from checker.safetext import clean

    out = Text(style=style)
    for piece, kind in segments(clean(s)):
        out.append(piece, style=RICH_STYLES[kind] or None)
    return out


def live_view(u: Update) -> Any:
    """One screen: a line per objective, the score, the next step (fits a terminal)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from checker.reporters.text import ICON, STYLE, clean, labels

    r = u.report
    lang = r.lang
    t = labels(lang)
    colon = t["colon"]
    table = Table(box=None, pad_edge=False, expand=True, show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, style="bold")
    table.add_column(no_wrap=True, justify="right")
    table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    for o in r.objectives:
        pts = "—" if o.status == "skip" else f"{o.earned}/{o.points}"
        table.add_row(Text(f"{ICON[o.status]} {t[o.status]}", style=STYLE[o.status]),
                      Text(clean(o.id)), Text(pts),
                      rich_text(o.message.splitlines()[0] if o.message else ""))
    head = Text(f"{clean(r.lab)} — ", style="bold") + rich_text(r.title, "bold")
    score = Text(f"{t['score']}{colon}{r.score}/{r.max_score}",
                 style="bold green" if r.passed else "bold red")
    parts: list[Any] = [head, table, score]
    todo = next((o for o in r.objectives if o.status in ("fail", "error")), None)
    if todo is not None and todo.hint:
        before, _, after = NEXT.get(lang).partition("{hint}")
        parts.append(Text(before.format(id=clean(todo.id)), style="italic")
                     + rich_text(todo.hint, "italic") + Text(after, style="italic"))
    reason = clean(reason_text(u.reason, lang))
    stamp = time.strftime("%H:%M:%S", time.localtime(u.at))
    parts.append(Text(f"[{stamp}] {reason} — {QUIT.get(lang)}", style="dim"))
    return Group(*parts)


def watch_terminal(lab: str, host: str, *, connect: str | None, user: str | None,
                   lang: str | None, fmt: str = "text") -> int:
    """``virtlab check LAB --watch``: a live view on a terminal, JSON lines otherwise."""
    import os
    import sys

    from checker.safetext import dumps

    live_ctx: Any = None
    if sys.stdout.isatty() and fmt == "text":
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        live_ctx = Live(Text("…"), console=Console(), refresh_per_second=8,
                        vertical_overflow="visible")

    last: list[Report] = []

    def show(u: Update) -> None:
        last[:] = [u.report]
        if live_ctx is not None:
            live_ctx.update(live_view(u))
        else:
            line = {"at": round(u.at, 3), "reason": u.reason, **u.report.to_dict()}
            sys.stdout.write(dumps(line) + "\n")
            sys.stdout.flush()

    interval = float(os.environ.get("VIRTLAB_WATCH_INTERVAL", "5"))
    w = Watcher(lab, host, connect=connect, user=user, lang=lang, interval=interval,
                on_update=show)
    try:
        if live_ctx is not None:
            with live_ctx:
                w.run()
        else:
            w.run()
    except KeyboardInterrupt:
        w.stop()
    if last:
        from checker.progress import record

        record(last[0])
        return Exit.OK if last[0].passed else Exit.FAILED
    return Exit.FAILED


class NotebookWatch:
    """A live scoreboard in Jupyter, updated from a background thread."""

    def __init__(self, lab: str, host: str = "local://", **kwargs: Any):
        from IPython.display import HTML, display

        self._handle = display(HTML("<p>virtlab: …</p>"), display_id=True)
        self._HTML: Callable[..., Any] = HTML

        def show(u: Update) -> None:
            from html import escape

            from checker.reporters import render

            stamp = time.strftime("%H:%M:%S", time.localtime(u.at))
            why = escape(reason_text(u.reason, u.report.lang))
            self._handle.update(self._HTML(render(u.report, "notebook")
                                           + f"<p><small>{stamp} · {why}</small></p>"))

        self._watcher = Watcher(lab, host, on_update=show, **kwargs)
        self._thread = threading.Thread(target=self._watcher.run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._watcher.stop()
        self._thread.join(timeout=10)


def watch(lab: str, host: str = "local://", **kwargs: Any) -> NotebookWatch:
    return NotebookWatch(lab, host, **kwargs)
