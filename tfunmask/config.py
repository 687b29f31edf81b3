"""One dataclass per training run, saved as ``config.json`` beside the checkpoints.

The saved configuration is what makes a checkpoint usable later: resuming,
exporting and evaluating rebuild the networks from it instead of trusting
flags typed again, and a resume whose architecture flags disagree with it
fails with a message naming the fields.
"""

import dataclasses
import json
from pathlib import Path
from typing import Optional

CONFIG_FILE = "config.json"

# Changing any of these makes the saved weights unloadable.
ARCHITECTURE_FIELDS = (
    "model", "image_size", "filters", "max_filters", "normalization", "composite",
    "resnet_blocks", "aggan_scheme", "attention_masks", "pool_size",
)


# What a resumed run may change: how long and on what it trains, what it logs; never the networks,
# the optimiser or the batches' making (those would silently make it another run).
RESUMABLE_CHANGES = ("epochs", "data", "summary_every", "image_every", "export")


class ConfigError(ValueError):
    """A configuration that cannot be used (one-line message)."""


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a run; field names equal the training flags."""

    model: str = "pix2pix"
    data: Optional[str] = None
    model_dir: str = "runs/pix2pix"
    image_size: int = 64
    load_size: Optional[int] = None
    batch_size: int = 8
    epochs: int = 10
    decay_epochs: Optional[int] = None  # None: half of epochs, rounded down (resolved on creation)
    steps_per_epoch: Optional[int] = None
    lr: float = 2e-4
    beta_1: float = 0.5
    loss: str = "l1"
    lambda_l1: float = 100.0
    mask_weight: float = 1.0
    composite: bool = False
    lambda_mask: float = 10.0
    filters: int = 64
    max_filters: int = 512
    normalization: str = "batch"
    dropout: float = 0.5
    resnet_blocks: Optional[int] = None  # None: 6 up to 128 px, 9 above (CycleGAN's rule)
    aggan_scheme: int = 2
    attention_masks: int = 10
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    lambda_pixel: float = 1.0
    lambda_tv: float = 0.05
    lambda_attention_gan: float = 1.0
    pool_size: int = 50
    mixed_precision: str = "auto"
    strategy: str = "auto"
    seed: int = 0
    summary_every: int = 100
    image_every: int = 500
    export: bool = True

    def __post_init__(self):
        if self.decay_epochs is None:  # Pix2Pix's convention: constant for half the run, then decay
            self.decay_epochs = self.epochs // 2
        if self.resnet_blocks is None:
            self.resnet_blocks = 6 if self.image_size <= 128 else 9

    @property
    def resolved_load_size(self):
        """Resize-before-crop size: Pix2Pix's 286/256 ratio unless given."""
        return self.load_size or int(round(self.image_size * 286 / 256))

    def validate(self):
        """Raises ConfigError for values no run can use."""
        if self.image_size < 16 or self.image_size % 16:
            raise ConfigError(f"--image_size must be a multiple of 16, at least 16 (got {self.image_size})")
        if self.resolved_load_size < self.image_size:
            raise ConfigError(f"--load_size ({self.load_size}) must be at least --image_size ({self.image_size})")
        for name in ("batch_size", "epochs", "filters"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be positive (got {getattr(self, name)})")
        if not 0 <= self.decay_epochs <= self.epochs:
            raise ConfigError(f"--decay_epochs must be between 0 and --epochs ({self.epochs})")
        for name in ("resnet_blocks", "pool_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name} must not be negative (got {getattr(self, name)})")
        if self.aggan_scheme not in (1, 2):
            raise ConfigError(f"--aggan_scheme must be 1 or 2 (got {self.aggan_scheme})")
        if self.attention_masks < 2:
            raise ConfigError(f"--attention_masks must be at least 2 (got {self.attention_masks})")
        if self.lr <= 0:
            raise ConfigError(f"--lr must be positive (got {self.lr})")
        return self

    def save(self, model_dir):
        path = Path(model_dir) / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, model_dir):
        path = Path(model_dir) / CONFIG_FILE
        if not path.is_file():
            raise ConfigError(f"no {CONFIG_FILE} in {model_dir}: not a tfunmask training directory")
        values = json.loads(path.read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def resumed(cls, saved, given):
        """``saved`` with the flags the user gave (``given``: {name: value}) applied: only
        RESUMABLE_CHANGES may differ, and --epochs may only grow. Returns (config, {name: (old,
        new)}) for what changed; a ConfigError names any other flag that would change."""
        fields = {f.name for f in dataclasses.fields(cls)}
        changes = {name: (getattr(saved, name), value) for name, value in given.items()
                   if name in fields and getattr(saved, name) != value}
        refused = [f"--{name}={new!r} (the run has {old!r})" for name, (old, new) in changes.items()
                   if name not in RESUMABLE_CHANGES]
        if refused:
            raise ConfigError("--resume continues the run as it was configured; it cannot change "
                              + "; ".join(refused) + " (start a new --model_dir for that)")
        if "epochs" in changes and changes["epochs"][1] < saved.epochs:
            raise ConfigError(f"--resume can only add epochs: the run has --epochs={saved.epochs}")
        return dataclasses.replace(saved, **{name: new for name, (_, new) in changes.items()}), changes

    def check_resumable_from(self, saved):
        """Raises ConfigError naming every architecture field that differs from ``saved``."""
        diffs = [f"{name}={getattr(self, name)!r} (checkpoint has {getattr(saved, name)!r})"
                 for name in ARCHITECTURE_FIELDS if getattr(self, name) != getattr(saved, name)]
        if diffs:
            raise ConfigError("cannot resume: architecture flags differ from the checkpoint's: "
                              + "; ".join(diffs))
