"""Evaluating an unmasking generator against baselines, on paired test faces and on real masked photos.

Paired data (the overlay tool's folder, or paired TFRecord shards) has the true unmasked face of
every masked crop, so each method is scored against it: the masked input itself (the floor: a
model must beat doing nothing), OpenCV's Telea inpainting of the mask region (a classical
method needing no training), and the model. Real masked photos have no ground truth: their
faces are found and aligned, unmasked by the model, and scored by what needs none (detection
rate, distance of their distribution to the real unmasked test faces). Real photos are taken from
the same split as the pairs, by the rule that split them into unpaired TFRecords, so an unpaired
model is never scored on the photos it trained on.

Synthetic masks come in two independent families (``tfunmask.synth.overlay.FAMILIES``). Paired
data masked by the family kept out of training (``held_out``) is scored the same way beside the
in-family data; the difference of every metric is the generalisation gap.

Metrics (one row per method; `tfunmask.evaluation` holds the definitions):
  fid, kid, kid_std  InceptionV3 Fréchet / kernel distance to the true faces (need the weights);
  face_fd            Fréchet distance in dlib's 128-d face-embedding space (always available);
  psnr, ssim, l1     against the true face, whole image; *_mask: mask region alone;
  identity_cosine    mean cosine similarity of dlib embeddings of output and true face;
  identity_match     share of outputs within dlib's same-person distance (0.6) of the true face;
  detection_rate     share of crops in which dlib's HOG detector finds a face.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from tfunmask import runs
from tfunmask.config import CONFIG_FILE, ConfigError
from tfunmask.data import images, records_builder, splits, tfrecords
from tfunmask.data.tally import InputError, Tally
from tfunmask.evaluation import detection, features, mask_map, report
from tfunmask.evaluation.arguments import EvaluationError, check
from tfunmask.evaluation.scoring import (
    Described,
    describe,
    distribution_scores,
    mean_values,
    paired_values,
)
from tfunmask.inference import photos
from tfunmask.inference.generators import ModelError
from tfunmask.synth import overlay


@dataclasses.dataclass
class Pairs:
    """Paired test crops at the model's size: uint8 RGB (N, S, S, 3), mask maps (N, S, S) in
    {0, 255}, their ids, their landmarks (N, 68, 2) when the data has them, and the mask
    families that drew them ("mesh", "image"; "" where the data does not say)."""

    masked: np.ndarray
    target: np.ndarray
    mask_map: np.ndarray
    ids: list[str]
    landmarks: np.ndarray | None = None
    families: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- data

def _resized(images: list[np.ndarray], size: int, nearest: bool = False) -> np.ndarray:
    """Stack crops resized to size x size (area when shrinking, cubic when growing, or nearest)."""
    def one(array):
        if array.shape[:2] == (size, size):
            return array
        method = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA if array.shape[0] > size else cv2.INTER_CUBIC
        return cv2.resize(array, (size, size), interpolation=method)
    return np.stack([one(np.asarray(a)) for a in images])


def _overlay_records(folder: Path, split: str, limit: int | None, rule: splits.Rule) -> tuple[list[dict], int]:
    """The overlay folder's triples in `split` (by `rule` on the source photo, as make_tfrecords
    splits them) with their meta "landmarks"; and the total."""
    try:
        entries = overlay.read_entries(folder)
    except InputError as error:
        raise EvaluationError(str(error)) from None
    chosen = [line for line in entries if split == "all" or (
        (source := overlay.entry_source(line)) is not None and rule.split_of(source) == split)]
    return list(overlay.read_triples(folder, chosen[:limit], Tally())), len(entries)


def _tfrecord_records(folder: Path, split: str, limit: int | None) -> tuple[list[dict], int]:
    """Paired TFRecord shards of `split` in `folder`, decoded; and the number of shards found."""
    files = [f for s in (tfrecords.SPLITS if split == "all" else (split,)) for f in tfrecords.paired_files(folder, s)]
    dataset = tf.data.TFRecordDataset(files).map(tfrecords.parse_paired)
    records = [{"masked": e["masked"].numpy(), "target": e["target"].numpy(), "mask_map": e["mask_map"].numpy()[..., 0],
                "id": e["id"].numpy().decode(), "landmarks": None, "family": ""}
               for e in islice(dataset, limit)] if files else []
    return records, len(files)


def load_pairs(data: str | Path, size: int, *, split: str = "test", limit: int | None = None,
               rule: splits.Rule = splits.DEFAULT_RULE) -> Pairs:
    """Paired crops from an overlay folder (meta.jsonl, masked/, target/, mask_map/; its `split` by
    `rule`) or a folder of paired-<split>-*.tfrecord shards, resized to the model's `size`; at most
    `limit` pairs."""
    folder = Path(data)
    if not folder.is_dir():
        raise EvaluationError(f"--data {folder} is not a folder")
    if (folder / "meta.jsonl").is_file():
        records, total = _overlay_records(folder, split, limit, rule)
        where = f"{total} pairs in all"
    else:
        records, total = _tfrecord_records(folder, split, limit)
        where = f"{total} paired TFRecord shards of that split"
    if not records:
        raise EvaluationError(f"no {split}-split pairs in {folder} ({where}; --split=all takes every pair)")
    sizes = [r["target"].shape[0] for r in records]
    landmarks = None
    if all(r["landmarks"] is not None for r in records):
        landmarks = np.array([np.asarray(r["landmarks"], np.float32) * size / s for r, s in zip(records, sizes)])
    return Pairs(masked=_resized([r["masked"] for r in records], size),
                 target=_resized([r["target"] for r in records], size),
                 mask_map=_resized([r["mask_map"] for r in records], size, nearest=True),
                 ids=[r["id"] for r in records], landmarks=landmarks,
                 families=tuple(sorted({r["family"] for r in records} - {""})))


@dataclasses.dataclass
class RealFaces:
    """Real masked face crops (N, S, S, 3) uint8, their landmarks in the crops (None for aligned
    crops), their ids (the photo's path in the folder, and "#k" for its k-th face) and counts of
    files seen, faces and skips."""

    crops: np.ndarray
    landmarks: np.ndarray | None
    ids: list[str]
    counts: dict


def _aligned_crops(folder: Path, limit: int | None, split: str | None, rule: splits.Rule) -> RealFaces:
    """Every readable image of `folder` (of `split`; up to `limit`), taken as an aligned crop
    (landmarks unknown)."""
    crops, ids, skipped, seen = [], [], Counter(), 0
    for path in splits.in_split(images.list_images([folder]), folder, split, rule):
        if limit is not None and len(crops) >= limit:
            break
        seen += 1
        try:
            crops.append(images.read_image(path))
            ids.append(splits.source_of(path, folder))
        except images.ImageError as error:
            skipped[error.reason] += 1
    return RealFaces(crops, None, ids, {"seen": seen, "faces": len(crops), "skipped": dict(skipped)})


def _photo_crops(folder: Path, size: int, limit: int | None, split: str | None, rule: splits.Rule) -> RealFaces:
    """The largest face of each photo of `folder` (of `split`; up to `limit` faces), aligned as
    training data is, with its landmarks in the crop."""
    tally = Tally()
    found = list(islice(records_builder.unpaired_records({"A": folder}, {"A": tally}, size=size, max_faces=1,
                                                         split=split, rule=rule), limit))
    landmarks = np.array([record["landmarks"] for record in found]) if found else None
    return RealFaces([r["image"] for r in found], landmarks, [f"{r['source']}#{r['face_index']}" for r in found],
                     {"seen": tally.seen, "faces": len(found), "skipped": dict(tally.skipped)})


def load_real_masked(folder: str | Path, size: int, *, aligned: bool = False, limit: int | None = None,
                     split: str = "all", rule: splits.Rule = splits.DEFAULT_RULE) -> RealFaces:
    """Real masked faces (`RealFaces`: crops resized to (N, size, size, 3), landmarks, ids, counts).

    Only photos of `split` (by `rule` on their path in `folder`, as ``make_tfrecords --mode=unpaired``
    split the same folder; "all": every photo) are read, so a model trained unpaired on the folder's
    train split is scored on photos it never saw.

    Photos are searched with `faces.find` (its default cascade: BlazeFace, which finds masked
    faces, then dlib's detectors) and aligned with `faces.align`; `aligned=True` takes images that already are
    aligned crops and only resizes them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationError(f"--masked_real {folder} is not a folder")
    chosen = None if split == "all" else split
    real = (_aligned_crops(folder, limit, chosen, rule) if aligned
            else _photo_crops(folder, size, limit, chosen, rule))
    if not real.crops:
        where = "" if chosen is None else f" of the {split} split"
        raise EvaluationError(f"no faces found in --masked_real {folder} ({real.counts['seen']} files{where})")
    return dataclasses.replace(real, crops=_resized(real.crops, size))


def split_rule(dataset: str | Path | None) -> splits.Rule:
    """The split rule make_tfrecords recorded in the dataset.json of the TFRecord folder `dataset`
    (None: make_tfrecords's defaults)."""
    if dataset is None:
        return splits.DEFAULT_RULE
    try:
        return splits.Rule.of_manifest(tfrecords.read_manifest(dataset))
    except OSError:
        raise EvaluationError(f"--split_from {dataset} holds no readable {tfrecords.MANIFEST} "
                              "(make_tfrecords writes one beside its shards)") from None
    except (ValueError, KeyError, TypeError) as error:
        raise EvaluationError(f"--split_from {dataset}: its {tfrecords.MANIFEST} gives no split rule "
                              f"({error})") from None


# ----------------------------------------------------------------------------- methods

def scored_epoch(model: str | Path, epoch: int | None = None) -> int | None:
    """`epoch`; without one, for a training run folder that holds no export (trained with
    --export=false), its newest checkpoint's epoch; else None (the exported generator is scored)."""
    run = runs.Run(model)
    if epoch is not None or not (run.root / CONFIG_FILE).is_file() or (run.saved_model / "saved_model.pb").is_file():
        return epoch
    return max(run.saved_epochs(), default=None)


def load_model(path: str | Path, epoch: int | None = None, flip_average: bool = True):
    """The model as an `photos.Unmasker` (SavedModel or training run folder, .tflite, .keras); with
    `epoch`, the generator of that epoch's checkpoint of the training run folder `path`."""
    try:
        if epoch is None:
            return photos.load(path, flip_average=flip_average)
        return photos.load(runs.restore(path, epoch)[0].export_generator(), flip_average=flip_average)
    except (ModelError, ConfigError) as error:
        raise EvaluationError(f"--model {error}") from None


def inpaint_telea(masked: np.ndarray, mask_map: np.ndarray) -> np.ndarray:
    """OpenCV's Telea inpainting of the mask region of each crop (radius ~2 % of the side)."""
    radius = max(3, masked.shape[1] // 50)
    return np.stack([cv2.inpaint(crop, (mask > 0).astype(np.uint8), radius, cv2.INPAINT_TELEA)
                     for crop, mask in zip(masked, mask_map)])


# ----------------------------------------------------------------------------- evaluation

def _sheet(faces: int) -> dict:
    """Contact-sheet layout of `faces` faces: up to 8 one per row, more three per row."""
    return {"count": faces, "per_row": 1 if faces <= 8 else 3}


def _image_features(given, weights, notes: list[str], log) -> features.ImageFeatures | None:
    """The given extractor, else InceptionV3 from its weights file: from `weights` when given
    (`arguments.check` has made sure it is a file), else from the Keras cache (its absence a note;
    scoring goes on)."""
    if given is not None:
        return given
    try:
        return features.inception_features(weights)
    except features.MissingWeights as error:
        notes.append(f"FID and KID skipped: {error}")
        log(notes[-1])
        return None


def evaluate(model: str | Path, data: str | Path, out: str | Path, *, epoch: int | None = None,
             split: str = "test", split_from: str | Path | None = None, limit: int | None = None,
             held_out: str | Path | None = None, masked_real: str | Path | None = None,
             masked_real_aligned: bool = False, inception_weights: str | Path | None = None,
             image_features: features.ImageFeatures | None = None, batch_size: int = 16,
             score_size: int | None = None, sheet_faces: int = 8, flip_average: bool = True,
             log: Callable[[str], None] = lambda message: None) -> dict:
    """Score the model (with `epoch`: that checkpoint of the run folder `model`) and the baselines;
    write metrics.json, report.md and PNGs into `out`.

    The `split` of an overlay folder and of `masked_real` is drawn by the rule (fractions and salt)
    recorded in the dataset.json of the TFRecord folder `split_from` (default: make_tfrecords's
    defaults), so that a model is scored on the photos its training data left out.

    `held_out` is paired data masked by the mask family kept out of training: it is scored like
    `data` (its `split`, at most `limit` pairs) and "gap" holds, per method and metric, its score
    minus the in-family one. `score_size` (default: the model's size) is the crop size every
    method is scored at; the model sees crops resized to its own size and its output is brought
    back as the photo path does (`photos.Unmasker.unmask_crops`), with its `flip_average` (the
    mean of the outputs for each crop and its mirror image) as given. The contact sheets show the first
    `sheet_faces` faces. `image_features` replaces InceptionV3 (tests pass
    `features.random_features()`). Returns the metrics as written to metrics.json. Bad input
    raises EvaluationError.
    """
    check(model, data, split=split, held_out=held_out, masked_real=masked_real, inception_weights=inception_weights,
          split_from=split_from)
    rule = split_rule(split_from)
    notes: list[str] = []
    if epoch is None and (epoch := scored_epoch(model)) is not None:
        notes.append(f"{model} holds no export: its newest checkpoint (epoch {epoch}) is scored")
        log(notes[-1])
    unmasker = load_model(model, epoch, flip_average)
    size = score_size or unmasker.size
    if size < 16:
        raise EvaluationError(f"--score_size must be at least 16 (got {size})")
    pairs = load_pairs(data, size, split=split, limit=limit, rule=rule)
    held_pairs = None if held_out is None else load_pairs(held_out, size, split=split, limit=limit, rule=rule)
    real = None
    if masked_real is not None:  # found before any scoring, so that a bad folder fails at once
        real = load_real_masked(masked_real, size, aligned=masked_real_aligned, limit=limit, split=split, rule=rule)
        log(f"{real.counts['faces']} real masked faces from {real.counts['seen']} files of the {split} split")
    extractor = _image_features(image_features, inception_weights, notes, log)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log(f"{len(pairs.ids)} pairs scored at {size} px, model at {unmasker.size} px "
        "(dlib face embeddings take ~0.25 s a face on a CPU)")
    sheet = _sheet(sheet_faces)
    paired, target, paired_faces = _evaluate_paired(pairs, unmasker, extractor, batch_size, sheet,
                                                    out / "contact_sheet.png")
    per_face = {"paired": paired_faces}
    metrics = {"model": str(model), "epoch": epoch, "data": str(data), "split": split,
               "split_rule": {"fractions": list(rule.fractions), "salt": rule.salt}, "image_size": unmasker.size,
               "score_size": size, "flip_average": unmasker.flip_average,
               "image_features": extractor.name if extractor else None, "notes": notes, "paired": paired}
    if held_pairs is not None:
        log(f"{len(held_pairs.ids)} pairs of the held-out mask family")
        held, _, per_face["held_out"] = _evaluate_paired(held_pairs, unmasker, extractor, batch_size, sheet,
                                                         out / "contact_sheet_held_out.png")
        metrics["held_out"] = {"data": str(held_out), **held}
        metrics["gap"] = generalisation_gap(paired["methods"], metrics["held_out"]["methods"])
    if real is not None:
        metrics["real"], per_face["real"] = _evaluate_real(real, masked_real, split, unmasker, target, extractor,
                                                           batch_size, sheet, out)
    report.write_all(metrics, out, per_face)
    return metrics


def generalisation_gap(in_family: dict[str, dict], held_out: dict[str, dict]) -> dict[str, dict]:
    """Per method and metric that both sets have: the held-out score minus the in-family one
    (KID's spread over subsets is not a score and is left out)."""
    return {name: {key: held_out[name][key] - value for key, value in scores.items()
                   if key in held_out[name] and key != "kid_std"}
            for name, scores in in_family.items() if name in held_out}


def _evaluate_paired(pairs: Pairs, unmasker, extractor, batch_size: int, sheet: dict,
                     path: Path) -> tuple[dict, Described, dict]:
    """Scores of the model and the baselines against the true faces (also returned, described),
    and where the model writes (``mask_map``): on these masks, and on the true faces themselves;
    and the model's values per face (with the faces' ids, and whether HOG detects each)."""
    outputs, maps = unmasker.unmask_crops(pairs.masked)
    crops = {"input": pairs.masked, "inpaint_telea": inpaint_telea(pairs.masked, pairs.mask_map),
             "model": outputs}
    report.contact_sheet({"input": pairs.masked, "inpaint (Telea)": crops["inpaint_telea"],
                          "output": crops["model"], "target": pairs.target}, path, **sheet)
    target = describe(pairs.target, extractor, landmarks=pairs.landmarks, batch_size=batch_size)
    described = {name: describe(images, extractor, landmarks=target.landmarks, batch_size=batch_size)
                 for name, images in crops.items()}
    values = {name: paired_values(scored, target, pairs.mask_map) for name, scored in described.items()}
    methods = {name: {**distribution_scores(scored, target), **mean_values(values[name])}
               for name, scored in described.items()}
    per_face = {"ids": list(pairs.ids), "detected": detection.found(described["model"].boxes).tolist(),
                **{name: array.tolist() for name, array in values["model"].items()}}
    methods["target"] = {"detection_rate": detection.detection_rate(target.boxes)}
    if maps is not None:
        methods["model"]["mask_iou"] = mask_map.iou(maps, pairs.mask_map)
    # one generator pass on the unmasked faces gives both: "Δ unmasked" as scored (through the
    # photo path's blend into the map's region, which hides what a soft map such as an
    # AttentionGAN's attention writes below its threshold) and the generator's own |G(x) - x|
    faces, outputs, maps = unmasker.generate_at_size(pairs.target)
    methods["model"].update(mask_map.on_unmasked(pairs.target, *unmasker.crops_back(pairs.target, outputs, maps)))
    methods["model"]["generator_change"] = mask_map.on_unmasked(faces, outputs, None)["unmasked_change"]
    return {"count": len(pairs.ids), "families": list(pairs.families), "methods": methods}, target, per_face


def _evaluate_real(real: RealFaces, folder, split, unmasker, reference, extractor, batch_size, sheet,
                   out) -> tuple[dict, dict]:
    """The unpaired part: the real masked crops of `split` found in `folder` and their unmasked
    outputs against `reference`; and per face of the model's outputs, whether HOG detects it."""
    outputs, maps = unmasker.unmask_crops(real.crops)
    report.contact_sheet({"input": real.crops, "output": outputs}, out / "contact_sheet_real.png", **sheet)
    described = {name: describe(images, extractor, batch_size=batch_size)
                 for name, images in (("input", real.crops), ("model", outputs))}
    scores = {name: distribution_scores(scored, reference) for name, scored in described.items()}
    if maps is not None and real.landmarks is not None:
        scores["model"].update(mask_map.inside_outside(maps, real.landmarks))
    per_face = {"ids": real.ids, "detected": detection.found(described["model"].boxes).tolist()}
    return {"folder": str(folder), "split": split, **real.counts, "methods": scores}, per_face
