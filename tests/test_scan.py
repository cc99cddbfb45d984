"""PES scans and MD stability with real models (CHGNet, M3GNet) and real ASE calculators."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

import mlipviz
from mlipviz import examples, scan
from mlipviz.errors import ArgumentTypeError, InputError, MissingLabelsError, OutOfRangeError, UnknownNameError


class Harmonic(Calculator):
    """E = ½ (x - x0)ᵀ K (x - x0): a test potential whose Hessian is exactly K."""

    implemented_properties = ["energy", "forces"]  # noqa: RUF012 - ASE's attribute, a list there

    def __init__(self, k_matrix, x0, **kwargs):
        super().__init__(**kwargs)
        self.k_matrix, self.x0 = np.asarray(k_matrix), np.asarray(x0).ravel()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        dx = self.atoms.positions.ravel() - self.x0
        self.results = {"energy": 0.5 * dx @ self.k_matrix @ dx,
                        "forces": -(self.k_matrix @ dx).reshape(-1, 3)}


@pytest.fixture(scope="module")
def chgnet():
    return mlipviz.load_model("chgnet", device="cpu")


def test_eos_fit_agrees_with_ase(chgnet):
    """The table is ase.eos's Birch-Murnaghan fit (B0 from eV/Å³ to GPa, B0' from its
    parameters), and pymatgen's independent fit of the same points agrees with it."""
    from ase.eos import EquationOfState, birchmurnaghan
    from ase.units import GPa
    from pymatgen.analysis.eos import BirchMurnaghan

    result = scan.strain(bulk("Cu", "fcc", a=3.6), np.linspace(-0.05, 0.05, 9), models=[chgnet], reference=EMT())
    fits = scan.birch_murnaghan(result)
    assert list(fits.columns) == ["V0", "E0", "B0_GPa", "B0_prime"] and list(fits.index) == ["chgnet", "reference"]
    for method in ("chgnet", "reference"):
        energies = result.energy(method, aligned=False)  # one atom per cell: per atom already
        ase_fit = EquationOfState(result.coordinate, energies, eos="birchmurnaghan")
        v0, e0, b0 = ase_fit.fit(warn=False)
        assert fits.loc[method, "V0"] == pytest.approx(v0, rel=1e-9)
        assert fits.loc[method, "E0"] == pytest.approx(e0, rel=1e-9)
        assert fits.loc[method, "B0_GPa"] == pytest.approx(b0 / GPa, rel=1e-9)
        assert fits.loc[method, "B0_prime"] == pytest.approx(ase_fit.eos_parameters[2], rel=1e-9)
        pmg = BirchMurnaghan(result.coordinate, energies)
        pmg.fit()
        assert fits.loc[method, "V0"] == pytest.approx(pmg.v0, rel=1e-4)
        assert fits.loc[method, "B0_GPa"] == pytest.approx(pmg.b0_GPa, rel=1e-3)
        assert fits.loc[method, "B0_prime"] == pytest.approx(pmg.b1, rel=1e-2)
    row = fits.loc["chgnet"]
    np.testing.assert_allclose(scan.birch_murnaghan_energy(result.coordinate, row.E0, row.B0_GPa * GPa,
                                                           row.B0_prime, row.V0),
                               birchmurnaghan(result.coordinate, row.E0, row.B0_GPa * GPa, row.B0_prime, row.V0))
    # the force along an EOS scan comes from the stress: -dE/dv, v the volume per atom
    fine = scan.strain(bulk("Cu", "fcc", a=3.6), np.linspace(-0.03, 0.03, 61), models=[EMT()], reference=EMT())
    slope = np.gradient(fine.energy("reference"), fine.coordinate)
    np.testing.assert_allclose(fine.force_along("reference")[3:-3], -slope[3:-3], atol=2e-3)


