"""The Unmasker and its backends: same crops from every format, whole photos, the README example."""

import os
import re
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

import tfunmask
from tfunmask import models
from tfunmask.inference import generators
from tfunmask.inference.photos import Unmasker
from tfunmask.serving import exporter
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
    keras_crops = tfunmask.load(tiny_exports["keras"].path, flip_average=False).generate(crops(5))
    assert keras_crops.dtype == np.uint8 and keras_crops.shape == (5, 32, 32, 3)
    for fmt, result in tiny_exports.items():
        unmasker = tfunmask.load(result.path, num_threads=1, flip_average=False)
        assert unmasker.size == 32
        output = unmasker.generate(crops(5))
        tolerance = 1 if fmt in ("saved_model", "keras", "float32", "float16") else 8
        assert np.abs(output.astype(int) - keras_crops).max() <= tolerance, fmt
        assert unmasker.generate(crops(0)).shape == (0, 32, 32, 3)


def test_a_run_folder_loads_its_saved_model(tiny_run):
    from tfunmask.evaluation import suite

    assert isinstance(tfunmask.load(tiny_run).generator, generators.SavedModelGenerator)
    assert suite.scored_epoch(tiny_run) is None  # evaluate scores the export, not a checkpoint


def test_bad_model_paths_fail_with_one_line(tmp_path):
    (tmp_path / "broken.tflite").write_bytes(b"not a flatbuffer")
    (tmp_path / "weights.h5").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    for path, message in [(tmp_path / "missing.tflite", "no such model"),
                          (tmp_path / "run", "a training run folder without saved_model/: export it .* --epoch=N"),
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


class GreyLowerHalf:
    """A generator that paints its crops grey and, ``with_mask``, says it wrote only from row
    ``MASK_TOP`` down (like a composite model's mask map over a mask)."""

    size = 32
    MASK_TOP = 20

    def __init__(self, with_mask):
        self.with_mask = with_mask

    def __call__(self, crops):
        return self.predict(crops)[0]

    def predict(self, crops):
        output = np.full_like(crops, 128)
        if not self.with_mask:
            return output, None
        mask = np.zeros(crops.shape[:3], np.float32)
        mask[:, self.MASK_TOP:] = 1.0
        return output, mask


class BrightLeftHalf:
    """A generator that brightens the left half of its crops by 40 levels and says it wrote there
    only: not mirror-symmetric, so its flip average is known."""

    size = 32

    def predict(self, crops):
        output = crops.astype(int)
        output[:, :, :16] += 40
        mask = np.zeros(crops.shape[:3], np.float32)
        mask[:, :, :16] = 1.0
        return np.clip(output, 0, 255).astype(np.uint8), mask


def test_flip_average_is_the_mean_over_the_crop_and_its_mirror_image():
    faces = crops(3, seed=6)
    brightened = np.minimum(faces.astype(int) + 40, 255)
    single, single_mask = Unmasker(BrightLeftHalf(), flip_average=False).predict(faces)
    assert (single[:, :, 16:] == faces[:, :, 16:]).all() and (single_mask[:, :, 16:] == 0).all()
    # the mirror image's left half is the crop's right half: mirrored back, the mean brightens
    # every pixel by half and the map is 0.5 everywhere
    averaged, mask = Unmasker(BrightLeftHalf()).predict(faces)
    np.testing.assert_array_equal(averaged, np.rint((faces + brightened) / 2).astype(np.uint8))
    np.testing.assert_array_equal(mask, np.full((3, 32, 32), 0.5, np.float32))
    assert averaged.dtype == np.uint8 and mask.dtype == np.float32
    np.testing.assert_array_equal(Unmasker(BrightLeftHalf()).generate(faces), averaged)


def test_a_cropped_face_is_blended_only_where_the_mask_map_says(tiny_exports):
    photo = crops(1, size=96, seed=4)[0]
    result = Unmasker(GreyLowerHalf(with_mask=True)).unmask(photo, assume_cropped=True)
    # crop rows 20.. are photo rows 60..; the region grows 1 crop pixel (3 photo rows) and its
    # feather ramp is 5 % of the side (about 5 photo rows) beyond that
    assert np.array_equal(result.image[:50], photo[:50])
    assert (result.image[60:] == 128).all()
    assert result.faces[0].region[GreyLowerHalf.MASK_TOP - 1:].all() and not result.faces[0].region[:18].any()
    without = Unmasker(GreyLowerHalf(with_mask=False)).unmask(photo, assume_cropped=True)
    assert (without.image == 128).all()  # no map: the whole face is the generator's


def test_a_mask_map_keeps_the_eyes_of_a_photo(two_face_photo):
    photo = two_face_photo
    with_map = Unmasker(GreyLowerHalf(with_mask=True), use_cnn=False).unmask(photo)
    assert len(with_map.faces) == 2
    changed = np.any(with_map.image != photo, axis=-1)
    for face in with_map.faces:
        eyes = np.rint(face.landmarks[36:48]).astype(int)
        assert not changed[eyes[:, 1], eyes[:, 0]].any()
        lower_lip = np.rint(face.landmarks[56:59]).astype(int)  # about 3/4 down the aligned crop
        assert (with_map.image[lower_lip[:, 1], lower_lip[:, 0]] == 128).all()


def test_every_format_exports_the_mask_map(tmp_path):
    model = models.build("pix2pix", dict(image_size=32, filters=4, max_filters=16, composite=True))
    faces = crops(4, seed=5)
    keras_images, keras_masks = generators.KerasGenerator(model.export_generator()).predict(faces)
    assert keras_masks.shape == (4, 32, 32) and keras_masks.dtype == np.float32
    formats = ("saved_model", "float32", "int8")
    for fmt, path in exporter.export_generator(model.export_generator(), tmp_path, formats, calibration=faces):
        _, masks = generators.open_generator(path, num_threads=1).predict(faces)
        # uint8 outputs: rounding (half a level) in float; int8 adds its quantisation steps
        tolerance = 0.5 / 255 + 1e-6 if fmt != "int8" else 8 / 255
        assert masks.shape == (4, 32, 32) and np.abs(masks - keras_masks).max() <= tolerance, fmt


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
    fused = fused_upsampling("auto")
    assert isinstance(loaded.get_layer("out_resize"), keras.layers.ZeroPadding2D if fused else NearestUpsample2x)
    assert isinstance(loaded.get_layer("up0_conv"), UpsampleConv2D) == fused
