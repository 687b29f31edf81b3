"""The evaluation command end to end on tiny data: overlay folders, TFRecords, real masked crops."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfunmask.data import splits
from tfunmask.data.tfrecords import SCHEMA_VERSION, write_paired_shards
from tfunmask.evaluation import comparison, features, mask_map, suite
from tfunmask.inference import photos
from tfunmask.models import pix2pix
from tfunmask.serving import exporter
from tfunmask.synth import demo, mask_images, masks

SIZE = 32
MODEL_ONLY = {"unmasked_change", "generator_change"}  # how the model changes faces without a mask
COLUMNS_PAIRED = {"face_fd", "fid", "kid", "kid_std", "psnr", "psnr_mask", "ssim", "ssim_mask", "l1", "l1_mask",
                  "identity_cosine", "identity_match", "detection_rate"}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A randomly initialised 32 px Pix2Pix generator, exported like a training run's."""
    path = tmp_path_factory.mktemp("run") / "saved_model"
    return exporter.export_saved_model(pix2pix.unet_generator(SIZE, filters=8), path)


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture(scope="module")
def overlay_folder(tmp_path_factory):
    """The overlay tool's layout with 8 drawn faces (known landmarks), 48 px so that resizing to
    the model's 32 px is exercised; the same faces masked by the other family (held_out/, its
    meta naming the family; overlay/'s meta names none, as before families existed); and a
    folder of the masked crops as 'real' photos."""
    root = tmp_path_factory.mktemp("overlay")
    rng = np.random.default_rng(0)
    lines = []
    held_lines = []
    for i in range(8):
        face, landmarks = demo.draw_face(rng, 48)
        rendered = masks.render(face, landmarks, masks.STYLES[i % len(masks.STYLES)], rng)
        item_id = f"photo{i}_0_0"
        _save(root / "overlay" / "masked" / f"{item_id}.png", rendered.masked)
        _save(root / "overlay" / "target" / f"{item_id}.png", face)
        _save(root / "overlay" / "mask_map" / f"{item_id}.png", rendered.mask_map)
        _save(root / "real" / f"{item_id}.png", rendered.masked)
        lines.append(json.dumps({"id": item_id, "source": f"photo{i}.jpg", "landmarks": landmarks.tolist()}))
        picture = mask_images.render(face, landmarks, mask_images.STYLES[i % len(mask_images.STYLES)], rng)
        _save(root / "held_out" / "masked" / f"{item_id}.png", picture.masked)
        _save(root / "held_out" / "target" / f"{item_id}.png", face)
        _save(root / "held_out" / "mask_map" / f"{item_id}.png", picture.mask_map)
        held_lines.append(json.dumps({"id": item_id, "source": f"photo{i}.jpg", "family": "image",
                                      "landmarks": landmarks.tolist()}))
    (root / "overlay" / "meta.jsonl").write_text("\n".join(lines) + "\n")
    (root / "held_out" / "meta.jsonl").write_text("\n".join(held_lines) + "\n")
    return root


