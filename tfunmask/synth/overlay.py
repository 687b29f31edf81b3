"""Mask overlay over a folder of face photos: the paired (masked, target, mask_map) training data.

This module owns the overlay folder's format: ``overlay_folder`` writes it, ``read_entries`` and
``read_triples`` read it back (for make_tfrecords and the evaluation), checking every file.

Every file under the faces folder is read strictly (greyscale photos are skipped, CMYK and
transparent ones converted as inference converts them), every face in it is found and aligned to
a square crop, and `per_face` synthetic masks are drawn on each crop by one of two independent
families (``FAMILIES``): "mesh" (``masks``: a lit surface built from the landmarks) or "image"
(``mask_images``: flat mask pictures warped onto the landmarks). Training on one and measuring
on the other gives the generalisation gap; each meta.jsonl line and report.json name the family.
Each triple is written as PNGs (masked/, target/, mask_map/ named by the triple's id)
with one line of metadata in meta.jsonl; report.json accounts for every file: either it
produced output or it is listed as skipped with a reason (unreadable, not_an_image,
greyscale, too_small, no_face, ...), so seen == files_with_output + skipped.

Randomness per file comes from the seed and a hash of the file's relative path, triple ids
from the sorted list of relative paths, and the parent writes results in input order, so the
output is the same for any number of worker processes. The faces folder is only ever read.

The per-photo work (``synthesize``), the ids (``triple_stems``, ``FileResult.triples``) and the
report (``overlay_report``) are public so that the Beam pipeline (``tfunmask.synth.beam_pipeline``)
calls the very same functions: one implementation for both.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from PIL import Image

from tfunmask.data import faces, images, splits
from tfunmask.data.tally import InputError, Skipped, Tally
from tfunmask.synth import mask_images, masks

FAMILIES = {"mesh": masks, "image": mask_images}  # name: module with STYLES and render()
STYLES_HELP = ("Mask styles to draw from: 'all' or a comma list of the family's styles ("
               + "; ".join(f"{name}: {', '.join(module.STYLES)}" for name, module in FAMILIES.items()) + ").")
OUTPUT_FOLDERS = ("masked", "target", "mask_map")
META = "meta.jsonl"
REPORT = "report.json"


@dataclasses.dataclass(frozen=True)
class Job:
    """What to do with each photo (shared by all workers)."""

    size: int
    family: str
    styles: tuple[str, ...]
    seed: int
    per_face: int
    use_cnn: bool
    detector: str = "cascade"


@dataclasses.dataclass
class FaceOutput:
    """One aligned face: its target PNG, and one (masked PNG, mask map PNG, render meta) per mask."""

    index: int
    target_png: bytes
    masks: list[tuple[bytes, bytes, dict]]
    meta: dict  # landmarks (crop coords), alignment matrix, box, detector, score


@dataclasses.dataclass(frozen=True)
class FileSummary:
    """What the report needs of one photo (no pixels): its faces and styles, or its skip."""

    source: str
    faces: int
    styles: tuple[str, ...]
    skipped: tuple[str, str] | None = None  # (reason, message)


@dataclasses.dataclass
class FileResult:
    """What one photo gave: faces, or the reason it was skipped."""

    source: str
    faces: list[FaceOutput]
    skipped: tuple[str, str] | None = None  # (reason, message)

    def triples(self, stem: str) -> Iterator[tuple[str, bytes, bytes, bytes, dict]]:
        """(id, masked PNG, target PNG, mask map PNG, meta.jsonl line) per triple; `stem` from
        ``triple_stems``."""
        for face in self.faces:
            for k, (masked_png, map_png, render_meta) in enumerate(face.masks):
                triple_id = f"{stem}_{face.index}_{k}"
                line = {"id": triple_id, "source": self.source, "face_index": face.index, "variant": k,
                        **render_meta, **face.meta}
                yield triple_id, masked_png, face.target_png, map_png, line

    def summary(self) -> FileSummary:
        styles = tuple(render_meta["style"] for face in self.faces for _, _, render_meta in face.masks)
        return FileSummary(self.source, len(self.faces), styles, self.skipped)


def file_rng(seed: int, source: str) -> np.random.Generator:
    """The generator for one photo: from the run's seed and a stable hash of its relative path."""
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "big")])


