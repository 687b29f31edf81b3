"""Two evaluations of the same faces compared face by face, with the chance of a difference.

Models here differ by a few faces of a hundred (a standard error of a detection rate on 107
faces is about 4 points), so comparing two rates as if they came from different faces throws
away what pairing gives: both models saw the *same* faces, and only the faces on which they
disagree carry information. Each section that both evaluations scored (``paired``, ``held_out``,
``real``: ``per_face.json``, written by ``tfunmask.evaluate``) is compared on its common metrics:

* a yes/no per face (HOG detects a face): the faces only A detects and only B detects, and the
  exact two-sided McNemar test (a binomial test of those discordant faces at 1/2);
* a number per face (PSNR, SSIM, identity cosine): the mean difference B − A, its standard error
  and the paired t-test's two-sided p (faces where either value is undefined are left out and
  counted).

A p-value says how often a difference this large would appear by chance between two models that
are equally good on faces like these; it does not make the faces a larger sample.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

from tfunmask.evaluation.report import PER_FACE_FILE

SECTIONS = ("paired", "held_out", "real")


class ComparisonError(ValueError):
    """Evaluations that cannot be compared (one-line message)."""


def load(folder: str | Path) -> dict:
    """The per-face values an evaluation wrote into ``folder``."""
    path = Path(folder) / PER_FACE_FILE
    if not path.is_file():
        raise ComparisonError(f"{folder}: no {PER_FACE_FILE} (give a folder written by tfunmask.evaluate; "
                              "evaluations older than per-face values must be run again)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ComparisonError(f"{path}: not valid JSON ({error})") from None


def mcnemar(a, b) -> dict:
    """Rates of two yes/no arrays over the same faces, the faces only one says yes to, and the
    exact two-sided McNemar p."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    p = stats.binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
    return {"kind": "yes/no", "n": len(a), "a": float(a.mean()), "b": float(b.mean()),
            "only_a": only_a, "only_b": only_b, "p_value": float(p)}


def mean_difference(a, b) -> dict:
    """Means of two value arrays over the same faces (None: undefined), the mean difference
    b − a with its standard error, and the paired t-test's two-sided p."""
    a = np.array([math.nan if v is None else v for v in a], float)
    b = np.array([math.nan if v is None else v for v in b], float)
    kept = np.isfinite(a) & np.isfinite(b)
    difference = b[kept] - a[kept]
    n = int(kept.sum())
    result = {"kind": "value", "n": n, "left_out": len(a) - n,
              "a": float(a[kept].mean()) if n else math.nan, "b": float(b[kept].mean()) if n else math.nan,
              "difference": float(difference.mean()) if n else math.nan,
              "stderr": float(difference.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan}
    if n > 1 and np.ptp(difference) > 0:
        result["p_value"] = float(stats.ttest_rel(b[kept], a[kept]).pvalue)
    elif n and not np.any(difference):  # the same values: no difference at all
        result["p_value"] = 1.0
    elif n > 1:  # a constant non-zero shift: certain
        result["p_value"] = 0.0
    else:
        result["p_value"] = math.nan
    return result


def compare(a: dict, b: dict) -> dict:
    """``{section: {metric: result}}`` for the sections and metrics both per-face records hold.
    ComparisonError where they share no section or a shared section holds other faces."""
    shared = [section for section in SECTIONS if section in a and section in b]
    if not shared:
        raise ComparisonError("the two evaluations share no section (paired, held_out, real)")
    result = {}
    for section in shared:
        left, right = a[section], b[section]
        if left["ids"] != right["ids"]:
            common = len(set(left["ids"]) & set(right["ids"]))
            raise ComparisonError(f"{section}: the evaluations scored other faces ({len(left['ids'])} and "
                                  f"{len(right['ids'])}, {common} in common): score both with the same "
                                  "--data, --split and --limit")
        metrics = [name for name in left if name != "ids" and name in right]
        result[section] = {name: (mcnemar if name == "detected" else mean_difference)(left[name], right[name])
                           for name in metrics}
    return result


def markdown(result: dict, name_a: str = "A", name_b: str = "B") -> str:
    """A table per section: each metric's A and B, what differs, and p."""
    lines = []
    for section, metrics in result.items():
        lines += [f"### {section}", "", f"| metric | faces | {name_a} | {name_b} | difference | p |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, r in metrics.items():
            if r["kind"] == "yes/no":
                differs = f"only {name_a}: {r['only_a']}, only {name_b}: {r['only_b']}"
                faces = str(r["n"])
            else:
                differs = f"{r['difference']:+.4f} ± {r['stderr']:.4f}"
                faces = f"{r['n']}" + (f" ({r['left_out']} left out)" if r["left_out"] else "")
            lines.append(f"| {name} | {faces} | {r['a']:.4f} | {r['b']:.4f} | {differs} | {r['p_value']:.3g} |")
        lines.append("")
    return "\n".join(lines)
