"""Building blocks shared by the generators and discriminators.

The blocks are chosen for what they become after export as much as for
training: upsampling is a nearest-neighbour x2 resize followed by a 3x3 convolution rather
than ``Conv2DTranspose``, because TFLite runs resize + conv with fast XNNPACK
kernels (and full-integer int8) while transposed convolutions fall back to slow
reference kernels; it also avoids checkerboard artefacts. The resize is
``NearestUpsample2x`` rather than Keras' ``UpSampling2D``, whose TFLite form
(RESHAPE + TILE) XNNPACK does not run. Decoders may compute the resize and conv together at the
input resolution instead (``UpsampleConv2D``, ``up(..., fused=True)``): the same function and
weights with 2.25x fewer multiply-adds. Batch normalisation is
synchronised across replicas so that a step on N replicas equals a step on one
device with the same global batch, and at inference it folds into the
preceding convolution. (Synchronisation is turned on only when the model is built
under a strategy with several replicas.)
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

# N(0, 0.02) weights, as a config rather than an instance: each layer then builds its own
# initializer with its own seed. One shared unseeded Keras 3 initializer repeats its values on
# every call, which gave all same-shaped layers (U-Net down4-7, every residual block) identical weights.
INIT = {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 0.02}}


@keras.saving.register_keras_serializable("tfunmask")
class ReflectionPad2D(layers.Layer):
    """Pads height and width by reflecting the border (CycleGAN's ResNet blocks)."""

    def __init__(self, pad=1, **kwargs):
        super().__init__(**kwargs)
        self.pad = pad

    def call(self, x):
        p = self.pad
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, shape):
        grow = lambda n: None if n is None else n + 2 * self.pad  # noqa: E731
        return (shape[0], grow(shape[1]), grow(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable("tfunmask")
class NearestUpsample2x(layers.Layer):
    """x2 nearest-neighbour upsampling as four channel copies + depth-to-space.

    Bit-identical to ``UpSampling2D(2, interpolation="nearest")`` (forward and gradient), so
    weights and checkpoints carry over; but it converts to TFLite CONCATENATION + DEPTH_TO_SPACE,
    which XNNPACK runs in float and int8, where ``UpSampling2D`` becomes RESHAPE + TILE that
    XNNPACK leaves to builtin kernels, cutting the U-Net into 17 delegate pieces.
    """

    def call(self, x):
        return tf.nn.depth_to_space(ops.concatenate([x] * 4, axis=-1), 2)

    def compute_output_shape(self, shape):
        double = lambda n: None if n is None else 2 * n  # noqa: E731
        return (shape[0], double(shape[1]), double(shape[2]), shape[3])


@keras.saving.register_keras_serializable("tfunmask")
class LeakyReLUMax(layers.Layer):
    """LeakyReLU written as max(x, alpha x): the same function and gradient (but at exactly 0).

    Used where a convolution's bias feeds the activation directly (encoder steps without
    normalisation). There TensorFlow's grappler remapper fuses Conv2D + BiasAdd + LeakyRelu,
    then finds that LeakyReluGrad still reads the removed BiasAdd, prints "remapper failed:
    ... missing node ... BiasAdd" on every training start and drops the fusions it made. A
    maximum is not a fusion pattern, so the remapper succeeds. On the 2-core AMD EPYC the two
    forms train equally fast (a 128 px Pix2Pix step: 0.768 vs 0.770 s, medians of 6 rounds);
    the point is the error line a user would read as a failure.
    """

    def __init__(self, alpha=0.2, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    def call(self, x):
        return ops.maximum(x, self.alpha * x)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


# TAPS[phase] maps the three taps of a 3x3 kernel row (offsets -1, 0, +1 on the upsampled grid)
# to the two taps (input offsets p - 1 and p, p the phase) that see the same input pixels.
TAPS = np.array([[[1, 0, 0], [0, 1, 1]],
                 [[1, 1, 0], [0, 0, 1]]], np.float32)
# The 3x3 -> 2x2 tap sums for both axes at once: row (a, b, p, q) of PHASE_TAPS times the nine
# 3x3 taps gives tap (a, b) of phase (p, q)'s 2x2 kernel.
PHASE_TAPS = np.einsum("pai,qbj->abpqij", TAPS, TAPS).reshape(16, 9)
# The same sums as one 4x4 stride-2 transposed-convolution kernel: its tap k along an axis is the
# 2x2 tap a of phase p with k = 3 - (2a + p) (a transposed convolution walks its kernel backwards).
_ROW = TAPS.transpose(1, 0, 2).reshape(4, 3)[::-1]
TRANSPOSED_TAPS = np.einsum("ki,lj->klij", _ROW, _ROW).reshape(16, 9)
UPSAMPLE_METHODS = ("auto", "conv", "matmul", "transpose")


@keras.saving.register_keras_serializable("tfunmask")
class UpsampleConv2D(layers.Conv2D):
    """A nearest x2 upsample then a 3x3 "same" convolution, computed at the input resolution.

    After a nearest x2 upsample every 3x3 window covers only a 2x2 patch of the input, so each of
    the four output phases (even/odd row, even/odd column) is a 2x2 convolution of the input whose
    taps are sums of the 3x3 taps: 16 instead of 36 multiply-adds per input pixel and channel
    pair. It takes the input zero-padded by one pixel (``ZeroPadding2D(1)`` before it, where the
    plain form has its ``NearestUpsample2x``), and holds the 3x3 kernel itself: same weights,
    same checkpoint entries, same function as the plain pair. Construct it as
    ``UpsampleConv2D(filters, 3, ...)`` (padding "valid", stride 1).

    ``method`` is how TensorFlow computes it; every method gives the same numbers up to float
    rounding. "conv": one 2x2 convolution with the four phases' kernels side by side, then
    depth-to-space (the TFLite graph's form, which XNNPACK runs fast). "matmul": the same as one
    matrix product of the four shifted copies of the input. "transpose": one 4x4 stride-2
    transposed convolution of the unpadded input. "auto" picks by shape, from forward + backward
    timings on a 2-core AVX2 CPU (``benchmarks/upsample_methods.py``): "matmul" for maps of at most
    8x8 pixels, where the others' weight gradients were 2-5x slower; "conv" for fewer than 8
    filters (the image heads: 75 ms against 140 for "transpose" at 128 px and batch 4);
    "transpose" elsewhere.
    """

    def __init__(self, filters, kernel_size, method="auto", **kwargs):
        if method not in UPSAMPLE_METHODS:
            raise ValueError(f"method must be one of {', '.join(UPSAMPLE_METHODS)} (got {method!r})")
        super().__init__(filters, kernel_size, **kwargs)
        self.method = method

    def build(self, input_shape):
        if self.kernel_size != (3, 3) or self.strides != (1, 1) or self.padding != "valid":
            raise ValueError("UpsampleConv2D is a 3x3, stride 1 convolution of a padded input")
        super().build(input_shape)

    def resolved_method(self, padded_shape):
        """The method ``call`` uses for an input of ``padded_shape``."""
        if self.method != "auto":
            return self.method
        height, width = padded_shape[1], padded_shape[2]
        if height is not None and width is not None and (height - 2) * (width - 2) <= 64:
            return "matmul"
        return "conv" if self.filters < 8 or height is None or width is None else "transpose"

    def call(self, padded):
        kernel = ops.cast(self.kernel, self.compute_dtype)
        method = self.resolved_method(padded.shape)
        y = self._transpose(padded, kernel) if method == "transpose" else self._phases(padded, kernel, method)
        return y + ops.cast(self.bias, self.compute_dtype) if self.use_bias else y

    @staticmethod
    def _combine(taps, kernel):
        """``taps`` (16 x 9) times the 3x3 kernel's taps: 16 rows of (in, out) kernels."""
        channels = kernel.shape[2] * kernel.shape[3]
        return tf.matmul(tf.constant(taps, kernel.dtype), tf.reshape(kernel, (9, channels)))

    def _phases(self, padded, kernel, method):
        """"conv" and "matmul": the four phases side by side (output channel (2 p + q) * filters
        + o) at (H + 1) x (W + 1) positions, each phase then cut at its offset."""
        c, f = kernel.shape[2], self.filters
        phases = tf.reshape(self._combine(PHASE_TAPS, kernel), (4, 4, c, f))  # (ab, pq, in, out)
        phases = tf.reshape(tf.transpose(phases, (0, 2, 1, 3)), (2, 2, c, 4 * f))
        height, width = padded.shape[1] - 2, padded.shape[2] - 2
        if method == "conv":
            y = tf.nn.conv2d(padded, phases, 1, "VALID")
        else:
            y = _shifted_matmul(padded, phases)
        parts = [y[:, row:row + height, col:col + width, (2 * row + col) * f:(2 * row + col + 1) * f]
                 for row in (0, 1) for col in (0, 1)]
        return tf.nn.depth_to_space(tf.concat(parts, axis=-1), 2)

    def _transpose(self, padded, kernel):
        """"transpose": a 4x4 stride-2 transposed convolution of the unpadded input."""
        c, f = kernel.shape[2], self.filters
        taps = tf.transpose(tf.reshape(self._combine(TRANSPOSED_TAPS, kernel), (4, 4, c, f)), (0, 1, 3, 2))
        x = padded[:, 1:-1, 1:-1]
        shape = tf.shape(x)
        return tf.nn.conv2d_transpose(x, taps, tf.stack([shape[0], 2 * shape[1], 2 * shape[2], f]), 2, "SAME")

    def compute_output_shape(self, shape):
        double = lambda n: None if n is None else 2 * (n - 2)  # noqa: E731
        return (shape[0], double(shape[1]), double(shape[2]), self.filters)

    def get_config(self):
        return {**super().get_config(), "method": self.method}


@keras.saving.register_keras_serializable("tfunmask")
class MatmulConv2D(layers.Conv2D):
    """A stride-1 "valid" ``Conv2D`` that computes its forward pass for a batch of one float32
    image (at least 32 channels in and out) as one matrix product of the input's shifted copies; its
    gradients stay TensorFlow's convolution kernels. Same weights, same function.

    For a batch of one, TensorFlow's oneDNN convolution falls back to a GEMM-based forward kernel
    on AVX2 CPUs (from batch 2 on it runs its brgemm kernel): on a 2-core AMD EPYC a 3x3, 256 ->
    256 channel convolution of a 34x34 map took 19.8 ms forward that way and 10.7 ms as a matrix
    product, while the matrix product's own gradient was slower than TensorFlow's (47 against 41
    ms forward + backward), hence the custom gradient. CycleGAN and AttentionGAN train at batch 1
    and run two such convolutions per residual block in each of a step's six generator passes.
    Float32 only: on a 2-core Intel Xeon with AVX-512 and AMX the same convolution took 4.6 ms as
    a matrix product against 5.2 ms in float32, but 1.85 against 1.21 ms in bfloat16, where
    TensorFlow's own kernel uses AMX.
    """

    MIN_CHANNELS = 32

    def build(self, input_shape):
        if self.strides != (1, 1) or self.padding != "valid" or self.dilation_rate != (1, 1) or self.groups != 1:
            raise ValueError("MatmulConv2D is a stride-1, undilated, ungrouped 'valid' convolution")
        super().build(input_shape)

    def call(self, x):
        if x.shape[0] != 1 or min(x.shape[-1], self.filters) < self.MIN_CHANNELS or self.compute_dtype != "float32":
            return super().call(x)
        y = _shifted_matmul_conv(x, ops.cast(self.kernel, self.compute_dtype))
        return y + ops.cast(self.bias, self.compute_dtype) if self.use_bias else y


def _shifted_matmul(x, kernel):
    """``conv2d(x, kernel, 1, "VALID")`` as one matrix product: the input's shifted copies (one
    per kernel tap, side by side) times the kernel's taps."""
    rows, cols, channels, filters = kernel.shape
    height, width = x.shape[1] - rows + 1, x.shape[2] - cols + 1
    shifted = tf.concat([x[:, i:i + height, j:j + width] for i in range(rows) for j in range(cols)], -1)
    y = tf.matmul(tf.reshape(shifted, (-1, rows * cols * channels)), tf.reshape(kernel, (-1, filters)))
    return tf.reshape(y, (tf.shape(x)[0], height, width, filters))


def _shifted_matmul_conv(x, kernel):
    """``_shifted_matmul`` forward, TensorFlow's convolution gradients."""

    @tf.custom_gradient
    def conv(x, kernel):
        def gradient(dy):
            dx = tf.nn.conv2d_transpose(dy, kernel, tf.shape(x), 1, "VALID")
            dkernel = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(kernel), out_backprop=dy,
                                                      strides=[1, 1, 1, 1], padding="VALID")
            return dx, dkernel

        return _shifted_matmul(x, kernel), gradient

    return conv(x, kernel)


@keras.saving.register_keras_serializable("tfunmask")
class Composite(layers.Layer):
    """``sum_i content_i * mask_i + background * (1 - sum_i mask_i)`` in float32.

    ``content`` holds k RGB images as 3k channels and ``mask`` their k masks
    (k = 1: ``content * mask + background * (1 - mask)``). Where the masks are 0
    the background passes through untouched; used by the mask-predicting
    generator and the attention generators. Only 4-D slices, products and sums,
    which TFLite runs in float and int8.
    """

    def __init__(self, **kwargs):
        super().__init__(**{**kwargs, "dtype": "float32"})  # also when from_config passes one

    def call(self, inputs):
        content, mask, background = (ops.cast(t, "float32") for t in inputs)
        composed = background * (1.0 - ops.sum(mask, axis=-1, keepdims=True))
        for i in range(mask.shape[-1]):
            composed = composed + content[..., 3 * i:3 * i + 3] * mask[..., i:i + 1]
        return composed

    def compute_output_shape(self, shapes):
        return shapes[2]


@keras.saving.register_keras_serializable("tfunmask")
class Erased(layers.Layer):
    """``[image * (1 - mask), mask]`` in float32: the image with the region a mask map covers
    blanked out (to 0, mid-grey in [-1, 1]), and the map beside it as a fourth channel, so a
    network that inpaints from it cannot copy what was there and knows where to paint.
    """

    def __init__(self, **kwargs):
        super().__init__(**{**kwargs, "dtype": "float32"})

    def call(self, inputs):
        image, mask = (ops.cast(t, "float32") for t in inputs)
        return ops.concatenate([image * (1.0 - mask), mask], axis=-1)

    def compute_output_shape(self, shapes):
        return (*shapes[0][:-1], shapes[0][-1] + 1)


@keras.saving.register_keras_serializable("tfunmask")
class MapClosing(layers.Layer):
    """Morphological closing of a mask map (N, H, W, 1): a max filter over a (2 radius + 1)
    square, then a min filter of the same size, in float32.

    It fills holes and cracks narrower than the square (a dim line that a predicted map leaves
    along a mask's pleat or seam, through which the mask would show in the composite) without
    growing the map's outer edge. Max pooling with stride 1, which TFLite runs in float and int8.
    """

    def __init__(self, radius, **kwargs):
        if radius < 1:
            raise ValueError(f"MapClosing radius must be at least 1 (got {radius})")
        super().__init__(**{**kwargs, "dtype": "float32"})
        self.radius = radius

    def call(self, mask):
        size = 2 * self.radius + 1
        dilated = ops.max_pool(ops.cast(mask, "float32"), size, strides=1, padding="same")
        return -ops.max_pool(-dilated, size, strides=1, padding="same")

    def get_config(self):
        return {**super().get_config(), "radius": self.radius}


def _fused_norm(layer, inputs):
    """TensorFlow's fused batch-norm kernel over an NHWC batch with ``layer``'s gamma, beta and
    epsilon, in float32: (output in the layer's compute dtype, batch mean, unbiased batch variance)."""
    y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        ops.cast(inputs, "float32"), ops.cast(layer.gamma, "float32"), ops.cast(layer.beta, "float32"),
        epsilon=layer.epsilon, is_training=True)
    return ops.cast(y, layer.compute_dtype), mean, variance


@keras.saving.register_keras_serializable("tfunmask")
class FusedBatchNormalization(layers.BatchNormalization):
    """``BatchNormalization`` whose training pass over NHWC maps runs TensorFlow's fused kernel
    (one op forward, one backward) instead of Keras' moments, normalisation and their gradients
    as a dozen element-wise ops. Same variables, same function: the moving variance is updated
    with the biased batch variance, as Keras does (the fused op returns the unbiased one). A 256 px
    Pix2Pix float32 step at batch 4 took 3.8-3.9 s with it and 4.3 s without on the 2-core AMD
    EPYC. Everything else (inference, masks, renorm, other axes, synchronised statistics) is
    Keras' own code.
    """

    def call(self, inputs, training=None, mask=None):
        if (not (training and self.trainable) or mask is not None or self.synchronized or self.renorm
                or len(inputs.shape) != 4 or self.axis not in (3, -1) or not (self.scale and self.center)):
            return super().call(inputs, training=training, mask=mask)
        y, mean, variance = _fused_norm(self, inputs)
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), tf.float32)
        variance = variance * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return y


