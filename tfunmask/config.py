"""A training run's configuration, saved as ``config.json`` beside its checkpoints.

Four sections, each with one job:

* ``model``: the chosen model's constructor arguments, exactly what its ``get_config`` returns
  (``tfunmask.models``), so the networks are rebuilt with ``Model(**config.model)``;
* ``optimizer``: Adam and its schedule;
* ``data``: which records, how they are cropped and batched;
* ``runtime``: where and how the run executes; ``precision`` and ``replicas`` are what
  ``mixed_precision`` and ``strategy`` resolved to on the machine that started the run, and a
  resumed run keeps that precision (the optimizer's checkpoint depends on it); ``upsampling``
  is the form the model's "upsampling" took on the machine that last trained it (fused or plain:
  the same function and weights either way, so a resume may take the other).

The saved file is what makes a checkpoint usable later: resuming, exporting and evaluating rebuild
the run from it instead of trusting flags typed again. Files written before the sections existed
(one flat dict of flag values) are converted on load.
"""

import dataclasses
import json
from pathlib import Path
from typing import Optional

CONFIG_FILE = "config.json"

# What a resumed run may change: how long and on what it trains (the data and how its pairs are
# varied: a fine-tuning curriculum), how much of the validation split it scores, the
# feature-matching and SSIM losses (generator loss terms on top, which need no new weights), what
# it logs, on which machines (the global batch is the same steps on any number of replicas); never
# the networks, the optimiser or the batches' size and crop (those would silently make it another run).
RESUMABLE_CHANGES = ("epochs", "data", "validation_steps", "mask_variation", "variation_extras", "bare_faces",
                     "lambda_feature_matching", "lambda_ssim", "summary_every", "image_every", "export",
                     "strategy", "cluster_timeout", "keep_every")


class ConfigError(ValueError):
    """A configuration that cannot be used (one-line message)."""


@dataclasses.dataclass
class OptimizerConfig:
    lr: float = 2e-4
    beta_1: float = 0.5
    epochs: int = 10
    decay_epochs: Optional[int] = None  # None: half of epochs, rounded down (resolved on creation)

    def __post_init__(self):
        if self.decay_epochs is None:  # Pix2Pix's convention: constant for half the run, then decay
            self.decay_epochs = self.epochs // 2


@dataclasses.dataclass
class DataConfig:
    path: Optional[str] = None  # TFRecord folder; None: the built-in demo set
    load_size: Optional[int] = None  # resize-before-crop size; None: Pix2Pix's 286/256 of image_size
    batch_size: int = 8
    steps_per_epoch: Optional[int] = None  # None: one pass over the larger training set
    validation_steps: Optional[int] = None  # val batches after each epoch; None: the whole split, 0: none
    mask_variation: float = 0.0  # paired: probability of varying a pair's mask look and photo
    variation_extras: float = 0.0  # of a varied look being textured and a photo compressed
    bare_faces: float = 0.0  # paired: probability of a pair becoming the bare face (empty map)
    paired_path: Optional[str] = None  # aggan: synthetic pairs that guide the attention


@dataclasses.dataclass
class RuntimeConfig:
    model_dir: str = "runs/pix2pix"
    mixed_precision: str = "auto"
    precision: Optional[str] = None  # the Keras dtype policy "mixed_precision" resolved to
    strategy: str = "auto"
    replicas: Optional[int] = None  # how many replicas "strategy" resolved to
    upsampling: Optional[str] = None  # the form the model's "upsampling" resolved to: fused or plain
    cluster_timeout: int = 300  # seconds multi-worker training waits for every task of TF_CONFIG
    seed: int = 0
    summary_every: int = 100
    image_every: int = 500
    export: bool = True
    keep_every: int = 0  # also keep every N-th epoch's checkpoint (0: only the newest three)
    warm_start: Optional[str] = None  # run folder or SavedModel whose unmasker starts a fresh run's
    warm_start_discriminators: bool = False  # the warm_start run folder's discriminators start ours too


SECTIONS = {"optimizer": OptimizerConfig, "data": DataConfig, "runtime": RuntimeConfig}
# Flag names that differ from their field's name.
FLAG_ALIASES = {("data", "path"): "data", ("data", "paired_path"): "paired_data"}


