"""SevenNet backend (package ``sevenn``): SevenNet-0, or any SevenNet checkpoint ``.pth``.

Evaluation batches for real, the way ``sevenn``'s own batch inference
(``sevenn.scripts.inference``) does: one ``AtomGraphData`` per frame (built by
``sevenn.train.dataload.unlabeled_atoms_to_graph``, as ``SevenNetCalculator`` does),
joined into a ``torch_geometric`` ``Batch``, one forward pass with the model in batch
mode. Embeddings are the node features after the last interaction block (its
equivariant gate; 128 scalars for SevenNet-0), caught by a forward hook in that pass.

SevenNet runs in float32 only: its one-hot embedding casts to float32 inside the
network, so a float64 copy of the model fails, and ``SevenNetCalculator`` builds
float32 graphs.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import BaseCalculator

from ..errors import ModelNotAvailableError
from ..frames import Frames
from .backend import Backend, ModelCard
from .base import Model, edge_gate, geometries
from .batching import batch_to_device
from .finetune import TorchTuner
from .registry import package_dir
from .safety import check_pickle, require_file

if TYPE_CHECKING:
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.nn.equivariant_gate import EquivariantGate
    from sevenn.nn.sequential import AtomGraphSequential

    from .finetune import FineTuneSettings

#: pretrained names of sevenn -> checkpoint inside the sevenn package (sevenn._const)
_PRETRAINED = {
    "7net-0": "SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
    "7net-0_11jul2024": "SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
    "7net-0_22may2024": "SevenNet_0__22May2024/checkpoint_sevennet_0.pth",
    "7net-l3i5": "SevenNet_l3i5/checkpoint_l3i5.pth",
}
SOURCE = "https://github.com/MDIL-SNU/SevenNet"


def package_weights(card: ModelCard | None) -> list[Path]:
    """The checkpoint that ships inside the ``sevenn`` wheel for this card (found without importing)."""
    if card is None:
        return []
    rel = _PRETRAINED.get(card.version.lower())
    pkg = package_dir("sevenn")
    if rel is None or pkg is None:
        return []
    return [pkg / "pretrained_potentials" / rel]


def download_source(card: ModelCard) -> str:
    """SevenNet-0 ships in the ``sevenn`` wheel; a broken install is fixed by reinstalling it."""
    return SOURCE


def _import_sevenn() -> None:
    """Import ``sevenn``'s model code. e3nn 0.4.4 unpickles a ``slice`` at import, which
    torch >= 2.6 refuses by default: allow just that, for that one load (mace instead sets
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 for the whole process)."""
    if "e3nn.o3" not in sys.modules:
        with torch.serialization.safe_globals([slice]):
            import e3nn.o3  # noqa: F401
    import sevenn.util  # noqa: F401


def load(card: ModelCard | None, weights: str | Path | None, device: str, dtype: str,
         trust: bool = False) -> SevenNetModel:
    """A `SevenNetModel` from a checkpoint ``.pth`` (``card`` None for a bare path)."""
    if weights is None:
        raise ModelNotAvailableError(
            f"SevenNet checkpoint for '{card.name if card else '?'}' not found in the sevenn "
            f"package (looked at {', '.join(map(str, package_weights(card))) or 'nothing'}); "
            "reinstall it: pip install --force-reinstall 'sevenn>=0.10.4'")
    _import_sevenn()
    import sevenn.util as util

    weights = Path(weights)
    require_file(weights, "SevenNet checkpoint")
    check_pickle(weights, "SevenNet checkpoint (its config holds Python objects)", trust,
                 package_weights(card))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            net, config = util.model_from_checkpoint(str(weights))
    except Exception as exc:
        raise ModelNotAvailableError(
            f"cannot read SevenNet checkpoint {weights}: {type(exc).__name__}: {exc}") from exc
    # model_from_checkpoint builds an AtomGraphSequential (its signature says torch.nn.Module)
    return SevenNetModel(cast("AtomGraphSequential", net), config, weights=weights, card=card, device=device)


class SevenNetModel(Model):
    """A SevenNet (NequIP-style) model evaluated on batched graphs, float32.

    ``weights``: the checkpoint it was read from (None for a network made in this process, e.g.
    fine-tuned and not saved; ``name`` then names it).
    """

    has_stress = True
    has_energies = True
    cutoff: float  # the checkpoint's cutoff, set in __init__
    #: on CPU, passes of about 70 Si atoms at its 5 Å cutoff: 1.4x the throughput of
    #: 768-atom passes (docs/scale.md)
    cost_per_batch = 2000

    def __init__(self, net: AtomGraphSequential, config: dict[str, Any], weights: str | Path | None,
                 card: ModelCard | None = None, device: str = "cpu", name: str | None = None) -> None:
        super().__init__()
        import sevenn._keys as KEY

        self.net = net = self._adopt(net, device)
        net.set_is_batch_data(True)
        self.config = config
        self.weights = Path(weights) if weights is not None else None
        self.cutoff = float(config[KEY.CUTOFF])
        self.elements = frozenset(int(z) for z in config[KEY.TYPE_MAP])

        gates = [name for name in net._modules if name.endswith("_equivariant_gate")]
        if not gates:
            raise ModelNotAvailableError(f"SevenNet checkpoint {weights}: no interaction block found")
        self._gates = sorted(gates, key=lambda n: int(n.split("_")[0]))
        self.embedding_layers = len(self._gates)
        self._choose_embedding_layer(None)

        if name is None:
            name = self.weights.stem if self.weights is not None else "sevennet"
        self._describe(BACKEND, card, self.weights, name, trained_with_sevenn=config.get("version"),
                       cutoff=self.cutoff, num_interactions=len(gates))

    def _choose_embedding_layer(self, layer: int | None) -> None:
        """The scalar (0e) channels of an interaction block's output; default the last block's
        (SevenNet-0's last block outputs only those)."""
        block = self.embedding_layers if layer is None else layer
        self._embedding_module = self._gates[block - 1]
        gate = cast("EquivariantGate", self.net._modules[self._embedding_module])  # a '*_equivariant_gate'
        irreps = gate.gate.irreps_out
        self._scalar_index = torch.tensor(
            [i for (mul, ir), sl in zip(irreps, irreps.slices()) if ir.l == 0
             for i in range(sl.start, sl.stop)], dtype=torch.long)
        self.embedding_width = len(self._scalar_index)
        which = "the last interaction block" if block == self.embedding_layers else \
            f"interaction block {block} of {self.embedding_layers}"
        self.embedding_layer = (f"SevenNet node features after {which} ('{self._embedding_module}', "
                                f"output {irreps}): {self.embedding_width} scalar channels")

    def _graph(self, atoms: Atoms) -> AtomGraphData:
        """One frame's graph, as ``SevenNetCalculator`` builds it (without its info dictionary)."""
        import sevenn._keys as KEY
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        graph = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self.cutoff))
        del graph[KEY.INFO]
        return graph

    def _batch(self, frames: Frames | None = None, graphs: list[AtomGraphData] | None = None) -> Any:
        """The ``torch_geometric`` batch of ``graphs`` (default: those of ``frames``) on the model's device."""
        from torch_geometric.data import Batch

        if graphs is None:
            assert frames is not None  # frames or graphs
            graphs = [self._graph(frames.to_atoms(i)) for i in range(len(frames))]
        return batch_to_device(Batch.from_data_list(graphs), self.device)

    def _evaluate(self, frames: Frames, return_embeddings: bool) -> dict[str, np.ndarray | None]:
        """One forward pass of the network over ``frames`` in batch mode."""
        import sevenn._keys as KEY

        batch = self._batch(frames)
        captured: dict[str, torch.Tensor] = {}
        hook = None
        if return_embeddings:
            hook = self.net._modules[self._embedding_module].register_forward_hook(
                lambda module, inputs, output: captured.__setitem__("x", output[KEY.NODE_FEATURE]))
        try:
            out = self.net(batch)
        finally:
            if hook is not None:
                hook.remove()
        if KEY.PRED_FORCE not in out:  # no edge in the whole batch: no interaction at all
            out[KEY.PRED_FORCE] = torch.zeros((frames.total_atoms, 3))
            out[KEY.PRED_STRESS] = torch.zeros((len(frames), 6))
        # sevenn stress: (n, 6) as [xx, yy, zz, xy, yz, zx], sign opposite to ASE
        s = -out[KEY.PRED_STRESS].detach().cpu().numpy().astype(np.float64)
        stress = np.stack([np.stack([s[:, 0], s[:, 3], s[:, 5]], -1),
                           np.stack([s[:, 3], s[:, 1], s[:, 4]], -1),
                           np.stack([s[:, 5], s[:, 4], s[:, 2]], -1)], -2)
        result = {
            "energy": out[KEY.PRED_TOTAL_ENERGY].detach().cpu().numpy().reshape(-1),
            "forces": out[KEY.PRED_FORCE].detach().cpu().numpy(),
            "stress": stress,
            "energies": out[KEY.ATOMIC_ENERGY].detach().cpu().numpy().reshape(-1),
            "embeddings": None,
        }
        if return_embeddings:
            x = captured["x"]
            result["embeddings"] = x[:, self._scalar_index.to(x.device)].detach().cpu().numpy()
        return result

    atom_gate = ("the edge embedding of every edge i-j (radial basis times SevenNet's polynomial "
                 "cutoff, the input of the bias-free weight networks of every convolution) times "
                 "g_i g_j, so every message between i and j scales with it; and each atomic "
                 "energy after the species-wise scale and shift times g_i")

    def _edge_gated_site_energies(self, frame: Frames, positions: torch.Tensor,
                                  gate: torch.Tensor | None) -> torch.Tensor:
        """Atomic energies of the copies; the edge embedding gated per edge."""
        import sevenn._keys as KEY

        net = self.net
        data = self._batch(graphs=geometries(frame, positions.detach().cpu().numpy(), self._graph))
        pos = positions.reshape(-1, 3)
        first, second = data[KEY.EDGE_IDX]
        cell = data[KEY.CELL].view(-1, 3, 3)
        # as sevenn's EdgePreprocess: vector from edge_idx[0] to edge_idx[1] plus the cell shift
        data[KEY.EDGE_VEC] = pos[second] - pos[first] + torch.einsum(
            "ni,nij->nj", data[KEY.CELL_SHIFT], cell[data[KEY.BATCH][first]])
        if net.eval_type_map:
            data[net.key_node_feature] = net._atomic_numbers_to_onehot(data[net.key_atomic_numbers])
        weight = edge_gate(gate, first, second)
        with torch.enable_grad():
            for module in net:
                data = module(data)
                if weight is not None and KEY.EDGE_EMBEDDING in data:
                    data[KEY.EDGE_EMBEDDING] = data[KEY.EDGE_EMBEDDING] * weight[:, None]
                    weight = None
                if KEY.ATOMIC_ENERGY in data:  # written by the species-wise rescale
                    break
        return data[KEY.ATOMIC_ENERGY].reshape(positions.shape[:2])

    def calculator(self) -> BaseCalculator:
        """``SevenNetCalculator`` on the same checkpoint (its own model instance, float32), or on a
        copy of the network where it was never saved."""
        import copy

        _import_sevenn()
        from sevenn.calculator import SevenNetCalculator

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if self.weights is None:  # the calculator switches its model to one frame at a time: a copy
                return SevenNetCalculator(model=copy.deepcopy(self.net), file_type="model_instance",
                                          device=self.device, sevennet_config=self.config)
            return SevenNetCalculator(model=str(self.weights), file_type="checkpoint",
                                      device=self.device)


