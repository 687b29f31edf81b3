"""The training loop behind ``python -m tfunmask.train``.

``train(config)`` resolves the precision and the distribution strategy (and records both in the
run's ``config.json``), builds the model in that precision and its optimizers inside the strategy
scope, restores the latest checkpoint on ``resume`` (or, on a fresh start with ``warm_start``, the
unmasker's weights from another run: ``warm_start``), and runs ``fit`` one epoch at a time (the
traced step is reused across calls). Each epoch's batches come from the pipeline seeded with
``seed + epoch``, so a run resumed from an epoch checkpoint sees exactly the batches the
uninterrupted run saw, with the same learning rate (the schedule reads the restored step counter)
and the same dropout masks (their seed states are checkpointed).

On several machines (``--strategy=multi_worker``) every worker runs this same loop on the same
batches; ``fit`` gives each worker its replicas' share of every global batch. Only the chief writes
the run folder (config, TensorBoard, samples, summary, and in ``train.py`` the export); the others
save their checkpoints, which the strategy needs every worker to do, to a temporary folder that is
removed at the end. A resumed run restores every worker from the chief's checkpoints, so the run
folder must be one all workers see (a shared or cloud file system) to resume on several hosts.
"""

import contextlib
import json
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from tfunmask import models, runs
from tfunmask.config import ConfigError, TrainConfig
from tfunmask.data import pipeline
from tfunmask.models.layers import fused_upsampling
from tfunmask.training.callbacks import (
    EpochCheckpoint,
    RunProgbar,
    TensorBoardSummaries,
    Throughput,
)
from tfunmask.training.cluster import is_chief
from tfunmask.training.hardware import make_strategy, resolve_precision
from tfunmask.training.schedule import make_optimizer
from tfunmask.training.warm_start import warm_start


def _dataset(config, kind, files, *, training, seed):
    """Training data repeat endlessly (``fit`` takes ``steps_per_epoch`` batches); eval data once.

    Every worker of a cluster makes the same global batches and keeps its replicas' slice of each
    (DATA sharding), so a cluster trains on exactly the batches one process would. Sharding by
    file would give each worker other examples, and it cannot see the pipeline's files anyway.
    """
    dataset = pipeline.batches(kind, files, image_size=config.image_size, load_size=config.load_size,
                               batch_size=config.data.batch_size, training=training, seed=seed,
                               repeat=training, variation=config.variation)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _validation(config, kind, files):
    """The batches scored after each epoch: the whole val split, or its first
    ``--validation_steps`` batches (the same every epoch); None without a val split or with 0."""
    steps = config.data.validation_steps
    if not all(files) or steps == 0:
        return None
    dataset = _dataset(config, kind, files, training=False, seed=config.runtime.seed)
    return dataset if steps is None else dataset.take(steps)  # take keeps the known length


def split_files(config, data_dir, kind, split):
    """``pipeline.split_files`` of the run's data, plus the guiding pairs' shards where
    ``--paired_data`` gives them; a missing training split is a ConfigError."""
    sources = [(kind, data_dir)] + ([("paired", config.data.paired_path)] if config.data.paired_path else [])
    files = []
    for source_kind, folder in sources:
        found = pipeline.split_files(folder, source_kind, split)
        if split == "train" and not all(found):
            raise ConfigError(f"no {source_kind} training shards in {folder} "
                              "(make them with tools/make_tfrecords.py)")
        files += found
    return files


def count_steps(config, data_dir, kind):
    """Steps per epoch: ``--steps_per_epoch`` or one pass over the (larger) training set."""
    if config.data.steps_per_epoch:
        return config.data.steps_per_epoch
    examples = max(pipeline.split_sizes(data_dir, kind, "train"))
    steps = examples // config.data.batch_size
    if steps < 1:
        raise ConfigError(f"the training set ({examples} examples) is smaller than one batch "
                          f"(--batch_size={config.data.batch_size})")
    return steps


def _check_resumable(config, saved):
    """Raises ConfigError where ``config`` would make another run than the saved one: another
    model or precision; fills in the saved precision where ``config`` has none resolved."""
    if config.model_name != saved.model_name:
        raise ConfigError(f"cannot resume: --model={config.model_name} (checkpoint has {saved.model_name!r})")
    if config.runtime.mixed_precision != saved.runtime.mixed_precision:
        raise ConfigError(f"cannot resume: the run trained with --mixed_precision={saved.runtime.mixed_precision}, "
                          f"not {config.runtime.mixed_precision}")
    if config.runtime.precision is None:
        config.runtime.precision = saved.runtime.precision
    if saved.runtime.precision not in (None, config.runtime.precision):
        raise ConfigError(f"cannot resume: the run trained in {saved.runtime.precision}, not "
                          f"{config.runtime.precision}")
    return config


def _check_same_model(arguments, saved):
    """Raises ConfigError naming every constructor argument (defaults resolved) that differs from
    the saved run's. An argument the saved run does not list (one added since it was made) keeps
    its default."""
    diffs = [f"{name}={arguments.get(name)!r} (checkpoint has {saved[name]!r})"
             for name in sorted(saved) if arguments.get(name) != saved[name]]
    if diffs:
        raise ConfigError("cannot resume: the model's configuration differs from the checkpoint's: "
                          + "; ".join(diffs))


