"""The TFRecord schema of tfunmask datasets: writing sharded, split Examples and parsing them back.

Images are stored as PNG bytes, so what the pipeline decodes is bit-for-bit what was written (no
JPEG drift between the overlay tool and training). Paired Examples hold one (masked, target,
mask_map) triple; unpaired Examples hold one aligned face of domain "A" (masked) or "B" (unmasked).
Every record goes to the split `splits.split_of(source)` picks, then round-robin to one of that
split's shards. A `dataset.json` manifest (mode, counts, image size, schema version) is written
beside the shards. Augmentation is not done here: see `tfunmask.data.pipeline`.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from tfunmask.data.splits import (
    DEFAULT_FRACTIONS,
    SALT,
    SPLITS,
    Rule,
    split_of,
)

__all__ = [
    "SCHEMA_VERSION", "SPLITS", "DOMAINS", "MANIFEST", "split_of", "paired_example", "shard_name",
    "build_manifest", "write_paired_shards", "write_unpaired_shards", "parse_paired", "parse_unpaired",
    "paired_files", "unpaired_files", "read_manifest",
]

SCHEMA_VERSION = 1
DOMAINS: tuple[str, ...] = ("A", "B")  # A: masked faces, B: unmasked faces
MANIFEST = "dataset.json"

_PAIRED_FEATURES = {
    "masked": tf.io.FixedLenFeature([], tf.string),
    "target": tf.io.FixedLenFeature([], tf.string),
    "mask_map": tf.io.FixedLenFeature([], tf.string),
    "source": tf.io.FixedLenFeature([], tf.string),
    "face_index": tf.io.FixedLenFeature([], tf.int64),
    "style": tf.io.FixedLenFeature([], tf.string),
    "id": tf.io.FixedLenFeature([], tf.string),
}
_UNPAIRED_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "domain": tf.io.FixedLenFeature([], tf.string),
    "source": tf.io.FixedLenFeature([], tf.string),
    "face_index": tf.io.FixedLenFeature([], tf.int64),
}


# ----------------------------------------------------------------------------- encoding

def _png(array: np.ndarray) -> bytes:
    """Encode a uint8 RGB (H, W, 3) or grey (H, W) array as PNG bytes (lossless).

    OpenCV at zlib level 1: ~4x faster than Pillow's default level 6 at 256 px
    for files ~13% larger, which is what makes building shards fast.
    """
    bgr = array[:, :, ::-1] if array.ndim == 3 else array
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(bgr), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError(f"PNG encoding failed for an array of shape {array.shape}")
    return encoded.tobytes()


def _rgb(record: Mapping, key: str) -> np.ndarray:
    """Fetch record[key] as a checked uint8 (H, W, 3) array."""
    array = np.asarray(record[key])
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"{key} must be uint8 (H, W, 3), got {array.dtype} {array.shape}")
    return array


def _mask(record: Mapping, shape: tuple[int, int]) -> np.ndarray:
    """Fetch record["mask_map"] as a checked uint8 (H, W) array with values in {0, 255}."""
    array = np.asarray(record["mask_map"])
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype != np.uint8 or array.shape != shape:
        raise ValueError(f"mask_map must be uint8 {shape}, got {array.dtype} {array.shape}")
    if not np.isin(array, (0, 255)).all():
        raise ValueError("mask_map must hold only the values 0 and 255")
    return array


def _bytes_feature(value: bytes | str) -> tf.train.Feature:
    data = value.encode("utf-8") if isinstance(value, str) else value
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def _example(features: dict[str, tf.train.Feature]) -> bytes:
    example = tf.train.Example(features=tf.train.Features(feature=features))
    return example.SerializeToString(deterministic=True)  # sorted keys: same bytes in every run


def paired_example(record: Mapping) -> tuple[bytes, tuple[int, int]]:
    """Serialize one paired record (see `write_paired_shards`); returns the Example and the
    triple's (H, W). The same record always gives the same bytes."""
    masked, target = _rgb(record, "masked"), _rgb(record, "target")
    if masked.shape != target.shape:
        raise ValueError(f"masked {masked.shape} and target {target.shape} differ in size")
    mask_map = _mask(record, masked.shape[:2])
    example = _example({
        "masked": _bytes_feature(_png(masked)),
        "target": _bytes_feature(_png(target)),
        "mask_map": _bytes_feature(_png(mask_map)),
        "source": _bytes_feature(record["source"]),
        "face_index": _int_feature(record.get("face_index", 0)),
        "style": _bytes_feature(record.get("style", "")),
        "id": _bytes_feature(record.get("id", "")),
    })
    return example, masked.shape[:2]


def _unpaired_example(record: Mapping) -> tuple[bytes, tuple[int, int]]:
    """Serialize one unpaired record; returns the Example and the image's (H, W)."""
    if record["domain"] not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {record['domain']!r}")
    image = _rgb(record, "image")
    example = _example({
        "image": _bytes_feature(_png(image)),
        "domain": _bytes_feature(record["domain"]),
        "source": _bytes_feature(record["source"]),
        "face_index": _int_feature(record.get("face_index", 0)),
    })
    return example, image.shape[:2]


