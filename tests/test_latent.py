"""Latent space: projections against scikit-learn and umap-learn, OOD scores on real CHGNet
embeddings, rank correlations against scipy, and the linked map widget."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("umap")
pytest.importorskip("chgnet")

import mlipviz
from mlipviz import latent
from mlipviz.errors import InputError


def clusters(seed=0, n=150, width=12):
    """Three well-separated Gaussian clusters in ``width`` dimensions, labels alongside."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(3, width))
    labels = np.repeat(np.arange(3), n)
    return centres[labels] + rng.normal(size=(3 * n, width)), labels


@pytest.fixture(scope="module")
def model():
    return mlipviz.load_model("chgnet", device="cpu")


@pytest.fixture(scope="module")
def comparison(model):
    """CHGNet against the bundled GPAW PBE labels, embeddings kept."""
    frames = mlipviz.examples.load("high-energy-states")
    return mlipviz.compare(model, frames, progress=False, embeddings=True)


def test_pca_is_scikit_learns():
    """The PCA map is scikit-learn's (its svd_flip signs), fitted on the z-scored fit set
    (scikit-learn's StandardScaler); other atoms land where scikit-learn puts them; a
    second fit gives the same map."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    x, _ = clusters()
    ours = latent.project(x, method="pca", standardize="none", n_components=3)
    assert isinstance(ours.reducer, PCA)
    theirs = PCA(n_components=3).fit(x)
    np.testing.assert_allclose(ours.coords, theirs.transform(x), rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.explained_variance_ratio, theirs.explained_variance_ratio_, rtol=1e-10)
    fit, other = x[::2], x[1::2]
    scaled = latent.project(other, method="pca", fit_on=fit, standardize="zscore")
    scaler = StandardScaler().fit(fit)
    pca = PCA(2, svd_solver="full").fit(scaler.transform(fit))
    np.testing.assert_allclose(scaled.fit_coords, pca.transform(scaler.transform(fit)), rtol=0, atol=1e-10)
    np.testing.assert_allclose(scaled.coords, pca.transform(scaler.transform(other)), rtol=0, atol=1e-10)
    np.testing.assert_allclose(scaled.transform(other[:5]), scaled.coords[:5], rtol=0, atol=1e-12)
    latent.clear_cache()
    again = latent.project(other, method="pca", fit_on=fit, standardize="zscore")
    assert again is not scaled
    np.testing.assert_array_equal(again.coords, scaled.coords)


def test_umap_is_seeded_and_transform_lands_training_points_on_their_own_spot():
    x, labels = clusters(seed=1)
    fitted = latent.project(x, method="umap", seed=3)
    latent.clear_cache()
    again = latent.project(x, method="umap", seed=3)
    np.testing.assert_array_equal(fitted.coords, again.coords)  # fixed seed: the same map
    placed = fitted.transform(x[::10])
    span = np.ptp(fitted.coords, axis=0).max()
    moved = np.linalg.norm(placed - fitted.coords[::10], axis=1)
    assert np.median(moved) < 0.05 * span
    centres = np.array([fitted.coords[labels == c].mean(0) for c in range(3)])
    nearest = np.linalg.norm(placed[:, None] - centres[None], axis=2).argmin(1)
    np.testing.assert_array_equal(nearest, labels[::10])  # each point lands in its own cluster


def test_projection_is_cached_not_recomputed():
    x, _ = clusters(seed=2)
    first = latent.project(x, method="umap", seed=0)
    assert latent.project(x.copy(), method="umap", seed=0) is first  # same data and settings
    assert latent.project(x, method="umap", seed=1) is not first
    assert latent.project(x, method="pca") is not first
    assert first.settings["n_epochs"] == 500  # umap-learn's default for small sets
    fewer = latent.project(x, method="umap", seed=0, n_epochs=50)
    assert fewer is not first and fewer.settings["n_epochs"] == 50


def test_fit_on_one_set_transform_another(model):
    from ase.build import bulk

    base = bulk("Si", "diamond", a=5.43, cubic=True) * (2, 1, 1)
    rng = np.random.default_rng(0)
    train = []
    for _ in range(6):
        atoms = base.copy()
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        train.append(atoms)
    reference = model.predict(mlipviz.read(train), return_embeddings=True, progress=False)
    new = model.predict(mlipviz.read(train[:2]), return_embeddings=True, progress=False)
    projection = latent.project(new, method="pca", fit_on=reference)
    # the first two structures are part of the fit set: the same spots on the fixed map (up to
    # float32 differences between batches of 2 and 6 structures)
    np.testing.assert_allclose(projection.coords, projection.fit_coords[:len(new.embeddings)], atol=1e-3)
    with pytest.raises(InputError, match="64 wide but the fit set's are 3 wide"):
        latent.project(new, method="pca", fit_on=np.zeros((10, 3)))


def test_ood_score_is_high_for_an_atom_unlike_the_reference_set(model):
    """Reference: rattled bulk diamond Si. A Si2 dimer in vacuum is unlike any of it; a
    slightly different rattle of the bulk is not."""
    from ase import Atoms
    from ase.build import bulk

    base = bulk("Si", "diamond", a=5.43, cubic=True)
    bulks = []
    for seed in range(8):
        atoms = base.copy()
        atoms.rattle(0.04, seed=seed)
        bulks.append(atoms)
    reference = model.predict(mlipviz.read(bulks), return_embeddings=True, progress=False)
    test_bulk = base.copy()
    test_bulk.rattle(0.04, seed=99)
    dimer = Atoms("Si2", positions=[[0, 0, 0], [0, 0, 2.3]], cell=[12, 12, 12], pbc=True)
    test = model.predict(mlipviz.read([test_bulk, dimer]), return_embeddings=True, progress=False)
    score = latent.ood_score(test, fit_on=reference, k=5)
    in_distribution, dimer_atoms = score[:8], score[8:]
    assert np.all(in_distribution < 3.0)
    assert dimer_atoms.min() > 5 * in_distribution.max()
    within = latent.ood_score(reference, k=5)  # leave-one-out within the reference set: ~1
    assert 0.5 < np.median(within) < 1.5


def test_analyse_correlation_equals_scipy_and_table_rows(comparison):
    from scipy.stats import spearmanr

    space = latent.analyse(comparison, method="pca", k=5)
    model = comparison.models[0]
    rows = space.table[space.table["model"] == model]
    assert len(rows) == comparison.frames.total_atoms
    np.testing.assert_array_equal(rows["frame"], comparison.frames.frame_index)
    score = latent.ood_score(comparison, model=model, k=5)
    np.testing.assert_array_equal(rows["ood_score"], score)
    rho = spearmanr(score, comparison.per_atom["force_error"]).statistic
    assert space.correlation.loc[model, "spearman_rho"] == pytest.approx(rho, abs=1e-12)
    assert latent.ood_correlation(comparison, k=5).loc[model, "spearman_rho"] == pytest.approx(rho, abs=1e-12)
    pca = latent.project(comparison, method="pca")
    np.testing.assert_array_equal(rows[["x", "y"]].to_numpy(), pca.coords)


def test_without_embeddings_the_error_says_how_to_get_them(model):
    frames = mlipviz.examples.load("high-energy-states")[:2]
    plain = mlipviz.compare(model, frames, progress=False)
    with pytest.raises(InputError, match=r"embeddings=True"):
        latent.project(plain)
    with pytest.raises(InputError, match=r"no model 'mace'"):
        latent.project(mlipviz.compare(model, frames, progress=False, embeddings=True), model="mace")


def test_widget_links_selection_and_picking(comparison):
    pytest.importorskip("nglview")
    from mlipviz.widgets import LatentMap, result_tabs

    cmp = comparison
    two = mlipviz.Comparison(cmp.frames, {"chgnet": cmp.predictions["chgnet"],
                                          "chgnet-b": cmp.predictions["chgnet"]}, cmp.reference)
    space = latent.analyse(two, method="pca", k=5)
    widget = latent.show(space, color_by="ood_score")
    assert isinstance(widget, LatentMap) and widget.models == ["chgnet", "chgnet-b"]
    maps = widget.maps
    assert [t.type for t in maps.data[:2]] == ["scattergl", "scattergl"]
    np.testing.assert_array_equal(maps.data[0].marker.color, space.table["ood_score"][:cmp.frames.total_atoms])

    offsets = cmp.frames.offsets
    chosen = [int(offsets[3]) + 1, int(offsets[3]) + 4, int(offsets[5])]  # two atoms in frame 3, one in 5
    widget.select(chosen)
    assert list(maps.data[0].selectedpoints) == chosen == list(maps.data[1].selectedpoints)
    assert widget.viewer.frame == 3 and widget.viewer.highlighted == [1, 4]
    widget.viewer.frame = 5  # the selection follows the frame
    assert widget.viewer.highlighted == [0]

    widget.viewer.frame = 2
    widget.viewer.pick(7)
    row = int(offsets[2]) + 7
    for k in range(2):
        marker = maps.data[2 + k]
        assert marker.x[0] == pytest.approx(space.table["x"][row])
        assert marker.y[0] == pytest.approx(space.table["y"][row])

    widget.color_select.value = "element"
    assert widget.maps.data[0].marker.color[0].startswith("#") and widget.maps.layout.showlegend
    assert "latent space" in result_tabs()


def test_umap_compiled_functions_are_kept_on_disk_and_give_the_same_map(tmp_path):
    """`cache_compiled_umap` switches numba's disk cache on for umap-learn's and pynndescent's
    functions (once); a fresh process, which then loads them from disk, draws the same map."""
    import subprocess
    import sys

    from mlipviz.analysis.latent import _umap, cache_compiled_umap

    cache_compiled_umap()
    assert cache_compiled_umap() == 0  # every function already switched
    x = np.random.default_rng(3).normal(size=(300, 8))
    here = np.asarray(_umap(x, 2, 0, 15, 0.1, 30).embedding_)
    np.save(tmp_path / "x.npy", x)
    code = ("import numpy as np; from mlipviz.analysis.latent import _umap; "
            f"x = np.load({str(tmp_path / 'x.npy')!r}); "
            f"np.save({str(tmp_path / 'fresh.npy')!r}, _umap(x, 2, 0, 15, 0.1, 30).embedding_)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    np.testing.assert_allclose(np.load(tmp_path / "fresh.npy"), here, rtol=0, atol=1e-6)


def test_large_maps_use_exact_neighbours_and_still_place_new_atoms():
    """From 4,096 atoms umap-learn would build its graph by NN-descent (numba code compiled in
    every fresh kernel); mlipviz hands it scikit-learn's exact neighbours instead (at every size
    up to EXACT_NEIGHBOURS_MAX), and the fitted map still places new atoms (`transform`)
    through that index."""
    from sklearn.neighbors import NearestNeighbors

    from mlipviz.analysis.latent import EXACT_NEIGHBOURS_MAX, _ExactNeighbours

    x, labels = clusters(seed=4, n=1400, width=10)  # 4,200 atoms
    assert 4096 <= len(x) <= EXACT_NEIGHBOURS_MAX
    fitted = latent.project(x, method="umap", seed=0, n_epochs=30, standardize="none")
    reducer = fitted.reducer
    assert isinstance(reducer._knn_search_index, _ExactNeighbours)
    exact = NearestNeighbors(n_neighbors=15).fit(x).kneighbors(x, return_distance=False)
    np.testing.assert_array_equal(np.sort(reducer._knn_indices, axis=1), np.sort(exact, axis=1))
    placed = fitted.transform(x[::100])
    centres = np.array([fitted.coords[labels == c].mean(0) for c in range(3)])
    nearest = np.linalg.norm(placed[:, None] - centres[None], axis=2).argmin(1)
    np.testing.assert_array_equal(nearest, labels[::100])


@pytest.mark.parametrize("call, match", [
    (lambda x: latent.project(x, method="tsne"), "method must be one of 'umap', 'pca'; got 'tsne'"),
    (lambda x: latent.project(x, method="pca", standardize="minmax"), "standardize must be one of .*got 'minmax'"),
    (lambda x: latent.project(x, method="pca", n_components=0), "n_components must be >= 1, got 0"),
    (lambda x: latent.project(x, method="pca", n_components=13), "n_components=13: .*at most 12 components"),
    (lambda x: latent.project(x, method="umap", n_neighbors=1), "n_neighbors must be >= 2, got 1"),
    (lambda x: latent.project(x, method="umap", min_dist=-0.1), "min_dist must be >= 0, got -0.1"),
    (lambda x: latent.ood_score(x, k=0), "k must be >= 1, got 0"),
    (lambda x: latent.ood_score(x, k=2.5), "k must be a whole number, got 2.5"),
    (lambda x: latent.ood_score(x, k=len(x)), "k=450 nearest neighbours need a reference set of more than k atoms"),
    (lambda x: latent.ood_score(x, standardize="max"), "standardize must be one of"),
])
def test_bad_latent_arguments_are_named(call, match):
    x, _ = clusters()
    with pytest.raises(InputError, match=match):
        call(x)


def test_latent_names_models_and_needs_a_reference_only_for_errors(comparison):
    from mlipviz.errors import MissingLabelsError, UnknownNameError

    for call in (lambda: latent.project(comparison, method="pca", model="mace"),
                 lambda: latent.ood_score(comparison, model="mace"),
                 lambda: latent.analyse(comparison, method="pca", models=["mace"]),
                 lambda: latent.embeddings_of(comparison, "mace")):
        with pytest.raises(UnknownNameError, match="model: no model 'mace' in this comparison") as caught:
            call()
        assert isinstance(caught.value, KeyError)
    for call, match in [(lambda: latent.analyse(comparison, method="pca", k=0), "k must be >= 1"),
                        (lambda: latent.analyse(comparison, method="pcaa"), "method must be one of"),
                        (lambda: latent.ood_correlation(comparison, error="force"), "error must be one of")]:
        with pytest.raises(InputError, match=match):
            call()
    alone = mlipviz.Comparison(comparison.frames, comparison.predictions, None)  # models only
    np.testing.assert_array_equal(latent.project(alone, method="pca").coords,
                                  latent.project(comparison, method="pca").coords)
    np.testing.assert_array_equal(latent.ood_score(alone, k=5), latent.ood_score(comparison, k=5))
    for call in (lambda: latent.analyse(alone, method="pca", k=5), lambda: latent.ood_correlation(alone, k=5)):
        with pytest.raises(MissingLabelsError, match="need a reference"):
            call()
