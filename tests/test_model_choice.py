"""Comparison.model_choice(): accuracy on the user's frames against speed measured in the same run,
on a small comparison of two real models (CHGNet and M3GNet) on the bundled vacancy migration
(DFT labels in the file), and the summary tab's table and plot made from it.
"""

from __future__ import annotations

import numpy as np
import pytest

import mlipviz
from mlipviz.analysis.compare import _pareto
from mlipviz.errors import ArgumentTypeError, InputError, MissingLabelsError

MODELS = ["chgnet", "m3gnet"]


@pytest.fixture(scope="module")
def migration():
    frames = mlipviz.examples.load("si-vacancy-migration")
    return frames[[0, len(frames) // 2, len(frames) - 1]]  # start, saddle region, end


@pytest.fixture(scope="module")
def cmp(migration):
    return mlipviz.compare(MODELS, migration, progress=False, device="cpu")


@pytest.fixture(scope="module")
def choice(cmp):
    return cmp.model_choice()


def test_accuracy_columns_are_the_comparisons_own(cmp, choice):
    assert list(choice.index) == MODELS
    summary, softening = cmp.summary(), cmp.softening()
    np.testing.assert_allclose(choice["force_mae_eV_A"], summary["force_mae_eV_A"], rtol=0, atol=0)
    np.testing.assert_allclose(choice["energy_mae_eV_atom"], summary["energy_mae_eV_atom"], rtol=0, atol=0)
    np.testing.assert_allclose(choice["softening_slope"], softening["slope"], rtol=0, atol=0)
    rare = cmp.rare_events().summary
    for name in MODELS:
        assert choice.loc[name, "n_rare_event_atoms"] == rare.loc[(name, "rare-event"), "n_atoms"] > 0
        assert choice.loc[name, "rare_event_force_error_eV_A"] == rare.loc[(name, "rare-event"), "force_error_mean"]
    assert choice.attrs["rare_events"].startswith("atoms displaced more than 1")


def test_speed_is_measured_in_the_same_run(cmp, choice, migration):
    for name in MODELS:
        meta = cmp[name].meta
        assert meta["timed_atoms"] == migration.total_atoms  # every atom of every frame, once
        assert meta["seconds"] > 0 and choice.loc[name, "seconds"] == meta["seconds"]
        assert choice.loc[name, "atoms_per_second"] == pytest.approx(migration.total_atoms / meta["seconds"])
        assert choice.loc[name, "peak_memory_MiB"] > 0  # the tensors autograd kept for the forces
        assert (choice.loc[name, "device"], choice.loc[name, "dtype"]) == ("cpu", "float32")
    assert choice.attrs["device"] == "cpu" and choice.attrs["dtype"] == "float32"


def test_cpu_memory_does_not_depend_on_what_ran_before(cmp, migration):
    # the process's resident memory would: memory freed by the first model is reused by the second
    again = mlipviz.load_model("m3gnet", device="cpu").predict(migration, progress=False)
    assert again.meta["peak_memory_bytes"] == cmp["m3gnet"].meta["peak_memory_bytes"]
    # a calculator without torch autograd has no such figure
    from ase.calculators.lj import LennardJones

    lj = mlipviz.compare(LennardJones(sigma=2.1, rc=5.0), migration[:1], reference=False, progress=False)
    assert lj[lj.models[0]].meta["peak_memory_bytes"] is None


def test_best_tradeoff_is_the_pareto_front(choice):
    error, speed = choice["force_mae_eV_A"].to_numpy(), choice["atoms_per_second"].to_numpy()
    for i, name in enumerate(choice.index):
        beaten = [(error[j] <= error[i] and speed[j] >= speed[i]) and (error[j] < error[i] or speed[j] > speed[i])
                  for j in range(len(error)) if j != i]
        assert choice.loc[name, "best_tradeoff"] == (not any(beaten))
    assert choice["best_tradeoff"].any()  # the most accurate model is always on the front


def test_pareto_front_by_hand():
    # four models: C is slower and worse than B; D has no measured speed but the lowest error
    error = np.array([0.30, 0.20, 0.25, 0.10])
    speed = np.array([1000.0, 500.0, 400.0, np.nan])
    assert _pareto(error, speed).tolist() == [True, True, False, True]
    assert _pareto(np.array([0.2, 0.2]), np.array([10.0, 10.0])).tolist() == [True, True]  # ties: both


def test_speeds_survive_save_and_load(cmp, choice, tmp_path):
    loaded = mlipviz.load_comparison(cmp.save(tmp_path / "run.h5"))
    again = loaded.model_choice()
    np.testing.assert_allclose(again["atoms_per_second"], choice["atoms_per_second"])
    assert again["best_tradeoff"].tolist() == choice["best_tradeoff"].tolist()


def test_frames_read_back_from_a_checkpoint_have_no_speed(migration, tmp_path):
    model = mlipviz.load_model("chgnet", device="cpu")
    first = model.predict(migration, progress=False, checkpoint=tmp_path / "c.h5")
    assert first.meta["timed_atoms"] == migration.total_atoms
    again = model.predict(migration, progress=False, checkpoint=tmp_path / "c.h5")
    assert "atoms_per_second" not in again.meta  # nothing was evaluated: no speed to report


def test_without_rare_event_atoms_the_columns_say_why(migration):
    high = mlipviz.examples.load("high-energy-states")[:2]  # two 8-atom cells: nothing moves 1 Å
    table = mlipviz.compare("chgnet", high, progress=False, device="cpu").model_choice()
    assert np.isnan(table["rare_event_force_error_eV_A"]).all() and (table["n_rare_event_atoms"] == 0).all()
    assert table.attrs["rare_events"].endswith("(none found)")
    # frames of different atom counts: no displacement to measure, and the reason is kept
    mixed = mlipviz.Frames.concatenate([high[:1], migration[:1]])
    table = mlipviz.compare("chgnet", mixed, progress=False, device="cpu").model_choice()
    assert np.isnan(table["rare_event_force_error_eV_A"]).all()
    assert table.attrs["rare_events"].startswith("none: ") and len(table.attrs["rare_events"]) > 20


def test_bad_arguments_and_models_only(cmp, migration):
    with pytest.raises(ArgumentTypeError, match="rare_events must be a dict"):
        cmp.model_choice(rare_events=[1, 2])
    with pytest.raises(InputError):  # the user's own selection: its error, not a silent NaN
        cmp.model_choice(rare_events={"atoms": [10_000]})
    models_only = mlipviz.Comparison(cmp.frames, cmp.predictions, None)
    with pytest.raises(MissingLabelsError, match="model_choice"):
        models_only.model_choice()


def test_summary_tab_table_and_plot(choice):
    pytest.importorskip("plotly")
    from mlipviz.widgets.summary import model_choice_figure, model_choice_html

    figure = model_choice_figure(choice)
    assert "cpu" in figure.layout.title.text and "float32" in figure.layout.title.text
    assert figure.layout.xaxis.type == "log"
    shown = [name for trace in figure.data[1:] for name in trace.text]
    assert sorted(shown) == sorted(MODELS)
    best = list(figure.data[2].text)
    assert best == [n for n in choice.index if choice.loc[n, "best_tradeoff"]]
    page = model_choice_html(choice)
    assert all(name in page for name in MODELS) and "precision: float32" in page


def test_speed_of_a_run_in_parts_counts_every_part(migration, tmp_path):
    # mlipviz.evaluate in two chunks: the stored speed covers both, not the first chunk's alone
    stored = mlipviz.evaluate(migration, "chgnet", store=tmp_path / "run.h5", client=False, chunk_frames=2,
                              device="cpu", progress=False)
    meta = stored["chgnet"].meta
    assert meta["timed_atoms"] == migration.total_atoms
    assert meta["atoms_per_second"] == pytest.approx(meta["timed_atoms"] / meta["seconds"])
    assert stored.model_choice().loc["chgnet", "atoms_per_second"] == pytest.approx(meta["atoms_per_second"])