@keras.saving.register_keras_serializable("tfunmask")
class InstanceNormalization(layers.GroupNormalization):
    """Instance norm (``GroupNormalization(groups=-1)``) that runs TensorFlow's fused batch-norm
    kernel for a batch of one image, where the two are the same function (statistics over height
    and width, per channel); other batches take Keras' own code. Same variables and config.
    CycleGAN and AttentionGAN train at batch 1 with instance norm after every convolution.
    """

    def __init__(self, **kwargs):
        super().__init__(**{"groups": -1, **kwargs})

    def call(self, inputs):
        if inputs.shape[0] != 1 or len(inputs.shape) != 4 or self.groups != inputs.shape[-1] \
                or not (self.scale and self.center):
            return super().call(inputs)
        return _fused_norm(self, inputs)[0]


NORMALIZATIONS = ("batch", "instance", "none")


def norm(kind, name=None):
    """A normalisation layer: "batch" (fused on one replica, synchronised across several),
    "instance" or "none"."""
    if kind == "batch":
        # Statistics are all-reduced only when built under a strategy with several replicas:
        # there it makes N replicas equal one device; on one device it would only cost
        # (mixed_bfloat16 Pix2Pix at 256 px: 2.3 img/s synchronised vs 4.0 without).
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            return layers.BatchNormalization(synchronized=True, momentum=0.9, epsilon=1e-5, name=name)
        return FusedBatchNormalization(momentum=0.9, epsilon=1e-5, name=name)
    if kind == "instance":
        return InstanceNormalization(epsilon=1e-5, name=name)
    if kind == "none":
        return layers.Identity(name=name)
    raise ValueError(f"unknown normalisation {kind!r}; use batch, instance or none")


