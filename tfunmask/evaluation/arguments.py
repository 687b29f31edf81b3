"""Evaluate's arguments checked without TensorFlow: a mistyped path or split fails in about a
second, instead of after TensorFlow's import and the model's load (~10 s on two cores).

Only what can be told from the names and the file system is checked here; what needs the files
read (a model's format, the pairs of a split, a dataset.json's rule) stays with ``suite``.
"""
from __future__ import annotations

from pathlib import Path

SPLITS = ("train", "val", "test", "all")


class EvaluationError(ValueError):
    """Input that cannot be evaluated (one-line message)."""


def check(model: str | Path, data: str | Path, *, split: str = "test", held_out: str | Path | None = None,
          masked_real: str | Path | None = None, inception_weights: str | Path | None = None,
          split_from: str | Path | None = None) -> None:
    """Raise EvaluationError, naming the flag, for an unknown split or a path that is not there."""
    if split not in SPLITS:
        raise EvaluationError(f"--split must be one of {', '.join(SPLITS)} (got {split!r})")
    if not Path(model).exists():
        raise EvaluationError(f"--model {model}: no such model file or folder")
    for flag, folder in (("--data", data), ("--held_out", held_out), ("--masked_real", masked_real),
                         ("--split_from", split_from)):
        if folder is not None and not Path(folder).is_dir():
            raise EvaluationError(f"{flag} {folder} is not a folder")
    if inception_weights is not None and not Path(inception_weights).is_file():
        raise EvaluationError(f"--inception_weights {inception_weights} is not a file")
