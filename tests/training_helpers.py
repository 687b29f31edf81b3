"""Shared by the training tests: a stand-in crash, and checks that need a fresh interpreter.

Logical CPU devices must be configured before TensorFlow initialises, and a resume is only real
in a new process, so those checks run as scripts (``run_script``) that import this module.
"""

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


def replica_report(build, data, **compile_options):
    """Two SGD steps on the global batch ``data`` from the same initial weights, on one device and
    with MirroredStrategy over two logical CPUs: {"replicas": [1, 2], "diff": the largest weight
    difference between the two, "moved": the largest update of a trainable weight}."""
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    reference = build()
    initial = reference.get_weights()
    trainable = [any(v is w for w in reference.trainable_variables) for v in reference.weights]

    def run(strategy):
        with strategy.scope():
            model = build()
            model.set_weights(initial)
            model.compile(keras.optimizers.SGD(1e-3), keras.optimizers.SGD(1e-3), **compile_options)
        model.fit(tf.data.Dataset.from_tensors(data).repeat(2), epochs=1, verbose=0)
        return model.get_weights(), strategy.num_replicas_in_sync

    one, n1 = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
    two, n2 = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    moved = max(float(np.abs(a - b).max()) for a, b, t in zip(one, initial, trainable) if t)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(one, two))
    return {"replicas": [n1, n2], "diff": diff, "moved": moved}
