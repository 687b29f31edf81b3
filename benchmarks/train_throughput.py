"""Training throughput (images/s) of one model at one size, per precision and upsampling form,
against the PyTorch reference.

    python benchmarks/train_throughput.py --model=pix2pix --image_size=256 --reference
    python benchmarks/train_throughput.py --model=cyclegan --image_size=128 --batch_size=1 --reference
    python benchmarks/train_throughput.py --precisions=bfloat16 --upsampling=fused --flops=false \
        --args=composite=True --args=composite=True,lambda_ssim=10   # what a loss term costs

Times training steps on one in-memory batch (no input pipeline, which
benchmarks/data_throughput.py measures), after warm-up steps that absorb tracing, and reports
the batch over the median step: ``fit`` over a few steps gave bimodal figures here (0.24 or 0.47
images/s for the same Pix2Pix), which single steps showed to be the timing, not the steps. Every variant
(precision x decoder upsampling, and with ``--reference`` the PyTorch implementation of the same
step in ``torch_reference.py``, from the ``bench`` extra) runs in the same process, and the
ratios are printed from this one run. It then counts the FLOPs of one step and prints the share
of the CPU's FMA peak that float32 reached, and of the rate of a large float32 matrix product
(the peak's clock is the base clock where the machine hides its turbo). The variants are
timed in ``--rounds`` alternating rounds and the best round of each is reported:
single timings on the 2-core development machine varied up to 2x between runs
(Pix2Pix float32 at 256 px: 0.98 images/s in two processes, 1.87 and 1.91 in
another), which one round per precision turned into a wrong ratio.
"""

import ast
import functools
import itertools
import os
import subprocess
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
    flags.DEFINE_integer("steps", 10, "Timed steps per variant and round.")
    flags.DEFINE_integer("warmup", 3, "Untimed steps first.")
    flags.DEFINE_list("precisions", ["float32", "bfloat16"], "Precisions to time (float32, bfloat16, float16).")
    flags.DEFINE_list("upsampling", ["fused", "plain"], "Decoder upsampling forms to time (fused, plain).")
    flags.DEFINE_integer("aggan_scheme", 2, "AttentionGAN scheme.")
    flags.DEFINE_integer("resnet_blocks", 9, "CycleGAN/AttentionGAN residual blocks (9: the reference's ResNet-9).")
    flags.DEFINE_integer("rounds", 2, "Rounds over the variants; the best of each is reported.", lower_bound=1)
    flags.DEFINE_bool("reference", False, "Also time the PyTorch reference (benchmarks/torch_reference.py, "
                      "the bench extra) in every round, and print each variant's ratio to it.")
    flags.DEFINE_list("reference_precisions", ["float32", "bfloat16"],
                      "Precisions of the PyTorch reference (bfloat16: CPU autocast).")
    flags.DEFINE_multi_string("args", [""], "Constructor arguments of one variant of the model, as name=value "
                              "pairs joined by commas (values are Python literals; '' = the defaults). Repeat "
                              "the flag to time several variants in the same rounds, e.g. a loss term's cost.")
    flags.DEFINE_bool("flops", True, "Count the step's FLOPs (TensorFlow's profiler) and print the "
                      "fraction of the CPU's FMA peak reached.")


FLAGS = flags.FLAGS


def fake_batch(kind, size, batch):
    rng = np.random.default_rng(0)
    image = lambda: rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)  # noqa: E731
    if kind == "paired":
        return {"masked": image(), "target": image(),
                "mask_map": (rng.uniform(size=(batch, size, size, 1)) > 0.5).astype(np.float32)}
    return {"a": image(), "b": image()}


