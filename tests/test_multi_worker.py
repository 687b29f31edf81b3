"""Multi-worker training (``--strategy=multi_worker``): two local workers (a chief and a worker on
free 127.0.0.1 ports, ``TF_CONFIG`` set per process, as in the README) train the same steps as one
process on the same global batch of 4, end with bitwise-identical weights, and only the chief
writes the run folder; a resumed 2-worker run continues where the first stopped.

Each worker runs the real program (``python -m tfunmask.train``), wrapped only to dump its final
weights; every process has a hard deadline and is killed past it.

Tolerance: ``UPDATE_TOLERANCE``/``STATE_TOLERANCE`` of ``tests.training_helpers``, whose comment
derives them. A cluster differs from one process exactly as two replicas in one process do: each
device convolves 2 examples instead of 4 (oneDNN rounds per batch shape, ~1e-6 of the forward
values), and the gradients and synchronised batch-norm statistics are summed over replicas in
another order (a few float32 ulps per summed term); where that rounding puts a pre-activation on the
other side of a ReLU or L1 kink the update jumps by ~1e-3 (relative L2). Here the steps follow each
other instead of restarting from one state, so a crossing also shifts the next step's start, by
~1e-4 of the weights per 1e-3: still far below 1e-2 over these 2-step epochs. The workers
themselves must agree bitwise: the all-reduce hands both the same sums. Measured on 2 cores:
Pix2Pix relative update gap 3.2e-5 after epoch 1 and 2.2e-5 after the resumed epoch 2 (largest
weight difference 2.7e-6), AttentionGAN 1.7e-5 (1.2e-6; 2.1e-3 and 1.7e-4 with 8 filters and 2
blocks: a kink crossing; 4.2e-6 and 1.9e-7 without attention-guided discriminators, as now); with
auto-sharding off (each worker training on other examples than its share of the global batch)
Pix2Pix's gap is 1.07. Time on the idle 2-core machine: Pix2Pix 75 s, AttentionGAN 79 s (101 s
with the attention-guided pair), the missing worker 13 s, the busy address 8 s. The one-process
reference runs its steps eagerly (``running_eagerly``): the workers run the program's traced steps.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from tests.conftest import REPO
from tests.training_helpers import STATE_TOLERANCE, UPDATE_TOLERANCE, running_eagerly
from tfunmask.config import ConfigError
from tfunmask.training.cluster import local_tf_configs, read_tf_config

DEADLINE = 600  # seconds for a whole cluster run: only a guard against a hang (measured: ~50 s for 2
# Pix2Pix steps on 2 idle cores; 240 s was overrun when trainings shared the cores)

WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    from tfunmask import train
    from tfunmask.training import trainer

    dump, flags = sys.argv[1], sys.argv[2:]
    fit = trainer.train

    def train_and_dump(*args, **kwargs):
        model, summary = fit(*args, **kwargs)
        np.savez(dump, *model.get_weights())
        return model, summary

    trainer.train = train_and_dump
    sys.argv = ["tfunmask.train", *flags]
    train.run()
""")


def run_cluster(folder, flags, model_dirs, *, tasks=("chief", "worker"), timeout=DEADLINE, tf_configs=None):
    """Runs one ``tfunmask.train`` process per task of a local cluster (``tf_configs``, chief
    first; default: a new one on free ports), each with its own ``--model_dir`` from
    ``model_dirs`` and its own TMPDIR in ``folder``; returns {task: (exit code, output, weights or
    None)}. Every process is killed ``timeout`` seconds after the start."""
    processes = {}
    for task, tf_config in zip(tasks, tf_configs or local_tf_configs(2)):
        (folder / f"{task}_tmp").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TMPDIR": str(folder / f"{task}_tmp"), "TF_CONFIG": tf_config}
        log = open(folder / f"{task}.log", "w")
        processes[task] = (subprocess.Popen(
            [sys.executable, "-c", WORKER, str(folder / f"{task}.npz"), "--strategy=multi_worker",
             f"--model_dir={model_dirs[task]}", *flags],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT), log)
    deadline = time.monotonic() + timeout
    results = {}
    try:
        for task, (process, log) in processes.items():
            process.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        for task, (process, log) in processes.items():
            if process.poll() is None:
                process.kill()
            process.wait()
            log.close()
            dump = folder / f"{task}.npz"
            weights = list(np.load(dump).values()) if dump.exists() else None
            results[task] = (process.returncode, (folder / f"{task}.log").read_text(), weights)
    return results


