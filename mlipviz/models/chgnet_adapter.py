"""CHGNet (``chgnet`` package) behind the mlipviz `Model` interface.

Weights ship inside the chgnet wheel (``chgnet/pretrained/<version>/*.pth.tar``).

`CHGNetModel._evaluate` evaluates a whole batch of frames in ONE forward pass of
the network (``CHGNet._compute`` on one ``BatchedGraph``) and ONE backward pass
for forces and stress; energy, forces, stress, site energies and atom features
all come from that pass. What it does differently from ``CHGNetCalculator``
(whose time per structure goes mostly to work around the network):

- graphs are built from the frame's arrays with numpy (`_frame_graph`): no
  pymatgen ``Structure``, no Python graph objects; the result is identical to
  ``net.graph_converter(structure)`` (checked in the tests);
- the batched graph is featurised with one vectorised operation per field
  (`_batched_graph`) instead of chgnet's per-structure loop;
- forces and stress come from one ``autograd.grad`` call without
  ``create_graph`` (chgnet does two, recording a double-backward graph that
  only training needs).

CHGNet is float32 only: chgnet hard-codes ``torch.float32`` in its graph
converter and batching (``chgnet.graph.crystalgraph.TORCH_DTYPE``).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import torch
from ase.calculators.calculator import BaseCalculator

from ..errors import ModelNotAvailableError
from ..frames import Frames
from ..units import EV_A3_IN_GPA, GPA
from .backend import Backend, ModelCard
from .base import Model, edge_gate, geometries
from .batching import to_device
from .finetune import TorchTuner
from .registry import package_dir
from .safety import load_state

if TYPE_CHECKING:
    from chgnet.model import CHGNet
    from chgnet.model.composition_model import AtomRef
    from chgnet.model.model import BatchedGraph

    from .finetune import FineTuneSettings

_WEIGHT_FILES = {
    "0.3.0": "0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
    "0.2.0": "0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar",
    "r2scan": "r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar",
}
_RELEASES = "https://github.com/CederGroupHub/chgnet/raw/main/chgnet/pretrained"
_TRAINING_DATA = {"MPtrj": "MPtrj (Materials Project, PBE/PBE+U)",
                  "MPtrj_e": "MPtrj (Materials Project, PBE/PBE+U)",
                  "MP-r2SCAN": "MPtrj, then MP r2SCAN"}
#: numerical tolerance of the neighbour search, as in ``Structure.get_neighbor_list``.
_NEIGHBOR_TOL = 1e-8


def package_weights(card: ModelCard | None) -> list[Path]:
    """The checkpoint for ``card.version`` inside the installed chgnet wheel (none without a card)."""
    if card is None:
        return []
    package = package_dir("chgnet")
    root = package / "pretrained" if package else None
    rel = _WEIGHT_FILES.get(card.version)
    if root is None or rel is None:
        return []
    return [root / rel]


def download_source(card: ModelCard) -> str:
    """Where the checkpoint lives upstream (chgnet itself never downloads: it ships in the wheel)."""
    rel = _WEIGHT_FILES.get(card.version, _WEIGHT_FILES["0.3.0"])
    return f"{_RELEASES}/{rel}"


def _version_from_path(path: Path) -> str | None:
    """The chgnet version in a checkpoint's file name (``chgnet_0.3.0_...``), if any."""
    match = re.search(r"chgnet_(\d+\.\d+\.\d+|r2scan)", path.name)
    return match.group(1) if match else None


def _stem(path: Path) -> str:
    """``chgnet_0.3.0_e29f68s314m37`` for ``.../chgnet_0.3.0_e29f68s314m37.pth.tar``."""
    return re.sub(r"(\.pth)?(\.tar)?$", "", path.name)