def _flag(section, field):
    return FLAG_ALIASES.get((section, field), field)


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a run."""

    model_name: str = "pix2pix"
    model: dict = dataclasses.field(default_factory=lambda: {"image_size": 64})
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)

    @property
    def image_size(self):
        return self.model["image_size"]

    @property
    def load_size(self):
        """Resize-before-crop size: Pix2Pix's 286/256 ratio unless given."""
        return self.data.load_size or int(round(self.image_size * 286 / 256))

    @property
    def variation(self):
        """The data section's ``variation.Variation`` (how training pairs are varied)."""
        from tfunmask.data.variation import Variation  # TensorFlow loads only when data is made

        return Variation(self.data.mask_variation, self.data.variation_extras, self.data.bare_faces)

    @property
    def model_dir(self):
        return Path(self.runtime.model_dir)

    def validate(self):
        """Raises ConfigError for values no run can use (the model checks its other arguments)."""
        size = self.image_size
        if not isinstance(size, int) or size < 16 or size % 16:
            raise ConfigError(f"--image_size must be a multiple of 16, at least 16 (got {size})")
        if self.load_size < self.image_size:
            raise ConfigError(f"--load_size ({self.data.load_size}) must be at least --image_size ({self.image_size})")
        if self.data.validation_steps is not None and self.data.validation_steps < 0:
            raise ConfigError("--validation_steps must be 0 (no validation) or more "
                              f"(got {self.data.validation_steps})")
        for section, name in (("data", "batch_size"), ("optimizer", "epochs")):
            if getattr(getattr(self, section), name) < 1:
                raise ConfigError(f"--{name} must be positive (got {getattr(getattr(self, section), name)})")
        if not 0 <= self.optimizer.decay_epochs <= self.optimizer.epochs:
            raise ConfigError(f"--decay_epochs must be between 0 and --epochs ({self.optimizer.epochs})")
        if self.runtime.cluster_timeout < 1:
            raise ConfigError(f"--cluster_timeout must be positive (got {self.runtime.cluster_timeout})")
        for name in ("mask_variation", "variation_extras", "bare_faces"):
            if not 0 <= getattr(self.data, name) <= 1:
                raise ConfigError(f"--{name} must be a probability in [0, 1] (got {getattr(self.data, name)})")
        if self.data.variation_extras and not self.data.mask_variation:
            raise ConfigError("--variation_extras adds to --mask_variation: give --mask_variation too")
        if self.data.paired_path and self.model_name != "aggan":
            raise ConfigError("--paired_data guides an AttentionGAN's attention: only --model=aggan takes it")
        guided = self.model.get("lambda_attention_map") or self.model.get("lambda_paired")
        if guided and not self.data.paired_path:
            raise ConfigError("--lambda_attention_map and --lambda_paired need synthetic pairs: "
                              "give --paired_data (a folder from tools/make_tfrecords.py --mode=paired)")
        for name in ("mask_variation", "bare_faces"):
            if getattr(self.data, name) and not (self.model_name == "pix2pix" or self.data.paired_path):
                raise ConfigError(f"--{name} varies paired data: only --model=pix2pix, or --model=aggan "
                                  "with --paired_data, trains on it")
        if self.optimizer.lr <= 0:
            raise ConfigError(f"--lr must be positive (got {self.optimizer.lr})")
        if self.runtime.warm_start_discriminators and not self.runtime.warm_start:
            raise ConfigError("--warm_start_discriminators starts the discriminators from the --warm_start run "
                              "folder: give --warm_start")
        return self

    def flat(self):
        """``{flag name: value}`` of every section but the model's (whose keys are flag names too)."""
        values = {_flag(s, f.name): getattr(getattr(self, s), f.name)
                  for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
        return {**values, "model": self.model_name, **self.model}

    def to_dict(self):
        return {"model_name": self.model_name, "model": dict(self.model),
                **{s: dataclasses.asdict(getattr(self, s)) for s in SECTIONS}}

    @classmethod
    def from_dict(cls, values):
        sections = {s: SECTIONS[s](**values.get(s, {})) for s in SECTIONS}
        return cls(model_name=values["model_name"], model=dict(values["model"]), **sections)

    @classmethod
    def from_flags(cls, values, model_arguments):
        """A config from ``{flag name: value}``; ``model_arguments`` names the flags that are the
        model's constructor arguments."""
        sections = {s: SECTIONS[s](**{f.name: values[_flag(s, f.name)] for f in dataclasses.fields(c)
                                      if _flag(s, f.name) in values})
                    for s, c in SECTIONS.items()}
        model = {name: values[name] for name in model_arguments if name in values}
        return cls(model_name=values["model"], model=model, **sections)

    @classmethod
    def create(cls, model="pix2pix", **values):
        """A config from flag-named keywords, as the Python twin of the command line: keywords of
        the optimizer, data and runtime sections go there, every other one is a constructor
        argument of ``model`` (which checks them when it is built). ``image_size`` defaults to 64
        and ``model_dir`` to runs/<model>."""
        values = {"image_size": 64, "model_dir": f"runs/{model}", **values, "model": model}
        section_flags = {_flag(s, f.name) for s, c in SECTIONS.items() for f in dataclasses.fields(c)}
        return cls.from_flags(values, [name for name in values if name not in section_flags | {"model"}])

    def save(self, model_dir=None):
        path = Path(model_dir or self.model_dir) / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, model_dir):
        path = Path(model_dir) / CONFIG_FILE
        if not path.is_file():
            raise ConfigError(f"no {CONFIG_FILE} in {model_dir}: not a tfunmask training directory")
        try:
            values = json.loads(path.read_text())
            return cls.from_dict(values) if "model_name" in values else from_flat(values)
        except (ValueError, TypeError, KeyError) as error:
            raise ConfigError(f"{path} is not a tfunmask configuration ({error})") from None

    def resumed(self, given):
        """This saved configuration with the flags the user gave (``given``: {name: value})
        applied: only RESUMABLE_CHANGES may differ, and --epochs may only grow; ``model_dir`` is
        where the run is now (a run folder may be moved or copied). Returns (config,
        {name: (old, new)}) for what changed; a ConfigError names any other flag that would change."""
        saved = self.flat()
        given = dict(given)
        saved["model_dir"] = given.pop("model_dir", saved["model_dir"])  # the folder may have moved
        changes = {name: (saved.get(name), value) for name, value in given.items()
                   if name not in saved or saved[name] != value}  # absent: an argument newer than the run
        refused = [f"--{name}={new!r} (the run has {old!r})" for name, (old, new) in changes.items()
                   if name not in RESUMABLE_CHANGES]
        if refused:
            raise ConfigError("--resume continues the run as it was configured; it cannot change "
                              + "; ".join(refused) + " (start a new --model_dir for that)")
        if "epochs" in changes and changes["epochs"][1] < self.optimizer.epochs:
            raise ConfigError(f"--resume can only add epochs: the run has --epochs={self.optimizer.epochs}")
        values = {**saved, **{name: new for name, (_, new) in changes.items()}}
        return TrainConfig.from_flags(values, [*self.model, *(n for n in changes if n not in saved)]), changes


