"""Export: every format round-trips with parity, signatures, the parity gate and the CLI."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from tfunmask import runs
from tfunmask.config import ConfigError
from tfunmask.serving import exporter

SIZE = 32


def test_every_format_is_written_with_parity_within_its_threshold(tiny_exports, tiny_run):
    assert list(tiny_exports) == list(exporter.FORMATS)
    for fmt, result in tiny_exports.items():
        assert result.path.exists() and result.size_bytes > 0
        assert result.parity.passed, f"{fmt}: {result.parity}"
        assert result.parity.min_psnr_db == exporter.MIN_PSNR_DB[fmt]
    for exact in ("saved_model", "keras", "float32"):
        assert tiny_exports[exact].parity.max_abs_error <= 1
    assert tiny_exports["float16"].size_bytes < 0.6 * tiny_exports["float32"].size_bytes
    assert tiny_exports["saved_model_float16"].size_bytes < 0.65 * tiny_exports["saved_model"].size_bytes
    assert tiny_exports["int8"].size_bytes < 0.35 * tiny_exports["float32"].size_bytes
    summary = json.loads((tiny_run / "export" / exporter.SUMMARY_FILE).read_text())
    assert summary["parity_split"] == "val" and summary["parity_samples"] == 8
    assert [entry["format"] for entry in summary["exports"]] == list(exporter.FORMATS)
    assert all(entry["passed"] for entry in summary["exports"])


@pytest.mark.parametrize("fmt", ["saved_model", "saved_model_float16"])
def test_saved_model_signature_is_uint8_to_uint8(tiny_exports, fmt):
    serve = tf.saved_model.load(str(tiny_exports[fmt].path)).signatures["serving_default"]
    (spec,) = serve.structured_input_signature[1].values()
    assert spec.name == "images" and spec.dtype == tf.uint8 and spec.shape.as_list() == [None, SIZE, SIZE, 3]
    output = serve.structured_outputs["unmasked"]
    assert output.dtype == tf.uint8 and output.shape.as_list() == [None, SIZE, SIZE, 3]
    assert serve(images=tf.zeros((3, SIZE, SIZE, 3), tf.uint8))["unmasked"].shape == (3, SIZE, SIZE, 3)


@pytest.mark.parametrize("fmt", exporter.TFLITE_FORMATS)
def test_tflite_signature_is_uint8_batch_one(tiny_exports, fmt):
    interpreter = Interpreter(model_path=str(tiny_exports[fmt].path))
    (inputs,), (outputs,) = interpreter.get_input_details(), interpreter.get_output_details()
    for details in (inputs, outputs):
        assert details["dtype"] == np.uint8 and list(details["shape"]) == [1, SIZE, SIZE, 3]
    quantised = fmt == "int8"
    assert (inputs["quantization"][0] > 0) == quantised and (outputs["quantization"][0] > 0) == quantised


def test_saved_model_float16_stores_its_kernels_in_float16_and_only_them(tiny_exports):
    reader = tf.train.load_checkpoint(str(tiny_exports["saved_model_float16"].path / "variables" / "variables"))
    dtypes = reader.get_variable_to_dtype_map()
    shapes = reader.get_variable_to_shape_map()
    stored = {name: (dtypes[name], int(np.prod(shapes[name]))) for name in dtypes if "VARIABLE_VALUE" in name}
    assert stored and {dtype for dtype, _ in stored.values()} <= {tf.float16, tf.float32}
    for name, (dtype, size) in stored.items():
        assert (dtype == tf.float16) == (size >= exporter.HALF_MIN_SIZE), (name, dtype, size)


def test_parity_below_threshold_fails_the_format(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setitem(exporter.MIN_PSNR_DB, "int8", 1000.0)
    (result,) = exporter.export(tiny_run, tmp_path, ("int8",), calibration_samples=4, parity_samples=2)
    assert not result.parity.passed and result.parity.psnr_db < 1000.0
    summary = json.loads((tmp_path / exporter.SUMMARY_FILE).read_text())
    assert summary["exports"][0]["passed"] is False and summary["calibration_samples"] == 4


def test_restore_and_export_fail_clearly(tmp_path, tiny_run):
    with pytest.raises(ConfigError, match="no config.json"):
        runs.restore(tmp_path)
    with pytest.raises(exporter.ExportError, match="no paired shards"):
        exporter.export(tiny_run, tmp_path / "out", ("float32",), data=tmp_path)
    with pytest.raises(exporter.ExportError, match="unknown format.*tflite"):
        exporter.parse_formats("float32,tflite")
    assert exporter.parse_formats("int8, float32") == ("float32", "int8")


def test_restore_names_what_a_checkpoint_of_other_networks_lacks(tmp_path, tiny_run):
    """A checkpoint written for other networks (as old Pix2Pix ones are, issue #16) is one clear
    ConfigError, not an AssertionError."""
    shutil.copytree(tiny_run, tmp_path / "run")
    config_file = tmp_path / "run" / "config.json"
    config = json.loads(config_file.read_text())
    config["model"]["normalization"] = "none"  # every conv gets a bias the checkpoint lacks
    config_file.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"does not fit .*lacks .*down1_conv/bias.*issue #16"):
        runs.restore(tmp_path / "run")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tfunmask.export", *args], capture_output=True, text=True,
                          timeout=300)


def test_cli_prints_the_parity_table_and_exit_codes(tiny_run, tmp_path):
    done = run_cli(f"--model_dir={tiny_run}", f"--out={tmp_path}", "--formats=float32,dynamic_int8")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert rows[0][:5] == ["format", "size", "max", "|err|", "PSNR"]
    assert [row[0] for row in rows[1:3]] == ["float32", "dynamic_int8"] and rows[1][-2] == "ok"
    assert (tmp_path / "generator_dynamic_int8.tflite").is_file()
    bad = run_cli(f"--model_dir={tmp_path / 'nothing'}")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: no config.json")
    assert "Traceback" not in bad.stderr


def test_mask_closing_exports_with_parity_and_only_for_composite_runs(tiny_paired_data, tiny_run, tmp_path):
    """``--mask_closing`` puts the closed map in every format (TFLite float and int8 included)
    and is recorded; a run without a map refuses it with one clear error."""
    from tfunmask.config import TrainConfig
    from tfunmask.training import trainer

    config = TrainConfig.create(model="pix2pix", data=str(tiny_paired_data), model_dir=str(tmp_path / "run"),
                                image_size=SIZE, batch_size=4, epochs=1, decay_epochs=0, steps_per_epoch=2,
                                filters=4, max_filters=16, composite=True, mixed_precision="none",
                                strategy="one_device", summary_every=100, image_every=1000)
    model, _ = trainer.train(config, verbose=0)
    results = exporter.export(tmp_path / "run", tmp_path / "out", ("saved_model", "float16", "int8"),
                              calibration_samples=4, parity_samples=2, mask_closing=2)
    assert [r.parity.passed for r in results] == [True] * 3, [r.parity for r in results]
    assert json.loads((tmp_path / "out" / exporter.SUMMARY_FILE).read_text())["mask_closing"] == 2
    served = tf.saved_model.load(str(results[0].path)).signatures["serving_default"]
    images = tf.constant(np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3)), tf.uint8)
    closed = model.export_generator(mask_closing=2)(tf.cast(images, tf.float32) / 127.5 - 1.0)["mask"]
    np.testing.assert_allclose(served(images=images)["mask"].numpy() / 255.0, closed.numpy(), atol=1 / 255)
    with pytest.raises(exporter.ExportError, match=r"--mask_closing needs a composite U-Net generator.*\(this run: pix2pix\)"):
        exporter.export(tiny_run, tmp_path / "plain", ("float32",), mask_closing=2)
