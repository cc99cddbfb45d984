"""Attributions (`mlipviz.attribute`) on every adapter, and against analytic results.

Every check is physics or exact bookkeeping: the differentiable per-atom energies equal the
adapter's `predict` (energies, and forces as -dE/dx); a gate of 0 equals deleting the atom;
integrated gradients are complete; an atom out of the model's reach gets nothing; a pair
potential's attributions equal the analytic per-atom work along the path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("captum")

import mlipviz
from mlipviz.errors import CompletenessWarning, InputError, MissingLabelsError, MlipvizError
from mlipviz.frames import Frames
from mlipviz.models.base import Model

ADAPTERS = ["chgnet", "m3gnet", "sevennet-0", "tensornet-matpes-pbe", "sevennet-l3i5", "small-mace"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from test_mace_adapter import build_small_mace

    path = build_small_mace(tmp_path_factory.mktemp("mace") / "small.model")
    out = {name: mlipviz.load_model(name, device="cpu") for name in ADAPTERS[:-1]}
    out["small-mace"] = mlipviz.load_model(path, device="cpu", dtype="float64")
    return out


@pytest.fixture(scope="module")
def silicon():
    """8-atom Si cell, rattled, and its ideal positions (the baseline)."""
    from ase.build import bulk

    ideal = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms = ideal.copy()
    atoms.positions += np.random.default_rng(3).normal(0, 0.12, atoms.positions.shape)
    return atoms, ideal.positions.copy()


def _tol(model):
    return 1e-9 if model.dtype == "float64" else 3e-5


@pytest.mark.parametrize("name", ADAPTERS)
def test_site_energies_are_the_models_own(models, silicon, name):
    """Two copies at different geometries: per-atom energies equal `predict`, and so do the
    forces as -dE/dx by autograd."""
    model = models[name]
    atoms, ideal = silicon
    frames = Frames.from_atoms([atoms, atoms.copy()])
    frames.positions[8:] = ideal
    pred = model.predict(frames, progress=False)
    frame = frames[[0]]
    dtype = torch.float64 if model.dtype == "float64" else torch.float32
    positions = torch.as_tensor(frames.positions.reshape(2, 8, 3), dtype=dtype).requires_grad_(True)
    site = model.site_energies_torch(frame, positions)
    forces, = torch.autograd.grad(-site.sum(), positions)
    scale = np.abs(pred.energy).max()
    np.testing.assert_allclose(site.detach().double().numpy().ravel(), pred.energies,
                               atol=_tol(model) * scale)
    np.testing.assert_allclose(forces.double().numpy().reshape(-1, 3), pred.forces,
                               atol=_tol(model) * 100)


@pytest.mark.parametrize("name", ADAPTERS)
def test_gate_zero_deletes_the_atom(models, silicon, name):
    """All gates 1 is the model; a gate 0 on atom 5 is the model on the cell without it."""
    model = models[name]
    atoms, _ = silicon
    frame = Frames.from_atoms([atoms])
    dtype = torch.float64 if model.dtype == "float64" else torch.float32
    positions = torch.as_tensor(frame.positions, dtype=dtype).expand(2, 8, 3)
    gate = torch.ones(2, 8, dtype=dtype)
    gate[1, 5] = 0
    energy = model.site_energies_torch(frame, positions, gate).sum(dim=1).detach().double().numpy()
    without = atoms.copy()
    del without[5]
    reference = model.predict(Frames.from_atoms([atoms, without]), progress=False).energy
    np.testing.assert_allclose(energy, reference, atol=_tol(model) * abs(reference[0]))


@pytest.mark.parametrize("name", ADAPTERS)
def test_integrated_gradients_complete(models, silicon, name):
    """Energy and a force component: attributions sum to f(x) - f(baseline) within 1 %,
    matching Captum's delta; and the same in one pass per step (batch_size=1)."""
    model = models[name]
    atoms, ideal = silicon
    energy = mlipviz.attribute(model, atoms, "energy", baseline=ideal, n_steps=24)
    assert energy.completeness_error < 0.01
    assert energy.values.sum() - (energy.value - energy.baseline_value) == pytest.approx(
        energy.convergence_delta, abs=_tol(model) * abs(energy.value))
    # CHGNet's force varies quickly along this path: integrated gradients converge only as
    # 1/steps there (4.7 % at 24 steps, 1.4 % at 64, 0.14 % at 128)
    steps = 128 if name == "chgnet" else 24
    force = mlipviz.attribute(model, atoms, "force", atom=2, component="z", baseline=ideal, n_steps=steps)
    assert force.completeness_error < 0.01
    single = mlipviz.attribute(model, atoms, "force", atom=2, component="z", baseline=ideal, n_steps=8,
                               batch_size=1)
    batched = mlipviz.attribute(model, atoms, "force", atom=2, component="z", baseline=ideal, n_steps=8)
    assert batched.meta["steps_per_pass"] > 1
    np.testing.assert_allclose(single.values, batched.values, atol=_tol(model) * 1e3)


