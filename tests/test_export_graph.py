"""The TFLite graph computes what the training graph computes, with no upsampling or mirror pad left."""

import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from tfunmask.models.layers import NearestUpsample2x, ReflectionPad2D, resnet_generator
from tfunmask.models.pix2pix import unet_generator
from tfunmask.serving.tflite_graph import (
    SlicedReflectionPad2D,
    UpsampleConv2D,
    tflite_graph,
)


def randomise_statistics(model, rng):
    """Moving statistics away from 0 / 1, so that a wrongly placed normalisation shows."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.2, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))


def count(model, kind):
    return sum(isinstance(layer, kind) for layer in model.layers)


@pytest.mark.parametrize("build", [
    lambda: unet_generator(32, filters=8),
    lambda: unet_generator(32, filters=8, composite=True),
    lambda: unet_generator(32, filters=8, composite=True, fused=True),
    lambda: unet_generator(32, filters=8, composite=True, segmenter_filters=4, fused=True),
    lambda: resnet_generator(32, filters=8, blocks=1),
], ids=["unet", "unet_composite", "unet_composite_fused", "unet_two_stage_fused", "resnet"])
def test_fused_generator_gives_the_same_images(build):
    rng = np.random.default_rng(0)
    generator = build()
    randomise_statistics(generator, rng)
    fused = tflite_graph(generator)
    assert count(fused, NearestUpsample2x) == 0
    assert count(fused, UpsampleConv2D) >= count(generator, NearestUpsample2x)
    assert fused.count_params() == generator.count_params()
    # training's faster methods (matrix products, transposed convolutions) become 2x2 convolutions
    assert {layer.method for layer in fused.layers if isinstance(layer, UpsampleConv2D)} == {"conv"}
    images = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    expected, got = generator(images, training=False), fused(images, training=False)
    for key in (expected if isinstance(expected, dict) else [None]):
        want, have = (expected[key], got[key]) if key else (expected, got)
        np.testing.assert_allclose(np.asarray(have), np.asarray(want), atol=2e-5)


def test_upsampling_feeding_other_layers_is_kept():
    import keras

    inputs = keras.Input((8, 8, 4))
    up = NearestUpsample2x()(inputs)
    model = keras.Model(inputs, [layers.Conv2D(3, 3, padding="same")(up), layers.ReLU()(up)])
    fused = tflite_graph(model)
    assert count(fused, NearestUpsample2x) == 1 and count(fused, UpsampleConv2D) == 0


@pytest.mark.parametrize("pad", [1, 3])
def test_sliced_reflection_pad_equals_a_reflect_pad_in_values_and_gradients(pad):
    x = tf.constant(np.random.default_rng(pad).normal(size=(2, 7, 9, 3)).astype(np.float32))
    weights = tf.constant(np.random.default_rng(9).normal(size=(2, 7 + 2 * pad, 9 + 2 * pad, 3)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        sliced = SlicedReflectionPad2D(pad)(x)
        reference = ReflectionPad2D(pad)(x)
        sliced_loss, reference_loss = tf.reduce_sum(sliced * weights), tf.reduce_sum(reference * weights)
    np.testing.assert_array_equal(sliced.numpy(), reference.numpy())
    np.testing.assert_allclose(tape.gradient(sliced_loss, x).numpy(), tape.gradient(reference_loss, x).numpy(),
                               rtol=1e-6, atol=1e-6)


def test_resnet_generator_tflite_graph_has_no_mirror_pad_and_the_same_outputs(capsys):
    """XNNPACK has no MIRROR_PAD kernel: each one would split the delegated graph."""
    generator = resnet_generator(32, filters=4, blocks=1)
    graph = tflite_graph(generator)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(graph(x).numpy(), generator(x).numpy(), atol=1e-6)
    converter = tf.lite.TFLiteConverter.from_keras_model(graph)
    tf.lite.experimental.Analyzer.analyze(model_content=converter.convert())
    ops = capsys.readouterr().out
    assert "CONV_2D" in ops and "MIRROR_PAD" not in ops
