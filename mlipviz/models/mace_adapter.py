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
from .finetune import TorchTuner
from .registry import package_dir
from .safety import check_pickle, process_setting_kept, require_file

if TYPE_CHECKING:
    from mace.modules.models import MACE
    from mace.tools.utils import MetricsLogger

    from .finetune import FineTuneSettings

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
    "default"). ``weights``: the file it was read from (None for a network made in this process,
    e.g. fine-tuned and not saved; ``name`` then names it).
    """

    has_stress = True
    has_energies = True
    cutoff: float  # the network's r_max, set in __init__
    #: on CPU, passes of about 90 Si atoms at r_max 6 Å: 2 to 3x the throughput of
    #: 768-atom passes for MACE-MP-0-small's architecture (docs/scale.md)
    cost_per_batch = 4000

    def __init__(self, net: Any, weights: str | Path | None, card: ModelCard | None = None, device: str = "cpu",
                 dtype: str = "float32", head: str | None = None, name: str | None = None) -> None:
        super().__init__()
        from e3nn import o3
        from mace.tools import utils as mace_utils

        self.net = net = self._adopt(net, device, dtype)
        self.weights = Path(weights) if weights is not None else None
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

        if name is None:
            name = self.weights.stem if self.weights is not None else type(net).__name__
        self._describe(BACKEND, card, self.weights, name, model_class=type(net).__name__,
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
        """``MACECalculator`` reading the same weights file (on a copy of the network where it was
        never saved), in this model's dtype and device."""
        import copy

        kwargs: dict[str, Any] = {"head": self._head} if len(self._heads) > 1 else {}
        # mace's calculator unpickles the file (already vetted by `load`) through torch's
        # process-wide setting: on for this call only
        with process_setting_kept():
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
            from mace.calculators import MACECalculator

            if self.weights is None:
                return MACECalculator(models=[copy.deepcopy(self.net)], device=self.device,
                                      default_dtype=self.dtype, **kwargs)
            return MACECalculator(model_paths=[str(self.weights)], device=self.device,
                                  default_dtype=self.dtype, **kwargs)


# -- fine-tuning -----------------------------------------------------------------
#: mace's naive fine-tuning example (README, "Finetuning foundation models", and mace-docs'
#: guide/finetuning: ``mace_run_train --foundation_model=... --lr=0.01 --batch_size=2
#: --max_num_epochs=6 --ema --ema_decay=0.99 --amsgrad``)
FINETUNE_DEFAULTS = {"epochs": 6, "learning_rate": 0.01, "batch_size": 2}
_EMA_DECAY = 0.99


class _Discard:
    """Where ``train_one_epoch`` logs each step's loss (the tuner reports the epoch's errors)."""

    def log(self, metrics: dict[str, Any]) -> None:
        """Drop one step's entry."""