@pytest.mark.parametrize("name", ADAPTERS)
def test_atom_out_of_reach_gets_nothing(models, name):
    """A Si dimer 60 Å away (beyond every model's cutoff times its interaction blocks) gets
    exactly zero attribution for the force on an atom of a Si4 cluster, as gate and as
    position; the cluster's own atoms do not."""
    from ase import Atoms

    model = models[name]
    cluster = [[0, 0, 0], [2.3, 0, 0], [1.1, 2.0, 0], [1.1, 0.7, 1.9]]
    atoms = Atoms("Si6", positions=cluster + [[60, 0, 0], [62.3, 0.2, 0]], cell=[80, 20, 20], pbc=False)
    ref = atoms.positions.copy()
    atoms.positions[:4] += np.random.default_rng(0).normal(0, 0.1, (4, 3))
    atoms.positions[4] += [0.1, 0.05, 0]
    for inputs, baseline in (("atom_mask", None), ("positions", ref)):
        result = mlipviz.attribute(model, atoms, "force_magnitude", inputs=inputs, atom=1, baseline=baseline,
                                   n_steps=8)
        assert np.all(result.values[4:] == 0), (inputs, result.values)
        assert np.all(result.values[:4] != 0), (inputs, result.values)


class PairPotential(Model):
    """Lennard-Jones in torch (ε = 0.2 eV, σ = 2.1 Å, no cutoff, molecules only): a model whose
    attributions are known in closed form."""

    name, dtype, has_stress, has_energies = "lennard-jones", "float64", False, True
    atom_gate = "each pair term times g_i g_j, each site energy half the pair terms"
    epsilon, sigma = 0.2, 2.1

    def site_energies_torch(self, frame, positions, gate=None):
        n = positions.shape[1]
        diff = positions[:, :, None] - positions[:, None]
        off = ~torch.eye(n, dtype=torch.bool)
        r = torch.linalg.norm(diff[:, off], dim=-1)
        phi = torch.zeros(positions.shape[0], n, n, dtype=positions.dtype)
        phi[:, off] = 4 * self.epsilon * ((self.sigma / r) ** 12 - (self.sigma / r) ** 6)
        if gate is not None:
            phi = phi * gate[:, :, None] * gate[:, None, :]
        return 0.5 * phi.sum(dim=2)

    def _evaluate(self, frames, return_embeddings):
        positions = torch.as_tensor(frames.positions[None], dtype=torch.float64).requires_grad_(True)
        site = self.site_energies_torch(frames, positions)
        forces, = torch.autograd.grad(-site.sum(), positions)
        return {"energy": site.sum(dim=1).detach().numpy(), "forces": forces[0].numpy(),
                "energies": site[0].detach().numpy()}

    def pair_energy(self, r):
        return 4 * self.epsilon * ((self.sigma / r) ** 12 - (self.sigma / r) ** 6)


@pytest.fixture(scope="module")
def cluster():
    from ase import Atoms

    rng = np.random.default_rng(1)
    positions = np.array([[0, 0, 0], [2.4, 0, 0], [1.2, 2.1, 0], [1.2, 0.7, 2.0], [-1.5, 1.6, 1.2]])
    positions = positions - positions.mean(axis=0) + rng.normal(0, 0.05, positions.shape)
    return Atoms("Ar5", positions=positions)


def test_pair_potential_position_attributions_are_the_analytic_work(cluster):
    """Breathing path x(t) = (1 + λt) x0: atom i's work is sum_j Δφ_ij (x0_i - x0_j)·x0_i / r0_ij²."""
    model = PairPotential()
    x0 = cluster.positions
    stretched = cluster.copy()
    stretched.positions = 1.08 * x0
    result = mlipviz.attribute(model, stretched, "energy", baseline=x0, n_steps=64)
    n = len(x0)
    work = np.zeros(n)
    for i in range(n):
        for j in range(n):
            if i != j:
                r0 = np.linalg.norm(x0[i] - x0[j])
                change = model.pair_energy(1.08 * r0) - model.pair_energy(r0)
                work[i] += change * (x0[i] - x0[j]) @ x0[i] / r0**2
    np.testing.assert_allclose(result.values, work, rtol=1e-7, atol=1e-10)
    assert result.completeness_error < 1e-8


