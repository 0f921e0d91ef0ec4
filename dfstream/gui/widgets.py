"""The window's composite widgets: the verdict banner, the score plot (matplotlib embedded with
``FigureCanvasTkAgg``) and the preferences dialog. They draw what they are given and hold no
analysis state."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Literal

from dfstream.config import DETECTORS
from dfstream.gui.preview import render_preview
from dfstream.gui.settings import GuiSettings
from dfstream.gui.viewmodel import BannerView, RowView
from dfstream.types import Frame, TrackBoxes

DETECTOR_HELP = {
    "auto": "auto: YuNet when its model is found, else Haar",
    "yunet": "yunet: OpenCV's YuNet CNN detector",
    "haar": "haar: OpenCV's Haar cascade (fast, less accurate)",
    "none": "none: the whole frame is the face (pre-cropped faces)",
}


VERDICT_ROW_COLOURS = {"REAL": "#c8e6c9", "FAKE": "#ffcdd2", "UNCERTAIN": "#fff3c4"}
ERROR_ROW_COLOUR = "#d7ccc8"
Anchor = Literal["w", "e"]
COLUMNS: tuple[tuple[str, int, Anchor], ...] = (
    ("state", 80, "w"),
    ("done", 50, "e"),
    ("ETA", 50, "e"),
    ("fps", 50, "e"),
    ("drops", 56, "e"),
    ("verdict", 125, "w"),
)
"""The list's columns after the source name: (name, width in pixels, alignment)."""


class SourcesList(ttk.Frame):
    """The sources: one row each (state, progress, ETA, analysed fps, drops, verdict, the row
    tinted by verdict), and below them the selected source's progress bar with its ETA."""

    def __init__(
        self,
        master: tk.Misc,
        *,
        on_select: Callable[[str], None],
        on_delete: Callable[[], None],
    ) -> None:
        super().__init__(master)
        self.tree = ttk.Treeview(self, columns=[c for c, _, _ in COLUMNS], selectmode="browse")
        self.tree.heading("#0", text="source")
        self.tree.column("#0", width=180, minwidth=100, stretch=True)
        for name, width, anchor in COLUMNS:
            self.tree.heading(name, text=name)
            self.tree.column(name, width=width, stretch=False, anchor=anchor)
        for verdict, colour in VERDICT_ROW_COLOURS.items():
            self.tree.tag_configure(verdict, background=colour)
        self.tree.tag_configure("error", background=ERROR_ROW_COLOUR)
        self.tree.pack(side="top", fill="both", expand=True)
        self.tree.bind("<<TreeviewSelect>>", lambda _e: self._selected(on_select))
        self.tree.bind("<Delete>", lambda _e: on_delete())
        self.progress = ttk.Progressbar(self, mode="determinate", maximum=100.0)
        self.progress.pack(side="top", fill="x", pady=(6, 0))
        self.label = ttk.Label(self, anchor="w")
        self.label.pack(side="top", fill="x")

    def _selected(self, on_select: Callable[[str], None]) -> None:
        chosen = self.tree.selection()
        if chosen:
            on_select(chosen[0])

    def show(self, rows: Sequence[RowView], selected: str | None) -> None:
        """Show ``rows`` (updating rows in place) with ``selected`` highlighted."""
        keys = {row.key for row in rows}
        for stale in set(self.tree.get_children()) - keys:
            self.tree.delete(stale)
        for index, row in enumerate(rows):
            values = (row.state, row.progress_text, row.eta, row.fps, row.drops, row.verdict)
            tags: tuple[str, ...] = ()
            if row.error:
                tags = ("error",)
            elif row.verdict_kind is not None:
                tags = (row.verdict_kind.value,)
            if self.tree.exists(row.key):
                self.tree.item(row.key, text=row.name, values=values, tags=tags)
                if self.tree.index(row.key) != index:
                    self.tree.move(row.key, "", index)
            else:
                self.tree.insert("", index, iid=row.key, text=row.name, values=values, tags=tags)
        if selected is not None and self.tree.selection() != (selected,):
            self.tree.selection_set(selected)
        view = next((row for row in rows if row.key == selected), None)
        if view is None or view.progress is None:
            self.progress.configure(value=0.0)
            live = view.progress_text if view is not None else ""
            self.label.configure(text=f"live: {live} of video" if live else "")
        else:
            self.progress.configure(value=100.0 * view.progress)
            eta = f" · ETA {view.eta}" if view.eta else ""
            self.label.configure(text=f"{view.name}: {view.progress_text}{eta}")


