"""Synthetic face masks drawn onto a face from its 68 landmarks.

Paired training data for Pix2Pix needs (masked, unmasked, mask map) triples, and no
photo exists of the same face with and without a mask. This module makes the masked
member: it builds a mask *surface* from the landmarks (top edge over the nose bridge,
sides along the jaw at the cheeks, bottom under the chin), so the mask follows head
pose and tilt, paints a style's texture (pleats, seams, fabric patterns, a valve) in
the surface's own (u, v) coordinates, shades it with the face's lighting and blends it
in with an anti-aliased edge, a faint contact shadow and ear loops or headbands.

Everything is numpy + OpenCV, reads no files, and draws all randomness from the
`np.random.Generator` passed in, so a render is reproducible from the generator state.
Invariant: `masked == face` exactly wherever `mask_map == 0`.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import cv2
import numpy as np
from scipy.interpolate import CubicSpline

STYLES: tuple[str, ...] = ("surgical", "n95", "kn95", "cloth", "sports", "ffp2_valve")

_NU, _NV = 33, 17  # surface mesh nodes across (u) and down (v) the mask
_ALPHA_FLOOR = 0.03  # coverage below this is dropped: a step of at most ~8 grey levels at the edge


@dataclasses.dataclass
class RenderedMask:
    """One rendered mask: the masked face, where it differs from the face, and what was drawn."""

    masked: np.ndarray  # uint8 (H, W, 3)
    mask_map: np.ndarray  # uint8 (H, W), 255 where the mask, its loops or its shadow touch
    meta: dict  # JSON-serialisable: style, colour, rgb, pattern, straps


def parse_styles(text: str, choices: tuple[str, ...] = STYLES) -> tuple[str, ...]:
    """Parse "all" or a comma-separated list of style names from ``choices`` (this family's
    styles unless another family's are given); unknown names raise ValueError."""
    names = [name.strip().lower() for name in str(text).split(",") if name.strip()]
    if names == ["all"]:
        return tuple(choices)
    if not names:
        raise ValueError(f"no mask style given; choose from {', '.join(choices)} or 'all'")
    unknown = [name for name in names if name not in choices]
    if unknown:
        raise ValueError(f"unknown mask style(s) {', '.join(unknown)}; choose from {', '.join(choices)} or 'all'")
    return tuple(dict.fromkeys(names))


# --------------------------------------------------------------------------- geometry


@dataclasses.dataclass(frozen=True)
class _Frame:
    """The face's own axes: `ex` ear to ear, `ey` down the face; `w` face width, `h` brow-to-chin."""

    ex: np.ndarray
    ey: np.ndarray
    w: float
    h: float

    @classmethod
    def of(cls, lm: np.ndarray) -> "_Frame":
        across = lm[16] - lm[0]
        w = max(float(np.linalg.norm(across)), 1e-3)
        ex = across / w
        ey = np.array([-ex[1], ex[0]])
        h = max(float(np.linalg.norm(lm[8] - lm[27])), 1e-3)
        return cls(ex, ey, w, h)


@dataclasses.dataclass(frozen=True)
class _Shape:
    """Where a style's outline runs, in landmark terms (fractions of face width/height)."""

    nose_t: float  # top edge crosses the nose this far from landmark 27 towards 30
    top_jaw: int  # jaw landmark at the upper side corner (left side; right is 16 - it)
    bottom_jaw: int  # jaw landmark at the lower side corner
    jaw_points: tuple[int, ...]  # left jaw landmarks the bottom edge passes outside of
    side_margin: float  # corners pushed this far out past the face contour
    jaw_margin: float  # bottom edge pushed this far out past the jaw
    chin_ext: float  # bottom edge this far below landmark 8
    cheek_lift: float  # top edge lifted this far above the straight nose-corner line
    bulge: float  # sides bow outwards (rounded cup masks)
    sharp: bool  # kinks at nose and chin (folded masks)


_SHAPES = {  # nose_t, top_jaw, bottom_jaw, jaw_points, side_margin, jaw_margin, chin_ext, cheek_lift, bulge, sharp
    "surgical": _Shape(0.36, 1, 4, (6,), 0.035, 0.05, 0.13, 0.02, 0.0, False),
    "n95": _Shape(0.30, 2, 5, (6, 7), 0.0, 0.04, 0.11, 0.05, 0.05, False),
    "kn95": _Shape(0.30, 1, 4, (6,), 0.03, 0.05, 0.14, 0.0, 0.01, True),
    "cloth": _Shape(0.34, 1, 4, (5, 6, 7), 0.03, 0.05, 0.10, 0.03, 0.02, False),
    "sports": _Shape(0.30, 1, 4, (5, 6, 7), 0.03, 0.05, 0.12, 0.04, 0.02, False),
    "ffp2_valve": _Shape(0.30, 2, 5, (6, 7), 0.0, 0.04, 0.11, 0.05, 0.05, False),
}


def _curve(points: list[np.ndarray], centre: int, u: np.ndarray, sharp: bool) -> np.ndarray:
    """Spline through `points` with the centre point at u=0.5, chord-length spaced per half."""
    pts = np.asarray(points, np.float64)
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    cum = np.maximum.accumulate(cum + 1e-6 * np.arange(len(cum)))  # strictly increasing
    left = 0.5 * cum[: centre + 1] / cum[centre]
    right = 0.5 + 0.5 * (cum[centre:] - cum[centre]) / (cum[-1] - cum[centre])
    if not sharp:
        return CubicSpline(np.concatenate([left, right[1:]]), pts, bc_type="natural")(u)
    lo = CubicSpline(left, pts[: centre + 1], bc_type="natural")(u)
    hi = CubicSpline(right, pts[centre:], bc_type="natural")(u)
    return np.where(u[:, None] <= 0.5, lo, hi)


_EYES = (slice(36, 42), slice(42, 48))
_EYE_CLEARANCE = 0.08  # top edge stays this far (fraction of face height) below the eye landmarks


def _below_eye(point: np.ndarray, eye: np.ndarray, fr: _Frame) -> np.ndarray:
    """`point` moved down the face (along ey) just enough to clear the lowest of the `eye` landmarks."""
    lowest = float((eye @ fr.ey).max()) + _EYE_CLEARANCE * fr.h
    return point + fr.ey * max(0.0, lowest - float(point @ fr.ey))


def _edges(lm: np.ndarray, fr: _Frame, sh: _Shape, rng: np.random.Generator, u: np.ndarray):
    """Top and bottom edge curves of the mask, sampled at `u`, with a little random fit jitter."""
    nose = lm[27] + (sh.nose_t + rng.uniform(-0.04, 0.04)) * (lm[30] - lm[27])
    margin = sh.side_margin + rng.uniform(-0.01, 0.01)
    corners = [lm[i] + sign * fr.ex * margin * fr.w for i, sign in ((sh.top_jaw, -1), (16 - sh.top_jaw, 1))]
    lift = (sh.cheek_lift + rng.uniform(-0.01, 0.01)) * fr.h
    cheeks = [_below_eye(0.5 * (c + nose) - fr.ey * lift, lm[eye], fr) for c, eye in zip(corners, _EYES)]
    nose = _below_eye(nose, lm[[39, 42]], fr)
    top = _curve([corners[0], cheeks[0], nose, cheeks[1], corners[1]], 2, u, sh.sharp)

    centre = 0.5 * (lm[27] + lm[8])
    chin = lm[8] + fr.ey * (sh.chin_ext + rng.uniform(-0.02, 0.02)) * fr.h

    def pushed(i: int, extra: float) -> np.ndarray:
        out = lm[i] - centre
        return lm[i] + out / max(np.linalg.norm(out), 1e-6) * (sh.jaw_margin + extra) * fr.w

    left = [pushed(sh.bottom_jaw, margin - sh.jaw_margin)] + [pushed(i, 0.0) for i in sh.jaw_points]
    right = [pushed(16 - i, 0.0) for i in reversed(sh.jaw_points)]
    right.append(pushed(16 - sh.bottom_jaw, margin - sh.jaw_margin))
    bottom = _curve(_smoothed(left + [chin] + right), len(left), u, sh.sharp)
    return top, bottom


def _smoothed(points: list[np.ndarray]) -> list[np.ndarray]:
    """Points after one [1, 2, 1] pass (ends fixed): landmark jitter must not make the hem wavy."""
    pts = np.asarray(points)
    inner = 0.25 * pts[:-2] + 0.5 * pts[1:-1] + 0.25 * pts[2:]
    return [pts[0], *inner, pts[-1]]


def _surface(top: np.ndarray, bottom: np.ndarray, u: np.ndarray, v: np.ndarray, bulge: float, fr: _Frame):
    """Mesh points P(u, v) (len(v), len(u), 2): blend of the edges, sides bowed out by `bulge`."""
    side = np.sign(u - 0.5)[None, :, None] * np.abs(2 * u - 1)[None, :, None] ** 3
    bow = bulge * fr.w * np.sin(np.pi * v)[:, None, None] * side * fr.ex
    return (1 - v)[:, None, None] * top[None] + v[:, None, None] * bottom[None] + bow


def _outline(mesh: np.ndarray) -> np.ndarray:
    """Closed outline polygon of the mesh: top edge, right side, bottom edge, left side."""
    return np.concatenate([mesh[0], mesh[1:, -1], mesh[-1, ::-1], mesh[::-1, 0]])


# --------------------------------------------------------------------------- rasterising


@dataclasses.dataclass(frozen=True)
class _Roi:
    """Axis-aligned pixel window of the image that the mask and its straps touch."""

    x0: int
    y0: int
    x1: int
    y1: int

    @classmethod
    def around(cls, points: np.ndarray, shape: tuple[int, int], pad: int) -> "_Roi":
        h, w = shape
        lo = np.floor(points.min(axis=0)).astype(int) - pad
        hi = np.ceil(points.max(axis=0)).astype(int) + pad
        return cls(max(int(lo[0]), 0), max(int(lo[1]), 0), min(int(hi[0]), w), min(int(hi[1]), h))

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    def local(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, np.float64) - (self.x0, self.y0)


def _fill(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a polygon given in ROI pixel coordinates."""
    canvas = np.zeros(shape, np.uint8)
    pts = np.round(polygon * 16).astype(np.int32)  # pixel centres at integers; 4 fractional bits
    cv2.fillPoly(canvas, [pts], 255, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


def _stroke(paths: list[np.ndarray], shape: tuple[int, int], thickness: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of polylines (ROI pixel coordinates) of a given width."""
    canvas = np.zeros(shape, np.uint8)
    if not paths:
        return canvas.astype(np.float32)
    pts = [np.round(p * 16).astype(np.int32) for p in paths]
    width = max(int(round(thickness)), 1)
    cv2.polylines(canvas, pts, False, 255, width, cv2.LINE_AA, shift=4)
    coverage = canvas.astype(np.float32) / 255.0
    return coverage * min(thickness, 1.0)  # sub-pixel loops read as faint, not as 1 px solid


def _strip_ids(strips: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Index image: the number of the strip polygon covering each pixel, -1 where none does."""
    ids = np.full(shape, -1, np.int32)
    for k, polygon in enumerate(strips):
        cv2.fillPoly(ids, [np.round(polygon * 16).astype(np.int32)], k, cv2.LINE_8, shift=4)
    return ids


def _barycentric(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights of b and c for points p in triangles (a, b, c) (all (N, 2))."""
    e1, e2, d = b - a, c - a, p - a
    den = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    return (d[:, 0] * e2[:, 1] - d[:, 1] * e2[:, 0]) / den, (e1[:, 0] * d[:, 1] - e1[:, 1] * d[:, 0]) / den


def _fill_gaps(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Extend values from `known` pixels a few pixels outwards (normalised convolution)."""
    weight = cv2.GaussianBlur(known.astype(np.float32), (0, 0), 1.5)
    spread = cv2.GaussianBlur(values * known, (0, 0), 1.5) / np.maximum(weight, 1e-6)
    return np.where(known, values, np.where(weight > 1e-4, spread, 0.5)).astype(np.float32)


def _uv_maps(mesh: np.ndarray, u: np.ndarray, v: np.ndarray, roi: _Roi) -> tuple[np.ndarray, np.ndarray]:
    """Surface coordinates (u, v) of every ROI pixel, by inverting the mesh cell by cell.

    Column strips and row strips of the mesh are rasterised as index images, so every
    pixel knows its cell; barycentric weights in the cell's two triangles give (u, v)
    exactly as linear interpolation on the mesh would. Anti-aliased edge pixels just
    outside the mesh take the values of their nearest neighbours inside.
    """
    local = roi.local(mesh)
    nv, nu = local.shape[:2]
    cols = _strip_ids([np.concatenate([local[:, i], local[::-1, i + 1]]) for i in range(nu - 1)], roi.shape)
    rows = _strip_ids([np.concatenate([local[j], local[j + 1, ::-1]]) for j in range(nv - 1)], roi.shape)
    known = (cols >= 0) & (rows >= 0)
    ys, xs = np.nonzero(known)
    i, j = cols[known], rows[known]
    p = np.stack([xs, ys], 1).astype(np.float64)
    corner, right, far, below = local[j, i], local[j, i + 1], local[j + 1, i + 1], local[j + 1, i]
    wr, wf = _barycentric(p, corner, right, far)
    upper = (wr >= -1e-6) & (wf >= -1e-6)
    wf2, wb = _barycentric(p, corner, far, below)
    du, dv = u[1] - u[0], v[1] - v[0]
    uv = np.full(roi.shape + (2,), 0.5, np.float32)
    uv[known, 0] = u[i] + du * np.where(upper, wr + wf, wf2)
    uv[known, 1] = v[j] + dv * np.where(upper, wf, wf2 + wb)
    uv = np.clip(uv, 0, 1)
    return _fill_gaps(uv[..., 0], known), _fill_gaps(uv[..., 1], known)


# --------------------------------------------------------------------------- painting


@dataclasses.dataclass
class _Paint:
    """A style's texture on a (th, tw) canvas spanning u, v in [0, 1]."""

    albedo: np.ndarray  # float32 (th, tw, 3) in [0, 1]
    relief: np.ndarray  # float32 (th, tw): folds, seams, curvature (multiplies)
    spec: np.ndarray  # float32 (th, tw): sheen (adds, scaled by the light)
    meta: dict
    strap_rgb: tuple[int, int, int]


_PALETTES = {
    "surgical": {
        "light_blue": (150, 195, 225), "blue": (110, 160, 210), "white": (236, 238, 236),
        "green": (150, 205, 185), "pink": (238, 178, 196), "black": (42, 42, 46),
        "lavender": (190, 172, 222), "grey": (170, 172, 176),
    },
    "n95": {"white": (235, 233, 224), "off_white": (228, 224, 210), "light_grey": (206, 208, 210)},
    "kn95": {"white": (238, 238, 236), "black": (38, 38, 40), "grey": (150, 152, 156), "pink": (236, 180, 190)},
    "cloth": {
        "navy": (36, 48, 92), "red": (170, 36, 42), "black": (30, 30, 32), "grey": (128, 128, 132),
        "khaki": (176, 160, 118), "teal": (30, 128, 130), "mustard": (206, 160, 40), "burgundy": (112, 30, 50),
        "denim": (72, 100, 140), "white": (232, 230, 226), "pink": (226, 140, 170), "olive": (100, 110, 60),
        "purple": (96, 60, 130), "orange": (220, 110, 40), "sky": (120, 170, 220), "green": (50, 120, 70),
    },
    "sports": {"black": (24, 24, 26), "charcoal": (52, 54, 58), "navy": (28, 34, 60), "dark_red": (90, 20, 26)},
    "ffp2_valve": {"white": (236, 234, 228), "light_grey": (204, 206, 208), "blue": (120, 150, 190)},
}


def _pick(rng: np.random.Generator, palette: dict) -> tuple[str, np.ndarray]:
    """A random palette entry: its name and a slightly jittered RGB in [0, 1]."""
    name = list(palette)[rng.integers(len(palette))]
    rgb = np.clip(np.asarray(palette[name], np.float32) / 255 + rng.normal(0, 0.015, 3), 0, 1)
    return name, rgb.astype(np.float32)


def _grid(th: int, tw: int) -> tuple[np.ndarray, np.ndarray]:
    """Canvas pixel centres as surface coordinates U, V in [0, 1]."""
    return np.meshgrid((np.arange(tw, dtype=np.float32) + 0.5) / tw, (np.arange(th, dtype=np.float32) + 0.5) / th)


def _noise(rng: np.random.Generator, th: int, tw: int, sigma: float) -> np.ndarray:
    """Unit-variance Gaussian noise, smoothed over `sigma` canvas pixels (fibre / weave grain)."""
    field = cv2.GaussianBlur(rng.standard_normal((th, tw)).astype(np.float32), (0, 0), sigma)
    return field / max(float(field.std()), 1e-6)


def _band(x: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A Gaussian ridge of unit height centred at `centre`."""
    return np.exp(-0.5 * ((x - centre) / width) ** 2)


def _body(U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Shading of a mask wrapped round a face: sides turn away, the part under the chin faces down."""
    turn = 0.80 + 0.20 * np.cos(np.pi * (U - 0.5)) ** 2
    under = 1.0 - 0.30 * np.clip((V - 0.72) / 0.28, 0, 1) ** 2
    return turn * under


def _hems(U: np.ndarray, V: np.ndarray, depth: float, top: float, side: float) -> np.ndarray:
    """Darker stitched borders: a band of `top` (v) and `side` (u) width along the outline."""
    border = np.maximum(_band(V, 0, top) + _band(V, 1, top), _band(U, 0, side) + _band(U, 1, side))
    seam = _band(V, 1.6 * top, 0.2 * top) + _band(V, 1 - 1.6 * top, 0.2 * top)
    return 1.0 - depth * np.clip(border, 0, 1) - 0.6 * depth * np.clip(seam, 0, 1)


def _paint_surgical(rng: np.random.Generator, th: int, tw: int) -> _Paint:
    """Pleated three-ply mask: horizontal folds, bound edges, nose wire, white or matching loops."""
    U, V = _grid(th, tw)
    name, rgb = _pick(rng, _PALETTES["surgical"])
    n_pleats = int(rng.integers(2, 4))
    centres = np.linspace(0.30, 0.72, n_pleats) + rng.uniform(-0.03, 0.03, n_pleats)
    relief = _body(U, V) * _hems(U, V, 0.10, 0.05, 0.035)
    width = 0.05
    for c in centres:
        d = (V - c) / width
        lit_top, crease, shaded_bottom = np.exp(-((d + 1.1) ** 2)), np.exp(-((d / 0.3) ** 2)), np.exp(-((d - 0.9) ** 2))
        relief = relief * (1 + 0.10 * lit_top - 0.30 * crease - 0.08 * shaded_bottom)
    wire = _band(V, 0.035, 0.02) * np.clip(1 - np.abs(U - 0.5) / 0.16, 0, 1)
    relief = relief * (1 + 0.08 * wire)
    albedo = rgb * (1 + 0.025 * _noise(rng, th, tw, 0.7))[..., None]
    strap = (240, 240, 238) if rng.random() < 0.7 else tuple(int(c) for c in rgb * 255)
    meta = {"colour": name, "rgb": [int(c) for c in rgb * 255], "pattern": f"{n_pleats}_pleats"}
    return _Paint(albedo, relief, np.zeros_like(U), meta, strap)


def _cup_relief(U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Moulded cup: bright centre falling off towards the rim, with an inset rim seam."""
    r2 = ((U - 0.5) / 0.5) ** 2 + ((V - 0.45) / 0.55) ** 2
    dome = 1.05 - 0.22 * np.clip(r2, 0, 1.5)
    inset = np.minimum(np.minimum(U, 1 - U) * 1.3, np.minimum(V, 1 - V))
    return dome * (1 - 0.16 * _band(inset, 0.05, 0.008) - 0.06 * (inset < 0.04))


def _paint_n95(rng: np.random.Generator, th: int, tw: int) -> _Paint:
    """Moulded N95 cup: fibrous off-white shell, rim seam, metal nose clip, two headbands."""
    U, V = _grid(th, tw)
    name, rgb = _pick(rng, _PALETTES["n95"])
    relief = _cup_relief(U, V) * _body(U, V) ** 0.5
    clip = _band(V, 0.08, 0.02) * np.clip(1 - np.abs(U - 0.5) / 0.14, 0, 1)
    grain = 1 + 0.025 * _noise(rng, th, tw, 0.8) + 0.02 * _noise(rng, th, tw, 3.0)
    albedo = rgb * grain[..., None]
    albedo = albedo * (1 - 0.25 * clip[..., None]) + 0.25 * clip[..., None] * np.float32([0.72, 0.74, 0.76])
    strap_name = ["white", "yellow", "blue"][rng.integers(3)]
    strap = {"white": (236, 236, 230), "yellow": (232, 206, 70), "blue": (70, 110, 190)}[strap_name]
    meta = {"colour": name, "rgb": [int(c) for c in rgb * 255], "pattern": "moulded_cup", "strap_colour": strap_name}
    return _Paint(albedo, relief, np.zeros_like(U), meta, strap)


def _paint_kn95(rng: np.random.Generator, th: int, tw: int) -> _Paint:
    """Folded KN95: two panels meeting at a vertical centre seam, dotted welded edges."""
    U, V = _grid(th, tw)
    name, rgb = _pick(rng, _PALETTES["kn95"])
    side = np.where(U < 0.5, 1.0, -1.0)
    tilt = rng.uniform(0.04, 0.10) * rng.choice([-1.0, 1.0])
    panel = 1.0 + tilt * side - 0.16 * ((np.abs(U - 0.5) - 0.25) / 0.25) ** 2
    seam = 1 - 0.35 * _band(U, 0.5, 0.006) + 0.10 * _band(U, 0.5 + 0.02 * np.sign(tilt), 0.012)
    inset = np.minimum(np.minimum(U, 1 - U) * 1.4, np.minimum(V, 1 - V))
    dots = 0.5 + 0.5 * np.cos(2 * np.pi * (U + V) * tw / max(th, 1) * 18)
    weld = 1 - 0.18 * _band(inset, 0.045, 0.012) * dots - 0.08 * (inset < 0.03)
    relief = _body(U, V) * panel * seam * weld
    albedo = rgb * (1 + 0.02 * _noise(rng, th, tw, 0.7))[..., None]
    meta = {"colour": name, "rgb": [int(c) for c in rgb * 255], "pattern": "folded_seam"}
    return _Paint(albedo, relief, np.zeros_like(U), meta, (238, 238, 236))


def _two_colours(rng: np.random.Generator) -> tuple[str, np.ndarray, str, np.ndarray]:
    """Two different cloth colours for a pattern's ground and figure."""
    name1, rgb1 = _pick(rng, _PALETTES["cloth"])
    name2, rgb2 = name1, rgb1
    while name2 == name1:
        name2, rgb2 = _pick(rng, _PALETTES["cloth"])
    return name1, rgb1, name2, rgb2


def _stripes(rng: np.random.Generator, U: np.ndarray, V: np.ndarray, aspect: float) -> np.ndarray:
    """Figure weight of straight stripes at a random angle (0 ground, 1 figure)."""
    angle = rng.choice([0.0, np.pi / 2, np.pi / 4, -np.pi / 4])
    along = np.cos(angle) * V + np.sin(angle) * U * aspect
    period = rng.uniform(0.12, 0.24)
    return 0.5 + 0.5 * np.tanh(6 * np.sin(2 * np.pi * along / period))


def _dots(rng: np.random.Generator, th: int, tw: int) -> np.ndarray:
    """Figure weight of staggered polka dots drawn with anti-aliased circles."""
    canvas = np.zeros((th, tw), np.uint8)
    step = tw / rng.uniform(6, 10)
    radius = step * rng.uniform(0.16, 0.28)
    for row, y in enumerate(np.arange(step / 2, th + step, step * 0.87)):
        for x in np.arange(step / 2 * (row % 2), tw + step, step):
            cv2.circle(canvas, (int(x * 16), int(y * 16)), int(radius * 16), 255, -1, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255


def _plaid(rng: np.random.Generator, U: np.ndarray, V: np.ndarray, aspect: float) -> np.ndarray:
    """Figure weight of a tartan: overlapping soft horizontal and vertical bands plus thin lines."""
    period = rng.uniform(0.2, 0.35)
    bands = [np.clip(np.sin(2 * np.pi * x / period) * 3, 0, 1) for x in (V, U * aspect)]
    lines = [_band(np.mod(x, period), period * 0.75, period * 0.03) for x in (V, U * aspect)]
    return np.clip(0.45 * bands[0] + 0.45 * bands[1] + 0.6 * np.maximum(*lines), 0, 1)


def _flowers(rng: np.random.Generator, th: int, tw: int) -> np.ndarray:
    """Figure weight of scattered five-petal flowers."""
    canvas = np.zeros((th, tw), np.uint8)
    size = tw / rng.uniform(8, 12)
    for _ in range(int(th * tw / size**2 / 3)):
        cx, cy = rng.uniform(0, tw), rng.uniform(0, th)
        turn = rng.uniform(0, 2 * np.pi)
        for k in range(5):
            a = turn + 2 * np.pi * k / 5
            centre = (int((cx + np.cos(a) * size * 0.45) * 16), int((cy + np.sin(a) * size * 0.45) * 16))
            cv2.circle(canvas, centre, int(size * 0.32 * 16), 255, -1, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255


def _paint_cloth(rng: np.random.Generator, th: int, tw: int) -> _Paint:
    """Fabric mask: solid or patterned (stripes, dots, plaid, flowers), woven grain, optional centre seam."""
    U, V = _grid(th, tw)
    name1, rgb1, name2, rgb2 = _two_colours(rng)
    pattern = ["solid", "stripes", "dots", "plaid", "flowers"][rng.integers(5)]
    aspect = tw / max(th, 1)
    figure = {
        "solid": lambda: np.zeros_like(U),
        "stripes": lambda: _stripes(rng, U, V, aspect),
        "dots": lambda: _dots(rng, th, tw),
        "plaid": lambda: _plaid(rng, U, V, aspect),
        "flowers": lambda: _flowers(rng, th, tw),
    }[pattern]()
    weave = 1 + 0.035 * np.sin(np.pi * U * tw * 0.5) * np.sin(np.pi * V * th * 0.5) + 0.03 * _noise(rng, th, tw, 1.0)
    albedo = (rgb1 * (1 - figure[..., None]) + rgb2 * figure[..., None]) * weave[..., None]
    seamed = bool(rng.random() < 0.5)
    seam = 1 - 0.3 * _band(U, 0.5, 0.006) if seamed else np.ones_like(U)
    relief = _body(U, V) * _hems(U, V, 0.12, 0.04, 0.03) * seam * (1 + 0.05 * _noise(rng, th, tw, tw / 6))
    strap = tuple(int(c) for c in rgb1 * 255) if rng.random() < 0.6 else (30, 30, 32)
    meta = {"colour": name1, "rgb": [int(c) for c in rgb1 * 255], "pattern": pattern, "centre_seam": seamed}
    if pattern != "solid":
        meta.update(colour2=name2, rgb2=[int(c) for c in rgb2 * 255])
    return _Paint(albedo.astype(np.float32), relief, np.zeros_like(U), meta, strap)


def _paint_sports(rng: np.random.Generator, th: int, tw: int) -> _Paint:
    """Dark stretch-fabric sports mask: centre seam, satin sheen along the nose ridge, optional piping."""
    U, V = _grid(th, tw)
    name, rgb = _pick(rng, _PALETTES["sports"])
    knit = 1 + 0.06 * _noise(rng, th, tw, 0.6)
    albedo = rgb * knit[..., None]
    piping = bool(rng.random() < 0.5)
    if piping:
        edge = np.clip(_band(V, 0.02, 0.012) + _band(V, 0.98, 0.012), 0, 1)[..., None]
        albedo = albedo * (1 - edge) + edge * np.float32([0.55, 0.56, 0.58])
    relief = _body(U, V) * (1 - 0.35 * _band(U, 0.5, 0.005))
    ridge = 0.14 * _band(U, 0.5, 0.10) * np.clip(1.1 - V, 0, 1)
    cheeks = 0.06 * (_band(U, 0.25, 0.08) + _band(U, 0.75, 0.08)) * _band(V, 0.35, 0.2)
    sheen = ridge + cheeks
    meta = {"colour": name, "rgb": [int(c) for c in rgb * 255], "pattern": "piped" if piping else "plain"}
    return _Paint(albedo.astype(np.float32), relief, sheen.astype(np.float32), meta, tuple(int(c) for c in rgb * 255))


def _paint_ffp2_valve(rng: np.random.Generator, th: int, tw: int) -> _Paint:
    """Moulded FFP2 cup with a round exhalation valve on one cheek."""
    paint = _paint_n95(rng, th, tw)
    U, V = _grid(th, tw)
    name, rgb = _pick(rng, _PALETTES["ffp2_valve"])
    cu = 0.5 + rng.choice([-1.0, 1.0]) * rng.uniform(0.18, 0.24)
    cv = rng.uniform(0.5, 0.6)
    aspect = tw / max(th, 1)
    r = np.sqrt(((U - cu) * aspect) ** 2 + (V - cv) ** 2) / 0.2
    disc = np.clip((1 - r) * 25, 0, 1)
    valve_rgb = np.float32([0.86, 0.86, 0.84]) if rng.random() < 0.5 else np.float32([0.35, 0.37, 0.40])
    paint.albedo = rgb * paint.albedo / np.maximum(paint.albedo.mean(), 1e-3) * 0.9
    paint.albedo = paint.albedo * (1 - disc[..., None]) + disc[..., None] * valve_rgb
    slots = 1 - 0.35 * (np.sin(np.pi * (V - cv) / 0.2 * 5) ** 8) * (r < 0.7)
    ring = 1 - 0.35 * _band(r, 1.0, 0.05) + 0.12 * _band(r, 0.85, 0.06)
    paint.relief = paint.relief * np.where(r < 1, slots * (1.1 - 0.15 * r), 1) * ring
    paint.spec = (0.10 * _band(r, 0.55, 0.12) * (V < cv)).astype(np.float32)
    paint.meta.update(colour=name, rgb=[int(c) for c in rgb * 255], pattern="moulded_cup_valve",
                      valve_side="left" if cu < 0.5 else "right")
    return paint


@dataclasses.dataclass(frozen=True)
class _Style:
    """A mask style: outline shape, painter, and how it is held on (ear loops or headbands)."""

    shape: _Shape
    paint: Callable[[np.random.Generator, int, int], _Paint]
    straps: str  # "ear_loops" | "headbands"


_STYLES = {
    "surgical": _Style(_SHAPES["surgical"], _paint_surgical, "ear_loops"),
    "n95": _Style(_SHAPES["n95"], _paint_n95, "headbands"),
    "kn95": _Style(_SHAPES["kn95"], _paint_kn95, "ear_loops"),
    "cloth": _Style(_SHAPES["cloth"], _paint_cloth, "ear_loops"),
    "sports": _Style(_SHAPES["sports"], _paint_sports, "ear_loops"),
    "ffp2_valve": _Style(_SHAPES["ffp2_valve"], _paint_ffp2_valve, "ear_loops"),
}


# --------------------------------------------------------------------------- straps


_STRAP_WIDTH = {"ear_loops": 0.010, "headbands": 0.020}  # fraction of face width


def _bezier(a: np.ndarray, ctrl: np.ndarray, b: np.ndarray, n: int = 24) -> np.ndarray:
    """Points on the quadratic Bezier curve a -> b bending towards `ctrl`."""
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * a + 2 * (1 - t) * t * ctrl + t**2 * b


def _strap_paths(lm: np.ndarray, fr: _Frame, mesh: np.ndarray, kind: str) -> list[np.ndarray]:
    """Loop or band paths from the mask's side corners towards the ears (landmarks 0/16).

    A side whose cheek is foreshortened (head turned away) gets shorter loops, or none
    when the ear is hidden behind the face.
    """
    paths = []
    for col, ear_top, ear_low, sign in ((0, lm[0], lm[3], -1.0), (-1, lm[16], lm[13], 1.0)):
        visible = np.linalg.norm(ear_top - lm[30]) / (0.5 * fr.w)
        if visible < 0.55:
            continue
        reach = min(visible, 1.0)
        corners = mesh[int(0.1 * len(mesh)), col], mesh[int(0.9 * len(mesh)) - 1, col]
        if kind == "headbands":  # over the ear to the crown, under the ear to the nape
            ends = (ear_top + fr.w * sign * 0.03 * fr.ex - fr.h * 0.16 * fr.ey,
                    ear_low + fr.w * sign * 0.04 * fr.ex + fr.h * 0.10 * fr.ey)
        else:  # to the top of the ear and to the ear lobe
            ends = (ear_top + fr.w * sign * 0.035 * fr.ex - fr.h * 0.05 * fr.ey,
                    0.5 * (lm[2 if sign < 0 else 14] + ear_low) + fr.w * sign * 0.04 * fr.ex)
        for corner, end in zip(corners, ends):
            end = corner + reach * (end - corner)
            ctrl = 0.5 * (corner + end) + sign * 0.02 * fr.w * fr.ex
            paths.append(_bezier(corner, ctrl, end))
    return paths


# --------------------------------------------------------------------------- light


def _lighting(face: np.ndarray, roi: _Roi, inside: np.ndarray) -> np.ndarray:
    """Per-pixel light on the mask: a plane fitted to the face luminance under it.

    A plane keeps the direction and strength of the face's light (one cheek brighter) but
    none of the features under the mask (mouth, nostrils, beard). The overall level comes
    from the photo's white point, so a white mask in a dim photo is grey, not glowing.
    """
    lum = (face.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])) / 255.0
    exposure = float(np.clip(np.percentile(lum[::2, ::2], 99) / 0.92, 0.45, 1.05))
    ys, xs = np.nonzero(inside)
    if len(xs) < 16:
        return np.full(roi.shape, exposure, np.float32)
    pick = slice(None, None, max(1, len(xs) // 4000))
    ys, xs = ys[pick], xs[pick]
    design = np.stack([np.ones_like(xs), xs, ys], 1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, lum[roi.slices][ys, xs].astype(np.float64), rcond=None)
    gy, gx = np.mgrid[0 : roi.shape[0], 0 : roi.shape[1]].astype(np.float32)
    plane = coef[0] + coef[1] * gx + coef[2] * gy
    level = max(float((design @ coef).mean()), 1e-3)
    return (np.clip(plane / level, 0.6, 1.4) ** 0.8 * exposure).astype(np.float32)


def _softness(face: np.ndarray, lm: np.ndarray) -> float:
    """Extra blur (Gaussian sigma, px) that makes the crisp render as soft as the photo's eye region.

    Re-blur estimate: blurring an edge of softness s by 1 px scales its strongest
    gradients by r = s / sqrt(s^2 + 1), so s = r / sqrt(1 - r^2). The renderer's own
    softness (~0.6 px) is subtracted in quadrature.
    """
    roi = _Roi.around(lm[17:48], face.shape[:2], 2)
    if min(roi.shape) < 8:
        return 0.0
    lum = cv2.cvtColor(face[roi.slices], cv2.COLOR_RGB2GRAY).astype(np.float32)

    def strongest(img: np.ndarray) -> float:
        gradient = cv2.magnitude(cv2.Sobel(img, cv2.CV_32F, 1, 0), cv2.Sobel(img, cv2.CV_32F, 0, 1))
        return float(np.percentile(gradient, 95))

    sharp = strongest(lum)
    if sharp < 1.0:
        return 0.0
    r = min(strongest(cv2.GaussianBlur(lum, (0, 0), 1.0)) / sharp, 0.95)
    s = r / np.sqrt(1 - r * r)
    return float(np.sqrt(max(s * s - 0.36, 0.0)))


def _grain(face: np.ndarray, roi: _Roi, inside: np.ndarray) -> float:
    """Noise level of the photo near the mask (std of a median-filter residual), for matching grain."""
    patch = face[roi.slices]
    residual = patch.astype(np.float32) - cv2.medianBlur(patch, 3).astype(np.float32)
    return float(np.clip(residual[inside].std() * 0.5, 0.5, 6.0)) if inside.any() else 1.0


# --------------------------------------------------------------------------- compositing


@dataclasses.dataclass(frozen=True)
class _Geometry:
    """Where the mask lies: surface mesh over (u, v), its outline, strap paths and the ROI."""

    mesh: np.ndarray
    u: np.ndarray
    v: np.ndarray
    outline: np.ndarray
    straps: list
    roi: _Roi


def _geometry(shape: tuple[int, int], lm: np.ndarray, fr: _Frame, style: _Style, rng: np.random.Generator):
    """Fit the style's surface to the landmarks; None when it lies entirely outside the image."""
    u, v = np.linspace(0, 1, _NU), np.linspace(0, 1, _NV)
    top, bottom = _edges(lm, fr, style.shape, rng, u)
    mesh = _surface(top, bottom, u, v, style.shape.bulge, fr)
    outline = _outline(mesh)
    straps = _strap_paths(lm, fr, mesh, style.straps)
    roi = _Roi.around(np.concatenate([outline, *straps]), shape, int(np.ceil(0.05 * fr.w)) + 3)
    if min(roi.shape) <= 0:
        return None
    return _Geometry(mesh, u, v, outline, straps, roi)


def _quantise(alpha: np.ndarray, floor: float = 0.5 / 255) -> np.ndarray:
    """Alpha on a 1/255 grid, zero below `floor`: faint blur tails must not leave the pixels (and
    the mask map) they hardly change marked as touched."""
    alpha = np.round(np.clip(alpha, 0, 1) * 255) / 255
    return np.where(alpha < floor, 0, alpha).astype(np.float32)


def checked_face(face_rgb, landmarks) -> tuple[np.ndarray, np.ndarray]:
    """(face, landmarks as float64) of a renderer's inputs; ValueError unless uint8 (H, W, 3) RGB and (68, 2)."""
    face = np.asarray(face_rgb)
    lm = np.asarray(landmarks, np.float64)
    if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3 or lm.shape != (68, 2):
        raise ValueError("render needs a uint8 (H, W, 3) RGB face and (68, 2) landmarks")
    return face, lm


def render(face_rgb: np.ndarray, landmarks: np.ndarray, style: str, rng: np.random.Generator) -> RenderedMask:
    """Draw a `style` mask on a copy of `face_rgb` fitted to its 68 `landmarks` (x, y pixels).

    Returns the masked image, the binary map of every pixel the mask, its loops or its
    shadow changed, and JSON-serialisable metadata (style, colour, pattern, straps).
    """
    if style not in _STYLES:
        raise ValueError(f"unknown mask style {style!r}; choose from {', '.join(STYLES)}")
    face, lm = checked_face(face_rgb, landmarks)
    spec, fr = _STYLES[style], _Frame.of(lm)
    geo = _geometry(face.shape[:2], lm, fr, spec, rng)
    if geo is None:
        return RenderedMask(face.copy(), np.zeros(face.shape[:2], np.uint8), {"style": style, "straps": "hidden"})
    roi = geo.roi
    alpha = _fill(roi.local(geo.outline), roi.shape)
    light = _lighting(face, roi, alpha > 0.5)
    paint, colour = _mask_colour(geo, spec, light, rng)
    straps = _stroke([roi.local(p) for p in geo.straps], roi.shape, _STRAP_WIDTH[spec.straps] * fr.w)
    strap_colour = np.float32(paint.strap_rgb) * np.minimum(light, 1.1)[..., None]

    # One premultiplied layer (mask under straps), softened like the photo, then composited.
    cover = 1 - (1 - alpha) * (1 - straps)
    premult = colour * (alpha * (1 - straps))[..., None] + strap_colour * straps[..., None]
    blur = float(np.hypot(max(0.35, 0.0025 * fr.w), min(0.7 * _softness(face, lm), 0.012 * fr.w + 1.0)))
    cover = _quantise(cv2.GaussianBlur(cover, (0, 0), blur), floor=_ALPHA_FLOOR)
    premult = cv2.GaussianBlur(premult, (0, 0), blur) * (cover > 0)[..., None]
    shadow = _contact_shadow(cover, fr)
    noise = rng.normal(0, _grain(face, roi, alpha > 0.5), roi.shape).astype(np.float32) * cover
    base = face[roi.slices].astype(np.float32) * ((1 - shadow) * (1 - cover))[..., None]
    out = base + premult + noise[..., None]

    touched = (shadow > 0) | (cover > 0)
    masked, mask_map = face.copy(), np.zeros(face.shape[:2], np.uint8)
    masked[roi.slices][touched] = np.clip(np.round(out[touched]), 0, 255).astype(np.uint8)
    mask_map[roi.slices][touched] = 255
    meta = {"style": style, **paint.meta, "straps": spec.straps if geo.straps else "hidden"}
    return RenderedMask(masked, mask_map, meta)


def _mask_colour(geo: _Geometry, style: _Style, light: np.ndarray,
                 rng: np.random.Generator) -> tuple[_Paint, np.ndarray]:
    """Paint the style on a canvas twice the mask's pixel size, map it onto the surface, light it.

    Returns the paint and the mask's colour (float RGB 0..255) over the ROI.
    """
    mesh, u, v, roi = geo.mesh, geo.u, geo.v, geo.roi
    width_px = float(np.linalg.norm(np.diff(mesh[len(v) // 2], axis=0), axis=1).sum())
    height_px = float(np.linalg.norm(mesh[-1, len(u) // 2] - mesh[0, len(u) // 2]))
    tw, th = max(int(2 * width_px), 16), max(int(2 * height_px), 12)
    paint = style.paint(rng, th, tw)
    U, V = _uv_maps(mesh, u, v, roi)
    map_x, map_y = U * tw - 0.5, V * th - 0.5

    def sample(canvas: np.ndarray) -> np.ndarray:
        smooth = cv2.GaussianBlur(canvas.astype(np.float32), (0, 0), 0.7)  # 2x canvas -> 1x pixels
        return cv2.remap(smooth, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    albedo, relief, sheen = sample(paint.albedo), sample(paint.relief), sample(paint.spec)
    colour = albedo * (relief * light)[..., None] + (sheen * light)[..., None]
    return paint, np.clip(colour * 255, 0, 255)


def _contact_shadow(cover: np.ndarray, fr: _Frame) -> np.ndarray:
    """Faint shadow the mask and straps cast on the skin just below and beside them."""
    shift = max(0.012 * fr.w, 0.5)
    moved = cv2.warpAffine(cover, np.float32([[1, 0, 0], [0, 1, shift]]), cover.shape[::-1])
    soft = cv2.GaussianBlur(moved, (0, 0), max(0.015 * fr.w, 0.6))
    return _quantise(0.28 * soft * (1 - cover), floor=0.1 * _ALPHA_FLOOR)
