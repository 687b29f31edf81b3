"""The three exported generator formats behind one interface: SavedModel, TFLite and ``.keras``.

A *generator* here is anything that maps a batch of uint8 RGB face crops (N, S, S, 3) to uint8
RGB crops of the same shape at its own size ``S``; the backends below wrap the three export
formats, so a photo gives the same result whichever file it runs through (up to the format's
precision, which ``python -m tfunmask.export`` checks). ``open_generator(path)`` picks the backend
from the path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

BATCH = 16            # crops per call of a SavedModel or Keras generator

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