def one_process(config_values, tmp_path):
    """Trains in this process on one device, eagerly; returns (initial, per-epoch weights, trainable mask)."""
    from tfunmask.config import TrainConfig
    from tfunmask.training import trainer

    snapshots = []

    class Snapshot(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if not snapshots:
                snapshots.append(self.model.get_weights())

        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(self.model.get_weights())

    config = TrainConfig.create(**config_values, model_dir=str(tmp_path / "one"), strategy="one_device",
                                export=False)
    with running_eagerly():  # the reference: the cluster's workers run the traced steps
        model, _ = trainer.train(config, verbose=0, callbacks=[Snapshot()])
    trainable = [any(v is w for w in model.trainable_variables) for v in model.weights]
    return snapshots[0], snapshots[1:], trainable


def gaps(initial, reference, cluster, trainable):
    """(relative L2 of the trainable weights' difference to the reference's update, largest
    difference of non-trainable float state, largest absolute weight difference)."""
    def l2(arrays):
        return float(np.sqrt(sum(np.sum(np.square(a, dtype=np.float64)) for a in arrays)))

    pairs = list(zip(initial, reference, cluster, trainable))
    update = l2([r - i for i, r, _, t in pairs if t])
    gap = l2([r - c for _, r, c, t in pairs if t])
    state = max([float(np.abs(r - c).max()) for _, r, c, t in pairs
                 if not t and r.size and np.issubdtype(r.dtype, np.floating)], default=0.0)
    return gap / update, state, max(float(np.abs(r - c).max()) for _, r, c, _ in pairs if r.size)


def assert_cluster_equals(results, initial, reference, trainable):
    for task, (code, output, _) in results.items():
        assert code == 0, f"{task}:\n{output[-3000:]}"
    chief, worker = results["chief"][2], results["worker"][2]
    assert all(np.array_equal(a, b) for a, b in zip(chief, worker))  # the all-reduce gives both the same
    update, state, largest = gaps(initial, reference, chief, trainable)
    print(f"relative update gap {update:.2e}, state gap {state:.2e}, max abs weight difference {largest:.2e}")
    assert update < UPDATE_TOLERANCE and state < STATE_TOLERANCE, (update, state, largest)


def flags_of(values):
    return [f"--{name}={value}" for name, value in values.items()] + ["--progress=epoch"]


@pytest.mark.parametrize("text, message", [
    ("{", "TF_CONFIG is not JSON"),
    ('{"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}', "only chief and worker"),
    ('{"cluster": {"worker": "h:1"}, "task": {"type": "worker", "index": 0}}', "must list host:port"),
    ('{"cluster": {"worker": ["h:1", "h:99999"]}, "task": {"type": "worker", "index": 0}}', "is not host:port"),
    ('{"cluster": {"worker": ["h:1", "h:1"]}, "task": {"type": "worker", "index": 0}}', "distinct addresses"),
    ('{"cluster": {"worker": ["h:1", "h:2"]}}', '"task" must name'),
    ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}', "out of range"),
    ('{"cluster": {"chief": ["h:1", "h:2"]}, "task": {"type": "chief", "index": 0}}', "at most one chief"),
])
def test_a_misdescribed_cluster_is_a_one_line_error(text, message):
    with pytest.raises(ConfigError, match=message) as error:
        read_tf_config(text)
    assert "\n" not in str(error.value)


def test_tf_config_without_a_cluster_means_one_machine():
    assert read_tf_config("") is None and read_tf_config('{"task": {"type": "worker"}}') is None
    assert read_tf_config('{"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, '
                          '"task": {"type": "worker", "index": 0}}') == (
        {"chief": ["a:1"], "worker": ["b:2"]}, ("worker", 0))


def test_a_missing_worker_fails_within_the_timeout(tiny_paired_data, tmp_path):
    """The chief of a 2-task cluster whose worker never starts gives up after --cluster_timeout
    with one line naming the missing address, instead of waiting (TensorFlow's default: an hour)."""
    start = time.monotonic()
    results = run_cluster(tmp_path, [f"--data={tiny_paired_data}", "--image_size=32", "--filters=4",
                                     "--cluster_timeout=5"], {"chief": tmp_path / "run"}, tasks=("chief",),
                          timeout=120)
    code, output, _ = results["chief"]
    assert code == 2 and time.monotonic() - start < 60, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "did not come together within 5 s" in errors[0], output[-3000:]