def test_strain_takes_linear_strains_as_ase_does():
    """strains= are linear strains ε (cell x (1 + ε)), as ase, pymatgen and matcalc mean them;
    scale= takes the factors 1 + ε; a scale factor passed as a strain is refused by name."""
    from mlipviz.errors import InputError

    cu = bulk("Cu", "fcc", a=3.6)
    eps = np.array([-0.04, 0.0, 0.04])
    result = scan.strain(cu, eps, models=[EMT()], reference=EMT())
    np.testing.assert_allclose(result.coordinate, cu.get_volume() * (1 + eps) ** 3, rtol=1e-12)
    assert [info["linear_strain"] for info in result.frames.info] == pytest.approx(eps.tolist())
    same = scan.strain(cu, scale=1 + eps, models=[EMT()], reference=EMT())
    np.testing.assert_allclose(same.energy("reference"), result.energy("reference"), rtol=0, atol=1e-12)
    for bad, match in [(dict(strains=np.linspace(0.96, 1.04, 3)), r"strains\[0\] = 0.96 .*scale="),
                       (dict(strains=[0.0, np.nan]), r"strains\[1\] is nan"),
                       (dict(strains=[]), "non-empty"), (dict(strains="big"), "must be numbers"),
                       (dict(scale=[0.3, 1.0]), r"scale\[0\] = 0.3 is a linear strain of -70%"),
                       (dict(strains=[0.0], scale=[1.0]), "not both"), (dict(), "not neither")]:
        with pytest.raises(InputError, match=match):
            scan.strain(cu, models=[EMT()], reference=EMT(), **bad)
    with pytest.raises(InputError, match="models: give"):
        scan.strain(cu, eps)


def test_hessian_of_a_harmonic_potential_gives_its_frequencies():
    """Linear symmetric triatomic with springs k: ω_s = sqrt(k/m), ω_a = sqrt(k (1/m + 2/M))."""
    from ase import units

    k = 10.0  # eV/Å², springs along z between neighbours
    molecule = Atoms("OCO", positions=[[0, 0, -1.16], [0, 0, 0], [0, 0, 1.16]])
    m, big_m = molecule.get_masses()[0], molecule.get_masses()[1]
    k_matrix = np.zeros((9, 9))
    for i, j in ((0, 1), (1, 2)):
        a, b = 3 * i + 2, 3 * j + 2
        k_matrix[a, a] += k
        k_matrix[b, b] += k
        k_matrix[a, b] -= k
        k_matrix[b, a] -= k
    harmonic = Harmonic(k_matrix, molecule.positions)
    result = scan.phonon_mode(molecule, models=[Harmonic(k_matrix, molecule.positions)], reference=harmonic,
                              modes=[7, 8], amplitudes=[-0.02, 0.0, 0.02])
    to_thz = np.sqrt(units._e / (1e-20 * units._amu)) / (2 * np.pi) / 1e12
    expected = sorted([np.sqrt(k / m) * to_thz, np.sqrt(k * (1 / m + 2 / big_m)) * to_thz])
    np.testing.assert_allclose(result.frequencies["reference"][-2:], expected, rtol=1e-6)
    np.testing.assert_allclose(result.hessians["reference"], k_matrix, atol=1e-8)
    np.testing.assert_allclose(result.table.filter(like="curvature_ratio").to_numpy(), 1.0, rtol=1e-9)


def test_a_model_against_itself_has_curvature_ratio_one(chgnet):
    si = bulk("Si", "diamond", a=5.43)
    result = scan.displacement(si, 0, [1, 1, 0], np.linspace(-0.15, 0.15, 7), models=[chgnet], reference=chgnet)
    assert result.curvature().loc["chgnet", "ratio_to_reference"] == pytest.approx(1.0, abs=1e-12)
    modes = scan.phonon_mode(si, models=[chgnet], reference=chgnet, amplitudes=[-0.03, 0.0, 0.03])
    np.testing.assert_allclose(modes.table.filter(like="curvature_ratio").to_numpy(), 1.0, atol=1e-9)
    assert len(modes.table) == 3 and set(modes.scans) == set(modes.table.index)


def test_force_along_is_minus_the_energy_slope():
    distances = np.linspace(2.0, 3.0, 101)
    result = scan.diatomic("Cu", "Cu", distances, models=[EMT()], reference=EMT(), align="none")
    energy = result.energy("reference")
    slope = np.gradient(energy, distances)
    np.testing.assert_allclose(result.force_along("reference")[5:-5], -slope[5:-5], atol=2e-3)


