"""The dfstream desktop window: open sources, pick the model, start, watch, stop, save.

The Tk thread never waits on the analysis: ``_poll`` (every ``POLL_MS`` through ``after()``)
drains the session's message queue into the view-model, takes snapshots at ``SNAPSHOT_S``,
redraws the list and banner, the preview at most ``PREVIEW_S`` and the plot at most
``PLOT_S``. Closing the window stops the run, lets it finalise its outputs (the window keeps
polling meanwhile), then destroys it; the caller joins the session's threads.
"""

from __future__ import annotations

import queue
import time
import tkinter as tk
from collections.abc import Callable, Sequence
from pathlib import Path
from tkinter import filedialog, ttk

from dfstream.errors import DfstreamError, UsageError
from dfstream.gui.session import Finished, Session
from dfstream.gui.settings import GuiSettings, RecentSources, save_settings
from dfstream.gui.viewmodel import ViewModel
from dfstream.gui.widgets import (
    Banner,
    ModelPicker,
    PreferencesDialog,
    PreviewPane,
    ScorePlot,
    SourcesList,
)

POLL_MS = 50
SNAPSHOT_S = 0.25
PREVIEW_S = 0.1
PLOT_S = 0.5
CLOSE_TIMEOUT_S = 30.0
MAX_MESSAGES_PER_POLL = 2000

MEDIA_TYPES = [
    ("Videos and photos", "*.mp4 *.mkv *.mov *.avi *.webm *.m4v *.ts *.jpg *.jpeg *.png *.webp"),
    ("All files", "*"),
]
SHORTCUTS = (
    ("<Control-o>", "open_files"),
    ("<Control-d>", "open_folder"),
    ("<Control-l>", "focus_source_field"),
    ("<Control-r>", "start"),
    ("<F5>", "start"),
    ("<Escape>", "stop"),
    ("<Control-s>", "save"),
    ("<Control-comma>", "preferences"),
    ("<Control-q>", "quit"),
)


