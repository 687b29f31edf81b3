"""Procedurally drawn faces with known landmarks, and the embedded default dataset built from them.

Why: `python -m tfunmask.train --model=pix2pix` must work on a fresh machine with no photos,
and tests need faces whose 68 landmarks are known exactly (no detector in the loop). A face
here is a parametric drawing: a mean 68-point shape, perturbed (face width and length, eye,
nose and mouth proportions), turned in 3D by a slight yaw/pitch/roll, then painted (skin
tone, hair, ears, eyes, brows, nose, lips, background, directional light, grain). It is
already aligned, by the same `faces.alignment` rule as real photos (eyes level, fixed eye
height and distance), so demo crops are framed like the crops of the overlay tool.

`build()` writes TFRecord shards once into a cache folder keyed by its parameters (atomically: a
temp folder renamed into place): paired data (each face with a mask from `masks.render`, and
without) for Pix2Pix, or unpaired data for CycleGAN/AttentionGAN, where domain A holds the
even-numbered faces wearing masks and domain B the odd-numbered ones without: no face is in both.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from tfunmask.data import faces

# Mean 68-point (iBUG) face shape in a unit box, as published with OpenFace's align_dlib
from tfunmask.synth import masks

# (Apache-2.0): x right, y down; eyes near y=0.33, chin at y=1.06.
_MEAN_SHAPE = np.array([
    (0.0792, 0.3392), (0.0829, 0.4570), (0.0968, 0.5756), (0.1221, 0.6919), (0.1687, 0.8003),
    (0.2398, 0.8957), (0.3257, 0.9771), (0.4223, 1.0433), (0.5318, 1.0608), (0.6413, 1.0398),
    (0.7381, 0.9723), (0.8244, 0.8896), (0.8948, 0.7925), (0.9394, 0.6815), (0.9611, 0.5622),
    (0.9706, 0.4418), (0.9712, 0.3221), (0.1638, 0.2492), (0.2178, 0.2043), (0.2913, 0.1924),
    (0.3675, 0.2036), (0.4393, 0.2331), (0.5864, 0.2281), (0.6602, 0.1959), (0.7375, 0.1824),
    (0.8132, 0.1928), (0.8708, 0.2353), (0.5153, 0.3186), (0.5162, 0.3962), (0.5171, 0.4738),
    (0.5182, 0.5532), (0.4337, 0.6041), (0.4755, 0.6208), (0.5207, 0.6343), (0.5659, 0.6188),
    (0.6071, 0.6016), (0.2524, 0.3311), (0.2987, 0.3026), (0.3557, 0.3030), (0.4037, 0.3387),
    (0.3525, 0.3500), (0.2968, 0.3505), (0.6313, 0.3341), (0.6791, 0.2965), (0.7360, 0.2947),
    (0.7829, 0.3213), (0.7403, 0.3418), (0.6850, 0.3437), (0.3532, 0.7462), (0.4146, 0.7191),
    (0.4777, 0.7068), (0.5227, 0.7171), (0.5698, 0.7054), (0.6352, 0.7157), (0.6995, 0.7394),
    (0.6394, 0.8052), (0.5764, 0.8354), (0.5254, 0.8417), (0.4764, 0.8375), (0.4138, 0.8100),
    (0.3801, 0.7500), (0.4780, 0.7451), (0.5234, 0.7489), (0.5711, 0.7433), (0.6724, 0.7442),
    (0.5725, 0.7766), (0.5240, 0.7834), (0.4776, 0.7785),
])
_CENTRE_X = 0.5253
_JAW, _BROWS, _NOSE, _MOUTH = slice(0, 17), slice(17, 27), slice(27, 36), slice(48, 68)

_SKIN = np.array([(255, 228, 208), (250, 218, 194), (242, 202, 172), (234, 190, 156), (224, 172, 136),
                  (210, 158, 118), (196, 140, 102), (170, 116, 82), (132, 88, 60), (98, 64, 44), (72, 48, 34)],
                 np.float32)
_HAIR = np.array([(20, 16, 14), (50, 34, 24), (92, 60, 36), (150, 110, 64), (206, 170, 110),
                  (140, 60, 30), (150, 150, 150), (220, 220, 214)], np.float32)
_IRIS = np.array([(70, 44, 26), (110, 76, 40), (70, 110, 150), (80, 120, 80)], np.float32)


def _depth(shape: np.ndarray) -> np.ndarray:
    """Rough depth (towards the camera) of each landmark on an ellipsoidal head with a nose."""
    z = 0.32 * (1 - np.clip(((shape[:, 0] - _CENTRE_X) / 0.47) ** 2, 0, 1)) ** 0.5
    z[_NOSE] += np.array([0.02, 0.06, 0.10, 0.14, 0.05, 0.07, 0.08, 0.07, 0.05])
    z[_MOUTH] += 0.04
    return z


def _perturbed_shape(rng: np.random.Generator) -> np.ndarray:
    """The mean shape with random proportions: face width/length, eyes, nose, mouth, brows."""
    s = _MEAN_SHAPE.copy()
    s[_JAW, 0] = _CENTRE_X + (s[_JAW, 0] - _CENTRE_X) * rng.uniform(0.9, 1.08)
    s[_JAW, 1] = 0.33 + (s[_JAW, 1] - 0.33) * rng.uniform(0.92, 1.03)
    for eye in (slice(36, 42), slice(42, 48)):
        centre = s[eye].mean(0)
        s[eye] = centre + (s[eye] - centre) * [rng.uniform(0.85, 1.15), rng.uniform(0.7, 1.3)]
    s[_NOSE, 1] = 0.32 + (s[_NOSE, 1] - 0.32) * rng.uniform(0.92, 1.08)
    s[31:36, 0] = _CENTRE_X + (s[31:36, 0] - _CENTRE_X) * rng.uniform(0.85, 1.2)
    s[_MOUTH, 0] = _CENTRE_X + (s[_MOUTH, 0] - _CENTRE_X) * rng.uniform(0.85, 1.15)
    s[_MOUTH, 1] += rng.uniform(-0.02, 0.02)
    lips = s[_MOUTH].mean(0)
    s[_MOUTH, 1] = lips[1] + (s[_MOUTH, 1] - lips[1]) * rng.uniform(0.8, 1.3)
    s[_BROWS, 1] += rng.uniform(-0.025, 0.02)
    return s


def _posed(shape: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Turn the shape by a slight yaw/pitch (orthographic) and roll about the face centre."""
    yaw, pitch, roll = np.radians(rng.uniform(-18, 18)), np.radians(rng.uniform(-8, 8)), np.radians(rng.uniform(-4, 4))
    centre = np.array([_CENTRE_X, 0.6])
    x, y = (shape - centre).T
    z = _depth(shape)
    x = x * np.cos(yaw) + z * np.sin(yaw)
    y = y * np.cos(pitch) - z * np.sin(pitch)
    rot = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
    return np.stack([x, y], 1) @ rot.T + centre


