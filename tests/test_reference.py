"""Live reference calculators against independent runs of the codes themselves."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.units import Bohr, Hartree

import mlipviz
from mlipviz.errors import ModelNotAvailableError

pyscf = pytest.importorskip("pyscf")


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def pyscf_energy(atoms, method, basis, spin=0):
    """An independent PySCF energy in eV (no mlipviz code involved)."""
    from pyscf import cc, gto, scf

    mol = gto.M(atom=[(int(z), tuple(p)) for z, p in zip(atoms.numbers, atoms.positions)],
                basis=basis, spin=spin, unit="Angstrom", verbose=0)
    mf = (scf.RHF if spin == 0 else scf.UHF)(mol).run(conv_tol=1e-11)
    if method == "HF":
        return mf.e_tot * Hartree, mf
    mycc = cc.CCSD(mf, frozen=0).run(conv_tol=1e-10)
    return (mycc.e_tot + mycc.ccsd_t()) * Hartree, mycc


def test_pyscf_hf_analytic_forces(cache):
    h2o = molecule("H2O")
    calc = mlipviz.reference.PySCF(method="HF", basis="6-31G", cache_dir=cache)
    h2o.calc = calc
    energy, mf = pyscf_energy(h2o, "HF", "6-31G")
    assert h2o.get_potential_energy() == pytest.approx(energy, abs=1e-7)
    expected = -mf.nuc_grad_method().kernel() * Hartree / Bohr
    np.testing.assert_allclose(h2o.get_forces(), expected, atol=1e-6)
    # and against finite differences of independent energies
    h = 1e-3
    plus, minus = h2o.copy(), h2o.copy()
    plus.positions[1, 1] += h
    minus.positions[1, 1] -= h
    fd = -(pyscf_energy(plus, "HF", "6-31G")[0] - pyscf_energy(minus, "HF", "6-31G")[0]) / (2 * h)
    assert h2o.get_forces()[1, 1] == pytest.approx(fd, abs=1e-4)


def test_pyscf_ccsd_t_energy_and_finite_difference_forces(cache):
    lih = molecule("LiH")
    calc = mlipviz.reference.PySCF(method="CCSD(T)", basis="6-31G", frozen_core=False, cache_dir=cache)
    labelled = calc.evaluate(mlipviz.read(lih), progress=False)
    energy, _ = pyscf_energy(lih, "CCSD(T)", "6-31G")
    assert labelled.energy[0] == pytest.approx(energy, abs=1e-6)
    info = labelled.info[0]
    assert "CCSD(T)/6-31G" in info["reference"] and "finite differences" in info["reference_forces"]
    assert info["reference_t1_diagnostic"] < 0.05
    # a diatomic: the force is along the bond, equal and opposite, = -dE/dr
    h = 1e-3
    stretched, squeezed = lih.copy(), lih.copy()
    stretched.positions[1, 2] += h
    squeezed.positions[1, 2] -= h
    dE_dr = (pyscf_energy(stretched, "CCSD(T)", "6-31G")[0] - pyscf_energy(squeezed, "CCSD(T)", "6-31G")[0]) / (2 * h)
    forces = labelled.forces
    np.testing.assert_allclose(forces[:, :2], 0, atol=1e-10)
    assert forces[1, 2] == pytest.approx(-dE_dr, abs=1e-4)
    assert forces[0, 2] == pytest.approx(-forces[1, 2])


def test_pyscf_open_shell_is_unrestricted(cache):
    o2 = molecule("O2")
    calc = mlipviz.reference.PySCF(method="HF", basis="6-31G", spin=2, cache_dir=cache)
    labelled = calc.evaluate(mlipviz.read(o2), progress=False)
    energy, _ = pyscf_energy(o2, "HF", "6-31G", spin=2)
    assert labelled.energy[0] == pytest.approx(energy, abs=1e-6)
    assert labelled.info[0]["reference_spin"] == 2 and labelled.info[0]["reference_s2"] > 1.9


def test_cache_hit_is_free_and_identical(cache):
    h2o = molecule("H2O")
    frames = mlipviz.read([h2o])
    calc = mlipviz.reference.PySCF(method="PBE", basis="6-31G", cache_dir=cache)
    first = calc.evaluate(frames, progress=False)
    h2o.calc = calc
    h2o.get_potential_energy()
    assert calc.last_source == "cache"
    again = mlipviz.reference.PySCF(method="PBE", basis="6-31G", cache_dir=cache)
    second = again.evaluate(frames, progress=False)
    np.testing.assert_array_equal(first.energy, second.energy)
    np.testing.assert_array_equal(first.forces, second.forces)
    other = mlipviz.reference.PySCF(method="PBE", basis="6-31G*", cache_dir=cache)
    h2o.calc = other
    h2o.get_potential_energy()
    assert other.last_source == "computed"  # other settings, other cache entry


def test_pyscf_refuses_periodic(cache):
    si = bulk("Si")
    si.calc = mlipviz.reference.PySCF(method="HF", basis="sto-3g", cache_dir=cache)
    with pytest.raises(ValueError, match="periodic"):
        si.get_potential_energy()


# -- GPAW --------------------------------------------------------------------------

gpaw_needed = pytest.mark.skipif(not __import__("importlib").util.find_spec("gpaw"),
                                 reason="GPAW not installed (needs system libraries)")
GPAW_LOW = {"ecut": 200.0, "kpts": (2, 2, 2), "smearing": 0.1}


def si_cells(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Si", "diamond", a=5.43)
        atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        out.append(atoms)
    return out


def gpaw_direct(atoms):
    """An independent GPAW run with the same settings (free energy, forces, stress)."""
    from gpaw import GPAW, PW

    atoms = atoms.copy()
    atoms.calc = GPAW(mode=PW(200.0), xc="PBE", kpts={"size": (2, 2, 2), "gamma": True},
                      occupations={"name": "fermi-dirac", "width": 0.1},
                      convergence={"energy": 1e-6}, txt=None)
    return atoms.get_potential_energy(force_consistent=True), atoms.get_forces(), atoms.get_stress()


@gpaw_needed
def test_gpaw_matches_direct_run_and_finite_differences(cache):
    atoms = si_cells(1)[0]
    calc = mlipviz.reference.GPAW(cache_dir=cache, **GPAW_LOW)
    labelled = calc.evaluate(mlipviz.read(atoms), n_jobs=1, progress=False)
    energy, forces, stress = gpaw_direct(atoms)
    assert labelled.energy[0] == pytest.approx(energy, abs=1e-5)
    np.testing.assert_allclose(labelled.forces, forces, atol=1e-4)
    np.testing.assert_allclose(mlipviz.frames.full_to_voigt(labelled.stress[0]), stress, atol=1e-5)
    assert "GPAW" in labelled.info[0]["reference"] and "200 eV" in labelled.info[0]["reference"]
    assert labelled.info[0]["reference_kpts"] == [2, 2, 2]
    h = 5e-3
    plus, minus = atoms.copy(), atoms.copy()
    plus.positions[0, 0] += h
    minus.positions[0, 0] -= h
    fd = -(gpaw_direct(plus)[0] - gpaw_direct(minus)[0]) / (2 * h)
    assert labelled.forces[0, 0] == pytest.approx(fd, abs=5e-3)


@gpaw_needed
def test_gpaw_parallel_equals_serial_and_compare_end_to_end(tmp_path):
    frames = mlipviz.read(si_cells(2, seed=1))
    serial = mlipviz.reference.GPAW(cache_dir=tmp_path / "a", **GPAW_LOW).evaluate(frames, n_jobs=1,
                                                                                  progress=False)
    ref = mlipviz.reference.GPAW(cache_dir=tmp_path / "b", **GPAW_LOW)
    parallel = ref.evaluate(frames, n_jobs=2, progress=False)
    np.testing.assert_allclose(parallel.energy, serial.energy, atol=1e-6)
    np.testing.assert_allclose(parallel.forces, serial.forces, atol=1e-5)
    cmp = mlipviz.compare("chgnet", frames, reference=ref, progress=False)  # from the cache now
    assert cmp.reference.meta["level_of_theory"] == ref.level_of_theory()
    np.testing.assert_allclose(cmp.reference.forces, parallel.forces)
    assert np.isfinite(cmp.summary().loc["chgnet", "force_mae_eV_A"])


def test_gpaw_missing_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gpaw" else real(name, *a))
    with pytest.raises(ModelNotAvailableError, match="libxc-dev.*mlipviz\\[dft\\]"):
        mlipviz.reference.GPAW()


def test_failed_frames_raise_or_become_nan(cache):
    from ase import Atoms

    frames = mlipviz.read([molecule("H2"), Atoms("H", positions=[[0, 0, 0]])])
    calc = mlipviz.reference.PySCF(method="HF", basis="sto-3g", spin=0, cache_dir=cache)  # H: odd electrons
    with pytest.raises(mlipviz.errors.MlipvizError, match="frame 1"):
        calc.evaluate(frames, n_jobs=1, progress=False)
    labelled = calc.evaluate(frames, n_jobs=1, progress=False, on_error="nan")
    assert np.isfinite(labelled.energy[0]) and np.isnan(labelled.energy[1])
    assert "frame 1" in labelled.info[1]["reference_error"] and "reference_error" not in labelled.info[0]


def test_broken_symmetry_dissociates_h2_correctly(cache):
    """Stretched H2: the restricted solution is unstable; the broken-symmetry one reaches
    twice the energy of an H atom (exact for UHF at dissociation), computed independently."""
    from ase import Atoms
    from pyscf import gto, scf

    h2 = Atoms("H2", positions=[[0, 0, 0], [0, 0, 6.0]])
    restricted = mlipviz.reference.PySCF(method="HF", basis="6-31G", cache_dir=cache)
    broken = mlipviz.reference.PySCF(method="HF", basis="6-31G", broken_symmetry=True, cache_dir=cache)
    e_r = restricted.evaluate(mlipviz.read(h2), n_jobs=1, progress=False)
    e_b = broken.evaluate(mlipviz.read(h2), n_jobs=1, progress=False)
    atom = scf.UHF(gto.M(atom="H 0 0 0", basis="6-31G", spin=1, verbose=0)).run().e_tot * Hartree
    assert e_b.info[0]["reference_scf"] == "UHF" and e_r.info[0]["reference_scf"] == "RHF"
    assert e_b.energy[0] == pytest.approx(2 * atom, abs=1e-4)
    assert e_r.energy[0] > e_b.energy[0] + 1.0  # eV: RHF's ionic contamination at 6 Å
    near = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])  # stable: stays restricted
    assert broken.evaluate(mlipviz.read(near), n_jobs=1, progress=False).info[0]["reference_scf"] == "RHF"


def test_broken_symmetry_dissociates_n2_into_quartet_atoms(cache):
    """Stretched N2 (a triple bond): the broken-symmetry UHF reaches two high-spin (quartet)
    N atoms with opposite spins, twice the atom's UHF energy, computed independently."""
    from ase import Atoms
    from pyscf import gto, scf

    n2 = Atoms("N2", positions=[[0, 0, 0], [0, 0, 6.0]])
    broken = mlipviz.reference.PySCF(method="HF", basis="6-31G", broken_symmetry=True, cache_dir=cache)
    labelled = broken.evaluate(mlipviz.read(n2), n_jobs=1, progress=False)
    atom = scf.UHF(gto.M(atom="N 0 0 0", basis="6-31G", spin=3, verbose=0)).run().e_tot * Hartree
    assert labelled.info[0]["reference_scf"] == "UHF"
    assert labelled.energy[0] == pytest.approx(2 * atom, abs=1e-3)


