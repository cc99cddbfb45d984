"""Widget state without a browser: colours, frames, arrows, linked selection, the Explorer."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nglview")
pytest.importorskip("plotly")

import mlipviz
from mlipviz.widgets import Explorer, view


@pytest.fixture(scope="module")
def cu_trajectory():
    """Six rattled 32-atom Cu cells labelled with ASE's EMT calculator (same cell in every frame)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    base = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    images = []
    rng = np.random.default_rng(3)
    for _ in range(6):
        atoms = base.copy()
        atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_forces()
        images.append(atoms)
    return mlipviz.read(images)


@pytest.fixture(scope="module")
def comparison(cu_trajectory):
    return mlipviz.compare("chgnet", cu_trajectory, device="cpu", progress=False)


def _expected_hex(value, vmin, vmax, cmap="viridis"):
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    from mlipviz.widgets.colors import LEVELS

    level = int(np.clip(round((value - vmin) / (vmax - vmin) * (LEVELS - 1)), 0, LEVELS - 1))
    return to_hex(colormaps[cmap](level / (LEVELS - 1)))


def _sent_colors(viewer) -> list[int]:
    """The per-atom colours of the viewer's colour scheme as the browser receives them."""
    import json
    import re

    return json.loads(re.search(r"store\[key\] = (\[[^\]]*\]);", viewer.colors_code()).group(1))


def test_colours_follow_the_array_with_a_fixed_range(cu_trajectory):
    values = np.linspace(-1.0, 2.0, cu_trajectory.total_atoms)
    values[5] = np.nan
    viewer = view(cu_trajectory, color_by=values, label="test value")
    colors = viewer.atom_colors
    assert (colors.vmin, colors.vmax) == (-1.0, 2.0)  # range over all frames, not this one
    first = values[:32]
    for atom in (0, 7, 31):
        assert colors.hex[atom] == _expected_hex(first[atom], -1.0, 2.0)
    assert colors.hex[5] == "#bdbdbd"  # NaN is grey
    # the browser gets one colour per atom, as the NGL scheme's 0xRRGGBB
    sent = _sent_colors(viewer)
    assert len(sent) == 32 and sent == [int(colour[1:], 16) for colour in colors.hex]
    assert "test value" in viewer.legend.value and ">-1<" in viewer.legend.value and ">2<" in viewer.legend.value


def test_element_colours_are_categorical(frames):
    from ase.data.colors import jmol_colors
    from matplotlib.colors import to_hex

    viewer = view(frames)  # mixed sizes: structures are swapped per frame
    viewer.frame = 2  # NaCl
    rows = frames.atoms_of(2)
    expected = [to_hex(jmol_colors[z]) for z in frames.numbers[rows]]
    assert viewer.atom_colors.hex == expected
    assert "Na" in viewer.legend.value and "Cl" in viewer.legend.value


def test_frame_change_moves_trajectory_and_recolours(cu_trajectory):
    values = np.arange(cu_trajectory.total_atoms, dtype=float)
    viewer = view(cu_trajectory, color_by=values)
    before = viewer.atom_colors.hex
    sent = []
    viewer._ngl_call = lambda method, target, args=None, **kwargs: sent.append((method, args))
    viewer.frame = 4
    # recoloured in place: the new colours, no representation removed or rebuilt
    assert [method for method, _ in sent] == ["executeCode"] and "update({color: true})" in sent[0][1][0]
    assert viewer.ngl.frame == 4 and viewer.slider.value == 4
    assert viewer.atom_colors.hex != before
    assert viewer.atom_colors.hex[0] == _expected_hex(values[4 * 32], values.min(), values.max())
    trajectory = viewer.ngl._trajlist[0]
    np.testing.assert_allclose(trajectory.get_coordinates(4), cu_trajectory.positions[4 * 32:5 * 32], atol=1e-12)
    viewer.slider.value = 2  # the slider drives the frame too
    assert viewer.frame == 2 and viewer.ngl.frame == 2
    with pytest.raises(Exception, match="out of range"):
        viewer.frame = 6


