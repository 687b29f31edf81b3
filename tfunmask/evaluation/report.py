"""Writing evaluation results: metrics.json, per_face.json, a Markdown report, a contact sheet and a bar chart.

The pictures are drawn with OpenCV and NumPy (already dependencies), not matplotlib, which the
package does not otherwise need. Results come in as the dict `suite.evaluate` builds:
a "paired" section, optionally "held_out" (another mask family) with its "gap", and optionally a
"real" one, each with "methods": {method: {metric: value}}. per_face.json holds the model's
values per face of each section, under the faces' ids, for comparing two evaluations face by face
(`tfunmask.evaluation.comparison`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

PER_FACE_FILE = "per_face.json"

# metric key -> (column label, higher is better, format)
COLUMNS = {
    "fid": ("FID", False, "{:.2f}"),
    "kid": ("KID", False, "{:.4f}"),
    "face_fd": ("face FD", False, "{:.4f}"),
    "psnr": ("PSNR", True, "{:.2f}"),
    "psnr_mask": ("PSNR mask", True, "{:.2f}"),
    "ssim": ("SSIM", True, "{:.4f}"),
    "ssim_mask": ("SSIM mask", True, "{:.4f}"),
    "l1": ("L1", False, "{:.4f}"),
    "l1_mask": ("L1 mask", False, "{:.4f}"),
    "identity_cosine": ("ID cosine", True, "{:.4f}"),
    "identity_match": ("ID match", True, "{:.3f}"),
    "detection_rate": ("detected", True, "{:.3f}"),
    "mask_iou": ("map IoU", True, "{:.3f}"),
    "unmasked_change": ("Δ unmasked", False, "{:.4f}"),
    "generator_change": ("Δ unmasked, G", False, "{:.4f}"),
    "map_on_unmasked": ("map unmasked", False, "{:.4f}"),
    "map_inside": ("map lower face", True, "{:.3f}"),
    "map_outside": ("map elsewhere", False, "{:.3f}"),
    "map_ratio": ("map in/out", True, "{:.1f}"),
}
LEGEND = """\
- FID, KID: InceptionV3 Fréchet and kernel distances to the true unmasked faces (KID ± its spread
  over subsets; on a few hundred faces FID is biased upwards, KID is not).
- face FD: Fréchet distance in dlib's 128-d face-embedding space, to the same faces.
- PSNR (dB), SSIM, L1 (0..1 scale): against each crop's true face, whole crop and mask region only.
- ID cosine: mean cosine similarity of dlib embeddings of the result and the true face; ID match:
  share within dlib's same-person distance 0.6.
- detected: share of crops in which dlib's HOG detector finds a face (HOG misses most masked faces).
- Where the model writes (`tfunmask.evaluation.mask_map`; map columns only for a generator that
  exports its mask map): map IoU: its map (>= 0.5) against the true mask map; Δ unmasked: mean
  |output - x| (0..1) on the true, unmasked faces as scored (at another size than the model's,
  blended into the map's region as the photo path does), Δ unmasked, G: the generator's own
  |G(x) - x| at its size, and map unmasked: its map's mean there (all ideally 0); on real masked faces, map lower face / map elsewhere: its map's mean inside the hull
  of landmarks 2-14 and the nose bridge, and outside it, and their ratio.
"""
# RGB per method, the same in every chart; other names take the spare colour
_COLOURS = {"input": (90, 90, 90), "inpaint_telea": (60, 140, 230), "model": (230, 110, 40), "target": (60, 170, 90)}
_SPARE = (170, 80, 170)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def json_safe(value):
    """JSON-safe copy: non-finite floats (an inf PSNR, a NaN of an empty mask) become None."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cell(key: str, scores: dict) -> str:
    value = scores.get(key)
    if value is None or not math.isfinite(value):
        return "–"
    text = COLUMNS[key][2].format(value)
    return f"{text} ± {scores['kid_std']:.4f}" if key == "kid" and "kid_std" in scores else text


def _families(section: dict) -> str:
    return "+".join(section.get("families", ())) or "unknown"


def table(methods: dict[str, dict]) -> str:
    """Markdown table: a row per method, a column per metric any method has."""
    keys = [key for key in COLUMNS if any(key in scores for scores in methods.values())]
    header = "| method | " + " | ".join(f"{COLUMNS[k][0]} {'↑' if COLUMNS[k][1] else '↓'}" for k in keys) + " |"
    lines = [header, "|" + " --- |" * (len(keys) + 1)]
    lines += [f"| {name} | " + " | ".join(_cell(k, scores) for k in keys) + " |" for name, scores in methods.items()]
    return "\n".join(lines)


def markdown(metrics: dict) -> str:
    """The whole report.md text."""
    paired = metrics["paired"]
    parts = [f"# Evaluation of `{metrics['model']}`", "",
             f"Paired data: `{metrics['data']}`, split {metrics['split']}, {paired['count']} faces scored at "
             f"{metrics.get('score_size', metrics['image_size'])} px (model at {metrics['image_size']} px"
             f"{', flip-averaged' if metrics.get('flip_average') else ''}), "
             f"mask family {_families(paired)}; image features: "
             f"{metrics['image_features'] or 'none'}.", "",
             "## Paired test faces", "", table(paired["methods"]), "", "![contact sheet](contact_sheet.png)", "",
             "![metrics](metrics.png)", ""]
    if "held_out" in metrics:
        held = metrics["held_out"]
        parts += ["## Held-out mask family", "",
                  (f"`{held['data']}`, split {metrics['split']}: {held['count']} faces masked by the mask "
                   f"family {_families(held)}, kept out of training."), "", table(held["methods"]), "",
                  "![held-out contact sheet](contact_sheet_held_out.png)", "",
                  "### Generalisation gap (held-out minus in-family; arrows say which way is better)", "",
                  table(metrics["gap"]), ""]
    if "real" in metrics:
        real = metrics["real"]
        parts += ["## Real masked photos (no ground truth)", "",
                  f"`{real['folder']}`: {real['faces']} faces from {real['seen']} files; distances are to the "
                  "true unmasked faces of the paired set. Only faces that `faces.find` (its cascade: BlazeFace, HOG, "
                  "the CNN) found are scored.", "",
                  table(real["methods"]), "",
                  "![real contact sheet](contact_sheet_real.png)", "", "![real metrics](metrics_real.png)", ""]
    parts += ["## Columns", "", LEGEND]
    if metrics["notes"]:
        parts += ["## Notes", ""] + [f"- {note}" for note in metrics["notes"]] + [""]
    return "\n".join(parts)


def _label(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.4) -> None:
    cv2.putText(canvas, text, origin, _FONT, scale, (20, 20, 20), 1, cv2.LINE_AA)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"could not write {path}")