def _load_network(card: ModelCard | None, weights: str | Path | None, device: str, trust: bool = False) -> CHGNet:
    """The network of ``card`` (its package's copy) or of the checkpoint ``weights``, on CPU."""
    import contextlib
    import io

    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(io.StringIO()):  # chgnet prints on construction
        if weights is None:
            assert card is not None  # no weights path: a named model
            net = CHGNet.load(model_name=card.version, use_device="cpu", verbose=False)
        else:
            weights = Path(weights)
            state = load_state(weights, "CHGNet", trust)
            state = state.get("model", state) if isinstance(state, dict) else state
            if not isinstance(state, dict) or "state_dict" not in state:
                raise ModelNotAvailableError(f"{weights} is not a CHGNet checkpoint (no 'state_dict' "
                                             "in it); CHGNet.save and chgnet's trainer write them")
            # CHGNet.load sets mlp_out_bias for 0.2.0; tell it from the weights themselves.
            bias = any(k.endswith("mlp_out.layers.1.bias") for k in state["state_dict"])
            version = card.version if card is not None else _version_from_path(weights)
            # a checkpoint written by CHGNet.as_dict() names them in its model arguments already
            told = {"mlp_out_bias": bias, "version": version}
            net = CHGNet.from_dict(state, **{k: v for k, v in told.items() if k not in state.get("model_args", {})})
    return net


def load(card: ModelCard | None, weights: str | Path | None, device: str, dtype: str,
         trust: bool = False) -> CHGNetModel:
    """A `CHGNetModel`; ``card`` None for a bare ``.pth.tar`` path."""
    return CHGNetModel(_load_network(card, weights, device, trust), card, weights, device)


