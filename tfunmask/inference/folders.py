"""Unmasking photos named by files, folders and globs into an output folder, with a report.

Every input file is either written or skipped with a reason, and ``report.json`` says which:
``seen == written + sum(skipped.values())``. Reasons are ``tfunmask.data.images``' read errors
("unreadable", "not_an_image", "truncated", "corrupt", "too_small", ...), "no_face" and "error"
(anything else that went wrong with that one photo; the run goes on).

Layout of the output folder:
  unmasked/<name>            the whole photo with every face unmasked (same size as the input);
  compare/<name>             input | output side by side (``compare=True``);
  crops/<stem>_<i>_input.png, crops/<stem>_<i>_output.png   the aligned crops (``save_crops=True``);
  report.json
``<name>`` keeps a folder input's relative path and a file's name; JPEG and PNG keep their suffix,
other formats are written as PNG; names that would clash get ``-2``, ``-3``... Inputs are never
overwritten: an output folder that is or lies inside an input folder is refused, as is a run
where an output would land on an input file.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from tfunmask.data import images

REPORT_FILE = "report.json"
KEPT_SUFFIXES = (".jpg", ".jpeg", ".png")


class UnmaskError(ValueError):
    """Arguments that cannot be used (one-line message)."""


def plan(inputs, out_dir):
    """``[(input file, output name relative to out_dir/unmasked)]`` for every file ``inputs`` name.

    Raises UnmaskError for a missing input, an output folder inside an input folder, or an output
    that would overwrite an input.
    """
    out_dir = Path(out_dir).resolve()
    pairs, taken, sources = [], set(), set()
    for item in inputs:
        root = Path(item)
        if root.is_dir() and (root.resolve() == out_dir or root.resolve() in out_dir.parents):
            raise UnmaskError(f"--out {out_dir} is inside the input folder {root}: choose another folder")
        try:
            files = images.list_images([item])
        except FileNotFoundError as error:
            raise UnmaskError(str(error)) from None
        for path in files:
            if path.resolve() in sources:  # a file named twice is unmasked once
                continue
            sources.add(path.resolve())
            name = path.relative_to(root) if root.is_dir() else Path(path.name)
            pairs.append((path, _unique(_output_name(name), taken)))
    clash = next((path for path, name in pairs if (out_dir / "unmasked" / name).resolve() in sources), None)
    if clash is not None:
        raise UnmaskError(f"an output would overwrite the input {clash}: choose another --out")
    return pairs


def _output_name(name):
    return name if name.suffix.lower() in KEPT_SUFFIXES else name.with_suffix(".png")


def _unique(name, taken):
    """``name``, or ``name-2``, ``name-3``... whichever is not yet in ``taken`` (which it joins)."""
    candidate, counter = name, 1
    while candidate.as_posix().lower() in taken:
        counter += 1
        candidate = name.with_name(f"{name.stem}-{counter}{name.suffix}")
    taken.add(candidate.as_posix().lower())
    return candidate


def _write_outputs(out_dir, name, photo, result, *, compare, save_crops):
    images.write_image(out_dir / "unmasked" / name, result.image)
    if compare:
        images.write_image(out_dir / "compare" / name, np.hstack([photo, result.image]))
    if save_crops:
        for index, face in enumerate(result.faces):
            stem = out_dir / "crops" / name.parent / f"{name.stem}_{index}"
            images.write_image(stem.with_name(stem.name + "_input.png"), face.crop)
            images.write_image(stem.with_name(stem.name + "_output.png"), face.output)


def _unmask_one(unmasker, path, assume_cropped):
    """((photo, UnmaskResult), None) or (None, (reason, message)) for one input file."""
    try:
        photo = images.read_image(path)
    except images.ImageError as error:
        return None, (error.reason, str(error))
    try:
        result = unmasker.unmask(photo, assume_cropped=assume_cropped)
    except Exception as error:  # one odd photo must not end a long run; it is reported instead
        return None, ("error", f"{path}: {type(error).__name__}: {' '.join(str(error).split())}")
    if not result.faces:
        return None, ("no_face", f"{path}: no face found")
    return (photo, result), None


def _process(unmasker, path, out_dir, name, *, assume_cropped, compare, save_crops):
    """The report entry of one input file: its output and faces, or why it was skipped."""
    unmasked, problem = _unmask_one(unmasker, path, assume_cropped)
    if problem is None:
        photo, result = unmasked
        try:
            _write_outputs(out_dir, name, photo, result, compare=compare, save_crops=save_crops)
        except OSError as error:
            problem = ("write_failed", f"{out_dir / 'unmasked' / name}: {error}")
    if problem is not None:
        return {"source": str(path), "reason": problem[0], "message": problem[1]}
    return {"source": str(path), "output": str(out_dir / "unmasked" / name),
            "faces": [{"box": list(face.box), "detector": face.detector} for face in result.faces]}


def unmask_files(unmasker, inputs, out_dir, *, assume_cropped=False, compare=False, save_crops=False,
                 on_file=None):
    """Unmasks every photo ``inputs`` name into ``out_dir``; returns the report (also report.json).

    ``on_file(done, total, entry)`` is called after each file, ``entry`` being its report line
    (with a "reason" when the file was skipped).
    """
    out_dir = Path(out_dir)
    pairs = plan(inputs, out_dir)
    entries = []
    for done, (path, name) in enumerate(pairs, 1):
        entries.append(_process(unmasker, path, out_dir, name, assume_cropped=assume_cropped,
                                compare=compare, save_crops=save_crops))
        if on_file:
            on_file(done, len(pairs), entries[-1])
    written = [entry for entry in entries if "reason" not in entry]
    skipped = [entry for entry in entries if "reason" in entry]
    report = {"seen": len(pairs), "written": len(written),
              "faces": sum(len(entry["faces"]) for entry in written),
              "skipped": dict(Counter(entry["reason"] for entry in skipped)),
              "assume_cropped": assume_cropped, "flip_average": unmasker.flip_average,
              "outputs": written, "skipped_files": skipped}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report
