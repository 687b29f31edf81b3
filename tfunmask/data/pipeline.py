"""tf.data input pipelines: TFRecord shards -> augmented, batched float32 tensors for the GANs.

Training follows pix2pix: resize to `load_size`, random crop to `image_size`, random horizontal
flip. The members of a pair (masked, target, mask_map) are stacked along channels and cropped and
flipped ONCE, so they can never disagree. Randomness comes from stateless ops keyed by (seed,
stream, element index), and shard interleaving uses a fixed cycle length, so a seed gives the same
batches on any machine. Paired training pairs may also have their mask's look and their photo
varied, or replaced by the bare face (`variation.Variation`). Evaluation only resizes to `image_size`.
Images come out in [-1, 1], mask maps in {0, 1} (resized with nearest neighbour so they stay
binary).
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import tensorflow as tf

from tfunmask.data import tfrecords
from tfunmask.data.variation import Variation
from tfunmask.data.tfrecords import parse_paired, parse_unpaired
from tfunmask.pixels import to_unit

__all__ = ["paired", "unpaired", "split_files", "split_sizes", "batches"]

AUTOTUNE = tf.data.AUTOTUNE
_MAX_CYCLE = 8  # shards read at once; fixed (not AUTOTUNE) so the order is machine independent
_STREAM_PAIRED, _STREAM_A, _STREAM_B, _STREAM_VARIATION, _STREAM_GUIDE = 0, 1, 2, 3, 4


def _check_args(files: Sequence[str | Path], image_size: int, load_size: int, batch_size: int) -> list[str]:
    """Validate the common arguments; returns the file list as strings."""
    files = [str(f) for f in files]
    if not files:
        raise ValueError("no TFRecord files given (is the split empty or the folder wrong?)")
    if not 0 < image_size <= load_size:
        raise ValueError(f"need 0 < image_size <= load_size, got {image_size} and {load_size}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return files


def _records(files: list[str], *, shuffle: bool, seed: int, shuffle_buffer: int,
             deterministic: bool | None, repeat: bool = False) -> tf.data.Dataset:
    """Serialized Examples read from `files` in parallel, shuffled (files and records) if asked;
    one pass, or endless passes (each reshuffled) if `repeat`.

    The reader is built inside a one-element `flat_map`, so every iterator over the result gets
    its own shuffle state starting from `seed` and yields the same order. Built directly, the
    shuffles would give each new iterator the next order, and Keras' `fit` may open more than
    one iterator on a dataset, which made identical runs intermittently differ.
    """
    def reader(_):
        dataset = tf.data.Dataset.from_tensor_slices(files)
        if shuffle:
            dataset = dataset.shuffle(len(files), seed=seed)
        dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), _MAX_CYCLE),
                                     num_parallel_calls=AUTOTUNE, deterministic=deterministic)
        if shuffle:
            dataset = dataset.shuffle(shuffle_buffer, seed=seed)
        return dataset.repeat() if repeat else dataset

    return tf.data.Dataset.from_tensors(0).flat_map(reader)


def _resize(images: tf.Tensor, size: int) -> tf.Tensor:
    """Bilinear (antialiased when shrinking) resize of [-1, 1] images, clipped back into range."""
    resized = tf.image.resize(images, [size, size], method="bilinear", antialias=True)
    return tf.clip_by_value(resized, -1.0, 1.0)


def _augment(stacked: tf.Tensor, image_size: int, key: tf.Tensor) -> tf.Tensor:
    """Random crop to image_size and random left-right flip, once for all stacked channels."""
    crop_key, flip_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    channels = stacked.shape[-1]
    cropped = tf.image.stateless_random_crop(stacked, [image_size, image_size, channels], seed=crop_key)
    return tf.image.stateless_random_flip_left_right(cropped, seed=flip_key)


def _shuffle_seed(seed: int, stream: int) -> int:
    """tf.data shuffle seed, distinct for every (seed, stream) pair."""
    return seed * 3 + stream


def _element_key(seed: int, stream: int, index: tf.Tensor) -> tf.Tensor:
    """Stateless RNG key of one element: differs per seed, stream (pair / domain) and index."""
    base = tf.constant([seed, stream], dtype=tf.int64)
    return tf.random.experimental.stateless_fold_in(base, index)


def _prepare(stacked_images: tf.Tensor, mask: tf.Tensor | None, index: tf.Tensor, *, image_size: int,
             load_size: int, training: bool, seed: int, stream: int) -> tf.Tensor:
    """Resize (bilinear images, nearest mask), then augment when training; channels stay stacked."""
    size = load_size if training else image_size
    stacked = _resize(stacked_images, size)
    if mask is not None:
        stacked = tf.concat([stacked, tf.image.resize(mask, [size, size], method="nearest")], axis=-1)
    if training:
        stacked = _augment(stacked, image_size, _element_key(seed, stream, index))
    return stacked


def _paired_element(index: tf.Tensor, serialized: tf.Tensor, *, variation: Variation,
                    stream: int = _STREAM_PAIRED, **options) -> dict[str, tf.Tensor]:
    example = parse_paired(serialized)
    images = to_unit(tf.concat([example["masked"], example["target"]], axis=-1))
    mask = tf.cast(example["mask_map"] > 127, tf.float32)
    stacked = _prepare(images, mask, index, stream=stream, **options)
    masked, target, mask = stacked[..., :3], stacked[..., 3:6], stacked[..., 6:]
    if options["training"] and variation:
        key = _element_key(options["seed"], _STREAM_VARIATION, index)
        masked, target, mask = variation.apply(masked, target, mask, key)
    return {"masked": masked, "target": target, "mask_map": mask}


def _unpaired_element(index: tf.Tensor, serialized: tf.Tensor, **options) -> tf.Tensor:
    image = to_unit(parse_unpaired(serialized)["image"])
    return _prepare(image, None, index, **options)


def paired(files: Sequence[str | Path], *, image_size: int = 256, load_size: int = 286,
           batch_size: int = 1, training: bool = True, seed: int = 0, shuffle_buffer: int = 512,
           repeat: bool = False, deterministic: bool | None = None,
           variation: Variation = Variation()) -> tf.data.Dataset:
    """Batches of {"masked", "target": (B, S, S, 3) in [-1, 1], "mask_map": (B, S, S, 1) in {0, 1}}.

    training=True: shuffle, resize to load_size, random crop to image_size and flip (identical
    for the three members), drop_remainder=True so batches have a static size (needed by
    `strategy.experimental_distribute_dataset`). training=False: no shuffling, resize to image_size
    only, last partial batch kept. `repeat` makes it endless (each pass reshuffled and
    re-augmented). `deterministic=None` follows `tf.data.Options.deterministic` (default True);
    False lets parallel reads and maps deliver out of order for speed. `variation` says how
    training pairs are varied (`variation.Variation`; evaluation pairs never are).
    """
    files = _check_args(files, image_size, load_size, batch_size)
    dataset = _records(files, shuffle=training, seed=_shuffle_seed(seed, _STREAM_PAIRED),
                       shuffle_buffer=shuffle_buffer, deterministic=deterministic, repeat=repeat)
    element = partial(_paired_element, image_size=image_size, load_size=load_size,
                      training=training, seed=seed, variation=variation)
    dataset = dataset.enumerate().map(element, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return _batched(dataset, batch_size, training, None if repeat else count_records(files))


def _batched(dataset: tf.data.Dataset, batch_size: int, training: bool, examples: int | None) -> tf.data.Dataset:
    """Batches (the last partial one dropped in training); a one-pass dataset of `examples` also
    states its number of batches, so Keras knows where an evaluation pass ends instead of running
    into the end and warning that the input "ran out of data"."""
    dataset = dataset.batch(batch_size, drop_remainder=training)
    if examples is not None:
        batches = examples // batch_size if training else -(-examples // batch_size)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.prefetch(AUTOTUNE)


def count_records(files: list[str]) -> int:
    """Number of records in TFRecord files (reads them once, without parsing)."""
    return int(tf.data.TFRecordDataset(files).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def _endless(files: list[str], stream: int, element, *, training: bool, seed: int, shuffle_buffer: int,
             deterministic: bool | None, **options) -> tf.data.Dataset:
    """Endless stream of one source's prepared elements (``_unpaired_element`` for a domain,
    ``_paired_element`` for guiding pairs), with its own shuffle seed and RNG stream."""
    dataset = _records(files, shuffle=training, seed=_shuffle_seed(seed, stream), shuffle_buffer=shuffle_buffer,
                       deterministic=deterministic, repeat=True)
    element = partial(element, training=training, seed=seed, stream=stream, **options)
    return dataset.enumerate().map(element, num_parallel_calls=AUTOTUNE, deterministic=deterministic)


def unpaired(files_a: Sequence[str | Path], files_b: Sequence[str | Path], *, image_size: int = 256,
             load_size: int = 286, batch_size: int = 1, training: bool = True, seed: int = 0,
             shuffle_buffer: int = 512, repeat: bool = False, deterministic: bool | None = None,
             paired_files: Sequence[str | Path] | None = None,
             variation: Variation = Variation()) -> tf.data.Dataset:
    """Batches of {"a": masked faces, "b": unmasked faces}, each (B, S, S, 3) in [-1, 1].

    The two domains are shuffled and augmented independently and zipped; the shorter one is
    repeated, so one pass has as many elements as the longer domain (counted once, here). With
    `paired_files`, each element also holds "paired": a synthetic pair as `paired` makes it (its
    own endless stream; `variation` applies to it), which guides an
    AttentionGAN's attention.
    Other arguments as in `paired`.
    """
    files_a = _check_args(files_a, image_size, load_size, batch_size)
    files_b = _check_args(files_b, image_size, load_size, batch_size)
    options = dict(image_size=image_size, load_size=load_size, training=training, seed=seed,
                   shuffle_buffer=shuffle_buffer, deterministic=deterministic)
    streams = {"a": _endless(files_a, _STREAM_A, _unpaired_element, **options),
               "b": _endless(files_b, _STREAM_B, _unpaired_element, **options)}
    if paired_files is not None:
        streams["paired"] = _endless(_check_args(paired_files, image_size, load_size, batch_size), _STREAM_GUIDE,
                                     _paired_element, variation=variation, **options)
    dataset = tf.data.Dataset.zip(streams)
    examples = None if repeat else max(count_records(files_a), count_records(files_b))
    if examples is not None:
        dataset = dataset.take(examples)
    return _batched(dataset, batch_size, training, examples)


# ----------------------------------------------------------------------------- by kind

KINDS = ("paired", "unpaired")


def split_files(data_dir: str | Path, kind: str, split: str) -> list[list[str]]:
    """Shard lists of one split: ``[paired]`` or ``[domain A, domain B]`` (a list may be empty)."""
    if kind == "paired":
        return [tfrecords.paired_files(data_dir, split)]
    return [tfrecords.unpaired_files(data_dir, split, domain) for domain in tfrecords.DOMAINS]


def split_sizes(data_dir: str | Path, kind: str, split: str) -> list[int]:
    """Records in each shard group of ``split_files``: ``dataset.json``'s counts, or counted
    where a folder has no manifest."""
    try:
        counts = tfrecords.read_manifest(data_dir)["counts"]
        return [counts[split]] if kind == "paired" else [counts[d][split] for d in tfrecords.DOMAINS]
    except (OSError, ValueError, KeyError, TypeError):
        return [count_records(files) if files else 0 for files in split_files(data_dir, kind, split)]


def batches(kind: str, files: list[list[str]], *, variation: Variation = Variation(),
            **options) -> tf.data.Dataset:
    """``paired`` or ``unpaired`` batches from ``split_files``' shard lists; an unpaired kind's
    third list, if any, is its guiding synthetic pairs (``unpaired(paired_files=...)``)."""
    if kind == "paired":
        return paired(*files, variation=variation, **options)
    return unpaired(*files[:2], paired_files=files[2] if len(files) > 2 else None, variation=variation, **options)