def test_alignments():
    distances = np.linspace(1.9, 6.0, 12)
    last = scan.diatomic("Cu", "Cu", distances, models=[EMT()], reference=EMT(), align="last")
    assert all(last.energy(m)[-1] == 0 for m in last.methods)
    lowest = scan.diatomic("Cu", "Cu", distances, models=[EMT()], reference=EMT(), align="minimum")
    assert all(np.min(lowest.energy(m)) == 0 for m in lowest.methods)
    atoms = scan.diatomic("Cu", "Cu", distances, models=[EMT()], reference=EMT(), align="atoms")
    single = Atoms("Cu", positions=[[0, 0, 0]])
    single.calc = EMT()
    assert atoms.offsets["reference"] == pytest.approx(2 * single.get_potential_energy())
    assert atoms.table["energy_aligned"].iloc[0] == pytest.approx(
        atoms.energy("reference", aligned=False)[0] - 2 * single.get_potential_energy())
    with pytest.raises(ValueError, match="align must be"):
        scan.diatomic("Cu", "Cu", distances, models=[EMT()], reference=EMT(), align="zero")
    with pytest.raises(InputError, match="align must be one of .*'atoms'; got 'zero'"):
        scan.strain(bulk("Cu", "fcc", a=3.6), [0.0], models=[EMT()], align="zero")


def test_scans_on_bundled_data_with_chgnet_and_m3gnet(chgnet):
    if "si-vacancy-migration" not in examples.list():
        pytest.skip("si-vacancy-migration not generated")
    frames = examples.load("si-vacancy-migration")
    neb = frames[[i for i, d in enumerate(frames.info) if d["kind"] == "neb"]]
    result = scan.path(neb, models=[chgnet, "m3gnet"])  # reference: the GPAW PBE labels
    table = scan.barriers(result)
    assert set(table.index) == {"chgnet", "m3gnet", "reference"}
    assert table.loc["reference", "barrier"] == pytest.approx(neb.energy.max() - neb.energy[0])
    assert table.loc["reference", "barrier_error"] == 0 and np.isfinite(table["barrier"]).all()
    assert np.all(np.diff(result.coordinate) > 0)  # cumulative distance along the path


def test_scan_reference_from_labelled_frames(chgnet):
    if "diatomics" not in examples.list():
        pytest.skip("diatomics not generated")
    labelled = examples.load("diatomics", level="pbe")
    o2 = labelled[[i for i, d in enumerate(labelled.info) if d["molecule"] == "O2"]]
    distances = [d["distance"] for d in o2.info]
    result = scan.diatomic("O", "O", distances, models=[chgnet], reference=o2, align="last")
    np.testing.assert_allclose(result.energy("reference", aligned=False), o2.energy)
    with pytest.raises(InputError, match="geometry"):
        scan.diatomic("O", "O", [1.234], models=[chgnet], reference=o2)


def test_curvature_needs_a_bracketed_minimum():
    result = scan.diatomic("Cu", "Cu", np.linspace(3.0, 5.0, 6), models=[EMT()], reference=EMT())
    with pytest.raises(InputError, match="end point"):
        result.curvature()


def test_md_stability_reports_failures(chgnet):
    si = bulk("Si", "diamond", a=5.43, cubic=True)
    stable = mlipviz.md_stability([chgnet], si, temperature=600, steps=20, sample_every=5)
    row = stable.table.loc["chgnet"]
    assert row["stable"] and row["steps_done"] == 20 and row["failure"] is None
    assert len(stable.trajectories["chgnet"]) == 5  # steps 0, 5, 10, 15, 20
    # Si neighbours sit 2.35 Å apart: a 2.5 Å threshold must stop the run at its first step
    strict = mlipviz.md_stability([chgnet], si, temperature=600, steps=20, min_distance=2.5)
    row = strict.table.loc["chgnet"]
    assert not row["stable"] and row["failure_step"] == 0 and "apart" in row["failure"]
    assert row["min_distance_seen"] == pytest.approx(5.43 * np.sqrt(3) / 4, abs=0.01)


def test_scan_view_slider_and_clicks_move_the_viewer():
    pytest.importorskip("nglview")
    result = scan.diatomic("Cu", "Cu", np.linspace(1.9, 5.0, 9), models=[EMT()], reference=EMT())
    view = result.show()
    view.viewer.slider.value = 3
    assert view.viewer.frame == 3 and view.figure.layout.shapes[0].x0 == pytest.approx(result.coordinate[3])
    view.figure._js2py_pointsCallback = {"event_type": "plotly_click", "points": {
        "xs": [0.0], "ys": [0.0], "point_indexes": [6], "trace_indexes": [0]}}
    assert view.viewer.frame == 6
    np.testing.assert_allclose(view.viewer.coordinates(6)[1, 2], result.coordinate[6])