# ----------------------------------------------------------------------------- writing

def shard_name(group: str, index: int, count: int) -> str:
    """The final name of shard `index` of the `count` shards of a group (e.g. "paired-train")."""
    return f"{group}-{index:05d}-of-{count:05d}.tfrecord"


class _ShardGroup:
    """Round-robin writer for the shards of one group (e.g. "paired-train").

    Shards are written under temporary names and get their final `-of-N` names on `close`, where
    N is the number of shards that received records: a small split gets fewer shards instead of
    empty files, and an interrupted run leaves no complete-looking shard behind.
    """

    def __init__(self, out_dir: Path, group: str, shards: int):
        self._out_dir, self._group, self._shards = out_dir, group, shards
        self._writers: list[tf.io.TFRecordWriter] = []
        self.count = 0

    def _partial(self, index: int) -> Path:
        return self._out_dir / f"{self._group}-{index:05d}.tfrecord.partial"

    def write(self, example: bytes) -> None:
        index = self.count % self._shards
        if index == len(self._writers):
            self._writers.append(tf.io.TFRecordWriter(str(self._partial(index))))
        self._writers[index].write(example)
        self.count += 1

    def close(self) -> list[str]:
        """Close all shards, give them their final names and return those names."""
        self._close_writers()
        names = [shard_name(self._group, i, len(self._writers)) for i in range(len(self._writers))]
        for index, name in enumerate(names):
            self._partial(index).replace(self._out_dir / name)
        return names

    def abort(self) -> None:
        """Close and delete the partial shards after a failure."""
        self._close_writers()
        for index in range(len(self._writers)):
            self._partial(index).unlink(missing_ok=True)

    def _close_writers(self) -> None:
        for writer in self._writers:
            writer.close()


def _stale_shards(out_dir: Path, prefix: str, overwrite: bool) -> list[Path]:
    """Shards of an earlier run with this prefix; refuse to mix runs unless `overwrite`."""
    stale = sorted(out_dir.glob(f"{prefix}-*.tfrecord"))
    if stale and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds {prefix} shards; pass overwrite=True (--overwrite) to replace them")
    return stale


def _write_groups(examples: Iterable[tuple[str, bytes]], out_dir: Path, *, prefix: str,
                  shards: int, overwrite: bool) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Write (group, Example) pairs into per-group shards; returns counts and file names by group."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    out_dir.mkdir(parents=True, exist_ok=True)
    stale = _stale_shards(out_dir, prefix, overwrite)
    groups: dict[str, _ShardGroup] = {}
    try:
        for group, example in examples:
            if group not in groups:
                groups[group] = _ShardGroup(out_dir, group, shards)
            groups[group].write(example)
    except BaseException:
        for shard_group in groups.values():
            shard_group.abort()
        raise
    for path in stale:
        path.unlink()
    return ({name: group.count for name, group in groups.items()},
            {name: group.close() for name, group in groups.items()})


