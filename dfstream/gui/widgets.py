"""The window's composite widgets: the verdict banner, the score plot (matplotlib embedded with
``FigureCanvasTkAgg``) and the preferences dialog. They draw what they are given and hold no
analysis state."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Mapping
from tkinter import ttk

from dfstream.config import DETECTORS
from dfstream.gui.settings import GuiSettings
from dfstream.gui.viewmodel import BannerView

DETECTOR_HELP = {
    "auto": "auto: YuNet when its model is found, else Haar",
    "yunet": "yunet: OpenCV's YuNet CNN detector",
    "haar": "haar: OpenCV's Haar cascade (fast, less accurate)",
    "none": "none: the whole frame is the face (pre-cropped faces)",
}


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
        self.threshold = tk.StringVar(value=f"{settings.threshold:.2f}")
        self.detector = tk.StringVar(value=DETECTOR_HELP[settings.detector])
        self.overlay = tk.BooleanVar(value=settings.overlay)
        ttk.Label(body, text="FAKE threshold (0-1):").grid(row=0, column=0, sticky="w")
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
            threshold = float(self.threshold.get())
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
