"""The first example: a real face, masked by the project's own renderer, for trying a model at once.

The face is NASA's public-domain portrait of astronaut Eileen Collins, which scikit-image ships in
its wheel (``skimage/data/astronaut.png``): nothing is downloaded, and no photo of the project's
data is in the repository. ``masked_portrait`` finds the face, renders a mask on its aligned crop
(``synth.masks``) and pastes exactly the mask back into the photo, so the masked photo differs from
the original only where the mask is.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from tfunmask.data import faces, images
from tfunmask.synth import masks

CROP = 256  # side of the aligned crop the mask is rendered on


def astronaut() -> np.ndarray:
    """The astronaut portrait, uint8 RGB (512, 512, 3); ValueError (one line) without scikit-image."""
    spec = importlib.util.find_spec("skimage")
    path = Path(spec.origin).parent / "data" / "astronaut.png" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise ValueError("the example portrait comes with scikit-image: pip install scikit-image")
    return images.read_image(path)


def masked_portrait(style: str = "surgical", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(original, masked) astronaut photos, the mask drawn by ``masks.render`` in ``style``."""
    photo = astronaut()
    (face,) = faces.find(photo, max_faces=1, use_cnn=False)
    crop, alignment = faces.align(photo, face.landmarks, CROP)
    rendered = masks.render(crop, alignment.to_crop(face.landmarks), style, np.random.default_rng(seed))
    return photo, faces.paste_back(photo, rendered.masked, alignment, rendered.mask_map, feather=0.01)
