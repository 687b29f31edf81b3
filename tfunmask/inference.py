"""Unmasking photos with an exported generator: SavedModel, TFLite or ``.keras``, behind one interface.

A *generator* here is anything that maps a batch of uint8 RGB face crops (N, S, S, 3) to uint8
RGB crops of the same shape at its own size ``S``; the three backends below wrap the three export
formats, so a photo gives the same result whichever file it runs through (up to the format's
precision, which ``python -m tfunmask.export`` checks). ``Unmasker`` puts a generator into the
photo path: find every face, align it to the generator's size, unmask the crops, warp them back
and blend only the part of the face a mask covers (the hull of the jaw line and the nose bridge,
grown a little and feathered) into a copy of the photo, so eyes, hair, background and other
people keep their full resolution and stay exactly as they were.

``load(path)`` (also ``tfunmask.load``) picks the backend from the path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tfunmask.data import faces

BATCH = 16            # crops per call of a SavedModel or Keras generator
# Landmarks (dlib's 68) whose hull is the region a face mask can cover: the jaw line below the
# temples (1-15) and the top of the nose bridge (27), level with the eyes' lower lids.
REGION_POINTS = [*range(1, 16), 27]
REGION_GROWTH = 0.04  # the hull grows by this fraction of the crop side before blending
FEATHER = 0.05        # blend ramp width outside the region, as a fraction of the crop side


class ModelError(ValueError):
    """A model path that cannot be used (one-line message)."""


def _batched(run, crops, batch):
    """``run`` over ``crops`` in slices of ``batch``, concatenated (an empty input stays empty)."""
    if not len(crops):
        return crops
    return np.concatenate([run(crops[i:i + batch]) for i in range(0, len(crops), batch)])


def _check_crops(crops, size):
    crops = np.asarray(crops)
    if crops.dtype != np.uint8 or crops.shape[1:] != (size, size, 3):
        raise ValueError(f"expected uint8 crops (N, {size}, {size}, 3), got {crops.dtype} {crops.shape}")
    return crops


class SavedModelGenerator:
    """The ``serving_default`` signature of a SavedModel from ``tfunmask.export`` or training."""

    def __init__(self, path):
        import tensorflow as tf

        self.path = Path(path)
        self._serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        self.size = int(self._serve.structured_input_signature[1]["images"].shape[1])

    def __call__(self, crops):
        return _batched(lambda batch: self._serve(images=batch)["unmasked"].numpy(),
                        _check_crops(crops, self.size), BATCH)


class KerasGenerator:
    """A Keras generator (float [-1, 1] in and out), from memory or a ``.keras`` file."""

    def __init__(self, model):
        self.model = model
        self.size = int(model.input_shape[1])

    @classmethod
    def from_file(cls, path):
        import keras

        import tfunmask.models  # noqa: F401  (registers the custom layers for deserialisation)

        return cls(keras.saving.load_model(path, compile=False))

    def __call__(self, crops):
        from tfunmask.pixels import to_uint8, to_unit

        return _batched(lambda batch: to_uint8(self.model(to_unit(batch), training=False)).numpy(),
                        _check_crops(crops, self.size), BATCH)


class TFLiteGenerator:
    """A ``.tflite`` generator run by LiteRT (``ai_edge_litert``), one crop at a time.

    Float files take and give uint8 pixels directly; a full-integer file's uint8 input and output
    carry quantisation parameters, applied here, so every file looks the same from outside.
    """

    def __init__(self, path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        from tfunmask.startup import filtered_stderr

        self.path = Path(path)
        with filtered_stderr():  # LiteRT's "Created ... XNNPACK delegate" line
            self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads or os.cpu_count())
            self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.size = int(self._input["shape"][1])

    def __call__(self, crops):
        return _batched(self._run, _check_crops(crops, self.size), 1)

    def _run(self, crop):
        self._interpreter.set_tensor(self._input["index"], _quantize(crop, self._input))
        self._interpreter.invoke()
        return _dequantize(self._interpreter.get_tensor(self._output["index"]), self._output)


def _quantize(pixels, details):
    """uint8 pixels as the input tensor wants them (quantised when it has a scale)."""
    scale, zero_point = details["quantization"]
    if not scale:
        return pixels.astype(details["dtype"])
    limits = np.iinfo(details["dtype"])
    return np.clip(np.rint(pixels / scale + zero_point), limits.min, limits.max).astype(details["dtype"])


def _dequantize(values, details):
    """An output tensor as uint8 pixels (dequantised when it has a scale)."""
    scale, zero_point = details["quantization"]
    if scale:
        values = (values.astype(np.float32) - zero_point) * scale
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _locate(path):
    """``(path, kind)`` of the model at ``path``: kind "saved_model" (also for a training run
    folder holding ``saved_model/``), "tflite" or "keras"."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such model file or folder")
    if path.is_dir():
        for folder in (path, path / "saved_model"):
            if (folder / "saved_model.pb").is_file():
                return folder, "saved_model"
        raise ModelError(f"{path}: not a SavedModel folder (no saved_model.pb)")
    if path.suffix in (".tflite", ".keras"):
        return path, path.suffix[1:]
    raise ModelError(f"{path}: unknown model format (expected a SavedModel folder, .tflite or .keras)")


