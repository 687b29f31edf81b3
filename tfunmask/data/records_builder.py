"""Records for `tfrecords.write_*_shards`, made from the overlay tool's output or raw photo folders.

Paired mode reads the overlay tool's folder (masked/, target/, mask_map/ PNGs named by id, and
meta.jsonl); unpaired mode detects and aligns faces in two folders of photos (A: masked faces,
B: unmasked). Bad inputs are skipped with a reason recorded in a `Tally`, whose counts add up
(seen == kept + skipped), for the tool's report.json. Deliberately free of TensorFlow: the tool
checks its inputs before TensorFlow starts (fast, clean one-line errors), and face detection
workers do not pay for importing it.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from tfunmask.data import faces, images

META = "meta.jsonl"
PAIRED_FOLDERS = ("masked", "target", "mask_map")


class InputError(ValueError):
    """A missing, empty or malformed input folder; str(e) is a one-line message."""


class _Skipped(Exception):
    """One paired item that cannot be used; `reason` is a short slug for the report."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Tally:
    """What happened to the inputs of one folder; seen == kept + sum(skipped.values()).

    An input is a meta.jsonl line (paired) or a photo file (unpaired); `written` counts the
    records it produced (one per triple, one per aligned face).
    """

    seen: int = 0
    kept: int = 0
    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    skipped_items: list[dict] = field(default_factory=list)

    def keep(self, records: int) -> None:
        self.seen, self.kept, self.written = self.seen + 1, self.kept + 1, self.written + records

    def skip(self, item: dict, reason: str, message: str) -> None:
        self.seen += 1
        self.skipped[reason] += 1
        self.skipped_items.append({**item, "reason": reason, "message": message})

    def as_dict(self) -> dict:
        return {"seen": self.seen, "kept": self.kept, "written": self.written,
                "skipped": dict(sorted(self.skipped.items())), "skipped_items": self.skipped_items}


def _folder(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{what} folder {path} does not exist or is not a folder")
    return path


# ----------------------------------------------------------------------------- paired

def paired_entries(input_dir: str | Path) -> list[str]:
    """The non-blank lines of the overlay output's meta.jsonl (one per triple).

    Raises InputError when the folder, its meta.jsonl or its image folders are missing, or when
    meta.jsonl lists nothing.
    """
    input_dir = _folder(input_dir, "input")
    missing = [name for name in (META, *PAIRED_FOLDERS) if not (input_dir / name).exists()]
    if missing:
        raise InputError(f"{input_dir} lacks {', '.join(missing)} (expected the overlay tool's output)")
    entries = [line for line in (input_dir / META).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not entries:
        raise InputError(f"{input_dir / META} lists no triples")
    return entries


def _read_png(path: Path, mode: str) -> np.ndarray:
    """Read one of the overlay tool's PNGs, insisting on its PIL mode ("RGB" or "L")."""
    try:
        with Image.open(path) as image:
            if image.mode != mode:
                raise _Skipped("bad_mode", f"{path.parent.name}/{path.name} is {image.mode}, not {mode}")
            return np.array(image)
    except FileNotFoundError:
        raise _Skipped("missing_file", f"{path.parent.name}/{path.name} is missing") from None
    except OSError as error:
        raise _Skipped("unreadable", f"{path.parent.name}/{path.name}: {error}") from None


def _triple(input_dir: Path, meta: dict) -> dict:
    """Load and check the (masked, target, mask_map) triple of one meta.jsonl entry."""
    masked, target = (_read_png(input_dir / name / f"{meta['id']}.png", "RGB") for name in ("masked", "target"))
    mask_map = _read_png(input_dir / "mask_map" / f"{meta['id']}.png", "L")
    if not masked.shape == target.shape == (*mask_map.shape, 3):
        raise _Skipped("size_mismatch", f"sizes differ: masked {masked.shape[:2]}, target "
                                        f"{target.shape[:2]}, mask_map {mask_map.shape}")
    if not np.isin(mask_map, (0, 255)).all():
        raise _Skipped("bad_mask_map", "mask_map holds values other than 0 and 255")
    return {"masked": masked, "target": target, "mask_map": mask_map, "source": meta["source"],
            "face_index": int(meta.get("face_index", 0)), "style": str(meta.get("style", "")),
            "id": meta["id"]}


def _meta(line: str) -> dict:
    """Parse one meta.jsonl line, which must name at least the triple's id and source photo."""
    try:
        meta = json.loads(line)
    except json.JSONDecodeError as error:
        raise _Skipped("bad_meta", f"not JSON: {error}") from None
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), str) and meta[k] for k in ("id", "source")):
        raise _Skipped("bad_meta", "entry lacks a string 'id' or 'source'")
    return meta