def _place(shape: np.ndarray, size: int) -> np.ndarray:
    """Landmarks in the square crop, placed exactly as `faces.alignment` places real faces."""
    return faces.alignment(shape, size).to_crop(shape)


class _Canvas:
    """A supersampled float RGB canvas drawn on in crop pixel coordinates (anti-aliased, sub-pixel).

    Output pixel i covers canvas pixels i*ss .. i*ss+ss-1, so a crop coordinate x (pixel
    centres at integers) sits at canvas x*ss + (ss-1)/2; 4 fractional bits go to OpenCV.
    """

    def __init__(self, image: np.ndarray, ss: int):
        self.image, self.ss = image, ss

    def _xy(self, points) -> np.ndarray:
        return np.round((np.asarray(points, np.float64) * self.ss + (self.ss - 1) / 2) * 16).astype(np.int32)

    def _len(self, length: float) -> int:
        return int(round(length * self.ss * 16))

    def poly(self, points, colour) -> None:
        cv2.fillPoly(self.image, [self._xy(points)], np.asarray(colour).tolist(), cv2.LINE_AA, shift=4)

    def line(self, points, colour, width: float, closed: bool = False) -> None:
        thickness = max(1, int(round(width * self.ss)))
        cv2.polylines(self.image, [self._xy(points)], closed, np.asarray(colour).tolist(), thickness, cv2.LINE_AA,
                      shift=4)

    def ellipse(self, centre, axes: tuple[float, float], colour, start: float = 0, end: float = 360) -> None:
        cv2.ellipse(self.image, tuple(self._xy(centre)), (self._len(axes[0]), self._len(axes[1])), 0, start, end,
                    np.asarray(colour).tolist(), -1, cv2.LINE_AA, shift=4)