class Banner(tk.Frame):
    """The verdict banner: a big coloured title (REAL / FAKE / UNCERTAIN / NO FACES) and one
    line of detail."""

    def __init__(self, master: tk.Misc) -> None:
        super().__init__(master, padx=12, pady=6)
        self.title = tk.Label(self, font=("TkDefaultFont", 22, "bold"), anchor="w")
        self.title.pack(fill="x")
        self.detail = tk.Label(self, anchor="w", justify="left", wraplength=560)
        self.detail.pack(fill="x")
        self.bind("<Configure>", lambda e: self.detail.configure(wraplength=max(200, e.width - 30)))
        self._shown: BannerView | None = None

    def show(self, view: BannerView) -> None:
        """Show ``view`` (nothing is redrawn when it did not change)."""
        if view == self._shown:
            return
        self._shown = view
        for widget in (self, self.title, self.detail):
            widget.configure(background=view.background)
        self.title.configure(text=view.title, foreground=view.foreground)
        self.detail.configure(text=view.detail, foreground=view.foreground)


MODEL_DEFAULT = "Shipped default model"
MODEL_PICK = "Checkpoint file…"
MODEL_UNTRAINED = "Untrained (pipeline check)"
CHECKPOINT_TYPES = [("Checkpoints", "*.pt *.pth *.safetensors"), ("All files", "*")]


class ModelPicker(ttk.Frame):
    """The model choice: the shipped default, a checkpoint file (picked with a file dialog;
    the last one stays in the list) or the untrained model; ``on_change`` gets the settings
    with the new choice."""

    def __init__(
        self,
        master: tk.Misc,
        settings: GuiSettings,
        *,
        on_change: Callable[[GuiSettings], None],
    ) -> None:
        super().__init__(master)
        ttk.Label(self, text="Model:").pack(side="left", padx=(0, 4))
        self.field = ttk.Combobox(self, state="readonly", width=30)
        self.field.pack(side="left")
        self.field.bind("<<ComboboxSelected>>", lambda _e: self._picked())
        self._settings, self._on_change = settings, on_change
        self.show(settings)

    def show(self, settings: GuiSettings) -> None:
        """Show the choice of ``settings``."""
        self._settings = settings
        choices = [MODEL_DEFAULT, MODEL_PICK, MODEL_UNTRAINED]
        current = {"default": MODEL_DEFAULT, "untrained": MODEL_UNTRAINED}.get(settings.model)
        if settings.checkpoint is not None:
            named = f"Checkpoint: {settings.checkpoint.name}"
            choices.insert(1, named)
            current = current or named
        self.field.configure(values=choices)
        self.field.set(current or MODEL_DEFAULT)

    def _picked(self) -> None:
        choice, settings = self.field.get(), self._settings
        if choice == MODEL_PICK:
            path = filedialog.askopenfilename(
                parent=self, title="Choose a checkpoint", filetypes=CHECKPOINT_TYPES
            )
            if not path:
                self.show(settings)  # cancelled: back to what was chosen
                return
            settings = settings.with_model("checkpoint", Path(path))
        elif choice == MODEL_UNTRAINED:
            settings = settings.with_model("untrained")
        elif choice == MODEL_DEFAULT:
            settings = settings.with_model("default")
        else:
            settings = settings.with_model("checkpoint")
        self._on_change(settings)


class PreviewPane(ttk.Frame):
    """The latest frame of the selected source, fitted into the pane, face boxes coloured by
    score; redrawn only when the frame, the scores or the pane's size changed."""

    def __init__(self, master: tk.Misc, size: tuple[int, int] = (480, 300)) -> None:
        super().__init__(master, width=size[0], height=size[1])
        self.pack_propagate(False)  # the picture follows the pane, never the other way round
        self.label = ttk.Label(self, anchor="center", text="no frame yet")
        self.label.pack(fill="both", expand=True)
        self._shown: tuple[object, ...] | None = None
        self._photo: tk.PhotoImage | None = None

    def show(
        self,
        latest: tuple[Frame, TrackBoxes] | None,
        scores: Mapping[int, float],
        *,
        untrained: bool,
    ) -> None:
        """Show ``latest`` (frame, boxes) with ``scores`` per track (None: no frame)."""
        if latest is None:
            if self._shown is not None:
                self._shown, self._photo = None, None
                self.label.configure(image="", text="no frame yet")
            return
        frame, tracks = latest
        box = (max(160, self.winfo_width()), max(120, self.winfo_height()))
        key = (id(frame), frame.index, tuple(sorted(scores.items())), box, untrained)
        if key == self._shown:
            return
        self._shown = key
        _, _, data = render_preview(frame, tracks, scores, max_size=box, untrained=untrained)
        self._photo = tk.PhotoImage(master=self, data=data, format="PPM")
        self.label.configure(image=self._photo, text="")


