"""The training library behind ``python -m tfunmask.train``.

``train(config)`` chooses the precision and the distribution strategy, builds
the model and its optimizers inside the strategy scope, restores the latest
checkpoint on ``resume``, and runs ``fit`` one epoch at a time (the traced step
is reused across calls). Each epoch's batches come from the pipeline seeded
with ``seed + epoch``, so a run resumed from an epoch checkpoint sees exactly
the batches the uninterrupted run saw, with the same learning rate (the
schedule reads the restored step counter) and the same dropout masks (their
seed states are checkpointed).
"""

import json
from pathlib import Path

import keras
import tensorflow as tf

from tfunmask import export_lib, models
from tfunmask.callbacks import EpochCheckpoint, RunProgbar, TensorBoardSummaries, Throughput
from tfunmask.config import ConfigError, TrainConfig
from tfunmask.data import pipeline, tfrecords

CHECKPOINTS = "checkpoints"
PRECISIONS = {"none": "float32", "float32": "float32", "bfloat16": "mixed_bfloat16",
              "float16": "mixed_float16"}


def cpu_has_bf16():
    """True when the CPU has bfloat16 matrix instructions (AMX or AVX512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def precision_policy(name):
    """Keras dtype policy for ``--mixed_precision``; "auto" picks float16 on GPUs,
    bfloat16 on CPUs that have bf16 instructions, float32 otherwise."""
    if name == "auto":
        if tf.config.list_physical_devices("GPU"):
            return "mixed_float16"
        return "mixed_bfloat16" if cpu_has_bf16() else "float32"
    if name not in PRECISIONS:
        raise ConfigError(f"--mixed_precision must be auto, none, bfloat16 or float16 (got {name!r})")
    return PRECISIONS[name]


def make_strategy(name):
    """``--strategy``: mirrored over all GPUs (or all logical CPUs when there is no
    GPU), one device, or auto (mirrored when a GPU is visible)."""
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if gpus else "one_device"
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    raise ConfigError(f"--strategy must be auto, mirrored or one_device (got {name!r})")


@keras.saving.register_keras_serializable("tfunmask")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Constant learning rate, then linear decay to 0 over the last ``decay_steps``."""

    def __init__(self, initial, total_steps, decay_steps):
        self.initial = initial
        self.total_steps = total_steps
        self.decay_steps = decay_steps

    def __call__(self, step):
        if not self.decay_steps:
            return tf.constant(self.initial, tf.float32)
        remaining = tf.cast(self.total_steps, tf.float32) - tf.cast(step, tf.float32)
        return self.initial * tf.clip_by_value(remaining / self.decay_steps, 0.0, 1.0)

    def get_config(self):
        return {"initial": self.initial, "total_steps": self.total_steps,
                "decay_steps": self.decay_steps}


def make_optimizer(config, steps_per_epoch, policy):
    """Adam with the linear-decay schedule; loss-scaled under float16."""
    schedule = LinearDecay(config.lr, config.epochs * steps_per_epoch,
                           config.decay_epochs * steps_per_epoch)
    optimizer = keras.optimizers.Adam(schedule, beta_1=config.beta_1)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def resolve_data(config):
    """The TFRecord folder to train on: ``--data`` or the built-in demo set of the model's kind."""
    if config.data:
        return Path(config.data)
    from tfunmask.data import demo

    return demo.build(size=config.image_size, seed=config.seed, kind=models.REGISTRY[config.model].DATA)


def _files(data_dir, kind, split):
    """Shard lists of one split: ``[paired]`` or ``[domain A, domain B]``."""
    if kind == "paired":
        return [tfrecords.paired_files(data_dir, split)]
    return [tfrecords.unpaired_files(data_dir, split, domain) for domain in ("A", "B")]


def _dataset(config, kind, files, *, training, seed):
    """Training data repeat endlessly (``fit`` takes ``steps_per_epoch`` batches); eval data once."""
    common = dict(image_size=config.image_size, load_size=config.resolved_load_size,
                  batch_size=config.batch_size, training=training, seed=seed, repeat=training)
    if kind == "paired":
        return pipeline.paired(*files, **common)
    return pipeline.unpaired(*files, **common)


