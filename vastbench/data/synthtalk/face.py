"""Procedural parametric 3D face of the SynthTalk dataset.

A SynthTalk person is an :class:`Identity` (head shape and proportions, skin,
lips, hair colour and style, iris colour, brows, shirt, background).  From it
:func:`face_model` builds a triangle mesh with a fixed, identity-specific
topology and a *linear* expression model::

    vertices(identity, w) = neutral + sum_e w_e * delta_e        # (V, 3)

with one blendshape per entry of :data:`EXPRESSION_NAMES`.  The blendshapes
are finite differences of a procedural (partly non-linear) deformation
evaluated at ``w_e = 1``, so the model is exactly linear in ``w``.

Coordinates (model space, before head pose): x to the image right, y up, z
toward the camera; one unit is the mean head width.  "Left" and "right" are
the *subject's*: the subject's left eye is at +x, i.e. on the image right
(the camera is not a mirror).

Parts: head skin with lips (a real slit mouth that opens onto a dark inner
mouth with upper/lower teeth and a tongue), eyelids that close over eyeballs
(sclera, iris, pupil, catch-light), brows (separate strips), hair (a shell over
the scalp whose shape depends on the style; long styles hang down), ears,
neck and shoulders.

How the mesh is made: the head skin is triangulated (Delaunay) in a
longitude/latitude chart, where structured rings of points follow the lip and
eyelid contours, so colour boundaries and the mouth/eye openings are mesh
edges; the mouth slit is opened slightly in the chart only, so both lips get
their own vertices.  Triangles carry flat albedo (crisp lips, lash lines,
iris), vertices carry shading (Gouraud), see ``render.py``.

Expression groups: :data:`MOUTH_EXPRESSIONS` (jaw_open .. lip_press) are the
speech-related lower-face coefficients; :data:`UPPER_EXPRESSIONS` (brows,
blinks and ``cheek``) are the upper-face / style coefficients.  ``cheek``
(FACS AU6, cheek raiser) is counted as upper face: it lifts the cheeks and
lower lids, is not driven by phonemes, and mostly accompanies smiles.

Landmarks: 68 points in the iBUG-300W order (jaw 0-16, brows 17-26, nose
27-35, eyes 36-47, outer lips 48-59, inner lips 60-67), each a mesh vertex,
see :data:`LANDMARK_NAMES` and :data:`LANDMARK_GROUPS`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
from scipy.spatial import Delaunay, cKDTree

from vastbench.errors import VastbenchError

# --------------------------------------------------------------------------
# Public constants
# --------------------------------------------------------------------------

EXPRESSION_NAMES: tuple[str, ...] = (
    "jaw_open",
    "lip_round",
    "lip_stretch",
    "smile_left",
    "smile_right",
    "lip_press",
    "brow_raise",
    "brow_frown",
    "blink_left",
    "blink_right",
    "cheek",
)
N_EXPRESSIONS = len(EXPRESSION_NAMES)
(
    JAW_OPEN,
    LIP_ROUND,
    LIP_STRETCH,
    SMILE_LEFT,
    SMILE_RIGHT,
    LIP_PRESS,
    BROW_RAISE,
    BROW_FROWN,
    BLINK_LEFT,
    BLINK_RIGHT,
    CHEEK,
) = range(N_EXPRESSIONS)
MOUTH_EXPRESSIONS: tuple[int, ...] = (JAW_OPEN, LIP_ROUND, LIP_STRETCH, SMILE_LEFT, SMILE_RIGHT, LIP_PRESS)
UPPER_EXPRESSIONS: tuple[int, ...] = (BROW_RAISE, BROW_FROWN, BLINK_LEFT, BLINK_RIGHT, CHEEK)
# Weights are nominally in [0, 1]; they are clipped to this range so that
# extrapolation cannot turn the mesh inside out.
EXPRESSION_CLIP = (-0.2, 1.5)

POSE_NAMES: tuple[str, ...] = ("pitch", "yaw", "roll", "tx", "ty", "tz")
N_POSE = len(POSE_NAMES)

HAIR_STYLES: tuple[str, ...] = ("short", "fringe", "long", "bob", "curly", "bald")
BACKGROUND_PATTERNS: tuple[str, ...] = ("vertical", "radial", "diagonal", "stripes")

# Part labels carried by every triangle (renderers use them for masks and for
# the appearance-free mesh image).
PART_NAMES: tuple[str, ...] = (
    "skin", "lips", "mouth", "teeth", "tongue", "sclera", "iris", "brow", "hair", "scalp", "head", "ear", "neck",
    "torso",
)
# skin: facial skin; head: bare skin of the cranium and behind the face;
# scalp: skin under the hair (hair-coloured); mouth: cavity and inside of the head.
SKIN, LIPS, MOUTH, TEETH, TONGUE, SCLERA, IRIS, BROW, HAIR, SCALP, HEAD, EAR, NECK, TORSO = range(len(PART_NAMES))
# Parts that make up "the face": removed from the eroded background.
FACE_PARTS: tuple[int, ...] = (SKIN, LIPS, MOUTH, TEETH, TONGUE, SCLERA, IRIS, BROW)


def _landmark_names() -> tuple[str, ...]:
    names = [f"jaw_{i:02d}" for i in range(17)]
    names += [f"brow_right_{i}" for i in range(5)] + [f"brow_left_{i}" for i in range(5)]
    names += [f"nose_bridge_{i}" for i in range(4)] + [f"nose_base_{i}" for i in range(5)]
    names += [f"eye_right_{i}" for i in range(6)] + [f"eye_left_{i}" for i in range(6)]
    names += [f"lip_outer_{i:02d}" for i in range(12)] + [f"lip_inner_{i}" for i in range(8)]
    return tuple(names)


LANDMARK_NAMES: tuple[str, ...] = _landmark_names()
N_LANDMARKS = len(LANDMARK_NAMES)  # 68, iBUG-300W order
LANDMARK_GROUPS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "brows": tuple(range(17, 27)),
    "brow_right": tuple(range(17, 22)),
    "brow_left": tuple(range(22, 27)),
    "nose": tuple(range(27, 36)),
    "eyes": tuple(range(36, 48)),
    "eye_right": tuple(range(36, 42)),
    "eye_left": tuple(range(42, 48)),
    "mouth": tuple(range(48, 68)),
    "lips_outer": tuple(range(48, 60)),
    "lips_inner": tuple(range(60, 68)),
}
LM_CHIN = 8
LM_NOSE_TIP = 30
LM_MOUTH_CORNER_RIGHT = 48  # subject's right = image left
LM_MOUTH_CORNER_LEFT = 54
LM_UPPER_LIP_INNER = 62
LM_LOWER_LIP_INNER = 66

# --------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------

# name -> (sampling low, sampling high).  Validation accepts the range widened
# by a quarter of its span on each side.
SHAPE_RANGES: dict[str, tuple[float, float]] = {
    "head_width": (0.92, 1.08),
    "head_height": (0.92, 1.08),
    "head_depth": (0.92, 1.08),
    "jaw_width": (0.68, 0.9),
    "chin_length": (-0.04, 0.14),
    "cheek_fullness": (0.0, 1.0),
    "nose_length": (0.85, 1.15),
    "nose_width": (0.8, 1.25),
    "eye_spacing": (0.93, 1.07),
    "eye_size": (0.9, 1.1),
    "mouth_width": (0.86, 1.14),
    "lip_thickness": (0.7, 1.35),
    "brow_thickness": (0.6, 1.5),
}
COLOUR_FIELDS: tuple[str, ...] = (
    "skin_rgb", "lip_rgb", "hair_rgb", "eye_rgb", "brow_rgb", "shirt_rgb", "background_rgb_a", "background_rgb_b",
)
RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Identity:
    """One SynthTalk person: shape, colours, hair style and background.

    Shape values are relative to the mean person (1.0 = average) except
    ``jaw_width`` (jaw width / cheek width), ``chin_length`` (extra chin
    length as a fraction of the head half-height) and ``cheek_fullness``
    (0..1).  Colours are linear-ish RGB in [0, 1].
    """

    head_width: float = 1.0
    head_height: float = 1.0
    head_depth: float = 1.0
    jaw_width: float = 0.8
    chin_length: float = 0.05
    cheek_fullness: float = 0.5
    nose_length: float = 1.0
    nose_width: float = 1.0
    eye_spacing: float = 1.0
    eye_size: float = 1.0
    mouth_width: float = 1.0
    lip_thickness: float = 1.0
    brow_thickness: float = 1.0
    skin_rgb: RGB = (0.87, 0.68, 0.55)
    lip_rgb: RGB = (0.74, 0.4, 0.4)
    hair_rgb: RGB = (0.22, 0.14, 0.08)
    eye_rgb: RGB = (0.36, 0.22, 0.1)
    brow_rgb: RGB = (0.2, 0.13, 0.08)
    shirt_rgb: RGB = (0.2, 0.3, 0.5)
    background_rgb_a: RGB = (0.75, 0.8, 0.85)
    background_rgb_b: RGB = (0.45, 0.5, 0.6)
    hair_style: str = "short"
    background_pattern: str = "vertical"

    def __post_init__(self) -> None:
        for name, (lo, hi) in SHAPE_RANGES.items():
            value = getattr(self, name)
            span = 0.25 * (hi - lo)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not lo - span <= value <= hi + span:
                raise VastbenchError(
                    f"Identity.{name}={value!r} is out of range; use a finite number in [{lo - span:.3g}, {hi + span:.3g}]"
                )
        for name in COLOUR_FIELDS:
            value = getattr(self, name)
            ok = isinstance(value, tuple) and len(value) == 3
            ok = ok and all(isinstance(c, (int, float)) and math.isfinite(c) and 0.0 <= c <= 1.0 for c in value)
            if not ok:
                raise VastbenchError(f"Identity.{name}={value!r} is not an RGB colour; use three numbers in [0, 1]")
        if self.hair_style not in HAIR_STYLES:
            raise VastbenchError(f"Identity.hair_style={self.hair_style!r} is unknown; use one of {', '.join(HAIR_STYLES)}")
        if self.background_pattern not in BACKGROUND_PATTERNS:
            raise VastbenchError(
                f"Identity.background_pattern={self.background_pattern!r} is unknown; "
                f"use one of {', '.join(BACKGROUND_PATTERNS)}"
            )

    # -- serialisation -----------------------------------------------------

    def to_vector(self) -> np.ndarray:
        """Flat float64 vector in the order of :data:`IDENTITY_VECTOR_NAMES`."""
        values = [float(getattr(self, name)) for name in SHAPE_RANGES]
        for name in COLOUR_FIELDS:
            values.extend(float(c) for c in getattr(self, name))
        values.append(float(HAIR_STYLES.index(self.hair_style)))
        values.append(float(BACKGROUND_PATTERNS.index(self.background_pattern)))
        return np.asarray(values, dtype=np.float64)

    @classmethod
    def from_vector(cls, vector: np.ndarray) -> "Identity":
        vec = np.asarray(vector, dtype=np.float64).reshape(-1)
        if vec.size != len(IDENTITY_VECTOR_NAMES) or not np.all(np.isfinite(vec)):
            raise VastbenchError(
                f"identity vector has {vec.size} entries (or non-finite values); "
                f"expected {len(IDENTITY_VECTOR_NAMES)} finite numbers from Identity.to_vector()"
            )
        kwargs: dict[str, Any] = {}
        i = 0
        for name in SHAPE_RANGES:
            kwargs[name] = float(vec[i])
            i += 1
        for name in COLOUR_FIELDS:
            kwargs[name] = tuple(float(np.clip(c, 0.0, 1.0)) for c in vec[i:i + 3])
            i += 3
        kwargs["hair_style"] = HAIR_STYLES[int(np.clip(round(vec[i]), 0, len(HAIR_STYLES) - 1))]
        kwargs["background_pattern"] = BACKGROUND_PATTERNS[
            int(np.clip(round(vec[i + 1]), 0, len(BACKGROUND_PATTERNS) - 1))
        ]
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (colours as lists)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Identity":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise VastbenchError(f"unknown identity key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
        kwargs = {}
        for key, value in data.items():
            if key in COLOUR_FIELDS:
                if not isinstance(value, (list, tuple)):
                    raise VastbenchError(f"identity key {key!r}={value!r} must be a list of three numbers in [0, 1]")
                value = tuple(float(c) for c in value)
            elif key in SHAPE_RANGES:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise VastbenchError(f"identity key {key!r}={value!r} must be a number")
                value = float(value)
            kwargs[key] = value
        return cls(**kwargs)


IDENTITY_VECTOR_NAMES: tuple[str, ...] = (
    tuple(SHAPE_RANGES)
    + tuple(f"{name}_{c}" for name in COLOUR_FIELDS for c in "rgb")
    + ("hair_style_index", "background_pattern_index")
)

# Palettes: the sampler draws from these and jitters, so that people differ
# clearly (skin from light to dark, natural hair and iris colours).
_SKIN_TONES = (
    (0.97, 0.82, 0.72), (0.93, 0.75, 0.63), (0.88, 0.69, 0.55), (0.8, 0.6, 0.45),
    (0.7, 0.5, 0.36), (0.56, 0.38, 0.27), (0.42, 0.28, 0.2), (0.33, 0.22, 0.16),
)
_HAIR_COLOURS = (
    (0.05, 0.04, 0.04), (0.16, 0.1, 0.06), (0.32, 0.2, 0.11), (0.5, 0.34, 0.18),
    (0.82, 0.66, 0.4), (0.55, 0.22, 0.09), (0.6, 0.6, 0.58), (0.9, 0.86, 0.76),
)
_EYE_COLOURS = (
    (0.22, 0.12, 0.06), (0.38, 0.22, 0.1), (0.45, 0.36, 0.16), (0.26, 0.46, 0.28), (0.28, 0.48, 0.74),
    (0.46, 0.52, 0.58),
)


def _hsv_to_rgb(h: float, s: float, v: float) -> RGB:
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return tuple(float(np.clip(c, 0.0, 1.0)) for c in rgb)  # type: ignore[return-value]


def _jitter(rng: np.random.Generator, rgb: RGB, amount: float) -> RGB:
    out = np.clip(np.asarray(rgb) * (1.0 + rng.uniform(-amount, amount)) + rng.uniform(-amount, amount, 3) * 0.5, 0, 1)
    return tuple(float(c) for c in out)  # type: ignore[return-value]


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw a random, clearly distinct person (deterministic given ``rng``)."""
    shape = {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in SHAPE_RANGES.items()}
    skin = _jitter(rng, _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))], 0.04)
    skin_a = np.asarray(skin)
    lip = np.clip(skin_a * np.array([0.92, 0.6, 0.6]) * rng.uniform(0.85, 1.0) + np.array([0.05, 0.0, 0.02]), 0, 1)
    hair = _jitter(rng, _HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))], 0.05)
    hair_a = np.asarray(hair)
    # Light hair still comes with visibly darker brows.
    brow = np.clip(np.minimum(hair_a * 0.85, 0.55 * hair_a + 0.45 * np.array([0.3, 0.21, 0.14])), 0, 1)
    eye = _jitter(rng, _EYE_COLOURS[int(rng.integers(len(_EYE_COLOURS)))], 0.05)
    hue = float(rng.uniform())
    shirt = _hsv_to_rgb(float(rng.uniform()), float(rng.uniform(0.25, 0.7)), float(rng.uniform(0.25, 0.8)))
    bg_a = _hsv_to_rgb(hue, float(rng.uniform(0.15, 0.5)), float(rng.uniform(0.6, 0.92)))
    bg_b = _hsv_to_rgb((hue + rng.uniform(-0.12, 0.12)) % 1.0, float(rng.uniform(0.2, 0.6)), float(rng.uniform(0.3, 0.6)))
    return Identity(
        **shape,
        skin_rgb=skin,
        lip_rgb=tuple(float(c) for c in lip),  # type: ignore[arg-type]
        hair_rgb=hair,
        eye_rgb=eye,
        brow_rgb=tuple(float(c) for c in brow),  # type: ignore[arg-type]
        shirt_rgb=shirt,
        background_rgb_a=bg_a,
        background_rgb_b=bg_b,
        hair_style=HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))],
        background_pattern=BACKGROUND_PATTERNS[int(rng.integers(len(BACKGROUND_PATTERNS)))],
    )


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------


