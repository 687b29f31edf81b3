"""TFRecord schema: bit-exact round trips, the source-hash split rule, sharding and the manifest."""
import json
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

from tfunmask.data import splits, tfrecords


def _paired_record(rng, source, face_index=0, size=(32, 40)):
    masked = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    return {
        "masked": masked,
        "target": rng.integers(0, 256, (*size, 3), dtype=np.uint8),
        "mask_map": (rng.random(size) > 0.5).astype(np.uint8) * 255,
        "source": source,
        "face_index": face_index,
        "style": "surgical",
        "id": f"{source.replace('/', '_')}_{face_index}",
    }


def _read_all(files, parse):
    return [{k: v.numpy() for k, v in parse(s).items()} for s in tf.data.TFRecordDataset(files)]


def _all_paired_files(out):
    return [f for split in splits.SPLITS for f in tfrecords.paired_files(out, split)]


def test_paired_round_trip_is_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    records = [_paired_record(rng, f"people/p{i}.jpg", face_index=i % 2) for i in range(12)]
    manifest = tfrecords.write_paired_shards(records, tmp_path, shards=3, fractions=(0.5, 0.25, 0.25))

    parsed = {r["id"].decode(): r for r in _read_all(_all_paired_files(tmp_path), tfrecords.parse_paired)}
    assert len(parsed) == len(records)
    for record in records:
        got = parsed[record["id"]]
        for key in ("masked", "target"):
            assert got[key].dtype == np.uint8 and got[key].tobytes() == record[key].tobytes()
            assert got[key].shape == record[key].shape
        assert got["mask_map"].shape == (32, 40, 1)
        assert got["mask_map"][..., 0].tobytes() == record["mask_map"].tobytes()
        assert got["source"] == record["source"].encode()
        assert got["style"] == b"surgical" and got["face_index"] == record["face_index"]
    assert manifest == json.loads((tmp_path / "dataset.json").read_text()) == tfrecords.read_manifest(tmp_path)
    assert manifest["schema_version"] == tfrecords.SCHEMA_VERSION and manifest["mode"] == "paired"
    assert manifest["image_size"] == [32, 40]
    assert sum(manifest["counts"].values()) == len(records)


def test_unpaired_round_trip_and_names(tmp_path):
    rng = np.random.default_rng(1)
    records = [{"image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "domain": domain,
                "source": f"{domain}/{i}.png", "face_index": i} for domain in "AB" for i in range(5)]
    manifest = tfrecords.write_unpaired_shards(records, tmp_path, shards=2, fractions=(1, 0, 0))

    for domain in "AB":
        files = tfrecords.unpaired_files(tmp_path, "train", domain)
        assert [f.rsplit("/", 1)[1] for f in files] == [
            f"unpaired-{domain}-train-0000{i}-of-00002.tfrecord" for i in range(2)]
        got = sorted(_read_all(files, tfrecords.parse_unpaired), key=lambda r: r["face_index"])
        want = [r for r in records if r["domain"] == domain]
        assert [g["image"].tobytes() for g in got] == [w["image"].tobytes() for w in want]
        assert {g["domain"] for g in got} == {domain.encode()}
        assert manifest["counts"][domain] == {"train": 5, "val": 0, "test": 0}
    assert tfrecords.unpaired_files(tmp_path, "val", "A") == []


def test_split_of_is_deterministic_and_follows_fractions():
    sources = [f"dir/photo_{i}.jpg" for i in range(3000)]
    first = [splits.split_of(s) for s in sources]
    assert first == [splits.split_of(s) for s in sources]
    shares = Counter(first)
    assert abs(shares["train"] / 3000 - 0.9) < 0.03 and shares["val"] > 60 and shares["test"] > 60
    assert {splits.split_of(s, (0, 1, 0)) for s in sources[:200]} == {"val"}
    assert [splits.split_of(s, salt="other") for s in sources] != first


@pytest.mark.parametrize("fractions", [(0.9, 0.1), (0.9, 0.2, 0.1), (1.2, -0.1, -0.1), (float("nan"), 0.5, 0.5)])
def test_bad_fractions_raise_one_line(fractions):
    with pytest.raises(ValueError) as error:
        splits.check_fractions(fractions)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("salt", ["", None])