def count_steps(config, kind, files):
    """Steps per epoch: ``--steps_per_epoch`` or one pass over the (larger) training set."""
    if config.steps_per_epoch:
        return config.steps_per_epoch
    counts = [pipeline.count_records(group) for group in files]
    steps = max(counts) // config.batch_size
    if steps < 1:
        raise ConfigError(f"the training set ({max(counts)} examples) is smaller than one batch "
                          f"(--batch_size={config.batch_size})")
    return steps


def prepare_model_dir(config, resume):
    """Checks the run directory against ``--resume`` and saves the configuration."""
    model_dir = Path(config.model_dir)
    has_checkpoint = tf.train.latest_checkpoint(model_dir / CHECKPOINTS) is not None
    if resume and not has_checkpoint:
        raise ConfigError(f"--resume: no checkpoint in {model_dir / CHECKPOINTS}")
    if has_checkpoint and not resume:
        raise ConfigError(f"{model_dir} already holds a run: pass --resume to continue it "
                          "or choose another --model_dir")
    if resume:
        config.check_resumable_from(TrainConfig.load(model_dir))
    config.save(model_dir)
    return model_dir


def train(config: TrainConfig, *, resume=False, verbose=1, callbacks=()):
    """Trains ``config.model``; returns the model and a summary dict (metrics, images/s, paths).

    ``callbacks`` are extra Keras callbacks, run after the epoch checkpoint is saved.
    """
    config.validate()
    model_dir = prepare_model_dir(config, resume)
    policy = precision_policy(config.mixed_precision)
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.strategy)

    data_dir = resolve_data(config)
    kind = models.REGISTRY[config.model].DATA
    train_files = _files(data_dir, kind, "train")
    if not all(train_files):
        raise ConfigError(f"no {kind} training shards in {data_dir} "
                          "(make them with tools/make_tfrecords.py)")
    val_files = _files(data_dir, kind, "val")
    steps_per_epoch = count_steps(config, kind, train_files)

    with strategy.scope():
        model = models.build(config)
        model.compile(make_optimizer(config, steps_per_epoch, policy),
                      make_optimizer(config, steps_per_epoch, policy))
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        checkpoint = tf.train.Checkpoint(model=model, g_optimizer=model.g_optimizer,
                                         d_optimizer=model.d_optimizer, epoch=epoch,
                                         random_state=model.random_state)
    manager = tf.train.CheckpointManager(checkpoint, model_dir / CHECKPOINTS, max_to_keep=3)
    if resume:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()

    sample_files = val_files if all(val_files) else train_files
    samples = next(iter(_dataset(config, kind, sample_files, training=False, seed=config.seed)))
    throughput = Throughput(config.batch_size)
    summaries = TensorBoardSummaries(model_dir / "logs", samples, model.sample_images,
                                     summary_every=config.summary_every,
                                     image_every=config.image_every, throughput=throughput,
                                     samples_dir=model_dir / "samples")
    callbacks = [throughput, summaries, EpochCheckpoint(manager, epoch), *callbacks]
    if verbose:
        callbacks.append(RunProgbar(config.epochs))  # last, so it shows images_per_s
    validation = _dataset(config, kind, val_files, training=False, seed=config.seed) if all(val_files) else None

    history = {}
    start = int(epoch.numpy())
    if start >= config.epochs:
        return model, {"model_dir": str(model_dir), "epochs": config.epochs, "start_epoch": start,
                       "finished_before": True}
    for e in range(start, config.epochs):
        data = _dataset(config, kind, train_files, training=True, seed=config.seed + e)
        result = model.fit(data, initial_epoch=e, epochs=e + 1, steps_per_epoch=steps_per_epoch,
                           validation_data=validation, callbacks=callbacks, verbose=verbose,
                           shuffle=False)
        history = {k: v[-1] for k, v in result.history.items()}

    summary = {"model_dir": str(model_dir), "epochs": config.epochs, "start_epoch": start,
               "steps_per_epoch": steps_per_epoch, "images_per_s": throughput.rate,
               "precision": policy, "replicas": strategy.num_replicas_in_sync,
               "metrics": history}
    if config.export:
        summary["saved_model"] = str(export_lib.export_saved_model(
            model.export_generator(), model_dir / "saved_model"))
    (model_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return model, summary
