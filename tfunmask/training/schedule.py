"""The players' optimiser: Adam at a constant rate, then linear decay to 0 (Pix2Pix/CycleGAN)."""

import keras
import tensorflow as tf


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


def make_optimizer(optimizer_config, steps_per_epoch, policy):
    """Adam with the linear-decay schedule of an ``OptimizerConfig``; loss-scaled under float16."""
    schedule = LinearDecay(optimizer_config.lr, optimizer_config.epochs * steps_per_epoch,
                           optimizer_config.decay_epochs * steps_per_epoch)
    optimizer = keras.optimizers.Adam(schedule, beta_1=optimizer_config.beta_1)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
