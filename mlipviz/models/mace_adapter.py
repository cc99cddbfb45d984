"""MACE backend (package ``mace-torch``): the MACE foundation models (MP-0, MPA-0, OMAT-0,
MATPES-0, MH-1) or any MACE ``.model`` file.

Evaluation batches for real: each frame's neighbour list comes from mace's own
``get_neighborhood`` (what ``AtomicData.from_config`` calls), the frames' graphs are joined
into the input dictionary a ``mace.tools.torch_geometric.Batch`` of ``AtomicData`` gives the
model (only the entries the model reads, built without ``AtomicData``'s per-frame tensors),
and the model runs once on it (``compute_stress=True``), as ``MACECalculator`` does for a
single structure. Embeddings are the invariant node descriptors that
``MACECalculator.get_descriptors(atoms, invariants_only=True)`` returns (scalar
channels of every interaction layer, concatenated), taken from the same forward pass.

``mace`` is imported lazily: importing it sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``
for the whole process (restored after the import: `safety.process_setting_kept`), and
``e3nn`` 0.4.4 needs ``mace`` imported first under torch >= 2.6. A ``.model`` file is a
pickled module: from a path mace did not download it is opened after an
`UntrustedFileWarning`, unless ``trust=True``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import BaseCalculator

from ..errors import MlipvizError, ModelNotAvailableError
from ..frames import Frames
from .backend import Backend, ModelCard
from .base import Model, edge_gate, geometries
from .batching import to_device
from .registry import package_dir
from .safety import check_pickle, process_setting_kept, require_file

if TYPE_CHECKING:
    from mace.modules.models import MACE

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: the one model file some mace wheels ship (mace.calculators.foundations_models.local_model_path)
_SHIPPED = "mace-mpa-0-medium.model"
MACE_MP_RELEASES = "https://github.com/ACEsuit/mace-mp/releases/download"
MACE_FOUNDATIONS = "https://github.com/ACEsuit/mace-foundations/releases/download"


def _cache_dir() -> Path:
    """``mace.tools.utils.get_cache_dir()``, without importing mace (checked in the tests)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mace"


def package_weights(card: ModelCard | None) -> list[Path]:
    """Where ``mace`` keeps this card's weights: its download cache, and the file in its wheel.

    ``download_mace_mp_checkpoint`` caches a URL under its basename with every character
    but ``[A-Za-z0-9_]`` removed; the plain basename is listed too (a file put there by hand).
    """
    if card is None or not card.url:
        return []
    base = os.path.basename(card.url)
    stripped = "".join(c for c in base if c.isalnum() or c == "_")
    out = [_cache_dir() / stripped]
    if base != stripped:
        out.append(_cache_dir() / base)
    pkg = package_dir("mace")
    if pkg is not None and base == _SHIPPED:
        out.append(pkg / "calculators" / "foundations_models" / base)
    return out


def download_source(card: ModelCard) -> str:
    """The address mace downloads ``card``'s model file from (``card.url``)."""
    assert card.url is not None  # every MACE card has its download address
    return card.url


def _download(card: ModelCard | None) -> Path:
    """Download ``card.url`` through mace's own code into its cache; returns the file."""
    if card is None or not card.url:
        raise ModelNotAvailableError("a MACE model without weights path or download URL")
    with process_setting_kept():  # mace.calculators sets it again
        from mace.calculators.foundations_models import download_mace_mp_checkpoint

    return Path(download_mace_mp_checkpoint(card.url))


