"""Tests for tfunmask.synth.overlay and tools/overlay_masks.py on real faces plus one file of each bad kind."""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfunmask.synth import masks, overlay

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "overlay_masks.py"
REAL_FACES = 3
BAD_FILES = {  # file name -> acceptable skip reasons
    "truncated.jpg": {"truncated", "corrupt"},
    "notes.txt": {"not_an_image"},
    "grey.png": {"greyscale"},
    "sub/tiny.png": {"too_small"},
    "sub/no_face.png": {"no_face"},
    "broken_link.jpg": {"unreadable"},
    "folder.jpg": {"unreadable"},  # an empty folder named like a photo
}
CONVERTED = ("cmyk.jpg", "rgba.png")  # the first real photo as CMYK, and with a transparent corner


def _gradient(size: int) -> np.ndarray:
    ramp = np.linspace(40, 220, size, dtype=np.float32)
    return np.stack([ramp[None, :].repeat(size, 0), ramp[:, None].repeat(size, 1), np.full((size, size), 128.0)],
                    -1).astype(np.uint8)


def _make_faces_dir(folder: Path, shared_faces: Path) -> None:
    """A few real photos (copied into tmp, never into the repo) and one file of each bad kind."""
    (folder / "sub").mkdir(parents=True)
    photos = sorted((shared_faces / "unmasked").glob("*.jpg"))[:REAL_FACES]
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    data = photos[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "notes.txt").write_text("not a picture\n")
    rgb = _gradient(96)
    Image.fromarray(rgb).convert("L").save(folder / "grey.png")
    with Image.open(photos[0]) as photo:
        photo.convert("CMYK").save(folder / "cmyk.jpg", quality=95)
        rgba = photo.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.pad(np.full((8, 8), 0, np.uint8), ((0, rgba.height - 8), (0, rgba.width - 8)),
                                         constant_values=255)))
    rgba.save(folder / "rgba.png")
    (folder / "broken_link.jpg").symlink_to(folder / "deleted.jpg")
    (folder / "folder.jpg").mkdir()
    Image.fromarray(_gradient(8)).save(folder / "sub" / "tiny.png")
    Image.fromarray(_gradient(128)).save(folder / "sub" / "no_face.png")


def _hashes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_faces):
    """The same folder overlaid twice with one seed: one worker, then two."""
    root = tmp_path_factory.mktemp("overlay")
    faces_dir = root / "faces"
    _make_faces_dir(faces_dir, shared_faces)
    before = _hashes(faces_dir)
    options = dict(size=64, seed=3, per_face=2, progress=False)
    first = overlay.overlay_folder(faces_dir, root / "out1", workers=1, **options)
    second = overlay.overlay_folder(faces_dir, root / "out2", workers=2, **options)
    return {"faces": faces_dir, "before": before, "outs": (root / "out1", root / "out2"), "reports": (first, second)}


def test_report_accounts_for_every_file(runs):
    report = runs["reports"][0]
    assert report["seen"] == REAL_FACES + len(CONVERTED) + len(BAD_FILES)
    assert report["seen"] == report["files_with_output"] + sum(report["skipped"].values())
    assert len(report["skipped_files"]) == sum(report["skipped"].values())
    reasons = {item["source"]: item["reason"] for item in report["skipped_files"]}
    for name, allowed in BAD_FILES.items():
        assert reasons.get(name) in allowed, (name, reasons.get(name))
    assert not set(CONVERTED) & set(reasons), reasons  # converted to RGB and used
    assert report["files_with_output"] >= REAL_FACES + len(CONVERTED) - 1  # a face in nearly all
    assert report["triples_written"] == 2 * report["faces_written"] > 0
    assert json.loads((runs["outs"][0] / "report.json").read_text()) == report
    assert report["family"] == "mesh" and report["styles"] == list(masks.STYLES)


def test_outputs_are_consistent_triples(runs):
    out, report = runs["outs"][0], runs["reports"][0]
    lines = [json.loads(line) for line in (out / "meta.jsonl").read_text().splitlines()]
    assert len(lines) == report["triples_written"] == len({line["id"] for line in lines})
    for name in ("masked", "target", "mask_map"):
        assert sorted(p.stem for p in (out / name).iterdir()) == sorted(line["id"] for line in lines)
    for line in lines:
        assert np.asarray(line["landmarks"]).shape == (68, 2) and np.asarray(line["alignment"]).shape == (2, 3)
        assert line["style"] and "colour" in line and (Path(runs["faces"]) / line["source"]).is_file()
        assert line["family"] == "mesh"
        with Image.open(out / "masked" / f"{line['id']}.png") as masked, \
                Image.open(out / "target" / f"{line['id']}.png") as target, \
                Image.open(out / "mask_map" / f"{line['id']}.png") as mask_map:
            assert (masked.mode, target.mode, mask_map.mode) == ("RGB", "RGB", "L")
            assert masked.size == target.size == mask_map.size == (64, 64)
            masked, target, mask_map = np.asarray(masked), np.asarray(target), np.asarray(mask_map)
        assert set(np.unique(mask_map)) <= {0, 255} and mask_map.any()
        outside = mask_map == 0
        assert np.array_equal(masked[outside], target[outside])
        mouth = np.round(np.asarray(line["landmarks"])[48:68]).astype(int).clip(0, 63)
        assert (mask_map[mouth[:, 1], mouth[:, 0]] == 255).all()  # crop landmarks match the crop