def test_whole_evaluation_on_an_overlay_folder(saved_model, overlay_folder, tmp_path):
    out = tmp_path / "eval"
    metrics = suite.evaluate(saved_model, overlay_folder / "overlay", out, split="all",
                                    masked_real=overlay_folder / "real", masked_real_aligned=True, limit=6,
                                    image_features=features.random_features())
    assert metrics["paired"]["count"] == 6 and metrics["image_size"] == SIZE
    assert metrics["image_features"] == "random_conv_test" and metrics["notes"] == []
    methods = metrics["paired"]["methods"]
    assert list(methods) == ["input", "inpaint_telea", "model", "target"]
    for name in ("input", "inpaint_telea", "model"):
        assert set(methods[name]) == COLUMNS_PAIRED | (MODEL_ONLY if name == "model" else set())
        assert all(np.isfinite(v) for v in methods[name].values())
    assert methods["input"]["l1"] < methods["input"]["l1_mask"]  # the input is exact outside the mask
    assert methods["input"]["detection_rate"] < methods["target"]["detection_rate"]
    assert set(metrics["real"]["methods"]["model"]) == {"detection_rate", "face_fd", "fid", "kid", "kid_std"}
    assert metrics["real"]["faces"] == 6

    assert json.loads((out / "metrics.json").read_text()) == metrics
    per_face = comparison.load(out)  # the model's values face by face: their means are the scores
    assert set(per_face) == {"paired", "real"} and len(per_face["paired"]["ids"]) == 6
    for key in ("psnr", "psnr_mask", "ssim_mask", "l1", "identity_cosine"):
        assert np.nanmean(np.array(per_face["paired"][key], float)) == pytest.approx(methods["model"][key])
    assert np.mean(per_face["paired"]["detected"]) == pytest.approx(methods["model"]["detection_rate"])
    real = per_face["real"]
    assert len(real["ids"]) == len(set(real["ids"])) == 6 and all(i.endswith(".png") for i in real["ids"])
    assert np.mean(real["detected"]) == pytest.approx(metrics["real"]["methods"]["model"]["detection_rate"])
    itself = comparison.compare(per_face, per_face)
    assert itself["real"]["detected"]["only_a"] == itself["real"]["detected"]["only_b"] == 0
    assert itself["paired"]["psnr_mask"]["difference"] == 0 and itself["paired"]["psnr_mask"]["p_value"] == 1
    text = (out / "report.md").read_text()
    assert "| method | FID ↓ | KID ↓ |" in text and "| inpaint_telea |" in text and "Real masked photos" in text
    for name in ("contact_sheet.png", "contact_sheet_real.png", "metrics.png", "metrics_real.png"):
        assert Image.open(out / name).size[0] > 100


def test_held_out_family_is_scored_beside_with_the_gap(saved_model, overlay_folder, tmp_path):
    out = tmp_path / "eval"
    metrics = suite.evaluate(saved_model, overlay_folder / "overlay", out, split="all", limit=4,
                             held_out=overlay_folder / "held_out", image_features=features.random_features())
    paired, held = metrics["paired"], metrics["held_out"]
    assert paired["families"] == ["mesh"] and held["families"] == ["image"] and held["count"] == 4
    assert set(held["methods"]["model"]) == COLUMNS_PAIRED | MODEL_ONLY
    gap = metrics["gap"]
    assert set(gap) == {"input", "inpaint_telea", "model", "target"} and "kid_std" not in gap["model"]
    for name in ("input", "model"):
        for key in ("psnr", "ssim_mask", "face_fd"):
            assert gap[name][key] == pytest.approx(held["methods"][name][key] - paired["methods"][name][key])
    assert gap["input"]["psnr_mask"] != 0  # other masks on the same faces
    text = (out / "report.md").read_text()
    assert "## Held-out mask family" in text and "mask family image, kept out of training" in text
    assert "Generalisation gap" in text and "mask family mesh" in text
    assert Image.open(out / "contact_sheet_held_out.png").size[0] > 100
    held_faces = comparison.load(out)["held_out"]
    assert len(held_faces["ids"]) == 4
    assert np.nanmean(np.array(held_faces["psnr_mask"], float)) == pytest.approx(held["methods"]["model"]["psnr_mask"])
    with pytest.raises(suite.EvaluationError, match="is not a folder"):
        suite.evaluate(saved_model, overlay_folder / "overlay", out, split="all", held_out=tmp_path / "missing")


@pytest.fixture(scope="module")
def half_map_model(tmp_path_factory):
    """A generator that returns its input unchanged and says it wrote on every pixel with weight
    0.5 (a constant map: the scores it gets are known)."""
    import keras

    images = keras.Input((SIZE, SIZE, 3))
    half = keras.layers.Conv2D(1, 1, kernel_initializer="zeros", bias_initializer="zeros",
                               activation="sigmoid", name="mask")(images)
    same = keras.layers.Identity(name="unmasked")(images)
    path = tmp_path_factory.mktemp("half") / "saved_model"
    return exporter.export_saved_model(keras.Model(images, {"unmasked": same, "mask": half}), path)