class App:
    """The main window on ``root`` (see the module docstring)."""

    def __init__(
        self,
        root: tk.Tk,
        *,
        session: Session,
        settings: GuiSettings,
        recent: RecentSources,
        config_dir: Path,
    ) -> None:
        self.root, self.session, self.settings = root, session, settings
        self.recent, self.config_dir = recent, config_dir
        self.vm = ViewModel()
        self.selected: str | None = None
        self._closing_since: float | None = None
        self._last = {"snapshot": 0.0, "preview": 0.0, "plot": 0.0}
        root.title("dfstream")
        root.geometry("1160x760")
        root.minsize(820, 560)
        style = ttk.Style(root)
        if style.theme_use() == "default" and "clam" in style.theme_names():
            style.theme_use("clam")  # X11's plain default looks dated; others stay native
            style.configure("Horizontal.TProgressbar", background="#1e88e5")
        self._build_menu()
        self._build_toolbar()
        self._build_body()
        for sequence, action in SHORTCUTS:
            root.bind(sequence, self._shortcut(action))
        root.protocol("WM_DELETE_WINDOW", self.quit)
        self.closed = False
        """True once the window is destroyed."""
        self._refresh()
        self._after = root.after(POLL_MS, self._poll)

    def _shortcut(self, action: str) -> Callable[[tk.Event[tk.Misc]], str]:
        def run(_event: tk.Event[tk.Misc]) -> str:
            getattr(self, action)()
            return "break"  # e.g. Ctrl+O must not also insert a line in a text field

        return run

    # -- layout -----------------------------------------------------------------------------

    def _build_menu(self) -> None:
        menu = tk.Menu(self.root)
        file = tk.Menu(menu, tearoff=False)
        file.add_command(label="Open files…", accelerator="Ctrl+O", command=self.open_files)
        file.add_command(label="Open folder…", accelerator="Ctrl+D", command=self.open_folder)
        self.recent_menu = tk.Menu(file, tearoff=False)
        file.add_cascade(label="Open recent", menu=self.recent_menu)
        file.add_separator()
        file.add_command(label="Save outputs…", accelerator="Ctrl+S", command=self.save)
        file.add_command(label="Preferences…", accelerator="Ctrl+,", command=self.preferences)
        file.add_separator()
        file.add_command(label="Quit", accelerator="Ctrl+Q", command=self.quit)
        run = tk.Menu(menu, tearoff=False)
        run.add_command(label="Start", accelerator="Ctrl+R", command=self.start)
        run.add_command(label="Stop", accelerator="Esc", command=self.stop)
        menu.add_cascade(label="File", menu=file)
        menu.add_cascade(label="Run", menu=run)
        self.root.configure(menu=menu)
        self._fill_recent_menu()

    def _build_toolbar(self) -> None:
        bar = ttk.Frame(self.root, padding=(8, 6, 8, 2))
        bar.pack(side="top", fill="x")
        ttk.Button(bar, text="Open files…", command=self.open_files).pack(side="left")
        ttk.Button(bar, text="Folder…", command=self.open_folder).pack(side="left", padx=(4, 0))
        ttk.Label(bar, text="URL or webcam:").pack(side="left", padx=(12, 4))
        self.save_button = ttk.Button(bar, text="Save…", command=self.save)
        self.save_button.pack(side="right")
        self.stop_button = ttk.Button(bar, text="Stop", command=self.stop)
        self.stop_button.pack(side="right", padx=(0, 4))
        self.start_button = ttk.Button(bar, text="Start", command=self.start)
        self.start_button.pack(side="right", padx=(12, 4))
        ttk.Button(bar, text="Add", command=self.add_from_field).pack(side="right", padx=(4, 0))
        self.source_field = ttk.Combobox(bar, values=self.recent.items)
        self.source_field.pack(side="left", fill="x", expand=True)
        self.source_field.bind("<Return>", lambda _e: self.add_from_field())
        self.source_field.bind("<Escape>", lambda _e: "break")  # Esc here must not stop the run
        line = ttk.Frame(self.root, padding=(8, 2, 8, 4))
        line.pack(side="top", fill="x")
        self.model = ModelPicker(line, self.settings, on_change=self._set_settings)
        self.model.pack(side="left")
        ttk.Button(line, text="Preferences…", command=self.preferences).pack(side="left", padx=4)
        self.message = ttk.Label(line, padding=(10, 0), anchor="w")
        self.message.pack(side="left", fill="x", expand=True)

    def _build_body(self) -> None:
        bottom = ttk.Frame(self.root, relief="sunken")
        bottom.pack(side="bottom", fill="x")
        self.settings_label = ttk.Label(bottom, padding=(10, 3), anchor="e")
        self.settings_label.pack(side="right")
        self.status = ttk.Label(bottom, padding=(10, 3), anchor="w")
        self.status.pack(side="left", fill="x", expand=True)
        panes = ttk.PanedWindow(self.root, orient="horizontal")
        panes.pack(side="top", fill="both", expand=True, padx=8, pady=(0, 6))
        self.sources = SourcesList(panes, on_select=self._selection_changed,
                                   on_delete=self.remove_selected)  # fmt: skip
        right = ttk.Frame(panes)
        self.banner = Banner(right)
        self.banner.pack(side="top", fill="x")
        self.preview = PreviewPane(right)
        self.preview.pack(side="top", fill="both", expand=True, pady=6)
        self.plot = ScorePlot(right)
        self.plot.widget.pack(side="top", fill="both", expand=False)
        panes.add(self.sources, weight=2)
        panes.add(right, weight=3)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.delete(0, "end")
        for source in self.recent.items:
            self.recent_menu.add_command(label=source, command=self._opener_of(source))
        if not self.recent.items:
            self.recent_menu.add_command(label="(none yet)", state="disabled")
        if hasattr(self, "source_field"):
            self.source_field.configure(values=self.recent.items)

    def _opener_of(self, source: str) -> Callable[[], None]:
        return lambda: self.add_sources([source])

    # -- actions ----------------------------------------------------------------------------

    def open_files(self) -> None:
        """Ask for videos or photos (several at once) and add them."""
        paths = filedialog.askopenfilenames(
            parent=self.root, title="Open videos or photos", filetypes=MEDIA_TYPES
        )
        if paths:
            self.add_sources([str(p) for p in paths])

    def open_folder(self) -> None:
        """Ask for a folder; each video in it becomes a source."""
        path = filedialog.askdirectory(parent=self.root, title="Open a folder of videos")
        if path:
            self.add_sources([str(path)])

    def focus_source_field(self) -> None:
        """Put the cursor in the URL / webcam field."""
        self.source_field.focus_set()
        self.source_field.select_range(0, "end")

    def add_from_field(self) -> None:
        """Add what is typed in the URL / webcam field (rtsp://…, http(s)://…, webcam:N …)."""
        text = self.source_field.get().strip()
        if text:
            self.source_field.set("")
            self.add_sources([text])

    def add_sources(self, sources: Sequence[str]) -> None:
        """Add sources: to the running analysis when one runs, else to the list for Start."""
        self.recent.add(list(sources))
        try:
            self.recent.save()
        except OSError as exc:
            self.vm.set_message(f"cannot remember recent sources: {exc}", error=True)
        self._fill_recent_menu()
        if self.vm.running:
            try:
                for source in sources:
                    self.session.add_source(source)
                self.vm.set_message(f"added {len(sources)} source(s) to the running analysis")
            except UsageError:  # still loading the model: they wait for the next Start
                self._select(self.vm.add_pending(sources)[0])
                self.vm.set_message("the model is still loading: press Start for these after")
            except DfstreamError as exc:
                self.vm.set_message(str(exc), error=True)
        else:
            self._select(self.vm.add_pending(sources)[0])
        self._refresh()

    def remove_selected(self) -> None:
        """Take the selected source off the list (not while it is being analysed)."""
        if self.selected is not None:
            self.vm.remove(self.selected)
            self.selected = None
            self._refresh()

    def start(self) -> None:
        """Analyse the sources that are ready."""
        if self.vm.running or self.session.busy:
            return
        sources = self.vm.pending_sources()
        if not sources:
            self.vm.set_message("nothing to analyse: open a file, folder, URL or webcam first")
            self._refresh()
            return
        try:
            run_id = self.session.start(sources, self.settings)
        except (DfstreamError, ValueError) as exc:
            self.vm.set_message(str(exc), error=True)
        else:
            self.vm.run_starting(run_id, threshold=self.settings.threshold)
            self.vm.status = f"loading the model: {self.settings.describe_model()}"
        self._refresh()

    def stop(self) -> None:
        """Stop the analysis; it finalises every output."""
        if self.session.busy:
            self.session.stop()
            self.vm.set_message("stopping: finalising the outputs…")
            self._refresh()

    def save(self) -> None:
        """Copy the outputs of the selected (else the latest) finished run to a folder."""
        found = self.vm.saveable(self.selected)
        if found is None:
            self.vm.set_message("nothing to save yet: outputs are saved once a run has ended")
            self._refresh()
            return
        folder = filedialog.askdirectory(parent=self.root, title="Save the outputs into…")
        if folder:
            self.session.save(found[0], found[1], Path(folder))

    def preferences(self) -> None:
        """Open the preferences dialog (threshold, detector, annotated video)."""
        PreferencesDialog(self.root, self.settings, self._set_settings)

    def quit(self) -> None:
        """Close the window: stop the run first and let it finalise its outputs."""
        if not self.session.busy:
            self._destroy()
            return
        if self._closing_since is None:
            self._closing_since = time.monotonic()
            self.session.stop()
            self.vm.set_message("closing: stopping the analysis and finalising its outputs…")
            self._refresh()

    def _set_settings(self, settings: GuiSettings) -> None:
        self.settings = settings
        try:
            save_settings(self.config_dir, settings)
        except OSError as exc:
            self.vm.set_message(f"cannot save the preferences: {exc}", error=True)
        self.model.show(settings)
        self._refresh()

    # -- polling and drawing ----------------------------------------------------------------

    def _poll(self) -> None:
        try:
            self._poll_once()
        finally:  # a failing redraw is reported by Tk, and the window goes on polling
            if not self.closed:
                self._after = self.root.after(POLL_MS, self._poll)

    def _poll_once(self) -> None:
        now = time.monotonic()
        changed = False
        for _ in range(MAX_MESSAGES_PER_POLL):
            try:
                message = self.session.messages.get_nowait()
            except queue.Empty:
                break
            if isinstance(message, Finished):  # the final counters, before the summaries
                self.vm.apply_snapshots(message.run_id, self.session.snapshots())
            self.vm.apply(message)
            changed = True
        run_id = self.vm.current_run
        if run_id is not None and self.vm.running and now - self._last["snapshot"] >= SNAPSHOT_S:
            self._last["snapshot"] = now
            self.vm.apply_snapshots(run_id, self.session.snapshots())
            changed = True
        if changed:
            self._refresh()
        if now - self._last["preview"] >= PREVIEW_S:
            self._last["preview"] = now
            self._refresh_preview()
        if now - self._last["plot"] >= PLOT_S:
            self._last["plot"] = now
            self.plot.show(
                self.vm.series(self.selected),
                threshold=self.vm.threshold(self.selected),
                source=self.selected,
            )
        if self._closing_since is not None and (
            not self.session.busy or now - self._closing_since > CLOSE_TIMEOUT_S
        ):
            self._destroy()

    def _destroy(self) -> None:
        if not self.closed:
            self.closed = True
            self.root.after_cancel(self._after)
            self.root.destroy()

    def _select(self, key: str) -> None:
        self.selected = key

    def _selection_changed(self, key: str) -> None:
        if key != self.selected:
            self.selected = key
            self._refresh()

    def _refresh(self) -> None:
        """Redraw the list, banner, progress, buttons and messages from the view-model."""
        rows = self.vm.rows()
        keys = [r.key for r in rows]
        if self.selected not in keys:
            current = [k for k in keys if k.startswith(f"r{self.vm.current_run}:")]
            self.selected = (current or keys)[0] if keys else None
        self.sources.show(rows, self.selected)
        self.banner.show(self.vm.banner(self.selected))
        running = self.vm.running or self.session.busy
        ready = bool(self.vm.pending_sources())
        self.start_button.state(["!disabled" if ready and not running else "disabled"])
        self.stop_button.state(["!disabled" if self.session.busy else "disabled"])
        self.save_button.state(["!disabled" if self.vm.saveable(self.selected) else "disabled"])
        text = self.vm.message or ""
        self.message.configure(
            text=text, foreground="#b71c1c" if self.vm.message_is_error else "#1b5e20"
        )
        settings = self.settings
        self.status.configure(text=self.vm.status or settings.describe_model())
        self.settings_label.configure(
            text=f"threshold {settings.describe_threshold()} · detector {settings.detector} · "
            f"annotated video {'on' if settings.overlay else 'off'}"
        )

    def _refresh_preview(self) -> None:
        stream = self.vm.stream_of(self.selected)
        latest = None
        if stream is not None and stream[0] == self.vm.current_run:
            latest = self.session.latest_frame(stream[1])
        self.preview.show(
            latest,
            self.vm.face_scores(self.selected),
            untrained=self.vm.untrained(self.selected),
        )
