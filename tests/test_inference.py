"""The Unmasker and its backends: same crops from every format, whole photos, the README example."""

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import tfunmask
from tfunmask.inference import generators
from tfunmask.data import images
from tfunmask.models.layers import NearestUpsample2x, UpsampleConv2D, fused_upsampling

REPO = Path(__file__).resolve().parents[1]
# The README's API example; until the deployment section is merged into README.md it lives in
# the notes it is merged from.
EXAMPLE_SOURCES = (REPO / "README.md",)
EXAMPLE_MARKER = "<!-- api-example"


def crops(count, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def test_every_backend_gives_the_keras_crops(tiny_exports):
    keras_crops = tfunmask.load(tiny_exports["keras"].path).generate(crops(5))
    assert keras_crops.dtype == np.uint8 and keras_crops.shape == (5, 32, 32, 3)
    for fmt, result in tiny_exports.items():
        unmasker = tfunmask.load(result.path, num_threads=1)
        assert unmasker.size == 32
        output = unmasker.generate(crops(5))
        tolerance = 1 if fmt in ("saved_model", "keras", "float32", "float16") else 8
        assert np.abs(output.astype(int) - keras_crops).max() <= tolerance, fmt
        assert unmasker.generate(crops(0)).shape == (0, 32, 32, 3)


def test_a_run_folder_loads_its_saved_model(tiny_run):
    assert isinstance(tfunmask.load(tiny_run).generator, generators.SavedModelGenerator)


def test_bad_model_paths_fail_with_one_line(tmp_path):
    (tmp_path / "broken.tflite").write_bytes(b"not a flatbuffer")
    (tmp_path / "weights.h5").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    for path, message in [(tmp_path / "missing.tflite", "no such model"),
                          (tmp_path / "broken.tflite", "cannot load the tflite model"),
                          (tmp_path / "weights.h5", "unknown model format"),
                          (tmp_path / "empty", "not a SavedModel folder")]:
        with pytest.raises(generators.ModelError, match=message) as error:
            tfunmask.load(path)
        assert "\n" not in str(error.value)


def test_wrong_crops_are_refused(tiny_exports):
    unmasker = tfunmask.load(tiny_exports["float32"].path)
    with pytest.raises(ValueError, match=r"expected uint8 crops \(N, 32, 32, 3\)"):
        unmasker.generate(np.zeros((1, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="expected a uint8 RGB image"):
        unmasker.unmask(np.zeros((40, 40), np.uint8))


def test_two_faces_are_unmasked_and_nothing_else_changes(tiny_exports, two_face_photo):
    result = tfunmask.load(tiny_exports["int8"].path).unmask(two_face_photo)
    assert result.image.shape == two_face_photo.shape and result.image.dtype == np.uint8
    assert len(result.faces) == 2
    changed = np.any(result.image != two_face_photo, axis=-1)
    for face in result.faces:
        left, top, right, bottom = face.box
        assert changed[top:bottom, left:right].mean() > 0.3
        assert face.crop.shape == face.output.shape == (32, 32, 3) and face.detector == "blazeface"
        assert face.landmarks.shape == (68, 2) and face.matrix.shape == (2, 3)
    assert not changed[:, :10].any() and not changed[:, -10:].any()  # the photo's sides stay as they were
    assert changed.mean() < 0.5


def test_no_face_leaves_the_photo_alone(tiny_exports):
    gradient = np.linspace(0, 255, 96 * 128 * 3).reshape(96, 128, 3).astype(np.uint8)
    result = tfunmask.load(tiny_exports["saved_model"].path, use_cnn=False).unmask(gradient)
    assert result.faces == [] and np.array_equal(result.image, gradient)


def test_assume_cropped_unmasks_the_whole_image(tiny_exports):
    photo = crops(1, size=80, seed=3)[0][:, :60]
    unmasker = tfunmask.load(tiny_exports["keras"].path)
    result = unmasker.unmask(photo, assume_cropped=True)
    assert result.image.shape == photo.shape and len(result.faces) == 1
    (face,) = result.faces
    assert face.box == (0, 0, 60, 80) and face.landmarks is None
    assert np.array_equal(face.output, unmasker.generate(face.crop[None])[0])


def readme_example():
    """The Python code block after the api-example marker, from README.md or the notes."""
    for source in EXAMPLE_SOURCES:
        if source.is_file() and EXAMPLE_MARKER in source.read_text():
            text = source.read_text().split(EXAMPLE_MARKER, 1)[1]
            return re.search(r"```python\n(.*?)```", text, re.S).group(1)
    pytest.fail(f"no API example marked {EXAMPLE_MARKER!r} in {', '.join(map(str, EXAMPLE_SOURCES))}")


def test_readme_api_example_runs(two_face_photo, tmp_path, monkeypatch):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 25
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TFUNMASK_CACHE", os.environ.get("TFUNMASK_CACHE", str(tmp_path / "cache")))
    images.write_image(tmp_path / "photo.jpg", two_face_photo)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(code, "README example", "exec"), {"__name__": "readme_example"})
    misleading = [str(w.message) for w in caught if issubclass(w.category, UserWarning)
                  and ("shuffle" in str(w.message) or "ran out of data" in str(w.message))]
    assert not misleading, misleading  # Keras' warnings that read like bugs to a user
    result = images.read_image(tmp_path / "photo_unmasked.jpg")
    assert result.shape == two_face_photo.shape
    loaded = tfunmask.load("unmasker.keras").generator.model  # the custom layers deserialise
    assert isinstance(loaded.get_layer("out_resize"), NearestUpsample2x)
    assert isinstance(loaded.get_layer("up0_conv"), UpsampleConv2D) == fused_upsampling("auto")