def _forehead(lm: np.ndarray) -> np.ndarray:
    """Arc over the brows closing the face outline from landmark 16 back to landmark 0."""
    up = lm[27] - lm[8]
    up = up / np.linalg.norm(up)
    centre = 0.5 * (lm[0] + lm[16])
    half = 0.5 * np.linalg.norm(lm[16] - lm[0])
    across = (lm[16] - lm[0]) / (2 * half)
    t = np.linspace(0, np.pi, 15)
    return centre + np.cos(t)[:, None] * half * across + np.sin(t)[:, None] * half * 0.85 * up


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """A two-colour gradient wall with soft blotches, float32 RGB 0..255 of side n."""
    a, b = rng.uniform(30, 230, 3), rng.uniform(30, 230, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:n, 0:n] / n
    t = np.clip(0.5 + (xs - 0.5) * np.cos(angle) + (ys - 0.5) * np.sin(angle), 0, 1)[..., None]
    blotch = cv2.GaussianBlur(rng.standard_normal((n, n)).astype(np.float32), (0, 0), n / 10)
    blotch /= max(float(blotch.std()), 1e-6)
    return (a * (1 - t) + b * t + 8 * blotch[..., None]).astype(np.float32)


def _draw_head(canvas: _Canvas, lm: np.ndarray, skin: np.ndarray, hair: np.ndarray, rng: np.random.Generator) -> None:
    """Hair mass, shoulders, neck, ears, face oval and fringe, painted back to front."""
    w = np.linalg.norm(lm[16] - lm[0])
    top = _forehead(lm)
    drop = (0.4 if rng.random() < 0.4 else 0.05) * w  # long or short hair
    crown = top + (top - lm[[8]]) * 0.12
    canvas.poly(np.concatenate([lm[[16]] + [0.08 * w, drop], crown, lm[[0]] + [-0.08 * w, drop]]), hair)
    canvas.ellipse(lm[8] + [0, 0.42 * w], (0.95 * w, 0.35 * w), rng.uniform(20, 220, 3), 180, 360)  # shoulders
    neck = lm[[5, 11, 11, 5]] + np.array([[0.03, 0], [-0.03, 0], [-0.03, 0.5], [0.03, 0.5]]) * w
    canvas.poly(neck, skin * 0.8)
    for outer, lower in ((0, 3), (16, 13)):
        side = np.sign(lm[outer][0] - lm[30][0])
        canvas.ellipse(0.5 * (lm[outer] + lm[lower]) + [side * 0.03 * w, 0], (0.07 * w, 0.14 * w), skin * 0.88)
    canvas.poly(np.concatenate([lm[_JAW], top[1:-1]]), skin)
    fringe = top[2:-2] + (lm[[27]] - top[2:-2]) * rng.uniform(0.0, 0.35)
    canvas.poly(np.concatenate([top[1:-1], fringe[::-1]]), hair)


