"""The pretrained model shipped in savedmodels/ loads and unmasks, with no training."""

import subprocess
import sys

import numpy as np
import pytest

import tfunmask
from tfunmask.data import images
from tfunmask.inference.photos import SHIPPED_MODEL as MODEL
from tfunmask.synth import demo, masks

SIZE = 256  # the shipped model's crop size


@pytest.fixture(scope="module")
def example():
    """A drawn face (known landmarks) with a surgical mask rendered on it, at the model's size."""
    face, landmarks = demo.draw_face(np.random.default_rng(7), SIZE)
    rendered = masks.render(face, landmarks, "surgical", np.random.default_rng(3))
    return face, rendered


@pytest.mark.parametrize("path", [MODEL, MODEL / "generator_float16.tflite"])
def test_shipped_model_unmasks_inside_the_mask_and_keeps_the_rest(path, example):
    face, rendered = example
    unmasker = tfunmask.load(path)
    assert unmasker.size == SIZE
    output = unmasker.generate(rendered.masked[None])[0]
    assert output.shape == (SIZE, SIZE, 3) and output.dtype == np.uint8
    inside = rendered.mask_map > 0
    assert 0.1 < inside.mean() < 0.6
    change = np.abs(output.astype(int) - rendered.masked.astype(int)).mean(axis=-1)
    assert change[inside].mean() > 20  # the mask was painted over
    assert change[~inside].mean() < 3  # the rest of the crop is the input's own
    error_out = np.abs(output.astype(int) - face.astype(int)).mean(axis=-1)[inside].mean()
    error_in = np.abs(rendered.masked.astype(int) - face.astype(int)).mean(axis=-1)[inside].mean()
    assert error_out < error_in  # closer to the true face than the mask was


def test_shipped_model_card_and_size():
    card = (MODEL / "MODEL_CARD.md").read_text()
    for section in ("Intended use", "Training", "Metrics", "Known failure modes"):
        assert section in card
    total = sum(f.stat().st_size for f in MODEL.rglob("*") if f.is_file())
    assert total <= 40 * 2 ** 20


def test_readme_first_command_unmasks_the_masked_portrait(tmp_path):
    """README's first command: the astronaut portrait, masked by the overlay renderer, through the
    whole-photo path with the default (shipped) model; example.png is original | masked |
    unmasked, and only the mask changed. Nothing on stderr: on an AVX2-only CPU oneDNN used to
    print that it supports float16 only with AVX-512 when the float16-stored SavedModel loaded."""
    result = subprocess.run([sys.executable, "-m", "tfunmask.unmask", "--example",
                             f"--out={tmp_path}"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "unmasked 1 of 1 photo(s), 1 face(s)" in result.stdout and result.stderr == "", result.stderr
    strip = images.read_image(tmp_path / "example.png")
    assert strip.shape == (512, 3 * 512, 3)
    original, masked, unmasked = np.split(strip.astype(int), 3, axis=1)
    mask = np.abs(masked - original).max(axis=-1) > 0
    assert 0.01 < mask.mean() < 0.1  # a mask on one face of a half-length portrait
    changed = np.abs(unmasked - masked).max(axis=-1) > 0
    assert changed[mask].mean() > 0.9  # the mask is painted over ...
    assert changed[~mask].mean() < 0.03  # ... and little besides (its feathered rim)
    assert np.abs(unmasked - original)[mask].mean() < np.abs(masked - original)[mask].mean()


def test_load_without_a_path_takes_the_shipped_model_or_says_where_it_should_be(monkeypatch, tmp_path):
    from tfunmask.inference import photos
    from tfunmask.inference.generators import ModelError

    assert tfunmask.load().size == tfunmask.load(MODEL).size
    monkeypatch.setattr(photos, "SHIPPED_MODEL", tmp_path / "gone")
    with pytest.raises(ModelError, match="no model given, and the shipped one is not at .*gone"):
        tfunmask.load()
