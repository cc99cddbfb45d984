"""MatGL potentials (M3GNet PES models, ``matgl`` 4.x PyG backend) behind `Model`.

Weights are a matgl model folder (``model.json``, ``model.pt``, ``state.pt``),
loaded with ``matgl.load_model(folder)``. `MatGLModel._evaluate` converts every
frame with matgl's own ``Atoms2Graph`` (the converter ``PESCalculator`` uses),
collates the graphs into one ``torch_geometric`` ``Batch`` and runs ONE
``Potential`` forward (energy, forces and stress by autograd) on it; per-atom
energies and node embeddings are read from ``M3GNet.feature_dict`` of that same
pass.

float64 is supported: ``Potential.forward`` casts its float inputs to the
model's dtype, so ``potential.double()`` runs the whole network in float64. In
float64 the adapter also passes coordinates and cell in float64 (matgl's
converter rounds them to float32, and so does ``PESCalculator`` even for a
float64 potential: the two then differ by about |F| x 1e-7 Å).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from ase.calculators.calculator import BaseCalculator

from ..errors import ModelNotAvailableError
from ..frames import Frames
from ..settings import folder_setting
from ..units import GPA
from .backend import Backend, ModelCard
from .base import Model, edge_gate, geometries
from .batching import batch_to_device, to_device
from .finetune import TorchTuner

if TYPE_CHECKING:
    from matgl.apps.pes import Potential

    from .finetune import FineTuneSettings

#: matgl's Hugging Face organisation for pretrained models (``matgl.utils.io.HF_MATGL_ORG``).
HF_ORG = "materialyze"
_MODEL_FILES = ("model.json", "model.pt", "state.pt")


def cache_dir() -> Path:
    """Matgl's cache, ``matgl.config.MATGL_CACHE`` (``~/.cache/matgl``).

    ``$MATGL_CACHE`` overrides it for mlipviz's lookup and downloads (matgl 4.1
    itself has no such variable; mlipviz passes the folder to matgl explicitly).
    """
    return folder_setting("MATGL_CACHE") or Path.home() / ".cache" / "matgl"


def package_weights(card: ModelCard | None) -> list[Path]:
    """Where matgl keeps ``card.version`` once downloaded: ``model.json`` in its cache (none
    without a card).

    Both layouts: the legacy ``<cache>/<name>/`` folder and the Hugging Face hub
    cache ``<cache>/models--materialyze--<name>/snapshots/<revision>/``.
    """
    if card is None:
        return []
    root = cache_dir()
    candidates = [root / card.version / "model.json"]
    hub = root / f"models--{HF_ORG}--{card.version}" / "snapshots"
    snapshots = sorted(hub.glob("*/model.json")) if hub.is_dir() else []
    candidates += snapshots or [hub / "*" / "model.json"]
    return candidates


def download_source(card: ModelCard) -> str:
    """The Hugging Face repository matgl downloads ``card.version`` from."""
    return f"https://huggingface.co/{HF_ORG}/{card.version}"


def _model_folder(weights: str | Path) -> Path:
    """The matgl model folder of ``weights`` (the folder or its ``model.json``), its files checked."""
    path = Path(weights).expanduser()
    folder = path.parent if path.is_file() else path
    missing = [name for name in _MODEL_FILES if not (folder / name).exists()]
    if missing:
        raise ModelNotAvailableError(f"{folder} is not a matgl model folder: missing {', '.join(missing)}")
    return folder


def load(card: ModelCard | None, weights: str | Path | None, device: str, dtype: str,
         trust: bool = False) -> MatGLModel:
    # ``trust`` is not needed: matgl reads its model.pt and state.pt with weights_only=True
    """A `MatGLModel`; ``card`` None for a bare model folder (or its ``model.json``)."""
    import matgl

    if weights is None:  # download through matgl (only called when the hub is reachable)
        assert card is not None  # no weights path: a named model
        potential = matgl.load_model(card.version, cache_dir=str(cache_dir()))
        folder, where = None, card.version
    else:
        folder = _model_folder(weights)
        potential = matgl.load_model(folder)
        where = str(folder)
    from matgl.apps.pes import Potential

    if not isinstance(potential, Potential) or not hasattr(potential.model, "element_types"):
        raise ModelNotAvailableError(f"{where} holds a matgl {type(potential).__name__}, not an "
                                     "interatomic potential (matgl.apps.pes.Potential)")
    return MatGLModel(potential, card, folder, device, dtype)


class MatGLModel(Model):
    """A loaded matgl ``Potential``.

    ``elements``: the atomic numbers of ``potential.model.element_types``, the
    element list the node-embedding table is built on (89 elements for the
    pretrained M3GNets: H-Pu without Po, At, Rn, Fr, Ra). ``embedding_layer``:
    node features after the last M3GNet graph block (``feature_dict["gc_<n>"]
    ["node_feat"]``, the readout's input), width ``dim_node_embedding`` (64);
    ``use_embedding_layer(k)`` takes those after block k (``gc_<k>``).
    ``energies``: the per-atom readout of extensive models,
    ``data_std * readout_i + data_mean / n_atoms + element_ref(Z_i)``, which sums
    to the total energy; None for intensive models or with the ZBL term.

    TensorNet (matgl's Cartesian-tensor network): ``embedding_layer`` is the readout's input,
    the norms of each channel's scalar, antisymmetric and traceless parts after the last
    interaction layer, normalised and projected (``feature_dict["readout"]``, width 128 for the
    MatPES model); ``use_embedding_layer(k)`` takes those norms after layer k, before the
    projection (width 3 x ``units``); ``energies``: its final layer on each atom's features, scaled
    as above. Its attribution gate scales the cosine cutoff of each edge, which multiplies every
    edge term (its radial weights carry biases, so gating the radial basis, as for M3GNet, would
    not remove an edge).
    """

    has_stress = True

    def __init__(self, potential: Potential, card: ModelCard | None, folder: Path | None, device: str,
                 dtype: str, name: str | None = None) -> None:
        super().__init__()
        from ase.data import atomic_numbers
        from matgl.ext.ase import Atoms2Graph

        self.potential = potential = self._adopt(potential, device, dtype)
        # the matgl model (M3GNet or another architecture); matgl types Potential.model as a bare callable
        net: Any = potential.model
        self.net = net
        self.cutoff = float(net.cutoff)
        self.elements = frozenset(atomic_numbers[s] for s in net.element_types)
        self._converter = Atoms2Graph(tuple(net.element_types), self.cutoff)
        # per-atom readout and node features as M3GNet and TensorNet store them in ``feature_dict``
        self._architecture = type(net).__name__
        is_m3gnet, is_tensornet = self._architecture == "M3GNet", self._architecture == "TensorNet"
        if is_m3gnet:
            n_blocks = getattr(net, "n_blocks", None)
            width = getattr(getattr(net, "embedding", None), "dim_node_embedding", None)
            self._node_width = int(width) if width else None
            self.embedding_layers = int(n_blocks) if n_blocks and width else 0
        elif is_tensornet:  # the readout's input (linear layer's output), or 3 norms per channel of a layer
            self._node_width = int(net.linear.out_features)
            self.embedding_layers = len(net.layers)
        else:
            self._node_width, self.embedding_layers = None, 0
        if self.embedding_layers:
            self._choose_embedding_layer(None)
        self.has_energies = ((is_m3gnet or is_tensornet) and not net.is_intensive
                             and not getattr(potential, "calc_repuls", False))
        if is_tensornet:
            self.atom_gate = ("TensorNet's cosine cutoff of every edge i-j (which multiplies every edge term "
                              "of its tensor embedding and of each interaction) times g_i g_j, so every "
                              "message between i and j scales with it; and each site energy times g_i")
        elif not is_m3gnet:  # another matgl architecture: no gate written for it
            self.atom_gate = None
        if card is None and folder is None:  # a network made in this process (fine-tuned), not saved
            source, version, training_data = None, None, None
            name = name or type(net).__name__
        elif card is None:  # a bare model folder: its name and README say what it is
            assert folder is not None  # no card: a folder was given
            source, name, version, training_data = str(folder), folder.name, folder.name, _training_data(folder)
        else:
            source = str(folder) if folder is not None else f"{download_source(card)} (matgl cache)"
            name, version, training_data = card.name, None, None
        self._describe(BACKEND, card, source, name, version=version, training_data=training_data,
                       architecture=type(net).__name__,
                       n_params=int(sum(p.numel() for p in potential.parameters())), cutoff=self.cutoff,
                       threebody_cutoff=float(getattr(net, "threebody_cutoff", float("nan"))),
                       embedding_width=self._node_width)

    def _choose_embedding_layer(self, layer: int | None) -> None:
        """Node features after graph block ``layer`` (None: the last, the readout's input)."""
        n = self.embedding_layers
        if self._architecture == "TensorNet":
            units = int(self.net.units)
            if layer is None:
                self._embedding_key, self.embedding_width = "readout", self._node_width
                self.embedding_layer = (f"TensorNet atom features after interaction layer {n} of {n}: the norms of "
                                        "the node tensors' scalar, antisymmetric and traceless parts, normalised "
                                        f"and projected (readout input, width {self._node_width})")
            else:
                self._embedding_key, self.embedding_width = f"gc_{layer}", 3 * units
                self.embedding_layer = (f"TensorNet norms of the scalar, antisymmetric and traceless parts of the "
                                        f"node tensors after interaction layer {layer} of {n} (width {3 * units})")
            return
        block = n if layer is None else layer
        self._embedding_key = f"gc_{block}"
        self.embedding_width = self._node_width
        readout = "readout input, " if block == n else ""
        self.embedding_layer = f"M3GNet node_feat after graph block {block} of {n} ({readout}width {self._node_width})"

    def calculator(self) -> BaseCalculator:
        """Matgl's ``PESCalculator`` on the same potential, stress in eV/Å^3 (ASE convention)."""
        from matgl.ext.ase import PESCalculator

        return PESCalculator(self.potential, stress_unit="eV/A3")

    def _evaluate(self, frames: Frames, return_embeddings: bool) -> dict[str, np.ndarray | None]:
        """One ``Potential`` forward over ``frames`` (matgl's graphs, one batch)."""
        from ase import Atoms
        from torch_geometric.data import Batch

        graphs, lattices, states = [], [], []
        for i in range(len(frames)):
            rows = frames.atoms_of(i)
            atoms = Atoms(numbers=frames.numbers[rows], positions=frames.positions[rows],
                          cell=frames.cells[i], pbc=frames.pbc[i])
            graph, lattice, state = self._converter.get_graph(atoms)
            if self.dtype == "float64":
                # the converter rounds coordinates and cell to float32 (matgl.float_th);
                # rebuild them in float64 the same way so the float64 network sees exact inputs
                if atoms.pbc.all():
                    frac = atoms.get_scaled_positions(False)
                    graph.frac_coords = torch.as_tensor(frac, dtype=torch.float64)
                    lattice = torch.as_tensor(atoms.cell.array, dtype=torch.float64)
                else:
                    graph.frac_coords = torch.as_tensor(atoms.positions, dtype=torch.float64)
                    lattice = torch.eye(3, dtype=torch.float64)
            graphs.append(graph)
            lattices.append(lattice.reshape(1, 3, 3))
            states.append(np.asarray(state))
        batch = batch_to_device(Batch.from_data_list(graphs), self.device)
        lattice = torch.cat(lattices).to(self.device)
        state_attr = to_device(np.stack(states), self.device)
        n = len(frames)
        try:
            with torch.enable_grad():
                energy, forces, stress, _ = self.potential(batch, lattice, state_attr)[:4]
            result = {
                "energy": energy.detach().reshape(n).cpu().numpy(),
                "forces": forces.detach().cpu().numpy(),
                # GPa -> eV/Å^3 (times ase.units.GPa) as PESCalculator(stress_unit="eV/A3")
                # does; matgl's sign convention (compression negative) is ASE's
                "stress": (stress.detach().reshape(n, 3, 3).cpu().numpy() * GPA).astype(np.float64),
                "energies": self._site_energies(batch, frames) if self.has_energies else None,
            }
            if return_embeddings:
                result["embeddings"] = self._embeddings().detach().cpu().numpy()
        finally:
            self.net.feature_dict = {}  # drop the batch's tensors and autograd graph
        return result

    atom_gate: str | None = ("the radial basis of every bond i-j (M3GNet's smooth Bessel basis, from which "
                             "the bias-free edge and node weights of every graph convolution are made) and "
                             "its three-body cutoff weight, each times g_i g_j, so every message and every "
                             "triplet through the bond scales with it; and each site energy times g_i")

    def _edge_gated_site_energies(self, frame: Frames, positions: torch.Tensor,
                                  gate: torch.Tensor | None) -> torch.Tensor:
        """Site energies of the copies, each edge gated: M3GNet's bond bases and three-body weights,
        TensorNet's cosine cutoff (every edge term of its embedding and interactions carries it)."""
        from torch_geometric.data import Batch

        if not self.has_energies or self.atom_gate is None:
            return super()._edge_gated_site_energies(frame, positions, gate)
        built = geometries(frame, positions.detach().cpu().numpy(), self._converter.get_graph)
        batch = Batch.from_data_list([graph for graph, _, _ in built]).to(self.device)
        ftype = self.potential.data_mean.dtype
        state = torch.as_tensor(np.stack([np.asarray(st) for _, _, st in built]), device=self.device)
        # as Potential.forward, without strain: Cartesian image shift of every edge (the frame's
        # own cell, not the converter's float32 copy; no shifts without periodicity)
        cell = torch.as_tensor(frame.cells[0], dtype=ftype, device=self.device)
        batch.pbc_offshift = batch.pbc_offset.to(ftype) @ cell
        batch.pos = positions.reshape(-1, 3)
        hooks = []
        gated_cutoff: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if gate is not None:
            weight = edge_gate(gate, batch.edge_index[0], batch.edge_index[1])
            if self._architecture == "TensorNet":
                gated_cutoff = _tensornet_cutoff_gated(weight)
            else:
                hooks.append(self.net.bond_expansion.register_forward_hook(
                    lambda module, inputs, output: output * weight[:, None]))
                for block in self.net.three_body_interactions:  # argument 5: per-bond cutoff weights
                    hooks.append(block.register_forward_pre_hook(
                        lambda module, args: (*args[:5], args[5] * weight, *args[6:])))
        try:
            with torch.enable_grad(), gated_cutoff:
                self.net(g=batch, state_attr=state)
                readout = self.net.feature_dict["readout"]
                if self._architecture == "TensorNet":  # its features; the final layer makes the energies
                    readout = self.net.final_layer(readout)
                readout = readout.reshape(-1)
        finally:
            for hook in hooks:
                hook.remove()
            self.net.feature_dict = {}
        pot = self.potential
        site = pot.data_std * readout + pot.data_mean / frame.total_atoms
        if pot.element_refs is not None:
            site = site + pot.element_refs.property_offset[batch.node_type]
        return site.reshape(positions.shape[:2])

    def _embeddings(self) -> torch.Tensor:
        """The chosen per-atom features of the last forward pass (invariant)."""
        features = self.net.feature_dict[self._embedding_key]
        if self._architecture != "TensorNet":
            return features["node_feat"]
        if self._embedding_key == "readout":
            return features
        from matgl.utils.maths import decompose_tensor, tensor_norm

        # as TensorNet's readout: the norm of each channel's scalar, antisymmetric and traceless part
        return torch.cat([tensor_norm(part) for part in decompose_tensor(features)], dim=-1)

    def _site_energies(self, batch: Any, frames: Frames) -> np.ndarray:
        """Per-atom energies of the last forward pass (see class docstring)."""
        pot = self.potential
        readout = self.net.feature_dict["readout"].detach()
        # M3GNet stores each atom's readout; TensorNet the features its final layer maps to it
        atomic = (self.net.final_layer(readout) if self._architecture == "TensorNet" else readout).reshape(-1)
        n_atoms = torch.as_tensor(frames.n_atoms, device=atomic.device)[batch.batch]
        site = pot.data_std * atomic + pot.data_mean / n_atoms
        if pot.element_refs is not None:
            site = site + pot.element_refs.property_offset[batch.node_type]
        return site.cpu().numpy()


_CUTOFF_LOCK = threading.Lock()


@contextlib.contextmanager
def _tensornet_cutoff_gated(weight: torch.Tensor) -> Iterator[None]:
    """TensorNet's cosine cutoff times ``weight`` (one per edge) inside the block. TensorNet
    multiplies every edge term of its embedding and of each interaction by that cutoff, so a zero
    weight removes the edge exactly; the function is looked up in its two modules at each call,
    and replaced there for the block. Only this thread's calls are gated (another thread's
    TensorNet pass meanwhile, e.g. a prediction in the Explorer, gets the plain cutoff), and a
    lock keeps two gated passes from mixing."""
    from matgl.layers import _embedding, _graph_convolution
    from matgl.utils.cutoff import cosine_cutoff as original

    namespaces = (vars(_embedding), vars(_graph_convolution))  # where their forward passes look it up
    owner = threading.get_ident()

    def gated(r: torch.Tensor, cutoff: float) -> torch.Tensor:
        plain = original(r, cutoff)
        return plain * weight.reshape(r.shape) if threading.get_ident() == owner else plain

    with _CUTOFF_LOCK:
        for namespace in namespaces:
            namespace["cosine_cutoff"] = gated
        try:
            yield
        finally:
            for namespace in namespaces:
                namespace["cosine_cutoff"] = original


def _training_data(folder: str | Path) -> str:
    """The first line under a "Training dataset" heading of the folder's README, if any."""
    readme = Path(folder) / "README.md"
    if readme.exists():
        lines = [line.strip() for line in readme.read_text(errors="replace").splitlines()]
        for k, line in enumerate(lines):
            if line.startswith("#") and "training data" in line.lower():
                text = next((x for x in lines[k + 1:] if x), "")
                if text and not text.startswith("#"):
                    return text[:200]
    return "unknown (bare model folder)"


def import_package() -> None:
    """What `mlipviz.models.preload` imports ahead of the first load (matgl's model and graph
    code, about 13 s on two cores)."""
    import matgl  # noqa: F401
    from matgl.apps.pes import Potential  # noqa: F401
    from matgl.ext.ase import Atoms2Graph  # noqa: F401


_M3GNET = "Chen & Ong, Nat. Comput. Sci. 2, 718 (2022)"

# -- fine-tuning -----------------------------------------------------------------
#: matgl's fine-tuning example's learning rate: the whole network trains, so a small step (1e-3
#: overshot on the bundled Si snapshots after one epoch, M3GNet and TensorNet alike)
FINETUNE_DEFAULTS = {"epochs": 50, "learning_rate": 1e-4, "batch_size": 4}


class MatGLTuner(TorchTuner):
    """matgl's training module (``PotentialLightningModule``: its loss, per-atom energy, forces
    and stress in GPa, its Adam and cosine schedule) stepped one epoch at a time on a copy of a
    `MatGLModel`'s ``Potential`` (element references, data scaling and all), on the same graphs
    `MatGLModel.predict` builds (matgl's ``Atoms2Graph``), batched by matgl's ``collate_fn_pes``.
    Nothing is frozen by default: matgl's own fine-tuning example trains the whole network."""

    def __init__(self, model: MatGLModel, train: Frames, validation: Frames, settings: FineTuneSettings) -> None:
        import copy

        from matgl.utils.training import PotentialLightningModule

        torch.manual_seed(settings.seed)
        potential = copy.deepcopy(model.potential)
        potential.calc_stresses = settings.stress_weight > 0  # the loss has a stress term only then
        module = PotentialLightningModule(model=potential.model, energy_weight=settings.energy_weight,
                                          force_weight=settings.force_weight, stress_weight=settings.stress_weight,
                                          lr=settings.learning_rate, decay_steps=settings.epochs)
        module.model = potential  # the pretrained Potential itself, not one rebuilt with default scaling
        self.module, self.net, self.model_ref = module.to(model.device), potential, model
        self.freeze(settings, ())
        (self.optimizer,), (self.scheduler,) = module.configure_optimizers()
        self.settings, self.device = settings, model.device
        self._train_data, self._val_data = self._items(train), self._items(validation)

    def _items(self, frames: Frames) -> list[tuple[Any, ...]]:
        """What matgl's ``MGLDataset`` yields per frame: graph, lattice, state, labels (total
        energy, forces, stress in GPa with ASE's sign, which is matgl's)."""
        from ase import Atoms

        items = []
        for i in range(len(frames)):
            rows = frames.atoms_of(i)
            atoms = Atoms(numbers=frames.numbers[rows], positions=frames.positions[rows], cell=frames.cells[i],
                          pbc=frames.pbc[i])
            graph, lattice, state = self.model_ref._converter.get_graph(atoms)
            labels = {"energies": torch.tensor(float(cast(np.ndarray, frames.energy)[i])),
                      "forces": torch.tensor(cast(np.ndarray, frames.forces)[rows], dtype=torch.float32)}
            if self.settings.stress_weight > 0:
                labels["stresses"] = torch.tensor(cast(np.ndarray, frames.stress)[i] / GPA, dtype=torch.float32)
            items.append((graph, lattice, torch.as_tensor(np.asarray(state), dtype=torch.float32), labels))
        return items

    def _epoch(self, items: list[tuple[Any, ...]], epoch: int | None) -> dict[str, float]:
        """One pass over ``items``: a training epoch (``epoch``) or validation (None)."""
        from functools import partial

        from matgl.graph.data import collate_fn_pes

        collate = partial(collate_fn_pes, include_stress=self.settings.stress_weight > 0)
        order = self.shuffled(len(items), self.settings, epoch)
        self.module.train(epoch is not None)
        sums: dict[str, float] = {}
        seen = 0
        for start in range(0, len(order), self.settings.batch_size):
            batch = collate([items[k] for k in order[start:start + self.settings.batch_size]])
            batch = tuple(b.to(self.device) for b in batch)
            results, size = self.module.step(batch)
            if epoch is not None:
                self.optimizer.zero_grad()
                results["Total_Loss"].backward()
                self.optimizer.step()
            for key, name in (("Energy_MAE", "energy_mae"), ("Force_MAE", "force_mae"),
                              ("Stress_MAE", "stress_mae_GPa")):
                sums[name] = sums.get(name, 0.0) + float(results[key].detach()) * size
            seen += size
        self.net.model.feature_dict = {}  # drop the last batch's tensors
        if epoch is not None:
            self.scheduler.step()  # once an epoch, as Lightning steps matgl's scheduler
        errors = {name: total / seen for name, total in sums.items()}
        if self.settings.stress_weight == 0:
            errors.pop("stress_mae_GPa", None)
        return errors

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch of matgl's training step over the training frames."""
        return self._epoch(self._train_data, epoch)

    def validate(self) -> dict[str, float]:
        """Matgl's step (no update) on the validation frames."""
        return self._epoch(self._val_data, None)

    def save(self, path: Path) -> None:
        """The ``Potential`` in matgl's model folder (``model.json``, ``model.pt``, ``state.pt``),
        written next to ``path`` and moved there whole."""
        import shutil

        tmp = path.with_name(f".{path.name}.writing")
        shutil.rmtree(tmp, ignore_errors=True)
        self.net.calc_stresses = True  # a saved potential predicts stress, as the pretrained ones do
        try:
            self.net.save(str(tmp))
            if path.exists():
                shutil.rmtree(path)
            tmp.rename(path)
        finally:
            self.net.calc_stresses = self.settings.stress_weight > 0
            shutil.rmtree(tmp, ignore_errors=True)

    def model(self, weights: Path | None) -> MatGLModel:
        """The trained ``Potential`` as a `MatGLModel` (frozen, in evaluation mode)."""
        import copy

        potential = copy.deepcopy(self.net)
        potential.calc_stresses = True
        return MatGLModel(potential, None, weights, self.device, self.model_ref.dtype,
                          name=f"{self.model_ref.name}-finetuned")


BACKEND = Backend(
    name="matgl", package="matgl", pip="matgl", extra="matgl", load=load,
    package_weights=package_weights, download_source=download_source,
    folder_marker="model.json",
    dtypes=("float32", "float64"),
    import_package=import_package,
    finetuner=MatGLTuner, finetune_defaults=FINETUNE_DEFAULTS,
    cards=(
        ModelCard("m3gnet", "matgl", "M3GNet-MP-2021.2.8-PES", "M3GNet MP-2021.2.8 PES (227.5k parameters), MatGL",
                  "MPF (MP relaxations, 2021.2.8)", ("M3GNet-MP-2021.2.8-PES",), citation=_M3GNET,
                  aliases=("m3gnet-mp-2021.2.8-pes",)),
        ModelCard("m3gnet-matpes-pbe", "matgl", "M3GNet-MatPES-PBE-v2025.1-PES", "M3GNet MatPES-PBE v2025.1 PES, MatGL",
                  "MatPES (PBE)", ("M3GNet-MatPES-PBE-v2025.1-PES",),
                  citation=f"Kaplan et al., arXiv 2503.04070 (2025); {_M3GNET}"),
        ModelCard("tensornet-matpes-pbe", "matgl", "TensorNet-MatPES-PBE-v2025.1-PES",
                  "TensorNet MatPES-PBE v2025.1 PES, MatGL", "MatPES (PBE)", ("TensorNet-MatPES-PBE-v2025.1-PES",),
                  citation="Kaplan et al., arXiv 2503.04070 (2025); Simeon & De Fabritiis, NeurIPS 36 (2023)"),
    ),
)
