"""Keras callbacks for GAN training: throughput, TensorBoard, checkpoints.

``fit``'s built-in TensorBoard callback reads ``model.optimizer``, which is
``None`` for a model with two optimizers, so summaries are written here.
"""

import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfunmask.data.images import write_image
from tfunmask.pixels import to_uint8


class Throughput(keras.callbacks.Callback):
    """Adds ``images_per_s`` (global batch / step time, smoothed) to the batch logs, and keeps
    ``mean_rate``: images over seconds of every step so far, for the run's summary.

    Each epoch's first step is left out of both: it includes tracing and the pipeline's start.
    Must come before the progress bar in the callback list: Keras appends its
    ``ProgbarLogger`` last, so the bar shows the value.
    """

    def __init__(self, global_batch):
        super().__init__()
        self.global_batch = global_batch
        self.rate = None
        self._last = None
        self._images = 0
        self._seconds = 0.0

    @property
    def mean_rate(self):
        """Images per second over all the steps timed (None before the first)."""
        return self._images / self._seconds if self._seconds else None

    def on_epoch_begin(self, epoch, logs=None):
        self._last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        seconds = max(now - self._last, 1e-9)
        self._last = now
        if batch > 0:
            rate = self.global_batch / seconds
            self.rate = rate if self.rate is None else 0.9 * self.rate + 0.1 * rate
            self._images += self.global_batch
            self._seconds += seconds
        if logs is not None and self.rate is not None:
            logs["images_per_s"] = self.rate


def image_grid(columns):
    """One uint8 image: a header naming each column, then a row per sample.

    ``columns`` maps each column's label to a batch (B, H, W, C) in [-1, 1]; single-channel maps
    are shown in grey.
    """
    batches = [np.repeat(c, 3, axis=-1) if c.shape[-1] == 1 else c for c in map(np.asarray, columns.values())]
    grid = to_uint8(np.concatenate([np.concatenate(list(row), axis=1) for row in zip(*batches)], axis=0)).numpy()
    return np.concatenate([_header(list(columns), batches[0].shape[2]), grid], axis=0)


def _header(labels, cell):
    """A dark strip with each label, shortened to fit, over its ``cell``-pixel-wide column."""
    import cv2

    scale = min(0.5, cell / 96)
    height = max(10, round(28 * scale))
    strip = np.full((height, cell * len(labels), 3), 40, np.uint8)
    for i, label in enumerate(labels):
        while len(label) > 1 and cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > cell - 2:
            label = label[:-1]
        cv2.putText(strip, label, (i * cell + 1, height - max(2, height // 4)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return strip


class TensorBoardSummaries(keras.callbacks.Callback):
    """Every loss term, learning rate and images/s every ``summary_every`` steps;
    a grid of fixed validation samples every ``image_every`` steps; and both at the end
    of every epoch whatever the intervals (the epoch's mean losses), so a short run is
    never blind. Each epoch's grids are also written as PNGs into ``samples_dir``.

    ``sample_fn(batch) -> {name: {column label: batch in [-1, 1]}}`` lets each model
    choose what to show (Pix2Pix: input | output | target | mask; the attention models
    add their masks); the labels head the grid's columns.
    """

    def __init__(self, log_dir, samples, sample_fn, *, summary_every=100, image_every=500,
                 throughput=None, samples_dir=None):
        super().__init__()
        self.writer = tf.summary.create_file_writer(str(log_dir))
        self.samples_dir = samples_dir
        self.samples = samples
        self.sample_fn = sample_fn
        self.summary_every = summary_every
        self.image_every = image_every
        self.throughput = throughput

    def _step(self):
        return int(self.model.g_optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        with self.writer.as_default(step=step):
            if step % self.summary_every == 0:
                for name, value in (logs or {}).items():
                    tf.summary.scalar(f"train/{name}", float(value))
                tf.summary.scalar("train/learning_rate", float(self.model.g_optimizer.learning_rate))
            if step % self.image_every == 0:
                self.write_images(step)

    def write_images(self, step, png_stem=None):
        """The sample grids at ``step``; with ``png_stem``, also ``samples_dir/<stem>_<name>.png``."""
        with self.writer.as_default(step=step):
            for name, columns in self.sample_fn(self.samples).items():
                grid = image_grid(columns)
                tf.summary.image(f"samples/{name}", grid[None], max_outputs=1)
                if png_stem and self.samples_dir is not None:
                    write_image(Path(self.samples_dir) / f"{png_stem}_{name}.png", grid)
        self.writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        step = self._step()
        with self.writer.as_default(step=step):
            for name, value in (logs or {}).items():
                tag = f"val/{name[4:]}" if name.startswith("val_") else f"train/{name}"
                tf.summary.scalar(tag, float(value))
            tf.summary.scalar("train/learning_rate", float(self.model.g_optimizer.learning_rate))
            if self.throughput is not None and self.throughput.rate is not None:
                tf.summary.scalar("train/images_per_s", self.throughput.rate)
            tf.summary.scalar("epoch", epoch + 1)
        self.write_images(step, png_stem=f"epoch{epoch + 1:04d}")


class RunProgbar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, told the run's epoch count (``fit`` runs one epoch per call), showing
    only the ``shown`` losses (and their validation values) and images/s: a line a terminal holds.
    TensorBoard gets every term."""

    def __init__(self, epochs, shown):
        super().__init__()
        self.run_epochs = epochs
        self.shown = {*shown, *(f"val_{name}" for name in shown), "images_per_s"}

    def set_params(self, params):
        super().set_params({**params, "epochs": self.run_epochs})

    def _few(self, logs):
        return {name: value for name, value in (logs or {}).items() if name in self.shown}

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, self._few(logs))

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, self._few(logs))


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves models, optimizers and the epoch counter after every epoch through ``manager`` (which
    keeps the newest few), and every ``keep_every``-th epoch also through ``kept`` (which keeps all;
    None when ``keep_every`` is 0)."""

    def __init__(self, manager, epoch_variable, kept=None, keep_every=0):
        super().__init__()
        self.manager = manager
        self.epoch_variable = epoch_variable
        self.kept = kept
        self.keep_every = keep_every

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_variable.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)
        if self.keep_every and (epoch + 1) % self.keep_every == 0:
            self.kept.save(checkpoint_number=epoch + 1)
