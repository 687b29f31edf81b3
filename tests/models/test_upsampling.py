"""The two forms of the decoders' upsampling compute the same function from the same weights.

``UpsampleConv2D`` (fused) against ``NearestUpsample2x`` + 3x3 ``Conv2D`` (plain). Float32 sums
of 16 instead of 36 products per output differ by rounding only: relative errors of order
sqrt(36) * 2**-24 ~ 4e-7, so 1e-5 leaves a wide margin and still catches a wrong tap (an error
of order 1).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfunmask import cpu
from tfunmask.models import CycleGAN, Pix2Pix
from tfunmask.models.layers import UPSAMPLE_METHODS, UpsampleConv2D, fused_upsampling, up


def relative(a, b):
    return float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a)))


def decoder_step(fused, bias, shape=(6, 7, 5)):
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape)
    return keras.Model(inputs, up(inputs, 4, normalization="none" if bias else "instance", fused=fused, name="u"))


@pytest.mark.parametrize("method", UPSAMPLE_METHODS)
@pytest.mark.parametrize("bias", [True, False])
def test_fused_equals_plain_forward_and_both_gradients(bias, method):
    shape = (6, 7, 5) if method != "auto" else (9, 8, 5)  # "auto": "transpose" here, "matmul" at 6 x 7
    plain, fused = decoder_step(False, bias, shape), decoder_step(True, bias, shape)
    fused.get_layer("u_conv").method = method
    for a, b in zip(plain.weights, fused.weights):  # the same seed gives the same weights
        assert a.path == b.path and np.array_equal(a.numpy(), b.numpy())
    x = tf.constant(np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32))
    probe = tf.constant(np.random.default_rng(1).normal(size=(2, 2 * shape[0], 2 * shape[1], 4)).astype(np.float32))
    grads = []
    for model in (plain, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = model(x)
            loss = tf.reduce_sum(y * probe)
        grads.append((y, *tape.gradient(loss, [x, *model.trainable_weights])))
    assert grads[0][0].shape == grads[1][0].shape == (2, 2 * shape[0], 2 * shape[1], 4)
    for a, b in zip(*grads):  # output, d/d input, d/d kernel (and bias)
        assert relative(a, b) < 1e-5


def test_whole_generators_agree_and_checkpoints_cross_load(tmp_path):
    images = np.random.default_rng(2).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    for cls, args in ((Pix2Pix, dict(filters=4, max_filters=16)), (CycleGAN, dict(filters=4, resnet_blocks=1))):
        built = {}
        for form in ("plain", "fused"):
            keras.utils.set_random_seed(0)
            built[form] = cls(32, upsampling=form, **args)
        plain, fused = built["plain"], built["fused"]
        out = [m.export_generator()(images, training=False) for m in (plain, fused)]
        assert relative(out[0], out[1]) < 1e-5, cls.__name__
        # a checkpoint of either form restores into the other, every object matched
        path = tf.train.Checkpoint(model=fused).write(str(tmp_path / f"{cls.__name__}_fused"))
        other = cls(32, upsampling="plain", **args)
        tf.train.Checkpoint(model=other).read(path).assert_existing_objects_matched()
        for a, b in zip(fused.weights, other.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("cpu_flags", [{"avx2", "fma"}, {"avx512f", "amx_bf16", "amx_tile"}])
def test_auto_is_fused_on_every_cpu_kind(cpu_flags, monkeypatch):
    monkeypatch.setattr(cpu, "flags", lambda: frozenset(cpu_flags))
    assert fused_upsampling("auto") and fused_upsampling("fused") and not fused_upsampling("plain")
    with pytest.raises(ValueError, match="upsampling must be one of auto, fused, plain"):
        fused_upsampling("bilinear")


def test_auto_method_by_shape_and_a_wrong_method_is_refused():
    def method(height, width, filters):
        padded = (None, None if height is None else height + 2, None if width is None else width + 2, 16)
        return UpsampleConv2D(filters, 3).resolved_method(padded)

    assert method(8, 8, 64) == "matmul" and method(1, 1, 512) == "matmul"
    assert method(16, 16, 64) == "transpose" and method(128, 128, 8) == "transpose"
    assert method(128, 128, 3) == "conv" and method(None, None, 64) == "conv"
    with pytest.raises(ValueError, match="method must be one of auto, conv, matmul, transpose"):
        UpsampleConv2D(4, 3, method="winograd")
