"""Unmasking files, folders and globs: report counts, skips with reasons, no overwrites, the CLI."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

import tfunmask
from tfunmask.data import images
from tfunmask.inference import folders


@pytest.fixture()
def photo_folder(tmp_path, two_face_photo):
    """A folder: a two-face JPEG, a one-face PNG in a subfolder, a face-free image, a corrupt
    JPEG and a text file."""
    folder = tmp_path / "photos"
    images.write_image(folder / "two.jpg", two_face_photo)
    images.write_image(folder / "sub" / "one.png", two_face_photo[:, :two_face_photo.shape[1] // 2])
    images.write_image(folder / "sky.png", np.full((80, 120, 3), (90, 140, 220), np.uint8))
    images.write_image(folder / "broken.jpg", two_face_photo)
    (folder / "broken.jpg").write_bytes((folder / "broken.jpg").read_bytes()[:300])
    (folder / "notes.txt").write_text("not a photo")
    return folder


def digests(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_folder_report_counts_add_up_and_inputs_stay(tiny_exports, photo_folder, tmp_path):
    before = digests(photo_folder)
    seen = []
    report = folders.unmask_files(tfunmask.load(tiny_exports["float32"].path), [photo_folder], tmp_path / "out",
                                     compare=True, save_crops=True, on_file=lambda *args: seen.append(args[:2]))
    assert digests(photo_folder) == before
    assert seen == [(i, 5) for i in range(1, 6)]
    assert report["seen"] == 5 and report["written"] == 2 and report["faces"] == 3 and report["flip_average"]
    assert report["seen"] == report["written"] + sum(report["skipped"].values())
    assert report["skipped"]["no_face"] == 1 and report["skipped"]["not_an_image"] == 1
    assert set(report["skipped"]) - {"no_face", "not_an_image"} <= {"truncated", "corrupt"}
    assert all(entry["message"] for entry in report["skipped_files"])
    out = tmp_path / "out"
    assert json.loads((out / folders.REPORT_FILE).read_text()) == report
    two = images.read_image(out / "unmasked" / "two.jpg")
    assert two.shape == images.read_image(photo_folder / "two.jpg").shape
    assert (out / "unmasked" / "sub" / "one.png").is_file()
    assert images.read_image(out / "compare" / "two.jpg").shape[1] == 2 * two.shape[1]
    assert sorted(p.name for p in (out / "crops").rglob("*.png")) == [
        "one_0_input.png", "one_0_output.png", "two_0_input.png", "two_0_output.png",
        "two_1_input.png", "two_1_output.png"]


def test_plan_names_outputs_and_refuses_overwrites(photo_folder, tmp_path):
    other = tmp_path / "other"
    images.write_image(other / "two.jpg", np.zeros((40, 40, 3), np.uint8))
    images.write_image(other / "scan.bmp", np.zeros((40, 40, 3), np.uint8))
    pairs = folders.plan([photo_folder / "two.jpg", str(other / "*"), photo_folder / "two.jpg"], tmp_path / "out")
    assert [str(name) for _, name in pairs] == ["two.jpg", "scan.png", "two-2.jpg"]
    for out in (photo_folder, photo_folder / "sub"):
        with pytest.raises(folders.UnmaskError, match="inside the input folder"):
            folders.plan([photo_folder], out)
    earlier_output = other / "out" / "unmasked" / "x.png"
    images.write_image(earlier_output, np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(folders.UnmaskError, match="would overwrite the input"):
        folders.plan([earlier_output], other / "out")
    with pytest.raises(folders.UnmaskError, match="no such file"):
        folders.plan([tmp_path / "missing.jpg"], tmp_path / "out")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tfunmask.unmask", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_cli_reports_skips_and_exit_codes(tiny_exports, photo_folder, tmp_path):
    model = tiny_exports["int8"].path
    done = run_cli(f"--model={model}", photo_folder, "--out", tmp_path / "out")
    assert done.returncode == 1, done.stderr
    assert "unmasked 2 of 5 photo(s), 3 face(s)" in done.stdout
    assert f"skipped (no_face) {photo_folder / 'sky.png'}: no face found" in done.stderr
    assert f"skipped (not_an_image) {photo_folder / 'notes.txt'}" in done.stderr
    no_face = run_cli(f"--model={model}", photo_folder / "sky.png", f"--out={tmp_path / 'sky'}")
    assert no_face.returncode == 0 and "skipped (no_face)" in no_face.stderr  # reported, not a failure
    ok = run_cli(f"--model={model}", "--assume_cropped", "--noflip_average", photo_folder / "sky.png",
                 f"--out={tmp_path / 'crop'}")
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "crop" / folders.REPORT_FILE).read_text())["flip_average"] is False
    assert images.read_image(tmp_path / "crop" / "unmasked" / "sky.png").shape == (80, 120, 3)
    for args, message in [((f"--model={model}", photo_folder, f"--out={photo_folder}"), "inside the input folder"),
                          ((f"--model={tmp_path / 'none.tflite'}", photo_folder, f"--out={tmp_path / 'o'}"),
                           "no such model")]:
        bad = run_cli(*args)
        last = bad.stderr.strip().splitlines()[-1]
        assert bad.returncode == 2 and last.startswith("error:") and message in last, bad.stderr
