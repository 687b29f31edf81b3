"""The fused serving graph computes what the training graph computes, with no upsampling left."""

import numpy as np
import pytest
from keras import layers

from tfunmask.export_graph import UpsampleConv2D, fuse_upsampling
from tfunmask.models.layers import NearestUpsample2x, resnet_generator
from tfunmask.models.pix2pix import unet_generator


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
    lambda: resnet_generator(32, filters=8, blocks=1),
], ids=["unet", "unet_composite", "resnet"])
def test_fused_generator_gives_the_same_images(build):
    rng = np.random.default_rng(0)
    generator = build()
    randomise_statistics(generator, rng)
    fused = fuse_upsampling(generator)
    assert count(fused, NearestUpsample2x) == 0
    assert count(fused, UpsampleConv2D) >= count(generator, NearestUpsample2x)
    assert fused.count_params() == generator.count_params()
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
    fused = fuse_upsampling(model)
    assert count(fused, NearestUpsample2x) == 1 and count(fused, UpsampleConv2D) == 0
