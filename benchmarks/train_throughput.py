"""Training throughput (images/s) of one model at one size, per precision.

    python benchmarks/train_throughput.py --model=pix2pix --image_size=256

Times ``fit`` steps on one in-memory batch (no input
pipeline, which benchmarks/data_throughput.py measures), after warm-up steps
that absorb tracing. Each precision runs in the same process, one after the
other, and the ratio to float32 is printed from this one run. The precisions are
timed in ``--rounds`` alternating rounds and the best round of each is reported:
single timings on the 2-core development machine varied up to 2x between runs
(Pix2Pix float32 at 256 px: 0.98 images/s in two processes, 1.87 and 1.91 in
another), which one round per precision turned into a wrong ratio.
"""

import os
import time

from tfunmask import startup  # noqa: E402

startup.load_tensorflow()  # before anything imports TensorFlow: no native start-up lines

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from tfunmask import models  # noqa: E402
from tfunmask.training.hardware import PRECISIONS  # noqa: E402

def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_enum("model", "pix2pix", ["pix2pix", "cyclegan", "aggan"], "Model to time.")
    flags.DEFINE_integer("image_size", 256, "Image size.")
    flags.DEFINE_integer("batch_size", 4, "Batch size.")
    flags.DEFINE_integer("steps", 10, "Timed steps per precision.")
    flags.DEFINE_integer("warmup", 3, "Untimed steps first.")
    flags.DEFINE_list("precisions", ["float32", "bfloat16"], "Precisions to time (float32, bfloat16, float16).")
    flags.DEFINE_integer("aggan_scheme", 2, "AttentionGAN scheme.")
    flags.DEFINE_integer("resnet_blocks", 9, "CycleGAN/AttentionGAN residual blocks (9: the reference's ResNet-9).")
    flags.DEFINE_integer("rounds", 2, "Rounds over the precisions; the best of each is reported.", lower_bound=1)


FLAGS = flags.FLAGS


def fake_batch(kind, size, batch):
    rng = np.random.default_rng(0)
    image = lambda: rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)  # noqa: E731
    if kind == "paired":
        return {"masked": image(), "target": image(),
                "mask_map": (rng.uniform(size=(batch, size, size, 1)) > 0.5).astype(np.float32)}
    return {"a": image(), "b": image()}


def images_per_second(precision):
    arguments = {"image_size": FLAGS.image_size}
    if FLAGS.model != "pix2pix":
        arguments["resnet_blocks"] = FLAGS.resnet_blocks
    if FLAGS.model == "aggan":
        arguments["aggan_scheme"] = FLAGS.aggan_scheme
    model = models.build(FLAGS.model, arguments, dtype=PRECISIONS[precision])
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    batch = fake_batch(model.DATA, FLAGS.image_size, FLAGS.batch_size)
    data = tf.data.Dataset.from_tensors(batch).repeat()
    model.fit(data, steps_per_epoch=FLAGS.warmup, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=FLAGS.steps, epochs=1, verbose=0)
    return FLAGS.steps * FLAGS.batch_size / (time.perf_counter() - start)


def main(_):
    print(f"{FLAGS.model} {FLAGS.image_size}px batch {FLAGS.batch_size}, {FLAGS.steps} steps, "
          f"{os.cpu_count()} CPUs, TF {tf.__version__}")
    best = {}
    for round_ in range(1, FLAGS.rounds + 1):
        for precision in FLAGS.precisions:
            rate = images_per_second(precision)
            best[precision] = max(rate, best.get(precision, 0.0))
            print(f"round {round_} {precision:>9}: {rate:7.3g} images/s", flush=True)
    print(f"best of {FLAGS.rounds} round(s):")
    for precision, rate in best.items():
        ratio = f" ({rate / best['float32']:.2f}x float32)" if "float32" in best else ""
        print(f"{precision:>9}: {rate:7.3g} images/s{ratio}", flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