def test_a_busy_own_address_is_a_one_line_error(tiny_paired_data, tmp_path):
    tf_configs = local_tf_configs(2)
    address = json.loads(tf_configs[0])["cluster"]["chief"][0]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", int(address.rsplit(":", 1)[1])))
        busy.listen()
        results = run_cluster(tmp_path, [f"--data={tiny_paired_data}", "--image_size=32", "--filters=4",
                                         "--cluster_timeout=60"], {"chief": tmp_path / "run"}, tasks=("chief",),
                              timeout=120, tf_configs=tf_configs)
    code, output, _ = results["chief"]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    expected = (f"error: cannot listen on {address}, this task's address in TF_CONFIG: "
                "is it this machine's, and is the port free?")
    assert code == 2 and errors == [expected], output[-3000:]


def test_pix2pix_on_two_workers_equals_one_process_and_resumes(tiny_paired_data, tmp_path):
    """Epoch 1 (2 steps) on two workers, each with its own run folder as on two hosts: both end
    with the weights of one process; the worker's folder stays empty and its temporary
    checkpoints are removed. Epoch 2 resumes on both workers from the chief's folder (shared
    storage) and again equals the uninterrupted single process (without validating: the first epoch
    validated on the cluster, and a validation pass changes no weights)."""
    values = dict(model="pix2pix", data=str(tiny_paired_data), image_size=32, filters=8, dropout=0.0,
                  batch_size=4, steps_per_epoch=2, epochs=2, decay_epochs=0, mixed_precision="none",
                  summary_every=1, image_every=2)
    initial, epochs, trainable = one_process(values, tmp_path)
    run, elsewhere = tmp_path / "run", tmp_path / "worker_host_run"
    flags = flags_of({**values, "epochs": 1})
    first = run_cluster(tmp_path / "first", flags, {"chief": run, "worker": elsewhere})
    assert_cluster_equals(first, initial, epochs[0], trainable)
    assert not elsewhere.exists() and not any((tmp_path / "first" / "worker_tmp").iterdir())
    assert {p.name for p in run.iterdir()} >= {"config.json", "summary.json", "checkpoints", "logs", "samples",
                                                "saved_model"}
    assert "SavedModel:" in first["chief"][1] and "SavedModel:" not in first["worker"][1]
    assert "trained " in first["chief"][1] and "worker done: epochs 0..1" in first["worker"][1]

    second = run_cluster(tmp_path / "second", ["--resume", "--epochs=2", "--noexport", "--validation_steps=0",
                                               "--progress=epoch"], {"chief": run, "worker": run})
    assert_cluster_equals(second, initial, epochs[1], trainable)
    assert json.loads((run / "summary.json").read_text())["start_epoch"] == 1


def test_attentiongan_on_two_workers_equals_one_process(tiny_unpaired_data, tmp_path):
    """Both generators with their attention masks, both discriminators and their history pools, on
    a cluster. Without the attention-guided discriminators: their terms are reduced like every other
    (test_replicas checks them over two replicas), and each worker would trace them too. No
    validation pass either: the Pix2Pix test validates on a cluster."""
    values = dict(model="aggan", data=str(tiny_unpaired_data), image_size=32, filters=4, resnet_blocks=1,
                  pool_size=2, attention_masks=2, lambda_attention_gan=0.0, batch_size=4, steps_per_epoch=2,
                  validation_steps=0, epochs=1, decay_epochs=0, mixed_precision="none")
    initial, epochs, trainable = one_process(values, tmp_path)
    results = run_cluster(tmp_path, flags_of({**values, "export": False}),
                          {"chief": tmp_path / "run", "worker": tmp_path / "run"})
    assert_cluster_equals(results, initial, epochs[0], trainable)


def test_strategy_auto_joins_the_cluster_tf_config_names(monkeypatch):
    """auto: a cluster in TF_CONFIG means multi-worker training; multi_worker without one is refused."""
    from tfunmask.training import cluster, hardware

    monkeypatch.setattr(cluster, "join", lambda cluster, task, timeout: ("joined", task, timeout))
    monkeypatch.setenv("TF_CONFIG", local_tf_configs(2)[1])
    assert hardware.make_strategy("auto", cluster_timeout=7) == ("joined", ("worker", 0), 7)
    monkeypatch.delenv("TF_CONFIG")
    assert type(hardware.make_strategy("auto")).__name__ in ("OneDeviceStrategy", "MirroredStrategy")
    with pytest.raises(ConfigError, match="--strategy=multi_worker needs TF_CONFIG"):
        hardware.make_strategy("multi_worker")