def paired_records(input_dir: str | Path, entries: list[str], tally: Tally,
                   progress: Callable[[], None] | None = None) -> Iterator[dict]:
    """Yield a paired record per usable meta.jsonl entry; skips go to `tally`.

    `progress` is called after each entry. Records follow meta.jsonl order, so output is
    deterministic.
    """
    input_dir = Path(input_dir)
    for number, line in enumerate(entries, 1):
        record, item = None, {"line": number}
        try:
            meta = _meta(line)
            item.update(id=meta["id"], source=meta["source"])
            record = _triple(input_dir, meta)
            tally.keep(1)
        except _Skipped as skipped:
            tally.skip(item, skipped.reason, str(skipped))
        if progress:
            progress()
        if record is not None:
            yield record


# ----------------------------------------------------------------------------- unpaired

def domain_files(folder: str | Path) -> list[Path]:
    """All files under a domain folder (images or not, so non-images get a recorded skip)."""
    folder = _folder(folder, "domain")
    files = images.list_images([folder])
    if not files:
        raise InputError(f"domain folder {folder} holds no files")
    return files


def _crop_job(path: Path, *, size: int, max_faces: int | None, use_cnn: bool, detector: str
              ) -> tuple[list[np.ndarray], tuple[str, str] | None]:
    """Aligned face crops of one photo, or ([], (reason, message)). Runs in worker processes."""
    try:
        image = images.read_image(path, strict=True)
    except images.ImageError as error:
        return [], (error.reason, str(error))
    except OSError as error:
        return [], ("unreadable", str(error))
    try:
        found = faces.find(image, max_faces=max_faces, use_cnn=use_cnn, detector=detector)
        crops = [faces.align(image, face.landmarks, size)[0] for face in found]
    except Exception as error:  # one odd photo must not end a long run; it is reported instead
        return [], ("error", f"{type(error).__name__}: {error}")
    return (crops, None) if crops else ([], ("no_face", "no face found"))


@contextlib.contextmanager
def _mapper(workers: int):
    """An ordered, lazy `map` over `workers` processes (spawned: safe whatever the parent imported;
    leaving the block terminates them, so an interrupted run stops at once)."""
    if workers <= 1:
        yield map
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield partial(pool.imap, chunksize=2)


def unpaired_records(domains: Mapping[str, str | Path], tallies: Mapping[str, Tally], *, size: int = 256,
                     max_faces: int | None = None, use_cnn: bool = True, detector: str = "cascade",
                     workers: int = 1,
                     progress: Callable[[], None] | None = None) -> Iterator[dict]:
    """Yield an unpaired record per face found in the photos of each domain folder.

    `domains` maps "A"/"B" to folders; faces are found with `faces.find` and cropped to
    `size` x `size` with `faces.align`. Sources are paths relative to their domain folder. Skipped
    files go to `tallies[domain]`; `progress` is called after each file. Output order (and so the
    dataset) does not depend on `workers`.
    """
    try:
        faces.check_detector(detector)
    except ValueError as error:
        raise InputError(str(error)) from None
    job = partial(_crop_job, size=size, max_faces=max_faces, use_cnn=use_cnn, detector=detector)
    with _mapper(workers) as ordered_map:
        for domain, folder in domains.items():
            files = domain_files(folder)
            for path, (crops, skipped) in zip(files, ordered_map(job, files), strict=True):
                source = Path(os.path.relpath(path, folder)).as_posix()
                if skipped:
                    tallies[domain].skip({"source": source}, *skipped)
                else:
                    tallies[domain].keep(len(crops))
                if progress:
                    progress()
                for face_index, crop in enumerate(crops):
                    yield {"image": crop, "domain": domain, "source": source, "face_index": face_index}
