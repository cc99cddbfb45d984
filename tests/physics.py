"""Physics checks shared by the adapter tests: the model's own calculator, finite differences."""

from __future__ import annotations

import numpy as np

import mlipviz


def assert_matches_calculator(pred, frames, calc, tol_e, tol_f, tol_s, energies=True):
    """``pred`` equals ``calc`` (an ASE calculator) run one frame at a time.

    Stress is compared on fully periodic frames and must be NaN on the others.
    """
    for i in range(len(frames)):
        atoms = frames.to_atoms(i)
        atoms.calc = calc
        rows = frames.atoms_of(i)
        np.testing.assert_allclose(pred.energy[i], atoms.get_potential_energy(), rtol=0, atol=tol_e)
        np.testing.assert_allclose(pred.forces[rows], atoms.get_forces(), rtol=0, atol=tol_f)
        if energies:
            np.testing.assert_allclose(pred.energies[rows], atoms.get_potential_energies(),
                                       rtol=0, atol=tol_e)
        if frames.pbc[i].all():
            np.testing.assert_allclose(pred.stress[i], atoms.get_stress(voigt=False), rtol=0, atol=tol_s)
        else:
            assert np.isnan(pred.stress[i]).all()


def finite_difference_forces(model, atoms, h, components=None):
    """Analytic forces and -dE/dx by central differences of step ``h`` Å, on ``components``
    ((atom, axis) pairs; default all). Returns two arrays of the chosen components."""
    components = components or [(a, k) for a in range(len(atoms)) for k in range(3)]
    displaced = [atoms]
    for atom, axis in components:
        for sign in (1, -1):
            copy = atoms.copy()
            copy.positions[atom, axis] += sign * h
            displaced.append(copy)
    pred = model.predict(mlipviz.Frames.from_atoms(displaced), progress=False)
    numeric = -(pred.energy[1::2] - pred.energy[2::2]) / (2 * h)
    analytic = np.array([pred.forces[atom, axis] for atom, axis in components])
    return analytic, numeric


def finite_difference_stress_xx(model, atoms, h):
    """sigma_xx and (1/V) dE/d(strain_xx) by central differences (ASE sign convention)."""
    strained = [atoms]
    for sign in (1, -1):
        copy = atoms.copy()
        copy.set_cell(atoms.cell.array @ np.diag([1 + sign * h, 1, 1]), scale_atoms=True)
        strained.append(copy)
    pred = model.predict(mlipviz.Frames.from_atoms(strained), progress=False)
    numeric = (pred.energy[1] - pred.energy[2]) / (2 * h) / atoms.get_volume()
    return pred.stress[0, 0, 0], numeric


def assert_free_molecule_equals_boxed(model, box: float, tol_e, tol_f):
    """A water molecule without cell gives the same energy and forces as in a large periodic box,
    and NaN stress (no cell) versus finite stress (box)."""
    from ase.build import molecule

    free = molecule("H2O")
    boxed = free.copy()
    boxed.set_cell([box, box, box])
    boxed.center()
    boxed.pbc = True
    free.positions = boxed.positions
    pred = model.predict(mlipviz.Frames.from_atoms([free, boxed]), progress=False)
    assert abs(pred.energy[0] - pred.energy[1]) < tol_e
    np.testing.assert_allclose(pred.forces[:3], pred.forces[3:], rtol=0, atol=tol_f)
    assert np.isnan(pred.stress[0]).all() and np.isfinite(pred.stress[1]).all()


def assert_embeddings_deterministic(model, frames, prediction, width: int, atol: float = 0.0):
    """Embeddings come from the same pass (energies and forces unchanged, to ``atol`` where the
    backend's sums are not bit-reproducible between passes), finite and repeatable."""
    first = model.predict(frames, batch_size=3, return_embeddings=True, progress=False)
    second = model.predict(frames, batch_size=3, return_embeddings=True, progress=False)
    assert first.embeddings.shape == (frames.total_atoms, width) == (frames.total_atoms, model.embedding_width)
    assert np.isfinite(first.embeddings).all()
    np.testing.assert_array_equal(first.embeddings, second.embeddings)
    np.testing.assert_allclose(first.energy, prediction.energy, rtol=0, atol=atol)
    np.testing.assert_allclose(first.forces, prediction.forces, rtol=0, atol=atol)
    assert first.meta["embedding_layer"] == model.embedding_layer
