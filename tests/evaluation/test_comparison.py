"""Comparing two evaluations of the same faces (``evaluation.comparison``, ``tools/compare_evals.py``)."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfunmask.evaluation import comparison

TOOL = Path(__file__).resolve().parents[2] / "tools" / "compare_evals.py"


def test_mcnemar_counts_the_faces_the_models_disagree_on_and_tests_them_exactly():
    a = np.array([True] * 12 + [False] + [True] * 10 + [False] * 7)
    b = np.array([False] * 12 + [True] + [True] * 10 + [False] * 7)
    result = comparison.mcnemar(a, b)
    assert (result["only_a"], result["only_b"], result["n"]) == (12, 1, 30)
    assert result["a"] == pytest.approx(22 / 30) and result["b"] == pytest.approx(11 / 30)
    # two-sided exact test of 1 success in 13 fair trials: 2 * (C(13,0) + C(13,1)) / 2**13
    assert result["p_value"] == pytest.approx(2 * (1 + 13) / 2 ** 13, rel=1e-9)
    assert comparison.mcnemar(a, a)["p_value"] == 1.0


def test_mean_difference_is_paired_and_leaves_out_undefined_faces():
    a = [10.0, 12.0, 14.0, 16.0, None, 20.0]
    b = [10.6, 12.4, 14.6, 16.4, 30.0, math.inf]
    result = comparison.mean_difference(a, b)
    differences = np.array([0.6, 0.4, 0.6, 0.4])
    assert (result["n"], result["left_out"]) == (4, 2)
    assert result["difference"] == pytest.approx(0.5)
    assert result["stderr"] == pytest.approx(differences.std(ddof=1) / 2)
    # t = 0.5 / stderr with 3 degrees of freedom: far beyond chance, but not certain
    assert 0 < result["p_value"] < 0.01
    assert comparison.mean_difference(a, a)["p_value"] == 1.0
    assert comparison.mean_difference(a, a)["difference"] == 0.0


def _record(ids, detected, psnr):
    return {"ids": ids, "detected": detected, "psnr_mask": psnr}


def test_compare_takes_the_shared_sections_and_refuses_other_faces():
    a = {"paired": _record(["x", "y", "z"], [True, False, True], [20.0, 18.0, 19.0]),
         "real": {"ids": ["p#0", "q#0"], "detected": [True, False]}}
    b = {"paired": _record(["x", "y", "z"], [True, True, True], [21.0, 18.5, 19.0])}
    result = comparison.compare(a, b)
    assert list(result) == ["paired"] and set(result["paired"]) == {"detected", "psnr_mask"}
    assert result["paired"]["detected"]["only_b"] == 1
    assert result["paired"]["psnr_mask"]["difference"] == pytest.approx(0.5)
    text = comparison.markdown(result, "v6", "v7")
    assert "| detected | 3 | 0.6667 | 1.0000 | only v6: 0, only v7: 1 |" in text
    with pytest.raises(comparison.ComparisonError, match="other faces .3 and 2, 2 in common"):
        comparison.compare(a, {"paired": _record(["x", "y"], [True, True], [1.0, 2.0])})
    with pytest.raises(comparison.ComparisonError, match="share no section"):
        comparison.compare({"real": a["real"]}, b)


def _evaluation(folder, detected, psnr):
    folder.mkdir()
    (folder / "per_face.json").write_text(json.dumps({"held_out": _record(["a", "b", "c", "d"], detected, psnr)}))
    return folder


def test_command_prints_the_table_and_fails_in_one_line(tmp_path):
    a = _evaluation(tmp_path / "v6", [True, True, False, True], [18.0, 19.0, None, 20.0])
    b = _evaluation(tmp_path / "v7", [True, False, False, True], [18.5, 19.5, 17.0, 20.5])
    done = subprocess.run([sys.executable, str(TOOL), f"--a={a}", f"--b={b}", f"--json={tmp_path / 'c.json'}"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "### held_out" in done.stdout and "only v6: 1, only v7: 0" in done.stdout
    assert "| psnr_mask | 3 (1 left out) | 19.0000 | 19.5000 | +0.5000 ± 0.0000 | 0 |" in done.stdout
    assert json.loads((tmp_path / "c.json").read_text())["held_out"]["psnr_mask"]["n"] == 3
    missing = subprocess.run([sys.executable, str(TOOL), f"--a={a}", f"--b={tmp_path}"], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "no per_face.json" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.parametrize("args, message", [(["--a=x"], "error: --b is required"),
                                           (["--a=x", "--b=y", "stray"], "error: unexpected arguments: stray")])
def test_command_wants_its_two_folders_and_nothing_else(args, message):
    done = subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip() == message