def _png(array: np.ndarray) -> bytes:
    """Lossless PNG bytes of a uint8 RGB (H, W, 3) or grey (H, W) array."""
    ok, data = cv2.imencode(".png", array[..., ::-1] if array.ndim == 3 else array)
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def _render_face(crop: np.ndarray, landmarks: np.ndarray, job: Job, rng: np.random.Generator) -> list:
    """`job.per_face` masks of `job.family` on one crop, styles cycling through a random order of
    `job.styles`."""
    order = rng.permutation(len(job.styles))
    render = FAMILIES[job.family].render
    out = []
    for k in range(job.per_face):
        rendered = render(crop, landmarks, job.styles[order[k % len(order)]], rng)
        out.append((_png(rendered.masked), _png(rendered.mask_map), {"family": job.family, **rendered.meta}))
    return out


def synthesize(path: str, source: str, job: Job, data: bytes | None = None) -> FileResult:
    """Read, detect, align and mask one photo (runs in worker processes; never raises).

    `source` is the photo's path relative to the faces folder (it seeds the masks); `data`, when
    given, is the photo's content (read from cloud storage), and `path` then only names it.
    """
    try:
        image = images.read_image(path, strict=True, data=data)
    except images.ImageError as error:
        return FileResult(source, [], (error.reason, str(error)))
    except OSError as error:
        return FileResult(source, [], ("unreadable", f"{type(error).__name__}: {error}"))
    try:
        found = faces.find(image, use_cnn=job.use_cnn, detector=job.detector)
        if not found:
            return FileResult(source, [], ("no_face", "no face found"))
        rng = file_rng(job.seed, source)
        outputs = []
        for index, face in enumerate(found):
            crop, alignment = faces.align(image, face.landmarks, job.size)
            landmarks = np.asarray(alignment.to_crop(face.landmarks), np.float32)
            meta = {"landmarks": np.round(landmarks.astype(np.float64), 2).tolist(),
                    "alignment": np.round(np.asarray(alignment.matrix, np.float64), 6).tolist(),
                    "box": [int(b) for b in face.box], "detector": face.detector, "score": round(float(face.score), 4)}
            outputs.append(FaceOutput(index, _png(crop), _render_face(crop, landmarks, job, rng), meta))
        return FileResult(source, outputs)
    except Exception as error:  # one odd photo must not end a long run; it is reported instead
        return FileResult(source, [], ("error", f"{type(error).__name__}: {error}"))


def _synthesize_task(task: tuple[str, str], job: Job) -> FileResult:
    return synthesize(*task, job)


def _inside(path: Path, folder: Path) -> bool:
    """True when `path` is `folder` or lies under it (both resolved)."""
    return path == folder or folder in path.parents