def test_pair_potential_atom_mask_splits_energy_into_half_pairs(cluster):
    """E(g) = sum_{i<j} g_i g_j φ_ij from all gates 0 to 1: atom i gets (1/2) sum_j φ_ij, and
    occlusion (feature ablation) gets the whole sum_j φ_ij."""
    model = PairPotential()
    halves = model.predict(Frames.from_atoms([cluster]), progress=False).energies
    ig = mlipviz.attribute(model, cluster, "energy", inputs="atom_mask", n_steps=8)
    np.testing.assert_allclose(ig.values, halves, rtol=1e-7)  # Captum's step weights are float32
    ablation = mlipviz.attribute(model, cluster, "energy", "feature_ablation", inputs="atom_mask")
    np.testing.assert_allclose(ablation.values, 2 * halves, rtol=1e-10)
    np.testing.assert_allclose(mlipviz.site_energies(model, cluster), halves)


def test_gradient_methods_on_the_pair_potential(cluster):
    """Saliency is |∂E/∂x_i| = |F_i|; input x gradient is (x - x0)·∇E."""
    model = PairPotential()
    x0 = cluster.positions
    moved = cluster.copy()
    moved.positions = x0 + np.random.default_rng(2).normal(0, 0.1, x0.shape)
    forces = model.predict(Frames.from_atoms([moved]), progress=False).forces
    saliency = mlipviz.attribute(model, moved, "energy", "saliency", baseline=x0)
    np.testing.assert_allclose(saliency.values, np.linalg.norm(forces, axis=1), rtol=1e-10)
    ixg = mlipviz.attribute(model, moved, "energy", "input_x_gradient", baseline=x0)
    np.testing.assert_allclose(ixg.values, -np.sum((moved.positions - x0) * forces, axis=1), rtol=1e-10)


def test_force_error_and_baseline_relaxation(models, silicon):
    """force_error against labels in the structure; default baseline: relaxed with the model."""
    from ase.calculators.singlepoint import SinglePointCalculator

    model = models["chgnet"]
    atoms, _ideal = silicon
    labelled = atoms.copy()
    forces = model.predict(Frames.from_atoms([atoms]), progress=False).forces
    labelled.calc = SinglePointCalculator(labelled, energy=0.0, forces=forces * 1.3)
    result = mlipviz.attribute(model, labelled, "force_error", atom=4, n_steps=16)
    assert result.value == pytest.approx(0.3 * np.linalg.norm(forces[4]), rel=1e-3)
    assert "relaxed" in result.meta["baseline"]
    relaxed_forces = model.predict(Frames.from_atoms([_with_positions(atoms, result.baseline)]),
                                   progress=False).forces
    assert np.abs(relaxed_forces).max() < 0.02
    table = result.top(3)
    assert list(table.columns) == ["element", "attribution", "distance", "rank"]
    assert table["distance"].iloc[0] <= table["distance"].max()


def _with_positions(atoms, positions):
    out = atoms.copy()
    out.positions = positions
    return out


def test_bad_input_is_named(models, silicon):
    model = models["chgnet"]
    atoms, ideal = silicon
    with pytest.raises(InputError, match="needs atom="):
        mlipviz.attribute(model, atoms, "force", component=0)
    with pytest.raises(InputError, match="component="):
        mlipviz.attribute(model, atoms, "force", atom=1, component="w")
    with pytest.raises(InputError, match="target must be one of"):
        mlipviz.attribute(model, atoms, "stress")
    with pytest.raises(MissingLabelsError, match="reference forces.*atom 2"):
        mlipviz.attribute(model, atoms, "force_error", atom=2, baseline=ideal)
    with pytest.raises(InputError, match="baseline positions must be finite, shape \\(8, 3\\)"):
        mlipviz.attribute(model, atoms, baseline=ideal[:4])
    with pytest.raises(MlipvizError, match="no differentiable"):
        from ase.calculators.emt import EMT

        mlipviz.attribute(mlipviz.load_model(EMT()), atoms, baseline=ideal)


def test_too_few_steps_warn(models, silicon):
    atoms, ideal = silicon
    far = atoms.copy()
    far.positions = ideal + 3 * (atoms.positions - ideal)
    with pytest.warns(CompletenessWarning, match="more steps"):
        mlipviz.attribute(models["chgnet"], far, "force", atom=0, component=0, baseline=ideal, n_steps=2)