def test_ragged_frames_swap_structures(frames):
    viewer = view(frames)
    for i in (1, 3, 7):
        viewer.frame = i
        pdb = viewer.structure_string(i)
        assert pdb.count("\nATOM") + pdb.startswith("ATOM") == frames.n_atoms[i]
        assert len(viewer.ngl._ngl_component_ids) == 1


def test_ragged_swap_before_any_browser_view_makes_a_new_widget(frames):
    """Voila runs every cell before a browser view exists: a swap then starts a new nglview
    widget on the new frame (swap messages replayed after the first frame's archive left the
    view half drawn) and later swaps, once a view is up, go as messages."""
    viewer = view(frames)
    first = viewer.ngl
    viewer.frame = 3
    assert viewer.ngl is not first and viewer.children[0] is viewer.ngl
    load = viewer.ngl._ngl_msg_archive[0]  # what every browser view of it replays first
    assert load["methodName"] == "loadFile" and load["args"][0]["data"] == viewer.structure_string(3)
    assert viewer.ngl.layout.height == first.layout.height and viewer.ngl.camera == first.camera
    viewer.ngl.loaded = True  # as when a browser view has rendered it
    shown = viewer.ngl
    viewer.frame = 5
    assert viewer.ngl is shown and len(viewer.ngl._ngl_component_ids) == 1


def test_side_by_side_wraps_and_keeps_widths():
    import ipywidgets as widgets

    from mlipviz.widgets.figure import Figure
    from mlipviz.widgets.layout import side_by_side

    free, fixed, plot = widgets.HTML(), widgets.HTML(layout={"width": "200px"}), Figure()
    row = side_by_side(free, fixed, plot)
    assert row.layout.flex_flow == "row wrap"
    assert [c.layout.flex for c in row.children] == ["1 1 0%", "0 0 auto", "0 0 auto"]
    assert row.children[2].children == (plot,)  # a plot's .layout is plotly's: boxed


def test_triclinic_cells_are_drawn_in_the_pdb_orientation(frames):
    from ase.geometry import cell_to_cellpar, cellpar_to_cell

    viewer = view(frames)
    i = 0  # primitive (triclinic) Si cell
    drawn = viewer.coordinates(i)
    standard = cellpar_to_cell(cell_to_cellpar(frames.cells[i]))
    original = frames.positions[frames.atoms_of(i)]
    np.testing.assert_allclose(np.linalg.solve(standard.T, drawn.T).T,
                               np.linalg.solve(frames.cells[i].T, original.T).T, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(drawn[0] - drawn[1]), np.linalg.norm(original[0] - original[1]))


def test_arrows_and_picking(cu_trajectory):
    viewer = view(cu_trajectory, arrows="forces")
    assert "forces" in viewer.legend.value and len(viewer._extra_components) == 1
    viewer.set_arrows(None)
    assert viewer._extra_components == []
    seen = []
    viewer.on_pick(seen.append)
    viewer.frame = 3
    viewer.ngl.picked = {"atom1": {"index": 9, "name": "[MOL]1:A.CU"}, "component": 0}
    assert seen == [{"frame": 3, "atom": 9, "element": "Cu"}]
    assert "frame 3, atom 9 (Cu)" in viewer.pick_report.value
    with pytest.raises(ValueError, match="one per atom"):
        viewer.set_colors(np.ones(5))


def _click(figure, trace_index: int, point_index: int):
    """What the browser sends when a point is clicked."""
    figure._js2py_pointsCallback = {"event_type": "plotly_click", "points": {
        "xs": [0.0], "ys": [0.0], "point_indexes": [point_index], "trace_indexes": [trace_index]}}