class ScorePlot:
    """Each face's window scores over video time, and the threshold as a dashed line."""

    def __init__(self, master: tk.Misc) -> None:
        from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(5.6, 2.4), dpi=90, layout="constrained")
        self.axes = self.figure.add_subplot()
        self.canvas = FigureCanvasTkAgg(self.figure, master=master)
        self.widget = self.canvas.get_tk_widget()
        self._shown: tuple[object, ...] | None = None
        self.show({}, threshold=0.5, source=None)

    def show(
        self,
        series: Mapping[int, tuple[list[float], list[float]]],
        *,
        threshold: float,
        source: str | None,
    ) -> None:
        """Plot ``series`` (track id -> (media times, scores)) of ``source`` (a row key);
        nothing is redrawn when neither changed."""
        key = (source, threshold, tuple((t, len(x)) for t, (x, _) in series.items()))
        if key == self._shown:
            return
        self._shown = key
        ax = self.axes
        ax.clear()
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel("video time (s)")
        ax.set_ylabel("P(fake)")
        ax.axhline(threshold, linestyle="--", color="#444444", linewidth=1.0,
                   label=f"threshold {threshold:.2f}")  # fmt: skip
        for track, (times, scores) in series.items():
            ax.plot(times, scores, marker=".", markersize=3, linewidth=1.2, label=f"face #{track}")
        if not series:
            ax.set_xlim(0.0, 1.0)
            ax.text(0.5, 0.5, "no face scored yet", ha="center", va="center", color="#777777",
                    transform=ax.transAxes)  # fmt: skip
        ax.legend(loc="upper left", fontsize="small", ncols=min(4, len(series) + 1))
        self.canvas.draw_idle()


class PreferencesDialog(tk.Toplevel):
    """Threshold, face detector and the annotated-video switch; ``on_ok`` gets the new
    settings. Not modal for the event loop: the main window keeps polling while it is open."""

    def __init__(
        self,
        master: tk.Misc,
        settings: GuiSettings,
        on_ok: Callable[[GuiSettings], None],
    ) -> None:
        super().__init__(master)
        self.title("dfstream preferences")
        self.resizable(False, False)
        self.transient(master)  # type: ignore[call-overload]
        self._settings, self._on_ok = settings, on_ok
        body = ttk.Frame(self, padding=12)
        body.pack(fill="both", expand=True)
        value = "" if settings.threshold is None else f"{settings.threshold:.2f}"
        self.threshold = tk.StringVar(value=value)
        self.detector = tk.StringVar(value=DETECTOR_HELP[settings.detector])
        self.overlay = tk.BooleanVar(value=settings.overlay)
        ttk.Label(body, text="FAKE threshold (0-1; empty = the model's):").grid(
            row=0, column=0, sticky="w")  # fmt: skip
        ttk.Spinbox(body, from_=0.0, to=1.0, increment=0.05, width=8,
                    textvariable=self.threshold).grid(row=0, column=1, sticky="w")  # fmt: skip
        ttk.Label(body, text="Face detector:").grid(row=1, column=0, sticky="w", pady=(8, 0))
        ttk.Combobox(body, state="readonly", width=48, textvariable=self.detector,
                     values=[DETECTOR_HELP[d] for d in DETECTORS]).grid(
            row=1, column=1, sticky="w", pady=(8, 0))  # fmt: skip
        ttk.Checkbutton(
            body, text="Write the annotated video during each run (for Save)", variable=self.overlay
        ).grid(row=2, column=0, columnspan=2, sticky="w", pady=(8, 0))
        self.error = ttk.Label(body, foreground="#b71c1c")
        self.error.grid(row=3, column=0, columnspan=2, sticky="w", pady=(8, 0))
        buttons = ttk.Frame(body)
        buttons.grid(row=4, column=0, columnspan=2, sticky="e", pady=(8, 0))
        ttk.Button(buttons, text="Cancel", command=self.destroy).pack(side="right")
        ttk.Button(buttons, text="OK", command=self.ok).pack(side="right", padx=(0, 6))
        self.bind("<Return>", lambda _e: self.ok())
        self.bind("<Escape>", lambda _e: self.destroy())

    def ok(self) -> None:
        """Check the values; hand the new settings on and close, or say what is wrong."""
        try:
            text = self.threshold.get().strip()
            threshold = float(text) if text else None
            detector = self.detector.get().split(":", 1)[0]
            settings = GuiSettings(
                model=self._settings.model,
                checkpoint=self._settings.checkpoint,
                threshold=threshold,
                detector=detector,  # type: ignore[arg-type]
                overlay=bool(self.overlay.get()),
            )
        except ValueError as exc:
            self.error.configure(text=str(exc).replace("could not convert string to float", "bad"))
            return
        self._on_ok(settings)
        self.destroy()