class MACETuner(TorchTuner):
    """mace's own training code on a copy of a `MACEModel`'s network, one epoch at a time
    (`mlipviz.models.finetune.Tuner`): ``mace.tools.train.train_one_epoch`` (its ``take_step``:
    forward with ``training=True``, the loss, gradient clipping at ``mace_run_train``'s 10, the
    optimizer step, the moving average) and ``evaluate`` for the validation errors; its loss
    (``WeightedEnergyForcesLoss``: energy per atom and forces, or ``WeightedEnergyForcesStressLoss``
    with stress); its optimizer (``get_params_options`` and ``get_optimizer``: Adam with AMSGrad and
    weight decay on the interactions' linear weights and the products, ``mace_run_train``'s defaults),
    its ``LRScheduler`` (ReduceLROnPlateau on the validation loss, factor 0.8, patience 50) and the
    exponential moving average of the weights (decay 0.99) that mace's fine-tuning example asks for,
    which the validation, the best epoch's weights and the saved model use, as mace's checkpoints do.
    The graphs are mace's ``AtomicData`` (``config_from_atoms``, ``AtomicData.from_config``) batched by
    its ``torch_geometric`` loader. Nothing frozen by default (``mace_run_train --freeze`` is off);
    the model's E0s and scale/shift are kept (not re-estimated from the frames). The stress weight
    applies to stress in GPa, as for the other backends (mace's loss is in eV/Å³: the weight is
    scaled by 160.2² for it)."""

    def __init__(self, model: MACEModel, train: Frames, validation: Frames, settings: FineTuneSettings) -> None:
        import copy

        from ..units import EV_A3_IN_GPA

        with process_setting_kept():  # mace's modules may set torch's process-wide setting again
            from mace import modules
            from mace.tools import build_default_arg_parser, torch_tools
            from mace.tools.scripts_utils import LRScheduler, get_optimizer, get_params_options
            from torch_ema import ExponentialMovingAverage

        torch.manual_seed(settings.seed)
        self.settings, self.device, self.model_ref = settings, model.device, model
        self.net = net = copy.deepcopy(model.net)
        self.freeze(settings, ())
        # mace_run_train's own defaults (weight decay, AMSGrad, betas, scheduler), with the fine-tuning rate
        args = build_default_arg_parser().parse_args(["--name", "mlipviz-finetune"])
        args.lr, args.ema, args.ema_decay = settings.learning_rate, True, _EMA_DECAY
        self._max_grad_norm = args.clip_grad
        self.loss_fn: torch.nn.Module
        with torch_tools.default_dtype(model.dtype):
            if settings.stress_weight > 0:
                self.loss_fn = modules.WeightedEnergyForcesStressLoss(
                    energy_weight=settings.energy_weight, forces_weight=settings.force_weight,
                    stress_weight=settings.stress_weight * EV_A3_IN_GPA**2)
            else:
                self.loss_fn = modules.WeightedEnergyForcesLoss(energy_weight=settings.energy_weight,
                                                                forces_weight=settings.force_weight)
        self.loss_fn = self.loss_fn.to(model.device)
        self.optimizer = get_optimizer(args, get_params_options(args, net))
        self.scheduler = LRScheduler(self.optimizer, args)
        self.ema = ExponentialMovingAverage(net.parameters(), decay=args.ema_decay)
        self._output_args = {"energy": True, "forces": True, "virials": False, "stress": settings.stress_weight > 0,
                             "dipoles": False, "polarizability": False}
        self._val_loss: float | None = None  # mace's loss on the validation frames, for the scheduler
        self._train_data, self._val_data = self._graphs(train), self._graphs(validation)

    def _graphs(self, frames: Frames) -> list[Any]:
        """Mace's ``AtomicData`` of ``frames`` with their labels (total energy, forces, stress in
        eV/Å³ with ASE's sign, which is mace's), for the model's head, in its dtype."""
        from mace.data import AtomicData, KeySpecification, config_from_atoms
        from mace.tools import torch_tools

        keys = KeySpecification(info_keys={"energy": "REF_energy", "stress": "REF_stress"},
                                arrays_keys={"forces": "REF_forces"})
        model = self.model_ref
        graphs = []
        with torch_tools.default_dtype(model.dtype):
            for i in range(len(frames)):
                rows = frames.atoms_of(i)
                atoms = Atoms(numbers=frames.numbers[rows], positions=frames.positions[rows], cell=frames.cells[i],
                              pbc=frames.pbc[i])
                atoms.info["REF_energy"] = float(cast(np.ndarray, frames.energy)[i])
                atoms.arrays["REF_forces"] = np.array(cast(np.ndarray, frames.forces)[rows], dtype=float)
                if self.settings.stress_weight > 0:
                    atoms.info["REF_stress"] = np.array(cast(np.ndarray, frames.stress)[i], dtype=float)
                config = config_from_atoms(atoms, key_specification=keys, head_name=model._head)
                graphs.append(AtomicData.from_config(config, z_table=model._z_table, cutoff=model.cutoff,
                                                     heads=model._heads))
        return graphs

    def _loader(self, graphs: list[Any], epoch: int | None) -> Any:
        """Mace's ``torch_geometric`` loader over ``graphs`` in the order of `TorchTuner.shuffled`."""
        from mace.tools import torch_geometric

        # a list of AtomicData, as mace_run_train passes its data sets
        ordered: Any = [graphs[k] for k in self.shuffled(len(graphs), self.settings, epoch)]
        return torch_geometric.dataloader.DataLoader(ordered, batch_size=self.settings.batch_size, shuffle=False,
                                                     drop_last=False)

    def _errors(self, aux: dict[str, Any]) -> dict[str, float]:
        """Mace's error summary (``MACELoss.compute``) in `Tuner`'s names and units."""
        from ..units import EV_A3_IN_GPA

        errors = {"energy_mae": float(aux["mae_e_per_atom"]), "force_mae": float(aux["mae_f"])}
        if self._output_args["stress"]:
            errors["stress_mae_GPa"] = float(aux["mae_stress"]) * EV_A3_IN_GPA
        return errors

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch of mace's ``train_one_epoch``; the errors of its steps, taken from each step's
        forward pass by mace's ``MACELoss`` metric. As in mace's training loop, every epoch but the
        first starts with a scheduler step on the last validation loss."""
        from mace.tools.train import MACELoss, train_one_epoch

        if epoch > 0 and self._val_loss is not None:
            self.scheduler.step(metrics=self._val_loss)

        metrics = MACELoss(loss_fn=self.loss_fn).to(self.device)
        current: dict[str, Any] = {}

        def batches() -> Any:
            for batch in self._loader(self._train_data, epoch):
                current["batch"] = batch  # moved to the device in place by take_step
                yield batch

        def record(module: torch.nn.Module, inputs: Any, output: dict[str, Any]) -> None:
            with torch.no_grad():
                metrics.update(current["batch"], {k: v.detach() if isinstance(v, torch.Tensor) else v
                                                  for k, v in output.items()})

        self.net.train()
        hook = self.net.register_forward_hook(record)
        try:
            train_one_epoch(model=self.net, loss_fn=self.loss_fn, data_loader=batches(), optimizer=self.optimizer,
                            epoch=epoch, output_args=self._output_args, max_grad_norm=self._max_grad_norm,
                            ema=self.ema, logger=cast("MetricsLogger", _Discard()), device=torch.device(self.device),
                            distributed=False)
        finally:
            hook.remove()
            self.net.eval()
        _, aux = metrics.compute()
        return self._errors(aux)

    def validate(self) -> dict[str, float]:
        """Mace's ``evaluate`` on the validation frames with the averaged weights (its loss kept for
        the scheduler's next step)."""
        from mace.tools.train import evaluate

        with self.ema.average_parameters():
            loss, aux = evaluate(model=self.net, loss_fn=self.loss_fn, data_loader=self._loader(self._val_data, None),
                                 output_args=self._output_args, device=torch.device(self.device))
        self._val_loss = float(loss)
        return self._errors(aux)

    def state(self) -> dict[str, Any]:
        """The network's, optimizer's, scheduler's and moving average's states, and the last
        validation loss."""
        return {**super().state(), "ema": self.ema.state_dict(), "val_loss": self._val_loss}

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from what `state` returned."""
        super().load_state(state)
        self.ema.load_state_dict(state["ema"])
        self._val_loss = state["val_loss"]

    def weights(self) -> dict[str, Any]:
        """A copy of the averaged weights (what mace evaluates and saves)."""
        with self.ema.average_parameters():
            return super().weights()

    def _frozen_copy(self) -> Any:
        """A copy of the network on the CPU, evaluation mode, no gradients (what mace saves)."""
        import copy

        net = copy.deepcopy(self.net).cpu().eval()
        for parameter in net.parameters():
            parameter.requires_grad_(False)
        return net

    def save(self, path: Path) -> None:
        """The whole network, ``torch.save(model)`` as mace's training writes its ``.model`` file,
        which mace's calculator and `load_model` read."""
        from ..storage import replacing

        with replacing(path) as tmp:
            torch.save(self._frozen_copy(), tmp)

    def model(self, weights: Path | None) -> MACEModel:
        """The trained network as a `MACEModel` (frozen, in evaluation mode, the model's head)."""
        model = self.model_ref
        return MACEModel(self._frozen_copy(), weights, device=self.device, dtype=model.dtype, head=model._head,
                         name=f"{model.name}-finetuned")


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
    finetuner=MACETuner, finetune_defaults=FINETUNE_DEFAULTS,
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
