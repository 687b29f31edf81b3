"""A second, independent family of synthetic masks: flat mask *pictures* warped onto the face.

The first family (``masks``) builds a curved surface from the landmarks and paints it in the
face's own light. A model trained on it may learn that family's look rather than masks; to
measure how far it generalises, this family is made another way and shares none of that code.
A mask is drawn flat, as a picture, in its own template space: an outline (surgical rectangle,
moulded cup, folded KN95, shaped cloth), its details (pleats, hems, seams, welds, a valve,
prints) and its ear loops or headbands, either as a drawing (flat colours, dark outlines) or
photo-like (light gradient, darkened rim, fold shading, grain). A thin-plate spline (``tps``)
then warps the picture onto the face through anchor pairs read off the 68 landmarks: the nose
bridge (between 28 and 29), a point under each eye, the jaw points 1-15 pushed outwards (the
chin ones lowered) and a point outside each ear.

Template space: u runs across the mask (0 its left edge in the image, 1 its right), v down it
(0 the top edge at the nose bridge, 1 under the chin); the canvas reaches past [0, 1] so that
loops and straps can run to the ears. It is drawn at twice the mask's pixel size and filtered
down when warped.

Same contract as ``masks.render``: a ``RenderedMask`` whose ``masked`` equals the face wherever
``mask_map`` is 0; ``meta`` records family, style, look, colours, pattern and straps. All
randomness comes from the generator passed in.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from tfunmask.synth import masks
from tfunmask.synth.masks import RenderedMask
from tfunmask.synth.tps import ThinPlateSpline

FAMILY = "image"
STYLES: tuple[str, ...] = ("surgical", "cup", "kn95", "cloth")
LOOKS: tuple[str, ...] = ("flat", "photo")

_U0, _U1, _V0, _V1 = -0.3, 1.3, -0.15, 1.2  # canvas extent in template units
_ALPHA_FLOOR = 0.04  # coverage below this is dropped (the map stays tight round the mask)
_EYE_CLEARANCE = 0.09  # the top edge stays this far (fraction of brow-to-chin) below the eyes

# Jaw points 1..15 (pushed out) lie, by arc length, on this U-shaped edge of the template.
_TEMPLATE_JAW = np.array([(0.0, 0.06), (0.0, 0.55), (0.13, 0.88), (0.5, 1.0), (0.87, 0.88), (1.0, 0.55),
                          (1.0, 0.06)])

_PALETTE = {  # name: RGB in 0..1
    "white": (0.95, 0.95, 0.94), "light_blue": (0.62, 0.78, 0.90), "teal": (0.40, 0.70, 0.72),
    "pink": (0.93, 0.66, 0.74), "mint": (0.66, 0.86, 0.74), "lavender": (0.74, 0.68, 0.88),
    "grey": (0.62, 0.63, 0.65), "beige": (0.86, 0.78, 0.66), "yellow": (0.93, 0.83, 0.42),
    "black": (0.08, 0.08, 0.09), "navy": (0.12, 0.16, 0.33), "charcoal": (0.24, 0.25, 0.27),
    "dark_green": (0.13, 0.30, 0.20), "burgundy": (0.42, 0.10, 0.16), "red": (0.78, 0.15, 0.17),
    "orange": (0.93, 0.52, 0.18), "royal_blue": (0.18, 0.32, 0.72),
}
_STYLE_COLOURS = {
    "surgical": ("light_blue", "light_blue", "white", "teal", "pink", "mint", "lavender", "black", "grey", "yellow"),
    "cup": ("white", "white", "grey", "beige", "black", "yellow", "charcoal"),
    "kn95": ("white", "white", "black", "grey", "pink", "beige", "navy", "light_blue"),
    "cloth": tuple(_PALETTE),
}
_PATTERNS = ("solid", "stripes", "dots", "checks", "zigzag", "flowers", "camo")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-6)


def _polyline_at(points: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Points at the given fractions of the arc length along a polyline."""
    lengths = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    at = np.asarray(fractions) * lengths[-1]
    return np.stack([np.interp(at, lengths, points[:, k]) for k in (0, 1)], axis=-1)


