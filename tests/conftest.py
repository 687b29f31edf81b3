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
