"""compare(): per-atom/per-frame errors, summary, softening, rare events, save/load, checkpoints.

The model side uses real ASE calculators (Morse and EMT); softening and rare-event maths
are also checked on synthetic forces with known answers, as the issue asks.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.morse import MorsePotential
from conftest import rattled
from test_frames import labelled

import mlipviz
from mlipviz.analysis.compare import Comparison
from mlipviz.errors import CheckpointMismatchError, InputError, MissingLabelsError, MlipvizError
from mlipviz.models.ase_adapter import CalculatorModel
from mlipviz.models.base import Prediction


def cu_morse():
    """Morse potential roughly fitted to Cu (Girifalco & Weizer 1959)."""
    return MorsePotential(epsilon=0.3429, r0=2.866, rho0=1.3588 * 2.866, rcut1=4.5, rcut2=5.5)


@pytest.fixture(scope="module")
def cu_frames():
    cu = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 1, 1)
    return mlipviz.Frames.from_atoms(labelled(rattled(cu, 4, 0.08, seed=3)))


@pytest.fixture(scope="module")
def cmp(cu_frames):
    return mlipviz.compare(CalculatorModel(cu_morse(), name="morse"), cu_frames, progress=False)


def test_per_atom_matches_direct_computation(cmp, cu_frames):
    table = cmp.per_atom
    assert len(table) == cu_frames.total_atoms
    assert list(table["element"].unique()) == ["Cu"]
    morse = cu_morse()
    k = 2
    atoms = cu_frames.to_atoms(k)
    ref = atoms.get_forces()
    atoms.calc = morse
    pred = atoms.get_forces()
    rows = table[table["frame"] == k]
    np.testing.assert_allclose(rows[["fx_pred", "fy_pred", "fz_pred"]], pred, atol=1e-12)
    np.testing.assert_allclose(rows["force_error"], np.linalg.norm(pred - ref, axis=1), atol=1e-12)
    np.testing.assert_allclose(rows["magnitude_error"],
                               np.linalg.norm(pred, axis=1) - np.linalg.norm(ref, axis=1), atol=1e-12)
    cos = (pred * ref).sum(1) / np.linalg.norm(pred, axis=1) / np.linalg.norm(ref, axis=1)
    np.testing.assert_allclose(rows["angle_error"], np.degrees(np.arccos(cos)), atol=1e-8)


def test_angle_is_nan_below_threshold():
    from mlipviz.analysis.metrics import force_errors

    out = force_errors(np.array([[1.0, 0, 0], [0.01, 0, 0]]), np.array([[0, 1.0, 0], [0, 1.0, 0]]),
                       min_force=0.05)
    assert out["angle_error"][0] == pytest.approx(90.0) and np.isnan(out["angle_error"][1])


def test_per_frame_and_summary(cmp, cu_frames):
    frame = cmp.per_frame.set_index("frame")
    k = 1
    atoms = cu_frames.to_atoms(k)
    e_ref, f_ref = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = cu_morse()
    e_pred, f_pred = atoms.get_potential_energy(), atoms.get_forces()
    assert frame.loc[k, "energy_error_per_atom"] == pytest.approx((e_pred - e_ref) / len(atoms))
    assert frame.loc[k, "force_mae"] == pytest.approx(np.abs(f_pred - f_ref).mean())
    assert frame.loc[k, "force_rmse"] == pytest.approx(np.sqrt(((f_pred - f_ref) ** 2).mean()))
    summary = cmp.summary()
    assert summary.loc["morse", "force_mae_eV_A"] == pytest.approx(
        np.abs(cmp.predictions["morse"].forces - cu_frames.forces).mean())
    assert summary.loc["morse", "energy_mae_eV_atom"] == pytest.approx(
        frame["energy_error_per_atom"].abs().mean())
    assert summary.loc["morse", "stress_mae_GPa"] > 0


def test_reference_calculator_equals_file_labels(cu_frames, cmp):
    bare = cu_frames.with_labels(energy=None, forces=None, stress=None)
    live = mlipviz.compare(CalculatorModel(cu_morse(), name="morse"), bare, reference=EMT(),
                           progress=False)
    pd.testing.assert_frame_equal(live.summary(), cmp.summary(), rtol=1e-10)


def test_two_models_in_one_comparison(cu_frames):
    both = mlipviz.compare([CalculatorModel(cu_morse(), name="morse"), EMT()], cu_frames, progress=False)
    assert both.models == ["morse", "emt"]
    assert both.summary().loc["emt", "force_mae_eV_A"] < 1e-6  # EMT against its own labels
    assert set(both.per_atom["model"]) == {"morse", "emt"}


def test_missing_labels_are_named(cu_frames):
    bare = cu_frames.with_labels(forces=None)
    with pytest.raises(MissingLabelsError, match="reference forces"):
        mlipviz.compare(EMT(), bare, progress=False)


# -- softening -------------------------------------------------------------------

def synthetic(k_by_group: dict, n_frames=6, n_atoms=10, noise=0.02, seed=0):
    """Frames with reference forces F_ref and predictions k*F_ref + noise, grouped by material."""
    rng = np.random.default_rng(seed)
    groups = list(k_by_group)
    info = [{"material_id": groups[i % len(groups)]} for i in range(n_frames)]
    total = n_frames * n_atoms
    f_ref = rng.normal(0, 1.0, (total, 3))
    k_atom = np.repeat([k_by_group[d["material_id"]] for d in info], n_atoms)[:, None]
    f_pred = k_atom * f_ref + rng.normal(0, noise, (total, 3))
    positions = rng.uniform(0, 20, (total, 3))
    frames = mlipviz.Frames(positions=positions, numbers=np.full(total, 14), n_atoms=[n_atoms] * n_frames,
                            cells=np.tile(np.eye(3) * 20, (n_frames, 1, 1)), pbc=np.ones((n_frames, 3)),
                            info=info, forces=f_ref, energy=np.zeros(n_frames))
    ref = Prediction.from_frames(frames)
    pred = Prediction(model="synthetic", n_atoms=frames.n_atoms, energy=np.zeros(n_frames), forces=f_pred)
    return Comparison(frames, {"synthetic": pred}, ref)


def test_softening_recovers_scale():
    cmp = synthetic({"a": 0.8}, n_frames=20)
    row = cmp.softening().loc["synthetic"]
    assert row["slope"] == pytest.approx(0.8, abs=0.005)
    assert row["slope_with_intercept"] == pytest.approx(0.8, abs=0.005)
    assert abs(row["intercept"]) < 0.005
    assert row["correction"] == pytest.approx(1 / row["slope"])
    # cMAE removes the systematic scale, so it is far below the MAE
    assert row["cmae"] < 0.3 * row["mae"]
    f_pred, f_ref = cmp.predictions["synthetic"].forces, cmp.reference.forces
    assert row["cmae"] == pytest.approx(np.abs(f_ref - f_pred / row["slope"]).mean())
    slope, intercept = np.polyfit(f_ref.ravel(), f_pred.ravel(), 1)  # the ordinary fit, as numpy does it
    assert row["slope_with_intercept"] == pytest.approx(slope, rel=1e-9)
    assert row["intercept"] == pytest.approx(intercept, abs=1e-9)


def test_softening_fit_in_blocks_skips_missing_components(monkeypatch):
    from mlipviz.analysis import metrics

    rng = np.random.default_rng(3)
    ref = rng.normal(2.0, 1.0, (200, 3))  # off-centre, so the centred sums matter
    pred = 0.9 * ref + 0.3 + rng.normal(0, 0.05, ref.shape)
    pred[5, 1] = ref[17, 2] = np.nan
    keep = np.isfinite(pred.ravel()) & np.isfinite(ref.ravel())
    p, r = pred.ravel()[keep], ref.ravel()[keep]
    slope, intercept = np.polyfit(r, p, 1)
    residual = p - (slope * r + intercept)
    expected = {"slope": p @ r / (r @ r), "slope_with_intercept": slope, "intercept": intercept,
                "r2": 1 - residual @ residual / np.sum((p - p.mean()) ** 2), "mae": np.abs(p - r).mean(),
                "n_components": 598}
    expected["cmae"] = np.abs(r - p / expected["slope"]).mean()
    whole = metrics.softening_fit(pred, ref)
    monkeypatch.setattr(metrics, "FIT_BLOCK", 7)
    blocked = metrics.softening_fit(pred, ref)
    for key, value in expected.items():
        assert whole[key] == pytest.approx(value, rel=1e-9), key
        assert blocked[key] == pytest.approx(value, rel=1e-9), key


def test_softening_by_group_and_frame():
    cmp = synthetic({"mp-1": 0.7, "mp-2": 0.95, "mp-3": 1.1}, n_frames=9)
    table = cmp.softening(by="material_id")
    slopes = table["slope"].xs("synthetic")
    assert slopes["mp-1"] == pytest.approx(0.7, abs=0.01)
    assert slopes["mp-2"] == pytest.approx(0.95, abs=0.01)
    assert slopes["mp-3"] == pytest.approx(1.1, abs=0.01)
    per_frame = cmp.softening(by="frame")
    assert len(per_frame) == 9 and per_frame["n_components"].eq(30).all()
    with pytest.raises(InputError, match="info key 'temperature'"):
        cmp.softening(by="temperature")


# -- rare events -------------------------------------------------------------------

def hopping_trajectory():
    """An 8-atom Cu cell where atom 5 moves 1.8 Å over the frames, the rest vibrate."""
    cu = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 1, 1)
    frames = rattled(cu, 6, 0.05, seed=4)
    for k, atoms in enumerate(frames):
        atoms.positions[5] += [0.36 * k, 0, 0]
    return labelled(frames)


def test_rare_events_default_selection_and_fractions():
    frames = mlipviz.read(hopping_trajectory(), min_distance=0.0)
    cmp = mlipviz.compare(CalculatorModel(cu_morse(), name="morse"), frames, progress=False)
    result = cmp.rare_events(threshold=1.0)
    # atom 5 is displaced by 0.36*k Å: beyond 1 Å from frame 3 on
    expected = np.zeros((6, 8), dtype=bool)
    expected[3:, 5] = True
    np.testing.assert_array_equal(result.selected, expected.ravel())
    rare = cmp.per_atom[result.selected]
    summary = result.summary.loc[("morse", "rare-event")]
    assert summary["n_atoms"] == 3
    assert summary["force_error_mean"] == pytest.approx(rare["force_error"].mean())
    assert summary["frac_force_error_gt_0.5"] == pytest.approx((rare["force_error"] > 0.5).mean())
    angle = rare["angle_error"].dropna()
    assert summary["frac_angle_gt_15"] == pytest.approx((angle > 15).mean())
    assert result.summary.loc[("morse", "other"), "n_atoms"] == 45


def test_rare_event_selectors_agree():
    images = hopping_trajectory()
    for atoms in images:
        atoms.info["migrating"] = [5]
        atoms.new_array("is_migrating", np.arange(len(atoms)) == 5)
    frames = mlipviz.read(images, min_distance=0.0)
    cmp = mlipviz.compare(CalculatorModel(cu_morse(), name="morse"), frames, progress=False)
    by_index = cmp.rare_events(atoms=[5]).selected
    np.testing.assert_array_equal(by_index, cmp.rare_events(atoms="migrating").selected)
    np.testing.assert_array_equal(by_index, cmp.rare_events(atoms="is_migrating").selected)
    np.testing.assert_array_equal(by_index, cmp.rare_events(atoms=by_index).selected)
    assert by_index.sum() == len(frames)
    with pytest.raises(InputError, match="atom index 9 out of range"):
        cmp.rare_events(atoms=[9])
    with pytest.raises(InputError, match="neither"):
        cmp.rare_events(atoms="nothing")


# -- nothing lost ----------------------------------------------------------------

def test_save_load_round_trip(tmp_path, cu_frames):
    cu_frames = cu_frames[:]
    cu_frames.info[0]["material_id"] = "mp-30"
    both = mlipviz.compare([CalculatorModel(cu_morse(), name="morse"), EMT()], cu_frames, progress=False)
    both.save(tmp_path / "c.h5")
    back = mlipviz.load_comparison(tmp_path / "c.h5")
    assert back.models == both.models
    pd.testing.assert_frame_equal(back.per_atom, both.per_atom)
    pd.testing.assert_frame_equal(back.per_frame, both.per_frame)
    pd.testing.assert_frame_equal(back.summary(), both.summary())
    pd.testing.assert_frame_equal(back.softening(), both.softening())
    assert back.frames.info[0]["material_id"] == "mp-30"
    np.testing.assert_array_equal(back.frames.positions, both.frames.positions)
    with pytest.raises(InputError, match="not an mlipviz comparison"):
        cu_frames.write(tmp_path / "frames.h5")
        mlipviz.load_comparison(tmp_path / "frames.h5")


class Interrupting(EMT):
    """EMT that raises KeyboardInterrupt after a given number of calculations."""

    def __init__(self, stop_after=None):
        super().__init__()
        self.calls, self.stop_after = 0, stop_after

    def calculate(self, *args, **kwargs):
        self.calls += 1
        if self.stop_after is not None and self.calls > self.stop_after:
            raise KeyboardInterrupt
        super().calculate(*args, **kwargs)


def test_checkpoint_resumes_where_it_stopped(tmp_path, cu_frames):
    path = tmp_path / "ckpt.h5"
    with pytest.raises(KeyboardInterrupt):
        CalculatorModel(Interrupting(stop_after=2), name="emt").predict(cu_frames, checkpoint=path,
                                                                         progress=False)
    resumed_calc = Interrupting()
    resumed = CalculatorModel(resumed_calc, name="emt").predict(cu_frames, checkpoint=path, progress=False)
    assert resumed_calc.calls == len(cu_frames) - 2
    fresh = CalculatorModel(EMT(), name="emt").predict(cu_frames, progress=False)
    np.testing.assert_array_equal(resumed.forces, fresh.forces)
    np.testing.assert_array_equal(resumed.energy, fresh.energy)
    np.testing.assert_array_equal(resumed.stress, fresh.stress)
    with pytest.raises(CheckpointMismatchError, match="frames"):
        CalculatorModel(EMT(), name="emt").predict(cu_frames[:2], checkpoint=path, progress=False)


def test_failure_names_frames(cu_frames):
    bad = cu_frames.with_labels()
    bad.numbers[bad.atoms_of(2)] = 14  # EMT has no Si parameters
    with pytest.raises(MlipvizError, match="failed on frame 2: NotImplementedError"):
        CalculatorModel(EMT(), name="emt").predict(bad, progress=False)


def test_offline_name_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("MLIPVIZ_MODELS", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(MlipvizError, match="nonexistent-model"):
        mlipviz.load_model("nonexistent-model")
    assert time.perf_counter() - start < 5


def test_predict_rejects_nan_positions_in_frames(cu_frames):
    bad = cu_frames.with_labels()
    bad.positions[bad.atoms_of(1).start + 4] = np.nan
    with pytest.raises(mlipviz.errors.InvalidStructureError, match="frame 1, atom 4"):
        CalculatorModel(EMT(), name="emt").predict(bad, progress=False)


@pytest.mark.parametrize("batch_size", [2.5, 0, -1, "4", True])
def test_a_batch_size_that_is_no_positive_whole_number_is_named(batch_size):
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from mlipviz.errors import InputError

    cu = bulk("Cu", "fcc", a=3.6)
    cu.calc = EMT()
    cu.get_forces()
    with pytest.raises(InputError, match=f"batch_size must be a positive whole number.*got {batch_size!r}"):
        mlipviz.compare(EMT(), [cu], batch_size=batch_size, progress=False)
    with pytest.raises(InputError, match="batch_size must be"):
        mlipviz.load_model(EMT()).predict([cu], batch_size=batch_size, progress=False)


def test_an_empty_model_list_is_named():
    from ase.build import bulk

    from mlipviz.errors import InputError

    with pytest.raises(InputError, match="models: give at least one model"):
        mlipviz.compare([], [bulk("Cu", "fcc", a=3.6)], progress=False)


# -- models only, and names and thresholds ------------------------------------------

def test_a_models_only_comparison_tabulates_predictions_and_names_what_needs_a_reference(cu_frames):
    """reference=False: the models side by side, whatever labels the frames carry; the default
    (the frames' labels) on unlabelled frames still refuses, pointing at reference=False."""
    bare = cu_frames.with_labels(energy=None, forces=None, stress=None)
    with pytest.raises(MissingLabelsError, match="reference=False to compare models only"):
        mlipviz.compare(EMT(), bare, progress=False)
    models = [CalculatorModel(cu_morse(), name="morse"), EMT()]
    alone = mlipviz.compare(models, bare, reference=False, progress=False)
    labelled = mlipviz.compare(models, cu_frames, reference=False, progress=False)  # labels not used
    against = mlipviz.compare(models, cu_frames, progress=False)
    assert not alone.has_reference and alone.reference is None and "models only" in repr(alone)
    assert not labelled.has_reference
    per_atom = alone.per_atom
    assert list(per_atom.columns) == ["model", "frame", "atom", "element", "fx_pred", "fy_pred", "fz_pred",
                                      "site_energy_pred"]  # EMT and Morse have per-atom energies
    pd.testing.assert_frame_equal(per_atom, against.per_atom[per_atom.columns])
    per_frame = alone.per_frame
    assert list(per_frame.columns) == ["model", "frame", "n_atoms", "energy_pred"]
    np.testing.assert_allclose(per_frame["energy_pred"], against.per_frame["energy_pred"])
    for name, call in [("summary()", alone.summary), ("softening()", alone.softening),
                       ("errors_by_element()", alone.errors_by_element), ("rare_events()", alone.rare_events),
                       ("atom_errors('emt')", lambda: alone.atom_errors("emt")),
                       ("force_vectors('emt')", lambda: alone.force_vectors("emt")),
                       ("the error map (show)", alone.show)]:
        with pytest.raises(MissingLabelsError, match=re.escape(f"{name} needs a reference")):
            call()
    with pytest.raises(InputError, match="reference must be None .* or False .*got True"):
        mlipviz.compare(EMT(), cu_frames, reference=True, progress=False)


def test_an_unknown_model_name_is_a_key_error_and_an_input_error(cmp):
    from mlipviz.errors import UnknownNameError

    for call in (lambda: cmp.atom_errors("mace"), lambda: cmp.force_vectors("mace"), lambda: cmp.prediction("mace")):
        with pytest.raises(UnknownNameError) as caught:
            call()
        assert isinstance(caught.value, KeyError) and isinstance(caught.value, InputError)
        assert str(caught.value) == "model: no model 'mace' in this comparison (models: morse)"
    assert cmp.prediction("morse") is cmp.predictions["morse"] is cmp["morse"]
    with pytest.raises(KeyError, match="no model 'mace'"):
        cmp["mace"]
    with pytest.raises(UnknownNameError, match="by: info key 'material_id' is missing in 4 frame"):
        cmp.softening(by="material_id")


def test_bad_compare_and_rare_event_arguments_are_named(cmp, cu_frames, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for kwargs, match in [({"progress": "yes"}, "progress must be True or False, got 'yes'"),
                          ({"embeddings": None}, "embeddings must be True or False, got None"),
                          ({"callback": 3}, "callback must be a function"),
                          ({"checkpoint_dir": a_file}, "checkpoint_dir .*a-file is a file; give a folder path")]:
        with pytest.raises(InputError, match=match):
            mlipviz.compare(EMT(), cu_frames, **kwargs)
    for kwargs, match in [({"atoms": [2.5]}, r"atoms must be a boolean per-atom mask, whole-number atom indices"),
                          ({"atoms": np.array([0.0, 1.0])}, "atoms must be a boolean per-atom mask"),
                          ({"atoms": [99]}, "atom index 99 out of range for 8 atoms"),
                          ({"angle_thresholds": 15.0}, r"angle_thresholds must be a list of angles.*got 15.0"),
                          ({"angle_thresholds": (30.0, 15.0)}, r"angle_thresholds must increase, got \(30.0, 15.0\)"),
                          ({"angle_thresholds": (15.0, 200.0)}, r"angle_thresholds\[1\] must be <= 180")]:
        with pytest.raises(InputError, match=match):
            cmp.rare_events(**kwargs)
    assert cmp.rare_events(atoms=np.array([0, 3])).selected.sum() == 2 * len(cu_frames)  # integers are taken


def test_negative_thresholds_are_named(cmp, cu_frames):
    from mlipviz.analysis.metrics import force_errors

    with pytest.raises(InputError, match="angle_min_force must be >= 0, got -0.1"):
        mlipviz.compare(EMT(), cu_frames, angle_min_force=-0.1, progress=False)
    with pytest.raises(InputError, match="angle_min_force must be a finite number"):
        Comparison(cmp.frames, cmp.predictions, cmp.reference, angle_min_force=float("nan"))
    with pytest.raises(InputError, match="min_force must be >= 0, got -1"):
        force_errors(np.ones((2, 3)), np.ones((2, 3)), min_force=-1)
    for kwargs, match in [({"threshold": -1.0}, "threshold must be >= 0, got -1.0"),
                          ({"force_threshold": -0.5}, "force_threshold must be >= 0, got -0.5"),
                          ({"angle_thresholds": (15.0, -30.0)}, r"angle_thresholds\[1\] must be >= 0, got -30.0")]:
        with pytest.raises(InputError, match=match):
            cmp.rare_events(**kwargs)
