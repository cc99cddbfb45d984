"""The error map's fine-tuning panel: select frames (drag over the per-frame curve or the parity
plot), press "fine-tune on these", and the fine-tuned model joins the error map next to the
original, with a before/after table on the frames it never saw."""

from __future__ import annotations

import html
import threading
from typing import TYPE_CHECKING, Any, Protocol

import ipywidgets as widgets
import numpy as np
import pandas as pd

from ..errors import InputError, MlipvizError
from .common import error_html

if TYPE_CHECKING:
    from ..analysis.compare import Comparison


class SelectsFrames(Protocol):
    """What the panel needs of its view (the error map): the comparison and model shown, frame
    selections, and a way to show a comparison with one more model."""

    comparison: Comparison

    @property
    def model(self) -> str:
        """The model shown."""
        ...

    def on_frames_selected(self, callback: Any) -> None:
        """Call ``callback(frames)`` when the user selects frames."""
        ...

    def set_comparison(self, comparison: Comparison, model: str | None = None) -> None:
        """Show ``comparison`` and ``model`` in it."""
        ...

#: separate validation frames taken from the frames not selected (evenly spread), at most
VALIDATION_FRAMES = 5


class Cancelled(MlipvizError):
    """The user pressed cancel: the run stops after the epoch it is in."""