@dataclasses.dataclass(frozen=True)
class _Fit:
    """Anchor pairs of one face: ``face`` (K, 2) pixels -> ``template`` (K, 2) uv; the mask's width
    (jaw point 1 to 15) and height (bridge to chin) in pixels; the box the mask and straps may reach."""

    face: np.ndarray
    template: np.ndarray
    width: float
    height: float
    reach: tuple[np.ndarray, np.ndarray]


def _anchors(lm: np.ndarray, rng: np.random.Generator) -> _Fit:
    """The anchor pairs the warp must join, with a little random fit."""
    ex = _unit(lm[16] - lm[0])
    ey = np.array([-ex[1], ex[0]])
    if (lm[8] - lm[27]) @ ey < 0:
        ey = -ey
    w = max(float(np.linalg.norm(lm[16] - lm[0])), 1e-3)
    h = max(float(np.linalg.norm(lm[8] - lm[27])), 1e-3)

    def below_eyes(point: np.ndarray, eye: np.ndarray) -> np.ndarray:
        lowest = float((eye @ ey).max()) + _EYE_CLEARANCE * h
        return point + ey * max(0.0, lowest - float(point @ ey))

    bridge = below_eyes(lm[27] + rng.uniform(0.3, 0.45) * (lm[30] - lm[27]), lm[[39, 42]])
    cheeks = [below_eyes(lm[eye].mean(0), lm[eye]) for eye in (slice(36, 42), slice(42, 48))]
    centre = 0.45 * lm[27] + 0.55 * lm[8]
    margin, chin_drop = rng.uniform(0.02, 0.06), rng.uniform(0.05, 0.12)
    jaw = []
    for i in range(1, 16):
        out = _unit(lm[i] - centre)
        jaw.append(lm[i] + out * margin * w + ey * chin_drop * h * max(0.0, 1 - abs(i - 8) / 4))
    jaw = np.array(jaw)
    jaw_lengths = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(jaw, axis=0), axis=1))])
    template_jaw = _polyline_at(_TEMPLATE_JAW, jaw_lengths / max(jaw_lengths[-1], 1e-6))
    mask = np.vstack([bridge, *cheeks, jaw])
    template = np.vstack([(0.5, 0.0), (0.22, 0.03), (0.78, 0.03), template_jaw])
    # Guards: points off the mask (eyes, brow, ears, neck) pinned where the best affine fit of the
    # mask's own anchors puts them, so that the spline cannot fold the picture back over the eyes.
    ears = [lm[0] - ex * 0.08 * w + ey * 0.1 * h, lm[16] + ex * 0.08 * w + ey * 0.1 * h]
    guards = np.vstack([lm[36:42].mean(0), lm[42:48].mean(0), lm[27], lm[0], lm[16], *ears,
                        lm[27] - ey * 0.4 * h, lm[8] + ey * 0.5 * h])
    affine = np.linalg.lstsq(np.hstack([mask, np.ones((len(mask), 1))]), template, rcond=None)[0]
    reach = np.vstack([mask, *ears])
    return _Fit(np.vstack([mask, guards]), np.vstack([template, np.hstack([guards, np.ones((9, 1))]) @ affine]),
                width=float(np.linalg.norm(jaw[-1] - jaw[0])), height=float(np.linalg.norm(jaw[7] - bridge)),
                reach=(reach.min(0), reach.max(0)))


# ----------------------------------------------------------------------------- the canvas


