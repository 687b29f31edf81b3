"""Reading a finished training run back: its configuration and its latest trained networks.

Exporting and evaluating start from a run folder, not from flags typed again: the networks are
rebuilt from the run's ``config.json`` and their weights restored from the newest checkpoint of
``checkpoints/``. Only the model is restored (optimizer slots and counters are left alone), and it
is built in float32 whatever precision it was trained in: mixed-precision runs keep float32
weights, and deployment wants float32 outputs to convert and compare against.
"""

from pathlib import Path

import keras
import tensorflow as tf

from tfunmask import models
from tfunmask.config import ConfigError, TrainConfig
from tfunmask.training import CHECKPOINTS


def restore(model_dir):
    """The trained model of the run in ``model_dir`` and its TrainConfig; ConfigError if there is none."""
    config = TrainConfig.load(model_dir)
    checkpoint_path = tf.train.latest_checkpoint(Path(model_dir) / CHECKPOINTS)
    if checkpoint_path is None:
        raise ConfigError(f"no checkpoint in {Path(model_dir) / CHECKPOINTS}: has the run trained an epoch?")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        model = models.build(config)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    tf.train.Checkpoint(model=model).restore(checkpoint_path).expect_partial().assert_existing_objects_matched()
    return model, config
