"""Tests for tfunmask.synth.masks: what the mask covers, the untouched-outside invariant, pose, determinism."""
import json

import cv2
import numpy as np
import pytest

from tfunmask.synth import demo, masks

SIZE = 64
COVERED = [*range(30, 36), *range(48, 68), *range(6, 11)]  # lower nose, mouth, chin


@pytest.fixture(scope="module")
def faces():
    return [demo.draw_face(np.random.default_rng(seed), SIZE) for seed in range(4)]


def _at(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    xy = np.round(points).astype(int)
    return image[xy[:, 1], xy[:, 0]]


@pytest.mark.parametrize("style", masks.STYLES)
def test_mask_covers_nose_mouth_and_chin_but_not_eyes(faces, style):
    for seed, (face, landmarks) in enumerate(faces):
        rendered = masks.render(face, landmarks, style, np.random.default_rng(seed))
        assert (_at(rendered.mask_map, landmarks[COVERED]) == 255).all()
        eyes = np.concatenate([landmarks[[37, 38, 43, 44]], [landmarks[36:42].mean(0), landmarks[42:48].mean(0)]])
        assert (_at(rendered.mask_map, eyes) == 0).all()  # pupils and upper lids stay visible


@pytest.mark.parametrize("style", masks.STYLES)
def test_pixels_outside_the_mask_map_are_untouched(faces, style):
    for seed, (face, landmarks) in enumerate(faces):
        rendered = masks.render(face, landmarks, style, np.random.default_rng(seed))
        assert rendered.masked.dtype == np.uint8 and rendered.masked.shape == face.shape
        assert rendered.mask_map.dtype == np.uint8 and rendered.mask_map.shape == face.shape[:2]
        assert set(np.unique(rendered.mask_map)) <= {0, 255}
        outside = rendered.mask_map == 0
        assert np.array_equal(rendered.masked[outside], face[outside])
        changed = (rendered.masked != face).any(axis=-1)
        assert changed[~outside].mean() > 0.7  # the map is not padded with untouched pixels
        assert rendered.meta["style"] == style
        json.dumps(rendered.meta)


def test_render_does_not_modify_its_input(faces):
    face, landmarks = faces[0]
    before = face.copy()
    masks.render(face, landmarks, "cloth", np.random.default_rng(0))
    assert np.array_equal(face, before)


@pytest.mark.parametrize("style", masks.STYLES)
def test_same_seed_same_mask_and_other_seed_other_mask(faces, style):
    face, landmarks = faces[1]
    first = masks.render(face, landmarks, style, np.random.default_rng(7))
    again = masks.render(face, landmarks, style, np.random.default_rng(7))
    other = masks.render(face, landmarks, style, np.random.default_rng(8))
    assert np.array_equal(first.masked, again.masked) and np.array_equal(first.mask_map, again.mask_map)
    assert first.meta == again.meta
    assert not np.array_equal(first.masked, other.masked)


def test_mask_follows_head_roll(faces):
    """Built from the landmarks: rotating face and landmarks rotates the mask with them."""
    face, landmarks = faces[2]
    upright = masks.render(face, landmarks, "surgical", np.random.default_rng(3))
    turn = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), 25, 1.0)
    tilted_face = cv2.warpAffine(face, turn, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)
    tilted_landmarks = landmarks @ turn[:, :2].T + turn[:, 2]
    tilted = masks.render(tilted_face, tilted_landmarks.astype(np.float32), "surgical", np.random.default_rng(3))
    expected = cv2.warpAffine(upright.mask_map, turn, (SIZE, SIZE), flags=cv2.INTER_NEAREST) > 0
    got = tilted.mask_map > 0
    assert (expected & got).sum() / (expected | got).sum() > 0.85
    assert (_at(tilted.mask_map, tilted_landmarks[COVERED]) == 255).all()


def test_mask_partly_outside_the_image_keeps_the_invariant(faces):
    face, landmarks = faces[3]
    shifted = landmarks + np.float32([0, 20])  # chin and mask bottom fall off the image
    rendered = masks.render(face, shifted, "n95", np.random.default_rng(0))
    outside = rendered.mask_map == 0
    assert np.array_equal(rendered.masked[outside], face[outside])
    assert rendered.mask_map.any()


def test_parse_styles():
    assert masks.parse_styles("all") == masks.STYLES
    assert masks.parse_styles(" Surgical, n95 ,surgical") == ("surgical", "n95")
    assert len(masks.STYLES) >= 5 and {"surgical", "n95", "kn95", "cloth"} <= set(masks.STYLES)
    for bad in ("", " , ", "surgical,bandana", "all,n95"):
        with pytest.raises(ValueError) as error:
            masks.parse_styles(bad)
        assert "\n" not in str(error.value)


def test_render_rejects_bad_arguments(faces):
    face, landmarks = faces[0]
    with pytest.raises(ValueError, match="unknown mask style"):
        masks.render(face, landmarks, "bandana", np.random.default_rng(0))
    with pytest.raises(ValueError):
        masks.render(face, landmarks[:60], "surgical", np.random.default_rng(0))
    with pytest.raises(ValueError):
        masks.render(face.astype(np.float32), landmarks, "surgical", np.random.default_rng(0))
