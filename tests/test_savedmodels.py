"""The pretrained model shipped in savedmodels/ loads and unmasks, with no training."""

from pathlib import Path

import numpy as np
import pytest

import tfunmask
from tfunmask.synth import demo, masks

MODEL = Path(__file__).resolve().parents[1] / "savedmodels" / "unmask-pix2pix-composite-128"


@pytest.fixture(scope="module")
def example():
    """A drawn face (known landmarks) with a surgical mask rendered on it, at the model's size."""
    face, landmarks = demo.draw_face(np.random.default_rng(7), 128)
    rendered = masks.render(face, landmarks, "surgical", np.random.default_rng(3))
    return face, rendered


@pytest.mark.parametrize("path", [MODEL, MODEL / "generator_float16.tflite"])
def test_shipped_model_unmasks_inside_the_mask_and_keeps_the_rest(path, example):
    face, rendered = example
    unmasker = tfunmask.load(path)
    assert unmasker.size == 128
    output = unmasker.generate(rendered.masked[None])[0]
    assert output.shape == (128, 128, 3) and output.dtype == np.uint8
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