class CHGNetModel(Model):
    """A loaded CHGNet network.

    ``elements``: atomic numbers 1..N where N is the number of rows of the atom
    embedding table (``atom_embedding.embedding.num_embeddings``, 94 for the
    pretrained models); CHGNet indexes that table by Z-1. ``embedding_layer``:
    ``atom_fea``, the 64-wide atom features after the third of four interaction
    blocks, i.e. the input of the last atom convolution (chgnet's
    ``return_atom_feas``); ``use_embedding_layer(k)`` takes those after block k.
    ``energies``: CHGNet site energies (readout MLP per atom + the composition
    model's per-element reference), which sum to the total energy.
    """

    has_stress = True
    cutoff: float  # the network's atom graph cutoff, set in __init__
    #: measured on 2 CPU cores: ~500-atom batches run fastest (larger ones spill the caches);
    #: the autograd graph of a batch takes ~3 MB per atom in dense solids (6 Å cutoff).
    atoms_per_batch = 512

    def __init__(self, net: CHGNet, card: ModelCard | None, weights: str | Path | None, device: str,
                 name: str | None = None) -> None:
        super().__init__()
        from chgnet.model.composition_model import AtomRef

        if net.composition_model is not None and not isinstance(net.composition_model, AtomRef):
            raise ModelNotAvailableError(f"unsupported CHGNet composition model "
                                         f"{type(net.composition_model).__name__} (mlipviz evaluates "
                                         "chgnet's AtomRef in batch)")
        self.net = net = self._adopt(net, device)
        self.has_energies = bool(net.mlp_first)
        conv = net.graph_converter
        self.cutoff = float(conv.atom_graph_cutoff)
        n_types = net.atom_embedding.embedding.num_embeddings
        self.elements = frozenset(range(1, n_types + 1))
        self.embedding_layers = int(net.n_conv)
        self._choose_embedding_layer(None)
        weights_path = Path(weights) if weights is not None else next(iter(package_weights(card)), None)
        if card is not None:
            name = card.name
        elif name is None:
            assert weights_path is not None  # no card and no name: a weights path was given
            name = _stem(weights_path)
        comp = str(net.model_args.get("composition_model"))  # a dataset name, or None
        training_data = _TRAINING_DATA.get(comp, f"unknown (composition model {comp})")
        self._describe(BACKEND, card, weights_path, name, version=net.version, training_data=training_data,
                       n_params=int(sum(p.numel() for p in net.parameters())), cutoff=self.cutoff,
                       bond_graph_cutoff=float(conv.bond_graph_cutoff), embedding_width=int(net.atom_fea_dim))
        if card is not None and net.version:
            self.meta["version"] = net.version  # what the weights say they are

    def calculator(self) -> BaseCalculator:
        """Chgnet's ``CHGNetCalculator`` on the same network, with site energies."""
        import contextlib
        import io

        from chgnet.model.dynamics import CHGNetCalculator

        with contextlib.redirect_stdout(io.StringIO()):  # it prints the device
            return CHGNetCalculator(model=self.net, use_device=self.device,
                                    return_site_energies=True)

    # -- graphs -------------------------------------------------------------
    def _frame_graph(self, numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray,
                     index: int) -> dict[str, np.ndarray]:
        """The arrays of ``net.graph_converter(structure)`` for one frame, built with numpy.

        Same neighbour search as ``CrystalGraphConverter.forward`` on the
        ``Structure`` that ``AseAtomsAdaptor`` makes (same fractional/Cartesian
        coordinates, same ``find_points_in_spheres`` call), then the same atom
        graph, directed/undirected edge maps and bond (line) graph, in the same
        order, as chgnet's C graph builder and ``Graph.line_graph_adjacency_list``
        produce, but vectorised instead of built from Python objects.
        """
        from pymatgen.optimization.neighbors import find_points_in_spheres

        conv = self.net.graph_converter
        n_atoms = len(numbers)
        inverse = np.linalg.inv(cell)
        # pymatgen's own per-site product (PeriodicSite: np.dot(vector, inverse)): a matrix
        # product, or a hand-written sum, rounds differently with some numpy/BLAS builds
        # (-1e-17 where pymatgen gets 0); a few microseconds per atom
        frac = np.array([np.dot(position, inverse) for position in positions]).reshape(-1, 3)
        cart = np.ascontiguousarray(frac @ cell)
        center, neighbor, image, distance = find_points_in_spheres(
            cart, cart, r=float(conv.atom_graph_cutoff), pbc=np.ascontiguousarray(pbc, dtype=np.int64),
            lattice=np.ascontiguousarray(cell, dtype=float), tol=_NEIGHBOR_TOL)
        keep = ~((center == neighbor) & (distance <= _NEIGHBOR_TOL))
        center, neighbor = center[keep].astype(np.int64), neighbor[keep].astype(np.int64)
        image, distance = image[keep].astype(np.int64), distance[keep]
        n_edges = len(center)
        isolated = n_atoms - len(np.unique(center))
        if isolated:
            warnings.warn(f"frame {index} has {isolated} isolated atom(s) (no neighbour within "
                          f"{conv.atom_graph_cutoff} Å); CHGNet is unreliable there",
                          RuntimeWarning, stacklevel=3)
        # the reverse of directed edge k (i -> j, image n) is j -> i with image -n
        span = int(np.abs(image).max(initial=0)) + 1
        base = 2 * span + 1

        def key(c: np.ndarray, nb: np.ndarray, img: np.ndarray) -> np.ndarray:
            img = img + span
            return (((c * n_atoms + nb) * base + img[:, 0]) * base + img[:, 1]) * base + img[:, 2]

        keys = key(center, neighbor, image)
        order = np.argsort(keys, kind="stable")
        where = np.searchsorted(keys[order], key(neighbor, center, -image))
        where = np.minimum(where, max(n_edges - 1, 0))
        reverse = order[where] if n_edges else where
        if n_edges and not np.array_equal(keys[reverse], key(neighbor, center, -image)):
            raise ValueError(f"frame {index}: neighbour list is not symmetric (an atom pair sits "
                             "at the cutoff within rounding); CHGNet cannot build its graph")
        edge = np.arange(n_edges)
        first = reverse > edge  # the first of the two directions creates the undirected bond
        undirected_of_first = np.cumsum(first) - 1
        directed2undirected = undirected_of_first[np.where(first, edge, reverse)]
        undirected2directed = np.flatnonzero(first)

        # bond graph: angles between short bonds (< bond_graph_cutoff) sharing an atom
        cutoff = conv.bond_graph_cutoff
        pair = center * n_atoms + neighbor
        _, first_of_pair, pair_id = np.unique(pair, return_index=True, return_inverse=True)
        # a node's directed edges grouped by neighbour (in order of first appearance), as chgnet iterates them
        by_center = np.lexsort((edge, first_of_pair[pair_id], center))
        short = by_center[distance[by_center] < cutoff]
        count = np.bincount(center[short], minlength=n_atoms)
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        bonds = undirected2directed[distance[undirected2directed] <= cutoff]
        slot_center = np.stack([center[bonds], center[reverse[bonds]]], axis=1).ravel()
        slot_edge = np.stack([bonds, reverse[bonds]], axis=1).ravel()
        slot_bond = np.repeat(directed2undirected[bonds], 2)
        per_slot = count[slot_center]
        slot = np.repeat(np.arange(len(slot_center)), per_slot)
        offset = np.arange(len(slot)) - np.repeat(np.cumsum(per_slot) - per_slot, per_slot)
        other = short[start[slot_center[slot]] + offset]
        use = other != slot_edge[slot]
        slot, other = slot[use], other[use]
        bond_graph = np.stack([slot_center[slot], slot_bond[slot], slot_edge[slot],
                               directed2undirected[other], other], axis=1)
        return {"numbers": numbers, "frac": frac, "cell": cell,
                "atom_graph": np.stack([center, neighbor], axis=1), "image": image,
                "directed2undirected": directed2undirected,
                "undirected2directed": undirected2directed, "bond_graph": bond_graph}

    def _cell(self, frames: Frames, i: int) -> np.ndarray:
        """The frame's cell; a vacuum box around non-periodic frames without one."""
        cell = frames.cells[i]
        if abs(np.linalg.det(cell)) > 1e-8:
            return cell
        if frames.pbc[i].any():
            raise ValueError(f"frame {i} is periodic along {frames.pbc[i].tolist()} but its cell "
                             "is degenerate; CHGNet needs a full 3x3 cell")
        pos = frames.positions[frames.atoms_of(i)]
        span = np.ptp(pos, axis=0) if len(pos) else np.zeros(3)
        return np.diag(span + 2 * self.cutoff + 10.0)

    # -- evaluation -----------------------------------------------------------
    def _choose_embedding_layer(self, layer: int | None) -> None:
        """Atom features after block ``layer`` (None: ``atom_fea``, after the last but one)."""
        net = self.net
        self._embedding_block = net.n_conv - 1 if layer is None else layer
        self.embedding_width = int(net.atom_fea_dim)
        what = (f"atom_fea: atom features after interaction block {net.n_conv - 1} of {net.n_conv}, "
                "input of the last atom convolution" if layer is None
                else f"atom features after interaction block {layer} of {net.n_conv}")
        self.embedding_layer = f"CHGNet {what} (width {net.atom_fea_dim})"

    def _evaluate(self, frames: Frames, return_embeddings: bool) -> dict[str, np.ndarray | None]:
        """One CHGNet pass over ``frames`` (`_forward`), as numpy arrays."""
        graphs = []
        for i in range(len(frames)):
            rows = frames.atoms_of(i)
            graphs.append(self._frame_graph(frames.numbers[rows], frames.positions[rows],
                                            self._cell(frames, i), frames.pbc[i], i))
        energy, forces, stress, site, feas = self._forward(graphs, return_embeddings)
        # GPa -> eV/Å^3 exactly as CHGNetCalculator does (float32 times ase.units.GPa)
        result = {"energy": energy.cpu().numpy(), "forces": forces.cpu().numpy(),
                  "stress": (stress.cpu().numpy() * GPA).astype(np.float64),
                  "energies": None if site is None else site.cpu().numpy()}
        if return_embeddings:
            assert feas is not None  # captured in the pass
            result["embeddings"] = feas.cpu().numpy()
        return result

    def _batched_graph(self, graphs: list[dict[str, np.ndarray]], positions: torch.Tensor | None = None,
                       gate: torch.Tensor | None = None) -> tuple[BatchedGraph, torch.Tensor, torch.Tensor]:
        """Chgnet's ``BatchedGraph`` for all ``graphs`` at once, plus the grad leaves.

        ``BatchedGraph.from_graphs`` featurises graph by graph (dozens of small
        tensor operations per structure, forward and backward); this builds the
        same fields with one vectorised operation per field. Returns the batch,
        Cartesian positions (n_atoms, 3) and strains (n_graphs, 3, 3).
        ``positions``: Cartesian positions to use instead of the graphs' own (same
        values; for gradients through them); ``gate``: per-atom presence (see ``atom_gate``).
        """
        from chgnet.model.model import BatchedGraph

        net, dev = self.net, self.device
        i32, f32 = torch.int32, torch.float32
        n_atoms = np.array([len(g["numbers"]) for g in graphs])
        n_edges = np.array([len(g["atom_graph"]) for g in graphs])
        n_bonds = np.array([len(g["undirected2directed"]) for g in graphs])
        n_angles = np.array([len(g["bond_graph"]) for g in graphs])
        atom_start = np.concatenate([[0], np.cumsum(n_atoms)[:-1]])
        edge_start = np.concatenate([[0], np.cumsum(n_edges)[:-1]])
        bond_start = np.concatenate([[0], np.cumsum(n_bonds)[:-1]])

        def cat(name: str, shift: np.ndarray | None = None, per: np.ndarray | None = None) -> np.ndarray:
            parts = [g[name] for g in graphs]
            out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            if shift is not None:
                assert per is not None  # given with shift
                add = np.repeat(shift, per)
                out = out + (add[:, None] if out.ndim == 2 else add)
            return out

        owner = to_device(np.repeat(np.arange(len(graphs)), n_atoms), dev)
        edge_owner = to_device(np.repeat(np.arange(len(graphs)), n_edges), dev)
        atom_graph = to_device(cat("atom_graph", atom_start, n_edges).reshape(-1, 2), dev)
        image = to_device(cat("image").reshape(-1, 3), dev, f32)
        und2dir = to_device(cat("undirected2directed", edge_start, n_bonds), dev)
        dir2und = to_device(cat("directed2undirected", bond_start, n_edges), dev)
        bond_graph_np = cat("bond_graph").reshape(-1, 5)
        angle_owner = np.repeat(np.arange(len(graphs)), n_angles)
        bond_graph_np = bond_graph_np + np.stack([atom_start[angle_owner], bond_start[angle_owner],
                                                  edge_start[angle_owner], bond_start[angle_owner],
                                                  edge_start[angle_owner]], axis=1)
        bond_graph = to_device(bond_graph_np, dev)

        frac = to_device(cat("frac").reshape(-1, 3), dev, f32)
        cells = to_device(np.stack([g["cell"] for g in graphs]), dev, f32)
        strains = torch.zeros_like(cells, requires_grad=True)
        lattice = cells @ (torch.eye(3, dtype=f32, device=dev) + strains)
        cross = torch.linalg.cross(lattice[:, 1], lattice[:, 2])
        volumes = torch.linalg.vecdot(lattice[:, 0], cross).detach()
        if positions is None:
            positions = torch.bmm(frac[:, None, :], lattice[owner]).squeeze(1)
        # BondEncoder.forward, for all edges of all graphs
        nbr = positions[atom_graph[:, 1]] + torch.bmm(image[:, None, :], lattice[edge_owner]).squeeze(1)
        bond_vectors = positions[atom_graph[:, 0]] - nbr
        bond_lengths = torch.norm(bond_vectors, dim=1)
        bond_vectors = bond_vectors / bond_lengths[:, None]
        undirected_lengths = torch.index_select(bond_lengths, 0, und2dir)
        encoder = net.bond_basis_expansion
        bond_bases_ag = encoder.rbf_expansion_ag(undirected_lengths)
        bond_bases_bg = encoder.rbf_expansion_bg(undirected_lengths)
        weight = edge_gate(gate, atom_graph[und2dir, 0], atom_graph[und2dir, 1])
        if weight is not None:  # the smooth cutoff envelope is in the bases: scale it
            bond_bases_ag = bond_bases_ag * weight[:, None]
            bond_bases_bg = bond_bases_bg * weight[:, None]
        if len(bond_graph):
            angle_bases = net.angle_basis_expansion(torch.index_select(bond_vectors, 0, bond_graph[:, 2]),
                                                    torch.index_select(bond_vectors, 0, bond_graph[:, 4]))
            batched_bond_graph = bond_graph[:, [0, 1, 3]].to(i32)
        else:
            angle_bases = torch.tensor([], device=dev)
            batched_bond_graph = torch.tensor([], device=dev)
        batch = BatchedGraph(
            atomic_numbers=to_device(cat("numbers"), dev, i32),
            bond_bases_ag=bond_bases_ag, bond_bases_bg=bond_bases_bg, angle_bases=angle_bases,
            batched_atom_graph=atom_graph.to(i32), batched_bond_graph=batched_bond_graph,
            atom_owners=owner.to(i32), directed2undirected=dir2und.to(i32),
            atom_positions=[positions], strains=[strains], volumes=volumes)
        return batch, positions, strains

    atom_gate = ("the radial bases of every bond i-j (atom graph and bond graph), which carry "
                 "CHGNet's smooth cutoff, times g_i g_j, so every message, bond update and angle "
                 "through the bond scales with it; and each site energy (readout plus the "
                 "element's AtomRef energy) times g_i")

    def _edge_gated_site_energies(self, frame: Frames, positions: torch.Tensor,
                                  gate: torch.Tensor | None) -> torch.Tensor:
        """CHGNet site energies of the copies, bonds gated in `_batched_graph`."""
        net = self.net
        if not net.mlp_first:
            return super()._edge_gated_site_energies(frame, positions, gate)
        cell = self._cell(frame, 0)
        graphs = geometries(frame, positions.detach().cpu().numpy(), lambda atoms: self._frame_graph(
            atoms.numbers, atoms.positions, cell, frame.pbc[0], 0))
        with torch.enable_grad():
            batch, _, _ = self._batched_graph(graphs, positions=positions.reshape(-1, 3), gate=gate)
            out = net._compute(batch, return_site_energies=True)
        site = torch.cat(list(out["site_energies"]))
        comp = cast("AtomRef | None", net.composition_model)  # checked in __init__
        if comp is not None:
            numbers = torch.as_tensor(np.tile(frame.numbers, len(graphs)), dtype=torch.long,
                                      device=site.device)
            site = site + comp.fc.weight[0, numbers - 1]
        return site.reshape(positions.shape[:2])

    def _forward(self, graphs: list[dict[str, np.ndarray]], return_embeddings: bool
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """One CHGNet pass over all ``graphs``; one backward pass for forces and stress.

        The computation of ``CHGNet.forward(graphs, task="efs")`` (composition
        model + batched graph + ``CHGNet._compute``), except that forces and
        stress come from a single ``torch.autograd.grad`` call without
        ``create_graph``: chgnet's own forward runs two backward passes and
        records a double-backward graph (needed to train on forces, not for
        inference), which costs most of its time. The gradient of the summed
        energy is the same, so results match ``CHGNetCalculator``.
        """
        net = self.net
        numbers = torch.as_tensor(np.concatenate([g["numbers"] for g in graphs]), dtype=torch.long,
                                  device=self.device)
        n_atoms = torch.as_tensor([len(g["numbers"]) for g in graphs], device=self.device)
        captured: list[torch.Tensor] = []
        hook = (net.atom_conv_layers[self._embedding_block - 1].register_forward_hook(
            lambda module, inputs, output: captured.append(output)) if return_embeddings else None)
        try:
            with torch.enable_grad():
                batch, positions, strains = self._batched_graph(graphs)
                out = net._compute(batch, compute_force=False, compute_stress=False,
                                   return_site_energies=net.mlp_first)
        finally:
            if hook is not None:
                hook.remove()
        with torch.enable_grad():
            if net.mlp_first:  # energy = sum of site energies (all pretrained CHGNets)
                site = torch.cat(list(out["site_energies"]))
                total = site.sum()
            else:  # energy from pooled crystal features: no site energies
                site = None
                total = (out["e"] * out["atoms_per_graph"]).sum() if net.is_intensive else out["e"].sum()
            grad_pos, grad_strain = torch.autograd.grad(total, [positions, strains])
        forces = -grad_pos
        # stress in GPa as chgnet computes it: 1/V dE/d(strain) * 160.21766208
        volumes = cast(torch.Tensor, batch.volumes)  # one tensor, as _batched_graph builds it
        stress = grad_strain * (1 / volumes * EV_A3_IN_GPA).view(-1, 1, 1)
        energy = out["e"].detach()  # eV/atom when the model is intensive
        comp = cast("AtomRef | None", net.composition_model)  # checked in __init__
        if comp is not None:
            # AtomRef: linear model on the (per-atom) element counts, as AtomRef.forward
            owner = torch.repeat_interleave(torch.arange(len(graphs), device=self.device), n_atoms)
            counts = torch.zeros(len(graphs), comp.max_num_elements, dtype=torch.long, device=self.device)
            counts.index_put_((owner, numbers - 1), torch.ones_like(numbers), accumulate=True)
            feas = counts / n_atoms[:, None] if comp.is_intensive else counts
            energy = energy + comp._get_energy(feas.float()).detach()
        if net.is_intensive:
            energy = energy * n_atoms
        if site is not None:
            site = site.detach()
            if comp is not None:
                site = site + comp.fc.weight.detach()[0, numbers - 1]
        atom_feas = captured[0].detach() if return_embeddings else None
        return energy, forces.detach(), stress.detach(), site, atom_feas


def import_package() -> None:
    """What `mlipviz.models.preload` imports ahead of the first load."""
    from chgnet.model import CHGNet  # noqa: F401
    from chgnet.model.model import BatchedGraph  # noqa: F401


_CITATION = "Deng et al., Nat. Mach. Intell. 5, 1031 (2023)"
_MPTRJ = "MPtrj (Materials Project, PBE/PBE+U)"

# -- fine-tuning -----------------------------------------------------------------
#: the layers chgnet's fine-tuning example keeps fixed (embeddings, basis expansions, the first
#: three atom convolutions, bond and angle layers). The composition model (AtomRef, one energy per
#: element) trains: chgnet advises it when the new labels' energy zero differs (other
#: pseudopotentials, another code such as GPAW), so that the shift goes there and not into the
#: layers that give the forces
FREEZE = ("atom_embedding", "bond_embedding", "angle_embedding", "bond_basis_expansion",
          "angle_basis_expansion", "atom_conv_layers.0.", "atom_conv_layers.1.", "atom_conv_layers.2.",
          "bond_conv_layers", "angle_layers")
FINETUNE_DEFAULTS = {"epochs": 50, "learning_rate": 1e-3, "batch_size": 4}


class CHGNetTuner(TorchTuner):
    """chgnet's own ``Trainer`` on a copy of a `CHGNetModel`'s network, one epoch at a time
    (`mlipviz.models.finetune.Tuner`): its loss (MSE of energy per atom, forces, stress in GPa),
    Adam and cosine learning-rate schedule, and its ``StructureData`` graphs."""

    def __init__(self, model: CHGNetModel, train: Frames, validation: Frames, settings: FineTuneSettings) -> None:
        import copy
        import io
        from contextlib import redirect_stdout

        from chgnet.trainer import Trainer

        torch.manual_seed(settings.seed)
        self.net = net = copy.deepcopy(model.net)
        self.freeze(settings, FREEZE)
        self.settings, self.device, self.model_ref = settings, model.device, model
        self.targets: Literal["ef", "efs"] = "efs" if settings.stress_weight > 0 else "ef"
        with redirect_stdout(io.StringIO()):  # chgnet prints its set-up and every epoch
            self.trainer = Trainer(model=net, targets=self.targets, energy_loss_ratio=settings.energy_weight,
                                   force_loss_ratio=settings.force_weight, stress_loss_ratio=settings.stress_weight,
                                   optimizer="Adam", scheduler="CosLR", criterion="MSE", epochs=settings.epochs,
                                   learning_rate=settings.learning_rate, use_device=model.device,
                                   print_freq=10**9, torch_seed=settings.seed)
        self.optimizer, self.scheduler = self.trainer.optimizer, self.trainer.scheduler
        self._train_data, self._val_data = self._dataset(train), self._dataset(validation)

    def _dataset(self, frames: Frames) -> Any:
        """The ``StructureData`` of chgnet for ``frames`` (energies per atom; stress as VASP writes
        it, kBar with the opposite sign, which chgnet turns into its GPa)."""
        import io
        from contextlib import redirect_stdout

        from chgnet.data.dataset import StructureData
        from pymatgen.io.ase import AseAtomsAdaptor

        atoms = [frames.to_atoms(i) for i in range(len(frames))]
        for i, a in enumerate(atoms):  # chgnet trains on crystals: a molecule in the adapter's vacuum box
            if not a.pbc.all():
                a.cell, a.pbc = self.model_ref._cell(frames, i), True
        energies = cast(np.ndarray, frames.energy) / frames.n_atoms
        forces = [cast(np.ndarray, frames.forces)[frames.atoms_of(i)].tolist() for i in range(len(frames))]
        stresses = None if self.targets == "ef" else [(-10 * s * EV_A3_IN_GPA).tolist()
                                                      for s in cast(np.ndarray, frames.stress)]
        with redirect_stdout(io.StringIO()):  # it prints how many structures it took
            return StructureData([AseAtomsAdaptor.get_structure(a) for a in atoms], list(energies), forces,
                                 stresses=stresses, graph_converter=self.net.graph_converter, shuffle=False)

    def _loader(self, data: Any, epoch: int | None) -> Any:
        """Batches of ``data`` in the order of `TorchTuner.shuffled`."""
        from chgnet.data.dataset import collate_graphs
        from torch.utils.data import DataLoader, Subset

        order = Subset(data, self.shuffled(len(data), self.settings, epoch))
        return DataLoader(order, batch_size=self.settings.batch_size, shuffle=False, collate_fn=collate_graphs)

    def _errors(self, mae: dict[str, float]) -> dict[str, float]:
        names = {"e": "energy_mae", "f": "force_mae", "s": "stress_mae_GPa"}
        return {names[k]: float(v) for k, v in mae.items() if k in names}

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch of chgnet's ``Trainer._train`` over the training frames."""
        import io
        from contextlib import redirect_stdout

        with redirect_stdout(io.StringIO()):
            return self._errors(self.trainer._train(self._loader(self._train_data, epoch), epoch))

    def validate(self) -> dict[str, float]:
        """The errors of chgnet's ``Trainer._validate`` on the validation frames."""
        import io
        from contextlib import redirect_stdout

        with redirect_stdout(io.StringIO()):
            return self._errors(self.trainer._validate(self._loader(self._val_data, None)))

    def save(self, path: Path) -> None:
        """``CHGNet.as_dict()`` (state dictionary and model arguments), which `load_model` reads."""
        from ..storage import replacing

        with replacing(path) as tmp:
            torch.save(self.net.as_dict(), tmp)

    def model(self, weights: Path | None) -> CHGNetModel:
        """The trained network as a `CHGNetModel` (frozen, in evaluation mode)."""
        import copy

        return CHGNetModel(copy.deepcopy(self.net), None, weights, self.device, name="chgnet-finetuned")


BACKEND = Backend(
    name="chgnet", package="chgnet", pip="chgnet", extra="chgnet", load=load,
    package_weights=package_weights, download_source=download_source,
    suffixes=(".pth.tar",), name_hint="chgnet",
    dtypes=("float32",),
    dtype_note="chgnet hard-codes torch.float32 in its graph converter and batching",
    import_package=import_package,
    finetuner=CHGNetTuner, finetune_defaults=FINETUNE_DEFAULTS,
    cards=(
        ModelCard("chgnet", "chgnet", "0.3.0", "CHGNet v0.3.0 (412.5k parameters)", _MPTRJ, ("chgnet-0.3.0",),
                  citation=_CITATION, aliases=("chgnet-0.3.0",)),
        ModelCard("chgnet-0.2.0", "chgnet", "0.2.0", "CHGNet v0.2.0", _MPTRJ, ("chgnet-0.2.0",), citation=_CITATION),
        ModelCard("chgnet-r2scan", "chgnet", "r2scan", "CHGNet fine-tuned to r2SCAN", "MPtrj, then MP r2SCAN",
                  ("chgnet-r2scan",), citation=_CITATION),
    ),
)
