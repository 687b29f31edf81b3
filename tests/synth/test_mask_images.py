"""Tests for tfunmask.synth.mask_images (the mask-picture family) and its thin-plate spline."""
import json

import cv2
import numpy as np
import pytest

from tfunmask.synth import demo, mask_images, masks
from tfunmask.synth.tps import ThinPlateSpline

SIZE = 64
COVERED = [*range(30, 36), *range(48, 68)]  # nose tip and nostrils, the whole mouth


@pytest.fixture(scope="module")
def faces():
    return [demo.draw_face(np.random.default_rng(seed), SIZE) for seed in range(4)]


def _at(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    xy = np.round(points).astype(int)
    return image[xy[:, 1], xy[:, 0]]


def _eyes(landmarks: np.ndarray) -> np.ndarray:
    return np.concatenate([landmarks[[37, 38, 43, 44]], [landmarks[36:42].mean(0), landmarks[42:48].mean(0)]])


@pytest.mark.parametrize("style", mask_images.STYLES)
def test_mask_covers_nose_tip_and_mouth_but_not_eyes(faces, style):
    for seed, (face, landmarks) in enumerate(faces):
        rendered = mask_images.render(face, landmarks, style, np.random.default_rng(seed))
        assert (_at(rendered.mask_map, landmarks[COVERED]) == 255).all()
        assert (_at(rendered.mask_map, _eyes(landmarks)) == 0).all()


@pytest.mark.parametrize("style", mask_images.STYLES)
def test_pixels_change_only_inside_the_mask_map(faces, style):
    for seed, (face, landmarks) in enumerate(faces):
        rendered = mask_images.render(face, landmarks, style, np.random.default_rng(seed))
        assert rendered.masked.dtype == np.uint8 and rendered.masked.shape == face.shape
        assert rendered.mask_map.dtype == np.uint8 and rendered.mask_map.shape == face.shape[:2]
        assert set(np.unique(rendered.mask_map)) <= {0, 255}
        outside = rendered.mask_map == 0
        assert np.array_equal(rendered.masked[outside], face[outside])
        assert 0.1 < (~outside).mean() < 0.6  # a mask, not a speck or the whole crop
        changed = (rendered.masked != face).any(axis=-1)
        assert changed[~outside].mean() > 0.7  # the map is not padded with untouched pixels
        assert rendered.meta["family"] == "image" and rendered.meta["style"] == style
        assert rendered.meta["look"] in mask_images.LOOKS
        json.dumps(rendered.meta)


@pytest.mark.parametrize("style", mask_images.STYLES)
def test_same_seed_same_mask_and_other_seed_other_mask(faces, style):
    face, landmarks = faces[1]
    first = mask_images.render(face, landmarks, style, np.random.default_rng(7))
    again = mask_images.render(face, landmarks, style, np.random.default_rng(7))
    other = mask_images.render(face, landmarks, style, np.random.default_rng(8))
    assert np.array_equal(first.masked, again.masked) and np.array_equal(first.mask_map, again.mask_map)
    assert first.meta == again.meta
    assert not np.array_equal(first.masked, other.masked)


def test_both_looks_and_many_colours_occur(faces):
    face, landmarks = faces[0]
    metas = [mask_images.render(face, landmarks, "cloth", np.random.default_rng(seed)).meta for seed in range(24)]
    assert {meta["look"] for meta in metas} == set(mask_images.LOOKS)
    assert len({meta["colour"] for meta in metas}) >= 6 and len({meta["pattern"] for meta in metas}) >= 4


def test_another_family_than_the_mesh_masks(faces):
    """Same face, style name and seed: the two families draw different masks in different places."""
    face, landmarks = faces[2]
    picture = mask_images.render(face, landmarks, "surgical", np.random.default_rng(0))
    mesh = masks.render(face, landmarks, "surgical", np.random.default_rng(0))
    a, b = picture.mask_map > 0, mesh.mask_map > 0
    assert (a & b).sum() / (a | b).sum() < 0.9
    both = a & b
    assert np.abs(picture.masked[both].astype(int) - mesh.masked[both]).mean() > 5


def test_mask_follows_head_roll(faces):
    face, landmarks = faces[2]
    upright = mask_images.render(face, landmarks, "kn95", np.random.default_rng(3))
    turn = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), 25, 1.0)
    tilted_face = cv2.warpAffine(face, turn, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)
    tilted_landmarks = landmarks @ turn[:, :2].T + turn[:, 2]
    tilted = mask_images.render(tilted_face, tilted_landmarks, "kn95", np.random.default_rng(3))
    expected = cv2.warpAffine(upright.mask_map, turn, (SIZE, SIZE), flags=cv2.INTER_NEAREST) > 0
    got = tilted.mask_map > 0
    assert (expected & got).sum() / (expected | got).sum() > 0.85
    assert (_at(tilted.mask_map, tilted_landmarks[COVERED]) == 255).all()


def test_mask_partly_outside_the_image_keeps_the_invariant(faces):
    face, landmarks = faces[3]
    rendered = mask_images.render(face, landmarks + np.float32([0, 24]), "cup", np.random.default_rng(0))
    outside = rendered.mask_map == 0
    assert np.array_equal(rendered.masked[outside], face[outside]) and rendered.mask_map.any()


def test_render_rejects_bad_arguments(faces):
    face, landmarks = faces[0]
    with pytest.raises(ValueError, match="unknown mask style 'n95'"):
        mask_images.render(face, landmarks, "n95", np.random.default_rng(0))
    with pytest.raises(ValueError):
        mask_images.render(face, landmarks[:60], "cup", np.random.default_rng(0))
    with pytest.raises(ValueError):
        mask_images.render(face.astype(np.float32), landmarks, "cup", np.random.default_rng(0))


def test_parse_styles_takes_the_family_styles():
    assert masks.parse_styles("all", mask_images.STYLES) == mask_images.STYLES
    assert masks.parse_styles("cup, kn95", mask_images.STYLES) == ("cup", "kn95")
    with pytest.raises(ValueError, match="unknown mask style.*n95.*choose from surgical, cup"):
        masks.parse_styles("n95", mask_images.STYLES)


def test_thin_plate_spline_interpolates_and_is_affine_on_affine_data():
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 100, (12, 2))
    bent = source + rng.normal(0, 5, source.shape)
    np.testing.assert_allclose(ThinPlateSpline(source, bent)(source), bent, atol=1e-6)
    matrix, shift = np.array([[1.2, 0.3], [-0.2, 0.9]]), np.array([5.0, -3.0])
    spline = ThinPlateSpline(source, source @ matrix.T + shift)
    probe = rng.uniform(-50, 150, (40, 2))
    np.testing.assert_allclose(spline(probe), probe @ matrix.T + shift, atol=1e-6)
    with pytest.raises(ValueError, match="K >= 3"):
        ThinPlateSpline(source[:2], bent[:2])
