"""What is particular to the mask-picture family (tfunmask.synth.mask_images) and its thin-plate
spline. The contract every family keeps is in test_mask_families.py."""
import numpy as np
import pytest

from tfunmask.synth import mask_images, masks
from tfunmask.synth.tps import ThinPlateSpline


@pytest.mark.parametrize("style", mask_images.STYLES)
def test_meta_names_the_family_and_the_look(faces, style):
    face, landmarks = faces[0]
    meta = mask_images.render(face, landmarks, style, np.random.default_rng(0)).meta
    assert meta["family"] == "image" and meta["look"] in mask_images.LOOKS


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
