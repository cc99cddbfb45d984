"""The model registry: named pretrained uMLIPs and where their weights are found.

Weights lookup order: an explicit path, then the directory named by the
``MLIPVIZ_MODELS`` environment variable, then the model package's own files or
cache, then a download. Offline and with no local weights, loading fails within
seconds with a message naming the model, every place looked, and the fix.
"""

from __future__ import annotations

import importlib.util
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ModelNotAvailableError
from ..settings import folder_setting

MACE_MP_RELEASES = "https://github.com/ACEsuit/mace-mp/releases/download"


@dataclass(frozen=True)
class ModelCard:
    """What mlipviz knows about one pretrained model."""

    name: str
    backend: str            # adapter module: mlipviz.models.<backend>_adapter
    package: str            # the Python package the adapter needs
    extra: str              # pip extra of mlipviz that installs it
    version: str            # the model's own version id, passed to its package
    description: str
    training_data: str
    filenames: tuple[str, ...] = ()  # names looked for in $MLIPVIZ_MODELS
    url: str | None = None  # download address, where the package downloads by URL
    citation: str = ""
    aliases: tuple[str, ...] = field(default=())


CARDS = [
    ModelCard("chgnet", "chgnet", "chgnet", "chgnet", "0.3.0",
              "CHGNet v0.3.0 (412.5k parameters)", "MPtrj (Materials Project, PBE/PBE+U)",
              ("chgnet-0.3.0",), citation="Deng et al., Nat. Mach. Intell. 5, 1031 (2023)",
              aliases=("chgnet-0.3.0",)),
    ModelCard("chgnet-0.2.0", "chgnet", "chgnet", "chgnet", "0.2.0",
              "CHGNet v0.2.0", "MPtrj (Materials Project, PBE/PBE+U)", ("chgnet-0.2.0",),
              citation="Deng et al., Nat. Mach. Intell. 5, 1031 (2023)"),
    ModelCard("chgnet-r2scan", "chgnet", "chgnet", "chgnet", "r2scan",
              "CHGNet fine-tuned to r2SCAN", "MPtrj, then MP r2SCAN", ("chgnet-r2scan",),
              citation="Deng et al., Nat. Mach. Intell. 5, 1031 (2023)"),
    ModelCard("mace-mp-0", "mace", "mace", "mace", "medium",
              "MACE-MP-0 medium (2023-12-03, 4.69M parameters)", "MPtrj (Materials Project, PBE/PBE+U)",
              ("2023-12-03-mace-128-L1_epoch-199.model", "mace-mp-0-medium.model"),
              url=f"{MACE_MP_RELEASES}/mace_mp_0/2023-12-03-mace-128-L1_epoch-199.model",
              citation="Batatia et al., arXiv 2401.00096 (2023)", aliases=("mace-mp-0-medium",)),
    ModelCard("mace-mp-0-small", "mace", "mace", "mace", "small",
              "MACE-MP-0 small (2023-12-10)", "MPtrj (Materials Project, PBE/PBE+U)",
              ("2023-12-10-mace-128-L0_energy_epoch-249.model", "mace-mp-0-small.model"),
              url=f"{MACE_MP_RELEASES}/mace_mp_0/2023-12-10-mace-128-L0_energy_epoch-249.model",
              citation="Batatia et al., arXiv 2401.00096 (2023)"),
    ModelCard("mace-mpa-0", "mace", "mace", "mace", "medium-mpa-0",
              "MACE-MPA-0 medium", "MPtrj + sAlex (PBE/PBE+U)", ("mace-mpa-0-medium.model",),
              url=f"{MACE_MP_RELEASES}/mace_mpa_0/mace-mpa-0-medium.model",
              citation="Batatia et al., arXiv 2401.00096 (2023)"),
    ModelCard("m3gnet", "matgl", "matgl", "matgl", "M3GNet-MP-2021.2.8-PES",
              "M3GNet MP-2021.2.8 PES (227.5k parameters), MatGL", "MPF (MP relaxations, 2021.2.8)",
              ("M3GNet-MP-2021.2.8-PES",), citation="Chen & Ong, Nat. Comput. Sci. 2, 718 (2022)",
              aliases=("m3gnet-mp-2021.2.8-pes",)),
    ModelCard("m3gnet-matpes-pbe", "matgl", "matgl", "matgl", "M3GNet-MatPES-PBE-v2025.1-PES",
              "M3GNet MatPES-PBE v2025.1 PES, MatGL", "MatPES (PBE)",
              ("M3GNet-MatPES-PBE-v2025.1-PES",),
              citation="Kaplan et al., arXiv 2503.04070 (2025); Chen & Ong, Nat. Comput. Sci. 2, 718 (2022)"),
    ModelCard("sevennet-0", "sevenn", "sevenn", "sevenn", "7net-0",
              "SevenNet-0 (11 July 2024)", "MPtrj (Materials Project, PBE/PBE+U)",
              ("SevenNet-0", "checkpoint_sevennet_0.pth"),
              citation="Park et al., J. Chem. Theory Comput. 20, 4857 (2024)", aliases=("7net-0",)),
]

_BY_NAME = {alias.lower(): card for card in CARDS for alias in (card.name, *card.aliases)}


def get_card(name: str) -> ModelCard | None:
    return _BY_NAME.get(name.lower())


def models_dir() -> Path | None:
    """The directory named by ``MLIPVIZ_MODELS``, if set, as an absolute path (a relative
    value is resolved as `mlipviz.settings` says)."""
    return folder_setting("MLIPVIZ_MODELS")


def package_installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


_ONLINE: dict[str, bool] = {}


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether the host of ``url`` accepts a TCP connection within ``timeout`` s (cached)."""
    host = urlparse(url).hostname or url
    if host not in _ONLINE:
        # a thread bounds the DNS lookup too, which ignores socket timeouts
        answer: list[bool] = []

        def probe():
            try:
                with socket.create_connection((host, 443), timeout=timeout):
                    answer.append(True)
            except OSError:
                answer.append(False)

        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        thread.join(timeout)
        _ONLINE[host] = bool(answer and answer[0])
    return _ONLINE[host]


def find_local_weights(card: ModelCard, package_candidates=()) -> tuple[Path | None, list[str]]:
    """First existing weights in ``$MLIPVIZ_MODELS`` then ``package_candidates``; and where it looked."""
    looked = []
    root = models_dir()
    if root is None:
        looked.append("$MLIPVIZ_MODELS (not set)")
    else:
        for name in card.filenames:
            candidate = root / name
            looked.append(str(candidate))
            if candidate.exists():
                return candidate, looked
    for candidate in package_candidates:
        looked.append(str(candidate))
        if Path(candidate).exists():
            return Path(candidate), looked
    return None, looked


def offline_error(card: ModelCard, looked: list[str], download_from: str) -> ModelNotAvailableError:
    places = "\n  ".join(looked)
    target = (f"{models_dir()} (your $MLIPVIZ_MODELS)" if models_dir()
              else "a folder of your choice and set $MLIPVIZ_MODELS to it")
    return ModelNotAvailableError(
        f"cannot load model '{card.name}' ({card.description}): no local weights and "
        f"{download_from} cannot be reached (offline?).\nLooked in:\n  {places}\n"
        f"Fix: download {download_from} on a machine with internet access and put it in "
        f"{target} as one of: {', '.join(card.filenames)}; or pass a weights path to load_model.")