class FineTunePanel(widgets.VBox):
    """Fine-tune the error map's model on frames the user selects, in the background.

    The training frames carry the comparison's reference as labels; up to `VALIDATION_FRAMES`
    frames that were not selected are held out for validation (never trained on); the result is
    added to the error map's comparison (`ErrorMap.set_comparison`) and shown, and the table
    compares it with the original on all frames and on the frames it never saw.

    Parameters
    ----------
    error_map : SelectsFrames
        The view (an `ErrorMap`) whose selection and model it uses.
    """

    def __init__(self, error_map: SelectsFrames) -> None:
        self.error_map = error_map
        self.selected: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._runs = 0
        self.selection = widgets.HTML(self._selection_text())
        self.epochs = widgets.BoundedIntText(20, min=1, max=1000, description="epochs", layout={"width": "160px"})
        self.button = widgets.Button(description="fine-tune on these", disabled=True, button_style="primary",
                                     tooltip="fine-tune the model shown on the selected frames",
                                     layout={"width": "170px"})
        self.cancel_button = widgets.Button(description="cancel", disabled=True, layout={"width": "90px"})
        self.progress = widgets.IntProgress(0, min=0, max=1, layout={"width": "220px"})
        self.status = widgets.HTML()
        self.result = widgets.HTML()
        self.button.on_click(lambda _: self.start())
        self.cancel_button.on_click(lambda _: self._stop.set())
        error_map.on_frames_selected(self.select)
        super().__init__([
            widgets.HTML("<b>Fix it</b>: select frames in the per-frame curve (drag) or the parity plot (box or "
                         "lasso in its tool bar), then fine-tune the model shown on them"),
            self.selection,
            widgets.HBox([self.epochs, self.button, self.cancel_button, self.progress, self.status]),
            self.result,
        ], layout={"border_top": "1px solid #ddd", "margin": "8px 0 0 0", "padding": "4px 0 0 0"})

    def _selection_text(self) -> str:
        if not self.selected:
            return "<span style='color:#666'>no frames selected</span>"
        shown = ", ".join(map(str, self.selected[:20])) + (" ..." if len(self.selected) > 20 else "")
        return f"selected: <b>{len(self.selected)} frame(s)</b> ({shown})"

    def select(self, frames: list[int]) -> None:
        """Use ``frames`` (indices into the comparison's frames) as the training frames."""
        self.selected = sorted({int(i) for i in frames})
        self.selection.value = self._selection_text()
        self.button.disabled = not self.selected or self._thread is not None

    def start(self) -> threading.Thread:
        """Fine-tune the model shown on the selected frames in a background thread."""
        if self._thread is not None:
            raise MlipvizError("a fine-tuning run is going on; cancel it first")
        self._stop.clear()
        self.button.disabled, self.cancel_button.disabled = True, False
        self.status.value, self.result.value = "starting", ""
        self.progress.value, self.progress.max = 0, int(self.epochs.value)
        # the thread may end (and clear _thread) before start() returns: return it from a local
        thread = threading.Thread(target=self._run, args=(self.error_map.model, list(self.selected)), daemon=True)
        self._thread = thread
        thread.start()
        return thread

    def _epoch_done(self, epoch: int, errors: dict[str, float]) -> None:
        self.progress.value = epoch + 1
        self.status.value = (f"epoch {epoch + 1}/{self.progress.max}: validation |ΔF| MAE "
                             f"{errors['val_force_mae']:.4f} eV/Å")
        if self._stop.is_set():
            raise Cancelled(f"fine-tuning cancelled after epoch {epoch + 1}")

    def _run(self, name: str, selected: list[int]) -> None:
        from ..models import load_model
        from ..models.finetune import finetune

        comparison = self.error_map.comparison
        try:
            base = comparison.loaded_models.get(name) or load_model(name)
            labelled = comparison.labelled_frames()
            others = [i for i in range(len(labelled)) if i not in set(selected)]
            held_out = others[:: max(1, len(others) // VALIDATION_FRAMES)][:VALIDATION_FRAMES]
            if not held_out and len(selected) < 2:
                raise InputError("select at least two frames, or leave one unselected to validate on")
            validation: Any = labelled[held_out] if held_out else 0.2
            self._runs += 1
            tuned = finetune(base, labelled[selected], validation=validation, epochs=int(self.epochs.value),
                             progress=False, callback=self._epoch_done,
                             name=f"{name}-ft{self._runs}" if self._runs > 1 else f"{name}-finetuned")
            self.status.value = "evaluating the fine-tuned model on every frame"
            extended = comparison.with_model(tuned)
            self.error_map.set_comparison(extended, model=tuned.name)
            trained = selected if held_out else [selected[i] for i in tuned.meta["finetune"]["train_frames"]]
            self.result.value = before_after_html(extended, name, tuned.name, trained)
            best = tuned.meta["finetune"]["best_epoch"]
            self.status.value = f"done: {tuned.name} (best epoch {best + 1}), shown above"
        except Cancelled as exc:
            self.status.value = html.escape(str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure is shown in the panel, the app lives on
            self.status.value = "failed"
            self.result.value = error_html(exc)
        finally:
            self._thread = None
            self.cancel_button.disabled = True
            self.button.disabled = not self.selected


def before_after(comparison: Comparison, before: str, after: str, trained: list[int]) -> pd.DataFrame:
    """Force MAE and softening slope of two models of ``comparison`` on all its frames and on
    the frames not in ``trained`` (those the fine-tuned model never saw), and their mean force
    error on the rare-event atoms (`Comparison.rare_events`; NaN where there are none)."""
    unseen = [i for i in range(len(comparison.frames)) if i not in set(trained)]
    per_frame = comparison.per_frame
    try:  # the migrating atoms where the frames mark them, else atoms displaced more than 1 Å
        marked = "migrating" if "migrating" in comparison.frames.arrays else None
        rare = comparison.rare_events(atoms=marked).summary["force_error_mean"]
    except InputError:  # frames of different atoms: no rare-event atoms to follow
        rare = None
    rows = {}
    for name in (before, after):
        table = per_frame[per_frame["model"] == name].set_index("frame")
        weights = comparison.frames.n_atoms
        slope = comparison.softening().loc[name, "slope"]
        rows[name] = {"force MAE, all frames (eV/Å)": float(np.average(table["force_mae"], weights=weights)),
                      "force MAE, frames not trained on (eV/Å)": float(np.average(table["force_mae"].loc[unseen],
                                                                         weights=weights[unseen]))
                      if unseen else np.nan,
                      "softening slope, all frames": float(slope),
                      "rare-event atoms |ΔF| (eV/Å)": float(rare.loc[(name, "rare-event")])
                      if rare is not None and (name, "rare-event") in rare.index else np.nan}
    return pd.DataFrame(rows).T


def before_after_html(comparison: Comparison, before: str, after: str, trained: list[int]) -> str:
    """`before_after` as the panel's HTML table."""
    table = before_after(comparison, before, after, trained)
    return (f"<b>{html.escape(before)}</b> and <b>{html.escape(after)}</b> (trained on {len(trained)} frame(s); "
            f"the other {len(comparison.frames) - len(trained)} never trained on)"
            + table.to_html(float_format="%.4f", classes="mlipviz-before-after", na_rep="n/a"))