def parse_args(text):
    """{name: value} from "name=value,name=value" (values as Python literals, else strings)."""
    arguments = {}
    for pair in filter(None, text.split(",")):
        name, _, value = pair.partition("=")
        try:
            arguments[name.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            arguments[name.strip()] = value.strip()
    return arguments


def build(precision, upsampling, args=""):
    arguments = {"image_size": FLAGS.image_size, "upsampling": upsampling, **parse_args(args)}
    if FLAGS.model != "pix2pix":
        arguments["resnet_blocks"] = FLAGS.resnet_blocks
    if FLAGS.model == "aggan":
        arguments["aggan_scheme"] = FLAGS.aggan_scheme
    model = models.build(FLAGS.model, arguments, dtype=PRECISIONS[precision])
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    return model


def images_per_second(precision, upsampling, args=""):
    """Batch size over the median time of ``--steps`` training steps (``train_on_batch`` on one
    in-memory batch) after ``--warmup`` untimed ones."""
    model = build(precision, upsampling, args)
    batch = fake_batch(model.DATA, FLAGS.image_size, FLAGS.batch_size)
    return FLAGS.batch_size / median_seconds(lambda: model.train_on_batch(batch), FLAGS.steps, FLAGS.warmup)


def median_seconds(run, repeats, warmup):
    """Median wall time of ``repeats`` calls of ``run`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def step_flops(upsampling, args=""):
    """Floating-point operations of one training step, from the traced graph (TensorFlow's
    profiler counts convolutions forward and backward, matrix products and element-wise ops)."""
    model = build("float32", upsampling, args)
    batch = {k: tf.constant(v) for k, v in fake_batch(model.DATA, FLAGS.image_size, FLAGS.batch_size).items()}
    graph = tf.function(model.train_step).get_concrete_function(batch).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder(
        tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


def fma_peak():
    """(FLOP/s, how it was reckoned): cores x clock x FMA lanes x 2 FMA units x 2 FLOPs."""
    from tfunmask import cpu

    lanes = 16 if "avx512f" in cpu.flags() else 8 if "fma" in cpu.flags() else 4
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    if "CPU max MHz" in fields:
        ghz, source = float(fields["CPU max MHz"]) / 1000, "lscpu max MHz"
    else:
        ghz, source = float(fields.get("BogoMIPS", "0")) / 2000, "BogoMIPS / 2"
    cores = os.cpu_count()
    return cores * ghz * 1e9 * lanes * 2 * 2, (f"{cores} cores x {ghz:.2f} GHz ({source}) x {lanes} fp32 lanes "
                                               "x 2 FMA units x 2")


def gemm_rate(n=2048, repeats=10):
    """FLOP/s of TensorFlow's own float32 matrix product (n x n by n x n, median of ``repeats``):
    what this CPU delivers to the best-case op. Virtual machines hide the clock the cores actually
    run at (BogoMIPS gives the base clock, turbo runs above it), so the step is also compared to
    this measured ceiling."""
    rng = np.random.default_rng(0)
    a, b = (tf.constant(rng.standard_normal((n, n)), tf.float32) for _ in range(2))
    return 2 * n ** 3 / median_seconds(lambda: tf.matmul(a, b).numpy(), repeats, warmup=1)


def label(precision, form, args):
    return f"tfunmask {precision} {form}" + (f" {args}" if args else "")


def main(_):
    print(f"{FLAGS.model} {FLAGS.image_size}px batch {FLAGS.batch_size}, {FLAGS.steps} steps, "
          f"{os.cpu_count()} CPUs, TF {tf.__version__}")
    keys = list(itertools.product(FLAGS.precisions, FLAGS.upsampling, FLAGS.args))
    variants = {label(*key): functools.partial(images_per_second, *key) for key in keys}
    if FLAGS.reference:
        import torch

        import torch_reference  # beside this script

        step = torch_reference.make_step(FLAGS.model if FLAGS.model == "pix2pix" else "cyclegan",
                                         FLAGS.image_size, blocks=FLAGS.resnet_blocks)
        for precision in FLAGS.reference_precisions:
            variants[f"pytorch {torch.__version__} {precision}"] = functools.partial(
                torch_reference.images_per_second, step, FLAGS.image_size, FLAGS.batch_size, FLAGS.steps,
                FLAGS.warmup, precision)
    best = {}
    for round_ in range(1, FLAGS.rounds + 1):
        for name, run in variants.items():
            rate = run()
            best[name] = max(rate, best.get(name, 0.0))
            print(f"round {round_} {name:>34}: {rate:7.3g} images/s", flush=True)
    references = {name.rsplit(" ", 1)[1]: rate for name, rate in best.items() if name.startswith("pytorch")}
    # each --args variant against the first one at the same precision and upsampling
    first = {label(*key): best[label(*key[:2], FLAGS.args[0])] for key in keys if key[2] != FLAGS.args[0]}
    print(f"best of {FLAGS.rounds} round(s):")
    for name, rate in best.items():
        ratios = [f"{rate / reference:.2f}x PyTorch {precision}" for precision, reference in references.items()]
        if name in first:
            ratios.append(f"{rate / first[name]:.2f}x with --args={FLAGS.args[0]!r}")
        print(f"{name:>34}: {rate:7.3g} images/s" + (f" ({', '.join(ratios)})" if ratios else ""), flush=True)
    if FLAGS.flops:
        peak, how = fma_peak()
        gemm = gemm_rate()
        print(f"FMA peak {peak / 1e9:.0f} GFLOP/s: {how}; a 2048^3 float32 matrix product runs at "
              f"{gemm / 1e9:.0f} GFLOP/s")
        for form, args in itertools.product(FLAGS.upsampling, FLAGS.args):
            name = label("float32", form, args)
            flops = step_flops(form, args)
            share = ""
            if name in best:
                achieved = flops * best[name] / FLAGS.batch_size
                share = (f", {achieved / 1e9:.0f} GFLOP/s at float32: {achieved / peak:.1%} of the FMA peak, "
                         f"{achieved / gemm:.1%} of the matrix product's rate")
            print(f"{name.removeprefix('tfunmask float32 ')}: {flops / 1e9:.1f} GFLOP per step "
                  f"(batch {FLAGS.batch_size}){share}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
