"""Mask synthesis as an Apache Beam pipeline: photos -> faces -> masked triples -> paired TFRecords.

What ``tools/overlay_masks.py`` followed by ``tools/make_tfrecords.py --mode=paired`` make, in one
pass that any Beam runner can spread over many machines, reading photos from local or cloud paths
(``apache_beam.io.fileio``) and writing the shards, ``dataset.json`` and ``report.json`` there.
Each photo goes through the overlay tool's own functions (``overlay.synthesize``, ``triple_stems``,
``FileResult.triples``, ``overlay_report``) and each triple through ``tfrecords.paired_example``,
so the records are byte for byte the local tools' for the same seed.

Deterministic whatever the runner or worker count: masks depend on the seed and the photo's
relative path, ids on the sorted list of paths, and a record's shard on its position within its
split in that order (the local writer's round-robin), computed from small side inputs of paths
and counts. Only the order of records inside a shard may differ (shards are streamed, never held
in memory). Needs the ``beam`` extra; nothing in the core imports this module.
"""
from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import apache_beam as beam
import google_crc32c
import numpy as np
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from PIL import Image

from tfunmask.data import faces, splits, tfrecords
from tfunmask.synth import overlay

REPORT = "report.json"


# ----------------------------------------------------------------------------- paths

def _is_local(path: str) -> bool:
    return FileSystems.get_scheme(path) is None


def _root(folder: str | os.PathLike) -> str:
    """A folder as the pipeline names it: local ones absolute (as the overlay tool's messages)."""
    folder = os.fspath(folder)
    return str(Path(folder).resolve()) if _is_local(folder) else folder.rstrip("/")


