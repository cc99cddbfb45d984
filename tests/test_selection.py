"""frames_to_label: rank frames for labelling by a committee's disagreement (no labels), by the
force error against the reference, or by the latent out-of-distribution score; real CHGNet and
M3GNet on the bundled high-energy states (GPAW PBE labels).
"""

from __future__ import annotations

import numpy as np
import pytest

import mlipviz
from mlipviz.errors import InputError, MissingLabelsError


@pytest.fixture(scope="module")
def frames():
    states = mlipviz.examples.load("high-energy-states")
    return states[list(range(0, len(states), 6))]  # ten snapshots, every material


@pytest.fixture(scope="module")
def committee(frames):
    return mlipviz.compare(["chgnet", "m3gnet"], frames, reference=False, progress=False, device="cpu")


def test_committee_disagreement_needs_no_labels(committee, frames):
    table = mlipviz.frames_to_label(committee, n=3, by="disagreement")
    assert len(table) == 3 and table.attrs["by"] == "disagreement"
    assert table["score"].is_monotonic_decreasing
    # two models: the spread about their mean is half the distance between their force vectors
    gap = np.linalg.norm(committee["chgnet"].forces - committee["m3gnet"].forces, axis=1) / 2
    expected = [gap[frames.atoms_of(i)].max() for i in range(len(frames))]
    assert table.index.tolist() == list(np.argsort(expected)[::-1][:3])
    np.testing.assert_allclose(table["score"], np.sort(expected)[::-1][:3], rtol=1e-12)
    first = table.index[0]
    assert gap[frames.atoms_of(first)][table.loc[first, "atom"]] == pytest.approx(table.loc[first, "score"])
    assert "material_id" in table


def test_largest_error_against_the_reference(frames):
    cmp = mlipviz.compare("chgnet", frames, progress=False, device="cpu")
    table = mlipviz.frames_to_label(cmp, n=len(frames), by="error")
    per_frame = cmp.per_frame.set_index("frame")["force_error_max"]
    np.testing.assert_allclose(table["score"], per_frame.loc[table.index], rtol=1e-12)
    assert table["score"].is_monotonic_decreasing and table.attrs["model"] == "chgnet"


def test_out_of_distribution_against_what_the_model_saw(frames):
    pytest.importorskip("sklearn")
    states = mlipviz.examples.load("high-energy-states")
    silicon = states[[i for i, info in enumerate(states.info) if info["material_id"].startswith("Si (")]]
    seen = mlipviz.compare("chgnet", silicon, progress=False, device="cpu", embeddings=True)
    cmp = mlipviz.compare("chgnet", frames, progress=False, device="cpu", embeddings=True)
    table = mlipviz.frames_to_label(cmp, n=3, by="ood", fit_on=seen)
    # after fitting on silicon, the frames of other materials are the unfamiliar ones
    assert not any(str(m).startswith("Si (") for m in table["material_id"])
    assert (table["score"] > 1).all()


def test_what_each_ranking_needs(committee, frames):
    one = mlipviz.compare("chgnet", frames[:2], reference=False, progress=False, device="cpu")
    with pytest.raises(InputError, match="two or more models"):
        mlipviz.frames_to_label(one, by="disagreement")
    with pytest.raises(MissingLabelsError):
        mlipviz.frames_to_label(committee, by="error")
    with pytest.raises(InputError, match="embeddings"):
        mlipviz.frames_to_label(committee, by="ood")
    with pytest.raises(InputError, match="n must be"):
        mlipviz.frames_to_label(committee, n=0)
    assert len(mlipviz.frames_to_label(committee, n=99)) == len(frames)  # at most every frame
