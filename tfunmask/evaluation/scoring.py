"""Per-method scores from the metric modules: what one set of crops scores against a reference set.

`describe` computes once per set what several metrics share (HOG boxes, landmarks, dlib
embeddings, image features); `distribution_scores` needs no ground truth (detection rate and
distances between sets), `paired_values` gives each crop's pixel fidelity and identity against
its true face, and `mean_values` their scores: plain floats, per-image values averaged, NaN (empty
masks) ignored. The per-crop values are kept so that two models scored on the
same faces can be compared face by face (`tfunmask.evaluation.comparison`).
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from tfunmask.evaluation import detection, features, frechet, identity, image


@dataclasses.dataclass
class Described:
    """What the metrics need of one set of crops: HOG boxes, landmarks, dlib embeddings and,
    when an image feature extractor is given, its features."""

    images: np.ndarray
    boxes: list
    landmarks: np.ndarray
    embeddings: np.ndarray
    features: np.ndarray | None


def describe(images: np.ndarray, image_features: features.ImageFeatures | None, *,
             landmarks: np.ndarray | None = None, batch_size: int = 16) -> Described:
    """Detect, embed and extract features of a set of crops; landmarks are found unless given."""
    boxes = detection.detect_all(images)
    if landmarks is None:
        landmarks = identity.crop_landmarks(images, boxes)
    return Described(images, boxes, landmarks, features.face_embeddings(images, landmarks),
                     image_features(images, batch_size) if image_features else None)


def distribution_scores(crops: Described, reference: Described) -> dict[str, float]:
    """Detection rate, and the distances of the set to the reference (real unmasked) faces."""
    scores = {"detection_rate": detection.detection_rate(crops.boxes)}
    if min(len(crops.images), len(reference.images)) < 2:
        return scores
    scores["face_fd"] = frechet.frechet_distance_of(crops.embeddings, reference.embeddings)
    if crops.features is not None:
        scores["fid"] = frechet.frechet_distance_of(crops.features, reference.features)
        scores["kid"], scores["kid_std"] = frechet.kernel_inception_distance(crops.features, reference.features)
    return scores


def _per_image(metric, *arrays: np.ndarray, chunk: int = 64) -> np.ndarray:
    """`metric` over slices of `chunk` images, concatenated: bounded memory for large sets."""
    return np.concatenate([metric(*(a[i:i + chunk] for a in arrays)) for i in range(0, len(arrays[0]), chunk)])


def paired_values(crops: Described, target: Described, mask_map: np.ndarray) -> dict[str, np.ndarray]:
    """Per crop (arrays (N,)): pixel fidelity, whole and over the mask map, and identity against
    its true face (NaN where a value is undefined: an empty mask, a face without landmarks)."""
    out, true, mask = crops.images, target.images, mask_map
    return {"psnr": _per_image(image.psnr, out, true), "psnr_mask": _per_image(image.masked_psnr, out, true, mask),
            "ssim": _per_image(image.ssim, out, true), "ssim_mask": _per_image(image.masked_ssim, out, true, mask),
            "l1": _per_image(image.l1, out, true), "l1_mask": _per_image(image.masked_l1, out, true, mask),
            "identity_cosine": identity.cosine_similarity(crops.embeddings, target.embeddings),
            "identity_match": identity.same_person(crops.embeddings, target.embeddings)}


def mean_values(values: dict[str, np.ndarray]) -> dict[str, float]:
    """The mean of each of `paired_values`' arrays, NaN ignored."""
    with np.errstate(all="ignore"), warnings.catch_warnings():  # inf PSNR of identical crops, NaN of empty masks
        warnings.simplefilter("ignore", RuntimeWarning)
        return {name: float(np.nanmean(array)) for name, array in values.items()}
