"""The generator's TFLite graph: the same outputs from operations that XNNPACK runs fast.

Two rewrites, both exact: every nearest x2 upsample + 3x3 convolution computed at the input
resolution (2.25 times cheaper), and every reflection pad built from slices (no MIRROR_PAD).

Every nearest x2 upsample feeding only 3x3 convolutions becomes a one-pixel zero pad feeding
``UpsampleConv2D`` (``tfunmask.models.layers``): each of the four output phases is a 2x2
convolution of the input, 16 instead of 36 multiply-adds per input pixel and channel pair. In the
U-Net decoder these pairs hold about 80 % of the generator's work; fused, a 256 px Pix2Pix
generator falls from 11.1 to 6.1 G multiply-adds and its TFLite latency by about 1.9x (float and
int8), while its .tflite files grow by half (the converter stores the combined 2x2 kernels: 16
taps where there were 9). Generators built with ``upsampling="fused"`` (or "auto", the default)
are in that form already, but compute it as training ran fastest (``UpsampleConv2D``'s
"auto" method: matrix products and transposed convolutions); the rewrite sets every
``UpsampleConv2D`` to the 2x2-convolution method. The trained 3x3 kernels are kept and combined inside the graph, so the rewritten model loads the
same weights, and the exporter's parity check compares its output with the Keras generator's.

The layers that exist only for training speed on TensorFlow (``MatmulConv2D``,
``InstanceNormalization``'s fused kernel at batch 1) become Keras' own ``Conv2D`` and
``GroupNormalization`` here: the same function, in the ops the converter and XNNPACK know.

XNNPACK has no MIRROR_PAD kernel, so each ``ReflectionPad2D`` of the CycleGAN/AttentionGAN
ResNet generators cut the delegated graph into another piece (15 pieces for 6 residual blocks).
``SlicedReflectionPad2D`` concatenates one-pixel slices instead: 5 pieces, and the one-thread
latency of a 128 px AttentionGAN generator fell by 13-14 % in float and 24-26 % in int8. Training
keeps the reflect pad, which TensorFlow runs about 13 % faster in a generator's forward and
backward pass.
"""

from collections import defaultdict

import keras
import tensorflow as tf
from keras import layers

from tfunmask.models.layers import (
    InstanceNormalization,
    MatmulConv2D,
    NearestUpsample2x,
    ReflectionPad2D,
    UpsampleConv2D,
)

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
    ``ReflectionPad2D`` is sliced (``SlicedReflectionPad2D``), and every ``UpsampleConv2D`` computes
    the 2x2-convolution method; same weights, same outputs."""
    consumers = _consumers(generator)
    upsamples = {layer.name for layer in generator.layers if isinstance(layer, NearestUpsample2x)
                 and consumers[layer.name] and all(map(_fusable, consumers[layer.name]))}
    fused_convs = {conv.name for name in upsamples for conv in consumers[name]}

    def clone(layer):
        if layer.name in upsamples:
            return layers.ZeroPadding2D(1, name=layer.name, dtype=layer.dtype_policy)
        if layer.name in fused_convs:
            return UpsampleConv2D(layer.filters, 3, method="conv", use_bias=layer.use_bias, name=layer.name,
                                  dtype=layer.dtype_policy)
        if isinstance(layer, UpsampleConv2D):
            return UpsampleConv2D.from_config({**layer.get_config(), "method": "conv"})
        if isinstance(layer, MatmulConv2D):  # training-speed forms: TFLite gets Keras' layers
            return layers.Conv2D.from_config(layer.get_config())
        if isinstance(layer, InstanceNormalization):
            return layers.GroupNormalization.from_config(layer.get_config())
        if isinstance(layer, ReflectionPad2D):
            return SlicedReflectionPad2D(layer.pad, name=layer.name, dtype=layer.dtype_policy)
        return layer.__class__.from_config(layer.get_config())

    fused = keras.models.clone_model(generator, clone_function=clone)
    for layer in fused.layers:
        if layer.weights:
            layer.set_weights(generator.get_layer(layer.name).get_weights())
    return fused