def test_error_map_links_plots_and_viewer(comparison):
    emap = comparison.show()
    assert emap.viewer.frame == 0
    points = emap._points_trace
    trace_index = list(emap.parity.data).index(points)
    k = int(np.flatnonzero(np.asarray(points.customdata)[:, 0].astype(int) == 4)[5])
    frame, atom = int(points.customdata[k][0]), int(points.customdata[k][1])
    _click(emap.parity, trace_index, k)
    assert emap.viewer.frame == frame == 4
    assert emap.viewer.picked == {"frame": 4, "atom": atom, "element": "Cu"}
    row = comparison.per_atom.query("frame == 4 and atom == @atom").iloc[0]
    marker = emap.parity.data[-1]
    np.testing.assert_allclose(marker.x, row[["fx_ref", "fy_ref", "fz_ref"]].to_numpy(float))
    np.testing.assert_allclose(marker.y, row[["fx_pred", "fy_pred", "fz_pred"]].to_numpy(float))
    assert emap.histogram.layout.shapes[0].x0 == pytest.approx(row["force_error"])
    _click(emap.curve, 0, 2)  # per-frame curve
    assert emap.viewer.frame == 2 and emap.curve.layout.shapes[0].x0 == 2
    # picking in 3D marks the atom's components in the parity plot
    emap.viewer.ngl.picked = {"atom1": {"index": 11}, "component": 0}
    row = comparison.per_atom.query("frame == 2 and atom == 11").iloc[0]
    np.testing.assert_allclose(emap.parity.data[-1].x, row[["fx_ref", "fy_ref", "fz_ref"]].to_numpy(float))


def test_plots_share_one_copy_of_plotly_js(comparison):
    """Plotly's ~5 MB front-end bundle travels once per kernel (in the runtime widget), not
    in every figure's state: the error map's three figures carry only a short loader."""
    from plotly.basewidget import BaseFigureWidget

    from mlipviz.widgets.figure import runtime

    emap = comparison.show()
    bundle = str(BaseFigureWidget._esm)
    assert runtime().get_state()["bundle"] == bundle and len(bundle) > 1_000_000
    for figure in (emap.parity, emap.histogram, emap.curve):
        assert len(figure.get_state()["_esm"]) < 2_000
    assert runtime() is runtime()


def test_error_map_metric_and_summary(comparison):
    emap = comparison.show()
    force_error = comparison.per_atom["force_error"].to_numpy()
    assert emap.viewer.atom_colors.vmax == pytest.approx(force_error.max())
    colours = emap.viewer.atom_colors.hex
    emap.metric_select.value = "dF = |F_pred| - |F_ref| (eV/Å)"
    signed = comparison.per_atom["magnitude_error"].to_numpy()
    assert emap.viewer.atom_colors.vmin == pytest.approx(-np.abs(signed).max())
    assert emap.viewer.atom_colors.hex != colours
    slope = comparison.softening().loc["chgnet", "slope"]
    assert f"{slope:.3f}" in emap.summary.value and "Rare events" in emap.summary.value
    emap.arrow_select["difference"].value = True
    assert "difference" in emap.viewer.legend.value
    # EMT labels carry per-atom energies, CHGNet predicts them: their difference is a metric
    emap.metric_select.value = "per-atom energy error (eV)"
    site = comparison.per_atom
    np.testing.assert_allclose(site["site_energy_error"], site["site_energy_pred"] - site["site_energy_ref"])
    without = comparison.frames.with_labels(energies=None)
    plain = mlipviz.Comparison(without, comparison.predictions, mlipviz.Prediction.from_frames(without))
    with pytest.raises(ValueError, match="not available"):
        plain.show(metric="per-atom energy error (eV)")


def test_parity_plot_turns_into_density_when_large(comparison, monkeypatch):
    from mlipviz.widgets import error_map

    monkeypatch.setattr(error_map, "MAX_POINTS", 100)
    monkeypatch.setattr(error_map, "WORST_POINTS", 50)
    monkeypatch.setattr(error_map, "DENSITY_BLOCK", 37)  # counted in many blocks
    emap = comparison.show()
    assert emap.parity.data[0].type == "heatmap"
    ref = comparison.reference.forces.ravel()
    pred = comparison.predictions[emap.model].forces.ravel()
    bounds = [min(ref.min(), pred.min()), max(ref.max(), pred.max())]
    counts, _, _ = np.histogram2d(ref, pred, bins=error_map.DENSITY_BINS, range=[bounds, bounds])
    np.testing.assert_allclose(np.asarray(emap.parity.data[0].z), np.log10(counts.T + 1), rtol=0, atol=1e-12)
    worst = np.abs(np.asarray(emap._points_trace.y) - np.asarray(emap._points_trace.x))
    all_errors = np.abs(comparison.per_atom[["fx_pred", "fy_pred", "fz_pred"]].to_numpy()
                        - comparison.per_atom[["fx_ref", "fy_ref", "fz_ref"]].to_numpy()).ravel()
    assert len(worst) == 50 and worst.min() >= np.sort(all_errors)[-50] - 1e-12


