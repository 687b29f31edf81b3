"""tools/translation_grid.py: the A -> B grid of a CycleGAN/AttentionGAN run and its errors."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO
from tfunmask import models
from tfunmask.config import TrainConfig
from tfunmask.data import images, tfrecords
from tfunmask.runs import Run

SIZE = 32
HEADER = 10  # the strip of column labels above 32-pixel columns


def saved_run(tmp_path, model, **options):
    """A run folder with config.json and one checkpoint of an untrained tiny model."""
    tiny = {} if model == "pix2pix" else {"resnet_blocks": 1}
    config = TrainConfig.create(model=model, model_dir=str(tmp_path / model), image_size=SIZE, filters=8,
                                **tiny, **options)
    built = models.build(config.model_name, config.model)
    config.save()
    tf.train.Checkpoint(model=built).save(str(Run(config.model_dir).checkpoints / "ckpt"))
    return built, config.model_dir


def run_tool(*args):
    return subprocess.run([sys.executable, str(REPO / "tools" / "translation_grid.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_aggan_grid_rows_columns_and_attention(tiny_unpaired_data, tmp_path):
    model, run = saved_run(tmp_path, "aggan", attention_masks=3)
    out = tmp_path / "grid.png"
    result = run_tool("--model_dir", run, "--data", tiny_unpaired_data, "--split", "val", "--count", 3,
                      "--masks", "--out", out)
    assert result.returncode == 0, result.stderr
    labelled = images.read_image(out)
    # input | foreground | 2 foreground masks | output, each column labelled, one row per face
    assert labelled.shape == (HEADER + 3 * SIZE, 5 * SIZE, 3)
    assert all((labelled[:HEADER, i * SIZE:(i + 1) * SIZE] > 200).any() for i in range(5))
    grid = labelled[HEADER:]
    faces = tfrecords.unpaired_images(tiny_unpaired_data, "val", "A", 3)
    np.testing.assert_allclose(grid[:SIZE, :SIZE], faces[0], atol=1)
    attention = model.generator_ab(faces / 127.5 - 1.0)["attention"].numpy()
    foreground = 255 * (1.0 - attention[..., -1])  # the background's complement
    np.testing.assert_allclose(grid[:, SIZE:2 * SIZE, 0].reshape(3, SIZE, SIZE), foreground, atol=1.5)
    assert np.all(grid[:, SIZE:4 * SIZE].std(axis=-1) < 1)  # masks are grey


def test_cyclegan_grid_is_input_and_output(tiny_unpaired_data, tmp_path):
    _, run = saved_run(tmp_path, "cyclegan")
    out = tmp_path / "grid.png"
    result = run_tool("--model_dir", run, "--data", tiny_unpaired_data, "--split", "val", "--count", 2,
                      "--out", out)
    assert result.returncode == 0, result.stderr
    assert images.read_image(out).shape == (HEADER + 2 * SIZE, 2 * SIZE, 3)


@pytest.mark.parametrize("case, message", [
    ("pix2pix", "holds a pix2pix run; this grid is for cyclegan and aggan"),
    ("no_split", "no domain-A test shards"),
    ("no_run", "no config.json"),
])
def test_errors_are_one_line(tiny_unpaired_data, tmp_path, case, message):
    run = tmp_path / "missing"
    if case != "no_run":
        _, run = saved_run(tmp_path, "pix2pix" if case == "pix2pix" else "cyclegan")
    result = run_tool("--model_dir", run, "--data", tiny_unpaired_data, "--split", "test",
                      "--out", tmp_path / "grid.png")
    last = result.stderr.strip().splitlines()[-1]  # TensorFlow's native start-up lines come first
    assert result.returncode == 2 and last.startswith("error:") and message in last, result.stderr
    assert not (tmp_path / "grid.png").exists()
