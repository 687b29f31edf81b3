"""Unmasking whole photos with a generator: find every face, align, generate, warp back, blend.

``Unmasker`` puts a generator (``tfunmask.inference.generators``) into the photo path: find every
face, align it to the generator's size, unmask the crops, warp them back and blend only the region
the generator changed into a copy of the photo, grown a little and feathered: its predicted mask
map where it exports one (composite Pix2Pix, AttentionGAN), else the part of the face a mask can
cover (the hull of the jaw line and the nose bridge, up to the lower eyelids). Everything outside
that region (background, hair, other people, and with a mask map the eyes and most of the nose)
keeps its full resolution and stays exactly as it was. By default each crop's output (and map) is
the mean of the generator's for the crop and for its mirror image, mirrored back
(``flip_average``): faces are nearly symmetric, and the mean of two guesses is closer to the truth
than either (v3: +0.3 dB mask-region PSNR on both mask families, docs/results.md), at twice the
generator's time.

``load(path)`` (also ``tfunmask.load``) picks the backend from the path; without a path it loads
the model shipped in the source tree's ``savedmodels/`` (``SHIPPED_MODEL``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tfunmask.data import faces
from tfunmask.inference.generators import KerasGenerator, ModelError, open_generator

# The model the photo path uses when none is named: the one shipped in the repository (a source
# checkout or editable install; a wheel does not carry it).
SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "savedmodels" / "unmask-pix2pix-composite-256-v7"

# Landmarks (dlib's 68) whose hull is the region a face mask can cover: the jaw line below the
# temples (1-15) and the top of the nose bridge (27), level with the eyes' lower lids.
REGION_POINTS = [*range(1, 16), 27]
REGION_GROWTH = 0.04  # the region grows by this fraction of the crop side before blending
FEATHER = 0.05        # blend ramp width outside the region, as a fraction of the crop side
MASK_THRESHOLD = 0.5  # a predicted mask map's region: where the content outweighs the input


@dataclass(frozen=True, eq=False)
class FaceResult:
    """One unmasked face: where it was (``box``, ``landmarks`` in photo pixels, None with
    ``assume_cropped``), the aligned input ``crop``, the generator's ``output`` crop, the (2, 3)
    ``matrix`` from photo to crop, and the uint8 crop-space ``region`` that was blended back
    (255 inside; the feathered ramp lies outside it)."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray | None
    detector: str
    score: float
    crop: np.ndarray
    output: np.ndarray
    matrix: np.ndarray
    region: np.ndarray


@dataclass(frozen=True, eq=False)
class UnmaskResult:
    """The unmasked photo (uint8 RGB, the input's size) and its faces (empty: nothing changed)."""

    image: np.ndarray
    faces: list[FaceResult]