def test_explorer_shows_model_reasons_runs_and_cancels(cu_trajectory, tmp_path):
    images = [cu_trajectory.to_atoms(i) for i in range(len(cu_trajectory))]
    app = Explorer(structures=images)
    table = mlipviz.available_models()
    for name, row in table.iterrows():
        assert app.model_boxes[name].disabled == (not row["available"])
    for name, reason in app.unavailable.items():
        assert reason == table.loc[name, "reason"] and reason
    app.model_boxes["chgnet"].value = True
    # cancel at the first progress report: the run stops with a readable message
    app.progress.observe(lambda change: app.cancel(), "value")
    app.run().join()
    assert app.status.value == "stopped" and "cancelled" in app.message.value
    app.progress.unobserve_all("value")
    app.run().join()  # resumes from the checkpoint and finishes
    assert app.status.value == "done", app.message.value
    assert app.tabs.titles == ("summary", "error map", "PES scan", "latent space", "attributions")
    assert app.comparison.summary().loc["chgnet", "force_mae_eV_A"] > 0
    assert app.comparison.predictions["chgnet"].embeddings.shape == (app.comparison.frames.total_atoms, 64)
    latent_tab = app.tabs.children[app.tabs.titles.index("latent space")]
    latent_tab.method.value = "pca"
    latent_tab.start().join()
    assert latent_tab.status.value == "done", latent_tab.output.children
    assert latent_tab.output.children[0].space.settings["method"] == "pca"
    assert [m.name for m in app.result.models] == ["chgnet"] and app.result.reference is None


def test_explorer_shows_errors_instead_of_dying(tmp_path):
    app = Explorer()
    app.run()
    assert "choose a file" in app.message.value
    app.source.value = "upload"
    app.upload.receive("broken.xyz", b"3\nxx\nH")  # what the browser sends; the app loads it at once
    assert app.frames is None
    assert "broken.xyz" in app.message.value and app.status.value == "not loaded"
    assert app._workdir.name not in app.message.value  # the upload's name, not the server's copy


def test_register_tab_plugs_into_the_explorer(comparison):
    import ipywidgets

    from mlipviz.widgets import register_tab, tabs

    saved = dict(tabs._TABS)
    try:
        register_tab("frames", lambda run: ipywidgets.HTML(f"{len(run.comparison.frames)} frames"))
        register_tab("broken", lambda run: 1 / 0)
        app = Explorer()
        app.result = tabs.Run(comparison, [], None, "cpu")
        app.show_results()
        titles = app.tabs.titles
        assert titles[-2:] == ("frames", "broken")
        assert app.tabs.children[-2].value == "6 frames"
        assert "ZeroDivisionError" in app.tabs.children[-1].value
    finally:
        tabs._TABS.clear()
        tabs._TABS.update(saved)


def test_explorer_scan_tab_runs_a_scan(comparison):
    from ase.calculators.emt import EMT

    from mlipviz.widgets.explorer import Run
    from mlipviz.widgets.scan_view import ScanTab, ScanView

    model = mlipviz.load_model("chgnet", device="cpu")
    tab = ScanTab(Run(comparison, [model], EMT(), "cpu"))
    tab.points.value = 5
    tab.start().join()
    assert tab.status.value == "done" and isinstance(tab.output.children[0], ScanView)
    shown = tab.output.children[0].scan
    assert shown.kind == "eos" and len(shown.coordinate) == 5 and shown.methods == ["chgnet", "reference"]
    no_reference = ScanTab(Run(comparison, [model], None, "cpu"))  # the file's labels: models only
    no_reference.points.value = 5
    no_reference.start().join()
    assert no_reference.status.value == "done" and no_reference.output.children[0].scan.methods == ["chgnet"]


