"""The error map's fine-tuning panel, driven as the browser drives it (selection callbacks, the
button, cancel), with real CHGNet on six bundled Si snapshots (GPAW PBE labels); the same flow in
JupyterLab is in tests/test_browser_explorer.py."""

from __future__ import annotations

import pytest

pytest.importorskip("plotly")

import mlipviz
from mlipviz.widgets.error_map import ErrorMap


@pytest.fixture(scope="module")
def comparison():
    states = mlipviz.examples.load("high-energy-states")
    si = [i for i, info in enumerate(states.info) if info["material_id"].startswith("Si (")]
    return mlipviz.compare("chgnet", states[si[:6]], progress=False, device="cpu")


def test_select_fine_tune_and_see_both_models(comparison):
    view = ErrorMap(comparison)
    panel = view.finetune
    assert panel.button.disabled  # nothing selected yet
    view._on_curve_selection(view.curve.data[0], type("Points", (), {"point_inds": [0, 1]})())
    assert panel.selected == [0, 1] and not panel.button.disabled and "2 frame(s)" in panel.selection.value
    panel.epochs.value = 3
    panel.start().join()
    assert panel.status.value.startswith("done: chgnet-finetuned"), panel.status.value + panel.result.value
    assert view.model_select.options == ("chgnet", "chgnet-finetuned") and view.model == "chgnet-finetuned"
    assert view.comparison.models == ["chgnet", "chgnet-finetuned"]
    assert "never trained on" in panel.result.value and "mlipviz-before-after" in panel.result.value
    assert "rare-event atoms" in panel.result.value  # n/a here: nothing moves 1 Å between these frames
    # the fine-tuned model is the one the finetune run returned: trained on frames 0 and 1 only
    tuned = view.comparison.loaded_models["chgnet-finetuned"]
    assert tuned.meta["finetune"]["n_train_frames"] == 2
    assert tuned.meta["finetune"]["n_validation_frames"] >= 1
    # the views show it: softening of both models, its per-frame errors in the curve
    assert set(view.comparison.softening().index) == {"chgnet", "chgnet-finetuned"}
    assert panel.progress.value == 3 and panel.cancel_button.disabled


def test_cancel_and_a_selection_too_small(comparison):
    view = ErrorMap(comparison)
    panel = view.finetune
    panel.select(list(range(len(comparison.frames))))  # every frame: one is held out of the training set
    panel.epochs.value = 50
    thread = panel.start()
    panel.cancel_button.click()  # pressed at once: stops after the first epoch
    thread.join()
    assert "cancelled after epoch 1" in panel.status.value
    assert view.model_select.options == ("chgnet",)  # nothing added
    one = mlipviz.compare("chgnet", comparison.frames[:1], progress=False, device="cpu")
    small = ErrorMap(one)
    small.finetune.select([0])
    small.finetune.start().join()
    assert small.finetune.status.value == "failed" and "at least two frames" in small.finetune.result.value