#: what `mlipviz.models.preload` imports ahead of the first load
import_package = _import_sevenn


# -- fine-tuning -----------------------------------------------------------------
#: sevenn's fine-tuning preset (``sevenn/presets/fine_tune.yaml`` in the wheel, for SevenNet-0):
#: Adam at 0.004, batches of 4, 100 epochs, an exponential learning-rate decay of 0.99 an epoch
FINETUNE_DEFAULTS = {"epochs": 100, "learning_rate": 0.004, "batch_size": 4}
_LR_DECAY = 0.99
#: the loss of that preset where a checkpoint names none ("keeping original loss function give
#: better ft result": the pretrained SevenNets were trained with it)
_DEFAULT_LOSS = ("huber", {"delta": 0.01})


def _fixed_by_config(net: AtomGraphSequential, config: dict[str, Any]) -> tuple[str, ...]:
    """The parameters sevenn keeps fixed when it trains this checkpoint (its fine-tuning preset
    says ``train_shift_scale: False``, ``train_denominator: False``): the per-element energy shift
    and scale unless the config trains them, and each convolution's denominator likewise."""
    import sevenn._keys as KEY

    fixed = []
    for name, _ in net.named_parameters():
        last = name.rsplit(".", 1)[-1]
        if (last in ("shift", "scale") and not config.get(KEY.TRAIN_SHIFT_SCALE)) or \
                (last == "denominator" and not config.get(KEY.TRAIN_DENOMINTAOR)):
            fixed.append(name)
    return tuple(fixed)


