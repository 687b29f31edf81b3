"""Shared fixtures of the synthesis tests."""
import numpy as np
import pytest

from tfunmask.synth import demo

FACE_SIZE = 64


@pytest.fixture(scope="module")
def faces():
    """Four drawn faces (RGB uint8, FACE_SIZE px) with their 68 landmarks."""
    return [demo.draw_face(np.random.default_rng(seed), FACE_SIZE) for seed in range(4)]