def _draw_eye(canvas: _Canvas, eye: np.ndarray, iris: np.ndarray, w: float, rng: np.random.Generator) -> None:
    """Sclera, iris and pupil clipped to the eye's landmark polygon, and a dark upper lid line."""
    lo = np.floor(eye.min(0) * canvas.ss).astype(int)
    hi = np.ceil(eye.max(0) * canvas.ss).astype(int) + canvas.ss
    window = (slice(max(lo[1], 0), hi[1]), slice(max(lo[0], 0), hi[0]))
    offset = np.array([window[1].start, window[0].start]) / canvas.ss
    layer = _Canvas(np.empty_like(canvas.image[window]), canvas.ss)
    layer.image[:] = (236, 232, 226)
    cover = _Canvas(np.zeros(layer.image.shape[:2], np.float32), canvas.ss)
    cover.poly(eye - offset, 1.0)
    centre = eye.mean(0) - offset + [rng.uniform(-0.01, 0.01) * w, 0]
    layer.ellipse(centre, (0.045 * w, 0.045 * w), iris)
    layer.ellipse(centre, (0.02 * w, 0.02 * w), (12, 10, 10))
    a = cover.image[..., None]
    canvas.image[window] = canvas.image[window] * (1 - a) + layer.image * a
    canvas.line(eye[:4], (30, 24, 22), 0.012 * w)


def _draw_features(canvas: _Canvas, lm: np.ndarray, skin: np.ndarray, hair: np.ndarray,
                   rng: np.random.Generator) -> None:
    """Eyes, brows, nose shading and nostrils, lips and mouth line."""
    w = np.linalg.norm(lm[16] - lm[0])
    iris = _IRIS[rng.integers(len(_IRIS))]
    for eye in (slice(36, 42), slice(42, 48)):
        _draw_eye(canvas, lm[eye], iris, w, rng)
    brow_width = rng.uniform(0.018, 0.035) * w
    for brow in (slice(17, 22), slice(22, 27)):
        canvas.line(lm[brow], hair * 0.8, brow_width)
    side = 1 if rng.random() < 0.5 else -1
    canvas.line(lm[27:31] + [side * 0.03 * w, 0], skin * 0.86, 0.02 * w)  # shaded side of the nose
    canvas.line(lm[31:36], skin * 0.7, 0.012 * w)
    for i in (32, 34):
        canvas.ellipse(lm[i] - [0, 0.01 * w], (0.02 * w, 0.011 * w), skin * 0.45)
    canvas.poly(lm[48:60], skin * np.float32([0.82, 0.55, 0.56]) + np.float32([25, 0, 5]))
    canvas.line(lm[60:68], skin * 0.3, 0.012 * w, closed=True)


def _light(image: np.ndarray, lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Directional light across the picture plus darkening towards the face's edge (roundness)."""
    n = image.shape[0]
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32)
    angle, strength = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.35)
    grad = 1 + strength * ((xs / n - 0.5) * np.cos(angle) + (ys / n - 0.5) * np.sin(angle))
    centre = lm[[27, 30, 33]].mean(0)
    w = np.linalg.norm(lm[16] - lm[0])
    r2 = ((xs - centre[0]) ** 2 + ((ys - centre[1]) * 0.8) ** 2) / (0.55 * w) ** 2
    round_ = 1 - 0.18 * np.clip(r2, 0, 1) ** 2
    return image * (grad * round_ * rng.uniform(0.8, 1.1))[..., None]


