"""Comparison.corrected(): the linear softening correction of Deng et al. (2025) as a model of its
own, fitted on half of the bundled high-energy states (GPAW PBE labels) with real CHGNet and
judged on the other half; its forces are exactly the original's divided by the slope, and it runs
wherever a model runs (compare, a strain scan, md-free ASE use, attributions' site energies).
"""

from __future__ import annotations

import model_tests as common
import numpy as np
import pytest

import mlipviz
from mlipviz.analysis.compare import Comparison
from mlipviz.errors import InputError, MissingLabelsError, ModelNotAvailableError, UnknownNameError
from mlipviz.models.base import Prediction


@pytest.fixture(scope="module")
def states():
    frames = mlipviz.examples.load("high-energy-states")
    return frames[::2], frames[1::2]  # fitted on one half, judged on the other


@pytest.fixture(scope="module")
def fitted(states):
    return mlipviz.compare("chgnet", states[0], progress=False, device="cpu")


@pytest.fixture(scope="module")
def corrected_model(fitted):
    return fitted.corrected("chgnet")


@pytest.fixture(scope="module")
def held_out(states, corrected_model, fitted):
    return mlipviz.compare([fitted.loaded_models["chgnet"], corrected_model], states[1], progress=False)


def test_forces_are_the_originals_divided_by_the_slope(fitted, held_out):
    slope = fitted.softening().loc["chgnet", "slope"]
    base, fixed = held_out["chgnet"], held_out["chgnet-corrected"]
    np.testing.assert_allclose(fixed.forces, base.forces / slope, rtol=1e-12, atol=0)
    np.testing.assert_allclose(fixed.stress, base.stress / slope, rtol=1e-12, atol=0)


def test_energy_differences_scale_and_the_anchor_stays(fitted, held_out, corrected_model, states):
    c = 1 / fitted.softening().loc["chgnet", "slope"]
    base, fixed = held_out["chgnet"].energy, held_out["chgnet-corrected"].energy
    np.testing.assert_allclose(np.diff(fixed), c * np.diff(base), rtol=1e-10)  # every frame has 8 atoms
    anchor = corrected_model.anchors[None]
    assert anchor == pytest.approx(np.min(fitted["chgnet"].energy / states[0].n_atoms))
    n = states[1].n_atoms
    np.testing.assert_allclose(fixed, c * base + (1 - c) * n * anchor, rtol=1e-12)
    np.testing.assert_allclose(np.add.reduceat(held_out["chgnet-corrected"].energies, np.r_[0, np.cumsum(n)[:-1]]),
                               fixed, rtol=1e-6)  # site energies still sum to the energy


def test_it_reduces_the_softening_on_frames_it_never_saw(held_out):
    soft = held_out.softening()
    assert abs(1 - soft.loc["chgnet-corrected", "slope"]) < abs(1 - soft.loc["chgnet", "slope"])
    mae = held_out.summary()["force_mae_eV_A"]
    assert mae["chgnet-corrected"] < mae["chgnet"]


test_forces_are_minus_energy_gradient = common.make_force_gradient_test(
    "corrected_model", 3e-3, 3e-3, structure=2, components=[(0, 0), (1, 1), (2, 2), (3, 0), (3, 2)])


def test_card_and_calculator(corrected_model, held_out, states):
    card = corrected_model.card
    assert card.name == "chgnet-corrected" and "Deng et al." in card.description
    assert "c = " in card.description and "GPAW" in card.training_data and "high-energy-states" in card.training_data
    assert corrected_model.meta["base_model"] == "chgnet" and corrected_model.meta["correction"]["by"] is None
    atoms = states[1].to_atoms(3)
    atoms.calc = corrected_model.calculator()
    idx = states[1].atoms_of(3)
    np.testing.assert_allclose(atoms.get_forces(), held_out["chgnet-corrected"].forces[idx], atol=1e-10)


def test_per_material_and_a_material_without_a_fit(fitted, states):
    fix = fitted.corrected("chgnet", by="material_id")
    slopes = fitted.softening(by="material_id")["slope"].loc["chgnet"]
    assert set(fix.scales) == set(slopes.index)
    frame = states[1][:1]
    material = frame.info[0]["material_id"]
    np.testing.assert_allclose(fix.predict(frame, progress=False).forces,
                               fitted.loaded_models["chgnet"].predict(frame, progress=False).forces
                               / slopes[material], rtol=1e-12)
    unknown = mlipviz.Frames.from_atoms([states[1].to_atoms(0)])
    unknown.info[0]["material_id"] = "not fitted"
    with pytest.raises(InputError, match="no correction was fitted for material_id='not fitted'"):
        fix.predict(unknown, progress=False)


def test_it_runs_in_a_scan(corrected_model, states):
    scan = mlipviz.scan.strain(states[1].to_atoms(0), [-0.01, 0.0, 0.01], [corrected_model], reference=False,
                          progress=False)
    assert "chgnet-corrected" in scan.comparison.models


def test_site_energies_for_attributions_are_corrected(corrected_model, states):
    import torch

    frame = states[1][:1]
    positions = torch.tensor(frame.positions[None], dtype=torch.float32)
    site = corrected_model.site_energies_torch(frame, positions)
    energy = corrected_model.predict(frame, progress=False).energy[0]
    assert float(site.sum()) == pytest.approx(energy, abs=1e-4)


def test_errors(fitted, states, tmp_path):
    with pytest.raises(UnknownNameError):
        fitted.corrected("no-such-model")
    models_only = Comparison(fitted.frames, fitted.predictions, None)
    with pytest.raises(MissingLabelsError, match="softening"):
        models_only.corrected("chgnet")
    # a comparison read from a file holds no models: a registry name loads again, others need base=
    renamed = Comparison(fitted.frames, {"mine": fitted["chgnet"]}, fitted.reference)
    with pytest.raises(ModelNotAvailableError, match="base="):
        renamed.corrected("mine")
    assert renamed.corrected("mine", base=fitted.loaded_models["chgnet"]).name == "chgnet-corrected"
    # forces that point against the reference: no positive slope, nothing to scale
    flipped = Prediction(model="flipped", n_atoms=fitted["chgnet"].n_atoms, energy=fitted["chgnet"].energy,
                         forces=-fitted.reference.forces)
    against = Comparison(fitted.frames, {"flipped": flipped}, fitted.reference)
    with pytest.raises(InputError, match="slope is -1"):
        against.corrected("flipped", base=fitted.loaded_models["chgnet"])
