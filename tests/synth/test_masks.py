"""What is particular to the mesh family (tfunmask.synth.masks): it covers the chin too, and its style
names. The contract every family keeps is in test_mask_families.py."""
import numpy as np
import pytest

from tfunmask.synth import masks

from .test_mask_families import at

CHIN = list(range(6, 11))


@pytest.mark.parametrize("style", masks.STYLES)
def test_mesh_masks_also_cover_the_chin(faces, style):
    for seed, (face, landmarks) in enumerate(faces):
        rendered = masks.render(face, landmarks, style, np.random.default_rng(seed))
        assert (at(rendered.mask_map, landmarks[CHIN]) == 255).all()


def test_parse_styles():
    assert masks.parse_styles("all") == masks.STYLES
    assert masks.parse_styles(" Surgical, n95 ,surgical") == ("surgical", "n95")
    assert len(masks.STYLES) >= 5 and {"surgical", "n95", "kn95", "cloth"} <= set(masks.STYLES)
    for bad in ("", " , ", "surgical,bandana", "all,n95"):
        with pytest.raises(ValueError) as error:
            masks.parse_styles(bad)
        assert "\n" not in str(error.value)
