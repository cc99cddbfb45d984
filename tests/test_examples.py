"""Bundled datasets: load, finite labels of the right shapes, and contents as described."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mlipviz import examples
from mlipviz.errors import InputError


def present(name):
    if name not in examples.list():
        pytest.skip(f"dataset {name} not generated (python scripts/make_examples.py --only {name})")
    return name


def check_labels(frames, stress: bool):
    assert np.isfinite(frames.energy).all() and frames.energy.shape == (len(frames),)
    assert np.isfinite(frames.forces).all() and frames.forces.shape == (frames.total_atoms, 3)
    if stress:
        assert np.isfinite(frames.stress).all() and frames.stress.shape == (len(frames), 3, 3)
    for info in frames.info:
        assert info["reference"] and info["reference_settings"]


def test_bundled_data_is_small():
    total = sum(p.stat().st_size for p in examples.DATA_DIR.glob("*.h5"))
    assert total <= 10e6


def test_unknown_and_missing_names():
    with pytest.raises(InputError, match="no bundled dataset"):
        examples.load("nope")


def test_high_energy_states():
    frames = examples.load(present("high-energy-states"))
    check_labels(frames, stress=True)
    per_material = Counter(d["material_id"] for d in frames.info)
    assert len(per_material) >= 6 and min(per_material.values()) >= 10
    strained = Counter(d["material_id"] for d in frames.info if d["lattice_strain"] != 1.0)
    assert set(strained.values()) == {4}
    assert all("GPAW" in d["reference"] and "PBE" in d["reference"] for d in frames.info)
    relaxed = examples.load("high-energy-states", part="relaxed")
    assert len(relaxed) == len(per_material)
    assert not any(relaxed.has_labels.values()), "the relaxed part is described as unlabelled"
    text = examples.describe("high-energy-states")
    assert "What it is not" in text and "VASP" in text and frames.info[0]["reference"] in text
    for material in per_material:
        assert material in text


def test_si_vacancy_migration():
    frames = examples.load(present("si-vacancy-migration"))
    check_labels(frames, stress=True)
    assert set(frames.n_atoms.tolist()) == {63}
    kinds = Counter(d["kind"] for d in frames.info)
    assert kinds["neb"] >= 7 and kinds["md"] >= 10
    hopper = frames.info[0]["migrating_atom"]
    assert all(d["migrating_atom"] == hopper for d in frames.info)
    mask = frames.arrays["migrating"].reshape(len(frames), 63)
    assert mask.sum(axis=1).tolist() == [1] * len(frames) and mask[:, hopper].all()
    neb = frames[[i for i, d in enumerate(frames.info) if d["kind"] == "neb"]]
    moved = np.linalg.norm(neb.positions.reshape(len(neb), 63, 3)[-1] - neb.positions.reshape(len(neb), 63, 3)[0],
                           axis=1)
    assert moved.argmax() == hopper and moved[hopper] > 1.5  # the hop, in Å
    relaxed = examples.load("si-vacancy-migration", part="relaxed")
    assert len(relaxed) == 2 and not any(relaxed.has_labels.values())
    assert "Liu, He & Mo" in examples.describe("si-vacancy-migration")


def test_diatomics():
    name = present("diatomics")
    assert examples.levels(name) == ["ccsd(t)", "pbe"]
    cc, pbe = examples.load(name), examples.load(name, level="pbe")
    check_labels(cc, stress=False)
    check_labels(pbe, stress=False)
    assert [d["distance"] for d in cc.info] == [d["distance"] for d in pbe.info]
    counts = Counter(d["molecule"] for d in cc.info)
    assert set(counts) == {"H2", "N2", "O2", "Si2"} and min(counts.values()) >= 25
    spins = {d["molecule"]: d["reference_spin"] for d in cc.info}
    assert spins == {"H2": 0, "N2": 0, "O2": 2, "Si2": 2}
    assert all("CCSD(T)/cc-pVTZ" in d["reference"] for d in cc.info)
    assert all("PBE/cc-pVTZ" in d["reference"] for d in pbe.info)
    # forces along the bond, equal and opposite
    f = cc.forces.reshape(len(cc), 2, 3)
    np.testing.assert_allclose(f[:, 0], -f[:, 1], atol=1e-8)
    np.testing.assert_allclose(f[:, :, :2], 0, atol=1e-8)
    for molecule in counts:  # repulsive at the shortest distance, bound near the minimum
        rows = [i for i, d in enumerate(cc.info) if d["molecule"] == molecule]
        energies = cc.energy[rows]
        assert energies[0] > energies.min() and 0 < int(np.argmin(energies)) < len(rows) - 1
    text = examples.describe(name)
    assert "T1 diagnostic" in text and "What it is not" in text


@pytest.mark.parametrize("level", ["ccsd(t)", "pbe"])
def test_diatomic_energy_steps_their_forces_do_not_explain_are_all_disclosed(level):
    """Between neighbouring distances the energy change must match the trapezoid integral of
    the independently computed forces, to within the rule's own error (0.02 eV + the force
    change times the step); a jump between SCF solutions breaks this. Every such jump must
    be marked in the frame's info (and so in the description), and nothing else marked."""
    frames = examples.load(present("diatomics"), level=level)
    for molecule in {d["molecule"] for d in frames.info}:
        rows = [i for i, d in enumerate(frames.info) if d["molecule"] == molecule]
        r = np.array([frames.info[i]["distance"] for i in rows])
        force = frames.forces.reshape(len(frames), 2, 3)[rows, 1, 2]  # on the second atom, along +r
        step = np.diff(r)
        mismatch = np.abs(np.diff(frames.energy[rows]) + (force[1:] + force[:-1]) / 2 * step)
        jumps = mismatch > 0.02 + np.abs(np.diff(force)) * step
        marked = np.array(["reference_energy_step" in frames.info[i] for i in rows[1:]])
        np.testing.assert_array_equal(marked, jumps, err_msg=f"{molecule} {level}: undisclosed or false steps")
    if any("reference_energy_step" in d for d in frames.info):
        assert "Energy steps the forces do not account for" in examples.describe("diatomics")