def test_ccsd_t_finite_differences_stay_on_one_branch(cache):
    """At a stretched, spin-broken N2 the displaced energies continue from the central SCF:
    the force matches the slope of separately converged energies a little further apart."""
    from ase import Atoms

    ref = mlipviz.reference.PySCF(method="CCSD(T)", basis="6-31G", broken_symmetry=True, cache_dir=cache)
    frames = mlipviz.read([Atoms("N2", positions=[[0, 0, 0], [0, 0, r]]) for r in (2.19, 2.2, 2.21)])
    labelled = ref.evaluate(frames, n_jobs=1, progress=False)
    slope = (labelled.energy[2] - labelled.energy[0]) / 0.02
    assert labelled.forces[3, 2] == pytest.approx(-slope, abs=0.02)


def test_broken_symmetry_localises_triplet_o2_spins_on_the_atoms(cache):
    """Stretched triplet O2: the symmetry-adapted UHF (spins shared by both atoms; a saddle
    point that the default guess may or may not slide off, depending on rounding) is far
    above; the broken-symmetry search finds the solution of an Ms = 1 atom and an open-shell
    Ms = 0 atom (one alpha p electron moved to beta), whose energy is the sum of the two
    atoms' UHF energies, computed independently."""
    from ase import Atoms
    from pyscf import gto, scf

    triplet = scf.UHF(gto.M(atom="O 0 0 0", basis="6-31G", spin=2, verbose=0)).run(conv_tol=1e-10)
    # the open-shell Ms = 0 atom: the triplet's alpha orbitals, one singly occupied p orbital
    # (the one least in the beta space) holding a beta electron instead; kept there by MOM
    occupied = np.flatnonzero(triplet.mo_occ[0] > 0)
    beta = triplet.mo_coeff[1][:, triplet.mo_occ[1] > 0]
    in_beta = np.linalg.norm(beta.T @ triplet.get_ovlp() @ triplet.mo_coeff[0][:, occupied], axis=0)
    single = occupied[np.argmin(in_beta)]
    occupation = np.zeros((2, len(triplet.mo_occ[0])))
    occupation[0, occupied], occupation[0, single] = 1, 0
    occupation[1, occupied[in_beta > 0.5]], occupation[1, single] = 1, 1
    orbitals = np.array([triplet.mo_coeff[0]] * 2)
    open_shell = scf.addons.mom_occ(scf.UHF(gto.M(atom="O 0 0 0", basis="6-31G", spin=0, verbose=0)),
                                    orbitals, occupation)
    open_shell.run(dm0=open_shell.make_rdm1(orbitals, occupation), conv_tol=1e-10)
    atoms_sum = (triplet.e_tot + open_shell.e_tot) * Hartree

    o2 = mlipviz.read(Atoms("O2", positions=[[0, 0, 0], [0, 0, 6.0]]))
    symmetric = scf.UHF(gto.M(atom="O 0 0 0; O 0 0 6.0", basis="6-31G", spin=2, symmetry=True, verbose=0))
    symmetric.run(conv_tol=1e-10)
    broken = mlipviz.reference.PySCF(method="HF", basis="6-31G", spin=2, broken_symmetry=True, cache_dir=cache)
    e_broken = broken.evaluate(o2, n_jobs=1, progress=False).energy[0]
    assert open_shell.spin_square()[0] == pytest.approx(1.0, abs=1e-3)  # the open-shell Ms = 0 atom
    assert e_broken == pytest.approx(atoms_sum, abs=2e-3)
    assert e_broken < symmetric.e_tot * Hartree - 0.1