def test_explorer_runs_again_on_other_structures(cu_trajectory):
    images = [cu_trajectory.to_atoms(i) for i in range(2)]
    app = Explorer(structures=images)
    app.model_boxes["chgnet"].value = True
    app.run().join()
    assert app.status.value == "done", app.message.value
    app._object = [cu_trajectory.to_atoms(i) for i in range(2, 5)]  # another structure set, same model
    app.run().join()
    assert app.status.value == "done", app.message.value
    assert len(app.comparison.frames) == 3


def test_attribution_view_links_bars_and_structure(cu_trajectory):
    """Diverging colours centred on zero, bars ranked by |attribution|, the target atom marked;
    a clicked bar and a picked atom select the same atom in both; the pickers recompute."""
    from types import SimpleNamespace

    from mlipviz.widgets.attribution_view import AttributionView

    model = mlipviz.load_model("chgnet", device="cpu")
    atoms = cu_trajectory[[0]]
    view_ = mlipviz.attribution.show(model, atoms, target="force_magnitude", atom=3, inputs="atom_mask",
                                     n_steps=8, top=10)
    assert isinstance(view_, AttributionView)
    r = view_.result
    shown = view_.viewer.atom_colors.hex
    vmax = np.abs(r.values).max()
    assert (view_.viewer.atom_colors.vmin, view_.viewer.atom_colors.vmax) == pytest.approx((-vmax, vmax))
    for i in (int(np.argmax(r.values)), int(np.argmin(r.values))):
        assert shown[i] == _expected_hex(r.values[i], -vmax, vmax, "RdBu_r")
    bars = view_.bars.data[0]
    assert list(bars.customdata[::-1]) == list(r.top(10).index)
    assert np.all(np.diff(np.abs(bars.x)) >= 0)  # largest at the top
    assert view_.viewer.highlighted == [3]
    worst_other = int(r.top(10).index[r.top(10).index != 3][0])
    view_._on_bar_click(bars, SimpleNamespace(point_inds=[list(bars.customdata).index(worst_other)]))
    assert view_.viewer.highlighted == sorted([3, worst_other])
    view_.viewer.pick(worst_other)
    assert bars.selectedpoints == (list(bars.customdata).index(worst_other),)
    view_.method.value = "feature_ablation"
    view_.recompute().join()
    assert view_.status.value == "done" and view_.result.method == "feature_ablation"
    assert view_.result.inputs == "atom_mask" and "gate" in view_.summary.value


def test_explorer_attribution_tab_explains_the_worst_force(comparison):
    """The tab starts at the frame's largest force error and attributes exactly that error."""
    from mlipviz.widgets.attribution_view import AttributionTab, AttributionView
    from mlipviz.widgets.explorer import Run, result_tabs

    assert "attributions" in result_tabs()
    model = mlipviz.load_model("chgnet", device="cpu")
    tab = AttributionTab(Run(comparison, [model], None, "cpu"))
    tab.frame.value = 2
    table = comparison.per_atom[comparison.per_atom.frame == 2]
    worst = table.loc[table.force_error.idxmax()]
    assert tab.atom.value == worst.atom
    tab.start().join()
    assert tab.status.value == "done", tab.output.children[0].value
    view_ = tab.output.children[0]
    assert isinstance(view_, AttributionView)
    assert view_.result.target == "force_error" and view_.result.atom == worst.atom
    assert view_.result.value == pytest.approx(worst.force_error, rel=1e-4)


