"""The contract of every mask family (``overlay.FAMILIES``): what a mask covers, pixels untouched
outside its map, determinism, pose, masks partly off the image, bad arguments. What is particular
to one family is tested beside it (test_masks.py, test_mask_images.py)."""
import json

import cv2
import numpy as np
import pytest

from tfunmask.synth import overlay

from .conftest import FACE_SIZE as SIZE

COVERED = [*range(30, 36), *range(48, 68)]  # nose tip and nostrils, the whole mouth
STYLES = [(family, style) for family, module in overlay.FAMILIES.items() for style in module.STYLES]


def at(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    xy = np.round(points).astype(int)
    return image[xy[:, 1], xy[:, 0]]


def eyes(landmarks: np.ndarray) -> np.ndarray:
    """Upper lids and pupils: they stay visible under every mask."""
    return np.concatenate([landmarks[[37, 38, 43, 44]], [landmarks[36:42].mean(0), landmarks[42:48].mean(0)]])


def render(family, face, landmarks, style, seed):
    return overlay.FAMILIES[family].render(face, landmarks, style, np.random.default_rng(seed))


@pytest.mark.parametrize("family, style", STYLES)
def test_mask_covers_nose_tip_and_mouth_but_not_eyes(faces, family, style):
    for seed, (face, landmarks) in enumerate(faces):
        rendered = render(family, face, landmarks, style, seed)
        assert (at(rendered.mask_map, landmarks[COVERED]) == 255).all()
        assert (at(rendered.mask_map, eyes(landmarks)) == 0).all()


@pytest.mark.parametrize("family, style", STYLES)
def test_pixels_change_only_inside_the_mask_map(faces, family, style):
    for seed, (face, landmarks) in enumerate(faces):
        before = face.copy()
        rendered = render(family, face, landmarks, style, seed)
        assert np.array_equal(face, before)  # the input is not modified
        assert rendered.masked.dtype == np.uint8 and rendered.masked.shape == face.shape
        assert rendered.mask_map.dtype == np.uint8 and rendered.mask_map.shape == face.shape[:2]
        assert set(np.unique(rendered.mask_map)) <= {0, 255}
        outside = rendered.mask_map == 0
        assert np.array_equal(rendered.masked[outside], face[outside])
        assert 0.1 < (~outside).mean() < 0.6  # a mask, not a speck or the whole crop
        changed = (rendered.masked != face).any(axis=-1)
        assert changed[~outside].mean() > 0.7  # the map is not padded with untouched pixels
        assert rendered.meta["style"] == style
        json.dumps(rendered.meta)


@pytest.mark.parametrize("family, style", STYLES)
def test_same_seed_same_mask_and_other_seed_other_mask(faces, family, style):
    face, landmarks = faces[1]
    first, again, other = (render(family, face, landmarks, style, seed) for seed in (7, 7, 8))
    assert np.array_equal(first.masked, again.masked) and np.array_equal(first.mask_map, again.mask_map)
    assert first.meta == again.meta
    assert not np.array_equal(first.masked, other.masked)


@pytest.mark.parametrize("family", overlay.FAMILIES)
def test_mask_follows_head_roll(faces, family):
    """Built from the landmarks: rotating face and landmarks rotates the mask with them."""
    face, landmarks = faces[2]
    style = overlay.FAMILIES[family].STYLES[0]
    upright = render(family, face, landmarks, style, 3)
    turn = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), 25, 1.0)
    tilted_face = cv2.warpAffine(face, turn, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)
    tilted_landmarks = (landmarks @ turn[:, :2].T + turn[:, 2]).astype(np.float32)
    tilted = render(family, tilted_face, tilted_landmarks, style, 3)
    expected = cv2.warpAffine(upright.mask_map, turn, (SIZE, SIZE), flags=cv2.INTER_NEAREST) > 0
    got = tilted.mask_map > 0
    assert (expected & got).sum() / (expected | got).sum() > 0.85
    assert (at(tilted.mask_map, tilted_landmarks[COVERED]) == 255).all()


@pytest.mark.parametrize("family", overlay.FAMILIES)
def test_mask_partly_outside_the_image_keeps_the_invariant(faces, family):
    face, landmarks = faces[3]
    style = overlay.FAMILIES[family].STYLES[1]
    rendered = render(family, face, landmarks + np.float32([0, 24]), style, 0)  # the chin falls off
    outside = rendered.mask_map == 0
    assert np.array_equal(rendered.masked[outside], face[outside]) and rendered.mask_map.any()


@pytest.mark.parametrize("family", overlay.FAMILIES)
def test_render_rejects_bad_arguments(faces, family):
    face, landmarks = faces[0]
    style = overlay.FAMILIES[family].STYLES[0]
    with pytest.raises(ValueError, match="unknown mask style 'bandana'"):
        render(family, face, landmarks, "bandana", 0)
    with pytest.raises(ValueError):
        render(family, face, landmarks[:60], style, 0)
    with pytest.raises(ValueError):
        render(family, face.astype(np.float32), landmarks, style, 0)
