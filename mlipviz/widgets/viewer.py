"""3D viewer on nglview: trajectory playback, per-atom colours, force arrows, atom picking.

nglview colours atoms only by its built-in and selection schemes; `Viewer` colours by any
per-atom array through an NGL colour scheme of its own whose colours live in the page
(`COLORS_JS`, one colour per atom): a new frame or metric sends the new colours and NGL
updates the colour buffers of the drawn spheres in place, instead of rebuilding them (a
selection scheme with a fresh representation cost about 90 ms per step at 1,000 atoms).
Frames with identical atoms and cell play as an nglview trajectory (only coordinates travel
per frame); others are swapped as whole structures. Updates after the first drawing are sent
once (not archived), so a long playback does not grow nglview's synced message archive.

Atoms are spheres of their covalent radius, scaled (with thin bonds up to `BONDS_UP_TO` atoms,
spheres alone above, so 1,000- and 10,000-atom cells stay legible and per-atom colours cover the
atoms); periodic cells are drawn with their unit cell, turned slightly so that three faces show,
and the camera is fitted to the scene as it is turned (NGL's own fit leaves a small cell at half
the canvas). A view made while it is hidden (a `Tab`, `Accordion`
or `Stack` page not shown, an Explorer tab) has no size yet: each browser view watches its own
size (`SIZE_WATCH`) and sizes, fits and redraws its stage when it becomes visible or is resized.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import ipywidgets as widgets
import nglview
import numpy as np
import traitlets
from ase.data import chemical_symbols
from ase.geometry import cell_to_cellpar, cellpar_to_cell

from .. import checks
from ..errors import ArgumentTypeError, InputError, MissingLabelsError, UnknownNameError
from ..frames import Frames
from ..io import read
from .colors import AtomColors, check_colormap, continuous, element_colors, value_range

if TYPE_CHECKING:
    from .._types import StructuresLike

#: per-atom values as the viewer takes them: the name of a per-atom array of the frames (or
#: ``"forces"``), or numbers, one per atom of all frames (or of one frame, when all have the same atoms)
PerAtom: TypeAlias = "str | np.ndarray | Sequence[float] | Sequence[Sequence[float]]"
#: force arrows: one per-atom spec of 3-vectors, or several by name
Arrows: TypeAlias = "PerAtom | dict[str, PerAtom]"

ATOMS_REPR = "mlipviz-atoms"
#: bonds are drawn up to this many atoms (nglview stops computing them above 500)
BONDS_UP_TO = 500
#: NGL's representations that draw atoms ("auto": ball+stick up to BONDS_UP_TO atoms, else spacefill)
REPRESENTATIONS = ("auto", "ball+stick", "spacefill", "licorice", "hyperball", "line", "point")
#: atom sphere radius / covalent radius: with bonds, and spheres alone (nearly touching)
BALL_SCALE, SPHERE_SCALE = 0.5, 0.85
BOND_RADIUS = 0.14  # Å
#: the narrowest the viewer gets (containers give it more; a width set on it wins)
MIN_WIDTH = "360px"
#: the default view of a periodic cell: turned about the screen's y, then its x axis (radians),
#: so that a cube shows three faces instead of one
TILT = ((0.0, 1.0, 0.0, -0.45), (1.0, 0.0, 0.0, 0.3))
#: runs in each browser view of the nglview widget (``this`` is the view): a view created hidden
#: has a 0 x 0 stage; when it first gets a size it is sized and its camera fitted, later size
#: changes (panel or window resized) size it again and refit the camera unless the user moved it
SIZE_WATCH = """
var view = this;
if (!view._mlipvizFit) {
  // NGL fits the camera to the scene's box as if it could be turned any way, plus a 10 A margin
  // for the near clipping plane: a small cell filled half the canvas. Fitted here to the box as
  // the camera sees it now (its turn, the canvas's aspect), with the near plane set by the box.
  view._mlipvizFit = true;
  var stage = view.stage;
  stage.setParameters({clipDist: 0});
  // NGL's own box is grown 5 A around a lone point (one highlighted atom shrank the fit by a
  // third): the camera is fitted to the atoms and the unit cell only
  stage.getBox = function () {
    var box = stage.viewer.boundingBox.clone().makeEmpty();
    stage.eachComponent(function (c) {
      box.union(c.getBox());
      var cell = c.structure && c.structure.unitcell;
      for (var k = 0; cell && k < 8; k++) {
        box.expandByPoint(box.min.clone().set(k & 1, (k >> 1) & 1, (k >> 2) & 1)
          .applyMatrix4(cell.fracToCart).applyMatrix4(c.matrix));
      }
    });
    return box.isEmpty() ? stage.viewer.boundingBox : box;
  };
  var ngl = stage.getZoomForBox.bind(stage);
  stage.getZoomForBox = function (box) {
    if (box.isEmpty()) return ngl(box);
    var m = stage.viewer.rotationGroup.matrix.elements, lo = box.min, hi = box.max;
    var c = [(lo.x + hi.x) / 2, (lo.y + hi.y) / 2, (lo.z + hi.z) / 2];
    var aspect = stage.viewer.width / Math.max(stage.viewer.height, 1);
    var half = Math.tan(stage.viewer.perspectiveCamera.fov * Math.PI / 360);
    var perspective = stage.parameters.cameraType === "perspective", distance = 0;
    for (var k = 0; k < 8; k++) {
      var p = [(k & 1 ? hi.x : lo.x) - c[0], (k & 2 ? hi.y : lo.y) - c[1], (k & 4 ? hi.z : lo.z) - c[2]];
      var x = m[0] * p[0] + m[4] * p[1] + m[8] * p[2], y = m[1] * p[0] + m[5] * p[1] + m[9] * p[2];
      // 5 % and 1 A (an atom's drawn radius reaches beyond the box of the atoms' centres)
      var need = (1.05 * Math.max(Math.abs(y), Math.abs(x) / aspect) + 1) / half;
      // in perspective each corner fits at its own depth (NGL's camera sits at -z, looking at +z)
      if (perspective) need -= m[2] * p[0] + m[6] * p[1] + m[10] * p[2];
      distance = Math.max(distance, need);
    }
    return -distance;
  };
}
if (!view._mlipvizSize) {
  // resized in the next animation frame, not inside the observer's callback: resizing there
  // would change observed sizes again ("ResizeObserver loop" errors in the console)
  view._mlipvizSize = new ResizeObserver(function () {
    window.requestAnimationFrame(function () {
      var width = view.el.clientWidth, height = view.el.clientHeight;
      if (!width || !height || (width === view._mlipvizWidth && height === view._mlipvizHeight)) return;
      var first = !view._mlipvizWidth;
      view._mlipvizWidth = width;
      view._mlipvizHeight = height;
      view.handleResize();
      // fitted again to the new shape unless the user has turned or zoomed the camera
      if (first || !view._mlipvizMoved) view.stage.autoView();
    });
  });
  view._mlipvizSize.observe(view.el);
  var signals = view.stage.mouseObserver.signals;
  [signals.dragged, signals.scrolled].forEach(function (s) { s.add(function () { view._mlipvizMoved = true; }); });
}
"""
#: runs in the browser view (nglview evaluates it where ``NGL`` is its NGL module): the colours of
#: scheme KEY (one 0xRRGGBB per atom of the cell; a periodic image takes its atom's colour) are
#: set, the scheme is registered under KEY the first time, and with RECOLOR the representations
#: drawn with it update their colours in place
COLORS_JS = """
var key = %(key)s, reg = NGL.ColormakerRegistry;
var store = window._mlipvizColors = window._mlipvizColors || {};
store[key] = %(colors)s;
if (!reg.hasScheme(key)) {
  var id = reg.addScheme(function () {
    this.atomColor = function (atom) { var c = store[key]; return c[atom.index %% c.length]; };
  });
  reg.userSchemes[key] = reg.userSchemes[id];
  delete reg.userSchemes[id];
}
%(recolor)s"""
#: drawn at once rather than at the next animation frame, so that plot updates arriving in the
#: same batch of messages do not delay it
RECOLOR = """this.stage.eachRepresentation(function (r) {
  if (r.repr.colorScheme === key) r.repr.update({color: true});
});
this.stage.viewer.render();"""
HIGHLIGHT_REPR = "mlipviz-highlight"
#: the highlight's radius over the picked atom's drawn radius
HIGHLIGHT_SCALE = 1.3
ARROW_COLORS = {"predicted": [0.13, 0.4, 0.85], "reference": [0.1, 0.6, 0.2], "difference": [0.85, 0.1, 0.1]}
OTHER_ARROW_COLORS = [[0.55, 0.25, 0.7], [0.9, 0.55, 0.0], [0.3, 0.3, 0.3]]


def view(frames_or_atoms: StructuresLike, color_by: PerAtom | None = None, arrows: Arrows | None = None,
         **kwargs: Any) -> Viewer:
    """A `Viewer` of anything `mlipviz.read` accepts (file, ASE/pymatgen objects, `Frames`).

    Files are read without the overlap check, so broken structures can be looked at.

    Parameters
    ----------
    frames_or_atoms : Frames or anything `mlipviz.read` accepts
        The structures.
    color_by : str or array_like, optional
        None or ``"element"`` (Jmol colours), the name of a per-atom array of the frames, or
        per-atom values (one per atom of all frames, or one per atom of a frame when all
        frames have the same atoms).
    arrows : str, array_like or dict, optional
        A name or array (forces for every atom), or a dict of them; ``"forces"`` means the
        frames' reference forces.
    **kwargs
        Go to `Viewer` (``cmap``, ``vmin``, ``vmax``, ``arrow_scale``, ``label``,
        ``representation``).

    Returns
    -------
    Viewer

    Raises
    ------
    UnknownNameError
        A ``color_by`` or arrow name that is no per-atom array, or an unknown colormap or
        representation.
    MissingLabelsError
        ``"forces"`` of frames without reference forces.
    InputError
        Per-atom values of the wrong length or shape, or structures `mlipviz.read` refuses.
    ArgumentTypeError
        ``color_by`` or ``arrows`` that are neither names nor numbers.
    """
    frames = frames_or_atoms if isinstance(frames_or_atoms, Frames) else read(frames_or_atoms, min_distance=0)
    return Viewer(frames, color_by=color_by, arrows=arrows, **kwargs)


class Viewer(widgets.VBox):
    """An nglview widget plus frame slider, colour bar and pick report (a thin view of arrays).

    Parameters
    ----------
    frames : Frames
        The structures.
    color_by, arrows
        As in `view` (see `set_colors` and `set_arrows`).
    cmap : str
        A matplotlib colormap name.
    vmin, vmax : float, optional
        The colour range (default: the finite values' range, fixed over all frames).
    symmetric : bool
        The default colour range symmetric about 0 (for signed values).
    arrow_scale : float
        Arrow length (Å) per eV/Å.
    label : str
        The colour bar's label (default: the ``color_by`` name).
    representation : str
        ``"auto"`` (spheres with bonds up to `BONDS_UP_TO` atoms, spheres alone above), or
        one of NGL's representations of atoms in `REPRESENTATIONS`.
    height : str
        The 3D view's CSS height.
    camera : str
        ``"orthographic"`` (default) or ``"perspective"``.
    images : tuple of three int
        Periodic images drawn along each cell vector, e.g. ``(2, 2, 1)`` (picking, colours
        and highlights refer to the atoms of the cell itself; force arrows are drawn on those).

    Attributes
    ----------
    frame : int
        The frame shown (a traitlet: set it, or observe it).
    picked : dict or None
        The last atom picked: ``{"frame", "atom", "element"}``.
    ngl : nglview.NGLWidget
        The 3D view.

    Raises
    ------
    UnknownNameError
        An unknown representation, camera, colormap or per-atom array name.
    InputError
        Bad ``images``, numbers out of range, or per-atom values that do not fit the frames.
    """

    frame = traitlets.Int(0)
    children: Sequence[widgets.Widget]  # ipywidgets' trait, declared for type checkers

    def __init__(self, frames: Frames, color_by: PerAtom | None = None, arrows: Arrows | None = None,
                 cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None,
                 symmetric: bool = False, arrow_scale: float = 1.0, label: str = "", representation: str = "auto",
                 height: str = "420px", camera: str = "orthographic",
                 images: tuple[int, int, int] = (1, 1, 1)) -> None:
        self.frames = frames
        checks.one_of("representation", representation, REPRESENTATIONS)
        checks.one_of("camera", camera, ("orthographic", "perspective"))
        arrow_scale = checks.number("arrow_scale", arrow_scale, minimum=0, above=True)
        if representation == "auto":
            representation = "ball+stick" if int(frames.n_atoms.max()) <= BONDS_UP_TO else "spacefill"
        self.representation = representation
        self.images = _images(images, frames)
        self.arrow_scale = arrow_scale
        self.picked: dict[str, Any] | None = None
        self._pick_callbacks: list[Callable[[dict[str, Any]], None]] = []
        self._scheme_label = f"mlipviz{uuid.uuid4().hex[:12]}"  # lower case: NGL's scheme ids are
        self._extra_components: list[str] = []
        self._highlighted: list[int] = []
        self._highlight_drawn = False
        self._uniform = _same_atoms_and_cell(frames)
        self._rotations: dict[int, np.ndarray] = {}  # by frame, made when first drawn
        self._values: np.ndarray | None = None
        self._arrows: dict[str, np.ndarray] = {}
        self._color_settings: dict[str, Any] = {}

        self.ngl = self._make_ngl(FramesTrajectory(self) if self._uniform else _FrameStructure(self, 0),
                                  height, camera)
        self.slider = widgets.IntSlider(0, 0, max(len(frames) - 1, 0), description="frame",
                                        continuous_update=False, layout={"width": "60%"})
        self.play = widgets.Play(0, 0, max(len(frames) - 1, 0), interval=300, description="play")
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.slider.observe(lambda change: setattr(self, "frame", change["new"]), "value")
        self.legend = widgets.HTML()
        self.pick_report = widgets.HTML("<i>click an atom to identify it</i>")
        controls = [widgets.HBox([self.play, self.slider])] if len(frames) > 1 else []
        # in a row box (a Stack's page, an HBox) a box of auto width shrinks to its content, and
        # nglview's canvas has none: the viewer was 110 px wide
        super().__init__([self.ngl, *controls, self.legend, self.pick_report], layout={"min_width": MIN_WIDTH})

        self.set_colors(color_by, cmap=cmap, vmin=vmin, vmax=vmax, symmetric=symmetric, label=label,
                        _draw=False)
        self._arrows = self._resolve_arrows(arrows)
        self._draw_initial()

    def _make_ngl(self, structure: nglview.Structure, height: str, camera: str) -> nglview.NGLWidget:
        ngl = nglview.NGLWidget(structure, default_representation=False)
        ngl.layout.height = height
        ngl.camera = camera
        ngl.observe(self._on_ngl_frame, "frame")
        ngl.observe(self._on_pick, "picked")
        return ngl

    # -- public -----------------------------------------------------------------
    @property
    def atom_colors(self) -> AtomColors:
        """Colours of the atoms of the current frame as drawn, and their legend."""
        return self._shown_colors

    def set_colors(self, color_by: PerAtom | None = None, cmap: str = "viridis", vmin: float | None = None,
                   vmax: float | None = None, symmetric: bool = False, label: str = "", _draw: bool = True) -> None:
        """Colour by element (None/"element"), a per-atom array name, or per-atom values.

        The colour range is fixed over all frames (default: the finite values' range,
        symmetric about 0 if ``symmetric``), so colours compare across frames.

        Parameters
        ----------
        color_by : str or array_like, optional
            As in `view`.
        cmap : str
            A matplotlib colormap name.
        vmin, vmax : float, optional
            The colour range.
        symmetric : bool
            The default range symmetric about 0.
        label : str
            The colour bar's label.

        Raises
        ------
        UnknownNameError
            An unknown colormap or per-atom array name.
        InputError
            Per-atom values that do not fit the frames.
        """
        check_colormap(cmap)
        vmin = checks.number("vmin", vmin, none=True)
        vmax = checks.number("vmax", vmax, none=True)
        symmetric = checks.flag("symmetric", symmetric)
        if color_by is None or (isinstance(color_by, str) and color_by == "element"):
            self._values = None
        else:
            self._values = self._per_atom(color_by, "color_by")
            auto = value_range(self._values, symmetric)
            vmin = auto[0] if vmin is None else float(vmin)
            vmax = auto[1] if vmax is None else float(vmax)
            label = label or (color_by if isinstance(color_by, str) else "value")
        self._color_settings = {"cmap": cmap, "vmin": vmin, "vmax": vmax, "label": label}
        if _draw:
            self._draw_atoms()

    def set_arrows(self, arrows: Arrows | None = None, scale: float | None = None) -> None:
        """Show force arrows: a name, an array, or a dict of them (None hides them).

        Parameters
        ----------
        arrows : str, array_like or dict, optional
            As in `view`.
        scale : float, optional
            Arrow length (Å) per eV/Å; default: as before.

        Raises
        ------
        InputError
            Arrays that are not one 3-vector per atom.
        """
        self._arrows = self._resolve_arrows(arrows)
        if scale is not None:
            self.arrow_scale = checks.number("scale", scale, minimum=0, above=True)
        self._draw_arrows()

    def highlight(self, atoms: int | Sequence[int] | np.ndarray | None, frame: int | None = None) -> None:
        """Mark atoms (one index or several, within the frame) with a translucent halo; None
        or an empty list clears them."""
        if frame is not None:
            frame = int(checks.indices("frame", frame, len(self.frames), what="frame")[0])
        shown = self.frame if frame is None else frame
        n = int(self.frames.n_atoms[shown])
        chosen = [] if atoms is None else checks.indices("atoms", atoms, n, frame=shown).tolist()
        if frame is not None and frame != self.frame:
            self.frame = frame
        self._highlighted = chosen
        self._draw_highlight()

    @property
    def highlighted(self) -> list[int]:
        """The atoms of the current frame marked by `highlight`."""
        return list(self._highlighted)

    def on_pick(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call ``callback({"frame", "atom", "element"})`` when the user clicks an atom."""
        self._pick_callbacks.append(callback)

    def pick(self, atom: int) -> None:
        """Act as if the user clicked ``atom`` of the current frame."""
        rows = self.frames.atoms_of(self.frame)
        atom = int(checks.indices("atom", atom, rows.stop - rows.start, frame=self.frame)[0])
        self.picked = {"frame": self.frame, "atom": int(atom),
                       "element": chemical_symbols[self.frames.numbers[rows][atom]]}
        value = "" if self._values is None else f", {self._color_settings['label']} = " \
            f"{self._values[rows][atom]:.4g}"
        self.pick_report.value = (f"<b>frame {self.frame}, atom {atom} ({self.picked['element']})</b>"
                                  f"{value}")
        self.highlight(atom)
        for callback in self._pick_callbacks:
            callback(self.picked)

    # -- events -------------------------------------------------------------------
    @traitlets.validate("frame")
    def _valid_frame(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if not 0 <= value < len(self.frames):
            raise traitlets.TraitError(f"frame {value} out of range for {len(self.frames)} frames")
        return value

    @traitlets.observe("frame")
    def _on_frame(self, change: dict[str, Any]) -> None:
        self.slider.value = change["new"]
        self._highlighted = []
        if self._uniform:
            self.ngl.frame = change["new"]  # nglview sends the coordinates
            if self._highlight_drawn:
                self._remove_representation(HIGHLIGHT_REPR)
                self._highlight_drawn = False
            if self._values is not None:
                self._draw_atoms()
            if self._arrows or self._extra_components:
                self._draw_arrows()
        else:
            self._redraw_structure()

    def _on_ngl_frame(self, change: dict[str, Any]) -> None:
        if change["new"] != self.frame and 0 <= change["new"] < len(self.frames):
            self.frame = change["new"]

    def _on_pick(self, change: dict[str, Any]) -> None:
        picked = change["new"] or {}
        atom = picked.get("atom1")
        if atom is None or picked.get("component", 0) != 0:
            return
        self.pick(int(atom["index"]) % int(self.frames.n_atoms[self.frame]))  # images: the cell's atom

    # -- data ----------------------------------------------------------------------
    def _per_atom(self, spec: Any, what: str) -> np.ndarray:
        """Per-atom values (frames layout) from an array name or an array."""
        f = self.frames
        if isinstance(spec, str):
            if spec in f.arrays:
                return np.asarray(f.arrays[spec], dtype=np.float64)
            if spec == "forces":
                if f.forces is None:
                    raise MissingLabelsError(f"{what}='forces', but the frames carry no reference forces")
                return f.forces
            raise UnknownNameError(f"{what}='{spec}' is not a per-atom array of the frames "
                           f"(they have: {', '.join(sorted(f.arrays)) or 'none'})")
        try:
            values = np.asarray(spec, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ArgumentTypeError(f"{what} must be an array name or per-atom numbers, "
                                    f"got {checks.short(spec)}") from exc
        if values.ndim == 0:
            raise ArgumentTypeError(f"{what} must be an array name or per-atom numbers, got one number {spec!r}")
        if len(values) == f.total_atoms:
            return values
        same_count = bool(np.all(f.n_atoms == f.n_atoms[0]))
        if same_count and len(values) == f.n_atoms[0]:
            return np.tile(values, (len(f),) + (1,) * (values.ndim - 1))
        if same_count:
            raise InputError(f"{what} has {len(values)} rows; expected one per atom of all frames "
                             f"({f.total_atoms}) or of one frame ({f.n_atoms[0]})")
        raise InputError(f"{what} has {len(values)} rows; these frames differ in atoms "
                         f"({int(f.n_atoms.min())}-{int(f.n_atoms.max())} per frame), so it needs one value "
                         f"per atom of all frames together ({f.total_atoms}, frame after frame)")

    def _resolve_arrows(self, arrows: Any) -> dict[str, np.ndarray]:
        if arrows is None:
            return {}
        if not isinstance(arrows, dict):
            arrows = {arrows if isinstance(arrows, str) else "arrows": arrows}
        resolved = {}
        for name, spec in arrows.items():
            vectors = self._per_atom(spec, f"arrows['{name}']")
            if vectors.ndim != 2 or vectors.shape[1] != 3:
                raise InputError(f"arrows['{name}'] must hold one 3-vector per atom, got shape {vectors.shape}")
            resolved[name] = vectors
        return resolved

    def _colors_for(self, i: int) -> AtomColors:
        rows = self.frames.atoms_of(i)
        if self._values is None:
            return element_colors(self.frames.numbers[rows])
        s = self._color_settings
        return continuous(self._values[rows], s["vmin"], s["vmax"], s["cmap"], s["label"])

    def _rotation(self, i: int) -> np.ndarray:
        i = 0 if self._uniform else i
        if i not in self._rotations:
            self._rotations[i] = _standard_orientation(self.frames.cells[i], self.frames.pbc[i])
        return self._rotations[i]

    def coordinates(self, i: int) -> np.ndarray:
        """Positions of frame ``i`` as drawn (rotated like the PDB cell nglview draws)."""
        return self.frames.positions[self.frames.atoms_of(i)] @ self._rotation(i)

    def drawn_coordinates(self, i: int) -> np.ndarray:
        """`coordinates` of frame ``i`` followed by those of its periodic `images`."""
        positions = self.coordinates(i)
        if self.images == (1, 1, 1):
            return positions
        shifts = np.array([(a, b, c) for a in range(self.images[0]) for b in range(self.images[1])
                           for c in range(self.images[2])], dtype=np.float64)
        vectors = shifts @ (self.frames.cells[i] @ self._rotation(i))
        return (vectors[:, None, :] + positions[None]).reshape(-1, 3)

    def structure_string(self, i: int) -> str:
        """Frame ``i`` (and its periodic `images`) as the PDB text nglview loads."""
        return _pdb(self.frames, i, self.drawn_coordinates(i), self.images)

    # -- drawing -------------------------------------------------------------------
    def _ngl_call(self, method: str, target: str, args: list[Any] | None = None, **kwargs: Any) -> None:
        """Send one NGL call, not archived. In trajectory mode, once the front-end is up and
        nglview's queue is empty, send at once (nglview's sender thread polls every 0.1 s);
        structure swaps go through the queue, which waits for each load to finish."""
        ngl = self.ngl
        if self._uniform and ngl.loaded and not ngl._remote_call_thread.q:
            ngl.send(ngl._get_remote_call_msg(method, target=target, args=args or [], kwargs=kwargs))
        else:
            ngl._remote_call(method, target=target, args=args or [], kwargs=kwargs, fire_once=True)

    def _draw_initial(self) -> None:
        self.ngl._js(SIZE_WATCH)  # archived: every browser view of this widget runs it
        if self.frames.pbc[self.frame].any():
            self.ngl.add_representation("unitcell")
            for *axis, angle in TILT:
                self.ngl.control.spin(axis, angle)
        self._draw_atoms(archive=True)
        self._draw_arrows()
        self.ngl.center()

    def colors_code(self, recolor: bool = True) -> str:
        """The JavaScript that sets the current frame's colours in the browser (`COLORS_JS`)."""
        return COLORS_JS % {"key": json.dumps(self._scheme_label), "colors": json.dumps(self._shown_colors.ints),
                            "recolor": RECOLOR if recolor else ""}

    def _draw_atoms(self, archive: bool = False, new_structure: bool = False) -> None:
        """Colour the atoms of the current frame: the first time (``archive``, replayed by every
        browser view) and after a structure swap (``new_structure``) with the representations
        that draw them, otherwise in place."""
        self._shown_colors = self._colors_for(self.frame)
        self._update_legend()
        if not (archive or new_structure):
            self._ngl_call("executeCode", "Widget", [self.colors_code()])
            return
        if archive:
            self.ngl._js(self.colors_code(recolor=False))
        else:
            self._ngl_call("executeCode", "Widget", [self.colors_code(recolor=False)])
        for kind, params in _representations(self.representation):
            params.update(sele="all", color=self._scheme_label, name=ATOMS_REPR, component_index=0)
            if archive:
                self.ngl._remote_call("addRepresentation", target="compList", args=[kind], kwargs=params)
            else:
                self._ngl_call("addRepresentation", "compList", [kind], **params)

    def _update_legend(self) -> None:
        arrows = _arrow_legend(self._arrows, self.arrow_scale) if self._arrows else ""
        self.legend.value = self._shown_colors.legend_html + arrows

    def _remove_representation(self, name: str) -> None:
        self._ngl_call("removeRepresentationsByName", "Widget", [name, 0])

    def _remove_component(self, component: str) -> None:
        """Remove one nglview component, keeping nglview's own bookkeeping in step."""
        index = self.ngl._ngl_component_ids.index(component)
        self.ngl._ngl_component_ids.pop(index)
        self.ngl._ngl_component_names.pop(index)
        self._ngl_call("removeComponent", "Stage", [index])

    def _draw_arrows(self) -> None:
        for component in reversed(self._extra_components):
            self._remove_component(component)
        self._extra_components = []
        self._update_legend()
        if not self._arrows:
            return
        start = self.coordinates(self.frame)
        rows = self.frames.atoms_of(self.frame)
        rotation = self._rotation(self.frame)
        shapes = []
        for k, (name, vectors) in enumerate(self._arrows.items()):
            color = ARROW_COLORS.get(name, OTHER_ARROW_COLORS[k % len(OTHER_ARROW_COLORS)])
            ends = start + self.arrow_scale * (vectors[rows] @ rotation)
            for a, b in zip(start.tolist(), ends.tolist()):
                if a != b:
                    shapes.append(("arrow", a, b, color, 0.08))
        component = str(uuid.uuid4())
        self._ngl_call("addShape", "Widget", ["mlipviz-arrows", shapes])
        self.ngl._ngl_component_ids.append(component)
        self.ngl._ngl_component_names.append("mlipviz-arrows")
        self._extra_components.append(component)

    def _draw_highlight(self) -> None:
        if self._highlight_drawn:
            self._remove_representation(HIGHLIGHT_REPR)
        self._highlight_drawn = bool(self._highlighted)
        if self._highlighted:
            # a shell just outside the picked atom's own sphere: larger ones hid its neighbours
            scale = BALL_SCALE if self.representation == "ball+stick" else SPHERE_SCALE
            self._ngl_call("addRepresentation", "compList", ["spacefill"],
                       sele="@" + ",".join(map(str, self._highlighted)), color="#ff00ff", opacity=0.5,
                       radiusType="covalent", radiusScale=scale * HIGHLIGHT_SCALE, name=HIGHLIGHT_REPR,
                       component_index=0)

    def _redraw_structure(self) -> None:
        """Swap in frame ``self.frame`` as a new structure (atoms or cell differ between frames)."""
        ngl = self.ngl
        if not ngl.loaded:
            # no browser view yet (Voila runs every cell first): the swap messages would reach a
            # view replaying the first frame's archive and leave it half drawn, so a new widget
            # is made on this frame instead
            self.ngl = self._make_ngl(_FrameStructure(self, self.frame), ngl.layout.height, ngl.camera)
            self._extra_components, self._highlight_drawn = [], False
            # (the old widget is not closed: nglview's links from its player widgets to it would
            # then point at a closed model, and Voila waits for them for ever)
            self.children = (self.ngl, *self.children[1:])
            self._draw_initial()
            self._draw_highlight()
            return
        for component in reversed(list(ngl._ngl_component_ids)):
            self._remove_component(component)
        self._extra_components = []
        self._highlight_drawn = False
        self._ngl_call("loadFile", "Stage", [{"type": "blob", "data": self.structure_string(self.frame),
                                          "binary": False}], ext="pdb", defaultRepresentation=False)
        ngl._ngl_component_ids.append(str(uuid.uuid4()))
        ngl._ngl_component_names.append(f"frame {self.frame}")
        if self.frames.pbc[self.frame].any():
            self._ngl_call("addRepresentation", "compList", ["unitcell"], sele="all", component_index=0)
        self._draw_atoms(new_structure=True)
        self._draw_arrows()


class FramesTrajectory(nglview.Trajectory, nglview.Structure):
    """nglview trajectory over `Frames` whose atoms and cell are the same in every frame."""

    def __init__(self, viewer: Viewer) -> None:
        nglview.Structure.__init__(self)
        self.viewer = viewer
        self.shown = True

    @property
    def n_frames(self) -> int:
        """The viewer's number of frames."""
        return len(self.viewer.frames)

    def get_coordinates(self, index: int) -> np.ndarray:
        """The drawn coordinates of frame ``index`` (see `Viewer.drawn_coordinates`)."""
        return self.viewer.drawn_coordinates(index)

    def get_structure_string(self) -> str:
        """The first frame as PDB text (the atoms and cell of every frame)."""
        return self.viewer.structure_string(0)


class _FrameStructure(nglview.Structure):
    def __init__(self, viewer: Viewer, index: int) -> None:
        super().__init__()
        self.viewer, self.index = viewer, index

    def get_structure_string(self) -> str:
        return self.viewer.structure_string(self.index)


def _same_atoms_and_cell(frames: Frames) -> bool:
    return frames.same_atoms and bool(np.allclose(frames.cells, frames.cells[0])
                                      and np.all(frames.pbc == frames.pbc[0]))


def _standard_orientation(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Rotation taking ``cell`` to the PDB convention (a along x, b in the xy plane)."""
    if not pbc.any() or abs(np.linalg.det(cell)) < 1e-9:
        return np.eye(3)
    standard = cellpar_to_cell(cell_to_cellpar(cell))
    return np.linalg.solve(cell, standard)


def _representations(name: str) -> list[tuple[str, dict[str, Any]]]:
    """The NGL representations (kind, parameters) that draw the atoms in style ``name``."""
    if name == "ball+stick":  # spheres of scaled covalent radii joined by thin bonds
        return [("spacefill", {"radiusType": "covalent", "radiusScale": BALL_SCALE}),
                ("licorice", {"radiusType": "size", "radiusSize": BOND_RADIUS})]
    if name == "spacefill":
        return [("spacefill", {"radiusType": "covalent", "radiusScale": SPHERE_SCALE})]
    return [(name, {})]


def _images(images: Any, frames: Frames) -> tuple[int, int, int]:
    """``images`` checked: three positive counts, more than one only along periodic axes."""
    try:
        counts = tuple(int(n) for n in images)
    except (TypeError, ValueError):
        counts = ()
    if len(counts) != 3 or min(counts) < 1 or any(float(n) != int(n) for n in images):
        raise InputError(f"images must be three positive whole numbers, e.g. (2, 2, 1); got {images!r}")
    periodic = np.all(frames.pbc, axis=0)
    if any(n > 1 and not periodic[k] for k, n in enumerate(counts)):
        raise InputError(f"images={counts} repeats a non-periodic axis (pbc of the frames: "
                         f"{frames.pbc.all(axis=0).tolist()})")
    return counts


def _pdb(frames: Frames, i: int, positions: np.ndarray, images: tuple[int, int, int] = (1, 1, 1)) -> str:
    """A PDB string of frame ``i`` with the given (already rotated) positions (and those of its
    periodic images, which repeat the frame's elements)."""
    lines = []
    if frames.pbc[i].any():
        a, b, c, alpha, beta, gamma = cell_to_cellpar(frames.cells[i])
        lines.append(f"CRYST1{a:9.3f}{b:9.3f}{c:9.3f}{alpha:7.2f}{beta:7.2f}{gamma:7.2f} P 1           1")
    numbers = np.tile(frames.numbers[frames.atoms_of(i)], int(np.prod(images)))
    for k, (z, (x, y, zc)) in enumerate(zip(numbers, positions)):
        symbol = chemical_symbols[z]
        lines.append(f"ATOM  {(k + 1) % 100000:5d} {symbol:<4s} MOL     1    "
                     f"{x:8.3f}{y:8.3f}{zc:8.3f}  1.00  0.00          {symbol.upper():>2s}")
    lines.append("END")
    return "\n".join(lines) + "\n"


def _arrow_legend(arrows: dict[str, np.ndarray], scale: float) -> str:
    items = []
    for k, name in enumerate(arrows):
        rgb = ARROW_COLORS.get(name, OTHER_ARROW_COLORS[k % len(OTHER_ARROW_COLORS)])
        hex_color = "#" + "".join(f"{round(c * 255):02x}" for c in rgb)
        items.append(f"<span style='color:{hex_color};font-weight:bold'>&#8594; {name}</span>")
    return (f"<div class='mlipviz-arrows' style='font-size:12px'>arrows: {' &nbsp; '.join(items)} "
            f"(length {scale:g} Å per eV/Å)</div>")