# The flat configuration files of tfunmask before sections: field -> constructor argument where
# the two differ, and the model fields of each model (the rest of that file's fields went unused).
_FLAT_MODEL_FIELDS = {
    "pix2pix": ("image_size", "filters", "max_filters", "dropout", "normalization", "loss", "lambda_l1",
                "mask_weight", "composite", "lambda_mask"),
    "cyclegan": ("image_size", "filters", "resnet_blocks", "pool_size", "lambda_cycle", "lambda_identity",
                 "seed"),
}
_FLAT_MODEL_FIELDS["aggan"] = _FLAT_MODEL_FIELDS["cyclegan"] + (
    "aggan_scheme", "attention_masks", "lambda_pixel", "lambda_tv", "lambda_attention_gan")


def from_flat(values):
    """A TrainConfig from a flat ``config.json`` of earlier versions. Its "auto" precision and
    strategy were never recorded: they resolve again on the machine that loads it."""
    if values.get("model") not in _FLAT_MODEL_FIELDS:
        raise ConfigError(f"unknown model {values.get('model')!r} in an old-style {CONFIG_FILE}")
    values = dict(values)
    if values.get("resnet_blocks") is None:
        values["resnet_blocks"] = 6 if values.get("image_size", 64) <= 128 else 9
    return TrainConfig.from_flags(values, _FLAT_MODEL_FIELDS[values["model"]])
