"""Exporting a trained generator for serving, each format checked for parity against Keras.

Every exported form takes uint8 RGB face crops (N, S, S, 3) and returns uint8 RGB crops: scaling
to and from [-1, 1] lives inside the graph, so no caller can get the normalisation wrong.

  saved_model   ``serving_default``: input "images" uint8 (None, S, S, 3), output "unmasked"
                and, for a generator that knows where it writes (composite Pix2Pix,
                AttentionGAN), "mask" uint8 (None, S, S, 1), 255 where the content is written;
  saved_model_float16
                the same SavedModel with its kernels stored in float16 (half the size) and
                widened to float32 inside the graph: for a repository or a download where size
                counts; it computes in float32 as saved_model does;
  keras         the float generator as a ``.keras`` file (for Keras users and fine-tuning);
  float32       TFLite, the float graph as is;
  float16       TFLite with float16 weights (half the size); LiteRT's CPU path widens them to
                float32 once at load, GPU delegates compute in float16;
  dynamic_int8  TFLite with int8 weights, activations quantised on the fly;
  int8          TFLite, integer only: weights and activations int8, calibrated on masked faces
                from the run's training shards; its uint8 input and output carry a scale and zero
                point, which the inference backend applies.

The TFLite files hold the graph of ``tflite_graph.tflite_graph`` (each nearest x2 upsample + 3x3
convolution computed at the input resolution: same outputs, 1.9x faster in LiteRT, files 1.5x
larger; reflection pads as slices, which XNNPACK runs); the SavedModel keeps the training graph,
which TensorFlow's CPU kernels run faster.
TFLite files have a static batch of one: what XNNPACK runs fastest and what a phone feeds.

Parity: held-back faces (the val split, else test, else train) go through every exported file
with the backend ``tfunmask.inference`` runs it with, and the output is compared with the float32
Keras generator's: the largest absolute difference in pixel levels and the PSNR of the worst face.
A format whose PSNR falls below ``MIN_PSNR_DB`` fails the export.
"""

import dataclasses
import json
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfunmask import models, runs
from tfunmask.data import pipeline
from tfunmask.evaluation.image import psnr
from tfunmask.inference.generators import KerasGenerator, open_generator
from tfunmask.models.gan import generator_outputs
from tfunmask.pixels import to_uint8, to_unit
from tfunmask.serving.tflite_graph import tflite_graph

FORMATS = ("saved_model", "saved_model_float16", "keras", "float32", "float16", "dynamic_int8", "int8")
TFLITE_FORMATS = ("float32", "float16", "dynamic_int8", "int8")
FILE_NAMES = {"saved_model": "saved_model", "saved_model_float16": "saved_model_float16",
              "keras": "generator.keras", **{fmt: f"generator_{fmt}.tflite" for fmt in TFLITE_FORMATS}}
# The least PSNR (dB) of the worst held-back face, each format's output against Keras float32.
# Float formats differ only by rounding order; float16 and int8 are limited by their precision.
MIN_PSNR_DB = {"saved_model": 50.0, "saved_model_float16": 35.0, "keras": 50.0, "float32": 45.0,
               "float16": 35.0, "dynamic_int8": 28.0, "int8": 24.0}
PARITY_SPLITS = ("val", "test", "train")
# Variables of at least this many values (the kernels) are stored in float16 by
# saved_model_float16; biases and normalisation statistics stay float32 (a small variance
# would lose its precision in float16, and together they weigh under 1% of the file).
HALF_MIN_SIZE = 1024
SUMMARY_FILE = "export.json"


class ExportError(ValueError):
    """An export that cannot be made (one-line message)."""


@dataclasses.dataclass
class Parity:
    """Output of one format against Keras on the held-back faces."""

    max_abs_error: int
    psnr_db: float
    min_psnr_db: float

    @property
    def passed(self):
        return self.psnr_db >= self.min_psnr_db


@dataclasses.dataclass
class Exported:
    """One exported format: where it is, its size on disk and its parity."""

    format: str
    path: Path
    size_bytes: int
    parity: Parity