def prepare_run(config, resume):
    """Checks the run folder against ``resume``; resolves the precision (a resumed run keeps its
    own). Returns the Run and, when resuming, the saved TrainConfig (else None)."""
    run = runs.Run(config.model_dir)
    has_checkpoint = run.latest_checkpoint() is not None
    if resume and not has_checkpoint:
        raise ConfigError(f"--resume: no checkpoint in {run.checkpoints}")
    if has_checkpoint and not resume:
        raise ConfigError(f"{run.root} already holds a run: pass --resume to continue it "
                          "or choose another --model_dir")
    saved = TrainConfig.load(run.root) if resume else None
    if saved:
        _check_resumable(config, saved)
    resolve_precision(config.runtime)
    return run, saved


@contextlib.contextmanager
def _checkpoint_folder(run, chief):
    """Where this process saves checkpoints: the run folder on the chief; a temporary folder,
    removed at the end, on the other workers of a cluster."""
    if chief:
        yield run.checkpoints
        return
    with tempfile.TemporaryDirectory(prefix="tfunmask-worker-checkpoints-") as folder:
        yield folder


def train(config: TrainConfig, *, resume=False, verbose=1, callbacks=()):
    """Trains ``config.model_name``; returns the model and a summary dict (metrics, images/s, paths).

    ``callbacks`` are extra Keras callbacks, run after the epoch checkpoint is saved. The global
    Keras dtype policy is left as it was: the precision is the model's own.
    """
    config.validate()
    run, saved = prepare_run(config, resume)
    policy = config.runtime.precision
    keras.utils.set_random_seed(config.runtime.seed)
    strategy = make_strategy(config.runtime.strategy, config.runtime.cluster_timeout)
    config.runtime.replicas = strategy.num_replicas_in_sync
    chief = is_chief(strategy)

    data_dir = runs.data_dir(config)
    kind = models.model_class(config.model_name).DATA
    train_files, val_files = (split_files(config, data_dir, kind, split) for split in ("train", "val"))
    steps_per_epoch = count_steps(config, data_dir, kind)

    with strategy.scope():
        try:
            model = models.build(config.model_name, config.model, dtype=policy)
        except (TypeError, ValueError) as error:  # the constructors check their arguments
            raise ConfigError(f"--model={config.model_name}: {error}") from None
        model.compile(make_optimizer(config.optimizer, steps_per_epoch, policy),
                      make_optimizer(config.optimizer, steps_per_epoch, policy))
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        checkpoint = tf.train.Checkpoint(model=model, g_optimizer=model.g_optimizer,
                                         d_optimizer=model.d_optimizer, epoch=epoch,
                                         random_state=model.random_state)
    config.model = models.constructor_arguments(model)  # defaults resolved (e.g. resnet_blocks)
    config.runtime.upsampling = "fused" if fused_upsampling(config.model.get("upsampling", "auto")) else "plain"
    if saved:
        _check_same_model(config.model, saved.model)
    if chief:
        config.save()
    with _checkpoint_folder(run, chief) as folder:
        manager = tf.train.CheckpointManager(checkpoint, folder, max_to_keep=3)
        kept = (tf.train.CheckpointManager(checkpoint, Path(folder) / "kept", max_to_keep=None)
                if config.runtime.keep_every else None)
        if resume:
            runs.restore_checkpoint(checkpoint, run.latest_checkpoint())
        elif config.runtime.warm_start:
            warm_start(model, config.runtime.warm_start, discriminators=config.runtime.warm_start_discriminators)
        throughput = Throughput(config.data.batch_size)
        writers = [throughput]
        if chief:
            sample_files = val_files if all(val_files) else train_files
            samples = next(iter(_dataset(config, kind, sample_files, training=False, seed=config.runtime.seed)))
            writers.append(TensorBoardSummaries(run.logs, samples, model.sample_images,
                                                summary_every=config.runtime.summary_every,
                                                image_every=config.runtime.image_every, throughput=throughput,
                                                samples_dir=run.samples))
        epochs = config.optimizer.epochs
        callbacks = [*writers, EpochCheckpoint(manager, epoch, kept, config.runtime.keep_every),
                     *callbacks]
        if verbose:
            callbacks.append(RunProgbar(epochs, model.PROGRESS_NAMES))  # last, so it shows images_per_s
        validation = _validation(config, kind, val_files)

        history = {}
        start = int(epoch.numpy())
        if start >= epochs:
            return model, {"model_dir": str(run.root), "epochs": epochs, "start_epoch": start,
                           "finished_before": True, "chief": chief}
        for e in range(start, epochs):
            if model.begin_epoch(e):  # a new phase of training: trace its steps (train and validation) anew
                model.make_train_function(force=True)
                model.make_test_function(force=True)
            data = _dataset(config, kind, train_files, training=True, seed=config.runtime.seed + e)
            result = model.fit(data, initial_epoch=e, epochs=e + 1, steps_per_epoch=steps_per_epoch,
                               validation_data=validation, callbacks=callbacks, verbose=verbose,
                               shuffle=False)
            history = {k: v[-1] for k, v in result.history.items()}

        summary = {"model_dir": str(run.root), "epochs": epochs, "start_epoch": start,
                   "steps_per_epoch": steps_per_epoch, "images_per_s": throughput.mean_rate,
                   "precision": policy, "replicas": strategy.num_replicas_in_sync,
                   "upsampling": config.runtime.upsampling,
                   "metrics": history}
        if chief:
            run.summary.write_text(json.dumps(summary, indent=2, default=float) + "\n")
        return model, {**summary, "chief": chief}
