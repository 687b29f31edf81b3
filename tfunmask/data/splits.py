"""The train/val/test split rule, shared by the TFRecord writer and the tools that check their flags.

A record's split is a pure function of its SOURCE photo path (a salted SHA-256 hash mapped to
[0, 1)), never of its position or of the face/mask variant. So every face and every mask variant
cut from one photo lands in the same split, reruns and different shard counts give the same
split, and adding photos never moves old ones between splits. Kept free of TensorFlow so that
command-line tools can reject bad flags before TensorFlow starts.
"""
from __future__ import annotations

import bisect
import dataclasses
import hashlib
import itertools
import math
import os
from collections.abc import Sequence
from pathlib import Path

SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.9, 0.05, 0.05)
SALT = "tfunmask"


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Validate train/val/test fractions (three finite values >= 0 summing to 1) and return them."""
    values = tuple(float(f) for f in fractions)
    if len(values) != len(SPLITS):
        raise ValueError(f"split needs {len(SPLITS)} fractions (train,val,test), got {len(values)}")
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"split fractions must be finite and >= 0, got {values}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions must sum to 1, got {values} (sum {sum(values):g})")
    return values


def parse_fractions(text: str) -> tuple[float, float, float]:
    """Parse a flag value like "0.9,0.05,0.05" into checked train/val/test fractions."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"split must be three comma-separated numbers, got {text!r}") from None
    return check_fractions(values)


def check_salt(salt: str, name: str = "the split salt") -> str:
    """`salt` if it can name a split; ValueError naming it as `name` (a tool passes its flag) for an
    empty one, which is a typo: it would silently draw another split than the default's."""
    if not isinstance(salt, str) or not salt:
        raise ValueError(f"{name} must be a non-empty string (the default is {SALT!r}), got {salt!r}")
    return salt


def parse_rule(split: str, salt: str) -> Rule:
    """The rule a tool's --split and --split_salt flags give; ValueError naming the flag."""
    return Rule(parse_fractions(split), check_salt(salt, "--split_salt"))


def source_of(path: str | os.PathLike, folder: str | os.PathLike) -> str:
    """A photo's source: its path relative to the dataset folder, with POSIX separators."""
    return Path(os.path.relpath(path, folder)).as_posix()


@dataclasses.dataclass(frozen=True)
class Rule:
    """One way of splitting sources: the train/val/test fractions and the hash's salt (make_tfrecords's
    --split and the salt it records in dataset.json). Readers of a folder that was split with other
    values than the defaults need them to pick the same photos."""

    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    salt: str = SALT
    _bounds: tuple[float, ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "fractions", check_fractions(self.fractions))
        check_salt(self.salt)
        total = sum(self.fractions)  # the cumulative fractions a draw is placed among, once per rule
        object.__setattr__(self, "_bounds", tuple(itertools.accumulate(v / total for v in self.fractions)))

    def split_of(self, source: str) -> str:
        """`split_of` with this rule's fractions and salt (checked once, when the rule was made)."""
        digest = hashlib.sha256(f"{self.salt}\0{source}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2.0**64
        return SPLITS[min(bisect.bisect_right(self._bounds, draw), len(SPLITS) - 1)]

    @classmethod
    def of_manifest(cls, manifest: dict) -> Rule:
        """The rule a TFRecord folder's dataset.json records ("split": {split: fraction}, "split_salt")."""
        return cls(tuple(manifest["split"][name] for name in SPLITS), manifest["split_salt"])


DEFAULT_RULE = Rule()


def in_split(paths, folder: str | os.PathLike, split: str | None, rule: Rule = DEFAULT_RULE) -> list:
    """The ``paths`` under ``folder`` whose source ``rule`` puts in ``split`` (None: all)."""
    return [path for path in paths if split is None or rule.split_of(source_of(path, folder)) == split]


def split_of(source: str, fractions: Sequence[float] = DEFAULT_FRACTIONS, salt: str = SALT) -> str:
    """Return "train", "val" or "test" for a source photo path, deterministically from its hash.

    `source` is the photo's path relative to the dataset root (POSIX separators), so the split does
    not depend on where the dataset lives; `salt` lets a project draw a different split.
    """
    return Rule(fractions, salt).split_of(source)