def parse_formats(text):
    """``all`` or a comma-separated list of FORMATS, in FORMATS order."""
    names = FORMATS if text.strip() == "all" else [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(FORMATS))
    if unknown or not names:
        raise ExportError(f"unknown format(s) {', '.join(unknown) or '(none given)'}; "
                          f"choose from all, {', '.join(FORMATS)}")
    return tuple(name for name in FORMATS if name in names)


def _endpoint(generator, pixels):
    """images -> {"unmasked", and "mask" where the generator has one}, both turned from [-1, 1]
    into the endpoint's pixels by ``pixels``."""
    def serve(images):
        image, mask = generator_outputs(generator(to_unit(images), training=False))
        outputs = {"unmasked": pixels(image)}
        if mask is not None:
            outputs["mask"] = pixels(tf.cast(mask, tf.float32) * 2.0 - 1.0)
        return outputs

    return serve


def _serving_function(generator):
    """uint8 -> uint8."""
    return _endpoint(generator, to_uint8)


def _pixel_function(generator):
    """float32 pixels [0, 255] -> float32 pixels [0, 255]: the graph full-integer quantisation
    wraps, so that its uint8 input and outputs are pixels up to a calibrated scale."""
    return _endpoint(generator, lambda unit: (unit + 1.0) * 127.5)


def _half_weights(generator, serve):
    """``serve`` run with the generator's large variables read from float16 copies, widened to
    float32 in the graph (``keras.StatelessScope`` substitutes the values), so that a traced
    endpoint captures the float16 copies instead of the float32 variables."""
    halves = [(v, tf.Variable(tf.cast(v.value, tf.float16), trainable=False, name=v.path.replace("/", "_")))
              for v in generator.weights if int(np.prod(v.shape)) >= HALF_MIN_SIZE and v.dtype == "float32"]

    def served(images):
        with keras.StatelessScope(state_mapping=[(v, tf.cast(half, tf.float32)) for v, half in halves]):
            return serve(images)

    return served


def _write_archive(generator, path, batch, *, with_pixels=False, half=False):
    """A SavedModel with the uint8 ``serving_default`` for batches of ``batch`` (None: any) and,
    ``with_pixels``, the float pixel endpoint "pixels" that full-integer conversion starts from;
    ``half``: the large weights stored in float16 (``_half_weights``).

    The endpoints track the variables they use; ``ExportArchive.track(generator)`` on top would
    store every weight twice (as the Keras variable and as its TensorFlow variable).
    """
    size = generator.input_shape[1]
    archive = keras.export.ExportArchive()
    serve = _serving_function(generator)
    archive.add_endpoint("serving_default", _half_weights(generator, serve) if half else serve,
                         input_signature=[tf.TensorSpec([batch, size, size, 3], tf.uint8, name="images")])
    if with_pixels:
        archive.add_endpoint("pixels", _pixel_function(generator),
                             input_signature=[tf.TensorSpec([batch, size, size, 3], tf.float32, name="images")])
    archive.write_out(str(path), verbose=False)


def export_saved_model(generator, path, *, half=False):
    """Writes ``generator`` as a SavedModel with a uint8 -> uint8 ``serving_default`` (``half``:
    its kernels stored in float16)."""
    _write_archive(generator, path, None, half=half)
    return Path(path)


def export_keras(generator, path):
    """Writes the float generator as a ``.keras`` file."""
    generator.save(path)
    return Path(path)


