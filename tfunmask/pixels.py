"""The one conversion between uint8 RGB pixels (outside TensorFlow) and float32 [-1, 1] (inside)."""

import tensorflow as tf


def to_unit(images_uint8):
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(images_uint8, tf.float32) / 127.5 - 1.0


def to_uint8(images):
    """float [-1, 1] -> uint8 [0, 255], rounded and clipped."""
    return tf.cast(tf.clip_by_value(tf.round((tf.cast(images, tf.float32) + 1.0) * 127.5), 0, 255), tf.uint8)