def test_labelled_frames_as_reference_are_matched_by_geometry():
    distances = np.linspace(1.9, 4.0, 8)
    dimers = []
    for r in distances[::-1]:  # another order than the scan's: matched by geometry, not position
        dimer = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, r]])
        dimer.calc = EMT()
        dimer.get_forces()
        dimers.append(dimer)
    labelled = mlipviz.read(dimers)
    result = scan.diatomic("Cu", "Cu", distances, models=[EMT()], reference=labelled, align="none")
    np.testing.assert_allclose(result.energy("reference"), labelled.energy[::-1])
    np.testing.assert_allclose(result.energy("reference"), result.energy(result.comparison.models[0]))


def test_a_path_of_one_image_and_a_missing_phonon_mode_are_named():
    from ase.build import molecule

    from mlipviz.errors import InputError

    water = molecule("H2O")
    with pytest.raises(InputError, match="a path needs at least two images, got 1"):
        scan.path([water], models=[EMT()], reference=EMT())
    with pytest.raises(InputError, match=r"mode 9 does not exist; this structure has 9 modes \(0 to 8\)"):
        scan.phonon_mode(water, models=[EMT()], reference=EMT(), modes=[8, 9])
    with pytest.raises(InputError, match="modes must be integer mode indices"):
        scan.phonon_mode(water, models=[EMT()], reference=EMT(), modes=[1.5])


# -- scans of models without a reference ------------------------------------------------

def test_a_strain_scan_of_models_only_has_their_curves_and_fits(chgnet):
    """No reference: every model's curve, aligned, and its Birch-Murnaghan fit and curvature,
    the same as in a scan with a reference; what needs a reference says so."""
    cu = bulk("Cu", "fcc", a=3.6)
    strains = np.linspace(-0.05, 0.05, 9)
    alone = scan.strain(cu, strains, models=[chgnet, EMT()])
    against = scan.strain(cu, strains, models=[chgnet, EMT()], reference=EMT())
    assert not alone.has_reference and alone.methods == ["chgnet", "emt"]
    assert list(alone.table["method"].unique()) == ["chgnet", "emt"]
    for model in alone.methods:
        np.testing.assert_allclose(alone.energy(model), against.energy(model), rtol=0, atol=1e-9)
        assert np.min(alone.energy(model)) == 0  # align="minimum" per curve
    pd.testing.assert_frame_equal(scan.birch_murnaghan(alone), scan.birch_murnaghan(against).loc[["chgnet", "emt"]])
    curvature = alone.curvature()
    assert list(curvature.columns) == ["curvature", "at"]  # no reference, no ratio
    for model in alone.methods:  # each at its own lowest point
        assert curvature.loc[model, "at"] == alone.coordinate[np.argmin(alone.energy(model))]
    with pytest.raises(MissingLabelsError, match="no reference curve"):
        alone.energy("reference")
    with pytest.raises(UnknownNameError, match="no method 'mace'"):
        alone.energy("mace")
    with pytest.raises(MissingLabelsError, match=r"softening\(\) needs a reference"):
        alone.comparison.softening()