def test_scan_continues_each_point_from_its_neighbour(cache, monkeypatch):
    """A two-molecule scan: outward from each start, each point continued from its
    neighbour; where the SCF landscape is simple (N2 HF: restricted near equilibrium,
    spin-broken when stretched; H2) it lands on the same solutions as independent points;
    repeated, it comes from the cache."""
    from ase import Atoms

    from mlipviz.errors import InputError

    curves = {"N2": (1.0, 1.4, 2.0, 2.8), "H2": (0.7, 1.2, 2.5)}
    frames = mlipviz.read([Atoms(name, positions=[[0, 0, 0], [0, 0, r]], info={"molecule": name})
                           for name, distances in curves.items() for r in distances])
    ref = mlipviz.reference.PySCF(method="HF", basis="6-31G", broken_symmetry=True, cache_dir=cache)
    scanned = ref.scan(frames, start=lambda scan: 1, group="molecule", n_jobs=1, progress=False)
    independent = ref.evaluate(frames, n_jobs=1, progress=False)
    np.testing.assert_allclose(scanned.energy, independent.energy, atol=1e-5)
    np.testing.assert_allclose(scanned.forces, independent.forces, atol=1e-4)
    assert [d["reference_continued_from"] for d in scanned.info] == [1, None, 1, 2, 5, None, 5]
    assert [d["reference_scf"] for d in scanned.info] == [d["reference_scf"] for d in independent.info]
    assert {"RHF", "UHF"} <= {d["reference_scf"] for d in scanned.info[:4]}

    monkeypatch.setattr(mlipviz.reference.PySCF, "_compute", lambda *a, **k: 1 / 0)
    again = ref.scan(frames, start=lambda scan: 1, group="molecule", n_jobs=1, progress=False)
    np.testing.assert_array_equal(again.energy, scanned.energy)
    with pytest.raises(InputError, match="outside the scan"):
        ref.scan(frames, start=7, group="molecule", n_jobs=1, progress=False)
    with pytest.raises(InputError, match="no info 'bond'"):
        ref.scan(frames, group="bond", n_jobs=1, progress=False)


