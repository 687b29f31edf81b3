"""Records for `tfrecords.write_*_shards`, made from the overlay tool's output or raw photo folders.

Paired mode reads the overlay tool's folder through ``tfunmask.synth.overlay`` (which owns that
format: ``read_entries``, ``read_triples``); unpaired mode detects and aligns faces in two folders of photos (A: masked faces,
B: unmasked). Bad inputs are skipped with a reason recorded in a `Tally`, whose counts add up
(seen == kept + skipped), for the tool's report.json. Deliberately free of TensorFlow: the tool
checks its inputs before TensorFlow starts (fast, clean one-line errors), and face detection
workers do not pay for importing it.
"""
from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path

import numpy as np

from tfunmask.data import faces, images
from tfunmask.data.splits import DEFAULT_RULE, Rule, in_split, source_of
from tfunmask.data.tally import InputError, Tally


def _folder(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{what} folder {path} does not exist or is not a folder")
    return path


# ----------------------------------------------------------------------------- unpaired

def domain_files(folder: str | Path) -> list[Path]:
    """All files under a domain folder (images or not, so non-images get a recorded skip)."""
    folder = _folder(folder, "domain")
    files = images.list_images([folder])
    if not files:
        raise InputError(f"domain folder {folder} holds no files")
    return files


def _crop_job(path: Path, *, size: int, max_faces: int | None, use_cnn: bool, detector: str
              ) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[str, str] | None]:
    """(aligned crop, its landmarks in the crop) of each face of one photo, or ([], (reason,
    message)). Runs in worker processes."""
    try:
        image = images.read_image(path, strict=True)
    except images.ImageError as error:
        return [], (error.reason, str(error))
    except OSError as error:
        return [], ("unreadable", str(error))
    try:
        found = faces.find(image, max_faces=max_faces, use_cnn=use_cnn, detector=detector)
        crops = [(crop, alignment.to_crop(face.landmarks))
                 for face in found for crop, alignment in [faces.align(image, face.landmarks, size)]]
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
                     workers: int = 1, split: str | None = None, rule: Rule = DEFAULT_RULE,
                     progress: Callable[[], None] | None = None) -> Iterator[dict]:
    """Yield an unpaired record per face found in the photos of each domain folder.

    `domains` maps "A"/"B" to folders; faces are found with `faces.find` and cropped to
    `size` x `size` with `faces.align` (each record also holds the face's landmarks in its crop).
    Sources are paths relative to their domain folder; with `split`, only the photos whose source
    `rule` (`splits.Rule`) puts in that split are read (a TFRecord writer's split of the same folder).
    Skipped files go to `tallies[domain]`; `progress` is called after each file. Output order (and
    so the dataset) does not depend on `workers`.
    """
    try:
        faces.check_detector(detector)
    except ValueError as error:
        raise InputError(str(error)) from None
    job = partial(_crop_job, size=size, max_faces=max_faces, use_cnn=use_cnn, detector=detector)
    with _mapper(workers) as ordered_map:
        for domain, folder in domains.items():
            paths = in_split(domain_files(folder), folder, split, rule)
            for path, (crops, skipped) in zip(paths, ordered_map(job, paths), strict=True):
                source = source_of(path, folder)
                if skipped:
                    tallies[domain].skip({"source": source}, *skipped)
                else:
                    tallies[domain].keep(len(crops))
                if progress:
                    progress()
                for face_index, (crop, landmarks) in enumerate(crops):
                    yield {"image": crop, "landmarks": landmarks, "domain": domain, "source": source,
                           "face_index": face_index}
