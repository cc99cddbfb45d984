"""Frames container and mlipviz.read: formats, labels, slicing, round trips, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from conftest import rattled

import mlipviz
from mlipviz.errors import EmptyInputError, InvalidStructureError, LabelShapeError, MlipvizError, ReadError


def labelled(images):
    """Copies of ``images`` carrying EMT energies, forces, stresses as single-point labels."""
    out = []
    for atoms in images:
        atoms = atoms.copy()
        atoms.calc = EMT()
        results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
                   "stress": atoms.get_stress()}
        atoms.calc = SinglePointCalculator(atoms, **results)
        out.append(atoms)
    return out


@pytest.fixture
def trajectory():
    cu = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 1, 1)
    al = bulk("Al", "fcc", a=4.05, cubic=True)
    return labelled(rattled(cu, 3, 0.05, seed=1) + rattled(al, 2, 0.05, seed=2))


@pytest.mark.parametrize("suffix", [".extxyz", ".traj", ".h5"])
def test_labelled_file_round_trip(tmp_path, trajectory, suffix):
    frames = mlipviz.Frames.from_atoms(trajectory)
    path = tmp_path / f"t{suffix}"
    frames.write(path)
    back = mlipviz.read(path)
    assert len(back) == 5 and back.n_atoms.tolist() == [8, 8, 8, 4, 4]
    np.testing.assert_allclose(back.positions, np.concatenate([a.positions for a in trajectory]), atol=1e-8)
    np.testing.assert_allclose(back.energy, [a.get_potential_energy() for a in trajectory], atol=1e-8)
    np.testing.assert_allclose(back.forces, np.concatenate([a.get_forces() for a in trajectory]), atol=1e-8)
    np.testing.assert_allclose(back.stress[2], trajectory[2].get_stress(voigt=False), atol=1e-8)
    assert back.source == str(path)


@pytest.mark.parametrize("fmt,name", [("vasp", "POSCAR"), ("cif", "s.cif")])
def test_structure_formats(tmp_path, fmt, name):
    atoms = bulk("MgO", "rocksalt", a=4.21) * (2, 1, 1)
    write(tmp_path / name, atoms, format=fmt)
    frames = mlipviz.read(tmp_path / name)
    assert len(frames) == 1 and sorted(frames.numbers) == sorted(atoms.numbers)
    assert not frames.has_labels["forces"]
    np.testing.assert_allclose(abs(np.linalg.det(frames.cells[0])), atoms.get_volume(), rtol=1e-6)


def test_index_and_slicing(tmp_path, trajectory):
    path = tmp_path / "t.extxyz"
    write(path, trajectory)
    assert len(mlipviz.read(path, index="1:4")) == 3
    assert mlipviz.read(path, index=-1).n_atoms.tolist() == [4]
    frames = mlipviz.read(path)
    sub = frames[[0, 3]]
    assert sub.n_atoms.tolist() == [8, 4]
    np.testing.assert_array_equal(sub.forces[8:], frames.forces[frames.atoms_of(3)])
    assert frames[frames.n_atoms == 4].n_atoms.tolist() == [4, 4]
    atoms = frames.to_atoms(3)
    np.testing.assert_allclose(atoms.get_forces(), trajectory[3].get_forces(), atol=1e-8)
    assert frames.frame_index.tolist()[:9] == [0] * 8 + [1]
    assert frames.atom_index.tolist()[7:9] == [7, 0]
    with pytest.raises(IndexError):
        frames.to_atoms(5)


def test_pymatgen_and_atoms_inputs():
    from pymatgen.core import Lattice, Molecule, Structure

    structure = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    mol = Molecule(["O", "H", "H"], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    frames = mlipviz.read([structure, mol])
    assert frames.n_atoms.tolist() == [2, 3]
    assert frames.pbc[0].all() and not frames.pbc[1].any()
    single = mlipviz.read(molecule("CH4"))
    assert len(single) == 1 and single.n_atoms[0] == 5
    assert len(mlipviz.read(single)) == 1


def test_info_and_arrays_survive_hdf5(tmp_path):
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.info.update(material_id="mp-149", temperature=1000.0, tags=np.array([1, 2]))
    atoms.new_array("migrating", np.array([True, False]))
    frames = mlipviz.read([atoms, atoms])
    frames.write(tmp_path / "f.h5")
    back = mlipviz.read(tmp_path / "f.h5")
    assert back.info[1]["material_id"] == "mp-149" and back.info[0]["temperature"] == 1000.0
    np.testing.assert_array_equal(back.info[0]["tags"], [1, 2])
    np.testing.assert_array_equal(back.arrays["migrating"], [True, False, True, False])


def test_concatenate_fills_missing_labels(trajectory):
    labelled_part = mlipviz.Frames.from_atoms(trajectory[:2])
    bare = mlipviz.read([bulk("Si", "diamond", a=5.43)])
    joined = mlipviz.Frames.concatenate([labelled_part, bare])
    assert joined.n_atoms.tolist() == [8, 8, 2]
    assert np.isnan(joined.forces[-2:]).all() and np.isfinite(joined.forces[:16]).all()


# -- bad input ----------------------------------------------------------------

def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ReadError, match="no such file") as err:
        mlipviz.read(tmp_path / "nope.xyz")
    assert "nope.xyz" in str(err.value)
    (tmp_path / "empty.extxyz").write_text("")
    with pytest.raises(EmptyInputError, match="empty.extxyz"):
        mlipviz.read(tmp_path / "empty.extxyz")
    with pytest.raises(EmptyInputError):
        mlipviz.read([])


def test_unreadable_file(tmp_path):
    bad = tmp_path / "bad.extxyz"
    bad.write_text("3\nnot a header\nSi 0 0\n")
    with pytest.raises(ReadError, match="bad.extxyz"):
        mlipviz.read(bad)
    with pytest.raises(ReadError, match="dict"):
        mlipviz.read({"not": "a structure"})


def test_nan_coordinates_named(tmp_path, trajectory):
    images = [a.copy() for a in trajectory]
    images[2].positions[5, 1] = np.nan
    path = tmp_path / "nan.extxyz"
    write(path, images)
    with pytest.raises(InvalidStructureError) as err:
        mlipviz.read(path)
    assert (err.value.frame, err.value.atom) == (2, 5)
    assert "nan.extxyz" in str(err.value) and "frame 2" in str(err.value) and "atom 5" in str(err.value)


def test_overlapping_atoms_named(trajectory):
    images = [a.copy() for a in trajectory]
    images[1].positions[3] = images[1].positions[6] + [0.05, 0.0, 0.0]
    with pytest.raises(InvalidStructureError, match="overlap") as err:
        mlipviz.read(images)
    assert err.value.frame == 1 and err.value.atom in (3, 6)
    # the same across a periodic boundary
    si = bulk("Si", "diamond", a=5.43, cubic=True)
    si.positions[1] = si.positions[0] + si.cell[0] - [0.1, 0, 0]
    with pytest.raises(InvalidStructureError, match="overlap"):
        mlipviz.read(si)
    assert len(mlipviz.read(images, min_distance=0.0)) == 5


def test_label_shape_mismatch_named(trajectory):
    images = [a.copy() for a in trajectory]
    images[3].calc = SinglePointCalculator(images[3], energy=1.0, forces=np.zeros((5, 3)))
    with pytest.raises(LabelShapeError, match="forces") as err:
        mlipviz.read(images)
    assert err.value.frame == 3
    frames = mlipviz.Frames.from_atoms(trajectory)
    with pytest.raises(LabelShapeError, match="energy"):
        frames.with_labels(energy=np.zeros(4))


def test_errors_share_a_base_class():
    assert issubclass(ReadError, MlipvizError) and issubclass(LabelShapeError, ValueError)


@pytest.mark.parametrize("name", ["OUTCAR_example_1", "vasprun_pstress.xml"])
def test_vasp_outputs_with_labels(name):
    """Real VASP outputs shipped in ASE's test data; labels must equal what ASE reads."""
    from pathlib import Path

    import ase
    from ase.io import read as ase_read

    path = Path(ase.__file__).parent / "test" / "testdata" / "vasp" / name
    if not path.exists():
        pytest.skip(f"ASE test data {name} not installed")
    frames = mlipviz.read(path)
    atoms = ase_read(path, index=-1)
    assert frames.has_labels["energy"] and frames.has_labels["forces"]
    np.testing.assert_allclose(frames.energy[-1], atoms.get_potential_energy())
    np.testing.assert_allclose(frames.forces[frames.atoms_of(-1)], atoms.get_forces())
    np.testing.assert_allclose(frames.stress[-1], atoms.get_stress(voigt=False))
