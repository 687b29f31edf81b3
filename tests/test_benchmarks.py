"""The benchmark scripts still run against the package (tiny sizes; their figures are not checked,
only that every variant prints one): they import the library's functions, which move."""

import re
import subprocess
import sys
from pathlib import Path

import pytest


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script, *args):
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                            timeout=600, cwd=BENCHMARKS)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_train_throughput_times_every_variant():
    out = run("train_throughput.py", "--model=pix2pix", "--image_size=32", "--batch_size=1", "--steps=1",
              "--warmup=1", "--rounds=1", "--precisions=float32", "--upsampling=fused,plain", "--noflops")
    rates = re.findall(r"^ *tfunmask float32 (fused|plain): +([0-9.e+-]+) images/s$", out, re.M)
    assert sorted(form for form, _ in rates) == ["fused", "plain"] and all(float(r) > 0 for _, r in rates)


def test_train_throughput_times_model_variants_against_the_first():
    out = run("train_throughput.py", "--model=pix2pix", "--image_size=32", "--batch_size=1", "--steps=1",
              "--warmup=1", "--rounds=1", "--precisions=float32", "--upsampling=fused", "--noflops",
              "--args=filters=4,composite=True", "--args=filters=4,composite=True,lambda_ssim=1.0")
    base = re.search(r"^ *tfunmask float32 fused filters=4,composite=True: +([0-9.e+-]+) images/s$", out, re.M)
    added = re.search(r"^ *tfunmask float32 fused filters=4,composite=True,lambda_ssim=1.0: +([0-9.e+-]+) "
                      r"images/s \(([0-9.]+)x with --args='filters=4,composite=True'\)$", out, re.M)
    assert base and added, out
    assert float(added[2]) == pytest.approx(float(added[1]) / float(base[1]), rel=0.01)


def test_inference_latency_times_every_format():
    out = run("inference_latency.py", "--image_size=32", "--filters=4", "--repeats=1", "--threads=1",
              "--calibration_samples=2")
    names = re.findall(r"^(keras|saved_model|tflite \w+ x1) ", out, re.M)
    assert names == ["keras", "saved_model", "tflite float32 x1", "tflite float16 x1",
                     "tflite dynamic_int8 x1", "tflite int8 x1"]


def test_profile_step_sums_the_step_by_op():
    out = run("profile_step.py", "--model=pix2pix", "--image_size=32", "--batch_size=1", "--steps=1", "--top=3")
    ops = re.findall(r"^  (\w+) +([0-9.]+) ms", out, re.M)
    assert len(ops) >= 3 and any("Conv2D" in name for name, _ in ops)
