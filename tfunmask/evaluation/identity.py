"""Identity preservation: does the unmasked face still look like the same person to dlib?

dlib's face recognition network maps a face to a 128-d embedding in which two photos of one
person lie closer than 0.6 (Euclidean) in 99.38 % of the LFW benchmark's pairs. Scores here
compare each output with its true unmasked face: the mean cosine similarity of their
embeddings, and the share of pairs under that same-person distance.

Embeddings need 68 landmarks per crop. Aligned crops have no detector box of their own, and
the whole crop as a box misplaces the landmarks badly (on real faces, embeddings 0.46 away from
those with the overlay tool's landmarks, against 0.08 with HOG's box); so the box is HOG's when
it finds one, else the median of the boxes it found in the other crops of the set (all crops
share one alignment), else a fixed box measured on aligned crops (0.12 away).
"""
from __future__ import annotations

import numpy as np

from tfunmask.evaluation import features
from tfunmask.evaluation.detection import Box

SAME_PERSON_DISTANCE = 0.6
# Median HOG box in FFHQ-like aligned crops, as fractions of the side; used when HOG found none.
_DEFAULT_BOX = (0.24, 0.30, 0.76, 0.85)


def _fallback_box(boxes: list[Box | None], size: tuple[int, int]) -> Box:
    """Median of the found boxes, else the default box scaled to the crop size (height, width)."""
    found = [box for box in boxes if box is not None]
    if found:
        return tuple(int(v) for v in np.median(np.array(found), axis=0))
    height, width = size
    left, top, right, bottom = _DEFAULT_BOX
    return (round(left * width), round(top * height), round(right * width), round(bottom * height))


def crop_landmarks(images: np.ndarray, boxes: list[Box | None]) -> np.ndarray:
    """(N, 68, 2) dlib landmarks of aligned crops, each in its HOG box or the set's fallback box."""
    fallback = _fallback_box(boxes, images.shape[1:3])
    return np.array([features.face_landmarks(image, box or fallback) for image, box in zip(images, boxes)],
                    np.float32).reshape(len(images), 68, 2)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def same_person(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise: are the two embeddings closer than dlib's same-person distance?"""
    return np.linalg.norm(a - b, axis=1) < SAME_PERSON_DISTANCE
