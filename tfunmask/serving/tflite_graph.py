"""The generator's TFLite graph: the same outputs from operations that XNNPACK runs fast.

Two rewrites, both exact: every nearest x2 upsample + 3x3 convolution computed at the input
resolution (2.25 times cheaper), and every reflection pad built from slices (no MIRROR_PAD).

Training uses the plain pair (``NearestUpsample2x`` then a 3x3 ``Conv2D``): simple, free of
checkerboard artefacts, and what the checkpoints hold. But after a nearest x2 upsample every 3x3
window covers only a 2x2 patch of the input, so each of the four output phases (even/odd row,
even/odd column) is a 2x2 convolution of the *input* whose taps are sums of the 3x3 taps. One
2x2 convolution with the four phases' kernels side by side, then depth-to-space, gives the same
numbers with 16 instead of 36 multiply-adds per input pixel and channel pair. In the U-Net
decoder these pairs hold about 80 % of the generator's work; fused, a 256 px Pix2Pix generator
falls from 11.1 to 6.1 G multiply-adds and its TFLite latency by about 1.9x (float and int8),
while its .tflite files grow by half (the converter stores the combined 2x2 kernels: 16 taps
where there were 9). TensorFlow's own CPU kernels run the fused form slower than the plain pair,
so only the TFLite conversion uses it. The trained 3x3 kernels are kept and combined inside the
graph, so the fused model loads the same weights, and the exporter's parity check compares its
output with the unfused Keras generator's.

XNNPACK has no MIRROR_PAD kernel, so each ``ReflectionPad2D`` of the CycleGAN/AttentionGAN
ResNet generators cut the delegated graph into another piece (15 pieces for 6 residual blocks).
``SlicedReflectionPad2D`` concatenates one-pixel slices instead: 5 pieces, and the one-thread
latency of a 128 px AttentionGAN generator fell by 13-14 % in float and 24-26 % in int8. Training
keeps the reflect pad, which TensorFlow runs about 13 % faster in a generator's forward and
backward pass.
"""

from collections import defaultdict

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tfunmask.models.layers import NearestUpsample2x, ReflectionPad2D

# TAPS[phase] maps the three taps of a 3x3 kernel row (offsets -1, 0, +1 on the upsampled grid)
# to the two taps (input offsets p-1 and p, p the phase) that see the same input pixels.
TAPS = np.array([[[1, 0, 0], [0, 1, 1]],
                 [[1, 1, 0], [0, 0, 1]]], np.float32)


class UpsampleConv2D(layers.Layer):
    """``Conv2D(filters, 3, padding="same")`` applied after a nearest x2 upsample, computed at the
    input resolution; its weights are the 3x3 convolution's, unchanged."""

    def __init__(self, filters, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.use_bias = use_bias

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(3, 3, input_shape[-1], self.filters), name="kernel")
        self.bias = self.add_weight(shape=(self.filters,), name="bias") if self.use_bias else None

    def call(self, x):
        kernel = tf.convert_to_tensor(self.kernel)
        phases = [tf.einsum("ai,bj,ijco->abco", TAPS[row], TAPS[col], kernel) for row in (0, 1) for col in (0, 1)]
        padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        y = tf.nn.conv2d(padded, tf.concat(phases, axis=-1), 1, "VALID")  # (H+1, W+1, 4 * filters)
        height, width, f = x.shape[1], x.shape[2], self.filters
        parts = [y[:, row:row + height, col:col + width, (2 * row + col) * f:(2 * row + col + 1) * f]
                 for row in (0, 1) for col in (0, 1)]
        y = tf.nn.depth_to_space(tf.concat(parts, axis=-1), 2)
        return y + self.bias if self.use_bias else y

    def compute_output_shape(self, shape):
        double = lambda n: None if n is None else 2 * n  # noqa: E731
        return (shape[0], double(shape[1]), double(shape[2]), self.filters)


class SlicedReflectionPad2D(ReflectionPad2D):
    """``ReflectionPad2D`` from one-pixel slices and concatenations: same values and gradients."""

    def call(self, x):
        for axis in (1, 2):
            x = self._reflect(x, axis)
        return x

    def _reflect(self, x, axis):
        """``x`` with rows (axis 1) or columns (axis 2) p, ..., 1 before and -2, ..., -1-p after."""
        def take(start, stop):
            return x[:, start:stop] if axis == 1 else x[:, :, start:stop]

        before = [take(i, i + 1) for i in range(self.pad, 0, -1)]
        after = [take(-1 - i, -i) for i in range(1, self.pad + 1)]
        return tf.concat(before + [x] + after, axis=axis)


def _fusable(layer):
    return (isinstance(layer, layers.Conv2D) and layer.kernel_size == (3, 3) and layer.strides == (1, 1)
            and layer.padding == "same" and layer.dilation_rate == (1, 1) and layer.groups == 1
            and layer.activation is keras.activations.linear)


def _consumers(model):
    """{operation name: [layers that take its output]} over a functional model's graph."""
    consumers = defaultdict(list)
    for layer in model.layers:
        for node in layer._inbound_nodes:  # noqa: SLF001 (Keras 3 keeps the graph here)
            for parent in node.parent_nodes:
                consumers[parent.operation.name].append(layer)
    return consumers


def tflite_graph(generator):
    """A copy of a functional ``generator`` in which every ``NearestUpsample2x`` whose outputs
    only feed plain 3x3 convolutions is folded into them (``UpsampleConv2D``) and every
    ``ReflectionPad2D`` is sliced (``SlicedReflectionPad2D``); same weights, same outputs."""
    consumers = _consumers(generator)
    upsamples = {layer.name for layer in generator.layers if isinstance(layer, NearestUpsample2x)
                 and consumers[layer.name] and all(map(_fusable, consumers[layer.name]))}
    fused_convs = {conv.name for name in upsamples for conv in consumers[name]}

    def clone(layer):
        if layer.name in fused_convs:
            return UpsampleConv2D(layer.filters, layer.use_bias, name=layer.name, dtype=layer.dtype_policy)
        if isinstance(layer, ReflectionPad2D):
            return SlicedReflectionPad2D(layer.pad, name=layer.name, dtype=layer.dtype_policy)
        return layer.__class__.from_config(layer.get_config())

    def call(layer, *args, **kwargs):
        return args[0] if layer.name in upsamples else layer(*args, **kwargs)

    fused = keras.models.clone_model(generator, clone_function=clone, call_function=call)
    for layer in fused.layers:
        if layer.weights:
            layer.set_weights(generator.get_layer(layer.name).get_weights())
    return fused
