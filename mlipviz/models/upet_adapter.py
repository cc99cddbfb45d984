"""PET-MAD backend (package ``upet``, the Laboratory of Computational Science and Modelling,
EPFL): the PET-MAD universal potential and its UPET siblings, run through the package's own
``UPETCalculator`` (``upet`` succeeds the ``pet-mad`` package, whose metatrain pin needs
torch < 2.11). upet can be installed next to mlipviz's other model packages, but it brings
``nvalchemi-toolkit-ops``, and with that MatGL builds TensorNet with warp kernels instead of the
PyG layers mlipviz reads (embeddings, attributions), so it is not part of ``mlipviz[all]``:
install ``mlipviz[pet-mad]`` in an environment of its own.

upet downloads its checkpoints from the Hugging Face repository ``lab-cosmo/upet`` into the
Hugging Face cache (``$HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``). A checkpoint is a
pickle (metatrain reads it with ``weights_only=False``): from a path upet did not download it
is opened after an `UntrustedFileWarning`, unless ``trust=True``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import ModelNotAvailableError
from .ase_adapter import PackageCalculatorModel
from .backend import Backend, ModelCard
from .safety import check_pickle, require_file

REPO = "https://huggingface.co/lab-cosmo/upet"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def hf_cache(repo: str, cache: str | os.PathLike[str] | None = None) -> Path:
    """Where ``huggingface_hub.hf_hub_download`` keeps files of model repository ``repo``
    (``"owner/name"``): under ``cache``, default ``$HF_HUB_CACHE`` or ``$HF_HOME/hub``."""
    if cache is None:
        home = os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")
        cache = os.environ.get("HF_HUB_CACHE", Path(home) / "hub")
    return Path(cache) / f"models--{repo.replace('/', '--')}"


def package_weights(card: ModelCard | None) -> list[Path]:
    """The card's checkpoint in the Hugging Face cache (any snapshot)."""
    if card is None:
        return []
    root = hf_cache("lab-cosmo/upet")
    found = sorted(root.glob(f"snapshots/*/models/{card.filenames[0]}"))
    return found or [root / "snapshots" / "*" / "models" / card.filenames[0]]


def download_source(card: ModelCard) -> str:
    """The address of ``card``'s checkpoint in the Hugging Face repository upet downloads from."""
    return card.url or REPO


def load(card: ModelCard | None, weights: str | Path | None, device: str, dtype: str,
         trust: bool = False) -> PackageCalculatorModel:
    """A UPET model through ``UPETCalculator``; ``weights`` None: upet downloads the card's
    version from Hugging Face."""
    from upet.ase import UPETCalculator

    if weights is not None:
        weights = Path(weights)
        require_file(weights, "UPET checkpoint")
        check_pickle(weights, "UPET checkpoint (a metatrain checkpoint, pickled)", trust, package_weights(card))
        kwargs: dict[str, object] = {"checkpoint_path": str(weights)}
    else:
        assert card is not None  # a bare path or a card
        kwargs = {"model": card.option("model"), "version": card.version}
    try:
        calc = UPETCalculator(dtype=_DTYPES[dtype], device=device, **kwargs)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise ModelNotAvailableError(f"cannot load UPET model {weights or card.name}: "  # type: ignore[union-attr]
                                     f"{type(exc).__name__}: {exc}") from exc
    return PackageCalculatorModel(calc, BACKEND, card, weights, device, dtype)


_CITATION = "Mazitov et al., PET-MAD as a lightweight universal interatomic potential for advanced " \
            "materials modeling, Nat. Commun. (2025), doi:10.1038/s41467-025-65662-7"

BACKEND = Backend(
    name="upet", package="upet", pip="upet", extra="pet-mad", load=load,
    package_weights=package_weights, download_source=download_source,
    suffixes=(), name_hint="pet-", dtypes=("float32", "float64"),
    coexist="upet brings nvalchemi-toolkit-ops and warp-lang, with which MatGL silently switches TensorNet to "
            "warp kernels that mlipviz's TensorNet adapter does not read, and prints kernel-loading logs",
    calculator_only=True,
    cards=(
        ModelCard("pet-mad-s", "upet", "1.6.0", "PET-MAD v1.6.0, size S (Point-Edge Transformer)",
                  "MAD: bulk, surfaces, clusters and molecules, sampled off equilibrium (r2SCAN, per upet's docs)",
                  ("pet-mad-s-v1.6.0.ckpt",), url=f"{REPO}/resolve/main/models/pet-mad-s-v1.6.0.ckpt",
                  citation=_CITATION, aliases=("pet-mad",),
                  options=(("model", "pet-mad-s"),)),
    ),
)