def test_an_empty_salt_is_refused_before_anything_is_written(salt, tmp_path):
    """An empty salt would silently draw another split than the default's: every way in refuses it."""
    rng = np.random.default_rng(6)
    for call in (lambda: splits.split_of("a.jpg", salt=salt), lambda: splits.Rule(salt=salt),
                 lambda: tfrecords.write_paired_shards([_paired_record(rng, "a.jpg")], tmp_path, salt=salt),
                 lambda: tfrecords.write_unpaired_shards([], tmp_path, salt=salt)):
        with pytest.raises(ValueError, match="the split salt must be a non-empty string"):
            call()
    assert list(tmp_path.iterdir()) == []


def test_parse_fractions():
    assert splits.parse_fractions("0.8,0.1,0.1") == (0.8, 0.1, 0.1)
    with pytest.raises(ValueError, match="comma-separated"):
        splits.parse_fractions("0.8;0.2")


def test_all_variants_of_a_source_share_a_split(tmp_path):
    rng = np.random.default_rng(2)
    sources = [f"s{i}.jpg" for i in range(20)]
    records = [_paired_record(rng, s, face_index=f, size=(8, 8)) | {"id": f"{s}_{f}_{k}"}
               for s in sources for f in range(2) for k in range(2)]
    tfrecords.write_paired_shards(records, tmp_path, shards=2, fractions=(0.5, 0.3, 0.2))

    split_by_source = {}
    for split in splits.SPLITS:
        for record in _read_all(tfrecords.paired_files(tmp_path, split), tfrecords.parse_paired):
            assert split_by_source.setdefault(record["source"].decode(), split) == split
            assert split == splits.split_of(record["source"].decode(), (0.5, 0.3, 0.2))
    assert sorted(split_by_source) == sorted(sources)


def test_small_splits_get_fewer_shards_and_empty_splits_none(tmp_path):
    rng = np.random.default_rng(3)
    manifest = tfrecords.write_paired_shards([_paired_record(rng, "a.jpg"), _paired_record(rng, "b.jpg")],
                                             tmp_path, shards=8, fractions=(1, 0, 0))
    assert manifest["files"]["train"] == ["paired-train-00000-of-00002.tfrecord",
                                          "paired-train-00001-of-00002.tfrecord"]
    assert manifest["files"]["val"] == [] and tfrecords.paired_files(tmp_path, "test") == []


def test_existing_shards_need_overwrite(tmp_path):
    rng = np.random.default_rng(4)
    tfrecords.write_paired_shards([_paired_record(rng, f"{i}.jpg") for i in range(4)], tmp_path, shards=4,
                                  fractions=(1, 0, 0))
    with pytest.raises(FileExistsError):
        tfrecords.write_paired_shards([_paired_record(rng, "x.jpg")], tmp_path, fractions=(1, 0, 0))
    tfrecords.write_paired_shards([_paired_record(rng, "x.jpg")], tmp_path, fractions=(1, 0, 0), overwrite=True)
    assert [p.name for p in sorted(tmp_path.glob("*.tfrecord"))] == ["paired-train-00000-of-00001.tfrecord"]


def test_failed_write_leaves_no_shards(tmp_path):
    rng = np.random.default_rng(5)
    bad = _paired_record(rng, "bad.jpg") | {"mask_map": np.full((32, 40), 7, np.uint8)}
    with pytest.raises(ValueError, match="mask_map"):
        tfrecords.write_paired_shards([_paired_record(rng, "ok.jpg"), bad], tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change", [
    {"target": np.zeros((16, 16, 3), np.uint8)},
    {"masked": np.zeros((32, 40, 3), np.float32)},
    {"mask_map": np.zeros((32, 41), np.uint8)},
])
def test_writer_rejects_malformed_records(tmp_path, change):
    record = _paired_record(np.random.default_rng(6), "a.jpg") | change
    with pytest.raises(ValueError):
        tfrecords.write_paired_shards([record], tmp_path)


def test_file_listing_checks_names(tmp_path):
    with pytest.raises(ValueError, match="split"):
        tfrecords.paired_files(tmp_path, "training")
    with pytest.raises(ValueError, match="domain"):
        tfrecords.unpaired_files(tmp_path, "train", "C")