def check_expression(expression: Any) -> np.ndarray:
    """(E,) finite weights -> float64 copy clipped to :data:`EXPRESSION_CLIP`."""
    arr = np.asarray(expression, dtype=np.float64)
    if arr.shape != (N_EXPRESSIONS,):
        raise VastbenchError(
            f"expression has shape {arr.shape}; expected ({N_EXPRESSIONS},) weights in the order of EXPRESSION_NAMES"
        )
    if not np.all(np.isfinite(arr)):
        raise VastbenchError(f"expression {arr.tolist()} contains NaN or inf; use finite weights (nominally 0..1)")
    return np.clip(arr, *EXPRESSION_CLIP)


def check_pose(pose: Any) -> np.ndarray:
    """(6,) finite pose (pitch, yaw, roll in radians; tx, ty, tz) -> float64 copy."""
    arr = np.asarray(pose, dtype=np.float64)
    if arr.shape != (N_POSE,):
        raise VastbenchError(f"pose has shape {arr.shape}; expected ({N_POSE},) values {POSE_NAMES}")
    if not np.all(np.isfinite(arr)):
        raise VastbenchError(f"pose {arr.tolist()} contains NaN or inf; use finite values")
    return arr


# --------------------------------------------------------------------------
# Small numeric helpers
# --------------------------------------------------------------------------


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((np.asarray(x, dtype=np.float64) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _g(d: np.ndarray, s: float) -> np.ndarray:
    """Gaussian bump exp(-(d/s)^2)."""
    return np.exp(-np.square(np.asarray(d, dtype=np.float64) / s))


def _inside_polygon(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd test of (n, 2) points against a closed (m, 2) polygon."""
    x, y = pts[:, :1], pts[:, 1:2]
    x1, y1 = poly[None, :, 0], poly[None, :, 1]
    x2, y2 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return (np.sum(crosses & (x < xi), axis=1) % 2) == 1


def _lattice(x0: float, x1: float, y0: float, y1: float, step: float) -> np.ndarray:
    """Staggered (hexagonal-ish) point lattice covering a box, (n, 2)."""
    ys = np.arange(y0, y1 + 1e-9, step * 0.866)
    rows = []
    for j, y in enumerate(ys):
        xs = np.arange(x0 + (step * 0.5 if j % 2 else 0.0), x1 + 1e-9, step)
        rows.append(np.stack([xs, np.full_like(xs, y)], axis=1))
    return np.concatenate(rows)


# --------------------------------------------------------------------------
# Layout: where the features of one identity are
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    a: float  # head half-width
    b: float  # head half-height (crown to mid-face)
    c: float  # head half-depth
    jaw: float
    chin: float
    cheek: float
    ey: float  # eye line
    ex: float  # eye centre |x|
    r_e: float  # eyeball radius
    eye_hw: float  # half-width of the eye opening
    eye_up: float  # opening above the eye centre
    eye_lo: float  # opening below the eye centre
    ez: float  # eyeball centre z
    brow_y: float
    brow_th: float
    yn: float  # nose tip y
    ys: float  # subnasale y
    nose_proj: float
    nose_w: float
    ym: float  # mouth line y
    mw: float  # mouth half-width
    t_up: float  # upper lip height at the centre
    t_lo: float  # lower lip height
    chin_y: float
    v_table: tuple[np.ndarray, np.ndarray]  # (y, v) for inverting y(v)


def _low(v: np.ndarray) -> np.ndarray:
    """0 on the upper head, rising to 1 toward the chin."""
    return _smoothstep(0.0, 0.9, -v)


def _y_of_v(a_b: float, chin: float, v: np.ndarray) -> np.ndarray:
    return a_b * v * (1.0 + chin * _low(v))


def _taper(lay: _Layout, v: np.ndarray) -> np.ndarray:
    """Half-width of the head (in units of a) at latitude sin(phi)=v.

    cos(phi) raised to a power < 1 squares the cranium and the jaw (an
    ellipsoid would end in a pointed chin); the jaw is narrower and the
    cheeks fuller per identity.
    """
    cp = np.sqrt(np.clip(1.0 - v * v, 0.0, 1.0))
    low = _low(v)
    shape = cp ** (0.8 - 0.4 * low)
    return shape * (1.0 - (1.0 - lay.jaw) * low ** 1.4 + 0.05 * lay.cheek * _g(v + 0.3, 0.3))


def _make_layout(idt: Identity) -> _Layout:
    a, b, c = 0.5 * idt.head_width, 0.64 * idt.head_height, 0.6 * idt.head_depth
    v = np.linspace(-1.0, 1.0, 4001)
    table = (_y_of_v(b, idt.chin_length, v), v)
    r_e = 0.1 * idt.eye_size
    ey = 0.03 * idt.head_height
    yn = ey - 0.235 * idt.nose_length
    ys = yn - 0.035
    ym = yn - 0.125
    lay = _Layout(
        a=a, b=b, c=c, jaw=idt.jaw_width, chin=idt.chin_length, cheek=idt.cheek_fullness,
        ey=ey, ex=0.205 * idt.eye_spacing * idt.head_width ** 0.5, r_e=r_e,
        eye_hw=0.88 * r_e, eye_up=0.4 * r_e, eye_lo=0.3 * r_e, ez=0.0,
        brow_y=ey + 0.1, brow_th=idt.brow_thickness,
        yn=yn, ys=ys, nose_proj=0.105 * idt.nose_length ** 0.5, nose_w=idt.nose_width,
        ym=ym, mw=0.165 * idt.mouth_width, t_up=0.034 * idt.lip_thickness, t_lo=0.044 * idt.lip_thickness,
        chin_y=ym - 0.21, v_table=table,
    )
    # The eyeball sits in the socket: its front just ahead of the plain head
    # surface, so brow ridge, cheeks and nose bridge frame it.
    th, ph = _chart_of_frontal(lay, np.array([lay.ex]), np.array([ey]))
    z_face = _base(lay, th, ph)[0, 2]
    return dataclasses.replace(lay, ez=float(z_face - 0.8 * r_e))


# --------------------------------------------------------------------------
# Head surface
# --------------------------------------------------------------------------


def _base(lay: _Layout, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Plain head (no features) at longitude theta (0 = front), latitude phi: (n, 3)."""
    cp, sp = np.cos(phi), np.sin(phi)
    st, ct = np.sin(theta), np.cos(theta)
    x = lay.a * st * _taper(lay, sp)
    y = _y_of_v(lay.b, lay.chin, sp)
    # Faces are flatter than ellipsoids: soften both cross-sections (lower
    # face flattest, so the chin does not recede like an egg).
    ev = 0.42 + 0.2 * _smoothstep(-0.3, 0.3, sp)
    z = lay.c * np.sign(ct) * np.abs(ct) ** 0.7 * np.maximum(cp, 0.0) ** ev
    return np.stack([x, y, z], axis=-1)


def _surface_frame(lay: _Layout, theta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Base point (n, 3) and outward unit normal (n, 3) by central differences."""
    eps = 1e-4
    p = _base(lay, theta, phi)
    d_t = _base(lay, theta + eps, phi) - _base(lay, theta - eps, phi)
    d_p = _base(lay, theta, np.minimum(phi + eps, np.pi / 2)) - _base(lay, theta, np.maximum(phi - eps, -np.pi / 2))
    n = np.cross(d_t, d_p)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    radial = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-9)
    n = np.where(norm > 1e-12, n / np.maximum(norm, 1e-30), radial)
    return p, n


def _chart_of_frontal(lay: _Layout, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Front-of-head chart (theta, phi) of a point given by its rest x, y."""
    v = np.interp(Y, *lay.v_table)
    phi = np.arcsin(np.clip(v, -1.0, 1.0))
    theta = np.arcsin(np.clip(X / np.maximum(lay.a * _taper(lay, v), 1e-9), -1.0, 1.0))
    return theta, phi


def _lip_border(lay: _Layout, c: np.ndarray, upper: bool) -> np.ndarray:
    """Lip height above (below) the mouth line at normalised x = c in [-1, 1]."""
    c = np.clip(c, -1.0, 1.0)
    if upper:
        bow = 1.0 + 0.2 * _g(np.abs(c) - 0.3, 0.17) - 0.24 * _g(c, 0.11)  # Cupid's bow
        return lay.t_up * np.sqrt(np.clip(1.0 - c ** 4, 0.0, 1.0)) * bow
    return lay.t_lo * np.clip(1.0 - c ** 2, 0.0, 1.0) ** 0.55


def _nose_height(lay: _Layout, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    top = lay.ey + 0.01
    t = np.clip((top - Y) / (top - lay.yn), 0.0, 1.0)  # 0 at the nasion, 1 at the tip
    ridge = 0.012 + (lay.nose_proj - 0.012) * t ** 1.5
    ridge = np.where(Y > top, 0.012 * _g(Y - top, 0.05), ridge)
    below = np.clip((lay.yn - Y) / (lay.yn - lay.ys), 0.0, 1.6)
    ridge = np.where(Y < lay.yn, lay.nose_proj * (1.0 - _smoothstep(0.0, 1.0, below)) ** 1.3, ridge)
    width = lay.nose_w * (0.03 + 0.03 * t ** 2)
    h = ridge * np.exp(-np.square(X / width) * 0.7)
    # Round tip and the two alae (nostril wings).
    h += 0.018 * _g(np.hypot(X / lay.nose_w, Y - lay.yn - 0.004), 0.026)
    for sx in (-1.0, 1.0):
        h += 0.04 * _g(np.hypot((X - sx * 0.047 * lay.nose_w) / 0.9, (Y - lay.yn + 0.014) / 0.8), 0.026)
    return h


def _feature_height(lay: _Layout, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Relief of the face along the surface normal (rest pose), (n,)."""
    ax = np.abs(X)
    h = 0.024 * _g(Y - lay.brow_y + 0.015, 0.045) * _g(np.maximum(ax - 0.12, 0.0), 0.15)  # brow ridge
    for sx in (-1.0, 1.0):  # eye sockets
        h -= 0.03 * _g(np.hypot((X - sx * lay.ex) / 1.25, Y - lay.ey + 0.005), 0.1)
    h += _nose_height(lay, X, Y)
    h += (0.012 + 0.02 * lay.cheek) * _g(ax - 0.27, 0.11) * _g(Y - (lay.ey - 0.13), 0.09)  # cheekbones
    h += 0.035 * _g(X, 0.2) * _g(Y - (lay.ym + 0.02), 0.13)  # muzzle around the mouth
    h += 0.028 * _g(X, 0.1) * _g(Y - lay.chin_y, 0.065)  # chin
    h -= 0.006 * _g(X, 0.012) * _g(Y - (lay.ys - 0.035), 0.025)  # philtrum groove
    return h


# --------------------------------------------------------------------------
# Skin points: structured patches + filler
# --------------------------------------------------------------------------

_MOUTH_NA = 48  # samples around the mouth (multiple of 8: landmarks)
_MOUTH_F = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.7, 2.2, 2.8)  # ring "radii": <=1 lips
_MOUTH_GAP = 0.012  # slit opening in the chart only
_EYE_NA = 24
_EYE_DX = (0.0, 0.007, 0.016, 0.028, 0.042, 0.058, 0.076)
_EYE_DU = (0.0, 0.012, 0.027, 0.039, 0.052, 0.066, 0.08)
_EYE_DL = (0.0, 0.006, 0.016, 0.03, 0.046, 0.064, 0.085)
_LID_GAP = 0.012  # lid skin thickness over the eyeball
_BROW_N = 16


@dataclass
class _SkinPts:
    """Points glued to the head skin, with the tags the deformations need."""

    X: np.ndarray  # rest x, y (frontal)
    Y: np.ndarray
    theta: np.ndarray  # rest chart
    phi: np.ndarray
    chart: np.ndarray  # (n, 2) chart used for triangulation (mouth slit opened)
    side: np.ndarray  # mouth side: +1 upper, -1 lower, 0 elsewhere/corner
    mouth_f: np.ndarray  # mouth ring radius (inf outside the mouth patch)
    eye: np.ndarray  # 0, -1 (right eye, -x) or +1 (left eye, +x)
    eye_ring: np.ndarray  # ring index, -1 outside eye patches
    eye_s: np.ndarray  # sin(alpha) of eye ring points (upper lid > 0)
    lip_h: np.ndarray  # lip bulge height
    offset: np.ndarray  # extra normal offset (brows float above the skin)

    @staticmethod
    def concat(items: list["_SkinPts"]) -> "_SkinPts":
        return _SkinPts(*[np.concatenate([getattr(i, f.name) for i in items]) for f in dataclasses.fields(_SkinPts)])

    def __len__(self) -> int:
        return int(self.X.size)


def _skin_pts(lay: _Layout, X: np.ndarray, Y: np.ndarray, **tags: np.ndarray) -> _SkinPts:
    """Front points given by rest x, y (chart from the frontal inverse)."""
    n = X.size
    theta, phi = _chart_of_frontal(lay, X, Y)
    chart_y = tags.pop("chart_Y", None)
    if chart_y is not None:
        ct, cp = _chart_of_frontal(lay, X, chart_y)
        chart = np.stack([ct, cp], axis=1)
    else:
        chart = np.stack([theta, phi], axis=1)
    base = dict(
        side=np.zeros(n, np.int8), mouth_f=np.full(n, np.inf), eye=np.zeros(n, np.int8),
        eye_ring=np.full(n, -1, np.int16), eye_s=np.zeros(n), lip_h=np.zeros(n), offset=np.zeros(n),
    )
    base.update(tags)
    return _SkinPts(X=X, Y=Y, theta=theta, phi=phi, chart=chart, **base)


def _chart_pts(lay: _Layout, chart: np.ndarray) -> _SkinPts:
    """Filler points given by chart (theta, phi) anywhere on the head."""
    theta, phi = chart[:, 0], chart[:, 1]
    p = _base(lay, theta, phi)
    n = theta.size
    return _SkinPts(
        X=p[:, 0], Y=p[:, 1], theta=theta, phi=phi, chart=chart.copy(), side=np.zeros(n, np.int8),
        mouth_f=np.full(n, np.inf), eye=np.zeros(n, np.int8), eye_ring=np.full(n, -1, np.int16),
        eye_s=np.zeros(n), lip_h=np.zeros(n), offset=np.zeros(n),
    )


def _mouth_patch(lay: _Layout) -> _SkinPts:
    """Rings around the mouth slit (ring 0 = the slit, rings up to f = 1 = lips)."""
    alpha = 2.0 * np.pi * np.arange(_MOUTH_NA) / _MOUTH_NA
    c, s = np.cos(alpha), np.sin(alpha)
    s = np.where(np.abs(s) < 1e-9, 0.0, s)
    up_ext = min(lay.t_up + 0.036, lay.ys - 0.012 - lay.ym)
    lo_ext = lay.t_lo + 0.09
    bx = lay.mw * 1.05 * c
    by = np.where(s > 0, _lip_border(lay, c, True), -_lip_border(lay, c, False))
    ox = (lay.mw + 0.1) * c
    oy = np.where(s >= 0, up_ext * s, lo_ext * s)
    xs, ys, gaps, fs, bulge = [], [], [], [], []
    f_max = _MOUTH_F[-1]
    for f in _MOUTH_F:
        if f <= 1.0:
            x = lay.mw * (1.0 + 0.05 * f) * c
            y = f * by
        else:
            k = ((f - 1.0) / (f_max - 1.0)) ** 0.8
            x, y = (1 - k) * bx + k * ox, (1 - k) * by + k * oy
        xs.append(x)
        ys.append(y)
        gaps.append(_MOUTH_GAP * s * max(0.0, 1.0 - f))
        fs.append(np.full(_MOUTH_NA, f))
        # Lips are full in the middle, recessed at the inner edge, flat at corners.
        prof = math.exp(-(((min(f, 1.0) - 0.55) / 0.5) ** 2)) * math.exp(-((max(f - 1.0, 0.0) / 0.45) ** 2))
        prof -= 0.35 * max(0.0, 1.0 - 2.5 * f)
        # Upper lip thinner than the lower; equal on the slit so the lips meet.
        amp = (0.0185 + np.where(s > 0, -0.0025, 0.0025) * min(f / 0.2, 1.0)) * (lay.t_up / 0.034)
        bulge.append(amp * prof * np.sqrt(np.clip(1.0 - c ** 4, 0.0, 1.0)))
    X = np.concatenate(xs)
    Y = lay.ym + np.concatenate(ys)
    side = np.tile(np.sign(s).astype(np.int8), len(_MOUTH_F))
    pts = _skin_pts(
        lay, X, Y, chart_Y=Y + np.concatenate(gaps), side=side, mouth_f=np.concatenate(fs),
        lip_h=np.concatenate(bulge),
    )
    return pts


def _eye_patch(lay: _Layout, sgn: int) -> _SkinPts:
    """Lid rings around one eye opening (sgn = -1 right eye, +1 left eye)."""
    alpha = 2.0 * np.pi * np.arange(_EYE_NA) / _EYE_NA
    c, s = np.cos(alpha), np.sin(alpha)
    s = np.where(np.abs(s) < 1e-9, 0.0, s)
    xs, ys, rings, ss = [], [], [], []
    for k in range(len(_EYE_DX)):
        x = (lay.eye_hw + _EYE_DX[k]) * c
        # Upper lid peaks toward the nose; outer corner slightly raised.
        y_up = (lay.eye_up + _EYE_DU[k]) * s * (1.0 - 0.12 * c * sgn)
        y_lo = (lay.eye_lo + _EYE_DL[k]) * s
        y = np.where(s >= 0, y_up, y_lo) + 0.07 * x * sgn
        xs.append(sgn * lay.ex + x)
        ys.append(lay.ey + y)
        rings.append(np.full(_EYE_NA, k, np.int16))
        ss.append(s)
    X, Y = np.concatenate(xs), np.concatenate(ys)
    return _skin_pts(
        lay, X, Y, eye=np.full(X.size, sgn, np.int8), eye_ring=np.concatenate(rings), eye_s=np.concatenate(ss)
    )


def _nose_patch(lay: _Layout) -> _SkinPts:
    """Dense points where the nose bends fast (tip, alae, underside)."""
    pts = _lattice(-0.1 * lay.nose_w, 0.1 * lay.nose_w, lay.ys - 0.004, lay.yn + 0.07, 0.0085)
    return _skin_pts(lay, pts[:, 0], pts[:, 1])


def _landmark_skin_pts(lay: _Layout) -> _SkinPts:
    """Jaw contour (17) and nose (9) landmark points, in landmark order."""
    t = np.linspace(-1.0, 1.0, 17)
    phi_top = float(np.arcsin(np.interp(lay.ey - 0.04, *lay.v_table)))
    theta = 1.22 * np.sin(0.5 * np.pi * t)
    phi = phi_top + (-1.18 - phi_top) * np.cos(0.5 * np.pi * t) ** 1.3
    jaw = _chart_pts(lay, np.stack([theta, phi], axis=1))
    nw = lay.nose_w
    nx = np.array([0.0, 0.0, 0.0, 0.0, -0.05 * nw, -0.025 * nw, 0.0, 0.025 * nw, 0.05 * nw])
    ny = np.array([lay.ey + 0.005, lay.ey - 0.07, lay.ey - 0.15, lay.yn])
    ny = np.concatenate([ny, lay.ys + np.array([0.014, 0.004, 0.0, 0.004, 0.014])])
    return _SkinPts.concat([jaw, _skin_pts(lay, nx, ny)])


def _filler(lay: _Layout, keep_out: np.ndarray, holes: list[np.ndarray]) -> _SkinPts:
    """Lattice over the whole chart, dense on the face, away from the patches."""
    fine = _lattice(-1.4, 1.4, -1.3, 0.75, 0.055)
    side = _lattice(-2.0, 2.0, -np.pi / 2, np.pi / 2, 0.095)
    back = _lattice(-np.pi, np.pi, -np.pi / 2, np.pi / 2, 0.14)  # rarely seen, mostly under hair
    coarse = np.concatenate([side, back[np.abs(back[:, 0]) > 2.05]])
    in_box = (np.abs(coarse[:, 0]) < 1.44) & (coarse[:, 1] > -1.34) & (coarse[:, 1] < 0.79)
    edge_t = np.linspace(-np.pi, np.pi, 43)
    edge_p = np.linspace(-np.pi / 2, np.pi / 2, 22)
    border = np.concatenate([
        np.stack([edge_t, np.full_like(edge_t, np.pi / 2)], 1), np.stack([edge_t, np.full_like(edge_t, -np.pi / 2)], 1),
        np.stack([np.full_like(edge_p, -np.pi), edge_p], 1), np.stack([np.full_like(edge_p, np.pi), edge_p], 1),
    ])
    pts = np.concatenate([fine, coarse[~in_box]])
    pts = pts[(np.abs(pts[:, 0]) < np.pi - 0.03) & (np.abs(pts[:, 1]) < np.pi / 2 - 0.03)]
    dist, _ = cKDTree(keep_out).query(pts)
    keep = dist > 0.03
    for poly in holes:
        keep &= ~_inside_polygon(pts, poly)
    pts = np.concatenate([pts[keep], border])
    return _chart_pts(lay, pts)


# --------------------------------------------------------------------------
# Expressions on the skin
# --------------------------------------------------------------------------

_JAW_PIVOT = (-0.02, -0.22)  # (y offset from the eye line, z) of the jaw hinge
_JAW_ANGLE = 0.17  # radians at jaw_open = 1


def _lens(lay: _Layout, X: np.ndarray) -> np.ndarray:
    """Opening profile along the slit: 1 at the middle, 0 at the corners."""
    return np.sqrt(np.clip(1.0 - np.square(X / lay.mw), 0.0, 1.0))


def _lip_weight(lay: _Layout, P: _SkinPts) -> np.ndarray:
    """1 on the red of the lips, fading over the surrounding skin."""
    mx = P.X / lay.mw
    my = P.Y - lay.ym
    up = _lip_border(lay, mx, True)
    lo = _lip_border(lay, mx, False)
    extent = np.where(my >= 0, up, lo) + 1e-3
    ratio = np.abs(my) / extent
    w = np.where(ratio <= 1.0, 1.0, np.exp(-np.square((ratio - 1.0) / 0.6)))
    return w * _g(np.maximum(np.abs(mx) - 1.0, 0.0), 0.25) * _g(np.maximum(np.abs(my) - 0.06, 0.0), 0.04)


def _mouth_weight(lay: _Layout, P: _SkinPts) -> np.ndarray:
    """Broad region moved by the lip muscles."""
    mx = P.X / lay.mw
    return _g(np.maximum(np.abs(mx) - 1.0, 0.0), 0.5) * _g(P.Y - lay.ym, 0.1)


def _seam(P: _SkinPts, lay: _Layout, upper: float, lower: float) -> np.ndarray:
    """Parting of the lips: dy for upper/lower lip points near the slit."""
    near = _g(P.Y - lay.ym, 0.03) * _lens(lay, P.X) ** 1.5
    return np.where(P.side > 0, upper, np.where(P.side < 0, lower, 0.0)) * near * np.isfinite(P.mouth_f)


def _slide(lay: _Layout, P: _SkinPts, e: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Displacement (dx, dy, d_normal) of skin points for expression e at weight 1."""
    X, Y = P.X, P.Y
    zero = np.zeros_like(X)
    dx, dy, dn = zero.copy(), zero.copy(), zero.copy()
    mw = _mouth_weight(lay, P)
    lw = _lip_weight(lay, P)
    my = Y - lay.ym
    if e == JAW_OPEN:
        # The hinge rotation is applied later; here the upper lip lifts a
        # little and the corners draw in.
        dy += _seam(P, lay, 0.018, 0.0)
        dx -= 0.012 * np.sign(X) * _g(np.abs(X) / lay.mw - 1.0, 0.4) * _g(my, 0.06)
    elif e == LIP_ROUND:
        dx -= 0.4 * X * mw
        dy += 0.3 * my * lw + _seam(P, lay, 0.008, -0.012)
        dn += 0.036 * lw + 0.012 * mw
    elif e == LIP_STRETCH:
        dx += 0.24 * X * mw
        corner = _g(np.hypot(np.abs(X) - lay.mw, my), 0.07)
        dy += -0.35 * my * lw - 0.01 * corner + _seam(P, lay, 0.003, -0.006)
        dn -= 0.008 * lw
    elif e in (SMILE_LEFT, SMILE_RIGHT):
        sgn = 1.0 if e == SMILE_LEFT else -1.0
        xs = sgn * X
        corner = _g(np.hypot(xs - lay.mw, my), 0.09)
        half = _smoothstep(-0.4, 0.9, xs / lay.mw)
        cheek = _g(np.hypot(xs - 0.2, Y - (lay.ym + 0.15)), 0.1)
        dx += sgn * (0.042 * corner + 0.02 * half * mw)
        dy += 0.05 * corner + 0.008 * half * lw * (my > 0) + 0.022 * cheek
        dy += _seam(P, lay, 0.004, -0.004) * half
        dn += 0.012 * cheek - 0.004 * corner
    elif e == LIP_PRESS:
        dy += -0.55 * my * lw + 0.008 * _g(np.hypot(X, Y - lay.chin_y), 0.1)
        dn -= 0.012 * lw
    elif e == BROW_RAISE:
        dy += 0.04 * _forehead(lay, X, Y)
    elif e == BROW_FROWN:
        inner = _g(np.abs(X) - 0.06, 0.08) * _smoothstep(lay.ey + 0.02, lay.ey + 0.07, Y)
        inner *= 1.0 - _smoothstep(lay.ey + 0.18, lay.ey + 0.28, Y)
        dy += -0.026 * inner - 0.008 * _forehead(lay, X, Y)
        dx -= 0.022 * np.sign(X) * inner
        dn += 0.004 * _g(X, 0.05) * inner
    elif e in (BLINK_LEFT, BLINK_RIGHT):
        dy += _blink(lay, P, 1 if e == BLINK_LEFT else -1)
    elif e == CHEEK:
        cheek = _g(np.hypot(np.abs(X) - 0.21, Y - (lay.ey - 0.15)), 0.11)
        dy += 0.022 * cheek + 0.008 * _g(np.hypot(np.abs(X) - lay.mw, my), 0.06)
        dn += 0.014 * cheek
        ring = np.clip(P.eye_ring, 0, len(_EYE_DX) - 1)
        lower_lid = (P.eye != 0) & (P.eye_s < 0)
        dy += np.where(lower_lid, 0.25 * lay.eye_lo * np.array([1, 1, 0.8, 0.5, 0.25, 0.1, 0.0])[ring], 0.0)
    front = _smoothstep(0.1, 0.4, np.cos(P.theta))
    return dx * front, dy * front, dn * front


def _forehead(lay: _Layout, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    w = _smoothstep(lay.ey + 0.03, lay.ey + 0.1, Y) * (1.0 - _smoothstep(lay.ey + 0.3, lay.ey + 0.45, Y))
    return w * _g(np.maximum(np.abs(X) - 0.25, 0.0), 0.15)


def _blink(lay: _Layout, P: _SkinPts, sgn: int) -> np.ndarray:
    """Upper lid down to the lower lid (which rises a little)."""
    ring = np.clip(P.eye_ring, 0, len(_EYE_DX) - 1)
    mine = (P.eye == sgn) & (P.eye_ring >= 0)
    s = P.eye_s
    upper_w = np.array([1.0, 1.0, 0.75, 0.45, 0.2, 0.05, 0.0])[ring]
    lower_w = np.array([1.0, 1.0, 0.5, 0.2, 0.0, 0.0, 0.0])[ring]
    # Lid margin heights above/below the eye centre at this point's angle.
    c = np.sqrt(np.clip(1.0 - s * s, 0.0, 1.0))
    up_margin = lay.eye_up * np.abs(s) * (1.0 + 0.12 * c)
    lo_margin = lay.eye_lo * np.abs(s)
    down = -(up_margin + 0.88 * lo_margin) * upper_w
    up = 0.12 * lo_margin * lower_w
    return np.where(mine & (s > 0), down, np.where(mine & (s < 0), up, 0.0))


def _jaw_weight(lay: _Layout, P: _SkinPts) -> np.ndarray:
    """How rigidly a skin point follows the mandible."""
    ax = np.abs(P.X)
    boundary = lay.ym + np.clip(ax - lay.mw, 0.0, None) * 0.55
    w = _smoothstep(0.0, 0.09, boundary - P.Y)
    in_mouth = np.isfinite(P.mouth_f)
    w = np.where(in_mouth & (P.side < 0), np.maximum(w, _lens(lay, P.X) ** 0.7), w)
    w = np.where(in_mouth & (P.side > 0), 0.0, w)
    return w * _smoothstep(-0.3, 0.2, np.cos(P.theta))


def _rotate_jaw(lay: _Layout, p: np.ndarray, weight: np.ndarray, amount: float) -> np.ndarray:
    """Blend points toward their position rotated about the jaw hinge."""
    if amount == 0.0:
        return p
    ang = _JAW_ANGLE * amount
    yp, zp = lay.ey + _JAW_PIVOT[0], _JAW_PIVOT[1]
    dy, dz = p[:, 1] - yp, p[:, 2] - zp
    ca, sa = math.cos(ang), math.sin(ang)
    rot = np.stack([p[:, 0], yp + dy * ca - dz * sa, zp + dy * sa + dz * ca + 0.02 * amount], axis=1)
    return p + weight[:, None] * (rot - p)


def _apply_lids(lay: _Layout, P: _SkinPts, p: np.ndarray) -> np.ndarray:
    """Lids: skin near an eye is pushed out to envelope the eyeball.

    A smooth maximum of the skin surface and a sphere one lid-thickness
    outside the eyeball: the lids hug the eye wherever the socket would be
    behind it, and the upper-lid crease appears where the two meet.  Moving
    points (blinks) slide over the sphere.
    """
    R = lay.r_e + _LID_GAP
    out = p.copy()
    for sgn in (-1.0, 1.0):
        rho2 = np.square(p[:, 0] - sgn * lay.ex) + np.square(p[:, 1] - lay.ey)
        idx = np.flatnonzero((rho2 < R * R) & (np.cos(P.theta) > 0.3))
        if idx.size == 0:
            continue
        z_sph = lay.ez + np.sqrt(R * R - rho2[idx])
        z = p[idx, 2]
        k = 0.006
        out[idx, 2] = 0.5 * (z + z_sph + np.sqrt(np.square(z - z_sph) + k * k)) - 0.5 * k * _smoothstep(0.0, 1.0, 1.0 - rho2[idx] / (R * R))
    return out


def _skin_positions(lay: _Layout, P: _SkinPts, w: np.ndarray, rest_h: np.ndarray) -> np.ndarray:
    """Skin point positions (n, 3) for expression weights w (any values)."""
    dx, dy, dn = np.zeros(len(P)), np.zeros(len(P)), np.zeros(len(P))
    for e in np.flatnonzero(w):
        sx, sy, sn = _slide(lay, P, int(e))
        dx += w[e] * sx
        dy += w[e] * sy
        dn += w[e] * sn
    theta, phi = P.theta, P.phi
    moved = (np.abs(dx) + np.abs(dy)) > 0
    if np.any(moved):
        th2, ph2 = _chart_of_frontal(lay, P.X + dx, P.Y + dy)
        theta, phi = np.where(moved, th2, theta), np.where(moved, ph2, phi)
    base, normal = _surface_frame(lay, theta, phi)
    p = base + normal * (rest_h + dn + P.offset)[:, None]
    p = _apply_lids(lay, P, p)
    return _rotate_jaw(lay, p, _jaw_weight(lay, P), float(w[JAW_OPEN]))


# --------------------------------------------------------------------------
# Parts
# --------------------------------------------------------------------------


@dataclass
class _Part:
    """One piece of geometry before assembly."""

    tris: np.ndarray  # (F, 3) local vertex indices, outward (camera-facing) CCW
    positions: Callable[[np.ndarray], np.ndarray]  # weights (E,) -> (n, 3)
    albedo: np.ndarray  # (F, 3)
    label: np.ndarray  # (F,) part label
    spec: np.ndarray  # (F,) specular strength
    ao: np.ndarray  # (n,) baked occlusion (multiplies lighting)
    pose_w: np.ndarray  # (n,) 1 = follows the head pose, 0 = torso
    two_sided: np.ndarray | None = None  # (F,) bool
    interior: np.ndarray | None = None  # (F,) bool: back faces show as inner mouth
    abs_light: bool = False  # lit from both sides (thin sheets)
    landmarks: dict[int, int] = dataclasses.field(default_factory=dict)  # landmark id -> local vertex
    hidden: bool = False  # only ever seen through the mouth or eye openings
    holes: list[np.ndarray] = dataclasses.field(default_factory=list)  # local vertex loops of openings
    ref_dir: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None  # (rest verts, centroids) -> (F, 3)


def _per_face(n: int, rgb: Any) -> np.ndarray:
    return np.tile(np.asarray(rgb, dtype=np.float64).reshape(1, 3), (n, 1))


def _chart_triangles(chart: np.ndarray, drop: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Delaunay triangles of chart points, CCW in the chart, minus ``drop(centroids)``."""
    tris = Delaunay(chart).simplices.astype(np.int64)
    c = chart[tris].mean(axis=1)
    tris = tris[~drop(c)]
    a, b, d = chart[tris[:, 0]], chart[tris[:, 1]], chart[tris[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (d[:, 1] - a[:, 1]) - (d[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    tris = tris[np.abs(area) > 1e-12]
    flip = area[np.abs(area) > 1e-12] < 0
    tris[flip] = tris[flip][:, ::-1]
    return tris


def _grid_tris(rows: int, cols: int, wrap: bool = False) -> np.ndarray:
    """Triangles of a rows x cols vertex grid (row-major), optionally wrapped in columns."""
    cmax = cols if wrap else cols - 1
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cmax), indexing="ij")
    r, c = r.ravel(), c.ravel()
    c1 = (c + 1) % cols
    a, b, d, e = r * cols + c, r * cols + c1, (r + 1) * cols + c, (r + 1) * cols + c1
    # Two triangles per cell, cells row-major (callers colour by cell order).
    return np.stack([np.stack([a, b, e], 1), np.stack([a, e, d], 1)], 1).reshape(-1, 3)


def _rigid(rest: np.ndarray, lay: _Layout, jaw_w: np.ndarray | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Positions of a part that only follows the jaw (or nothing)."""
    rest = rest.copy()

    def positions(w: np.ndarray) -> np.ndarray:
        if jaw_w is None:
            return rest
        return _rotate_jaw(lay, rest, jaw_w, float(w[JAW_OPEN]))

    return positions


# -- hair profiles -----------------------------------------------------------

_HAIR_KNOTS = np.array([0.0, 0.5, 0.85, 1.05, 1.25, 1.45, 1.75, 2.1, 2.5, np.pi])
_HAIR_LINES = {  # lower edge (latitude) of the hair at each |longitude| knot
    "short": [0.54, 0.57, 0.52, 0.28, 0.02, 0.2, 0.22, -0.3, -0.52, -0.56],
    "fringe": [0.3, 0.31, 0.36, 0.26, 0.02, 0.2, 0.22, -0.3, -0.52, -0.56],
    "curly": [0.5, 0.52, 0.45, 0.22, 0.0, 0.12, 0.12, -0.35, -0.55, -0.58],
    "long": [0.58, 0.6, 0.52, -2.0, -2.2, -2.3, -2.35, -2.35, -2.35, -2.35],
    "bob": [0.58, 0.6, 0.52, -1.0, -1.1, -1.15, -1.2, -1.2, -1.2, -1.2],
    "bald": [2.0, 2.0, 2.0, 2.0, 0.22, 0.12, 0.12, -0.3, -0.5, -0.55],
}
_HAIR_THICK = {"short": 0.045, "fringe": 0.05, "curly": 0.11, "long": 0.045, "bob": 0.06, "bald": 0.012}
_HAIR_FALL = 0.1  # latitude where long styles leave the head and hang down


@dataclass(frozen=True)
class _HairProfile:
    style: str

    def s_min(self, theta: np.ndarray) -> np.ndarray:
        knots = np.asarray(_HAIR_LINES[self.style])
        # Average shifted samples: rounds the corners of the piecewise-linear line.
        acc = np.zeros_like(theta, dtype=np.float64)
        shifts = np.linspace(-0.08, 0.08, 9)
        for d in shifts:
            acc += np.interp(np.abs(np.clip(theta + d, -np.pi, np.pi)), _HAIR_KNOTS, knots)
        line = acc / shifts.size
        if self.style == "fringe":  # bangs end in a jagged edge
            line = line + 0.025 * np.abs(np.sin(theta * 21.0)) * (np.abs(theta) < 0.95)
        return line

    def s_max(self, theta: np.ndarray) -> np.ndarray:
        if self.style == "bald":  # a fringe of hair around the back, above the ears
            return np.interp(np.abs(theta), [1.15, 1.5, np.pi], [0.2, 0.45, 0.55])
        return np.full_like(theta, np.pi / 2, dtype=np.float64)

    @property
    def hangs(self) -> bool:
        return self.style in ("long", "bob")

    def inside(self, theta: np.ndarray, s: np.ndarray) -> np.ndarray:
        return (s > self.s_min(theta)) & (s < self.s_max(theta))

    def on_scalp(self, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
        # A little inside the hair edge, so the dark scalp never peeks out under it.
        lo = self.s_min(theta) + 0.05
        if self.hangs:
            lo = np.maximum(lo, _HAIR_FALL)
        return (phi > lo) & (phi < self.s_max(theta))


def _hair_points(prof: _HairProfile) -> np.ndarray:
    """Chart (theta, s) points filling the hair region, boundary included."""
    coarse = _lattice(-np.pi, np.pi, _HAIR_FALL - 0.05, np.pi / 2, 0.1)
    fine = _lattice(-1.25, 1.25, -0.2, 1.3, 0.065)  # the part seen from the front
    coarse = coarse[~((np.abs(coarse[:, 0]) < 1.3) & (coarse[:, 1] > -0.25) & (coarse[:, 1] < 1.35))]
    # Hanging hair is a flat vertical sheet: long thin cells are enough.
    t, s = np.meshgrid(np.arange(-np.pi, np.pi + 1e-9, 0.09), np.arange(_HAIR_FALL - 0.1, -2.5, -0.2))
    t = t + 0.045 * (np.arange(s.shape[0])[:, None] % 2)
    hang = np.stack([np.clip(t.ravel(), -np.pi, np.pi), s.ravel()], 1)
    grid = np.concatenate([coarse, fine[fine[:, 1] >= _HAIR_FALL - 0.05], hang, fine[fine[:, 1] < _HAIR_FALL - 0.05]])
    grid = grid[prof.inside(grid[:, 0], grid[:, 1])]
    # Boundary polylines resampled by arc length so steep edges are dense too.
    th = np.linspace(-np.pi, np.pi, 6001)
    lines = []
    for curve in (prof.s_min(th), prof.s_max(th)):
        valid = (curve < np.pi / 2 - 1e-6) & (prof.s_min(th) < prof.s_max(th))
        curve = np.clip(curve, prof.s_min(th), prof.s_max(th))
        pts = np.stack([th, curve], 1)
        for seg in np.split(np.arange(th.size), np.flatnonzero(np.diff(valid.astype(int))) + 1):
            if not valid[seg[0]] or seg.size < 2:
                continue
            p = pts[seg]
            arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])
            at = np.linspace(0.0, arc[-1], max(2, int(arc[-1] / 0.028) + 1))
            lines.append(np.stack([np.interp(at, arc, p[:, 0]), np.interp(at, arc, p[:, 1])], 1))
    boundary = np.concatenate(lines)
    top = np.stack([np.linspace(-np.pi, np.pi, 41), np.full(41, np.pi / 2)], 1)
    top = top[prof.s_max(top[:, 0]) >= np.pi / 2 - 1e-9]
    dist, _ = cKDTree(boundary).query(grid)
    grid = grid[dist > 0.02]
    return np.concatenate([boundary, grid, top])


def _hair_thickness(prof: _HairProfile, theta: np.ndarray, s: np.ndarray) -> np.ndarray:
    t = _HAIR_THICK[prof.style] * (0.55 + 0.45 * _smoothstep(-0.2, 1.2, s))
    edge = prof.s_min(theta) if not prof.hangs else np.where(np.abs(theta) < 0.9, prof.s_min(theta), -9.0)
    t = t * (0.3 + 0.7 * _smoothstep(0.0, 0.14, s - edge))
    if prof.style == "curly":
        t = t * (1.0 + 0.22 * np.sin(9.0 * theta) * np.sin(11.0 * s))
    return t


def _hair_part(idt: Identity, lay: _Layout) -> _Part:
    prof = _HairProfile(idt.hair_style)
    chart = _hair_points(prof)
    tris = _chart_triangles(chart, lambda c: ~prof.inside(c[:, 0], c[:, 1]))
    theta, s = chart[:, 0], chart[:, 1]
    fall = _HAIR_FALL if prof.hangs else -np.inf
    phi = np.clip(np.maximum(s, fall), -np.pi / 2, np.pi / 2)
    base, normal = _surface_frame(lay, theta, phi)
    p = base + normal * _hair_thickness(prof, theta, s)[:, None]
    drop = np.maximum(fall - s, 0.0) if prof.hangs else np.zeros_like(s)
    radial = p[:, [0, 2]] / np.maximum(np.linalg.norm(p[:, [0, 2]], axis=1, keepdims=True), 1e-9)
    flare = 0.07 if idt.hair_style == "bob" else 0.045
    p[:, 1] -= drop * lay.b
    p[:, [0, 2]] += radial * (flare * np.sqrt(drop))[:, None]
    cen = chart[tris].mean(axis=1)
    rng = np.random.default_rng(7)  # fixed: strand pattern is part of the style
    streak = 0.09 * np.sin(cen[:, 0] * 41.0 + 2.7 * np.sin(cen[:, 1] * 7.0)) + rng.uniform(-0.05, 0.05, len(tris))
    if idt.hair_style == "curly":
        streak = 0.12 * np.sin(cen[:, 0] * 23.0) * np.sin(cen[:, 1] * 27.0) + rng.uniform(-0.08, 0.08, len(tris))
    albedo = np.clip(np.asarray(idt.hair_rgb)[None] * (1.0 + streak[:, None]) + 0.015, 0.0, 1.0)
    hanging = cen[:, 1] < fall
    ao = np.clip(0.75 + 0.25 * _smoothstep(-0.5, 0.6, s), 0.0, 1.0)
    return _Part(
        tris=tris, positions=_rigid(p, lay), albedo=albedo, label=np.full(len(tris), HAIR),
        spec=np.full(len(tris), 0.18), ao=ao, pose_w=np.ones(len(p)), two_sided=hanging, abs_light=prof.hangs,
    )


# -- skin --------------------------------------------------------------------


def _front(theta: np.ndarray) -> np.ndarray:
    return _smoothstep(0.0, 0.35, np.cos(theta))


def _skin_part(idt: Identity, lay: _Layout) -> _Part:
    """Head skin with lips, lids and nose."""
    mouth = _mouth_patch(lay)
    eyes = [_eye_patch(lay, -1), _eye_patch(lay, 1)]
    lms = _landmark_skin_pts(lay)
    nose = _nose_patch(lay)
    d, _ = cKDTree(lms.chart).query(nose.chart)
    nose = _SkinPts(*[getattr(nose, f.name)[d > 0.008] for f in dataclasses.fields(_SkinPts)])
    structured = _SkinPts.concat([lms, mouth, eyes[0], eyes[1], nose])
    n_lm, n_m, n_e = len(lms), len(mouth), len(eyes[0])
    last_ring = slice((len(_MOUTH_F) - 1) * _MOUTH_NA, len(_MOUTH_F) * _MOUTH_NA)
    eye_last = slice((len(_EYE_DX) - 1) * _EYE_NA, len(_EYE_DX) * _EYE_NA)
    nb = _nose_box_chart(lay)
    holes = [mouth.chart[last_ring], eyes[0].chart[eye_last], eyes[1].chart[eye_last], nb]
    P = _SkinPts.concat([structured, _filler(lay, structured.chart, holes)])
    mouth0 = mouth.chart[:_MOUTH_NA]
    eye0 = [e.chart[:_EYE_NA] for e in eyes]

    def drop(c: np.ndarray) -> np.ndarray:
        return _inside_polygon(c, mouth0) | _inside_polygon(c, eye0[0]) | _inside_polygon(c, eye0[1])

    tris = _chart_triangles(P.chart, drop)
    rest_h = (_feature_height(lay, P.X, P.Y) + P.lip_h) * _front(P.theta)
    albedo, label = _skin_colours(idt, lay, P, tris)
    n = len(P)
    # Rays through the lips or past an eyeball can leave the head anywhere, so
    # the whole skin is two-sided: seen from inside it is the dark mouth.
    interior = np.ones(len(tris), bool)
    spec = np.where(label == LIPS, 0.3, np.where(label == SCALP, 0.05, np.where(label == HEAD, 0.16, 0.1)))
    landmarks = {i: i for i in range(17)}
    landmarks.update({27 + i: 17 + i for i in range(9)})
    ring = lambda k, i: n_lm + k * _MOUTH_NA + i  # noqa: E731
    outer = [24, 20, 15, 12, 9, 4, 0, 44, 40, 36, 32, 28]
    landmarks.update({48 + j: ring(_MOUTH_F.index(1.0), i) for j, i in enumerate(outer)})
    landmarks.update({60 + j: ring(0, i) for j, i in enumerate([24, 18, 12, 6, 0, 42, 36, 30])})
    e0 = n_lm + n_m
    landmarks.update({36 + j: e0 + i for j, i in enumerate([12, 8, 4, 0, 20, 16])})  # right eye
    landmarks.update({42 + j: e0 + n_e + i for j, i in enumerate([12, 8, 4, 0, 20, 16])})  # left eye
    holes = [n_lm + np.arange(_MOUTH_NA), e0 + np.arange(_EYE_NA), e0 + n_e + np.arange(_EYE_NA)]
    part = _Part(
        tris=tris, positions=lambda w: _skin_positions(lay, P, w, rest_h), albedo=albedo, label=label,
        spec=spec, ao=_skin_ao(lay, P), pose_w=np.ones(n), two_sided=interior, interior=interior,
        landmarks=landmarks, holes=holes,
    )
    return part


def _nose_box_chart(lay: _Layout) -> np.ndarray:
    x0, x1 = -0.1 * lay.nose_w - 0.004, 0.1 * lay.nose_w + 0.004
    y0, y1 = lay.ys - 0.008, lay.yn + 0.074
    t = np.linspace(0.0, 1.0, 12)
    X = np.concatenate([x0 + (x1 - x0) * t, np.full(12, x1), x1 - (x1 - x0) * t, np.full(12, x0)])
    Y = np.concatenate([np.full(12, y0), y0 + (y1 - y0) * t, np.full(12, y1), y1 - (y1 - y0) * t])
    th, ph = _chart_of_frontal(lay, X, Y)
    return np.stack([th, ph], 1)


def _skin_colours(idt: Identity, lay: _Layout, P: _SkinPts, tris: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    skin = np.asarray(idt.skin_rgb)
    F = len(tris)
    albedo = _per_face(F, skin)
    label = np.full(F, SKIN)
    cx, cy = P.X[tris].mean(1), P.Y[tris].mean(1)
    front = np.cos(P.theta[tris]).mean(1) > 0.2
    # Soft blush on the cheeks and a warmer nose tip.
    blush = 0.5 * _g(np.hypot(np.abs(cx) - 0.24, cy - (lay.ey - 0.17)), 0.1) + 0.35 * _g(np.hypot(cx, cy - lay.yn), 0.04)
    albedo = albedo * (1.0 - (blush * front)[:, None] * np.array([0.0, 0.08, 0.07]))
    lips = np.all(P.mouth_f[tris] <= 1.0 + 1e-9, axis=1)
    albedo[lips] = idt.lip_rgb
    label[lips] = LIPS
    ring, es = P.eye_ring[tris], P.eye_s[tris]
    near = np.all((ring >= 0) & (ring <= 1), axis=1)
    lash = near & np.all(es >= -1e-9, axis=1)
    albedo[lash] = np.minimum(np.asarray(idt.brow_rgb) * 0.45, 0.08)
    rim = near & np.all(es <= 1e-9, axis=1)
    albedo[rim] = skin * np.array([0.8, 0.62, 0.6])
    for sx in (-1.0, 1.0):  # nostrils
        nost = np.hypot((cx - sx * 0.021 * lay.nose_w) / 0.013, (cy - lay.ys - 0.008) / 0.0075) < 1.0
        albedo[nost & front] = skin * 0.3
    # Facial skin stops at the temples, the top of the forehead and the jaw.
    face = (np.cos(P.theta[tris]).mean(1) > 0.2) & (cy < lay.ey + 0.36)
    label[~face & (label == SKIN)] = HEAD
    prof = _HairProfile(idt.hair_style)
    scalp = prof.on_scalp(P.theta[tris].mean(1), P.phi[tris].mean(1)) & (np.ptp(P.theta[tris], axis=1) < 1.0)
    albedo[scalp] = np.asarray(idt.hair_rgb) * 0.6
    label[scalp] = SCALP
    return albedo, label


def _skin_ao(lay: _Layout, P: _SkinPts) -> np.ndarray:
    X, Y, ax = P.X, P.Y, np.abs(P.X)
    ao = 1.0 - 0.25 * _g(np.hypot(ax - (lay.ex - lay.eye_hw), Y - lay.ey), 0.035)  # inner eye corners
    ao -= 0.3 * _g(np.hypot(X / 1.6, Y - lay.ys), 0.02)  # under the nose
    ao -= 0.35 * _g(np.hypot(ax - lay.mw * 1.03, Y - lay.ym), 0.018)  # mouth corners
    ao -= 0.18 * _g(np.hypot(X / 2.5, Y - (lay.ym - lay.t_lo - 0.02)), 0.02)  # under the lower lip
    ao -= 0.12 * _g(np.hypot(X / 1.5, Y - lay.ey + 0.005), 0.05) * (P.eye_ring < 0)  # nose bridge sides
    # Steep nose flanks are shaded (the key light alone leaves the nose flat).
    d = 0.006
    slope = np.abs(_nose_height(lay, X + d, Y) - _nose_height(lay, X - d, Y)) / (2 * d)
    ao -= 0.22 * np.clip(slope, 0.0, 1.5) / 1.5 * (P.eye_ring < 0)
    ao -= np.where(P.mouth_f == 0.0, 0.45, np.where(P.mouth_f == 0.2, 0.15, 0.0))  # dark line between the lips
    return np.clip(1.0 - (1.0 - ao) * _front(P.theta), 0.3, 1.0)


# -- brows, eyes, mouth interior ----------------------------------------------


def _brow_part(idt: Identity, lay: _Layout, sgn: int) -> _Part:
    t = np.linspace(0.0, 1.0, _BROW_N)
    p0 = np.array([sgn * (lay.ex - 0.088), lay.brow_y - 0.024])
    p1 = np.array([sgn * (lay.ex - 0.005), lay.brow_y + 0.03])
    p2 = np.array([sgn * (lay.ex + 0.118), lay.brow_y - 0.014])
    curve = ((1 - t) ** 2)[:, None] * p0 + (2 * (1 - t) * t)[:, None] * p1 + (t ** 2)[:, None] * p2
    tang = (2 * (1 - t))[:, None] * (p1 - p0) + (2 * t)[:, None] * (p2 - p1)
    nrm = np.stack([-tang[:, 1], tang[:, 0]], 1) * sgn
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    th = lay.brow_th * (0.027 - 0.015 * t) * (0.7 + 0.3 * _smoothstep(0.0, 0.12, t))
    rows = [curve + nrm * (th * f)[:, None] for f in (-0.5, 0.0, 0.5)]
    xy = np.concatenate(rows)
    offset = np.repeat([0.005, 0.008, 0.005], _BROW_N)
    P = _skin_pts(lay, xy[:, 0], xy[:, 1], offset=offset)
    rest_h = _feature_height(lay, P.X, P.Y) * _front(P.theta)
    tris = _grid_tris(3, _BROW_N)
    rng = np.random.default_rng(11)
    shade = 1.0 + rng.uniform(-0.12, 0.12, len(tris))
    albedo = np.clip(np.asarray(idt.brow_rgb)[None] * shade[:, None], 0, 1)
    cols = [_BROW_N - 1, 11, 8, 4, 0] if sgn < 0 else [0, 4, 8, 11, _BROW_N - 1]
    first = 17 if sgn < 0 else 22
    return _Part(
        tris=tris, positions=lambda w: _skin_positions(lay, P, w, rest_h), albedo=albedo,
        label=np.full(len(tris), BROW), spec=np.full(len(tris), 0.05), ao=np.ones(len(P)), pose_w=np.ones(len(P)),
        landmarks={first + j: _BROW_N + c for j, c in enumerate(cols)},
        ref_dir=lambda v, c: c - np.array([0.0, 0.0, -0.3]),
    )


_EYE_BETA = (0.0, 0.1, 0.2, 0.28, 0.36, 0.44, 0.5, 0.62, 0.8, 1.0, 1.3, 1.75)
_EYE_PSI = 20


def _polar_tris(n_rings: int, na: int) -> np.ndarray:
    """Apex (vertex 0) fan plus quads between rings of ``na`` vertices each."""
    j = np.arange(na)
    fan = np.stack([np.zeros(na, int), 1 + j, 1 + (j + 1) % na], 1)
    return np.concatenate([fan, 1 + _grid_tris(n_rings, na, wrap=True)])


def _eyeball_part(idt: Identity, lay: _Layout, sgn: int) -> _Part:
    beta = np.asarray(_EYE_BETA)
    psi = 2.0 * np.pi * np.arange(_EYE_PSI) / _EYE_PSI
    b, s = np.meshgrid(beta[1:], psi, indexing="ij")
    dirs = np.stack([np.sin(b) * np.cos(s), np.sin(b) * np.sin(s), np.cos(b)], -1).reshape(-1, 3)
    dirs = np.concatenate([[[0.0, 0.0, 1.0]], dirs])
    centre = np.array([sgn * lay.ex, lay.ey, lay.ez])
    rest = centre + lay.r_e * dirs
    tris = _polar_tris(len(beta) - 1, _EYE_PSI)
    band = np.concatenate([np.zeros(_EYE_PSI, int), 1 + np.arange(len(tris) - _EYE_PSI) // (2 * _EYE_PSI)])
    outer = beta[band + 1]
    iris = np.asarray(idt.eye_rgb)
    sclera = np.array([0.93, 0.9, 0.86])
    albedo = _per_face(len(tris), sclera)
    albedo[outer > 0.62] = sclera * np.array([0.96, 0.9, 0.86])
    in_iris = (outer > 0.2) & (outer <= 0.5)
    albedo[in_iris] = iris
    albedo[(outer > 0.2) & (outer <= 0.28)] = np.clip(iris * 1.25 + 0.04, 0, 1)
    albedo[outer == 0.5] = iris * 0.5  # limbal ring
    albedo[outer <= 0.2] = (0.03, 0.03, 0.035)  # pupil
    label = np.where(outer <= 0.5, IRIS, SCLERA)
    # Catch-light: a small window reflection toward the light (upper left).
    cen = rest[tris].mean(1) - centre
    ang = np.arctan2(cen[:, 1], cen[:, 0])
    glint = (outer > 0.2) & (outer <= 0.36) & (np.abs(ang - 2.35) < 0.3)
    albedo[glint] = (0.97, 0.97, 0.97)
    return _Part(
        tris=tris, positions=_rigid(rest, lay), albedo=albedo, label=label, spec=np.full(len(tris), 0.45),
        ao=np.where(dirs[:, 2] > 0.5, 0.95, 0.75), pose_w=np.ones(len(rest)),
        ref_dir=lambda v, c: c - centre, hidden=True,
    )


def _teeth_part(lay: _Layout, z_front: float) -> _Part:
    """Upper and lower dental arches: strips of teeth behind the lips."""
    scale = lay.mw / 0.165
    bounds = np.array([0.0, 0.031, 0.058, 0.083, 0.105, 0.124, 0.142, 0.158]) * scale
    gap = 0.0035 * scale
    xs = [-bounds[-1]]
    for b in bounds[::-1][1:-1]:
        xs += [-b - gap / 2, -b + gap / 2]
    xs += [-gap / 2, gap / 2]
    for b in bounds[1:-1]:
        xs += [b - gap / 2, b + gap / 2]
    xs.append(bounds[-1])
    xs = np.asarray(xs)
    ncol = xs.size
    is_gap = np.zeros(ncol - 1, bool)
    is_gap[1::2] = True
    verts, tris, albedo, jaw = [], [], [], []
    ivory, gum = np.array([0.94, 0.92, 0.84]), np.array([0.78, 0.42, 0.45])
    rows_up = lay.ym + np.array([0.05, 0.03, 0.022, 0.0, -0.013])
    rows_lo = lay.ym + np.array([0.006, -0.012, -0.03, -0.046])
    for rows, back, lower in ((rows_up, 0.0, False), (rows_lo, 0.01, True)):
        X, Y = np.meshgrid(xs, rows)
        Z = z_front - back - 1.6 * np.square(X / scale)
        off = sum(len(v) for v in verts)
        verts.append(np.stack([X.ravel(), Y.ravel(), Z.ravel()], 1))
        t = _grid_tris(len(rows), ncol) + off
        tris.append(t)
        r = np.repeat(np.arange(len(rows) - 1), ncol - 1)
        col = np.tile(np.arange(ncol - 1), len(rows) - 1)
        a = np.tile(ivory, (len(r), 1))
        a[is_gap[col]] = ivory * 0.62
        if not lower:
            a[r == 0] = gum
        else:
            a[r == len(rows) - 2] = gum
        a *= (1.0 - 0.25 * np.abs(xs[col] + xs[col + 1]) / (2 * bounds[-1]))[:, None]  # back teeth darker
        albedo.append(np.repeat(a, 2, axis=0))
        jaw.append(np.full(X.size, 1.0 if lower else 0.0))
    rest = np.concatenate(verts)
    tris_a = np.concatenate(tris)
    return _Part(
        tris=tris_a, positions=_rigid(rest, lay, np.concatenate(jaw)), albedo=np.concatenate(albedo),
        label=np.full(len(tris_a), TEETH), spec=np.full(len(tris_a), 0.3), ao=np.full(len(rest), 0.85),
        pose_w=np.ones(len(rest)), ref_dir=lambda v, c: np.tile([0.0, 0.0, 1.0], (len(c), 1)), hidden=True,
    )


def _cap(centre: np.ndarray, radii: np.ndarray, n_lat: int, n_lon: int, lat: tuple[float, float],
         lon: tuple[float, float], axis_z: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid on an ellipsoid: latitude about y, longitude around y starting at z."""
    la, lo = np.meshgrid(np.linspace(*lat, n_lat), np.linspace(*lon, n_lon), indexing="ij")
    d = np.stack([np.cos(la) * np.sin(lo), np.sin(la), axis_z * np.cos(la) * np.cos(lo)], -1).reshape(-1, 3)
    return centre + d * radii, _grid_tris(n_lat, n_lon)


def _mouth_inside_part(lay: _Layout, z_front: float) -> _Part:
    """Dark mouth cavity (concave, facing the lips) and the tongue on its floor."""
    # Deep and wide, so every ray through the lips ends on it, yet inside the head.
    c_bowl = np.array([0.0, lay.ym - 0.02, z_front - 0.09])
    bowl, t_bowl = _cap(c_bowl, np.array([lay.mw * 1.3, 0.11, 0.2]), 9, 13, (-1.15, 1.15), (-1.35, 1.35), -1.0)
    c_tongue = np.array([0.0, lay.ym - 0.045, z_front - 0.07])
    tongue, t_tongue = _cap(c_tongue, np.array([lay.mw * 0.68, 0.026, 0.06]), 5, 11, (0.0, 1.5), (-1.5, 1.5), 1.0)
    rest = np.concatenate([bowl, tongue])
    tris = np.concatenate([t_bowl, t_tongue + len(bowl)])
    jaw = np.concatenate([_smoothstep(0.0, -0.04, bowl[:, 1] - lay.ym), np.ones(len(tongue))])
    F_b = len(t_bowl)
    label = np.concatenate([np.full(F_b, MOUTH), np.full(len(t_tongue), TONGUE)])
    depth = np.clip((c_bowl[2] - bowl[t_bowl].mean(1)[:, 2]) / 0.2, 0, 1)
    albedo = np.concatenate([
        np.array([0.42, 0.1, 0.1])[None] * (1.0 - 0.6 * depth)[:, None], _per_face(len(t_tongue), (0.8, 0.38, 0.4)),
    ])
    ao = np.concatenate([np.full(len(bowl), 0.45), np.full(len(tongue), 0.7)])

    def ref(v: np.ndarray, c: np.ndarray) -> np.ndarray:
        out = c - c_tongue
        out[:F_b] = np.array([0.0, 0.0, 1.0])
        return out

    return _Part(
        tris=tris, positions=_rigid(rest, lay, jaw), albedo=albedo, label=label, spec=np.full(len(tris), 0.15),
        ao=ao, pose_w=np.ones(len(rest)), ref_dir=ref, hidden=True,
    )


# -- ears, neck, shoulders ---------------------------------------------------


def _ear_part(idt: Identity, lay: _Layout, sgn: int) -> _Part:
    yc = lay.ey - 0.1
    th, ph = np.array([sgn * 1.5]), np.arcsin(np.array([np.interp(yc, *lay.v_table)]))
    root = _base(lay, th, ph)[0]
    up = np.array([0.0, 1.0, 0.0])
    back = np.array([sgn * 0.45, 0.0, -1.0])
    back /= np.linalg.norm(back)
    out = np.cross(up, back) * -sgn
    out /= np.linalg.norm(out)
    radii = np.array([0.3, 0.55, 0.75, 0.9, 1.0])
    psi = 2.0 * np.pi * np.arange(20) / 20
    r, s = np.meshgrid(radii, psi, indexing="ij")
    lu, lv = 0.105 * r * np.sin(s), 0.058 * r * np.cos(s)
    bump = np.where(r > 0.7, 0.012, -0.008) * (r < 0.99)
    local = np.stack([lu.ravel(), lv.ravel(), bump.ravel()], 1)
    local = np.concatenate([[[0.0, 0.0, -0.012]], local])
    centre = root + back * 0.045 + out * 0.012
    rest = centre + local[:, :1] * up + local[:, 1:2] * back + local[:, 2:3] * out
    tris = _polar_tris(len(radii), 20)
    band = np.concatenate([np.zeros(20, int), 1 + np.arange(len(tris) - 20) // 40])
    skin = np.asarray(idt.skin_rgb)
    albedo = _per_face(len(tris), skin * np.array([1.0, 0.93, 0.9]))
    albedo[band <= 1] = skin * 0.72
    return _Part(
        tris=tris, positions=_rigid(rest, lay), albedo=albedo, label=np.full(len(tris), EAR),
        spec=np.full(len(tris), 0.08), ao=np.where(np.linalg.norm(local[:, :2], axis=1) < 0.04, 0.7, 0.95),
        pose_w=np.ones(len(rest)), two_sided=np.ones(len(tris), bool), abs_light=True,
    )


def _neck_part(idt: Identity, lay: _Layout) -> _Part:
    na, ys = 28, np.linspace(-0.45, -1.3, 9)
    ang = 2.0 * np.pi * np.arange(na) / na
    Y, A = np.meshgrid(ys, ang, indexing="ij")
    rx = 0.22 * idt.head_width * (0.9 + 0.2 * idt.jaw_width)
    rest = np.stack([rx * np.sin(A), Y, -0.07 + 0.19 * np.cos(A)], -1).reshape(-1, 3)
    tris = _grid_tris(len(ys), na, wrap=True)
    skin = np.asarray(idt.skin_rgb) * 0.93
    ao = 1.0 - 0.5 * _smoothstep(-0.85, -0.55, rest[:, 1]) * _smoothstep(-0.3, 0.5, np.cos(A.ravel()))
    return _Part(
        tris=tris, positions=_rigid(rest, lay), albedo=_per_face(len(tris), skin), label=np.full(len(tris), NECK),
        spec=np.full(len(tris), 0.06), ao=ao, pose_w=_smoothstep(-1.05, -0.5, rest[:, 1]),
        ref_dir=lambda v, c: c * np.array([1.0, 0.0, 1.0]) + np.array([0.0, 0.0, 0.06]),
    )


def _spow(x: np.ndarray, e: float) -> np.ndarray:
    return np.sign(x) * np.abs(x) ** e


def _torso_part(idt: Identity, lay: _Layout) -> _Part:
    centre = np.array([0.0, -1.56, -0.12])
    v, u = np.meshgrid(np.linspace(0.0, np.pi / 2, 10), np.linspace(-np.pi, np.pi, 37)[:-1], indexing="ij")
    x = 0.95 * _spow(np.cos(v), 0.45) * _spow(np.sin(u), 0.7)
    z = 0.34 * _spow(np.cos(v), 0.45) * _spow(np.cos(u), 0.7)
    y = 0.62 * _spow(np.sin(v), 0.9)
    rest = centre + np.stack([x, y, z], -1).reshape(-1, 3)
    tris = _grid_tris(10, 36, wrap=True)
    albedo = _per_face(len(tris), idt.shirt_rgb)
    return _Part(
        tris=tris, positions=_rigid(rest, lay), albedo=albedo, label=np.full(len(tris), TORSO),
        spec=np.full(len(tris), 0.04), ao=np.full(len(rest), 0.9), pose_w=np.zeros(len(rest)),
        ref_dir=lambda v, c: c - centre,
    )


# --------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------


class FaceModel:
    """The mesh of one identity and its linear expression model (all numpy).

    Arrays (V vertices, F triangles, E expressions):
      ``neutral`` (V, 3), ``deltas`` (E, V, 3), ``triangles`` (F, 3) int32 in
      CCW order seen from outside, ``tri_label`` (F,) part labels,
      ``tri_albedo`` (F, 3), ``tri_spec`` (F,), ``tri_two_sided`` (F,) bool,
      ``tri_interior`` (F,) bool (their back faces are the inside of the mouth),
      ``tri_hidden`` (F,) bool (eyeballs, teeth, mouth cavity: only visible
      through an opening), ``hole_loops`` vertex-id loops of the mouth slit
      and the two eye openings,
      ``vertex_ao`` (V,), ``vertex_pose_weight`` (V,), ``vertex_abs_light`` (V,)
      bool, ``landmark_index`` (68,) vertex ids.
    """

    def __init__(self, identity: Identity):
        self.identity = identity
        lay = _make_layout(identity)
        self.layout = lay
        skin = _skin_part(identity, lay)
        zero = np.zeros(N_EXPRESSIONS)
        skin_rest = skin.positions(zero)
        # Teeth sit just behind the inner edge of the lips at the middle.
        inner_mid = skin.landmarks[LM_UPPER_LIP_INNER]
        z_teeth = float(skin_rest[inner_mid, 2]) - 0.016
        parts = [skin, _brow_part(identity, lay, -1), _brow_part(identity, lay, 1)]
        parts += [_eyeball_part(identity, lay, -1), _eyeball_part(identity, lay, 1)]
        parts += [_teeth_part(lay, z_teeth), _mouth_inside_part(lay, z_teeth)]
        parts += [_hair_part(identity, lay), _neck_part(identity, lay), _torso_part(identity, lay)]
        if identity.hair_style not in ("long", "bob"):
            parts += [_ear_part(identity, lay, -1), _ear_part(identity, lay, 1)]
        self._assemble(parts)

    def _assemble(self, parts: list[_Part]) -> None:
        neutral, deltas, tris, lm = [], [], [], {}
        fields: dict[str, list[np.ndarray]] = {
            k: [] for k in ("alb", "lab", "spec", "two", "int", "hid", "ao", "pw", "abs")
        }
        holes: list[np.ndarray] = []
        offset = 0
        eye = np.eye(N_EXPRESSIONS)
        for part in parts:
            rest = part.positions(np.zeros(N_EXPRESSIONS))
            d = np.stack([part.positions(eye[e]) - rest for e in range(N_EXPRESSIONS)])
            t = part.tris.copy()
            if part.ref_dir is not None:  # make every triangle face outward
                a, b, c = rest[t[:, 0]], rest[t[:, 1]], rest[t[:, 2]]
                n = np.cross(b - a, c - a)
                flip = np.einsum("ij,ij->i", n, part.ref_dir(rest, (a + b + c) / 3.0)) < 0
                t[flip] = t[flip][:, ::-1]
            F = len(t)
            neutral.append(rest)
            deltas.append(d)
            tris.append(t + offset)
            fields["alb"].append(part.albedo)
            fields["lab"].append(part.label)
            fields["spec"].append(part.spec)
            fields["two"].append(part.two_sided if part.two_sided is not None else np.zeros(F, bool))
            fields["int"].append(part.interior if part.interior is not None else np.zeros(F, bool))
            fields["hid"].append(np.full(F, part.hidden))
            holes.extend(h + offset for h in part.holes)
            fields["ao"].append(part.ao)
            fields["pw"].append(part.pose_w)
            fields["abs"].append(np.full(len(rest), part.abs_light))
            lm.update({k: v + offset for k, v in part.landmarks.items()})
            offset += len(rest)
        self.neutral = np.concatenate(neutral).astype(np.float32)  # (V, 3)
        self.deltas = np.concatenate(deltas, axis=1).astype(np.float32)  # (E, V, 3)
        self.triangles = np.concatenate(tris).astype(np.int32)  # (F, 3)
        self.tri_albedo = np.clip(np.concatenate(fields["alb"]), 0, 1).astype(np.float32)
        self.tri_label = np.concatenate(fields["lab"]).astype(np.int8)
        self.tri_spec = np.concatenate(fields["spec"]).astype(np.float32)
        self.tri_two_sided = np.concatenate(fields["two"]).astype(bool)
        self.tri_interior = np.concatenate(fields["int"]).astype(bool)
        self.tri_hidden = np.concatenate(fields["hid"]).astype(bool)
        self.hole_loops = tuple(h.astype(np.int64) for h in holes)
        self.vertex_ao = np.concatenate(fields["ao"]).astype(np.float32)
        self.vertex_pose_weight = np.concatenate(fields["pw"]).astype(np.float32)
        self.vertex_abs_light = np.concatenate(fields["abs"]).astype(bool)
        self.landmark_index = np.array([lm[i] for i in range(N_LANDMARKS)], dtype=np.int64)
        self._lm_neutral = self.neutral[self.landmark_index].astype(np.float64)
        self._lm_deltas = self.deltas[:, self.landmark_index].astype(np.float64)

    @property
    def n_vertices(self) -> int:
        return int(self.neutral.shape[0])

    @property
    def n_triangles(self) -> int:
        return int(self.triangles.shape[0])

    def vertices(self, expression: Any) -> np.ndarray:
        """(V, 3) float32 model-space vertices for expression weights (E,)."""
        w = check_expression(expression).astype(np.float32)
        return self.neutral + np.tensordot(w, self.deltas, axes=1)

    def landmarks3d(self, expression: Any) -> np.ndarray:
        """(68, 3) float64 model-space landmarks."""
        w = check_expression(expression)
        return self._lm_neutral + np.tensordot(w, self._lm_deltas, axes=1)


@functools.lru_cache(maxsize=32)
def face_model(identity: Identity) -> FaceModel:
    """The (cached) mesh of an identity."""
    if not isinstance(identity, Identity):
        raise VastbenchError(f"expected an Identity, got {type(identity).__name__}; build one with sample_identity()")
    return FaceModel(identity)


def vertices(identity: Identity, expression: Any) -> np.ndarray:
    """(V, 3) model-space vertices: neutral + sum_e w_e * delta_e."""
    return face_model(identity).vertices(expression)


def landmarks3d(identity: Identity, expression: Any) -> np.ndarray:
    """(68, 3) model-space landmarks (iBUG order, see LANDMARK_GROUPS)."""
    return face_model(identity).landmarks3d(expression)
