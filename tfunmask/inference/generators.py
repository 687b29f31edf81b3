"""The three exported generator formats behind one interface: SavedModel, TFLite and ``.keras``.

A *generator* here is anything that maps a batch of uint8 RGB face crops (N, S, S, 3) to uint8
RGB crops of the same shape at its own size ``S`` (``generator(crops)``); ``predict(crops)`` also
returns the float32 (N, S, S) map in [0, 1] of where it wrote, for generators that export one
(composite Pix2Pix, AttentionGAN), else None. The backends below wrap the three export formats, so
a photo gives the same result whichever file it runs through (up to the format's precision, which
``python -m tfunmask.export`` checks). ``open_generator(path)`` picks the backend from the path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tfunmask.config import CONFIG_FILE

BATCH = 16            # crops per call of a SavedModel or Keras generator

class ModelError(ValueError):
    """A model path that cannot be used (one-line message)."""


def _mask_map(mask_uint8):
    """A uint8 (n, S, S, 1) "mask" output as float32 (n, S, S) in [0, 1]."""
    return np.asarray(mask_uint8, np.float32)[..., 0] / 255.0


class _Generator:
    """Batching and the two calls; a backend sets ``size`` and ``batch`` and defines ``_run``:
    uint8 crops (n, S, S, 3) -> (uint8 crops, float32 (n, S, S) mask map or None)."""

    batch = BATCH

    def __call__(self, crops):
        return self.predict(crops)[0]

    def predict(self, crops):
        """``(unmasked uint8 crops, mask maps or None)`` for uint8 crops (N, S, S, 3)."""
        crops = np.asarray(crops)
        if crops.dtype != np.uint8 or crops.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"expected uint8 crops (N, {self.size}, {self.size}, 3), "
                             f"got {crops.dtype} {crops.shape}")
        if not len(crops):
            return crops, None
        parts = [self._run(crops[i:i + self.batch]) for i in range(0, len(crops), self.batch)]
        images = np.concatenate([image for image, _ in parts])
        masks = None if parts[0][1] is None else np.concatenate([mask for _, mask in parts])
        return images, masks


def load_saved_model(path):
    """``tf.saved_model.load(path)`` without oneDNN's "supports DT_HALF only on platforms with
    AVX-512" on AVX2 CPUs, which a ``saved_model_float16`` export sets off: it stores its kernels in
    float16 but widens them to float32 inside the graph, so nothing is computed in float16."""
    import tensorflow as tf

    from tfunmask.startup import filtered_stderr

    with filtered_stderr():
        return tf.saved_model.load(str(path))


class SavedModelGenerator(_Generator):
    """The ``serving_default`` signature of a SavedModel from ``tfunmask.export`` or training."""

    def __init__(self, path):
        self.path = Path(path)
        self._loaded = load_saved_model(path)  # held: its signature's variables live as long as it
        self._serve = self._loaded.signatures["serving_default"]
        self.size = int(self._serve.structured_input_signature[1]["images"].shape[1])

    def _run(self, batch):
        outputs = self._serve(images=batch)
        return outputs["unmasked"].numpy(), _mask_map(outputs["mask"]) if "mask" in outputs else None


class KerasGenerator(_Generator):
    """A Keras generator (float [-1, 1] in and out), from memory or a ``.keras`` file."""

    def __init__(self, model):
        self.model = model
        self.size = int(model.input_shape[1])

    @classmethod
    def from_file(cls, path):
        import keras

        import tfunmask.models  # noqa: F401  (registers the custom layers for deserialisation)

        return cls(keras.saving.load_model(path, compile=False))

    def _run(self, batch):
        from tfunmask.models.gan import generator_outputs
        from tfunmask.pixels import to_uint8, to_unit

        image, mask = generator_outputs(self.model(to_unit(batch), training=False))
        return to_uint8(image).numpy(), None if mask is None else np.asarray(mask, np.float32)[..., 0]


class TFLiteGenerator(_Generator):
    """A ``.tflite`` generator run by LiteRT (``ai_edge_litert``), one crop at a time, through
    its one signature (outputs by name: "unmasked" and maybe "mask").

    Float files take and give uint8 pixels directly; a full-integer file's uint8 input and outputs
    carry quantisation parameters, applied here, so every file looks the same from outside.
    """

    batch = 1

    def __init__(self, path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        from tfunmask.startup import filtered_stderr

        self.path = Path(path)
        with filtered_stderr():  # LiteRT's "Created ... XNNPACK delegate" line
            self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads or os.cpu_count())
            self._interpreter.allocate_tensors()
            self._runner = self._interpreter.get_signature_runner()
        self._input = self._runner.get_input_details()["images"]
        self._outputs = self._runner.get_output_details()
        self.size = int(self._input["shape"][1])

    def _run(self, crop):
        outputs = self._runner(images=_quantize(crop, self._input))
        pixels = {name: _dequantize(value, self._outputs[name]) for name, value in outputs.items()}
        return pixels["unmasked"], _mask_map(pixels["mask"]) if "mask" in pixels else None


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
        if (path / CONFIG_FILE).is_file():  # a run trained with --export=false
            raise ModelError(f"{path}: a training run folder without saved_model/: export it "
                             "(python -m tfunmask.export), or score one of its checkpoints with evaluate --epoch=N")
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
