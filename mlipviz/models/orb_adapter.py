"""ORB backend (package ``orb-models``, Orbital Materials): the orb-v3 models, run through the
package's own ``ORBCalculator``.

The checkpoints are state dictionaries (read by orb-models with ``weights_only=True``) for an
architecture that the package builds in code, one builder per released model
(``orb_models.forcefield.pretrained.ORB_PRETRAINED_MODELS``): a card names its builder
(``version``), and a bare weights path is matched to one by its file name as released
(``orb-v3-conservative-inf-omat-20250404.ckpt``). orb-models downloads through ``cached_path``
into ``$CACHED_PATH_CACHE_ROOT`` (default ``~/.cache/cached_path``), under the SHA-256 of the
URL.

Loading an ORB model sets torch's process-wide default dtype and float32 matmul precision
(``set_torch_precision``); mlipviz puts both back afterwards, so that loading ORB does not
change the other models in the process. For that reason ORB runs in float32 only here: in
float64 orb-models builds its graphs in the process's default dtype, which it would have to
keep changed.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch

from ..errors import ModelNotAvailableError
from .ase_adapter import PackageCalculatorModel
from .backend import Backend, ModelCard
from .safety import require_file

_S3 = "https://orbitalmaterials-public-models.s3.us-west-1.amazonaws.com/forcefields"


def _cache_dir() -> Path:
    """``cached_path.get_cache_dir()`` as orb-models uses it, without importing it."""
    return Path(os.environ.get("CACHED_PATH_CACHE_ROOT", Path.home() / ".cache" / "cached_path"))


def package_weights(card: ModelCard | None) -> list[Path]:
    """The file ``cached_path`` keeps for ``card.url``: named by the SHA-256 of the URL, then a
    dot and the hash of its ETag (its ``.json`` and ``.lock`` companions are not weights)."""
    if card is None or not card.url:
        return []
    stem = hashlib.sha256(card.url.encode()).hexdigest()
    found = sorted(p for p in _cache_dir().glob(f"{stem}*") if p.suffix not in (".json", ".lock"))
    return found or [_cache_dir() / stem]


def download_source(card: ModelCard) -> str:
    """The S3 address orb-models downloads ``card``'s checkpoint from."""
    assert card.url is not None  # every ORB card has its address
    return card.url


def _builder_name(card: ModelCard | None, weights: Path | None) -> str:
    """The orb-models builder for ``card``, or the one whose name starts a bare file's name."""
    from orb_models.forcefield.pretrained import ORB_PRETRAINED_MODELS

    if card is not None:
        return card.version
    assert weights is not None  # a bare path or a card
    name = weights.name.lower()
    matches = [key for key in ORB_PRETRAINED_MODELS if name.startswith(key)]
    if not matches:
        raise ModelNotAvailableError(
            f"cannot tell which ORB architecture weights {weights} are for: orb-models builds each "
            f"model in code, and the file name starts with none of {', '.join(sorted(ORB_PRETRAINED_MODELS))}; "
            "keep the released file name, or build the model with orb_models and pass "
            "ORBCalculator(model) to mlipviz.load_model")
    return max(matches, key=len)


def load(card: ModelCard | None, weights: str | Path | None, device: str, dtype: str,
         trust: bool = False) -> PackageCalculatorModel:
    """An ORB model through ``ORBCalculator``; ``weights`` None: orb-models downloads
    ``card.url``. ``trust`` is not needed (orb-models reads state dictionaries only)."""
    from orb_models.forcefield.calculator import ORBCalculator
    from orb_models.forcefield.pretrained import ORB_PRETRAINED_MODELS

    path = None if weights is None else Path(weights)
    if path is not None:
        require_file(path, "ORB checkpoint")
    key = _builder_name(card, path)
    source = str(path) if path is not None else download_source(card) if card is not None else ""
    default_dtype, matmul = torch.get_default_dtype(), torch.get_float32_matmul_precision()
    try:
        with warnings.catch_warnings():  # its notes on the default dtype it sets: put back below
            warnings.filterwarnings("ignore", message=".*(global torch default dtype|precision=float32-high)")
            # "highest" is torch's own default: float32 matmuls stay float32 (no TF32 on GPUs)
            net = ORB_PRETRAINED_MODELS[key](weights_path=source, device=device, precision="float32-highest",
                                             compile=False)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise ModelNotAvailableError(f"cannot load ORB model '{key}' from {source}: "
                                     f"{type(exc).__name__}: {exc}") from exc
    finally:  # orb-models sets both for the whole process
        torch.set_default_dtype(default_dtype)
        torch.set_float32_matmul_precision(matmul)
    calc = ORBCalculator(net, device=device)
    model = PackageCalculatorModel(calc, BACKEND, card, path, device, dtype, architecture=key,
                                   conservative=bool(calc.conservative))
    model.cutoff = float(net.system_config.radius)
    return model


_CITATION = "Rhodes et al., Orb-v3: atomistic simulation at scale, arXiv 2504.06231 (2025)"

BACKEND = Backend(
    name="orb", package="orb_models", pip="orb-models", extra="orb", load=load,
    package_weights=package_weights, download_source=download_source,
    suffixes=(".ckpt",), name_hint="orb",
    dtype_note="in float64 orb-models builds its graphs in torch's process-wide default dtype, which "
               "it would have to keep changed for every other model in the process",
    calculator_only=True,
    cards=(
        ModelCard("orb-v3-conservative-inf-omat", "orb", "orb-v3-conservative-inf-omat",
                  "ORB v3 conservative, all neighbours within 6 Å, trained on OMat24", "OMat24 (PBE/PBE+U)",
                  ("orb-v3-conservative-inf-omat-20250404.ckpt",),
                  url=f"{_S3}/orb-v3/orb-v3-conservative-inf-omat-20250404.ckpt", citation=_CITATION,
                  aliases=("orb-v3",)),
        ModelCard("orb-v3-conservative-inf-mpa", "orb", "orb-v3-conservative-inf-mpa",
                  "ORB v3 conservative, all neighbours within 6 Å, trained on MPtrj + sAlex",
                  "MPtrj + sAlex (PBE/PBE+U)", ("orb-v3-conservative-inf-mpa-20250404.ckpt",),
                  url=f"{_S3}/orb-v3/orb-v3-conservative-inf-mpa-20250404.ckpt", citation=_CITATION),
        ModelCard("orb-v3-direct-20-omat", "orb", "orb-v3-direct-20-omat",
                  "ORB v3 direct (forces from a head, not -dE/dx), 20 neighbours, trained on OMat24",
                  "OMat24 (PBE/PBE+U)", ("orb-v3-direct-20-omat-20250404.ckpt",),
                  url=f"{_S3}/orb-v3/orb-v3-direct-20-omat-20250404.ckpt", citation=_CITATION),
    ),
)
