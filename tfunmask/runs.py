"""The run folder: the one place that knows what a training run writes where.

    RUN/config.json      the resolved configuration (``tfunmask.config``)
    RUN/checkpoints/     epoch checkpoints (the newest three): networks, optimizers, epoch counter,
                         random state; ``kept/`` holds every ``--keep_every``-th epoch's for good
    RUN/logs/            TensorBoard scalars and sample grids
    RUN/samples/         the sample grids of each epoch's end as PNGs
    RUN/summary.json     the finished run's figures (images/s, precision, last metrics)
    RUN/saved_model/     the generator exported at the end of training
    RUN/export/          what ``python -m tfunmask.export`` writes by default

Exporting and evaluating start from a run folder, not from flags typed again: the networks are
rebuilt from ``config.json`` and their weights restored from the newest checkpoint or the one of a
chosen epoch.
"""

import dataclasses
import re
from pathlib import Path

from tfunmask.config import ConfigError, TrainConfig

SAVED_MODEL = "saved_model"


@dataclasses.dataclass(frozen=True)
class Run:
    """Paths of the run folder ``root``."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    checkpoints = property(lambda self: self.root / "checkpoints")
    kept = property(lambda self: self.root / "checkpoints" / "kept")
    logs = property(lambda self: self.root / "logs")
    samples = property(lambda self: self.root / "samples")
    summary = property(lambda self: self.root / "summary.json")
    saved_model = property(lambda self: self.root / SAVED_MODEL)
    export = property(lambda self: self.root / "export")

    def latest_checkpoint(self):
        """Path prefix of the newest checkpoint, or None."""
        import tensorflow as tf

        return tf.train.latest_checkpoint(self.checkpoints)

    def saved_epochs(self):
        """{epoch: checkpoint path prefix} of every checkpoint on disk (newest three and kept)."""
        return {int(index.name[len("ckpt-"):-len(".index")]): str(index.with_suffix(""))
                for folder in (self.kept, self.checkpoints) for index in folder.glob("ckpt-*.index")}

    def checkpoint(self, epoch=None):
        """Path prefix of the checkpoint of ``epoch`` (None: the newest); ConfigError naming the
        epochs there are when it has none."""
        path = self.latest_checkpoint() if epoch is None else self.saved_epochs().get(epoch)
        if path is None:
            there = sorted(self.saved_epochs())
            have = f"it has epochs {', '.join(map(str, there))}" if there else "has the run trained an epoch?"
            what = "no checkpoint" if epoch is None else f"no checkpoint of epoch {epoch}"
            raise ConfigError(f"{what} in {self.checkpoints}: {have}")
        return path


def data_dir(config):
    """The TFRecord folder of a run: its ``--data`` or the built-in demo set of the model's kind."""
    if config.data.path:
        return Path(config.data.path)
    from tfunmask import models
    from tfunmask.synth import demo

    return demo.build(size=config.image_size, seed=config.runtime.seed,
                      kind=models.model_class(config.model_name).DATA)


def restore(model_dir, epoch=None):
    """The trained model of the run in ``model_dir`` after ``epoch`` (None: its newest checkpoint)
    and its TrainConfig; ConfigError if there is no such checkpoint.

    Only the model is restored (optimizer slots and counters are left alone), and it is built in
    float32 whatever precision it was trained in: mixed-precision runs keep float32 weights, and
    deployment wants float32 outputs to convert and compare against.
    """
    import tensorflow as tf

    from tfunmask import models

    config = TrainConfig.load(model_dir)
    checkpoint_path = Run(model_dir).checkpoint(epoch)
    model = models.build(config.model_name, config.model, dtype="float32")
    restore_checkpoint(tf.train.Checkpoint(model=model), checkpoint_path, partial=True)
    return model, config


def restore_checkpoint(checkpoint, path, *, partial=False):
    """Restores ``checkpoint`` (a ``tf.train.Checkpoint``) from ``path``; ConfigError naming the
    variables the checkpoint lacks where the networks have changed since it was written.

    ``partial`` ignores values the checkpoint has and the program does not (optimizer slots when
    only the model is restored). Pix2Pix checkpoints written before its U-Net stopped normalising
    the innermost encoder step (issue #16) lack that step's bias and cannot be used.
    """
    status = checkpoint.restore(path)
    if partial:
        status = status.expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as error:
        missing = ", ".join(sorted(set(re.findall(r"path=([^,\s]+)", str(error))))) or str(error).splitlines()[0]
        raise ConfigError(f"{path} does not fit the networks built from config.json (it lacks {missing}): "
                          "it was written by an older tfunmask (Pix2Pix checkpoints from before the "
                          "U-Net bottleneck fix, issue #16, cannot be loaded); retrain or use its export") from None