def open_generator(path, *, num_threads=None):
    """The generator stored at ``path``: a SavedModel folder or a training run folder, a
    ``.tflite`` file (run with ``num_threads``, default all CPUs) or a ``.keras`` file."""
    path, kind = _locate(path)
    try:
        if kind == "saved_model":
            return SavedModelGenerator(path)
        if kind == "tflite":
            return TFLiteGenerator(path, num_threads)
        return KerasGenerator.from_file(path)
    except Exception as error:  # a damaged or foreign file: any loader error is the file's fault
        raise ModelError(f"{path}: cannot load the {kind} model ({' '.join(str(error).split())[:300]})") from None


@dataclass(frozen=True, eq=False)
class FaceResult:
    """One unmasked face: where it was (``box``, ``landmarks`` in photo pixels, None with
    ``assume_cropped``), the aligned input ``crop``, the generator's ``output`` crop, and the
    (2, 3) ``matrix`` from photo to crop."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray | None
    detector: str
    score: float
    crop: np.ndarray
    output: np.ndarray
    matrix: np.ndarray


@dataclass(frozen=True, eq=False)
class UnmaskResult:
    """The unmasked photo (uint8 RGB, the input's size) and its faces (empty: nothing changed)."""

    image: np.ndarray
    faces: list[FaceResult]


class Unmasker:
    """Whole-photo unmasking with one generator: detect, align, generate, warp back, blend."""

    def __init__(self, generator, *, max_faces=None, use_cnn=True, detector="cascade", feather=FEATHER):
        self.generator = generator
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
        return self.generator(crops)

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
        outputs = self.generate(np.stack([crop for crop, _ in aligned]))
        result, details = image, []
        for face, (crop, alignment), output in zip(found, aligned, outputs):
            region = face_region(alignment.to_crop(face.landmarks[REGION_POINTS]), self.size)
            result = faces.paste_back(result, output, alignment, region, feather=self.feather)
            details.append(FaceResult(face.box, face.landmarks, face.detector, face.score, crop, output,
                                      alignment.matrix))
        return UnmaskResult(result, details)

    def _unmask_cropped(self, image):
        height, width = image.shape[:2]
        crop = _resized(image, self.size, self.size)
        output = self.generate(crop[None])[0]
        matrix = np.array([[self.size / width, 0, 0], [0, self.size / height, 0]])
        face = FaceResult((0, 0, width, height), None, "none", float("nan"), crop, output, matrix)
        return UnmaskResult(_resized(output, width, height), [face])


def _resized(image, width, height):
    """Area averaging when shrinking, bicubic when enlarging."""
    shrinking = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def face_region(points, size):
    """uint8 (size, size) mask, 255 on the convex hull of the crop-space ``points`` grown by
    REGION_GROWTH of the side: the part of the crop that is pasted back."""
    region = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(region, cv2.convexHull(np.rint(points).astype(np.int32)), 255)
    grow = max(1, round(REGION_GROWTH * size))
    return cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))


def load(path, **options):
    """An Unmasker over the model at ``path`` (SavedModel or run folder, ``.tflite``, ``.keras``)
    or over an in-memory Keras generator. ``num_threads`` (TFLite) and Unmasker's keyword
    arguments (``max_faces``, ``use_cnn``, ``detector``, ``feather``) may be given."""
    num_threads = options.pop("num_threads", None)
    if not isinstance(path, (str, os.PathLike)):
        return Unmasker(KerasGenerator(path), **options)
    return Unmasker(open_generator(path, num_threads=num_threads), **options)
