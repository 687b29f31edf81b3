"""Tests for tfunmask.synth.demo: plausible procedural faces, determinism, and the cached demo dataset."""
import json

import numpy as np
import pytest

from tfunmask.synth import demo


@pytest.mark.parametrize("size", [32, 64, 256])
def test_faces_have_plausible_aligned_landmarks(size):
    for seed in range(10):
        image, lm = demo.draw_face(np.random.default_rng(seed), size)
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
        assert lm.shape == (68, 2) and lm.dtype == np.float32
        assert (lm >= -0.5).all() and (lm <= size - 0.5).all()  # inside the crop (pixel centres at integers)
        left_eye, right_eye = lm[36:42].mean(0), lm[42:48].mean(0)
        assert left_eye[0] < lm[30, 0] < right_eye[0]
        assert abs(left_eye[1] - right_eye[1]) < 0.1 * size  # near-level: already aligned
        assert 0.4 * size < left_eye[1] < 0.5 * size
        eyes_y, nose_y, mouth_y, chin_y = (left_eye[1] + right_eye[1]) / 2, lm[30, 1], lm[48:68, 1].mean(), lm[8, 1]
        assert eyes_y < nose_y < mouth_y < chin_y
        assert 0.45 * size < lm[16, 0] - lm[0, 0] < 0.8 * size
        assert (np.diff(lm[0:9, 1]) > -0.02 * size).all()  # left jaw runs down to the chin


def test_faces_are_aligned_like_real_faces():
    """demo places faces by faces.alignment: aligning a demo face again changes (almost) nothing."""
    from tfunmask.data import faces

    for seed in range(10):
        _, lm = demo.draw_face(np.random.default_rng(seed), 64)
        assert np.allclose(faces.alignment(lm, 64).matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-3)


def test_landmarks_sit_on_the_drawn_features():
    """The lips are redder than the cheeks and the pupils darker than the skin below the eyes."""
    for seed in range(10):
        image, lm = demo.draw_face(np.random.default_rng(seed), 128)
        px = lambda p: image[int(round(p[1])), int(round(p[0]))].astype(int)  # noqa: E731
        lip, cheek = px((lm[50] + lm[61]) / 2), px((lm[2] + lm[31]) / 2)
        assert lip[0] - lip[1] > cheek[0] - cheek[1]
        pupil, skin = px(lm[36:42].mean(0)), px((lm[41] + lm[31]) / 2 + [0, 0.02 * 128])
        assert pupil.sum() < skin.sum()


def test_draw_face_is_deterministic_and_varied():
    a = demo.draw_face(np.random.default_rng(5), 64)
    b = demo.draw_face(np.random.default_rng(5), 64)
    c = demo.draw_face(np.random.default_rng(6), 64)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0]) and not np.allclose(a[1], c[1])
    with pytest.raises(ValueError):
        demo.draw_face(np.random.default_rng(0), 8)


def test_build_writes_readable_cached_shards(tmp_path):
    import tensorflow as tf

    from tfunmask.data import tfrecords

    path = demo.build(tmp_path, count=24, size=32, seed=1)
    assert path.parent == tmp_path and path.name.startswith("demo-")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the temp folder was renamed away
    manifest = tfrecords.read_manifest(path)
    assert sum(manifest["counts"].values()) == 24 and manifest["image_size"] == [32, 32]
    assert json.loads((path / "demo.json").read_text())["count"] == 24
    total = 0
    for split in ("train", "val", "test"):
        files = tfrecords.paired_files(path, split)
        records = list(tf.data.TFRecordDataset(files).map(tfrecords.parse_paired)) if files else []
        assert len(records) == manifest["counts"][split]
        for record in records:
            assert record["masked"].shape == (32, 32, 3) and record["mask_map"].shape == (32, 32, 1)
            outside = record["mask_map"].numpy()[..., 0] == 0
            assert np.array_equal(record["masked"].numpy()[outside], record["target"].numpy()[outside])
        total += len(records)
    assert total == 24

    stamp = (path / "dataset.json").stat().st_mtime_ns
    assert demo.build(tmp_path, count=24, size=32, seed=1) == path  # cached: not rebuilt
    assert (path / "dataset.json").stat().st_mtime_ns == stamp
    assert demo.build(tmp_path, count=24, size=32, seed=2) != path  # other parameters, other folder


def test_build_uses_the_cache_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TFUNMASK_CACHE", str(tmp_path / "cache"))
    assert demo.cache_root() == tmp_path / "cache"
    path = demo.build(count=4, size=32)
    assert path.parent == tmp_path / "cache"


def test_unpaired_build_has_masked_and_other_unmasked_faces(tmp_path):
    """Domain A: drawn faces wearing masks; domain B: other drawn faces, none of them in A."""
    import tensorflow as tf

    from tfunmask.data import tfrecords

    out = demo.build(tmp_path, count=24, size=32, kind="unpaired")
    assert out.name.startswith("demo-unpaired-") and out != demo.build(tmp_path, count=24, size=32)
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["mode"] == "unpaired"
    assert sum(manifest["counts"]["A"].values()) == sum(manifest["counts"]["B"].values()) == 12
    sources = {}
    for domain in "AB":
        files = [f for split in tfrecords.SPLITS for f in tfrecords.unpaired_files(out, split, domain)]
        records = [tfrecords.parse_unpaired(r) for r in tf.data.TFRecordDataset(files)]
        sources[domain] = {r["source"].numpy().decode() for r in records}
        assert all(r["image"].shape == (32, 32, 3) for r in records)
    assert len(sources["A"]) == len(sources["B"]) == 12 and not sources["A"] & sources["B"]
    # the same drawn face masked in A would be the paired set's masked image: A is masked
    paired = demo.build(tmp_path, count=24, size=32)
    masked = {r["source"].numpy().decode(): r["masked"].numpy() for r in map(
        tfrecords.parse_paired, tf.data.TFRecordDataset(sorted(map(str, paired.glob("paired-*.tfrecord")))))}
    a_files = [f for split in tfrecords.SPLITS for f in tfrecords.unpaired_files(out, split, "A")]
    for record in map(tfrecords.parse_unpaired, tf.data.TFRecordDataset(a_files)):
        np.testing.assert_array_equal(record["image"].numpy(), masked[record["source"].numpy().decode()])


def test_build_rejects_an_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="paired or unpaired"):
        demo.build(tmp_path, count=2, size=32, kind="triplets")
