"""Step time of multi-worker training (MultiWorkerMirroredStrategy, 2 workers on this machine)
against one process, both training the same global batch with ``python -m tfunmask.train``.

    python benchmarks/multi_worker.py --model=pix2pix --image_size=64 --batch_size=8 --steps=20

Each configuration runs the real program on the built-in demo set (built once, before the
timing) and reports the step time ``fit`` measured (``summary.json``'s images/s, which leaves out
each epoch's first step: tracing, pipeline start and, on a cluster, the first collectives). On one
machine the two workers share its cores and talk over loopback gRPC, so the cluster is expected to
be slower than one process that already uses every core: the figure is the cost of the
all-reduce and of synchronising two processes, not a speed-up. The speed-up comes from hosts
with their own cores or GPUs.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_enum("model", "pix2pix", ["pix2pix", "cyclegan", "aggan"], "Model to time.")
    flags.DEFINE_integer("image_size", 64, "Image size.")
    flags.DEFINE_integer("filters", 32, "Width of the first layer of every network.")
    flags.DEFINE_integer("batch_size", 8, "Global batch size (split over the workers).")
    flags.DEFINE_integer("steps", 20, "Steps timed per configuration (one epoch).")
    flags.DEFINE_integer("timeout", 900, "Seconds before a configuration's processes are killed.")


def train_command(model_dir, data):
    return [sys.executable, "-m", "tfunmask.train", f"--model={FLAGS.model}", f"--data={data}",
            f"--model_dir={model_dir}", f"--image_size={FLAGS.image_size}", f"--filters={FLAGS.filters}",
            f"--batch_size={FLAGS.batch_size}", f"--steps_per_epoch={FLAGS.steps}", "--epochs=1",
            "--decay_epochs=0", "--mixed_precision=none", "--noexport", "--progress=none"]


def run(model_dir, data, tf_configs, strategy):
    """Trains one epoch with one process per ``TF_CONFIG`` (None: one process, no cluster);
    returns (seconds per step, wall seconds)."""
    start = time.perf_counter()
    processes = []
    for tf_config in tf_configs:
        env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
        if tf_config:
            env["TF_CONFIG"] = tf_config
        processes.append(subprocess.Popen([*train_command(model_dir, data), f"--strategy={strategy}"],
                                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          text=True))
    try:
        errors = [p.communicate(timeout=FLAGS.timeout)[1] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for p, error in zip(processes, errors):
        if p.returncode:
            sys.exit(f"training failed:\n{error[-2000:]}")
    rate = json.loads((Path(model_dir) / "summary.json").read_text())["images_per_s"]
    return FLAGS.batch_size / rate, time.perf_counter() - start


def main(argv):
    del argv
    from tfunmask import models
    from tfunmask.synth import demo
    from tfunmask.training.cluster import local_tf_configs

    data = demo.build(size=FLAGS.image_size, kind=models.model_class(FLAGS.model).DATA)
    with tempfile.TemporaryDirectory() as folder:
        one, one_wall = run(f"{folder}/one", data, [None], "one_device")
        two, two_wall = run(f"{folder}/two", data, local_tf_configs(2), "multi_worker")
    print(f"{FLAGS.model} {FLAGS.image_size} px, filters {FLAGS.filters}, global batch {FLAGS.batch_size}, "
          f"{FLAGS.steps} steps, {os.cpu_count()} CPU cores")
    print(f"1 process:             {one * 1000:8.1f} ms/step  ({one_wall:.0f} s wall, start-up included)")
    print(f"2 workers (127.0.0.1): {two * 1000:8.1f} ms/step  ({two_wall:.0f} s wall, start-up and "
          f"cluster join included)  {two / one:.2f}x the single-process step")


if __name__ == "__main__":
    define_flags()
    app.run(main)