def check_folders(faces_dir: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """Resolve the folders; refuse a missing faces folder and any out folder that would write into it."""
    faces_dir, out_dir = Path(faces_dir).resolve(), Path(out_dir).resolve()
    if not faces_dir.is_dir():
        raise ValueError(f"faces folder {faces_dir} does not exist or is not a folder")
    if _inside(out_dir, faces_dir):
        raise ValueError(f"out folder {out_dir} is inside the faces folder {faces_dir}; choose a folder outside it")
    if any(_inside(faces_dir, out_dir / name) for name in OUTPUT_FOLDERS):
        raise ValueError(f"faces folder {faces_dir} is inside the output folders of {out_dir}; "
                         "choose another out folder")
    return faces_dir, out_dir


def check_args(size: int, family: str, styles: Sequence[str], seed: int, workers: int,
               per_face: int) -> tuple[str, ...]:
    """Validate the family, the numeric arguments and the style names; returns the (normalised) styles."""
    if family not in FAMILIES:
        raise ValueError(f"unknown mask family {family!r}; choose from {', '.join(FAMILIES)}")
    styles = masks.parse_styles(",".join(styles), FAMILIES[family].STYLES)
    for name, value, low in (("size", size, 32), ("seed", seed, 0), ("workers", workers, 1), ("per_face", per_face, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return styles


def _prepare_out(out_dir: Path, overwrite: bool) -> None:
    """Create the output folders; an earlier run's output is an error unless `overwrite` removes it."""
    previous = [out_dir / name for name in (*OUTPUT_FOLDERS, META, REPORT) if (out_dir / name).exists()]
    if previous and not overwrite:
        raise ValueError(f"out folder {out_dir} already holds overlay output; pass overwrite=True (--overwrite)")
    for path in previous:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    for name in OUTPUT_FOLDERS:
        (out_dir / name).mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def _ordered_map(workers: int, chunksize: int):
    """An order-preserving lazy map over `workers` spawned processes (safe whatever the parent imported)."""
    if workers <= 1:
        yield map
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield partial(pool.imap, chunksize=chunksize)


class _Progress:
    """keras.utils.Progbar over the files (imported only when shown: Keras pulls in TensorFlow)."""

    def __init__(self, total: int, enabled: bool):
        self._bar, self._done = None, 0
        if enabled:
            import keras  # noqa: PLC0415 - deferred on purpose, see class docstring

            self._bar = keras.utils.Progbar(total, unit_name="file")

    def step(self) -> None:
        self._done += 1
        if self._bar is not None:
            self._bar.update(self._done)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def source_order(source: str) -> PurePosixPath:
    """Sort key of relative photo paths: the order in which a folder's photos are processed."""
    return PurePosixPath(source)


def triple_stems(sources: Iterable[str]) -> dict[str, str]:
    """{source: id stem} for all photos of a run: file-system safe, unique, a repeated stem getting
    "-2", "-3"... in `source_order`. Triple ids are f"{stem}_{face_index}_{k}"."""
    stems, taken = {}, set()
    for source in sorted(sources, key=source_order):
        base = _UNSAFE.sub("_", PurePosixPath(source).stem) or "image"
        stem, n = base, 1
        while stem in taken:
            n += 1
            stem = f"{base}-{n}"
        taken.add(stem)
        stems[source] = stem
    return stems


def _write(result: FileResult, stem: str, out_dir: Path, meta_file) -> None:
    """Write one photo's triples and meta lines."""
    for triple_id, masked_png, target_png, map_png, line in result.triples(stem):
        (out_dir / "masked" / f"{triple_id}.png").write_bytes(masked_png)
        (out_dir / "target" / f"{triple_id}.png").write_bytes(target_png)
        (out_dir / "mask_map" / f"{triple_id}.png").write_bytes(map_png)
        meta_file.write(json.dumps(line) + "\n")


def overlay_report(job: Job, faces_dir: str, out_dir: str, summaries: Iterable[FileSummary]) -> dict:
    """report.json: the run's settings and counts that add up (seen == files_with_output + skipped),
    with the skipped files listed in `source_order` whatever order `summaries` came in."""
    summaries = sorted(summaries, key=lambda summary: source_order(summary.source))
    styles, skipped, skipped_files = Counter(), Counter(), []
    for summary in summaries:
        if summary.skipped:
            reason, message = summary.skipped
            skipped[reason] += 1
            skipped_files.append({"source": summary.source, "reason": reason, "message": message})
        styles.update(summary.styles)
    return {"faces_dir": faces_dir, "out_dir": out_dir, "size": job.size, "family": job.family,
            "styles": list(job.styles),
            "seed": job.seed, "per_face": job.per_face, "use_cnn": job.use_cnn, "detector": job.detector,
            "seen": len(summaries), "files_with_output": sum(1 for s in summaries if not s.skipped),
            "faces_written": sum(s.faces for s in summaries), "triples_written": sum(styles.values()),
            "skipped": dict(sorted(skipped.items())), "skipped_files": skipped_files,
            "styles_written": dict(sorted(styles.items()))}


def _results(tasks: list[tuple[str, str]], job: Job, workers: int) -> Iterator[FileResult]:
    """Per-file results in input order, computed by `workers` processes."""
    chunksize = max(1, min(8, len(tasks) // (4 * workers)))
    with _ordered_map(workers, chunksize) as ordered_map:
        yield from ordered_map(partial(_synthesize_task, job=job), tasks)


def overlay_folder(faces_dir: str | Path, out_dir: str | Path, *, size: int = 256,
                   family: str = "mesh", styles: Sequence[str] = ("all",), seed: int = 0, workers: int = 1,
                   per_face: int = 1, progress: bool = True, use_cnn: bool = True, detector: str = "cascade",
                   overwrite: bool = False) -> dict:
    """Write (masked, target, mask_map) triples for every face in `faces_dir` into `out_dir`.

    `family` picks the mask family ("mesh" or "image", see ``FAMILIES``) and `styles` its styles
    ("all" or names from that family's ``STYLES``).

    Output: masked/, target/, mask_map/ PNGs named `<id>.png`, meta.jsonl (one line per
    triple) and report.json (returned too). `use_cnn` lets `faces.find` fall back to the
    CNN detector; `overwrite` replaces an earlier run's output in `out_dir`. Bad user
    input (missing or empty faces folder, out folder inside it, bad arguments) raises
    ValueError with a one-line message.
    """
    faces_dir, out_dir = check_folders(faces_dir, out_dir)
    styles = check_args(size, family, styles, seed, workers, per_face)
    files = images.list_images([faces_dir])
    if not files:
        raise ValueError(f"faces folder {faces_dir} holds no files")
    _prepare_out(out_dir, overwrite)
    job = Job(int(size), family, styles, int(seed), int(per_face), bool(use_cnn), faces.check_detector(detector))
    tasks = [(str(path), splits.source_of(path, faces_dir)) for path in files]
    stems, summaries, bar = triple_stems(source for _, source in tasks), [], _Progress(len(files), progress)
    with open(out_dir / META, "w", encoding="utf-8") as meta_file:
        for result in _results(tasks, job, workers):
            _write(result, stems[result.source], out_dir, meta_file)
            summaries.append(result.summary())
            bar.step()
    report = overlay_report(job, str(faces_dir), str(out_dir), summaries)
    (out_dir / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


# ----------------------------------------------------------------------------- reading

def read_entries(input_dir: str | Path) -> list[str]:
    """The non-blank lines of the overlay output's meta.jsonl (one per triple).

    Raises InputError when the folder, its meta.jsonl or its image folders are missing, or when
    meta.jsonl lists nothing.
    """
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise InputError(f"input folder {input_dir} does not exist or is not a folder")
    missing = [name for name in (META, *OUTPUT_FOLDERS) if not (input_dir / name).exists()]
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
                raise Skipped("bad_mode", f"{path.parent.name}/{path.name} is {image.mode}, not {mode}")
            return np.array(image)
    except FileNotFoundError:
        raise Skipped("missing_file", f"{path.parent.name}/{path.name} is missing") from None
    except OSError as error:
        raise Skipped("unreadable", f"{path.parent.name}/{path.name}: {error}") from None


def _triple(input_dir: Path, meta: dict) -> dict:
    """Load and check the (masked, target, mask_map) triple of one meta.jsonl entry."""
    masked, target = (_read_png(input_dir / name / f"{meta['id']}.png", "RGB") for name in ("masked", "target"))
    mask_map = _read_png(input_dir / "mask_map" / f"{meta['id']}.png", "L")
    if not masked.shape == target.shape == (*mask_map.shape, 3):
        raise Skipped("size_mismatch", f"sizes differ: masked {masked.shape[:2]}, target "
                                        f"{target.shape[:2]}, mask_map {mask_map.shape}")
    if not np.isin(mask_map, (0, 255)).all():
        raise Skipped("bad_mask_map", "mask_map holds values other than 0 and 255")
    return {"masked": masked, "target": target, "mask_map": mask_map, "source": meta["source"],
            "face_index": int(meta.get("face_index", 0)), "style": str(meta.get("style", "")),
            "family": str(meta.get("family", "mesh")),
            "id": meta["id"], "landmarks": meta.get("landmarks")}


def _meta(line: str) -> dict:
    """Parse one meta.jsonl line, which must name at least the triple's id and source photo."""
    try:
        meta = json.loads(line)
    except json.JSONDecodeError as error:
        raise Skipped("bad_meta", f"not JSON: {error}") from None
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), str) and meta[k] for k in ("id", "source")):
        raise Skipped("bad_meta", "entry lacks a string 'id' or 'source'")
    return meta


def read_triples(input_dir: str | Path, entries: list[str], tally: Tally,
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
        except Skipped as skipped:
            tally.skip(item, skipped.reason, str(skipped))
        if progress:
            progress()
        if record is not None:
            yield record


def entry_source(line: str) -> str | None:
    """The source photo a meta.jsonl line names, or None for a line ``read_triples`` would skip."""
    try:
        return _meta(line)["source"]
    except Skipped:
        return None