def build_manifest(mode: str, prefix: str, sizes: set[tuple[int, int]], shards: int,
                   fractions: tuple[float, ...], salt: str, counts: dict, files: dict) -> dict:
    """The content of `dataset.json`: what a reader needs to know about the shards (image_size is
    [H, W] when every image had that size, else None)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "mode": mode,
        "prefix": prefix,
        "image_size": list(next(iter(sizes))) if len(sizes) == 1 else None,
        "max_shards_per_split": shards,
        "split": dict(zip(SPLITS, fractions, strict=True)),
        "split_salt": salt,
        "counts": counts,
        "files": files,
    }


def _manifest(out_dir: Path, *args, **kwargs) -> dict:
    """Write `dataset.json` (see `build_manifest`) and return it."""
    manifest = build_manifest(*args, **kwargs)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def write_paired_shards(records: Iterable[Mapping], out_dir: str | Path, *, shards: int = 8,
                        prefix: str = "paired", fractions: Sequence[float] = DEFAULT_FRACTIONS,
                        salt: str = SALT, overwrite: bool = False) -> dict:
    """Write paired records as `out_dir/{prefix}-{split}-{i:05d}-of-{n:05d}.tfrecord` shards.

    Each record is a mapping with "masked", "target" (uint8 (H, W, 3)), "mask_map" (uint8 (H, W)
    in {0, 255}), "source" (relative photo path: decides the split), and optionally "face_index"
    (default 0), "style" and "id" (default ""). Up to `shards` shards per split, fewer when a split
    has fewer records; a split without records has no files. Writes and returns the manifest
    (`dataset.json`). Existing shards with this prefix raise FileExistsError unless `overwrite`.
    """
    out_dir, rule = Path(out_dir), Rule(fractions, salt)
    sizes: set[tuple[int, int]] = set()

    def examples():
        for record in records:
            example, shape = paired_example(record)
            sizes.add(shape)
            yield f"{prefix}-{rule.split_of(record['source'])}", example

    counts, files = _write_groups(examples(), out_dir, prefix=prefix, shards=shards, overwrite=overwrite)
    return _manifest(out_dir, "paired", prefix, sizes, shards, rule.fractions, rule.salt,
                     counts={s: counts.get(f"{prefix}-{s}", 0) for s in SPLITS},
                     files={s: files.get(f"{prefix}-{s}", []) for s in SPLITS})


def write_unpaired_shards(records: Iterable[Mapping], out_dir: str | Path, *, shards: int = 8,
                          prefix: str = "unpaired", fractions: Sequence[float] = DEFAULT_FRACTIONS,
                          salt: str = SALT, overwrite: bool = False) -> dict:
    """Write unpaired records as `out_dir/{prefix}-{domain}-{split}-{i:05d}-of-{n:05d}.tfrecord`.

    Each record is a mapping with "image" (uint8 (H, W, 3)), "domain" ("A" masked | "B"
    unmasked), "source" (relative photo path within its domain folder: decides the split) and
    optionally "face_index" (default 0). Sharding, manifest and `overwrite` as in
    `write_paired_shards`; manifest counts and files are nested by domain, then split.
    """
    out_dir, rule = Path(out_dir), Rule(fractions, salt)
    sizes: set[tuple[int, int]] = set()

    def examples():
        for record in records:
            example, shape = _unpaired_example(record)
            sizes.add(shape)
            yield f"{prefix}-{record['domain']}-{rule.split_of(record['source'])}", example

    counts, files = _write_groups(examples(), out_dir, prefix=prefix, shards=shards, overwrite=overwrite)
    return _manifest(out_dir, "unpaired", prefix, sizes, shards, rule.fractions, rule.salt,
                     counts={d: {s: counts.get(f"{prefix}-{d}-{s}", 0) for s in SPLITS} for d in DOMAINS},
                     files={d: {s: files.get(f"{prefix}-{d}-{s}", []) for s in SPLITS} for d in DOMAINS})


def read_manifest(data_dir: str | Path) -> dict:
    """Read `dataset.json` from a shard folder (checks the schema version)."""
    path = Path(data_dir) / MANIFEST
    manifest = json.loads(path.read_text())
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema version {manifest.get('schema_version')} is not {SCHEMA_VERSION}")
    return manifest


# ----------------------------------------------------------------------------- reading

def _decode_png(data: tf.Tensor, channels: int) -> tf.Tensor:
    """Decode PNG bytes to uint8 (H, W, channels) with the channel count known statically."""
    image = tf.io.decode_png(data, channels=channels, dtype=tf.uint8)
    return tf.ensure_shape(image, [None, None, channels])


def parse_paired(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parse one paired Example: "masked", "target" uint8 (H, W, 3), "mask_map" uint8 (H, W, 1)
    in {0, 255}, plus "source", "style", "id" (tf.string) and "face_index" (int64)."""
    features = tf.io.parse_single_example(serialized, _PAIRED_FEATURES)
    return {
        **features,
        "masked": _decode_png(features["masked"], 3),
        "target": _decode_png(features["target"], 3),
        "mask_map": _decode_png(features["mask_map"], 1),
    }


def parse_unpaired(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parse one unpaired Example: "image" uint8 (H, W, 3), "domain", "source" (tf.string),
    "face_index" (int64)."""
    features = tf.io.parse_single_example(serialized, _UNPAIRED_FEATURES)
    return {**features, "image": _decode_png(features["image"], 3)}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def paired_files(data_dir: str | Path, split: str, prefix: str = "paired") -> list[str]:
    """The sorted shard paths of one split of a paired dataset ([] when that split is empty)."""
    _check_split(split)
    return sorted(str(p) for p in Path(data_dir).glob(f"{prefix}-{split}-*-of-*.tfrecord"))


def unpaired_files(data_dir: str | Path, split: str, domain: str, prefix: str = "unpaired") -> list[str]:
    """The sorted shard paths of one split of one domain ("A" | "B") of an unpaired dataset."""
    _check_split(split)
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    return sorted(str(p) for p in Path(data_dir).glob(f"{prefix}-{domain}-{split}-*-of-*.tfrecord"))


def unpaired_images(data_dir: str | Path, split: str, domain: str, limit: int | None = None) -> np.ndarray:
    """The first `limit` (default all) images of one split and domain, uint8 (N, H, W, 3), in
    shard order; LookupError when there are no such shards."""
    files = unpaired_files(data_dir, split, domain)
    if not files:
        raise LookupError(f"no domain-{domain} {split} shards in {data_dir}")
    records = tf.data.TFRecordDataset(files).take(-1 if limit is None else limit)
    return np.stack([parse_unpaired(record)["image"].numpy() for record in records])