class Unmasker:
    """Whole-photo unmasking with one generator: detect, align, generate, warp back, blend."""

    def __init__(self, generator, *, max_faces=None, use_cnn=True, detector="cascade", feather=FEATHER,
                 flip_average=True):
        self.generator = generator
        self.flip_average = flip_average
        self.max_faces = max_faces
        self.use_cnn = use_cnn
        self.detector = faces.check_detector(detector)
        self.feather = feather

    @property
    def size(self):
        """The generator's crop size in pixels."""
        return self.generator.size

    def generate(self, crops):
        """Unmasked crops for uint8 RGB crops (N, size, size, 3) that are already aligned."""
        return self.predict(crops)[0]

    def predict(self, crops):
        """``(unmasked uint8 crops, mask maps or None)`` for aligned uint8 crops (N, size, size, 3):
        the generator's, or with ``flip_average`` the mean of its outputs for the crops and for
        their mirror images, mirrored back."""
        outputs, masks = self.generator.predict(crops)
        if not self.flip_average or not len(outputs):
            return outputs, masks
        mirrored, mirrored_masks = self.generator.predict(_mirrored(np.asarray(crops)))
        outputs = np.rint((outputs + _mirrored(mirrored).astype(np.float32)) / 2).astype(np.uint8)
        if masks is not None:
            masks = (masks + _mirrored(mirrored_masks)) / 2
        return outputs, masks

    def unmask(self, image, *, assume_cropped=False):
        """The photo with every face unmasked, and per-face details, as an UnmaskResult.

        ``image`` is uint8 RGB (H, W, 3) of any size; with ``assume_cropped`` it is taken to be
        one aligned face and resized to the generator and back instead of being searched.
        """
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {image.dtype} {image.shape}")
        if assume_cropped:
            return self._unmask_cropped(image)
        found = faces.find(image, max_faces=self.max_faces, use_cnn=self.use_cnn, detector=self.detector)
        if not found:
            return UnmaskResult(image.copy(), [])
        aligned = [faces.align(image, face.landmarks, self.size) for face in found]
        outputs, masks = self.predict(np.stack([crop for crop, _ in aligned]))
        result, details = image, []
        for i, (face, (crop, alignment), output) in enumerate(zip(found, aligned, outputs)):
            region = (mask_region(masks[i]) if masks is not None
                      else face_region(alignment.to_crop(face.landmarks[REGION_POINTS]), self.size))
            result = faces.paste_back(result, output, alignment, region, feather=self.feather)
            details.append(FaceResult(face.box, face.landmarks, face.detector, face.score, crop, output,
                                      alignment.matrix, region))
        return UnmaskResult(result, details)

    def unmask_crops(self, crops):
        """Aligned face crops (N, H, W, 3) uint8, all of one size, unmasked; and the generator's
        mask maps at that size (float [0, 1]; None for generators without one).

        At the generator's own size its outputs are returned as they are. At another size each
        crop is resized to the generator and its output back; with a map only the map's region
        is blended into the crop, which keeps its own resolution elsewhere (what the photo path
        does, and how a model is scored at a size other than its own).
        """
        crops = np.asarray(crops)
        return self.crops_back(crops, *self.generate_at_size(crops)[1:])

    def generate_at_size(self, crops):
        """(crops resized to the generator's size, its outputs, its mask maps or None)."""
        crops = np.asarray(crops)
        if crops.shape[1:3] != (self.size, self.size):
            crops = np.stack([_resized(c, self.size, self.size) for c in crops])
        return (crops, *self.predict(crops))

    def crops_back(self, crops, outputs, masks):
        """``generate_at_size``'s outputs and maps brought back to the ``crops``' size (``unmask_crops``)."""
        height, width = crops.shape[1:3]
        if (height, width) == (self.size, self.size):
            return outputs, masks
        if masks is None:
            return np.stack([_resized(output, width, height) for output in outputs]), None
        blended = np.stack([_blend(crop, output, mask, self.feather)[0]
                            for crop, output, mask in zip(crops, outputs, masks)])
        return blended, np.stack([cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
                                  for mask in masks])

    def _unmask_cropped(self, image):
        """The whole image is the face: resized to the generator and back; with a mask map only
        its region is blended into the full-resolution image, else the whole output replaces it."""
        height, width = image.shape[:2]
        crop = _resized(image, self.size, self.size)
        outputs, masks = self.predict(crop[None])
        output = outputs[0]
        matrix = np.array([[self.size / width, 0, 0], [0, self.size / height, 0]])
        if masks is None:
            region = np.full((self.size, self.size), 255, np.uint8)
            result = _resized(output, width, height)
        else:
            result, region = _blend(image, output, masks[0], self.feather)
        face = FaceResult((0, 0, width, height), None, "none", float("nan"), crop, output, matrix, region)
        return UnmaskResult(result, [face])


def _blend(image, output, mask, feather):
    """``image`` (any size) with the generator's ``output`` for it (its crop) blended in over the
    region of the predicted ``mask`` map, feathered; and that region (crop pixels)."""
    height, width = image.shape[:2]
    region = mask_region(mask)
    weight = cv2.resize(faces.region_alpha(region, feather), (width, height), interpolation=cv2.INTER_LINEAR)
    blended = image * (1.0 - weight[..., None]) + _resized(output, width, height) * weight[..., None]
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8), region


def _mirrored(batch):
    """A batch of images (N, H, W, ...) mirrored left to right, as a contiguous array."""
    return np.ascontiguousarray(batch[:, :, ::-1])


def _resized(image, width, height):
    """Area averaging when shrinking, bicubic when enlarging."""
    shrinking = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def face_region(points, size):
    """uint8 (size, size) mask, 255 on the convex hull of the crop-space ``points`` grown by
    REGION_GROWTH of the side: the part of the crop that is pasted back."""
    return _grown(faces.hull_mask(points, size))


def mask_region(mask):
    """uint8 (S, S) mask, 255 where a predicted mask map (float, [0, 1]) reaches MASK_THRESHOLD,
    grown by REGION_GROWTH of the side: the part of the crop the generator changed."""
    return _grown(np.where(mask >= MASK_THRESHOLD, 255, 0).astype(np.uint8))


def _grown(region):
    """A square uint8 region dilated by REGION_GROWTH of its side (at least one pixel)."""
    grow = max(1, round(REGION_GROWTH * region.shape[0]))
    return cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))


def load(path=None, **options):
    """An Unmasker over the model at ``path`` (SavedModel or run folder, ``.tflite``, ``.keras``),
    over an in-memory Keras generator, or (None) over ``SHIPPED_MODEL``. ``num_threads`` (TFLite)
    and Unmasker's keyword arguments (``max_faces``, ``use_cnn``, ``detector``, ``feather``,
    ``flip_average``) may be given."""
    num_threads = options.pop("num_threads", None)
    if path is None:
        if not SHIPPED_MODEL.is_dir():
            raise ModelError(f"no model given, and the shipped one is not at {SHIPPED_MODEL} (it comes with the "
                             "source repository's savedmodels/): name a model")
        path = SHIPPED_MODEL
    if not isinstance(path, (str, os.PathLike)):
        return Unmasker(KerasGenerator(path), **options)
    return Unmasker(open_generator(path, num_threads=num_threads), **options)