class _Canvas:
    """A premultiplied RGBA picture over template space, ``su`` x ``sv`` pixels per template unit."""

    def __init__(self, su: float, sv: float):
        self.su, self.sv = su, sv
        self.shape = (int(np.ceil((_V1 - _V0) * sv)), int(np.ceil((_U1 - _U0) * su)))
        self.rgb = np.zeros((*self.shape, 3), np.float32)
        self.alpha = np.zeros(self.shape, np.float32)
        ys, xs = np.mgrid[: self.shape[0], : self.shape[1]].astype(np.float32)
        self.u, self.v = xs / su + _U0, ys / sv + _V0

    def px(self, uv) -> np.ndarray:
        uv = np.asarray(uv, np.float64)
        return np.stack([(uv[..., 0] - _U0) * self.su, (uv[..., 1] - _V0) * self.sv], axis=-1)

    def width(self, fraction: float) -> int:
        """A stroke width of ``fraction`` of the mask's width, in canvas pixels (at least 1)."""
        return max(1, round(fraction * self.su))

    def cover(self, polygons=(), lines=(), thickness=1, closed=False) -> np.ndarray:
        """Anti-aliased coverage (0..1) of filled ``polygons`` and stroked ``lines`` (template uv)."""
        layer = np.zeros(self.shape, np.uint8)
        scaled = [np.round(self.px(p) * 16).astype(np.int32) for p in polygons]
        if scaled:
            cv2.fillPoly(layer, scaled, 255, cv2.LINE_AA, shift=4)
        for line in lines:
            cv2.polylines(layer, [np.round(self.px(line) * 16).astype(np.int32)], closed, 255,
                          thickness, cv2.LINE_AA, shift=4)
        return layer.astype(np.float32) / 255

    def paint(self, cover: np.ndarray, colour) -> None:
        """``colour`` (RGB, or an (H, W, 3) map) over the picture where ``cover`` says."""
        colour = np.broadcast_to(np.asarray(colour, np.float32), (*self.shape, 3))
        self.rgb = colour * cover[..., None] + self.rgb * (1 - cover[..., None])
        self.alpha = cover + self.alpha * (1 - cover)

    def shade(self, factor: np.ndarray, where: np.ndarray | None = None) -> None:
        """Multiplies the colour (not the coverage) by ``factor``, blended in by ``where``."""
        if where is not None:
            factor = 1 + (factor - 1) * where
        self.rgb *= np.asarray(factor, np.float32)[..., None]


def _curve(a, ctrl, b, n: int = 24) -> np.ndarray:
    """Quadratic Bezier from ``a`` to ``b`` pulled towards ``ctrl``."""
    t = np.linspace(0, 1, n)[:, None]
    a, ctrl, b = (np.asarray(p, np.float64) for p in (a, ctrl, b))
    return (1 - t) ** 2 * a + 2 * t * (1 - t) * ctrl + t ** 2 * b


def _inset(outline: np.ndarray, amount: float) -> np.ndarray:
    """The outline shrunk towards its centroid by ``amount`` template units (roughly)."""
    centre = outline.mean(0)
    spread = np.linalg.norm(outline - centre, axis=1, keepdims=True)
    return centre + (outline - centre) * np.maximum(spread - amount, 0) / np.maximum(spread, 1e-6)


def _colour(rng: np.random.Generator, names) -> tuple[str, np.ndarray]:
    name = names[rng.integers(len(names))]
    return name, np.clip(np.float32(_PALETTE[name]) * rng.uniform(0.92, 1.06, 3), 0, 1).astype(np.float32)


def _ink(colour: np.ndarray) -> np.ndarray:
    """The outline colour of a drawing: a dark shade of the mask's colour (grey on black masks)."""
    return np.float32([0.42, 0.42, 0.45]) if colour.mean() < 0.2 else colour * 0.35


def _fold(canvas: _Canvas, line: np.ndarray, body: np.ndarray, look: str, colour: np.ndarray,
          depth: float) -> None:
    """A fold or seam along ``line``: a drawn stroke, or a shadow under a highlight."""
    if look == "flat":
        canvas.paint(canvas.cover(lines=[line], thickness=canvas.width(0.008)) * body, _ink(colour))
        return
    shadow = canvas.cover(lines=[line + (0, 0.012)], thickness=canvas.width(0.02))
    light = canvas.cover(lines=[line - (0, 0.012)], thickness=canvas.width(0.015))
    canvas.shade(np.float32(1 - depth), shadow * body)
    canvas.shade(np.float32(1 + 0.5 * depth), light * body)


