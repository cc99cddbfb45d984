"""Which frames to label next: the frames a model gets most wrong (where labels exist), the ones
furthest from what a model has seen (the latent out-of-distribution score), or the ones on which
several models disagree most (a committee; no labels needed). Label the chosen frames with a live
reference (`mlipviz.reference`) and fine-tune on them (`mlipviz.finetune`); docs/finetune.md has
the recipe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..checks import one_of, whole_number
from ..errors import InputError
from .compare import Comparison

if TYPE_CHECKING:
    from .latent import EmbeddingsLike

#: what each ranking scores a frame by
SCORES = {
    "error": "the largest force error |ΔF| of an atom of the frame against the reference (eV/Å)",
    "disagreement": "the largest spread of the committee's forces on an atom of the frame: the root mean square "
                    "distance of the models' force vectors from their mean (eV/Å)",
    "ood": "the largest out-of-distribution score of an atom of the frame (latent.ood_score: 1 is typical of "
           "the reference set, larger is further from it)",
}


def frames_to_label(comparison: Comparison, n: int = 5, by: str = "disagreement", model: str | None = None,
                    fit_on: EmbeddingsLike | None = None, k: int = 10) -> pd.DataFrame:
    """The ``n`` frames of ``comparison`` most worth labelling, best first.

    Parameters
    ----------
    comparison : Comparison
        The frames and the models' predictions on them.
    n : int
        How many frames to choose (at most all of them).
    by : str
        ``"disagreement"`` (a committee of two or more models; needs no reference: a
        ``compare(models, frames, reference=False)`` will do), ``"error"`` (needs a reference;
        the frames ``model`` gets most wrong) or ``"ood"`` (needs ``model``'s embeddings:
        ``compare(..., embeddings=True)``; the frames furthest from ``fit_on``, e.g. what the model
        was trained or fine-tuned on).
    model : str, optional
        The model for ``"error"`` and ``"ood"`` (default: the comparison's first).
    fit_on : np.ndarray, Prediction or Comparison, optional
        For ``"ood"``: the reference set of the score (default: the frames themselves, each atom
        leaving itself out).
    k : int
        For ``"ood"``: nearest neighbours of the score.

    Returns
    -------
    pd.DataFrame
        The chosen frames, index ``frame`` (positions in ``comparison.frames``), columns
        ``score``, ``atom`` (the frame's atom with that score, 0-based within the frame),
        ``n_atoms`` and the frames' ``material_id`` where they have one; ``attrs["by"]`` and
        ``attrs["score"]`` say what the score is.

    Raises
    ------
    MissingLabelsError
        ``by="error"`` on a comparison without reference.
    InputError
        ``by="disagreement"`` with fewer than two models, ``"ood"`` without embeddings, or a bad
        ``n``.
    UnknownNameError
        An unknown ``by`` or ``model``.
    """
    by = one_of("by", by, list(SCORES))
    n = whole_number("n", n, minimum=1)
    frames = comparison.frames
    name = None
    if by == "disagreement":
        if len(comparison.models) < 2:
            raise InputError(f"frames_to_label(by='disagreement') needs a committee of two or more models; this "
                             f"comparison has {len(comparison.models)} ({', '.join(comparison.models)})")
        # (models, atoms, 3)
        forces = np.stack([np.asarray(comparison.prediction(m).forces) for m in comparison.models])
        per_atom = np.sqrt(np.mean(np.sum((forces - forces.mean(axis=0)) ** 2, axis=2), axis=0))
    else:
        name = model if model is not None else comparison.models[0]
        if by == "error":
            per_atom = comparison.atom_errors(name)["force_error"]
        else:
            from .latent import ood_score

            per_atom = ood_score(comparison, fit_on, name, k)
    rows = []
    for i in range(len(frames)):
        values = per_atom[frames.atoms_of(i)]
        atom = int(np.nanargmax(values)) if np.isfinite(values).any() else -1
        rows.append({"frame": i, "score": float(values[atom]) if atom >= 0 else np.nan, "atom": atom,
                     "n_atoms": int(frames.n_atoms[i]), "material_id": frames.info[i].get("material_id")})
    table = pd.DataFrame(rows).set_index("frame")
    if table["material_id"].isna().all():
        table = table.drop(columns="material_id")
    table = table.sort_values("score", ascending=False, kind="stable").head(n)
    table.attrs.update(by=by, score=SCORES[by], model=name)
    return table