def test_dft_scan_runs_back_from_a_lower_solution(cache):
    """Stretched H2 in PBE: the restricted solution lies above the spin-broken one. A scan
    that stayed restricted out to 2.5 Å and found the broken solution at 3.0 Å drops by more
    than its forces explain; running back inward replaces each stretched frame by the
    broken solution continued from its outer neighbour (equal to an independent
    broken-symmetry calculation), and stops at the start frame."""
    from ase import Atoms

    from mlipviz.reference import pyscf_calc

    frames = mlipviz.read([Atoms("H2", positions=[[0, 0, 0], [0, 0, r]]) for r in (0.75, 2.0, 2.5, 3.0)])
    restricted = mlipviz.reference.PySCF(method="PBE", basis="6-31G", cache_dir=cache)
    broken = mlipviz.reference.PySCF(method="PBE", basis="6-31G", broken_symmetry=True, cache_dir=cache)
    out = {i: restricted._compute(frames.to_atoms(i), keep_density=True) for i in range(3)}
    out[3] = broken._compute(frames.to_atoms(3), keep_density=True)
    before = {i: out[i]["energy"] for i in out}
    assert {out[i]["meta"]["scf"] for i in range(3)} == {"RKS"} and out[3]["meta"]["scf"] == "UKS"
    assert pyscf_calc._dropped(frames, out, 2, 3) and not pyscf_calc._dropped(frames, out, 1, 2)

    pyscf_calc._sweep_back(broken, frames, out, done=[0, 1, 2], path=[0, 1, 2, 3], start=0)
    independent = broken.evaluate(frames, n_jobs=1, progress=False)
    assert out[0]["energy"] == before[0]
    for i in (1, 2):
        assert out[i]["meta"]["scf"] == "UKS" and out[i]["meta"]["continued_from"] == i + 1
        assert out[i]["energy"] < before[i] - 0.1
        assert out[i]["energy"] == pytest.approx(independent.energy[i], abs=1e-5)
    assert not any(pyscf_calc._dropped(frames, out, i, i + 1) for i in range(3))


