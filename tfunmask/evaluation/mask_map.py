"""Where a generator writes: scores of the mask map an exported generator returns beside its image
(composite Pix2Pix: its predicted mask; AttentionGAN: its foreground attention).

* synthetic pairs: IoU of the map (at THRESHOLD) with the true mask map;
* real masked faces: the map's mean inside the lower face (the hull of dlib landmarks 2-14 and of
  the nose bridge 27-30, where a medical mask sits) and outside it, and their ratio: a map that
  covers the mask and little else has a high ratio;
* unmasked faces (the pairs' true faces): the map's mean, ideally 0; and, for any generator, how
  much it changes a face that wears no mask (mean |G(x) - x| on a 0..1 scale), ideally 0 too.
"""
from __future__ import annotations

import numpy as np

from tfunmask.data import faces

LOWER_FACE = [*range(2, 15), *range(27, 31)]
THRESHOLD = 0.5


def lower_face(landmarks: np.ndarray, size: int) -> np.ndarray:
    """bool (size, size): the convex hull of one face's LOWER_FACE landmarks (crop pixels)."""
    return faces.hull_mask(np.asarray(landmarks)[LOWER_FACE], size) > 0


def iou(maps: np.ndarray, mask_maps: np.ndarray) -> float:
    """Intersection over union, over all crops, of maps >= THRESHOLD and the true maps (> 0)."""
    predicted, truth = maps >= THRESHOLD, np.asarray(mask_maps) > 0
    union = np.logical_or(predicted, truth).sum()
    return float(np.logical_and(predicted, truth).sum() / union) if union else float("nan")


def inside_outside(maps: np.ndarray, landmarks: np.ndarray) -> dict[str, float]:
    """The maps' mean inside and outside each face's lower face, and inside / outside."""
    regions = np.stack([lower_face(points, maps.shape[1]) for points in landmarks])
    inside, outside = float(maps[regions].mean()), float(maps[~regions].mean())
    return {"map_inside": inside, "map_outside": outside,
            "map_ratio": inside / outside if outside > 0 else float("inf")}


def on_unmasked(faces: np.ndarray, outputs: np.ndarray, maps: np.ndarray | None) -> dict[str, float]:
    """What a generator does to faces without a mask: its mean change and, with maps, their mean."""
    scores = {"unmasked_change": float(np.abs(outputs.astype(np.float32) - faces).mean() / 255.0)}
    if maps is not None:
        scores["map_on_unmasked"] = float(maps.mean())
    return scores


def composites(masked: np.ndarray, content: np.ndarray, predicted: np.ndarray,
               mask_maps: np.ndarray) -> dict[str, np.ndarray]:
    """A composite generator's content image pasted into its input by its own map and by the true
    one: if the two score alike in the mask region, the content, not the map, limits the model.

    ``masked`` and ``content`` are (N, S, S, 3) in one scale; ``predicted`` (N, S, S, 1) in [0, 1];
    ``mask_maps`` the true maps (N, S, S), > 0 inside. Returns {"predicted map", "true map"}.
    """
    truth = (np.asarray(mask_maps) > 0).astype(np.float32)[..., None]
    return {name: content * weight + masked * (1.0 - weight)
            for name, weight in (("predicted map", predicted), ("true map", truth))}