def draw_face(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one random face, aligned in a square crop; returns (uint8 (size, size, 3) RGB, (68, 2) landmarks)."""
    if size < 16:
        raise ValueError(f"demo faces need size >= 16, got {size}")
    ss = 4 if size <= 128 else 2
    lm = _place(_posed(_perturbed_shape(rng), rng), size)
    skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.93, 1.05, 3).astype(np.float32)
    hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.9, 1.1)
    canvas = _Canvas(cv2.resize(_background(rng, size), (size * ss, size * ss), interpolation=cv2.INTER_LINEAR), ss)
    skin, hair = np.clip(skin, 0, 255), np.clip(hair, 0, 255)
    _draw_head(canvas, lm, skin, hair, rng)
    _draw_features(canvas, lm, skin, hair, rng)
    image = cv2.resize(canvas.image, (size, size), interpolation=cv2.INTER_AREA)
    image = _light(image, lm, rng) + rng.normal(0, rng.uniform(1, 4), image.shape)
    image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), rng.uniform(0.3, 0.7))
    return np.clip(np.round(image), 0, 255).astype(np.uint8), lm.astype(np.float32)


# Bump when drawing, rendering or the record layout changes, so stale caches are not reused.
_DEMO_VERSION = 1


def cache_root() -> Path:
    """Where cached datasets live: $TFUNMASK_CACHE, else ~/.cache/tfunmask."""
    return Path(os.environ.get("TFUNMASK_CACHE") or Path.home() / ".cache" / "tfunmask")


def _unpaired_records(count: int, size: int, seed: int, styles: Sequence[str]) -> Iterator[dict]:
    """Unpaired records: even faces masked (domain A, the paired set's masked image), odd faces as
    drawn (domain B; no mask rendered)."""
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        face, landmarks = draw_face(rng, size)
        if i % 2:
            yield {"image": face, "domain": "B", "source": f"demo/{seed}/{i:05d}"}
        else:
            masked = masks.render(face, landmarks, styles[i % len(styles)], rng).masked
            yield {"image": masked, "domain": "A", "source": f"demo/{seed}/{i:05d}"}


def _records(count: int, size: int, seed: int, styles: Sequence[str]) -> Iterator[dict]:
    """Paired records (masked, target, mask_map, ...) for faces 0..count-1, each from its own rng."""
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        face, landmarks = draw_face(rng, size)
        style = styles[i % len(styles)]
        rendered = masks.render(face, landmarks, style, rng)
        yield {"masked": rendered.masked, "target": face, "mask_map": rendered.mask_map,
               "source": f"demo/{seed}/{i:05d}", "face_index": 0, "style": style, "id": f"demo_{i:05d}"}


def build(cache_dir: str | Path | None = None, *, count: int = 600, size: int = 64, seed: int = 0,
          styles: Sequence[str] = masks.STYLES, shards: int = 2, kind: str = "paired") -> Path:
    """Build (once) the demo dataset of `kind` ("paired" or "unpaired") and return its folder.

    The folder is `<cache_dir or cache_root()>/demo-<hash of the parameters>`; when it
    exists it is returned as is. Otherwise the shards are written into a temporary
    sibling folder that is renamed into place, so a crash or a concurrent build never
    leaves a half-written dataset under the final name. Splits (train/val/test) follow
    `tfrecords.write_paired_shards`; `dataset.json` there and `demo.json` describe it.
    """
    from tfunmask.data import (
        tfrecords,  # TensorFlow only when a dataset is actually written
    )

    if count < 1 or size < 16:
        raise ValueError(f"demo dataset needs count >= 1 and size >= 16, got count={count}, size={size}")
    if kind not in ("paired", "unpaired"):
        raise ValueError(f"demo dataset kind must be paired or unpaired, got {kind!r}")
    styles = masks.parse_styles(",".join(styles))
    params = {"version": _DEMO_VERSION, "count": count, "size": size, "seed": seed, "styles": styles, "shards": shards}
    if kind == "unpaired":  # paired parameters alone keep the hash (and caches) of paired sets
        params["kind"] = kind
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    final = root / f"demo-{kind}-{key}" if kind == "unpaired" else root / f"demo-{key}"
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".demo-{key}-", dir=root))
    temp.chmod(0o755)  # mkdtemp's 0700 would make a shared cache unreadable to others
    try:
        if kind == "paired":
            tfrecords.write_paired_shards(_records(count, size, seed, styles), temp, shards=shards)
        else:
            tfrecords.write_unpaired_shards(_unpaired_records(count, size, seed, styles), temp, shards=shards)
        (temp / "demo.json").write_text(json.dumps(params, indent=2) + "\n")
        try:
            temp.rename(final)
        except OSError:
            if not final.is_dir():  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return final