def contact_sheet(columns: dict[str, np.ndarray], path: str | Path, count: int = 8, per_row: int = 1) -> None:
    """PNG grid of the first `count` samples, `per_row` of them side by side, each a block of
    labelled cells, one per image set of `columns` (each (N, S, S, 3))."""
    count = min(count, *(len(images) for images in columns.values()))
    per_row = max(1, min(per_row, count))
    cell = max(128, next(iter(columns.values())).shape[1])
    block = len(columns) * cell + (8 if per_row > 1 else 0)  # a white gap between samples
    rows = -(-count // per_row)
    sheet = np.full((24 + rows * cell, per_row * block, 3), 255, np.uint8)
    for b in range(per_row):
        for j, name in enumerate(columns):
            _label(sheet, name, (b * block + j * cell + 4, 16), 0.45)
    for i in range(count):
        top, left = 24 + (i // per_row) * cell, (i % per_row) * block
        for j, images in enumerate(columns.values()):
            sheet[top:top + cell, left + j * cell:left + (j + 1) * cell] = cv2.resize(
                images[i], (cell, cell), interpolation=cv2.INTER_NEAREST)
    _write_png(Path(path), sheet)


def _panel(key: str, methods: dict[str, dict], width: int = 230, height: int = 170) -> np.ndarray:
    """One metric's bars (a bar per method, coloured as in the legend), labelled with values."""
    label, higher, fmt = COLUMNS[key]
    values = [scores.get(key) for scores in methods.values()]
    panel = np.full((height, width, 3), 255, np.uint8)
    _label(panel, f"{label} ({'higher' if higher else 'lower'} is better)", (6, 14))
    finite = [v for v in values if v is not None and math.isfinite(v)]
    top = max([abs(v) for v in finite] + [1e-12])
    base, room, slot = height - 8, height - 48, (width - 20) // max(len(values), 1)
    cv2.line(panel, (10, base), (width - 10, base), (120, 120, 120), 1)
    for i, (name, value) in enumerate(zip(methods, values)):
        x = 10 + i * slot + slot // 6
        if value is None or not math.isfinite(value):
            continue  # an empty slot: the method has no such score
        bar = int(round(max(value, 0) / top * room))
        cv2.rectangle(panel, (x, base - bar), (x + slot * 2 // 3, base), _COLOURS.get(name, _SPARE), -1)
        _label(panel, fmt.format(value), (x - 2, base - bar - 4), 0.35)
    return panel


def bar_chart(methods: dict[str, dict], path: str | Path, per_row: int = 4) -> None:
    """PNG of small bar panels, one per metric any method has, under a colour legend of methods."""
    keys = [key for key in COLUMNS if any(key in scores for scores in methods.values())]
    panels = [_panel(key, methods) for key in keys]
    per_row = min(per_row, len(panels))
    panels += [np.full_like(panels[0], 255)] * (-len(panels) % per_row)
    grid = np.concatenate([np.concatenate(panels[i:i + per_row], axis=1) for i in range(0, len(panels), per_row)])
    legend = np.full((24, grid.shape[1], 3), 255, np.uint8)
    for i, name in enumerate(methods):
        cv2.rectangle(legend, (10 + i * 150, 6), (24 + i * 150, 18), _COLOURS.get(name, _SPARE), -1)
        _label(legend, name, (30 + i * 150, 17), 0.45)
    _write_png(Path(path), np.concatenate([legend, grid]))


def write_all(metrics: dict, out: str | Path, per_face: dict | None = None) -> None:
    """metrics.json, report.md, the bar charts (metrics.png, metrics_real.png) and, when given, the
    model's `per_face` values ({section: {"ids": [...], metric: [value per face]}}) into `out`."""
    out = Path(out)
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2) + "\n")
    if per_face is not None:
        (out / PER_FACE_FILE).write_text(json.dumps(json_safe(per_face)) + "\n")
    (out / "report.md").write_text(markdown(metrics))
    bar_chart(metrics["paired"]["methods"], out / "metrics.png")
    if "real" in metrics:
        bar_chart(metrics["real"]["methods"], out / "metrics_real.png")