def load(card: ModelCard | None, weights: str | Path | None, device: str, dtype: str,
         trust: bool = False) -> MACEModel:
    """A `MACEModel` from a ``.model`` file (``weights``), downloading first if it is None."""
    with process_setting_kept():
        import mace  # noqa: F401  (sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD before e3nn loads)

    weights = Path(weights) if weights is not None else _download(card)
    require_file(weights, "MACE model file")
    check_pickle(weights, "MACE model (torch.save of the whole module)", trust, package_weights(card))
    try:
        net = torch.load(str(weights), map_location=device, weights_only=False)
    except Exception as exc:
        raise ModelNotAvailableError(
            f"cannot read MACE model file {weights}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(net, torch.nn.Module) or not hasattr(net, "atomic_numbers") \
            or not hasattr(net, "r_max"):
        raise ModelNotAvailableError(
            f"{weights} does not hold a MACE model (got {type(net).__name__}); "
            "pass a file written by torch.save(model) as mace's training does")
    if hasattr(net, "joint_embedding"):  # a MACE built with embedding_specs
        specs = cast("MACE", net).embedding_specs
        raise ModelNotAvailableError(
            f"MACE model {weights} embeds per-structure inputs ({', '.join(specs)}), "
            "which mlipviz's batched graphs do not carry; wrap its MACECalculator instead: "
            "mlipviz.load_model(MACECalculator(model_paths=...))")
    return MACEModel(net, weights=weights, card=card, device=device, dtype=dtype,
                     head=None if card is None else card.option("head"))


class MACEModel(Model):
    """A MACE energy model (``MACE`` / ``ScaleShiftMACE``) evaluated on batched graphs.

    ``net``: the network as ``torch.load`` unpickles it, a ``torch.nn.Module`` whose buffers
    (``r_max``, ``atomic_numbers``, ``num_interactions``) and blocks are read by name. ``head``:
    which head of a multi-head model to run (default: its only head, or the one called
    "default").
    """

    has_stress = True
    has_energies = True
    cutoff: float  # the network's r_max, set in __init__
    #: on CPU, passes of about 90 Si atoms at r_max 6 Å: 2 to 3x the throughput of
    #: 768-atom passes for MACE-MP-0-small's architecture (docs/scale.md)
    cost_per_batch = 4000

    def __init__(self, net: Any, weights: str | Path, card: ModelCard | None = None, device: str = "cpu",
                 dtype: str = "float32", head: str | None = None) -> None:
        super().__init__()
        from e3nn import o3
        from mace.tools import utils as mace_utils

        self.net = net = self._adopt(net, device, dtype)
        self.weights = Path(weights)
        self.cutoff = float(net.r_max)
        self._z_table = mace_utils.AtomicNumberTable([int(z) for z in net.atomic_numbers])
        self._z_index = np.full(max(self._z_table.zs) + 1, -1, dtype=np.int64)  # Z -> one-hot column
        self._z_index[self._z_table.zs] = np.arange(len(self._z_table.zs))
        self.elements = frozenset(int(z) for z in net.atomic_numbers)

        heads = list(getattr(net, "heads", None) or ["Default"])
        if head is not None:  # a multi-head model's card names its head
            if head not in heads:
                raise ModelNotAvailableError(f"MACE model {weights} has heads {heads}, not {head!r}")
        elif len(heads) == 1:
            head = heads[0]
        else:
            named = [h for h in heads if h.lower() == "default"]
            if not named:
                raise ModelNotAvailableError(
                    f"MACE model {weights} has heads {heads} and none is 'default'; "
                    "mlipviz does not choose a head for you")
            head = named[0]
        self._heads, self._head = heads, head
        self._head_index = heads.index(head)

        # invariant descriptors, as MACECalculator.get_descriptors(invariants_only=True)
        self._num_layers = int(net.num_interactions)
        irreps_out = o3.Irreps(str(net.products[0].linear.irreps_out))
        self._l_max = irreps_out.lmax
        self._num_inv = irreps_out.dim // (self._l_max + 1) ** 2
        self.embedding_layers = self._num_layers
        self._choose_embedding_layer(None)

        self._describe(BACKEND, card, self.weights, self.weights.stem, model_class=type(net).__name__,
                       r_max=self.cutoff, num_interactions=self._num_layers, head=head)

    def _choose_embedding_layer(self, layer: int | None) -> None:
        """Default: the scalar channels of all interaction layers, concatenated (MACE's
        ``get_descriptors(invariants_only=True)``); ``layer`` k: those of layer k alone."""
        n, width = self._num_layers, self._num_inv
        if layer is None:
            self._embedding_columns = slice(0, n * width)
            self.embedding_layer = (
                f"MACE invariant node descriptors (get_descriptors, invariants_only=True): scalar "
                f"channels of all {n} interaction layers concatenated, {n}x{width} = {n * width} wide")
        else:
            self._embedding_columns = slice((layer - 1) * width, layer * width)
            self.embedding_layer = (f"MACE invariant node descriptors of interaction layer {layer} of "
                                    f"{n} (its {width} scalar channels)")
        self.embedding_width = self._embedding_columns.stop - self._embedding_columns.start

    # -- evaluation -----------------------------------------------------------
    def _graph(self, atoms: Atoms) -> dict[str, np.ndarray]:
        """One frame's graph: mace's ``get_neighborhood`` on its positions, cell and pbc."""
        from mace.data.neighborhood import get_neighborhood

        edge_index, shifts, unit_shifts, cell = get_neighborhood(
            positions=atoms.positions, cutoff=self.cutoff,
            pbc=(bool(atoms.pbc[0]), bool(atoms.pbc[1]), bool(atoms.pbc[2])),
            cell=atoms.cell.array.copy())
        return {"numbers": atoms.numbers, "positions": atoms.positions, "cell": cell,
                "edge_index": edge_index, "shifts": shifts, "unit_shifts": unit_shifts}

    def _batch(self, frames: Frames | None = None, graphs: list[dict[str, np.ndarray]] | None = None
               ) -> dict[str, torch.Tensor]:
        """The model's input for ``graphs`` (default: those of ``frames``), on its device:
        the entries of ``Batch.from_data_list`` of their ``AtomicData`` that MACE reads."""
        if graphs is None:
            assert frames is not None  # frames or graphs
            graphs = [self._graph(frames.to_atoms(i)) for i in range(len(frames))]
        sizes = np.array([len(g["numbers"]) for g in graphs])
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        numbers = np.concatenate([g["numbers"] for g in graphs])
        node_attrs = np.zeros((len(numbers), len(self._z_table)))
        node_attrs[np.arange(len(numbers)), self._z_index[numbers]] = 1.0
        batch = {
            "node_attrs": node_attrs,
            "positions": np.concatenate([g["positions"] for g in graphs]),
            "cell": np.concatenate([g["cell"] for g in graphs]),
            "edge_index": np.concatenate([g["edge_index"] + offsets[k] for k, g in enumerate(graphs)], axis=1),
            "shifts": np.concatenate([g["shifts"] for g in graphs]),
            "unit_shifts": np.concatenate([g["unit_shifts"] for g in graphs]).astype(np.float64),
            "batch": np.repeat(np.arange(len(graphs)), sizes),
            "ptr": offsets,
            "head": np.full(len(graphs), self._head_index),
        }
        ftype = _DTYPES[self.dtype]
        return {key: to_device(value, self.device, ftype if value.dtype.kind == "f" else torch.long)
                for key, value in batch.items()}

    def _evaluate(self, frames: Frames, return_embeddings: bool) -> dict[str, np.ndarray | None]:
        """One forward pass of the network over ``frames``, stress included."""
        from mace.modules.utils import extract_invariant

        batch = self._batch(frames)
        out = self.net(batch, compute_stress=True, training=False)
        stress = out["stress"].detach().cpu().numpy().astype(np.float64)
        result = {
            "energy": out["energy"].detach().cpu().numpy(),
            "forces": out["forces"].detach().cpu().numpy(),
            "stress": stress,
            "energies": out["node_energy"].detach().cpu().numpy(),
            "embeddings": None,
        }
        if return_embeddings:
            inv = extract_invariant(out["node_feats"], num_layers=self._num_layers,
                                    num_features=self._num_inv, l_max=self._l_max)
            result["embeddings"] = inv[:, self._embedding_columns].detach().cpu().numpy()
        return result

    atom_gate = ("the smooth cutoff envelope of every edge i-j (the radial embedding's cutoff, "
                 "which multiplies the tensor-product weights, or its envelope-weighted radial "
                 "features where the model applies the cutoff there) times g_i g_j, so every "
                 "message between i and j scales with it; and each node energy (E0 plus the "
                 "scaled readouts) times g_i")

    def _edge_gated_site_energies(self, frame: Frames, positions: torch.Tensor,
                                  gate: torch.Tensor | None) -> torch.Tensor:
        """Node energies of the copies; the radial embedding's cutoff gated per edge."""
        net = self.net
        if gate is not None and hasattr(net, "pair_repulsion"):
            raise MlipvizError(f"model {self.name} has a ZBL pair-repulsion term, which mlipviz "
                               "cannot gate per atom; use inputs='positions'")
        graphs = geometries(frame, positions.detach().cpu().numpy(), self._graph)
        batch = self._batch(graphs=graphs)
        batch["positions"] = positions.reshape(-1, 3)
        hook = None
        if gate is not None:
            weight = edge_gate(gate, batch["edge_index"][0], batch["edge_index"][1])[:, None]

            def gate_edges(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...],
                           output: tuple[torch.Tensor, torch.Tensor | None]
                           ) -> tuple[torch.Tensor, torch.Tensor | None]:
                feats, cutoff = output
                return (feats, cutoff * weight) if cutoff is not None else (feats * weight, None)

            hook = net.radial_embedding.register_forward_hook(gate_edges)
        try:
            with torch.enable_grad():
                out = net(batch, compute_force=False, training=False)
        finally:
            if hook is not None:
                hook.remove()
        return out["node_energy"].reshape(positions.shape[:2])

    def calculator(self) -> BaseCalculator:
        """``MACECalculator`` reading the same weights file, in this model's dtype and device."""
        kwargs: dict[str, Any] = {"head": self._head} if len(self._heads) > 1 else {}
        # mace's calculator unpickles the file (already vetted by `load`) through torch's
        # process-wide setting: on for this call only
        with process_setting_kept():
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
            from mace.calculators import MACECalculator

            return MACECalculator(model_paths=[str(self.weights)], device=self.device,
                                  default_dtype=self.dtype, **kwargs)


