"""records_builder and tools/make_tfrecords.py: overlay output / photo folders -> records -> shards.

Skips must carry a reason and the counts must add up; the CLI must end user errors with one line
on stderr and a non-zero exit.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfunmask.data import faces, records_builder, splits, tfrecords
from tfunmask.synth import overlay

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "make_tfrecords.py"
SIZE = 32
GOOD_SOURCES = ("a.jpg", "sub/b.jpg", "c.png")
VARIANTS = 2


def _write_triple(root, rng, triple_id, size=SIZE):
    for folder in overlay.OUTPUT_FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
    for folder in ("masked", "target"):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / folder / f"{triple_id}.png")
    mask = np.where(rng.random((size, size)) > 0.5, 255, 0).astype(np.uint8)
    Image.fromarray(mask).save(root / "mask_map" / f"{triple_id}.png")


def _meta(triple_id, source):
    return json.dumps({"id": triple_id, "source": source, "face_index": 0, "style": "surgical",
                       "colour": "blue", "landmarks": [[1.0, 2.0]] * 68, "alignment": [[1, 0, 0], [0, 1, 0]]})


def make_overlay_output(root: Path) -> Path:
    """A fake overlay-tool output: 3 sources x 2 mask variants that are fine, plus one broken
    entry of each kind (bad JSON, missing files, a non-binary mask, mismatched sizes, RGBA)."""
    rng = np.random.default_rng(0)
    lines = []
    for source in GOOD_SOURCES:
        for k in range(VARIANTS):
            triple_id = f"{Path(source).stem}_0_{k}"
            _write_triple(root, rng, triple_id)
            lines.append(_meta(triple_id, source))
    lines += ["{not json", _meta("ghost", "ghost.jpg")]
    for triple_id in ("badmask", "badsize", "rgba"):
        _write_triple(root, rng, triple_id)
        lines.append(_meta(triple_id, f"{triple_id}.jpg"))
    Image.fromarray(np.full((SIZE, SIZE), 7, np.uint8)).save(root / "mask_map" / "badmask.png")
    Image.fromarray(np.zeros((SIZE + 1, SIZE, 3), np.uint8)).save(root / "target" / "badsize.png")
    Image.fromarray(np.zeros((SIZE, SIZE, 4), np.uint8)).save(root / "masked" / "rgba.png")
    (root / "meta.jsonl").write_text("\n".join(lines) + "\n\n")
    return root


EXPECTED_SKIPS = {"bad_meta": 1, "missing_file": 1, "bad_mask_map": 1, "size_mismatch": 1, "bad_mode": 1}


def test_paired_records_skip_with_reasons(tmp_path):
    root = make_overlay_output(tmp_path / "overlay")
    tally = records_builder.Tally()
    entries = overlay.read_entries(root)
    records = list(overlay.read_triples(root, entries, tally))

    assert len(records) == len(GOOD_SOURCES) * VARIANTS
    assert {r["source"] for r in records} == set(GOOD_SOURCES)
    assert records[0]["mask_map"].shape == (SIZE, SIZE) and records[0]["masked"].dtype == np.uint8
    report = tally.as_dict()
    assert report["skipped"] == EXPECTED_SKIPS
    assert report["seen"] == len(entries) == report["kept"] + sum(report["skipped"].values())
    assert {item["reason"] for item in report["skipped_items"]} == set(EXPECTED_SKIPS)


def test_paired_entries_reject_wrong_folders(tmp_path):
    with pytest.raises(records_builder.InputError, match="does not exist"):
        overlay.read_entries(tmp_path / "nope")
    with pytest.raises(records_builder.InputError, match="meta.jsonl"):
        overlay.read_entries(tmp_path)


class _FakeFace:
    def __init__(self, size):
        self.landmarks = np.zeros((68, 2), np.float32) + size


def _fake_find(image, *, max_faces=None, use_cnn=True, detector="cascade"):
    """No face in images with little red, else two (of different "sizes") capped at max_faces."""
    found = [] if image[..., 0].mean() < 50 else [_FakeFace(2), _FakeFace(1)]
    return found[:max_faces]


class _Unmoved:
    """An alignment that leaves landmarks where they are."""

    @staticmethod
    def to_crop(points):
        return points


def _fake_align(image, landmarks, size):
    return np.full((size, size, 3), int(landmarks[0, 0]), np.uint8), _Unmoved()


def test_unpaired_records_tally_every_file(tmp_path, monkeypatch):
    monkeypatch.setattr(faces, "find", _fake_find)
    monkeypatch.setattr(faces, "align", _fake_align)
    domain_a, domain_b = tmp_path / "a", tmp_path / "b" / "deep"
    domain_a.mkdir()
    domain_b.mkdir(parents=True)
    colour = np.ones((40, 40, 3), np.uint8)
    Image.fromarray(colour * np.uint8([200, 50, 100])).save(domain_a / "face.png")
    Image.fromarray(colour * np.uint8([10, 200, 30])).save(domain_a / "noface.png")
    Image.fromarray(colour * 128).save(domain_a / "grey.png")
    (domain_a / "notes.txt").write_text("not an image")
    Image.fromarray(colour * np.uint8([150, 40, 90])).save(domain_b / "face2.jpg")
    tallies = {"A": records_builder.Tally(), "B": records_builder.Tally()}

    records = list(records_builder.unpaired_records({"A": domain_a, "B": tmp_path / "b"}, tallies, size=16))

    assert [(r["domain"], r["source"], r["face_index"]) for r in records] == [
        ("A", "face.png", 0), ("A", "face.png", 1), ("B", "deep/face2.jpg", 0), ("B", "deep/face2.jpg", 1)]
    assert records[0]["image"].shape == (16, 16, 3) and records[0]["landmarks"].shape == (68, 2)
    a = tallies["A"].as_dict()
    assert a["seen"] == 4 == a["kept"] + sum(a["skipped"].values()) and a["written"] == 2
    assert a["skipped"]["no_face"] == 1 and a["skipped"]["greyscale"] == 1 and len(a["skipped_items"]) == 3
    assert tallies["B"].written == 2


def test_unpaired_records_of_one_split_read_only_its_photos(tmp_path, monkeypatch):
    """With ``split``, only the photos make_tfrecords puts in that split are read and tallied."""
    monkeypatch.setattr(faces, "find", _fake_find)
    monkeypatch.setattr(faces, "align", _fake_align)
    names = [f"p{i}.png" for i in range(60)]
    for name in names:
        Image.fromarray(np.full((40, 40, 3), (200, 50, 100), np.uint8)).save(tmp_path / name)
    expected = sorted(n for n in names if splits.split_of(n) == "test")
    assert 0 < len(expected) < len(names)
    tally = records_builder.Tally()
    records = list(records_builder.unpaired_records({"A": tmp_path}, {"A": tally}, size=16, split="test"))
    assert sorted({r["source"] for r in records}) == expected and tally.seen == len(expected)


def test_unpaired_records_on_real_photos(shared_faces, tmp_path):
    photos = sorted((shared_faces / "unmasked").glob("*.jpg"))[:2]
    domain = tmp_path / "photos"
    domain.mkdir()
    for photo in photos:
        (domain / photo.name).symlink_to(photo)
    tallies = {"B": records_builder.Tally()}
    records = list(records_builder.unpaired_records({"B": domain}, tallies, size=64, max_faces=1, use_cnn=False))
    report = tallies["B"].as_dict()
    assert report["seen"] == 2 == report["kept"] + sum(report["skipped"].values())
    assert len(records) == report["written"]
    assert all(r["image"].shape == (64, 64, 3) and r["image"].dtype == np.uint8 for r in records)


def _run_tool(*args, cwd=None):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_cli_paired_end_to_end(tmp_path):
    root = make_overlay_output(tmp_path / "overlay")
    out = tmp_path / "records"
    flagfile = tmp_path / "flags.txt"
    flagfile.write_text(f"--mode=paired\n--input={root}\n--out={out}\n--shards=2\n--split=0.5,0.25,0.25\n"
                        "--split_salt=another\n")

    result = _run_tool(f"--flagfile={flagfile}")

    assert result.returncode == 0, result.stderr[-2000:]
    assert "inputs" in result.stdout  # progress line
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["mode"] == "paired" and manifest["image_size"] == [SIZE, SIZE]
    assert manifest["schema_version"] == tfrecords.SCHEMA_VERSION
    expected = {split: 0 for split in splits.SPLITS}
    default = dict(expected)
    for source in GOOD_SOURCES:
        expected[splits.split_of(source, (0.5, 0.25, 0.25), "another")] += VARIANTS
        default[splits.split_of(source, (0.5, 0.25, 0.25))] += VARIANTS
    assert manifest["counts"] == expected != default  # the salt drew the split
    assert splits.Rule.of_manifest(manifest) == splits.Rule((0.5, 0.25, 0.25), "another")
    report = json.loads((out / "report.json").read_text())
    assert report["seen"] == report["kept"] + sum(report["skipped"].values()) == 11
    assert report["skipped"] == EXPECTED_SKIPS
    assert sorted(p.name for p in out.glob("*.tfrecord")) == sorted(
        name for names in manifest["files"].values() for name in names)


@pytest.mark.parametrize("args, message", [
    ([], "--mode"),
    (["--mode=sideways", "--out=o"], "mode"),
    (["--mode=paired", "--out=o"], "--input"),
    (["--mode=paired", "--input=missing", "--out=o"], "does not exist"),
    (["--mode=paired", "--input=empty", "--out=o"], "meta.jsonl"),
    (["--mode=unpaired", "--domain_a=empty", "--domain_b=empty", "--out=o"], "holds no files"),
    (["--mode=paired", "--input=overlay", "--out=o", "--split=0.5,0.6,0.1"], "sum to 1"),
    (["--mode=paired", "--input=overlay", "--out=o", "--shards=0"], "shards"),
    (["--mode=paired", "--input=overlay", "--out=o", "--split_salt="], "--split_salt must be a non-empty string"),
    (["--mode=paired", "--input=overlay", "--out=overlay/o"], "inside"),
    (["--mode=paired", "--input=overlay", "--out=old"], "--overwrite"),
    (["--mode=paired", "--input=overlay", "--out=o", "stray"], "unexpected"),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    make_overlay_output(tmp_path / "overlay")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "paired-train-00000-of-00001.tfrecord").write_bytes(b"")

    result = _run_tool(*args, cwd=tmp_path)

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("make_tfrecords: error:") and message in lines[0]
    assert not (tmp_path / "o").exists()
