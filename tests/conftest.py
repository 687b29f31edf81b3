"""Shared fixtures: where the real face photos are, and quiet TensorFlow logs."""
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The shared face photos: $TFUNMASK_SHARED_DATA, else ../shared/data beside the repo."""
    return Path(os.environ.get("TFUNMASK_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def eager_steps():
    """Runs the test's ``tf.function``s eagerly (``training_helpers.running_eagerly``)."""
    from tests.training_helpers import running_eagerly

    with running_eagerly():
        yield


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    """Folder with `unmasked/` and `masked_real/` real photos; skips the test when absent."""
    faces = shared_data_dir() / "faces"
    if not (faces / "unmasked").is_dir():
        pytest.skip(f"shared face photos not found at {faces}")
    return faces


def _smooth_images(rng, count, size):
    """Smooth random RGB images (upsampled coarse noise): learnable, unlike white noise."""
    import cv2
    import numpy as np

    coarse = rng.integers(0, 256, (count, 4, 4, 3), dtype=np.uint8)
    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR) for c in coarse])


@pytest.fixture(scope="session")
def tiny_paired_data(tmp_path_factory):
    """A paired TFRecord folder of 48 random 32 px triples (lower half masked)."""
    import numpy as np

    from tfunmask.data.tfrecords import write_paired_shards

    rng = np.random.default_rng(0)
    size = 32
    targets = _smooth_images(rng, 48, size)
    mask_map = np.zeros((size, size), np.uint8)
    mask_map[size // 2:] = 255
    records = [{"masked": np.where(mask_map[..., None] > 0, 200, t).astype(np.uint8), "target": t,
                "mask_map": mask_map, "source": f"photo{i:03d}.jpg", "id": f"photo{i:03d}_0_0"}
               for i, t in enumerate(targets)]
    out = tmp_path_factory.mktemp("paired")
    write_paired_shards(records, out, shards=2, fractions=(0.75, 0.25, 0.0))
    return out


@pytest.fixture(scope="session")
def tiny_unpaired_data(tmp_path_factory):
    """An unpaired TFRecord folder: 24 random 32 px images per domain."""
    import numpy as np

    from tfunmask.data.tfrecords import write_unpaired_shards

    rng = np.random.default_rng(1)
    records = [{"image": image, "domain": domain, "source": f"{domain}{i:03d}.jpg"}
               for domain in ("A", "B") for i, image in enumerate(_smooth_images(rng, 24, 32))]
    out = tmp_path_factory.mktemp("unpaired")
    write_unpaired_shards(records, out, shards=2, fractions=(0.75, 0.25, 0.0))
    return out


@pytest.fixture(scope="session")
def tiny_run(tiny_paired_data, tmp_path_factory):
    """A Pix2Pix run folder (32 px, 8 filters, 6 steps on tiny_paired_data) with its SavedModel."""
    from tfunmask import runs
    from tfunmask.config import TrainConfig
    from tfunmask.serving import exporter
    from tfunmask.training import trainer

    config = TrainConfig.create(model="pix2pix", data=str(tiny_paired_data),
                                model_dir=str(tmp_path_factory.mktemp("run")), image_size=32, batch_size=4, epochs=1,
                                decay_epochs=0, steps_per_epoch=6, validation_steps=0, filters=8,
                                mixed_precision="none", strategy="one_device", summary_every=100, image_every=1000)
    model, _ = trainer.train(config, verbose=0)
    exporter.export_saved_model(model.export_generator(), runs.Run(config.model_dir).saved_model)
    return Path(config.model_dir)


@pytest.fixture(scope="session")
def tiny_exports(tiny_run):
    """Every export format of `tiny_run`, parity-checked: {format: exporter.Exported}."""
    from tfunmask.serving import exporter

    return {result.format: result for result in exporter.export(tiny_run)}


@pytest.fixture(scope="session")
def two_face_photo(shared_faces):
    """A uint8 RGB photo of two real people side by side (from `unmasked/`); skips when absent."""
    import cv2
    import numpy as np

    from tfunmask.data import faces, images

    halves = []
    for path in sorted((shared_faces / "unmasked").iterdir()):
        photo = images.read_image(path)
        photo = cv2.resize(photo, (round(photo.shape[1] * 240 / photo.shape[0]), 240), interpolation=cv2.INTER_AREA)
        if len(faces.find(photo, use_cnn=False)) == 1:
            halves.append(photo)
        if len(halves) == 2:
            return np.hstack([cv2.copyMakeBorder(half, 0, 0, 40, 40, cv2.BORDER_REPLICATE) for half in halves])
    pytest.skip("no two photos with one face each in the shared data")