def test_dimer_path_and_phonon_scans_of_models_only():
    from ase.calculators.morse import MorsePotential

    morse = MorsePotential(epsilon=0.3429, r0=2.866, rho0=1.3588 * 2.866, rcut1=4.5, rcut2=5.5)
    distances = np.linspace(1.9, 5.0, 10)
    dimer = scan.diatomic("Cu", "Cu", distances, models=[EMT(), morse], align="atoms")
    single = Atoms("Cu", positions=[[0, 0, 0]])
    single.calc = EMT()
    assert dimer.methods == ["emt", "morsepotential"]  # two models, no reference curve
    assert dimer.offsets["emt"] == pytest.approx(2 * single.get_potential_energy())

    images = []
    for r in distances:
        image = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, r]])
        image.calc = EMT()
        image.get_forces()
        images.append(image)
    bare = [Atoms("Cu2", positions=a.positions) for a in images]
    table = scan.barriers(scan.path(bare, models=[EMT()]))  # no labels: the model alone
    assert list(table.columns) == ["barrier", "highest_point"] and list(table.index) == ["emt"]
    labelled = scan.path(images, models=[EMT()])  # the images' own labels as reference
    assert labelled.methods == ["emt", "reference"] and "barrier_error" in scan.barriers(labelled)
    assert not scan.path(images, models=[EMT()], reference=False).has_reference

    cu = bulk("Cu", "fcc", a=3.6) * (1, 1, 2)
    alone = scan.phonon_mode(cu, models=[EMT()])
    against = scan.phonon_mode(cu, models=[EMT()], reference=EMT(), amplitudes=[0.0, 0.01])
    np.testing.assert_allclose(alone.frequencies["emt"], against.frequencies["emt"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(alone.table["frequency_THz[emt]"], alone.frequencies["emt"])
    assert alone.modes is None and alone.scans == {} and "reference" not in alone.hessians
    with pytest.raises(MissingLabelsError, match="modes: the modes to scan are the reference's"):
        scan.phonon_mode(cu, models=[EMT()], modes=[3])


def test_scan_view_and_explorer_tab_draw_models_only():
    pytest.importorskip("nglview")
    from mlipviz.widgets.explorer import Run
    from mlipviz.widgets.scan_view import ScanTab, ScanView

    result = scan.diatomic("Cu", "Cu", np.linspace(1.9, 5.0, 9), models=[EMT()])
    with pytest.raises(ArgumentTypeError, match="scan must be a Scan"):
        ScanView(result.comparison)
    view = result.show()
    assert {trace.name for trace in view.figure.data} == {"emt"}  # energy and force, no reference curve
    assert "models only" in view.figure.layout.title.text
    assert "each model's minimum" in view.summary.value and "end point" not in view.summary.value
    frames = mlipviz.read([bulk("Cu", "fcc", a=3.6)])
    cmp = mlipviz.compare(EMT(), frames, reference=EMT(), progress=False)
    tab = ScanTab(Run(cmp, [mlipviz.load_model(EMT())], None, "cpu"))  # reference: the file's labels
    tab.points.value = 5
    tab.start().join()
    assert tab.status.value == "done" and isinstance(tab.output.children[0], ScanView)
    assert tab.output.children[0].scan.methods == ["emt"]


# -- argument checks ----------------------------------------------------------------------

def _cu2():
    return Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.5]])


