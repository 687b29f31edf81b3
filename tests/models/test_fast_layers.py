"""The training-speed forms compute what the Keras layers compute, in values and gradients.

``MatmulConv2D`` against ``Conv2D``: at batch 1 with 32+ channels its forward pass is a matrix product of shifted copies of the input
(float32 sums of 9 x channels products in another order: relative differences of order
sqrt(9 * 32) * 2**-24 ~ 1e-6), elsewhere (and in bfloat16) it is ``Conv2D`` itself; 1e-5 still catches a wrong tap.
``FusedBatchNormalization`` against ``BatchNormalization``: the same statistics summed in another
order over 4 x 8 x 8 values (relative differences of order 1e-7); 1e-5 catches a biased/unbiased
variance mix-up (the moving variance would move by about 2e-3 relative here).
``InstanceNormalization`` against ``GroupNormalization(groups=-1)``: likewise, at batch 1 (the
fused kernel) and 2 (Keras' code).
"""

import keras

import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from tfunmask.models import layers as tfl


def relative(a, b):
    return float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a)))


@pytest.mark.parametrize("batch, channels, takes_matmul", [(1, 32, True), (2, 32, False), (1, 8, False)])
def test_equals_conv2d_in_values_and_gradients(batch, channels, takes_matmul, monkeypatch):
    calls = []
    monkeypatch.setattr(tfl, "_shifted_matmul_conv",
                        lambda *args, original=tfl._shifted_matmul_conv: calls.append(1) or original(*args))
    rng = np.random.default_rng(0)
    conv = tfl.MatmulConv2D(40, 3, bias_initializer="random_normal")
    x = tf.constant(rng.normal(size=(batch, 9, 10, channels)).astype(np.float32))
    conv.build(x.shape)
    probe = tf.constant(rng.normal(size=(batch, 7, 8, 40)).astype(np.float32))
    results = []
    for forward in (conv, lambda t: tf.nn.conv2d(t, conv.kernel, 1, "VALID") + conv.bias):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = forward(x)
            loss = tf.reduce_sum(y * probe)
        results.append((y, *tape.gradient(loss, [x, conv.kernel, conv.bias])))
    assert bool(calls) == takes_matmul
    for got, want in zip(*results):
        assert got.shape == want.shape and relative(want, got) < 1e-5


def test_bfloat16_keeps_tensorflows_convolution(monkeypatch):
    calls = []
    monkeypatch.setattr(tfl, "_shifted_matmul_conv", lambda *args: calls.append(1))
    conv = tfl.MatmulConv2D(40, 3, dtype="mixed_bfloat16")
    y = conv(tf.zeros((1, 9, 10, 32)))
    assert not calls and y.dtype == tf.bfloat16 and y.shape == (1, 7, 8, 40)


def test_only_stride_one_valid_convolutions():
    with pytest.raises(ValueError, match="stride-1, undilated, ungrouped 'valid' convolution"):
        tfl.MatmulConv2D(4, 3, strides=2).build((1, 8, 8, 4))


def test_resnet_blocks_use_the_fast_forms_and_the_tflite_graph_keras_own():
    from tfunmask.serving.tflite_graph import tflite_graph

    generator = tfl.resnet_generator(32, filters=8, blocks=1)
    kinds = {type(generator.get_layer(f"encoder_r0_{half}_{kind}")) for half in "ab" for kind in ("conv", "norm")}
    assert kinds == {tfl.MatmulConv2D, tfl.InstanceNormalization}
    converted = tflite_graph(generator)
    assert type(converted.get_layer("encoder_r0_a_conv")) is layers.Conv2D
    assert type(converted.get_layer("encoder_r0_a_norm")) is layers.GroupNormalization


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_equals_keras_in_training_and_inference(policy):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2, 3, size=(4, 8, 8, 16)).astype(np.float32))
    probe = tf.constant(rng.normal(size=(4, 8, 8, 16)).astype(np.float32))
    results = []
    for cls in (layers.BatchNormalization, tfl.FusedBatchNormalization):
        keras.utils.set_random_seed(0)
        norm = cls(momentum=0.9, epsilon=1e-5, gamma_initializer="random_normal", beta_initializer="random_normal",
                   dtype=policy)
        norm.build(x.shape)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.cast(norm(x, training=True), tf.float32)
            loss = tf.reduce_sum(y * probe)
        grads = tape.gradient(loss, [x, norm.gamma, norm.beta])
        results.append((y, *grads, norm.moving_mean.value, norm.moving_variance.value,
                        tf.cast(norm(x, training=False), tf.float32)))
    tolerance = 1e-5 if policy == "float32" else 2 ** -7  # bfloat16 outputs: 8 significant bits
    for want, got in zip(*results):
        assert relative(want, got) < tolerance
    assert results[1][0].dtype == tf.float32


@pytest.mark.parametrize("batch", [1, 2])
def test_instance_norm_equals_group_norm_per_channel(batch):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2, 3, size=(batch, 8, 9, 16)).astype(np.float32))
    probe = tf.constant(rng.normal(size=x.shape).astype(np.float32))
    results = []
    for build in (lambda **kw: layers.GroupNormalization(groups=-1, **kw), tfl.InstanceNormalization):
        keras.utils.set_random_seed(0)
        norm = build(epsilon=1e-5, gamma_initializer="random_normal", beta_initializer="random_normal")
        norm.build(x.shape)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = norm(x)
            loss = tf.reduce_sum(y * probe)
        results.append((y, *tape.gradient(loss, [x, norm.gamma, norm.beta])))
    for want, got in zip(*results):
        assert relative(want, got) < 1e-5
    assert tfl.InstanceNormalization().get_config()["groups"] == -1
