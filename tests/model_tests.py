"""Test factories every model adapter's tests call (in the style of torch-sim's
``make_model_calculator_consistency_test``): a new adapter's test file is its fixtures plus these
calls, and gets every common test.

Each factory returns a test function that reads its fixtures by name (``request.getfixturevalue``),
so that adapters name theirs as they like; assign it to a ``test_...`` name in the adapter's
module. The shared session fixtures ``frames`` (8 ragged periodic frames) and
``mixed_structures`` come from ``conftest.py``. Real models only: every comparison is against the
package's own ASE calculator or against finite differences of the model's own energy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from physics import (
    assert_embeddings_deterministic,
    assert_free_molecule_equals_boxed,
    assert_matches_calculator,
    finite_difference_forces,
    finite_difference_stress_xx,
)

import mlipviz
from mlipviz.errors import InputError, UnsupportedElementError

Test = Callable[[pytest.FixtureRequest], None]


def _prediction(request, model, prediction: str | None):
    if prediction is not None:
        return request.getfixturevalue(prediction)
    return model.predict(request.getfixturevalue("frames"), batch_size=3, progress=False)


def make_calculator_consistency_test(model: str, prediction: str | None = None, tol_e: float = 1e-4,
                                     tol_f: float = 1e-4, tol_s: float = 1e-5, energies: bool = True,
                                     molecule: bool = False) -> Test:
    """Batched `predict` (ragged passes of 3 frames) equals the package's own ASE calculator
    (``model.calculator()``) frame by frame: energy, forces, stress (NaN where a frame is not
    fully periodic) and, with ``energies``, per-atom energies. ``molecule``: a water molecule
    without cell joins the frames."""
    def test(request):
        net = request.getfixturevalue(model)
        frames = request.getfixturevalue("frames")
        if molecule:
            from ase.build import molecule as build

            frames = mlipviz.Frames.concatenate([frames[:2], mlipviz.Frames.from_atoms([build("H2O")])])
            pred = net.predict(frames, batch_size=3, progress=False)
            assert np.isfinite(pred.stress[:2]).all() and np.isnan(pred.stress[2]).all()
        else:
            assert len(set(frames.n_atoms.tolist())) > 1  # a ragged batch
            pred = _prediction(request, net, prediction)
        assert_matches_calculator(pred, frames, net.calculator(), tol_e, tol_f, tol_s, energies=energies)
    return test


def make_batch_consistency_test(model: str, prediction: str | None = None, tol_e: float = 1e-4,
                                tol_f: float = 1e-4, tol_s: float | None = None) -> Test:
    """One frame per pass, the default passes and passes of 3 frames give the same results."""
    def test(request):
        net = request.getfixturevalue(model)
        frames = request.getfixturevalue("frames")
        reference = _prediction(request, net, prediction)
        one = net.predict(frames, batch_size=1, progress=False)
        default = net.predict(frames, progress=False)
        assert one.meta["passes"] == len(frames)
        for other in (one, default):
            np.testing.assert_allclose(other.energy, reference.energy, rtol=0, atol=tol_e)
            np.testing.assert_allclose(other.forces, reference.forces, rtol=0, atol=tol_f)
            if tol_s is not None:
                np.testing.assert_allclose(other.stress, reference.stress, rtol=0, atol=tol_s)
    return test


def make_force_gradient_test(model: str, h: float, atol: float, structure: int | None = None,
                             components: list[tuple[int, int]] | None = None, min_force: float = 0.1) -> Test:
    """Forces equal -dE/dx by central differences of step ``h`` Å, on ``mixed_structures[structure]``
    (default: the frame of `frames` with the strongest force) and ``components`` (default all);
    the forces must be at least ``min_force`` eV/Å somewhere, so that the test can fail."""
    def test(request):
        net = request.getfixturevalue(model)
        if structure is None:
            frames = request.getfixturevalue("frames")
            pred = net.predict(frames, batch_size=3, progress=False)
            atoms = frames.to_atoms(int(frames.frame_index[np.abs(pred.forces).max(axis=1).argmax()]))
        else:
            atoms = request.getfixturevalue("mixed_structures")[structure]
        analytic, numeric = finite_difference_forces(net, atoms, h, components)
        assert np.abs(analytic).max() > min_force  # a real test, not 0 == 0
        np.testing.assert_allclose(analytic, numeric, rtol=0, atol=atol)
    return test


def make_stress_gradient_test(model: str, h: float, atol: float, structure: int = 0) -> Test:
    """σ_xx equals (1/V) dE/dε_xx by central differences (ASE's sign: compression negative)."""
    def test(request):
        net = request.getfixturevalue(model)
        analytic, numeric = finite_difference_stress_xx(net, request.getfixturevalue("mixed_structures")[structure], h)
        assert abs(analytic - numeric) < atol
    return test


def make_site_energy_sum_test(prediction: str, atol: float = 1e-4) -> Test:
    """Per-atom energies sum to each frame's energy."""
    def test(request):
        frames, pred = request.getfixturevalue("frames"), request.getfixturevalue(prediction)
        np.testing.assert_allclose(np.add.reduceat(pred.energies, frames.offsets[:-1]), pred.energy, rtol=0, atol=atol)
    return test


def make_embedding_test(model: str, prediction: str, width: int, atol: float = 0.0) -> Test:
    """Embeddings come from the same pass (energy and forces unchanged: bit for bit, or to ``atol``
    for backends whose sums differ in the last bit between passes), ``width`` wide, finite and
    repeatable."""
    def test(request):
        assert_embeddings_deterministic(request.getfixturevalue(model), request.getfixturevalue("frames"),
                                        request.getfixturevalue(prediction), width, atol)
    return test


def make_unsupported_element_test(model: str, z: int | None = None, frame: int = 1, atom: int = 3,
                                  symbol: str | None = None) -> Test:
    """An element the model lacks (``z``; default the lightest it lacks) at ``atom`` of ``frame``
    (after ``frame`` good Si cells) raises `UnsupportedElementError` naming both (and ``symbol``)."""
    def test(request):
        from ase.build import bulk

        net = request.getfixturevalue(model)
        missing = z if z is not None else min(set(range(1, 119)) - net.elements)
        good = bulk("Si", "diamond", a=5.43)
        bad = bulk("Si", "diamond", a=5.43, cubic=True)
        bad.numbers[atom] = missing
        with pytest.raises(UnsupportedElementError, match=symbol) as info:
            net.predict(mlipviz.Frames.from_atoms([good] * frame + [bad]), progress=False)
        assert (info.value.frame, info.value.atom) == (frame, atom)
        assert f"frame {frame}" in str(info.value) and f"atom {atom}" in str(info.value)
    return test


def make_free_molecule_test(model: str, box: float, tol_e: float = 1e-4, tol_f: float = 1e-4) -> Test:
    """A molecule without cell gives the energy and forces of the same molecule in a large
    periodic box, and NaN stress (no cell) where the box has a finite one."""
    def test(request):
        assert_free_molecule_equals_boxed(request.getfixturevalue(model), box, tol_e, tol_f)
    return test


def make_dtype_test(name: str, dtype: str = "float64") -> Test:
    """Loading ``name`` in a ``dtype`` its backend does not run in is refused before anything
    loads, with an `InputError` (a ValueError) naming the dtype and what the backend runs in."""
    def test(request):
        with pytest.raises(InputError, match=rf"dtype='{dtype}'.* only") as info:
            mlipviz.load_model(name, device="cpu", dtype=dtype)
        assert isinstance(info.value, ValueError)
    return test


def make_backend_test(model: str, backend: str) -> Test:
    """The model's backend is registered and named on it; its metadata holds what every backend
    records (the card's version, description and training data for a named model; the weights;
    the package and its version); a named model's weights are where the backend says its
    package keeps them, or it names where they download from."""
    def test(request):
        from mlipviz.models import registry

        net = request.getfixturevalue(model)
        found = registry.backend(backend)
        assert found.installed and net.meta["backend"] == backend
        assert net.meta["package"] == found.pip and net.meta["package_version"]
        assert net.meta["weights"]
        for key in ("version", "description", "training_data"):
            assert key in net.meta
        if net.card is not None:
            assert net.card in found.cards and registry.get_card(net.name) is net.card
            assert net.meta["version"] and net.meta["training_data"] == net.card.training_data
            assert net.meta["description"] == net.card.description
            assert found.package_weights(net.card) or found.download_source(net.card).startswith("http")
    return test


# -- fine-tuning (tests/test_finetune*.py) -------------------------------------------------------
def si_snapshots(count: int = 4) -> mlipviz.Frames:
    """The first ``count`` silicon snapshots of the bundled high-energy states (GPAW PBE labels)."""
    frames = mlipviz.examples.load("high-energy-states")
    si = [i for i, info in enumerate(frames.info) if info["material_id"].startswith("Si (")]
    return frames[si[:count]]


def force_mae(model, frames) -> float:
    """Mean absolute force error (eV/Å) of ``model`` against the labels of ``frames``."""
    pred = model.predict(frames, progress=False)
    return float(np.mean(np.abs(pred.forces - frames.forces)))


def resumed_after_interruption(model, frames, path, **settings):
    """A fine-tuning run stopped by a KeyboardInterrupt after its first epoch (its checkpoint at
    ``path`` written), then run again with the same checkpoint: the resumed result."""
    def stop_after_first(epoch, errors):
        if epoch == 0:
            raise KeyboardInterrupt("interrupted by the test")

    with pytest.raises(KeyboardInterrupt):
        mlipviz.finetune(model, frames, checkpoint=path, callback=stop_after_first, **settings)
    assert path.exists()
    return mlipviz.finetune(model, frames, checkpoint=path, **settings)