def check_paths(faces_dir: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[str, str]:
    """Resolved (faces, out) folders; ValueError when the faces folder holds no files or `out` is
    inside it (it would be read as photos)."""
    faces_dir, out_dir = _root(faces_dir), _root(out_dir)
    if _is_local(faces_dir) and _is_local(out_dir):
        faces_dir, out_dir = (str(p) for p in overlay.check_folders(faces_dir, out_dir))
    elif f"{out_dir}/".startswith(f"{faces_dir}/"):
        raise ValueError(f"out folder {out_dir} is inside the faces folder {faces_dir}; choose a folder outside it")
    if not FileSystems.match([f"{faces_dir}/**"], limits=[1])[0].metadata_list:
        raise ValueError(f"faces folder {faces_dir} holds no files")
    return faces_dir, out_dir


def _clear_out(out_dir: str, prefix: str, overwrite: bool) -> None:
    """Refuse (or with `overwrite` delete) the shards an earlier run left in `out_dir`."""
    stale = [m.path for m in FileSystems.match([f"{out_dir}/{prefix}-*.tfrecord*"])[0].metadata_list]
    if stale and not overwrite:
        raise ValueError(f"out folder {out_dir} already holds {prefix} shards; pass overwrite=True (--overwrite)")
    if stale:
        FileSystems.delete(stale)


def _photo(path: str, root: str) -> Iterator[tuple[str, str]]:
    """(path, source relative to the faces folder) of a matched file; hidden ones are left out, as
    the overlay tool's folder listing leaves them out."""
    source = path[len(root) + 1:].replace("\\", "/")
    if not any(part.startswith(".") for part in source.split("/")):
        yield path, source


# ----------------------------------------------------------------------------- per photo

class _Synthesize(beam.DoFn):
    """overlay.synthesize on each (path, source), the photo read through Beam's file systems."""

    def __init__(self, job: overlay.Job):
        self._job = job

    def setup(self):
        faces.load_models(self._job.use_cnn, self._job.detector)  # once per worker, not per photo

    def process(self, element: tuple[str, str]) -> Iterator[overlay.FileResult]:
        path, source = element
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as file:
                data = file.read()
        except OSError as error:  # BeamIOError is one too
            yield overlay.FileResult(source, [], ("unreadable", f"{type(error).__name__}: {error}"))
            return
        yield overlay.synthesize(path, source, self._job, data=data)


def _plan(summaries: list[overlay.FileSummary], fractions: Sequence[float], salt: str) -> dict:
    """Where each photo's triples go: its split, the position of its first triple within that
    split (photos in `source_order`), and the number of triples per split."""
    offsets, counts = {}, dict.fromkeys(splits.SPLITS, 0)
    for summary in sorted(summaries, key=lambda s: overlay.source_order(s.source)):
        split = splits.split_of(summary.source, fractions, salt)
        offsets[summary.source] = (split, counts[split])
        counts[split] += len(summary.styles)
    return {"offsets": offsets, "counts": counts}


def _shard_files(group: str, records: int, shards: int) -> list[str]:
    """The shard names of a group of `records`: as the local writer, at most `shards`, none empty."""
    count = min(shards, records)
    return [tfrecords.shard_name(group, index, count) for index in range(count)]


def _png_array(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.array(image)


def _examples(result: overlay.FileResult, stems: dict, plan: dict, shards: int, prefix: str
              ) -> Iterator[tuple[str, bytes]]:
    """(shard file name, serialized Example) for each triple of one photo."""
    if result.skipped:
        return
    split, offset = plan["offsets"][result.source]
    files = _shard_files(f"{prefix}-{split}", plan["counts"][split], shards)
    for position, (triple_id, masked, target, mask_map, line) in enumerate(result.triples(stems[result.source]),
                                                                           offset):
        record = {"masked": _png_array(masked), "target": _png_array(target), "mask_map": _png_array(mask_map),
                  "source": result.source, "face_index": line["face_index"], "style": line["style"], "id": triple_id}
        yield files[position % shards], tfrecords.paired_example(record)[0]


# ----------------------------------------------------------------------------- writing

def _masked_crc(data: bytes) -> bytes:
    """TFRecord's masked CRC-32C of `data`, little-endian."""
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def tfrecord_frame(example: bytes) -> bytes:
    """One TFRecord: length, its CRC, the data, its CRC (what tf.io.TFRecordWriter writes)."""
    length = struct.pack("<Q", len(example))
    return length + _masked_crc(length) + example + _masked_crc(example)


class _WriteShard(beam.DoFn):
    """Streams one shard's Examples into `<name>.partial`, then renames it: no complete-looking
    shard is left by a failed worker."""

    def __init__(self, out_dir: str):
        self._out_dir = out_dir

    def process(self, element: tuple[str, object]) -> Iterator[tuple[str, int]]:
        name, examples = element
        final, partial = f"{self._out_dir}/{name}", f"{self._out_dir}/{name}.partial"
        count = 0
        with FileSystems.create(partial, compression_type=CompressionTypes.UNCOMPRESSED) as file:
            for example in examples:
                file.write(tfrecord_frame(example))
                count += 1
        FileSystems.rename([partial], [final])
        yield name, count


def _write_json(path: str, content: dict) -> None:
    with FileSystems.create(path, mime_type="application/json",
                            compression_type=CompressionTypes.UNCOMPRESSED) as file:
        file.write((json.dumps(content, indent=2) + "\n").encode("utf-8"))


def _read_json(path: str) -> dict:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as file:
        return json.loads(file.read())


def _finish(summaries: list, plan: dict, written: list, *, job: overlay.Job, faces_dir: str, out_dir: str,
            shards: int, fractions: Sequence[float], salt: str, prefix: str) -> None:
    """Write dataset.json (as the local writer would) and report.json (as the overlay tool would),
    after every shard is written; a shard count that disagrees with the plan is a bug, not a skip."""
    files = {split: _shard_files(f"{prefix}-{split}", plan["counts"][split], shards) for split in splits.SPLITS}
    if sorted(written) != sorted((name, sum(1 for p in range(plan["counts"][split]) if p % shards == index))
                                 for split, names in files.items() for index, name in enumerate(names)):
        raise RuntimeError(f"the shards written {sorted(written)} are not the planned ones {files}")
    sizes = {(job.size, job.size)} if any(plan["counts"].values()) else set()
    _write_json(f"{out_dir}/{tfrecords.MANIFEST}", tfrecords.build_manifest(
        "paired", prefix, sizes, shards, tuple(fractions), salt, counts=plan["counts"], files=files))
    _write_json(f"{out_dir}/{REPORT}", overlay.overlay_report(job, faces_dir, out_dir, summaries))


# ----------------------------------------------------------------------------- the pipeline

def build(pipeline: beam.Pipeline, faces_dir: str, out_dir: str, job: overlay.Job, *, shards: int,
          fractions: Sequence[float], salt: str = splits.SALT, prefix: str = "paired") -> None:
    """Add the synthesis steps to `pipeline` (folders as `check_paths` returns them)."""
    photos = (pipeline
              | "Match" >> fileio.MatchFiles(f"{faces_dir}/**")
              | "Paths" >> beam.FlatMap(lambda metadata: _photo(metadata.path, faces_dir))
              | "Spread" >> beam.Reshuffle())  # one listing in, photos spread over the workers
    stems = (photos
             | "Sources" >> beam.Map(lambda photo: photo[1])
             | "AllSources" >> beam.combiners.ToList()
             | "Stems" >> beam.Map(overlay.triple_stems))
    results = photos | "Synthesize" >> beam.ParDo(_Synthesize(job))
    summaries = results | "Summary" >> beam.Map(overlay.FileResult.summary) | "AllSummaries" >> beam.combiners.ToList()
    plan = summaries | "Plan" >> beam.Map(_plan, fractions, salt)
    written = (results
               | "Examples" >> beam.FlatMap(_examples, beam.pvalue.AsSingleton(stems), beam.pvalue.AsSingleton(plan),
                                            shards, prefix)
               | "ByShard" >> beam.GroupByKey()
               | "WriteShards" >> beam.ParDo(_WriteShard(out_dir)))
    _ = summaries | "Finish" >> beam.Map(
        _finish, beam.pvalue.AsSingleton(plan), beam.pvalue.AsList(written), job=job, faces_dir=faces_dir,
        out_dir=out_dir, shards=shards, fractions=fractions, salt=salt, prefix=prefix)


def synthesize_records(faces_dir: str | os.PathLike, out_dir: str | os.PathLike, *, size: int = 256,
                       family: str = "mesh", styles: Sequence[str] = ("all",), seed: int = 0, per_face: int = 1, use_cnn: bool = True, detector: str = "cascade",
                       shards: int = 8, fractions: Sequence[float] = splits.DEFAULT_FRACTIONS,
                       salt: str = splits.SALT, overwrite: bool = False,
                       beam_args: Sequence[str] = ()) -> tuple[dict, dict]:
    """Run the pipeline with `beam_args` (runner and its options) and wait for it.

    Writes `out_dir/paired-{split}-*.tfrecord`, dataset.json and report.json; returns (manifest,
    report). Bad arguments or folders raise ValueError with a one-line message.
    """
    styles = overlay.check_args(size, family, styles, seed, 1, per_face)
    rule = splits.Rule(fractions, salt)
    if int(shards) != shards or shards < 1:
        raise ValueError(f"shards must be an integer >= 1, got {shards!r}")
    job = overlay.Job(int(size), family, styles, int(seed), int(per_face), bool(use_cnn), faces.check_detector(detector))
    faces_dir, out_dir = check_paths(faces_dir, out_dir)
    _clear_out(out_dir, "paired", overwrite)
    if _is_local(out_dir):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    with beam.Pipeline(options=PipelineOptions(list(beam_args))) as pipeline:
        build(pipeline, faces_dir, out_dir, job, shards=int(shards), fractions=rule.fractions, salt=rule.salt)
    return _read_json(f"{out_dir}/{tfrecords.MANIFEST}"), _read_json(f"{out_dir}/{REPORT}")