_CITATION = "Batatia et al., arXiv 2401.00096 (2023)"
_MPTRJ = "MPtrj (Materials Project, PBE/PBE+U)"
_OMAT = "OMat24 (off-equilibrium bulk: rattled and AIMD structures, PBE/PBE+U)"

BACKEND = Backend(
    name="mace", package="mace", pip="mace-torch", extra="mace", load=load,
    package_weights=package_weights, download_source=download_source,
    suffixes=(".model",),
    dtypes=("float32", "float64"),
    # no import_package: importing mace changes a process-wide torch setting, so it waits until
    # a MACE model is asked for
    cards=(
        ModelCard("mace-mp-0", "mace", "medium", "MACE-MP-0 medium (2023-12-03, 4.69M parameters)", _MPTRJ,
                  ("2023-12-03-mace-128-L1_epoch-199.model", "mace-mp-0-medium.model"),
                  url=f"{MACE_MP_RELEASES}/mace_mp_0/2023-12-03-mace-128-L1_epoch-199.model",
                  citation=_CITATION, aliases=("mace-mp-0-medium",)),
        ModelCard("mace-mp-0-small", "mace", "small", "MACE-MP-0 small (2023-12-10)", _MPTRJ,
                  ("2023-12-10-mace-128-L0_energy_epoch-249.model", "mace-mp-0-small.model"),
                  url=f"{MACE_MP_RELEASES}/mace_mp_0/2023-12-10-mace-128-L0_energy_epoch-249.model",
                  citation=_CITATION),
        ModelCard("mace-mpa-0", "mace", "medium-mpa-0", "MACE-MPA-0 medium", "MPtrj + sAlex (PBE/PBE+U)",
                  ("mace-mpa-0-medium.model",), url=f"{MACE_MP_RELEASES}/mace_mpa_0/mace-mpa-0-medium.model",
                  citation=_CITATION),
        ModelCard("mace-omat-0", "mace", "medium-omat-0", "MACE-OMAT-0 medium (Academic Software License)",
                  _OMAT, ("mace-omat-0-medium.model",),
                  url=f"{MACE_MP_RELEASES}/mace_omat_0/mace-omat-0-medium.model", citation=_CITATION),
        ModelCard("mace-matpes-pbe-0", "mace", "mace-matpes-pbe-0",
                  "MACE-MATPES-PBE-0 (OMAT-0 fine-tuned on MatPES-PBE; Academic Software License)",
                  "OMat24, then MatPES-PBE (MD-sampled, PBE without +U)", ("MACE-matpes-pbe-omat-ft.model",),
                  url=f"{MACE_FOUNDATIONS}/mace_matpes_0/MACE-matpes-pbe-omat-ft.model", citation=_CITATION),
        ModelCard("mace-matpes-r2scan-0", "mace", "mace-matpes-r2scan-0",
                  "MACE-MATPES-r2SCAN-0 (OMAT-0 fine-tuned on MatPES-r2SCAN; Academic Software License)",
                  "OMat24, then MatPES-r2SCAN (MD-sampled, r2SCAN)", ("MACE-matpes-r2scan-omat-ft.model",),
                  url=f"{MACE_FOUNDATIONS}/mace_matpes_0/MACE-matpes-r2scan-omat-ft.model", citation=_CITATION),
        ModelCard("mace-mh-1", "mace", "mh-1",
                  "MACE-MH-1, multi-head; its head 'omat_pbe' (inorganic materials)",
                  "OMat24, OMol25, OC20, MATPES, SPICE (one head each); head 'omat_pbe': OMat24, PBE/PBE+U",
                  ("mace-mh-1.model",), url=f"{MACE_FOUNDATIONS}/mace_mh_1/mace-mh-1.model",
                  citation="Batatia et al., Cross learning between electronic structure theories for unifying "
                           "molecular, surface, and inorganic crystal foundation force fields, arXiv 2510.25380 "
                           "(2025)",
                  options=(("head", "omat_pbe"),)),
    ),
)
