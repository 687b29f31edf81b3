"""BlazeFace's decoding: anchors, box and keypoint decoding, suppression, letterbox mapping."""
import numpy as np
import pytest

from tfunmask.data import blazeface


def test_anchor_grid():
    assert blazeface.ANCHORS.shape == (896, 2)
    assert blazeface.ANCHORS[0].tolist() == blazeface.ANCHORS[1].tolist() == [1 / 32, 1 / 32]
    assert blazeface.ANCHORS[512].tolist() == [1 / 16, 1 / 16]  # the 8x8 grid starts after 16*16*2
    assert (blazeface.ANCHORS > 0).all() and (blazeface.ANCHORS < 1).all()


def test_decode_boxes_keypoints_and_suppression():
    raw = np.zeros((896, 16), np.float32)
    logits = np.full(896, -10.0, np.float32)
    # anchor 600 (8x8 grid): a 32x48 px box shifted by (+8, -4) px, keypoints 2 px right of the anchor
    raw[600, :4] = [8, -4, 32, 48]
    raw[600, 4::2] = 2.0
    logits[600] = 3.0
    raw[601, :4] = [9, -4, 32, 48]  # the same face seen by the next anchor: suppressed
    logits[601] = 2.0
    found = blazeface.decode(raw, logits, 0.5)
    assert len(found) == 1
    box, points, score = found[0]
    centre = blazeface.ANCHORS[600] + np.array([8, -4]) / 128
    np.testing.assert_allclose(box, [*(centre - [16 / 128, 24 / 128]), *(centre + [16 / 128, 24 / 128])], atol=1e-6)
    np.testing.assert_allclose(points, np.tile(blazeface.ANCHORS[600] + [2 / 128, 0], (6, 1)), atol=1e-6)
    assert score == pytest.approx(1 / (1 + np.exp(-3.0)))
    assert blazeface.decode(raw, logits, 0.99) == []


def test_letterbox_maps_model_units_back_to_photo_pixels():
    image = np.zeros((100, 300, 3), np.uint8)
    tensor, scale, offset = blazeface.letterbox(image)
    assert tensor.shape == (128, 128, 3) and tensor.min() >= -1 and tensor.max() <= 1
    # the photo's corners in model units map back onto the photo's corners
    top_left = np.array([0, 100 / 300]) * scale - offset
    bottom_right = np.array([1, 200 / 300]) * scale - offset
    np.testing.assert_allclose(top_left, [0, 0], atol=1e-4)
    np.testing.assert_allclose(bottom_right, [300, 100], atol=1e-4)


def test_model_comes_from_the_installed_wheel():
    assert blazeface.model_path().name == blazeface.MODEL_FILE and blazeface.model_path().stat().st_size > 100_000