def _stitches(canvas: _Canvas, line: np.ndarray, body: np.ndarray, colour: np.ndarray, dash: float) -> None:
    """A dashed line along ``line`` (stitching or ultrasonic welds), slightly darker than the mask."""
    dense = _polyline_at(line, np.linspace(0, 1, 400))
    lengths = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    on = (lengths // dash) % 2 == 0
    pieces = [dense[i:i + 2] for i in range(len(dense) - 1) if on[i]]
    cover = canvas.cover(lines=pieces, thickness=canvas.width(0.008)) * body
    canvas.paint(cover * 0.7, colour * 0.7 if colour.mean() > 0.2 else colour + 0.2)


# ----------------------------------------------------------------------------- the styles


def _ear_loops(canvas: _Canvas, rng: np.random.Generator, colour: np.ndarray, width: float,
               top: float, bottom: float) -> None:
    """A loop on each side from the mask's upper to its lower corner, round behind the ear."""
    reach = rng.uniform(0.08, 0.16)
    loops = []
    for side, edge in ((-1, 0.0), (1, 1.0)):
        out = edge + side * reach
        upper = _curve((edge + side * 0.01, top), (out, top - 0.04), (out, (top + bottom) * 0.45))
        lower = _curve((out, (top + bottom) * 0.45), (out + side * 0.02, bottom), (edge + side * 0.03, bottom))
        loops.append(np.vstack([upper, lower]))
    canvas.paint(canvas.cover(lines=loops, thickness=canvas.width(width)), colour)


def _surgical(canvas: _Canvas, look: str, rng: np.random.Generator) -> dict:
    name, colour = _colour(rng, _STYLE_COLOURS["surgical"])
    top = _curve((0.0, 0.06), (0.5, rng.uniform(-0.08, -0.02)), (1.0, 0.06))
    bottom_v = rng.uniform(0.8, 0.88)
    bottom = _curve((0.96, bottom_v), (0.5, rng.uniform(1.0, 1.1)), (0.04, bottom_v))
    outline = np.vstack([top, bottom])
    body = canvas.cover(polygons=[outline])
    canvas.paint(body, colour)
    pleats = int(rng.integers(2, 5))
    for v in np.linspace(0.3, 0.7, pleats) + rng.uniform(-0.03, 0.03, pleats):
        _fold(canvas, _curve((0.02, v), (0.5, v + rng.uniform(0.0, 0.06)), (0.98, v)), body, look, colour, 0.22)
    for hem in (top + (0, 0.06), bottom - (0, 0.06)):
        _stitches(canvas, hem, body, colour, dash=0.03)
    for u in (0.05, 0.95):
        _fold(canvas, np.array([(u, 0.08), (u, bottom_v - 0.02)]), body, look, colour, 0.12)
    loops = (0.95, 0.95, 0.95) if rng.random() < 0.6 else colour
    _ear_loops(canvas, rng, np.float32(loops), 0.012, 0.1, bottom_v - 0.04)
    return {"colour": name, "rgb": _rgb(colour), "pattern": "pleats", "straps": "ear_loops", "outline": outline}


def _cup(canvas: _Canvas, look: str, rng: np.random.Generator) -> dict:
    name, colour = _colour(rng, _STYLE_COLOURS["cup"])
    power = rng.uniform(2.0, 2.8)  # superellipse: 2 is an ellipse, more is squarer
    theta = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    c, s = np.cos(theta), np.sin(theta)
    outline = np.stack([0.5 + 0.5 * np.sign(c) * np.abs(c) ** (2 / power),
                        0.5 + 0.5 * np.sign(s) * np.abs(s) ** (2 / power)], axis=-1)
    outline[:, 1] = np.maximum(outline[:, 1], rng.uniform(-0.03, 0.03))
    body = canvas.cover(polygons=[outline])
    canvas.paint(body, colour)
    rim = np.vstack([_inset(outline, 0.05), _inset(outline, 0.05)[:1]])
    _fold(canvas, rim, body, look, colour, 0.15)
    clip = canvas.cover(polygons=[np.array([(0.4, 0.04), (0.6, 0.04), (0.6, 0.09), (0.4, 0.09)])]) * body
    canvas.paint(clip, colour * 0.8 if look == "photo" else _ink(colour))
    pattern = "plain"
    if rng.random() < 0.4:
        pattern = "valve"
        centre = np.array([0.5 + rng.choice([-0.18, 0.18]), rng.uniform(0.55, 0.65)])
        ring = centre + 0.12 * np.stack([np.cos(theta), np.sin(theta) * canvas.su / canvas.sv], axis=-1)
        _, valve = _colour(rng, ("white", "grey", "black", "orange", "charcoal"))
        canvas.paint(canvas.cover(polygons=[ring]), valve)
        for k in range(-2, 3):
            rib = centre + np.array([(-0.08, 0.025 * k), (0.08, 0.025 * k)])
            canvas.paint(canvas.cover(lines=[rib], thickness=canvas.width(0.006)), valve * 0.6)
    bands = np.float32(_PALETTE["white"]) if rng.random() < 0.5 else _colour(rng, ("yellow", "light_blue", "grey"))[1]
    straps = []  # headbands run off towards the ears and out of sight behind the head
    for v in (0.25, 0.72):
        for side, edge in ((-1, 0.02), (1, 0.98)):
            straps.append(np.array([(edge, v), (edge + side * rng.uniform(0.04, 0.07), v - 0.05)]))
    canvas.paint(canvas.cover(lines=straps, thickness=canvas.width(0.022)), bands)
    return {"colour": name, "rgb": _rgb(colour), "pattern": pattern, "straps": "headbands", "outline": outline}


def _kn95(canvas: _Canvas, look: str, rng: np.random.Generator) -> dict:
    name, colour = _colour(rng, _STYLE_COLOURS["kn95"])
    peak, chin = rng.uniform(-0.06, 0.0), rng.uniform(1.0, 1.08)
    left = np.vstack([_curve((0.5, peak), (0.2, 0.02), (0.02, 0.12)),
                      _curve((0.02, 0.12), (-0.02, 0.4), (0.04, 0.62)),
                      _curve((0.04, 0.62), (0.2, 0.95), (0.5, chin))])
    right = left[::-1] * (-1, 1) + (1, 0)
    outline = np.vstack([left, right])
    body = canvas.cover(polygons=[outline])
    canvas.paint(body, colour)
    if look == "photo":  # the two halves meet at an angle, so one faces the light more
        darker = np.where((canvas.u < 0.5) == (rng.random() < 0.5), rng.uniform(0.8, 0.92), 1.0)
        canvas.shade(darker.astype(np.float32), body)
    seam = np.array([(0.5, peak), (0.5, chin)])
    _fold(canvas, seam, body, look, colour, 0.25)
    _stitches(canvas, np.vstack([_inset(outline, 0.045), _inset(outline, 0.045)[:1]]), body, colour, dash=0.02)
    for u in (0.07, 0.93):
        canvas.paint(canvas.cover(polygons=[np.array([(u - 0.02, 0.2), (u + 0.02, 0.2), (u + 0.02, 0.26),
                                                       (u - 0.02, 0.26)]) + (0, dv) for dv in (0, 0.42)]) * body,
                     colour * 0.82)
    _ear_loops(canvas, rng, colour if rng.random() < 0.5 else np.float32((0.95, 0.95, 0.95)), 0.011, 0.2, 0.66)
    return {"colour": name, "rgb": _rgb(colour), "pattern": "fold", "straps": "ear_loops", "outline": outline}


def _print(canvas: _Canvas, rng: np.random.Generator, pattern: str) -> np.ndarray:
    """Where a cloth print's second colour goes (0..1) over the canvas."""
    u, v = canvas.u, canvas.v * canvas.sv / canvas.su  # v in mask widths, so the print is not stretched
    period = rng.uniform(0.06, 0.14)
    if pattern == "stripes":
        angle = rng.uniform(0, np.pi)
        phase = (u * np.cos(angle) + v * np.sin(angle)) / period
        return (np.mod(phase, 1) < rng.uniform(0.3, 0.55)).astype(np.float32)
    if pattern == "checks":
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    if pattern == "dots":
        du, dv = np.mod(u / period, 1) - 0.5, np.mod(v / period + 0.5 * np.floor(u / period), 1) - 0.5
        return (np.hypot(du, dv) < rng.uniform(0.18, 0.3)).astype(np.float32)
    if pattern == "zigzag":
        tooth = np.abs(np.mod(u / period, 1) - 0.5)
        return (np.mod(v / period + tooth, 1) < 0.35).astype(np.float32)
    if pattern == "flowers":
        cu, cv = np.mod(u / period, 1) - 0.5, np.mod(v / period + 0.5 * np.floor(u / period), 1) - 0.5
        r, a = np.hypot(cu, cv), np.arctan2(cv, cu)
        return (r < 0.28 * (0.55 + 0.45 * np.abs(np.cos(2.5 * a)))).astype(np.float32)
    # camo: smooth noise thresholded
    coarse = rng.normal(size=(6, 10)).astype(np.float32)
    field = cv2.resize(coarse, canvas.shape[::-1], interpolation=cv2.INTER_CUBIC)
    return (field > rng.uniform(-0.3, 0.3)).astype(np.float32)


def _cloth(canvas: _Canvas, look: str, rng: np.random.Generator) -> dict:
    name, colour = _colour(rng, _STYLE_COLOURS["cloth"])
    second_name, second = _colour(rng, [n for n in _PALETTE if n != name])
    peak, chin, side = rng.uniform(-0.06, 0.0), rng.uniform(1.02, 1.1), rng.uniform(0.0, 0.05)
    left = np.vstack([_curve((0.5, peak), (0.25, rng.uniform(-0.02, 0.05)), (0.02, 0.12)),
                      _curve((0.02, 0.12), (side - 0.03, 0.5), (side, 0.8)),
                      _curve((side, 0.8), (0.22, chin), (0.5, chin))])
    outline = np.vstack([left, left[::-1] * (-1, 1) + (1, 0)])
    body = canvas.cover(polygons=[outline])
    pattern = _PATTERNS[rng.integers(len(_PATTERNS))]
    fabric = np.broadcast_to(colour, (*canvas.shape, 3))
    if pattern != "solid":
        ink = _print(canvas, rng, pattern)[..., None]
        fabric = colour * (1 - ink) + second * ink
    canvas.paint(body, fabric)
    if look == "photo":  # weave: a fine cross-hatch of the thread
        weave = 1 + 0.05 * np.sin(canvas.u * canvas.su * 1.9) * np.sin(canvas.v * canvas.sv * 1.9)
        canvas.shade(weave.astype(np.float32), body)
    seam = _curve((0.5, 0.0), (0.5 + rng.uniform(-0.03, 0.03), 0.5), (0.5, 1.0))
    _fold(canvas, seam, body, look, colour, 0.2)
    _stitches(canvas, np.vstack([_inset(outline, 0.04), _inset(outline, 0.04)[:1]]), body, colour, dash=0.025)
    _ear_loops(canvas, rng, colour if rng.random() < 0.6 else second, 0.022, 0.14, 0.78)
    return {"colour": name, "rgb": _rgb(colour), "pattern": pattern,
            **({"second_colour": second_name} if pattern != "solid" else {}), "straps": "ear_loops",
            "outline": outline}


_DRAW = {"surgical": _surgical, "cup": _cup, "kn95": _kn95, "cloth": _cloth}


def _rgb(colour: np.ndarray) -> list[int]:
    return [round(float(c) * 255) for c in colour]


def _photo_finish(canvas: _Canvas, outline: np.ndarray, rng: np.random.Generator) -> None:
    """Photo-like shading of the drawn mask: light from one side, a darker rim, a little grain."""
    angle = rng.uniform(0, 2 * np.pi)
    light = 1 + rng.uniform(0.08, 0.2) * ((canvas.u - 0.5) * np.cos(angle) + (canvas.v - 0.5) * np.sin(angle))
    inside = (canvas.cover(polygons=[outline]) > 0.5).astype(np.uint8)
    depth = cv2.distanceTransform(inside, cv2.DIST_L2, 3) / canvas.su  # in mask widths
    rim = 1 - rng.uniform(0.12, 0.3) * np.exp(-depth / 0.05)
    grain = rng.normal(1, 0.025, canvas.shape)
    canvas.shade((light * rim * grain).astype(np.float32))


# ----------------------------------------------------------------------------- onto the face


def render(face_rgb: np.ndarray, landmarks: np.ndarray, style: str, rng: np.random.Generator) -> RenderedMask:
    """Draw a ``style`` mask picture and warp it onto a copy of ``face_rgb`` by its 68 ``landmarks``.

    Returns the masked image, the binary map of every pixel the mask or its straps changed, and
    JSON-serialisable metadata (family, style, look, colour, pattern, straps).
    """
    if style not in _DRAW:
        raise ValueError(f"unknown mask style {style!r}; choose from {', '.join(STYLES)}")
    face, lm = masks.checked_face(face_rgb, landmarks)
    look = LOOKS[rng.integers(len(LOOKS))]
    fit = _anchors(lm, rng)
    width = fit.width
    canvas = _Canvas(float(np.clip(2 * width, 32, 1200)), float(np.clip(2 * fit.height, 32, 1200)))
    drawn = _DRAW[style](canvas, look, rng)
    if look == "photo":
        _photo_finish(canvas, drawn["outline"], rng)
    meta = {"family": FAMILY, "style": style, "look": look,
            **{k: value for k, value in drawn.items() if k != "outline"}}

    pad = 0.3 * width
    lo = np.maximum(np.floor(fit.reach[0] - pad).astype(int), 0)
    hi = np.minimum(np.ceil(fit.reach[1] + pad).astype(int), (face.shape[1], face.shape[0]))
    masked, mask_map = face.copy(), np.zeros(face.shape[:2], np.uint8)
    if np.any(hi <= lo):
        return RenderedMask(masked, mask_map, {**meta, "straps": "hidden"})
    ys, xs = np.mgrid[lo[1]:hi[1], lo[0]:hi[0]].astype(np.float64)
    spline = ThinPlateSpline(fit.face, canvas.px(fit.template), smoothing=1e-3)
    where = spline(np.stack([xs, ys], axis=-1)).astype(np.float32)
    # Filtered down to the image's pixels (half a pixel, no aliasing) and a random softness of its
    # own: this family does not match the photo's focus, as a pasted picture would not.
    blur = canvas.su / max(width, 1.0) * float(np.hypot(0.5, rng.uniform(0.0, 0.006) * width))
    premult = cv2.GaussianBlur(canvas.rgb, (0, 0), blur)
    alpha = cv2.GaussianBlur(canvas.alpha, (0, 0), blur)
    colour = cv2.remap(premult, where[..., 0], where[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    cover = cv2.remap(alpha, where[..., 0], where[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    cover = np.where(cover >= _ALPHA_FLOOR, np.minimum(cover, 1), 0).astype(np.float32)

    window = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    base = face[window].astype(np.float32)
    if look == "photo":  # a dim photo gets a dim mask
        colour = colour * float(np.clip((base.mean() / 140) ** 0.6, 0.55, 1.1))
    out = base * (1 - cover[..., None]) + colour * 255
    touched = cover > 0
    masked[window][touched] = np.clip(np.round(out[touched]), 0, 255).astype(np.uint8)
    mask_map[window][touched] = 255
    return RenderedMask(masked, mask_map, meta)
