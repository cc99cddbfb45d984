"""MatterSim backend (package ``mattersim``, Microsoft): MatterSim v1, run through the package's
own ``MatterSimCalculator``.

mattersim needs e3nn >= 0.5 and pulls torchvision and torchaudio, while mace-torch pins e3nn
0.4.4, so it is not part of ``mlipviz[all]``: install ``mlipviz[mattersim]`` in an environment of
its own. It downloads its checkpoints from GitHub into ``~/.local/mattersim/pretrained_models``.
A checkpoint is a pickle (``torch.save`` of a dictionary with the model's arguments): from a path
mattersim did not download it is opened after an `UntrustedFileWarning`, unless ``trust=True``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelNotAvailableError
from .ase_adapter import PackageCalculatorModel
from .backend import Backend, ModelCard
from .safety import check_pickle, require_file

_GITHUB = "https://raw.githubusercontent.com/microsoft/mattersim/main/pretrained_models"


def _cache_dir() -> Path:
    """Where ``mattersim`` keeps its checkpoints (``Potential.from_checkpoint``)."""
    return Path.home() / ".local" / "mattersim" / "pretrained_models"


def package_weights(card: ModelCard | None) -> list[Path]:
    """The checkpoint of ``card`` that mattersim downloaded."""
    return [] if card is None else [_cache_dir() / card.filenames[0]]


def download_source(card: ModelCard) -> str:
    """The GitHub address mattersim downloads ``card``'s checkpoint from."""
    assert card.url is not None  # every MatterSim card has its address
    return card.url


def load(card: ModelCard | None, weights: str | Path | None, device: str, dtype: str,
         trust: bool = False) -> PackageCalculatorModel:
    """A MatterSim model through ``MatterSimCalculator``; ``weights`` None: mattersim downloads
    the card's checkpoint into its folder."""
    from mattersim.forcefield import MatterSimCalculator

    if weights is not None:
        weights = Path(weights)
        require_file(weights, "MatterSim checkpoint")
        check_pickle(weights, "MatterSim checkpoint (torch.save of a dictionary)", trust, package_weights(card))
    assert weights is not None or card is not None  # a bare path or a card
    source = str(weights) if weights is not None else card.filenames[0]  # type: ignore[union-attr]
    try:
        calc = MatterSimCalculator(load_path=source, device=device)
    except (RuntimeError, OSError, ValueError, KeyError, AssertionError) as exc:
        raise ModelNotAvailableError(f"cannot load MatterSim checkpoint {source}: {type(exc).__name__}: {exc}") from exc
    return PackageCalculatorModel(calc, BACKEND, card, weights, device, dtype)


_CITATION = "Yang et al., MatterSim: a deep learning atomistic model across elements, temperatures and " \
            "pressures, arXiv 2405.04967 (2024)"
_DATA = "MatterSim's own PBE/PBE+U data: MD and random structures over 0-5000 K and 0-1000 GPa (17M)"

BACKEND = Backend(
    name="mattersim", package="mattersim", pip="mattersim", extra="mattersim", load=load,
    package_weights=package_weights, download_source=download_source,
    suffixes=(), name_hint="mattersim",
    coexist="mattersim needs e3nn >= 0.5 and torchvision/torchaudio; mace-torch pins e3nn 0.4.4",
    calculator_only=True,
    cards=(
        ModelCard("mattersim-v1-1m", "mattersim", "MatterSim-v1.0.0-1M", "MatterSim v1, 1M parameters", _DATA,
                  ("MatterSim-v1.0.0-1M.pth",), url=f"{_GITHUB}/MatterSim-v1.0.0-1M.pth", citation=_CITATION),
        ModelCard("mattersim-v1-5m", "mattersim", "MatterSim-v1.0.0-5M", "MatterSim v1, 5M parameters", _DATA,
                  ("MatterSim-v1.0.0-5M.pth",), url=f"{_GITHUB}/MatterSim-v1.0.0-5M.pth", citation=_CITATION),
    ),
)
