"""Exporting a trained generator for serving.

The SavedModel's ``serving_default`` takes a batch of uint8 RGB face crops
(N, S, S, 3) and returns uint8 RGB crops: scaling to and from [-1, 1] lives
inside the graph, so no caller can get the normalisation wrong.
"""

from pathlib import Path

import keras
import tensorflow as tf


def to_unit(images_uint8):
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(images_uint8, tf.float32) / 127.5 - 1.0


def to_uint8(images):
    """float [-1, 1] -> uint8 [0, 255], rounded and clipped."""
    return tf.cast(tf.clip_by_value(tf.round((tf.cast(images, tf.float32) + 1.0) * 127.5), 0, 255), tf.uint8)


def export_saved_model(generator, path):
    """Writes ``generator`` as a SavedModel with a uint8 -> uint8 ``serving_default``."""
    size = generator.input_shape[1]
    archive = keras.export.ExportArchive()
    archive.track(generator)

    def serve(images):
        return {"unmasked": to_uint8(generator(to_unit(images), training=False))}

    archive.add_endpoint("serving_default", serve,
                         input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")])
    archive.write_out(str(path), verbose=False)
    return Path(path)