def test_aligned_orbitals_match_the_central_ones_and_keep_the_solution():
    """Finite-difference displacements start CCSD from the central amplitudes; that needs
    the displaced orbitals with the central ones' signs and degenerate-pi rotations. The
    alignment must leave density, orbital energies and the canonical Fock matrix alone."""
    from pyscf import gto, scf

    from mlipviz.reference.pyscf_calc import _align_orbitals

    def n2(r):
        return gto.M(atom=f"N 0 0 0; N 0 0 {r}", basis="6-31G", verbose=0)

    central = scf.RHF(n2(1.1)).run(conv_tol=1e-11)
    displaced = scf.RHF(n2(1.101)).run(conv_tol=1e-11)
    displaced.mo_coeff = displaced.mo_coeff @ np.diag(np.where(np.arange(18) % 2, -1.0, 1.0))  # scramble signs
    density, energies = displaced.make_rdm1(), displaced.mo_energy.copy()
    _align_orbitals(displaced, central)
    overlap = central.mo_coeff.T @ displaced.get_ovlp() @ displaced.mo_coeff
    assert np.diag(overlap).min() > 0.99
    np.testing.assert_allclose(displaced.make_rdm1(), density, atol=1e-10)
    np.testing.assert_allclose(displaced.mo_energy, energies)
    fock = displaced.mo_coeff.T @ displaced.get_fock() @ displaced.mo_coeff
    np.testing.assert_allclose(fock, np.diag(energies), atol=1e-6)