def down(x, filters, *, normalization="batch", kernel=4, strides=2, name):
    """Conv (4x4, stride 2) -> norm -> LeakyReLU(0.2): one encoder step (without a norm, the
    activation is ``LeakyReLUMax``, which TensorFlow's remapper does not fuse with the bias)."""
    unnormalised = normalization == "none"
    x = layers.Conv2D(filters, kernel, strides, padding="same", kernel_initializer=INIT,
                      use_bias=unnormalised, name=f"{name}_conv")(x)
    x = norm(normalization, name=f"{name}_norm")(x)
    activation = LeakyReLUMax if unnormalised else layers.LeakyReLU
    return activation(0.2, name=f"{name}_act")(x)


def upsample(x, *, fused, name):
    """The x2 nearest upsample before 3x3 convolutions (``conv3x3``): the resize itself, or, where
    ``fused``, the one-pixel zero pad that ``UpsampleConv2D`` takes instead."""
    return layers.ZeroPadding2D(1, name=name)(x) if fused else NearestUpsample2x(name=name)(x)


def conv3x3(filters, *, fused, **kwargs):
    """The 3x3 "same" convolution after ``upsample``: ``UpsampleConv2D`` where ``fused``."""
    return UpsampleConv2D(filters, 3, **kwargs) if fused else layers.Conv2D(filters, 3, padding="same", **kwargs)


