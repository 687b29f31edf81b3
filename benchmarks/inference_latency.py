"""Inference latency per face crop and file size of every export format.

    python benchmarks/inference_latency.py --image_size=256 --filters=64

Builds a freshly initialised generator (or restores ``--model_dir``), exports it in every format
with ``tfunmask.serving.exporter`` into a temporary folder, and times one crop at a time through the
same backends the unmasker uses: Keras, SavedModel (both on TensorFlow's own thread pool) and
LiteRT for each TFLite file at each ``--threads`` count. Latency does not depend on the weights
or the pixel values, so random ones serve. Runs are interleaved round-robin, so a load spike from
other processes hits every backend alike; the table gives the median and the best run, and the
load average before and after (the machine may be shared). ``cpu ms`` is the median CPU time the
process used per crop, summed over its threads: waiting for a busy core does not count, so on a
loaded machine a one-thread backend's cpu ms is its latency on an idle core. ``partitions`` is the
number of XNNPACK delegate pieces a TFLite graph ran in (1: one contiguous piece; only the input
cast and the output rounding run outside it).
"""

import os
import tempfile
import time

from tfunmask import startup  # noqa: E402

startup.load_tensorflow()  # before anything imports TensorFlow: no native start-up lines

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from tfunmask import models  # noqa: E402
from tfunmask.inference import generators  # noqa: E402
from tfunmask.serving import exporter  # noqa: E402


def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_enum("model", "pix2pix", ["pix2pix", "cyclegan", "aggan"], "Generator to time.")
    flags.DEFINE_integer("image_size", 256, "Crop size.")
    flags.DEFINE_integer("filters", 64, "Generator width (64 = full size).")
    flags.DEFINE_string("model_dir", None, "Time this training run's generator instead of a fresh one.")
    flags.DEFINE_list("threads", ["1", "2"], "LiteRT thread counts.")
    flags.DEFINE_integer("repeats", 10, "Timed runs per backend.")
    flags.DEFINE_integer("calibration_samples", 4, "Random crops that calibrate full-integer int8.")


FLAGS = flags.FLAGS


def load_average():
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def build_generator():
    if FLAGS.model_dir:
        from tfunmask import runs

        return runs.restore(FLAGS.model_dir)[0].export_generator()
    return models.build(FLAGS.model, {"image_size": FLAGS.image_size, "filters": FLAGS.filters}).export_generator()


def partitions(generator):
    """XNNPACK delegate pieces of a TFLite generator ('' for other backends)."""
    if not isinstance(generator, generators.TFLiteGenerator):
        return ""
    return sum(op["op_name"] == "DELEGATE" for op in generator._interpreter._get_ops_details())  # noqa: SLF001


def backends(generator, paths):
    """{name: (generator, file size)} for every backend and thread count."""
    timed = {"keras": (generators.KerasGenerator(generator), exporter.disk_size(paths["keras"])),
             "saved_model": (generators.SavedModelGenerator(paths["saved_model"]),
                             exporter.disk_size(paths["saved_model"]))}
    for fmt in exporter.TFLITE_FORMATS:
        for threads in map(int, FLAGS.threads):
            timed[f"tflite {fmt} x{threads}"] = (generators.TFLiteGenerator(paths[fmt], threads),
                                                 exporter.disk_size(paths[fmt]))
    return timed


def main(_):
    rng = np.random.default_rng(0)
    generator = build_generator()
    size = generator.input_shape[1]
    crop = rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    calibration = rng.integers(0, 256, (FLAGS.calibration_samples, size, size, 3), dtype=np.uint8)
    print(f"{FLAGS.model_dir or FLAGS.model} generator, {size} px, {generator.count_params() / 1e6:.1f} M "
          f"parameters, {os.cpu_count()} CPUs; load average before: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tfunmask-latency-") as folder:
        paths = dict(exporter.export_generator(generator, folder, exporter.FORMATS,
                                                 calibration=calibration))
        timed = backends(generator, paths)
        times = {name: [] for name in timed}
        cpu_times = {name: [] for name in timed}
        for name, (backend, _) in timed.items():
            backend(crop)  # warm-up: tracing, delegate set-up
        for _ in range(FLAGS.repeats):
            for name, (backend, _) in timed.items():
                start, cpu_start = time.perf_counter(), time.process_time()
                backend(crop)
                times[name].append(1000 * (time.perf_counter() - start))
                cpu_times[name].append(1000 * (time.process_time() - cpu_start))
        print(f"{'backend':<24} {'median ms':>9} {'best ms':>8} {'cpu ms':>7} {'size MB':>8} {'partitions':>10}")
        for name, (backend, size_bytes) in timed.items():
            print(f"{name:<24} {np.median(times[name]):>9.1f} {min(times[name]):>8.1f} "
                  f"{np.median(cpu_times[name]):>7.1f} {size_bytes / 2 ** 20:>8.2f} {partitions(backend):>10}")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