def test_inputs_are_never_modified(runs):
    assert _hashes(runs["faces"]) == runs["before"]


def test_output_does_not_depend_on_workers(runs):
    first, second = runs["outs"]
    assert _hashes(first) .keys() == _hashes(second).keys()
    differing = [k for k, v in _hashes(first).items() if k != "report.json" and _hashes(second)[k] != v]
    assert differing == []
    strip = lambda report: {k: v for k, v in report.items() if k != "out_dir"}  # noqa: E731
    assert strip(runs["reports"][0]) == strip(runs["reports"][1])


def test_refuses_out_dir_inside_faces_dir_and_earlier_output(runs, tmp_path):
    faces_dir = runs["faces"]
    for bad in (faces_dir, faces_dir / "sub" / "out"):
        with pytest.raises(ValueError, match="inside the faces folder"):
            overlay.overlay_folder(faces_dir, bad, progress=False)
    assert _hashes(faces_dir) == runs["before"]
    with pytest.raises(ValueError, match="already holds overlay output"):
        overlay.overlay_folder(faces_dir, runs["outs"][0], progress=False)
    with pytest.raises(ValueError, match="does not exist"):
        overlay.overlay_folder(tmp_path / "missing", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        overlay.overlay_folder(tmp_path / "empty", tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="unknown mask style"):
        overlay.overlay_folder(faces_dir, tmp_path / "out", styles=("bandana",), progress=False)
    with pytest.raises(ValueError, match="unknown mask style.*n95"):  # a mesh style, not a picture one
        overlay.overlay_folder(faces_dir, tmp_path / "out", family="image", styles=("n95",), progress=False)
    with pytest.raises(ValueError, match="unknown mask family 'paint'"):
        overlay.overlay_folder(faces_dir, tmp_path / "out", family="paint", progress=False)


def _tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [
    ("--faces", "{tmp}/missing", "--out", "{tmp}/out"),
    ("--faces", "{tmp}/empty", "--out", "{tmp}/out"),
    ("--faces", "{tmp}/empty", "--out", "{tmp}/out", "--styles", "surgical,bandana"),
    ("--faces", "{tmp}/empty", "--out", "{tmp}/out", "--family", "image", "--styles", "n95"),
    ("--faces", "{tmp}/empty", "--out", "{tmp}/out", "--family", "paint"),
    ("--faces", "{tmp}/empty", "--out", "{tmp}/out", "--size", "-3"),
    ("--faces", "{tmp}/empty", "--out", "{tmp}/out", "--no_such_flag"),
    ("--out", "{tmp}/out"),
])
def test_tool_reports_user_errors_in_one_line(tmp_path, args):
    (tmp_path / "empty").mkdir()
    result = _tool(*(arg.format(tmp=tmp_path) for arg in args))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("overlay_masks: error:"), result.stderr
    assert not (tmp_path / "out").exists()


def test_tool_writes_output_and_a_summary(tmp_path, shared_faces):
    faces_dir = tmp_path / "faces"
    faces_dir.mkdir()
    shutil.copy(sorted((shared_faces / "unmasked").glob("*.jpg"))[0], faces_dir)
    (faces_dir / "notes.txt").write_text("x")
    flagfile = tmp_path / "flags.txt"
    flagfile.write_text(f"--faces={faces_dir}\n--out={tmp_path / 'out'}\n--size=48\n--styles=kn95,cloth\n")
    result = _tool(f"--flagfile={flagfile}", "--family=image", "--noprogress", "--nocnn")
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("overlay_masks: 2 files") and "image triples" in summary and "not_an_image 1" in summary
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["styles"] == ["kn95", "cloth"] and report["size"] == 48 and report["family"] == "image"
    lines = [json.loads(line) for line in (tmp_path / "out" / "meta.jsonl").read_text().splitlines()]
    assert lines and all(line["family"] == "image" and line["look"] in ("flat", "photo") for line in lines)


def test_triple_stems_are_unique_and_do_not_depend_on_input_order():
    sources = ["sub/a.jpg", "b.jpg", "a.png", "a.jpg", "x y!.jpg"]
    expected = {"a.jpg": "a", "a.png": "a-2", "b.jpg": "b", "sub/a.jpg": "a-3", "x y!.jpg": "x_y_"}
    assert overlay.triple_stems(sources) == overlay.triple_stems(reversed(sources)) == expected