class SevenNetTuner(TorchTuner):
    """sevenn's own ``Trainer`` (``sevenn.train.trainer``) on a copy of a `SevenNetModel`'s network,
    one epoch at a time (``Trainer.run_one_epoch``; `mlipviz.models.finetune.Tuner`): sevenn's loss
    definitions (``PerAtomEnergyLoss``, ``ForceLoss``, ``StressLoss``) with the checkpoint's own
    criterion (Huber, delta 0.01, for the pretrained SevenNets), Adam and an exponential decay of the
    learning rate (sevenn's fine-tuning preset), its ``ErrorRecorder`` for the errors, on labelled
    graphs from sevenn's ``atoms_to_graph`` batched by ``torch_geometric``'s loader, as sevenn's
    training script does. Frozen by default: what sevenn keeps fixed (`_fixed_by_config`). The stress
    term is in GPa, as the other backends' (sevenn's own is in kbar: its preset's weight 0.01 on kbar
    is about 0.1 on GPa in Huber's linear range, `finetune`'s default)."""

    def __init__(self, model: SevenNetModel, train: Frames, validation: Frames, settings: FineTuneSettings) -> None:
        import copy

        _import_sevenn()
        import sevenn._keys as KEY
        from sevenn.train.loss import ForceLoss, PerAtomEnergyLoss, StressLoss
        from sevenn.train.optim import loss_dict, optim_dict, scheduler_dict
        from sevenn.train.trainer import Trainer

        from ..units import EV_A3_IN_GPA

        torch.manual_seed(settings.seed)
        self.settings, self.device, self.model_ref = settings, model.device, model
        self.config = copy.deepcopy(model.config)
        self.net = net = copy.deepcopy(model.net)
        self.freeze(settings, _fixed_by_config(net, self.config))
        loss, param = (self.config[KEY.LOSS], self.config.get(KEY.LOSS_PARAM) or {}) if KEY.LOSS in self.config \
            else _DEFAULT_LOSS
        criterion = loss_dict[str(loss).lower()](**param)
        losses: list[tuple[Any, float]] = [(PerAtomEnergyLoss(criterion=criterion), settings.energy_weight),
                                           (ForceLoss(criterion=criterion), settings.force_weight)]
        if settings.stress_weight > 0:
            stress = StressLoss(unit="GPa", criterion=criterion)
            stress.TO_KB = EV_A3_IN_GPA  # its unit conversion, to GPa instead of kbar
            losses.append((stress, settings.stress_weight))
        self.trainer = Trainer(net, losses, optimizer_cls=optim_dict["adam"],
                               optimizer_args={"lr": settings.learning_rate},
                               scheduler_cls=scheduler_dict["exponentiallr"], scheduler_args={"gamma": _LR_DECAY},
                               device=model.device)
        self.optimizer, self.scheduler = self.trainer.optimizer, self.trainer.scheduler
        self._train_data, self._val_data = self._graphs(train), self._graphs(validation)

    def _graphs(self, frames: Frames) -> list[Any]:
        """Sevenn's labelled graphs (``atoms_to_graph``): total energy, forces, stress with sevenn's
        sign (compression positive) in its order xx, yy, zz, xy, yz, zx."""
        import sevenn._keys as KEY
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import atoms_to_graph

        graphs = []
        for i in range(len(frames)):
            rows = frames.atoms_of(i)
            atoms = Atoms(numbers=frames.numbers[rows], positions=frames.positions[rows], cell=frames.cells[i],
                          pbc=frames.pbc[i])
            atoms.info["y_energy"] = float(cast(np.ndarray, frames.energy)[i])
            atoms.arrays["y_force"] = np.array(cast(np.ndarray, frames.forces)[rows], dtype=float)
            if self.settings.stress_weight > 0:
                atoms.info["y_stress"] = -np.asarray(cast(np.ndarray, frames.stress)[i], dtype=float)
            graph = AtomGraphData.from_numpy_dict(atoms_to_graph(atoms, self.model_ref.cutoff, transfer_info=False))
            del graph[KEY.INFO]
            graphs.append(graph)
        return graphs

    def _epoch(self, graphs: list[Any], epoch: int | None) -> dict[str, float]:
        """One ``Trainer.run_one_epoch`` over ``graphs``: training in ``epoch``'s order, or
        validation (None); the mean absolute errors sevenn's recorder took on the way."""
        from sevenn.error_recorder import ErrorMetric, ErrorRecorder, MAError, get_err_type
        from torch_geometric.loader import DataLoader

        names = {"Energy": "energy_mae", "Force": "force_mae"}
        if self.settings.stress_weight > 0:
            names["Stress_GPa"] = "stress_mae_GPa"
        metrics: list[ErrorMetric] = [MAError(**get_err_type(kind)) for kind in names]
        order = self.shuffled(len(graphs), self.settings, epoch)
        loader = DataLoader([graphs[k] for k in order], batch_size=self.settings.batch_size, shuffle=False)
        self.trainer.run_one_epoch(loader, is_train=epoch is not None, error_recorder=ErrorRecorder(metrics))
        if epoch is not None:
            self.trainer.scheduler_step()  # once an epoch, as sevenn's training loop does
        return {name: float(metric.get()) for name, metric in zip(names.values(), metrics)}

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch of sevenn's ``Trainer`` over the training frames."""
        return self._epoch(self._train_data, epoch)

    def validate(self) -> dict[str, float]:
        """Sevenn's ``Trainer`` (evaluation mode, no step) on the validation frames."""
        return self._epoch(self._val_data, None)

    def save(self, path: Path) -> None:
        """A sevenn checkpoint as sevenn's training writes it (``Trainer.get_checkpoint_dict``: network,
        optimizer and scheduler states; the config; the epoch), which ``sevenn.util.model_from_checkpoint``,
        its calculator and `load_model` read. The config is the model's, its optimizer, scheduler, batch
        size and epochs those of this run, so that sevenn's ``Trainer.args_from_checkpoint`` builds the
        optimizer and scheduler that the saved states belong to."""
        import copy

        import sevenn._keys as KEY

        from ..storage import replacing

        config = copy.deepcopy(self.config)
        epochs = int(self.scheduler.last_epoch)  # one scheduler step an epoch
        config.update({KEY.OPTIMIZER: "adam", KEY.OPTIM_PARAM: {"lr": self.settings.learning_rate},
                       KEY.SCHEDULER: "exponentiallr", KEY.SCHEDULER_PARAM: {"gamma": _LR_DECAY},
                       KEY.BATCH_SIZE: self.settings.batch_size, KEY.EPOCH: epochs})
        checkpoint = self.trainer.get_checkpoint_dict()
        checkpoint.update(config=config, epoch=epochs)
        with replacing(path) as tmp:
            torch.save(checkpoint, tmp)

    def model(self, weights: Path | None) -> SevenNetModel:
        """The trained network as a `SevenNetModel` (frozen, in evaluation mode)."""
        import copy

        return SevenNetModel(copy.deepcopy(self.net), copy.deepcopy(self.config), weights, device=self.device,
                             name=f"{self.model_ref.name}-finetuned")


BACKEND = Backend(
    name="sevenn", package="sevenn", pip="sevenn", extra="sevenn", load=load,
    package_weights=package_weights, download_source=download_source,
    suffixes=(".pth",), name_hint="sevenn",
    dtypes=("float32",),
    dtype_note="its network casts the one-hot element embedding to float32 internally",
    import_package=import_package,
    finetuner=SevenNetTuner, finetune_defaults=FINETUNE_DEFAULTS,
    cards=(
        ModelCard("sevennet-0", "sevenn", "7net-0", "SevenNet-0 (11 July 2024)", "MPtrj (Materials Project, PBE/PBE+U)",
                  ("SevenNet-0", "checkpoint_sevennet_0.pth"),
                  citation="Park et al., J. Chem. Theory Comput. 20, 4857 (2024)", aliases=("7net-0",)),
        ModelCard("sevennet-l3i5", "sevenn", "7net-l3i5", "SevenNet-l3i5 (l_max 3, 5 interaction layers)",
                  "MPtrj (Materials Project, PBE/PBE+U)", ("SevenNet-l3i5", "checkpoint_l3i5.pth"),
                  citation="Park et al., J. Chem. Theory Comput. 20, 4857 (2024)", aliases=("7net-l3i5",)),
    ),
)