@pytest.mark.parametrize("call, error, match", [
    (lambda: scan.diatomic("Xx", "Cu", [2.0], models=[EMT()]), UnknownNameError, "element_a: 'Xx' is not"),
    (lambda: scan.diatomic("Cu", "cu", [2.0], models=[EMT()]), UnknownNameError,
     "element_b: 'cu' is not a chemical element symbol \\(did you mean 'Cu'\\?\\)"),
    (lambda: scan.diatomic("Cu", 2.5, [2.0], models=[EMT()]), ArgumentTypeError, "element_b must be a chemical"),
    (lambda: scan.diatomic("Cu", "Cu", [], models=[EMT()]), InputError, "distances must be a non-empty"),
    (lambda: scan.diatomic("Cu", "Cu", [2.0, np.inf], models=[EMT()]), InputError, r"distances\[1\] is inf"),
    (lambda: scan.diatomic("Cu", "Cu", [2.0, -1.0], models=[EMT()]), InputError,
     r"distances\[1\] = -1 Å is not positive"),
    (lambda: scan.eos(bulk("Cu"), [11.0, 0.0], models=[EMT()]), InputError,
     r"volumes\[1\] = 0 Å³/atom is not positive"),
    (lambda: scan.eos(bulk("Cu"), [11.0, np.nan], models=[EMT()]), InputError, r"volumes\[1\] is nan"),
    (lambda: scan.eos(bulk("Cu", cubic=True), [46.0], models=[EMT()]), InputError,
     r"volumes\[0\] = 46 Å³/atom is 3.9\d times .*volumes are per atom"),
    (lambda: scan.displacement(_cu2(), 2.0, [0, 0, 1], [0.1], models=[EMT()]), ArgumentTypeError,
     r"atom_index must be a whole-number atom index, got 2.0"),
    (lambda: scan.displacement(_cu2(), np.array([1.0]), [0, 0, 1], [0.1], models=[EMT()]), ArgumentTypeError,
     "atom_index must be a whole-number"),
    (lambda: scan.displacement(_cu2(), 2, [0, 0, 1], [0.1], models=[EMT()]), OutOfRangeError,
     r"atom_index: atom 2 does not exist \(2 atoms"),
    (lambda: scan.displacement(_cu2(), 0, [0, 0, 0], [0.1], models=[EMT()]), InputError,
     r"direction must be a non-zero 3-vector, got \[0, 0, 0\]"),
    (lambda: scan.displacement(_cu2(), 0, [0, 1], [0.1], models=[EMT()]), InputError,
     r"direction must have shape \(3\)"),
    (lambda: scan.displacement(_cu2(), 0, [0, np.nan, 1], [0.1], models=[EMT()]), InputError,
     r"direction\[1\] is nan"),
    (lambda: scan.displacement(_cu2(), 0, [0, 0, 1], [], models=[EMT()]), InputError, "amplitudes must be a non-empty"),
    (lambda: scan.displacement(_cu2(), 0, [0, 0, 1], [0.0, np.nan], models=[EMT()]), InputError,
     r"amplitudes\[1\] is nan"),
    (lambda: scan.displacement("Cu2", 0, [0, 0, 1], [0.0], models=[EMT()]), ArgumentTypeError,
     "atoms must be an ASE Atoms or a pymatgen Structure/Molecule, got str"),
    (lambda: scan.phonon_mode(_cu2(), models=[EMT()], reference=EMT(), delta=0.0), InputError,
     "delta must be > 0, got 0.0"),
    (lambda: scan.phonon_mode(_cu2(), models=[EMT()], reference=EMT(), delta=-0.01), InputError,
     "delta must be > 0, got -0.01"),
    (lambda: scan.phonon_mode(_cu2(), models=[EMT()], reference=EMT(), amplitudes=[np.nan]), InputError,
     r"amplitudes\[0\] is nan"),
    (lambda: scan.path([_cu2(), _cu2()], models=[EMT()], align="lowest"), UnknownNameError,
     "align must be one of .*; got 'lowest'"),
    (lambda: scan.diatomic(29, "Cu", [2.0], models=[EMT()]), ArgumentTypeError,
     "element_a must be a chemical symbol such as 'Cu', got 29"),
    (lambda: scan.path([], models=[EMT()]), InputError, "images: no structures given"),
    (lambda: scan.barriers(42), ArgumentTypeError, "scan must be a Scan"),
    (lambda: scan.birch_murnaghan("eos"), ArgumentTypeError, "scan must be a Scan"),
])
def test_bad_scan_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_numpy_integer_atom_index_and_pymatgen_structures_are_taken():
    from pymatgen.io.ase import AseAtomsAdaptor

    moved = scan.displacement(_cu2(), np.int64(1), [0, 0, 2], [-0.1, 0.0, 0.1], models=[EMT()], align="none")
    last = scan.displacement(_cu2(), -1, [0, 0, 1], [-0.1, 0.0, 0.1], models=[EMT()], align="none")
    np.testing.assert_allclose(moved.energy("emt"), last.energy("emt"))
    assert moved.details["atom"] == 1 and last.details["atom"] == 1
    np.testing.assert_allclose(moved.frames.positions[1::2, 2], [2.4, 2.5, 2.6])
    cu = bulk("Cu", "fcc", a=3.6)
    structure = AseAtomsAdaptor.get_structure(cu)
    np.testing.assert_allclose(scan.strain(structure, [-0.01, 0.01], models=[EMT()]).energy("emt"),
                               scan.strain(cu, [-0.01, 0.01], models=[EMT()]).energy("emt"), atol=1e-10)


def test_each_entry_point_loads_a_named_model_once(monkeypatch):
    """A scan loads each named model once, whatever it runs inside (the phonon Hessian and every
    mode's scan; the scan points and the isolated atoms of align='atoms'), and so does
    md_stability (before any dynamics)."""
    import mlipviz.models as models

    loads = []
    real = models._load
    monkeypatch.setattr(models, "_load", lambda spec, *a, **kw: (loads.append(spec), real(spec, *a, **kw))[1])
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    modes = scan.phonon_mode(cu, "chgnet", reference=EMT(), modes=[3, 4], amplitudes=[-0.05, 0.0, 0.05],
                             device="cpu")
    assert len(modes.scans) == 2 and loads.count("chgnet") == 1
    loads.clear()
    strained = scan.strain(cu, [-0.01, 0.0, 0.01], ["chgnet"], reference=EMT(), align="atoms", device="cpu")
    assert strained.alignment == "atoms" and loads.count("chgnet") == 1
    loads.clear()
    mlipviz.md_stability(["chgnet"], cu, steps=2, device="cpu")
    assert loads.count("chgnet") == 1