def test_periodic_images_camera_and_representation(cu_trajectory):
    from ase.build import molecule

    from mlipviz.widgets.viewer import BONDS_UP_TO, _representations

    n = int(cu_trajectory.n_atoms[0])
    viewer = view(cu_trajectory, images=(2, 1, 1), color_by=np.arange(cu_trajectory.total_atoms, dtype=float))
    drawn = viewer.drawn_coordinates(1)
    assert drawn.shape == (2 * n, 3)
    a = cu_trajectory.cells[1][0] @ viewer._rotation(1)
    np.testing.assert_allclose(drawn[n:] - drawn[:n], np.tile(a, (n, 1)), atol=1e-12)
    assert viewer.structure_string(1).count("ATOM  ") == 2 * n
    # one colour per atom of the cell; the scheme gives an image its atom's (index modulo n)
    assert len(_sent_colors(viewer)) == n and "atom.index % c.length" in viewer.colors_code()
    viewer.ngl.picked = {"atom1": {"index": n + 3}, "component": 0}  # a click on an image
    assert viewer.picked["atom"] == 3
    # spheres with bonds for small cells, spheres alone above BONDS_UP_TO atoms
    assert viewer.representation == "ball+stick" and n <= BONDS_UP_TO
    assert [kind for kind, _ in _representations("ball+stick")] == ["spacefill", "licorice"]
    assert [kind for kind, _ in _representations("spacefill")] == ["spacefill"]
    with pytest.raises(ValueError, match="non-periodic"):
        view(molecule("H2O"), images=(2, 1, 1))
    with pytest.raises(ValueError, match="three positive whole numbers"):
        view(cu_trajectory, images=(0, 1, 1))
    with pytest.raises(ValueError, match="camera"):
        view(cu_trajectory, camera="fisheye")


def test_explorer_opens_files_on_the_server(cu_trajectory, tmp_path):
    from ase.io import write

    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "md.extxyz", [cu_trajectory.to_atoms(i) for i in range(3)])
    (tmp_path / "notes.txt").write_text("not a structure")
    app = Explorer(folder=tmp_path)
    labels = [label for label, _ in app.listing.options]
    assert "sub/" in labels and "notes.txt" not in labels and str(tmp_path) not in app.folder_label.value
    app.listing.value = tmp_path / "sub"  # into the folder
    assert [label for label, _ in app.listing.options] == ["../", "md.extxyz"]
    app.listing.value = tmp_path / "sub" / "md.extxyz"
    assert app.path.value == "sub/md.extxyz"  # shown relative to the app's folder
    frames = app.load()
    assert len(frames) == 3 and "96 in all, 32 per frame" in app.structure_info.value
    assert "energy, forces" in app.structure_info.value
    app.path.value = "sub/missing.extxyz"
    assert app.load() is None and "no file sub/missing.extxyz" in app.message.value
    opened = Explorer(files=[tmp_path / "sub" / "md.extxyz"] * 2, folder=tmp_path)  # as mlipviz explore
    assert len(opened.frames) == 6 and opened.path.value == "sub/md.extxyz, sub/md.extxyz"
    with pytest.raises(TypeError, match="models= takes"):
        Explorer(models=["chgnet"])


def test_error_map_names_an_unknown_model_or_metric(comparison):
    from mlipviz.errors import InputError

    with pytest.raises(InputError, match=r"model 'mace-mp-9' is not in this comparison; choose from \["):
        comparison.show(model="mace-mp-9")
    with pytest.raises(InputError, match="metric 'energy' not available here"):
        comparison.show(metric="energy")


def test_show_picks_the_view_by_result_type(comparison, cu_trajectory):
    """One way to show any result: ``mlipviz.show(result)`` and ``result.show()`` give the view
    registered for the result's type, MD stability included; other objects get an mlipviz error."""
    from ase.calculators.emt import EMT

    from mlipviz.errors import ArgumentTypeError, UnknownNameError
    from mlipviz.widgets import ErrorMap, StabilityView

    assert type(mlipviz.show(comparison)) is type(comparison.show()) is ErrorMap
    stability = mlipviz.md_stability([EMT(), "chgnet"], cu_trajectory.to_atoms(0), temperature=300, steps=4,
                                     sample_every=2, device="cpu")
    for shown in (mlipviz.show(stability), stability.show(model="chgnet")):
        assert isinstance(shown, StabilityView)
        assert shown.viewer.frames is stability.trajectories[shown.model.value]
    shown.model.value = "emt"  # another model's trajectory, in a new viewer
    assert shown.viewer.frames is stability.trajectories["emt"] and "stable for all steps" in shown.note.value
    with pytest.raises(ArgumentTypeError, match="no view for a int"):
        mlipviz.show(42)
    with pytest.raises(UnknownNameError, match="model"):
        stability.show(model="mace")
