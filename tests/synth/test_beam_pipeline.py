"""The Beam synthesis pipeline (tfunmask.synth.beam_pipeline, tools/synthesize.py) against the local
tools: on the DirectRunner with two worker processes it must write the very records that
overlay_folder + write_paired_shards write for the same seed, and a report whose counts add up."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

beam_pipeline = pytest.importorskip("tfunmask.synth.beam_pipeline",
                                    reason="apache-beam is not installed (pip install -e '.[dev,beam]')")

from tfunmask.data.tally import Tally
from tfunmask.synth import overlay

REPO = Path(__file__).resolve().parents[2]
OPTIONS = {"size": 64, "seed": 5, "per_face": 2, "use_cnn": False}
RECORDS = {"shards": 2, "fractions": (0.5, 0.25, 0.25), "salt": "another"}
DIRECT_2 = ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def _small_copy(photo: Path, target: Path) -> None:
    """The photo at 320 px on its longer side (detection stays fast; faces stay findable)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(photo) as image:
        image.thumbnail((320, 320))
        image.save(target, quality=95)


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory, shared_faces):
    """Three real photos, one again under sub/ with the same name (its ids get "-2"), a file that is
    not an image, a truncated photo and a hidden file (ignored by both)."""
    folder = tmp_path_factory.mktemp("beam") / "faces"
    photos = sorted((shared_faces / "unmasked").glob("*.jpg"))[:3]
    for photo in photos:
        _small_copy(photo, folder / photo.name)
    _small_copy(photos[1], folder / "sub" / photos[0].name)
    (folder / "notes.txt").write_text("not a picture\n")
    data = (folder / photos[2].name).read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    shutil.copy(folder / photos[2].name, folder / ".hidden.jpg")
    return folder


@pytest.fixture(scope="module")
def outputs(faces_dir):
    """(local output folder, local overlay report, Beam output folder, Beam manifest, Beam report)."""
    from tfunmask.data import tfrecords

    root = faces_dir.parent
    local_report = overlay.overlay_folder(faces_dir, root / "overlay", progress=False, **OPTIONS)
    triples = overlay.read_triples(root / "overlay", overlay.read_entries(root / "overlay"), Tally())
    tfrecords.write_paired_shards(triples, root / "local", **RECORDS)
    manifest, report = beam_pipeline.synthesize_records(faces_dir, root / "beam", beam_args=DIRECT_2,
                                                        **OPTIONS, **RECORDS)
    return root / "local", local_report, root / "beam", manifest, report


def _records(path: Path) -> list[bytes]:
    import tensorflow as tf

    return [record.numpy() for record in tf.data.TFRecordDataset(str(path))]


def test_beam_writes_the_local_tools_records(outputs):
    local, _, beam, manifest, _ = outputs
    assert manifest == json.loads((local / "dataset.json").read_text()) and manifest["split_salt"] == "another"
    shards = sorted(p.name for p in local.glob("*.tfrecord"))
    assert shards == sorted(p.name for p in beam.glob("*.tfrecord")) and len(shards) > 1
    assert not list(beam.glob("*.partial"))
    for name in shards:  # the same Example bytes (ids, pixels, all) in the same shard; order may differ
        assert sorted(_records(beam / name)) == sorted(_records(local / name)), name


def test_records_hold_every_face_with_unique_ids(outputs):
    from tfunmask.data import tfrecords

    _, local_report, beam, manifest, _ = outputs
    parsed = [tfrecords.parse_paired(r) for p in sorted(beam.glob("*.tfrecord")) for r in _records(p)]
    ids = [p["id"].numpy().decode() for p in parsed]
    assert len(ids) == len(set(ids)) == sum(manifest["counts"].values()) == local_report["triples_written"]
    assert any("-2_" in i for i in ids)  # the repeated file name under sub/
    for record in parsed:
        outside = record["mask_map"].numpy()[..., 0] == 0
        assert record["masked"].shape == (64, 64, 3)
        assert np.array_equal(record["masked"].numpy()[outside], record["target"].numpy()[outside])


def test_beam_report_adds_up_and_matches_the_overlay_tool(outputs, faces_dir):
    _, local_report, beam, _, report = outputs
    assert report == json.loads((beam / "report.json").read_text())
    assert report["seen"] == 6 == report["files_with_output"] + sum(report["skipped"].values())  # not .hidden.jpg
    reasons = {item["source"]: item["reason"] for item in report["skipped_files"]}
    assert reasons.keys() == {"notes.txt", "truncated.jpg"} and reasons["notes.txt"] == "not_an_image"
    assert reasons["truncated.jpg"] in {"truncated", "corrupt"}
    assert report["triples_written"] == 2 * report["faces_written"] > 0
    assert report["out_dir"] == str(beam) and report["faces_dir"] == str(faces_dir)
    assert {k: v for k, v in report.items() if k != "out_dir"} == {
        k: v for k, v in local_report.items() if k != "out_dir"}


def test_refuses_earlier_shards_an_empty_folder_out_inside_faces_and_an_empty_salt(outputs, faces_dir, tmp_path):
    beam = outputs[2]
    with pytest.raises(ValueError, match="already holds paired shards"):
        beam_pipeline.synthesize_records(faces_dir, beam, beam_args=DIRECT_2, **OPTIONS)
    with pytest.raises(ValueError, match="inside the faces folder"):
        beam_pipeline.synthesize_records(faces_dir, faces_dir / "out", **OPTIONS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        beam_pipeline.synthesize_records(tmp_path / "empty", tmp_path / "out", **OPTIONS)
    with pytest.raises(ValueError, match="the split salt must be a non-empty string"):
        beam_pipeline.synthesize_records(faces_dir, tmp_path / "salted", **OPTIONS, salt="")
    assert not (tmp_path / "salted").exists()


@pytest.mark.parametrize("flags, message", [([], "faces folder .* does not exist"),
                                            (["--split_salt="], "--split_salt must be a non-empty string")])
def test_tool_error_is_one_line(tmp_path, flags, message):
    result = subprocess.run([sys.executable, str(REPO / "tools" / "synthesize.py"), "--faces", str(tmp_path / "no"),
                             "--out", str(tmp_path / "out"), *flags, "--", "--runner=DirectRunner"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert re.fullmatch(f"synthesize: error: {message}.*\n", result.stderr), result.stderr  # one line, no noise
