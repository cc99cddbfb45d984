"""fairchem backend (package ``fairchem-core``, Meta FAIR Chemistry): UMA and eSEN, run through
the package's own ``FAIRChemCalculator``.

fairchem-core needs e3nn >= 0.5 and NVIDIA's CUDA Python packages, while mace-torch pins e3nn
0.4.4, so it is not part of ``mlipviz[all]``: install ``mlipviz[fairchem]`` in an environment of
its own. Its checkpoints are on Hugging Face (``facebook/UMA``, ``facebook/OMol25``), in
repositories that need an accepted licence and a token (``huggingface-cli login``); fairchem
keeps them in ``$FAIRCHEM_CACHE_DIR`` (default ``~/.cache/fairchem``). UMA has one head per
task: the card names it (``omat``: inorganic materials, PBE/PBE+U as OMat24).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ModelNotAvailableError
from .ase_adapter import PackageCalculatorModel
from .backend import Backend, ModelCard
from .safety import require_file
from .upet_adapter import hf_cache

_HF = "https://huggingface.co"
_UMA_FILES = f"{_HF}/facebook/UMA/resolve/main/checkpoints"


def _cache_dir() -> Path:
    """The ``CACHE_DIR`` of fairchem, without importing it."""
    return Path(os.environ.get("FAIRCHEM_CACHE_DIR", Path.home() / ".cache" / "fairchem"))


def package_weights(card: ModelCard | None) -> list[Path]:
    """The card's checkpoint in fairchem's Hugging Face cache (any snapshot)."""
    if card is None or not card.url:
        return []
    repo, subfolder = card.option("repo", ""), card.option("subfolder", "checkpoints")
    root = hf_cache(str(repo), _cache_dir())
    found = sorted(root.glob(f"snapshots/*/{subfolder}/{card.filenames[0]}"))
    return found or [root / "snapshots" / "*" / str(subfolder) / card.filenames[0]]


def download_source(card: ModelCard) -> str:
    """The address of ``card``'s checkpoint on Hugging Face (the repository needs an accepted
    licence and a token)."""
    assert card.url is not None  # every fairchem card has its repository
    return card.url


def load(card: ModelCard | None, weights: str | Path | None, device: str, dtype: str,
         trust: bool = False) -> PackageCalculatorModel:
    """A fairchem model through ``FAIRChemCalculator``; ``weights`` None: fairchem downloads
    the card's checkpoint (a Hugging Face token with the licence accepted is needed)."""
    from fairchem.core import FAIRChemCalculator, pretrained_mlip

    where = "cuda" if device.startswith("cuda") else "cpu"  # fairchem takes "cuda" or "cpu"
    task = card.option("task") if card is not None else None
    try:
        if weights is not None:
            weights = Path(weights)
            require_file(weights, "fairchem checkpoint")
            unit = pretrained_mlip.load_predict_unit(str(weights), device=where)
        else:
            assert card is not None  # a bare path or a card
            unit = pretrained_mlip.get_predict_unit(card.version, device=where)
        calc = FAIRChemCalculator(unit, task_name=task)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise ModelNotAvailableError(f"cannot load fairchem model {weights or card.name}: "  # type: ignore[union-attr]
                                     f"{type(exc).__name__}: {exc}") from exc
    return PackageCalculatorModel(calc, BACKEND, card, weights, device, dtype, task=task)


_UMA = "Wood et al., UMA: a family of universal models for atoms, arXiv 2506.23971 (2025)"
_OMOL = "Levine et al., The Open Molecules 2025 (OMol25) dataset, evaluations and models, arXiv 2505.08762 (2025)"
_OMAT = ("OMat24 + OMol25 + OC20 + ODAC23 + OMC25; head 'omat': OMat24, off-equilibrium bulk "
         "(rattled, AIMD), PBE/PBE+U")

BACKEND = Backend(
    name="fairchem", package="fairchem", pip="fairchem-core", extra="fairchem", load=load,
    package_weights=package_weights, download_source=download_source,
    suffixes=(".pt",), name_hint="uma",
    coexist="fairchem-core needs e3nn >= 0.5 and NVIDIA's CUDA Python packages; mace-torch pins e3nn 0.4.4",
    calculator_only=True,
    cards=(
        ModelCard("uma-s-1p1", "fairchem", "uma-s-1p1", "UMA small 1.1 (mixture of linear experts), task omat",
                  _OMAT, ("uma-s-1p1.pt",), url=f"{_UMA_FILES}/uma-s-1p1.pt", citation=_UMA,
                  aliases=("uma-s",),
                  options=(("task", "omat"), ("repo", "facebook/UMA"))),
        ModelCard("uma-m-1p1", "fairchem", "uma-m-1p1", "UMA medium 1.1, task omat", _OMAT, ("uma-m-1p1.pt",),
                  url=f"{_UMA_FILES}/uma-m-1p1.pt", citation=_UMA,
                  options=(("task", "omat"), ("repo", "facebook/UMA"))),
        ModelCard("esen-sm-conserving-omol", "fairchem", "esen-sm-conserving-all-omol",
                  "eSEN small, conserving forces, for molecules", "OMol25 (ωB97M-V/def2-TZVPD, molecules)",
                  ("esen_sm_conserving_all.pt",),
                  url=f"{_HF}/facebook/OMol25/resolve/main/checkpoints/esen_sm_conserving_all.pt", citation=_OMOL,
                  options=(("repo", "facebook/OMol25"),)),
    ),
)