def up(x, filters, *, normalization="batch", dropout=0.0, fused=False, name):
    """Nearest x2 resize -> 3x3 conv -> norm -> (dropout) -> ReLU: one decoder step. ``fused``
    computes the resize and conv at the input resolution (``UpsampleConv2D``): the same function
    and weights, 2.25x fewer multiply-adds; the layer list keeps its length and order, so the
    checkpoints of either form load into the other."""
    x = upsample(x, fused=fused, name=f"{name}_pad" if fused else f"{name}_resize")
    x = conv3x3(filters, fused=fused, kernel_initializer=INIT, use_bias=normalization == "none",
                name=f"{name}_conv")(x)
    x = norm(normalization, name=f"{name}_norm")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.ReLU(name=f"{name}_act")(x)


def conv_block(x, filters, kernel, *, strides=1, normalization="instance", activation="relu",
               reflect=False, name):
    """[Reflection pad] -> conv -> norm -> [activation].

    ``reflect`` pads ``kernel // 2`` pixels by mirroring and convolves "valid"
    (CycleGAN's c7s1-k and residual convolutions: no zero border whose
    artefacts the generator must learn to hide; ``MatmulConv2D`` where the stride is 1);
    otherwise padding is zeros.
    """
    if reflect:
        x = ReflectionPad2D(kernel // 2, name=f"{name}_pad")(x)
    conv = MatmulConv2D if reflect and strides == 1 else layers.Conv2D
    x = conv(filters, kernel, strides, padding="valid" if reflect else "same", kernel_initializer=INIT,
             use_bias=normalization == "none", name=f"{name}_conv")(x)
    x = norm(normalization, name=f"{name}_norm")(x)
    return layers.Activation(activation, name=f"{name}_act")(x) if activation else x


def residual_block(x, *, name):
    """x + (pad-conv3-IN-ReLU-pad-conv3-IN)(x): Johnson et al.'s block, as in CycleGAN."""
    y = conv_block(x, x.shape[-1], 3, reflect=True, name=f"{name}_a")
    y = conv_block(y, x.shape[-1], 3, reflect=True, activation=None, name=f"{name}_b")
    return layers.Add(name=name)([x, y])


def resnet_encoder(x, *, filters=64, blocks=9, name="encoder"):
    """c7s1-f, d2f, d4f, then ``blocks`` residual blocks at a quarter of the resolution.

    CycleGAN uses 6 blocks at 128 px and 9 at 256 px and above.
    """
    x = conv_block(x, filters, 7, reflect=True, name=f"{name}_c7")
    for i in (1, 2):
        x = conv_block(x, filters * 2 ** i, 3, strides=2, name=f"{name}_d{i}")
    for i in range(blocks):
        x = residual_block(x, name=f"{name}_r{i}")
    return x


UPSAMPLING = ("auto", "fused", "plain")


def fused_upsampling(upsampling):
    """Whether ``upsampling`` ("auto", "fused" or "plain") means ``UpsampleConv2D``; both forms
    compute the same function from the same weights and checkpoints. "auto" is fused: with its
    method chosen per shape, the fused form trained faster on both CPU kinds measured
    (``benchmarks/train_throughput.py``, 256 px Pix2Pix, batch 4: 2-core AMD EPYC with AVX2,
    float32, 0.667 against 0.645 images/s; 2-core Intel Xeon with AMX, float32 2.85 against 2.20,
    bfloat16 6.18 against 5.70)."""
    if upsampling not in UPSAMPLING:
        raise ValueError(f"upsampling must be one of {', '.join(UPSAMPLING)} (got {upsampling!r})")
    return upsampling != "plain"


def resnet_decoder(x, *, filters=64, fused=False, name="decoder"):
    """u2f, uf: back to full resolution with instance-normalised ``up`` steps."""
    for i in (1, 0):
        x = up(x, filters * 2 ** i, normalization="instance", fused=fused, name=f"{name}_u{i}")
    return x


def head(x, channels, *, kernel=3, reflect=False, activation="tanh", bias=0.0, fused=False, name):
    """Final conv + activation; the activation runs in float32, so mixed
    precision never clips an image (tanh) or an attention mask (sigmoid, softmax).
    ``bias``: the conv's initial bias (a number, or one per channel). ``fused``: ``x`` comes from
    ``upsample(fused=True)`` and the 3x3 conv is an ``UpsampleConv2D``."""
    if reflect:
        x = ReflectionPad2D(kernel // 2, name=f"{name}_pad")(x)
    arguments = dict(kernel_initializer=INIT, bias_initializer=keras.initializers.Constant(bias), name=f"{name}_conv")
    if fused and (kernel != 3 or reflect):
        raise ValueError("a fused head is a 3x3 convolution with zero padding")
    if fused:
        conv = conv3x3(channels, fused=True, **arguments)
    else:
        conv = layers.Conv2D(channels, kernel, padding="valid" if reflect else "same", **arguments)
    return layers.Activation(activation, dtype="float32", name=name)(conv(x))


def to_image(x, channels=3, *, fused=False, name):
    """Final 3x3 conv + tanh in float32."""
    return head(x, channels, fused=fused, name=name)


def resnet_generator(image_size, *, filters=64, blocks=9, fused=False, name="generator"):
    """CycleGAN's generator: ``resnet_encoder``, ``resnet_decoder``, c7s1-3 + tanh."""
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = resnet_decoder(resnet_encoder(inputs, filters=filters, blocks=blocks), filters=filters, fused=fused)
    outputs = head(x, 3, kernel=7, reflect=True, name="translated")
    return keras.Model(inputs, outputs, name=name)


def patch_discriminator(image_size, in_channels, *, filters=64, normalization="batch", name):
    """The 70x70 PatchGAN: C64-C128-C256-C512 then a 1-channel logit map (float32).

    Three stride-2 and two stride-1 4x4 convolutions give each output logit a
    70x70 receptive field; the output is a map of real/fake logits, one per patch.
    """
    inputs = keras.Input((image_size, image_size, in_channels), name="images")
    x = down(inputs, filters, normalization="none", name="c1")
    x = down(x, filters * 2, normalization=normalization, name="c2")
    x = down(x, filters * 4, normalization=normalization, name="c3")
    x = down(x, filters * 8, normalization=normalization, strides=1, name="c4")
    logits = layers.Conv2D(1, 4, padding="same", kernel_initializer=INIT, name="logits_conv")(x)
    logits = layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model(inputs, logits, name=name)