def _converter(saved_model, fmt, calibration):
    """The TFLiteConverter for one format (``calibration``: uint8 faces, needed by int8)."""
    if fmt == "int8":
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["pixels"])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([face[None].astype(np.float32)] for face in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
        return converter
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serving_default"])
    if fmt in ("float16", "dynamic_int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if fmt == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter


def export_generator(generator, out_dir, formats, *, calibration=None):
    """Writes ``generator`` into ``out_dir`` in each of ``formats`` in turn, yielding
    ``(format, path)`` as each file is written (``calibration``: uint8 faces, needed by int8)."""
    with tempfile.TemporaryDirectory(prefix="tfunmask-convert-") as scratch:
        if set(formats) & set(TFLITE_FORMATS):  # the batch-one fused graph the converter reads
            _write_archive(tflite_graph(generator), scratch, 1, with_pixels=True)
        for fmt in formats:
            path = Path(out_dir) / FILE_NAMES[fmt]
            if fmt in ("saved_model", "saved_model_float16"):
                export_saved_model(generator, path, half=fmt == "saved_model_float16")
            elif fmt == "keras":
                export_keras(generator, path)
            else:
                path.write_bytes(_converter(scratch, fmt, calibration).convert())
            yield fmt, path


def _faces(config, data_dir, split, count):
    """Up to ``count`` masked faces (uint8, the run's size) from one split, or None if it is empty."""
    kind = models.model_class(config.model_name).DATA
    files = pipeline.split_files(data_dir, kind, split)
    if not all(files):
        return None
    batches = pipeline.batches(kind, files, image_size=config.image_size, load_size=config.image_size,
                               batch_size=count, training=False)
    batch = next(iter(batches), None)
    return None if batch is None else to_uint8(batch["masked" if kind == "paired" else "a"]).numpy()


def _held_back(config, data_dir, count):
    """(split, faces) of the first split of PARITY_SPLITS that has shards."""
    for split in PARITY_SPLITS:
        found = _faces(config, data_dir, split, count)
        if found is not None:
            return split, found
    raise ExportError(f"no {models.model_class(config.model_name).DATA} shards in {data_dir} to check parity on "
                      "(pass --data)")


def parity(reference, output, min_psnr_db):
    """Parity of uint8 ``output`` crops against ``reference`` crops."""
    max_abs_error = int(np.abs(reference.astype(np.int16) - output.astype(np.int16)).max())
    return Parity(max_abs_error, float(psnr(reference, output).min()), min_psnr_db)


def disk_size(path):
    """Bytes a file, or all files of a folder, take."""
    path = Path(path)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def _summary_entry(result):
    """An Exported as JSON; an infinite PSNR (output identical to Keras) is written as null."""
    entry = {**dataclasses.asdict(result), "path": str(result.path), "passed": result.parity.passed}
    if np.isinf(result.parity.psnr_db):
        entry["parity"]["psnr_db"] = None
    return entry


def export(model_dir, out_dir=None, formats=FORMATS, *, epoch=None, data=None, calibration_samples=32,
           parity_samples=8, num_threads=None, mask_closing=0, on_exported=None):
    """Exports the run in ``model_dir`` after ``epoch`` (default: its newest checkpoint) in ``formats``
    to ``out_dir`` (default ``model_dir/export``).

    ``data`` overrides the run's TFRecord folder (needed where the run's data is not, e.g. on
    another machine). Each format is checked and reported to ``on_exported(Exported)`` as soon as
    it is written. ``mask_closing`` (composite U-Nets only: Pix2Pix, AttentionGAN backbone="unet")
    closes the predicted map by a square of that radius in pixels before compositing
    (``pix2pix.composite_export``). Returns the Exported list; ``export.json`` beside the files
    records it. Formats failing parity are still written; check ``.parity.passed``.
    """
    model, config = runs.restore(model_dir, epoch)
    try:
        generator = model.export_generator(mask_closing=mask_closing)
    except ValueError as error:  # the model's own check of mask_closing
        raise ExportError(f"--{error} (this run: {config.model_name})") from None
    data_dir = Path(data) if data else runs.data_dir(config)
    out_dir = Path(out_dir) if out_dir else runs.Run(model_dir).export
    out_dir.mkdir(parents=True, exist_ok=True)

    split, held_back = _held_back(config, data_dir, parity_samples)
    reference = KerasGenerator(generator)(held_back)

    calibration = _faces(config, data_dir, "train", calibration_samples) if "int8" in formats else None
    if "int8" in formats and calibration is None:
        raise ExportError(f"no training shards in {data_dir} to calibrate int8 on (pass --data)")

    results = []
    for fmt, path in export_generator(generator, out_dir, formats, calibration=calibration):
        output = open_generator(path, num_threads=num_threads)(held_back)
        results.append(Exported(fmt, path, disk_size(path), parity(reference, output, MIN_PSNR_DB[fmt])))
        if on_exported:
            on_exported(results[-1])
    summary = {"model_dir": str(model_dir), "checkpoint": runs.Run(model_dir).checkpoint(epoch),
               "mask_closing": mask_closing, "parity_split": split, "parity_samples": len(held_back),
               "calibration_samples": 0 if calibration is None else len(calibration),
               "exports": [_summary_entry(result) for result in results]}
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return results
