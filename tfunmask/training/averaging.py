"""Averaging the weights of runs fine-tuned from one start (a "model soup", Wortsman et al. 2022).

Runs that start from the same weights and differ in their fine-tuning (another loss term, a kept
or a fresh discriminator, more steps) tend to stay in one basin of the loss, where the uniform
mean of their weights is itself a good model and often trades their strengths. ``average_runs``
restores each run's checkpoint, checks that every run built the same networks (same model, and
the same weights by path and shape: runs that differ only in loss weights qualify), and writes a
new run folder holding the mean of every weight (batch-norm moving statistics included) as its
one checkpoint, so ``export`` and ``evaluate`` take it like a trained run. The folder's
config.json is the first run's, and ``averaged_from.json`` records the runs and epochs averaged
and the constructor arguments in which they differ.

``start_weight`` w moves the unmasker from that mean towards the runs' common ``--warm_start``:
w × start + (1 − w) × mean (WiSE-FT, Wortsman et al. 2022). Fine-tuning on a new objective can
lose what the start did well off the fine-tune's data (real photos, for a model fine-tuned on
synthetic pairs and unpaired faces); the interpolation between the two tends to keep both, and
one fine-tuned run is then enough. w = 1 gives the start's unmasker itself in the fine-tune's run
layout (its other networks the fine-tune's): the fine-tune's step 0, which ``export`` and
``evaluate`` then take exactly as they take the fine-tune, for a like-for-like comparison.
"""

import json
from pathlib import Path

import numpy as np

from tfunmask import runs
from tfunmask.config import CONFIG_FILE, ConfigError
from tfunmask.training import warm_start

SOURCES_FILE = "averaged_from.json"


def _layout(model):
    """Every weight's path and shape: runs with equal layouts can be averaged, whatever their loss
    weights (constructor arguments that build no weight)."""
    return [(v.path, tuple(v.shape)) for v in model.weights]


def _differing_arguments(models):
    """``{name: [value per run]}`` of the constructor arguments the runs do not share, for
    (model, its saved arguments) pairs: an argument one run's config.json lacks (saved before the
    argument existed) is read from the restored model, which took its default."""
    names = sorted(set().union(*(saved for _, saved in models)))
    values = [{name: config.get(name) for name in names} for config in (model.get_config() for model, _ in models)]
    return {name: [v[name] for v in values] for name in names if any(v[name] != values[0][name] for v in values)}


def _move_to_start(model, restored, share):
    """Moves ``model``'s unmasker ``share`` of the way to the runs' common warm start; returns it."""
    starts = {config.runtime.warm_start for _, _, config in restored}
    if len(starts) != 1 or None in starts:
        named = ", ".join(f"{path}: {config.runtime.warm_start or 'none'}" for path, _, config in restored)
        raise ConfigError(f"a start weight needs runs that all started from one --warm_start ({named})")
    start = starts.pop()
    if not Path(start).is_dir():
        raise ConfigError(f"the runs' warm start {start} is not there any more")
    source = f"the runs' warm start {start}"
    warm_start.apply(model.unmasker, warm_start.source_weights(start), source, share=share)
    return start


def average_runs(sources, out, start_weight=0.0):
    """Writes the weight average of the run folders ``sources`` (each ``path`` or ``path:epoch``),
    its unmasker moved ``start_weight`` of the way to the runs' warm start, to the new run folder
    ``out``; returns the checkpoint's path. ConfigError where fewer than two runs are given (one
    with a start weight), one is not a run, the runs built different networks or started from
    different weights, or ``out`` holds a run."""
    import tensorflow as tf

    if not 0.0 <= start_weight <= 1.0:
        raise ConfigError(f"the start weight must be in [0, 1] (got {start_weight})")
    if len(sources) < (1 if start_weight else 2):
        raise ConfigError(f"averaging needs at least two runs, or one and a start weight (got {len(sources)})")
    out = Path(out)
    if (out / CONFIG_FILE).exists():
        raise ConfigError(f"{out} already holds a run: choose another folder")
    restored, epochs = [], []
    for source in sources:
        path, _, epoch = str(source).partition(":")
        if epoch and not epoch.isdigit():
            raise ConfigError(f"{source}: give a run as FOLDER or FOLDER:EPOCH (an epoch number)")
        epoch = int(epoch) if epoch else None
        model, config = runs.restore(path, epoch)
        restored.append((path, model, config))
        epochs.append(epoch if epoch is not None else max(runs.Run(path).saved_epochs()))
    first_path, model, config = restored[0]
    for path, other_model, other in restored[1:]:
        if other.model_name != config.model_name or _layout(other_model) != _layout(model):
            raise ConfigError(f"{path} built other networks than {first_path} (another model, or other layers "
                              "or widths): only runs of one architecture can be averaged")
    model.set_weights([np.mean(values, axis=0) for values in zip(*(m.get_weights() for _, m, _ in restored))])
    record = {"runs": [p for p, _, _ in restored], "epochs": epochs}
    differing = _differing_arguments([(m, c.model) for _, m, c in restored])
    if differing:
        record["differing_arguments"] = differing
    if start_weight:
        record.update(start=_move_to_start(model, restored, start_weight), start_weight=start_weight)
    config.runtime.model_dir = str(out)
    config.save(out)
    (out / SOURCES_FILE).write_text(json.dumps(record, indent=2))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), runs.Run(out).checkpoints,
                                         max_to_keep=1)
    return manager.save(checkpoint_number=max(epochs))
