"""Shared by the training tests: a stand-in crash, eager steps, and checks that need a fresh interpreter.

Logical CPU devices must be configured before TensorFlow initialises, and a resume is only real
in a new process, so those checks run as scripts (``run_script``) that import this module.
"""

import contextlib
import json
import subprocess
import sys

import keras
import numpy as np

from tests.conftest import REPO


class Crash(Exception):
    """Stands in for a crash right after the first epoch's checkpoint."""


class CrashAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise Crash()


@contextlib.contextmanager
def running_eagerly():
    """Runs ``tf.function``s eagerly inside the block (tf.data's functions stay traced).

    For tests of what training does with its configuration (run folders, warm starts, resumes,
    guidance terms logged) over a few steps: tracing a step's graph costs far more than running
    it at 32 px (one AttentionGAN step: ~19k graph ops, ~16 s of tracing). Every model's traced
    step is still trained by the command-line, replica and multi-worker tests.
    """
    import tensorflow as tf

    before = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(before)


def run_script(script, *args, timeout=600):
    """Runs Python ``script`` with ``args`` in a fresh interpreter from the repository root;
    returns the JSON of its last stdout line (None if it printed nothing)."""
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                            timeout=timeout, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def two_logical_cpus():
    """Splits the CPU into two logical devices (call before TensorFlow runs anything)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


# Tolerances of ``replica_report``, from what float32 can and cannot promise here:
# * Forward-only state (pooled images in [-1, 1], batch-norm statistics) is a continuous function of
#   the weights: two layouts differ only by rounding, which oneDNN makes depend on the batch each
#   device sees (~1e-6 for these nets). 1e-4 is 100x that; a wrong pool draw moves a pixel by O(1).
# * Trainable updates are not continuous: at a ReLU kink or where an L1 residual is 0 the gradient
#   jumps, and a pre-activation within rounding (~1e-6) of 0 can fall on either side in the two
#   layouts. With ~1e6 unit evaluations per step a few such crossings are expected; each moves a
#   small net's update by ~1e-3 in relative L2 (measured: one crossing in a CycleGAN step, 1.1e-3;
#   none, 5e-6). 1e-2 allows ~10 crossings; a replica count ignored in a mean is 1e0.
# Each step starts both layouts from the same state, so a crossing in one step is not compounded by
# the next (it perturbs the weights by ~1e-4 of their size, which crosses hundreds of kinks).
STATE_TOLERANCE = 1e-4
UPDATE_TOLERANCE = 1e-2


def replica_report(build, data, *, steps=2, **compile_options):
    """``steps`` SGD steps on the global batch ``data``, each run from the same state (weights, pools,
    step counter: the one-device run's) on one device and with MirroredStrategy over two logical CPUs.

    Returns {"replicas": [1, 2], "update": the largest relative L2 difference of the trainable
    update, "moved": the smallest relative L2 size of an update (the steps really train), "state":
    the largest difference of a non-trainable float weight (pooled pixels, batch-norm statistics),
    "counts": whether integer state (pool fill counts) agreed}.
    """
    import tensorflow as tf

    def compiled(strategy):
        with strategy.scope():
            model = build()
            model.compile(keras.optimizers.SGD(1e-3), keras.optimizers.SGD(1e-3), **compile_options)
        return model

    # One model per layout, its step traced once and reused: each step only loads the state, which
    # starts as the one-device model's initial weights.
    keras.utils.set_random_seed(0)
    layouts = [compiled(tf.distribute.OneDeviceStrategy("/cpu:0")),
               compiled(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]
    trainable = [any(v is w for w in layouts[0].trainable_variables) for v in layouts[0].weights]
    state = layouts[0].get_weights()

    def step(model, weights, iterations):
        model.set_weights(weights)
        for optimizer in (model.g_optimizer, model.d_optimizer):
            optimizer.iterations.assign(iterations)
        model.fit(tf.data.Dataset.from_tensors(data), epochs=1, verbose=0)
        return model.get_weights(), model.distribute_strategy.num_replicas_in_sync

    def l2(arrays):
        return float(np.sqrt(sum(np.sum(np.square(a, dtype=np.float64)) for a in arrays)))

    report = {"update": 0.0, "moved": np.inf, "state": 0.0, "counts": True}
    for i in range(steps):
        one, n1 = step(layouts[0], state, i)
        two, n2 = step(layouts[1], state, i)
        update = [a - s for a, s, t in zip(one, state, trainable) if t]
        gap = [a - b for a, b, t in zip(one, two, trainable) if t]
        report["update"] = max(report["update"], l2(gap) / l2(update))
        report["moved"] = min(report["moved"], l2(update) / l2([s for s, t in zip(state, trainable) if t]))
        for a, b, t in zip(one, two, trainable):
            if t or not a.size:
                continue
            if np.issubdtype(a.dtype, np.floating):
                report["state"] = max(report["state"], float(np.abs(a - b).max()))
            else:
                report["counts"] = report["counts"] and bool(np.array_equal(a, b))
        state = one
    return {"replicas": [n1, n2], **report}