def test_where_a_generator_writes_is_scored_from_its_mask_map(half_map_model, overlay_folder, tmp_path):
    metrics = suite.evaluate(half_map_model, overlay_folder / "overlay", tmp_path / "eval", split="all", limit=4,
                             image_features=features.random_features())
    model = metrics["paired"]["methods"]["model"]
    pairs = suite.load_pairs(overlay_folder / "overlay", SIZE, split="all", limit=4)
    # a map of 0.5 everywhere is "on" everywhere: IoU is the share of the crops the masks cover
    assert model["mask_iou"] == pytest.approx((pairs.mask_map > 0).mean(), abs=1e-6)
    assert model["map_on_unmasked"] == pytest.approx(0.5, abs=1 / 255)  # uint8 in the SavedModel
    assert model["unmasked_change"] <= 0.5 / 255 and model["generator_change"] <= 0.5 / 255  # it returns its input
    text = (tmp_path / "eval" / "report.md").read_text()
    assert "map IoU ↑" in text and "Δ unmasked ↓" in text


def test_lower_face_density_inside_and_outside():
    face_landmarks = demo.draw_face(np.random.default_rng(0), SIZE)[1]
    region = mask_map.lower_face(face_landmarks, SIZE)
    assert 0.1 < region.mean() < 0.6 and region[SIZE * 3 // 4, SIZE // 2] and not region[2, 2]
    maps = np.where(region, 0.8, 0.1)[None].astype(np.float32)
    scores = mask_map.inside_outside(maps, face_landmarks[None])
    assert scores["map_inside"] == pytest.approx(0.8) and scores["map_outside"] == pytest.approx(0.1)
    assert scores["map_ratio"] == pytest.approx(8.0)


def test_overlay_split_follows_make_tfrecords(saved_model, overlay_folder):
    sources = [f"photo{i}.jpg" for i in range(8)]
    train = sum(splits.split_of(s) == "train" for s in sources)
    pairs = suite.load_pairs(overlay_folder / "overlay", SIZE, split="train")
    assert len(pairs.ids) == train and pairs.masked.shape == (train, SIZE, SIZE, 3)
    assert pairs.landmarks.shape == (train, 68, 2) and pairs.landmarks.max() < SIZE + 4
    rule = splits.Rule((0.5, 0.5, 0.0), "another")  # another split of the same folder (--split_from)
    val = sorted(f"{s[:-4]}_0_0" for s in sources if rule.split_of(s) == "val")
    assert val and sorted(suite.load_pairs(overlay_folder / "overlay", SIZE, split="val", rule=rule).ids) == val


def test_real_photos_follow_the_split_of_the_unpaired_records(tmp_path):
    """Real masked photos are scored from --split only (as make_tfrecords --mode=unpaired split
    them), so an unpaired model's training photos are left out; "all" takes every one, and a split
    without photos is a one-line error."""
    names = [f"r{i}.png" for i in range(40)]
    for i, name in enumerate(names):
        Image.fromarray(np.full((SIZE, SIZE, 3), (5 * i, 90, 160), np.uint8)).save(tmp_path / name)
    test = [name for name in names if splits.split_of(name) == "test"]
    assert 0 < len(test) < len(names)
    real = suite.load_real_masked(tmp_path, SIZE, aligned=True, split="test")
    assert len(real.crops) == real.counts["seen"] == len(test)
    assert sorted(int(c[0, 0, 0]) // 5 for c in real.crops) == sorted(int(n[1:-4]) for n in test)
    assert sorted(real.ids) == sorted(test)
    assert [int(i[1:-4]) for i in real.ids] == [int(c[0, 0, 0]) // 5 for c in real.crops]
    assert len(suite.load_real_masked(tmp_path, SIZE, aligned=True).crops) == len(names)
    for name in names:
        if splits.split_of(name) == "val":
            (tmp_path / name).unlink()
    with pytest.raises(suite.EvaluationError, match="0 files of the val split"):
        suite.load_real_masked(tmp_path, SIZE, aligned=True, split="val")


def test_split_from_draws_with_the_fractions_and_salt_of_the_dataset(tmp_path):
    """Real photos of a split are those make_tfrecords put in it with the fractions and salt its
    dataset.json records (here not the defaults); a folder without a manifest, or a manifest
    without the rule, is a one-line error."""
    records = [{"masked": np.zeros((8, 8, 3), np.uint8), "target": np.zeros((8, 8, 3), np.uint8),
                "mask_map": np.zeros((8, 8), np.uint8), "source": "x.jpg", "id": "x_0_0"}]
    write_paired_shards(records, tmp_path / "records", shards=1, fractions=(0.5, 0.1, 0.4), salt="another")
    rule = suite.split_rule(tmp_path / "records")
    assert rule == splits.Rule((0.5, 0.1, 0.4), "another") and suite.split_rule(None) == splits.DEFAULT_RULE
    photos_dir = tmp_path / "photos"
    photos_dir.mkdir()
    names = [f"r{i}.png" for i in range(40)]
    for i, name in enumerate(names):
        Image.fromarray(np.full((SIZE, SIZE, 3), (5 * i, 90, 160), np.uint8)).save(photos_dir / name)
    test = sorted(name for name in names if rule.split_of(name) == "test")
    assert test != sorted(name for name in names if splits.split_of(name) == "test")
    assert sorted(suite.load_real_masked(photos_dir, SIZE, aligned=True, split="test", rule=rule).ids) == test
    with pytest.raises(suite.EvaluationError, match=r"--split_from .*photos holds no readable dataset.json"):
        suite.split_rule(photos_dir)
    (photos_dir / "dataset.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "mode": "paired"}))
    with pytest.raises(suite.EvaluationError, match=r"its dataset.json gives no split rule \('split'\)"):
        suite.split_rule(photos_dir)


def test_evaluation_on_tfrecords_without_landmarks(saved_model, tiny_paired_data, tmp_path):
    metrics = suite.evaluate(saved_model, tiny_paired_data, tmp_path, split="val", limit=4,
                                    image_features=features.random_features())
    assert metrics["paired"]["count"] == 4 and "real" not in metrics
    assert metrics["split_rule"] == {"fractions": [0.9, 0.05, 0.05], "salt": "tfunmask"}
    assert metrics["paired"]["methods"]["input"]["psnr"] > 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(data="missing"), "is not a folder"),
    (dict(split="test"), "no test-split pairs"),
    (dict(split="nope"), "--split must be one of"),
    (dict(model="missing"), "no such model"),
    (dict(inception_weights="missing.h5"), "is not a file"),
    (dict(split_from="missing"), "--split_from missing is not a folder"),
    (dict(held_out="missing"), "--held_out missing is not a folder"),
    (dict(masked_real="missing"), "--masked_real missing is not a folder"),
])
def test_bad_input_is_one_clear_error(saved_model, tiny_paired_data, tmp_path, kwargs, message):
    args = dict(model=saved_model, data=tiny_paired_data, split="val")
    args.update({k: tmp_path / v if k in ("data", "model") else v for k, v in kwargs.items()})
    with pytest.raises(suite.EvaluationError, match=message):
        suite.evaluate(args.pop("model"), args.pop("data"), tmp_path / "out", limit=2, **args)


def _command(*args, keras_home):
    env = {**os.environ, "KERAS_HOME": str(keras_home), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "tfunmask.evaluate", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_command_without_inception_weights_says_where_and_carries_on(saved_model, overlay_folder, tiny_paired_data,
                                                                     tmp_path):
    result = _command(f"--model={saved_model.parent}", f"--data={overlay_folder / 'overlay'}", "--split=all",
                      "--limit=3", f"--out={tmp_path / 'out'}", f"--split_from={tiny_paired_data}",
                      keras_home=tmp_path / "keras")
    assert result.returncode == 0, result.stderr
    expected = tmp_path / "keras" / "models" / features.INCEPTION_WEIGHTS_FILE
    assert f"InceptionV3 weights not found at {expected}" in result.stdout
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["image_features"] is None and "fid" not in metrics["paired"]["methods"]["model"]
    assert metrics["split_rule"] == {"fractions": [0.75, 0.25, 0.0], "salt": "tfunmask"}
    assert "psnr_mask" in metrics["paired"]["methods"]["model"] and str(expected) in metrics["notes"][0]


def test_command_bad_data_is_one_line(saved_model, tmp_path):
    result = _command(f"--model={saved_model}", f"--data={tmp_path}", f"--out={tmp_path / 'out'}",
                      keras_home=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: no test-split pairs")
    assert "Traceback" not in result.stderr


def test_scoring_at_another_size_brings_the_output_back_as_the_photo_path_does(half_map_model, overlay_folder,
                                                                              tmp_path):
    """A 32 px model scored at 48 px: the crops are shrunk for it and its output enlarged back
    inside its map's region; this map covers everything, so the output is the round trip."""
    metrics = suite.evaluate(half_map_model, overlay_folder / "overlay", tmp_path / "eval", split="all", limit=4,
                             score_size=48, image_features=features.random_features())
    assert metrics["score_size"] == 48 and metrics["image_size"] == SIZE and metrics["flip_average"]
    assert "scored at 48 px (model at 32 px, flip-averaged)" in (tmp_path / "eval" / "report.md").read_text()
    pairs = suite.load_pairs(overlay_folder / "overlay", 48, split="all", limit=4)
    outputs, maps = suite.load_model(half_map_model).unmask_crops(pairs.masked)
    assert outputs.shape == pairs.masked.shape and maps.shape == (4, 48, 48)
    round_trip = [photos._resized(photos._resized(crop, SIZE, SIZE), 48, 48) for crop in pairs.masked]
    np.testing.assert_array_equal(outputs, round_trip)
    assert metrics["paired"]["methods"]["model"]["psnr"] < metrics["paired"]["methods"]["input"]["psnr"]


def test_the_generator_change_is_measured_before_the_blend(overlay_folder, tmp_path):
    """A generator that brightens every face by 0.1 (0..1 scale) and says it writes nowhere: scored
    at 48 px, the blend into its (empty) map keeps the faces ("Δ unmasked" 0), while the
    generator's own change, at its size, is the 0.1 it adds."""
    import keras

    images = keras.Input((SIZE, SIZE, 3))
    nowhere = keras.layers.Conv2D(1, 1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(-30.0),
                                  activation="sigmoid", name="mask")(images)
    brighter = keras.layers.Rescaling(1.0, offset=0.2, name="unmasked")(images)
    path = exporter.export_saved_model(keras.Model(images, {"unmasked": brighter, "mask": nowhere}),
                                       tmp_path / "saved_model")
    metrics = suite.evaluate(path, overlay_folder / "overlay", tmp_path / "eval", split="all", limit=4,
                             score_size=48, image_features=features.random_features())
    model = metrics["paired"]["methods"]["model"]
    assert model["unmasked_change"] == 0.0
    pairs = suite.load_pairs(overlay_folder / "overlay", SIZE, split="all", limit=4)
    headroom = np.clip(255 - pairs.target.astype(float), 0, 25.5).mean() / 255  # clipped at white
    assert model["generator_change"] == pytest.approx(headroom, abs=1 / 255)
    assert "Δ unmasked, G ↓" in (tmp_path / "eval" / "report.md").read_text()


def test_contact_sheet_lays_out_many_faces_several_per_row(tmp_path):
    from tfunmask.evaluation import report

    faces = np.stack([np.full((32, 32, 3), 10 * i, np.uint8) for i in range(5)])
    report.contact_sheet({"input": faces, "output": 255 - faces}, tmp_path / "sheet.png", count=5, per_row=3)
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
    block = 2 * 128 + 8
    assert sheet.shape == (24 + 2 * 128, 3 * block, 3)
    assert (sheet[24 + 128 + 60, block + 60] == 40).all()  # face 4: second row, second block, input
    assert (sheet[24 + 128 + 60, block + 128 + 60] == 215).all()  # and its output beside it
    assert (sheet[24 + 128 + 60, 2 * block + 60] == 255).all()  # no sixth face
