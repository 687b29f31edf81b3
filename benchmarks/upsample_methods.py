"""Forward + backward time of each ``UpsampleConv2D`` method (and the plain resize + 3x3 conv) at
the shapes of the 256 px Pix2Pix generator's upsampling steps, batch 4, float32.

    python benchmarks/upsample_methods.py [--batch_size=4] [--repeats=5]

The "auto" rule of ``tfunmask.models.layers.UpsampleConv2D`` comes from this table (best of
``--repeats`` timings of one traced step: output, gradient of the input, gradient of the kernel).
Each method's outputs and gradients are checked against the plain form first. TensorFlow runs
independent ops one at a time here (one inter-op thread), so each figure is one layer's own cost.
"""

import time

from tfunmask import startup  # noqa: E402

startup.load_tensorflow()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from tfunmask.models.layers import UPSAMPLE_METHODS, NearestUpsample2x, UpsampleConv2D  # noqa: E402


def define_flags():
    flags.DEFINE_integer("batch_size", 4, "Batch size.")
    flags.DEFINE_integer("repeats", 5, "Timed repeats per method and shape; the best is reported.")


FLAGS = flags.FLAGS
# (input height = width, input channels, filters): U-Net 256 px up6 ... up0, then the image head
SHAPES = [(1, 512, 512), (2, 1024, 512), (4, 1024, 512), (8, 1024, 512), (16, 1024, 256), (32, 512, 128),
          (64, 256, 64), (128, 128, 3)]


def timed_step(forward, x, kernel, probe):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(forward(x) * probe)
        return (forward(x), *tape.gradient(loss, [x, kernel]))

    results = step()
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times), results


def main(_):
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    names = ["plain"] + [m for m in UPSAMPLE_METHODS if m != "auto"]
    print(f"{'input':>16} " + " ".join(f"{n:>10}" for n in names) + "   auto picks")
    totals = dict.fromkeys(names + ["auto"], 0.0)
    for size, channels, filters in SHAPES:
        x = tf.constant(rng.normal(size=(FLAGS.batch_size, size, size, channels)).astype(np.float32))
        probe = tf.constant(rng.normal(size=(FLAGS.batch_size, 2 * size, 2 * size, filters)).astype(np.float32))
        layer = UpsampleConv2D(filters, 3, use_bias=False)
        layer.build((None, size + 2, size + 2, channels))
        layer.kernel.assign(rng.normal(0, 0.02, layer.kernel.shape).astype(np.float32))
        pad = lambda t: tf.pad(t, [[0, 0], [1, 1], [1, 1], [0, 0]])  # noqa: E731
        seconds = {}
        reference = None
        for name in names:
            if name == "plain":
                forward = lambda t: tf.nn.conv2d(NearestUpsample2x()(t), layer.kernel, 1, "SAME")  # noqa: E731
            else:
                layer.method = name
                forward = lambda t: layer(pad(t))  # noqa: E731
            seconds[name], results = timed_step(forward, x, layer.kernel, probe)
            reference = reference or results
            for want, got in zip(reference, results):
                error = float(tf.reduce_max(tf.abs(want - got)) / tf.reduce_max(tf.abs(want)))
                assert error < 1e-4, (name, size, error)  # float32 sums of up to 36 x channels products
            totals[name] += seconds[name]
        layer.method = "auto"
        picked = layer.resolved_method((None, size + 2, size + 2, channels))
        totals["auto"] += seconds[picked]
        print(f"{size:>4}px {channels:>4}->{filters:<4} " + " ".join(f"{seconds[n] * 1e3:8.1f}ms" for n in names)
              + f"   {picked}", flush=True)
    print("all shapes:      " + " ".join(f"{totals[n] * 1e3:8.0f}ms" for n in names)
          + f"   auto {totals['auto'] * 1e3:.0f}ms")


if __name__ == "__main__":
    define_flags()
    app.run(main)
