"""Shared fixtures: where the real face photos are, and quiet TensorFlow logs."""
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The shared face photos: $TFUNMASK_SHARED_DATA, else ../shared/data beside the repo."""
    return Path(os.environ.get("TFUNMASK_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    """Folder with `unmasked/` and `masked_real/` real photos; skips the test when absent."""
    faces = shared_data_dir() / "faces"
    if not (faces / "unmasked").is_dir():
        pytest.skip(f"shared face photos not found at {faces}")
    return faces


def _smooth_images(rng, count, size):
    """Smooth random RGB images (upsampled coarse noise): learnable, unlike white noise."""
    import cv2
    import numpy as np

    coarse = rng.integers(0, 256, (count, 4, 4, 3), dtype=np.uint8)
    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR) for c in coarse])


@pytest.fixture(scope="session")
def tiny_paired_data(tmp_path_factory):
    """A paired TFRecord folder of 48 random 32 px triples (lower half masked)."""
    import numpy as np

    from tfunmask.data.tfrecords import write_paired_shards

    rng = np.random.default_rng(0)
    size = 32
    targets = _smooth_images(rng, 48, size)
    mask_map = np.zeros((size, size), np.uint8)
    mask_map[size // 2:] = 255
    records = [{"masked": np.where(mask_map[..., None] > 0, 200, t).astype(np.uint8), "target": t,
                "mask_map": mask_map, "source": f"photo{i:03d}.jpg", "id": f"photo{i:03d}_0_0"}
               for i, t in enumerate(targets)]
    out = tmp_path_factory.mktemp("paired")
    write_paired_shards(records, out, shards=2, fractions=(0.75, 0.25, 0.0))
    return out


@pytest.fixture(scope="session")
def tiny_unpaired_data(tmp_path_factory):
    """An unpaired TFRecord folder: 24 random 32 px images per domain."""
    import numpy as np

    from tfunmask.data.tfrecords import write_unpaired_shards

    rng = np.random.default_rng(1)
    records = [{"image": image, "domain": domain, "source": f"{domain}{i:03d}.jpg"}
               for domain in ("A", "B") for i, image in enumerate(_smooth_images(rng, 24, 32))]
    out = tmp_path_factory.mktemp("unpaired")
    write_unpaired_shards(records, out, shards=2, fractions=(0.75, 0.25, 0.0))
    return out
