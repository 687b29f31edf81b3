"""tf.data pipelines: shapes, ranges, pair-consistent crops/flips, determinism, eval mode, distribution."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfunmask.data import pipeline, tfrecords
from tfunmask.data.variation import Variation

SIZE = 40   # stored image side
N = 6       # paired examples


def _pair(rng, index):
    """A pair with target == masked and mask_map == (channel 0 is bright), so any crop or flip
    that differs between the three members shows up as a mismatch."""
    masked = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    masked[..., 0] = np.where(rng.random((SIZE, SIZE)) > 0.5, 255, 0)
    return {"masked": masked, "target": masked.copy(), "mask_map": masked[..., 0].copy(),
            "source": f"p{index}.jpg", "face_index": 0, "style": "cloth", "id": f"p{index}"}


@pytest.fixture(scope="module")
def paired_data(tmp_path_factory):
    """(shard files, the stored masked images as float [-1, 1]) of a tiny all-train dataset."""
    out = tmp_path_factory.mktemp("paired")
    rng = np.random.default_rng(0)
    pairs = [_pair(rng, i) for i in range(N)]
    tfrecords.write_paired_shards(pairs, out, shards=2, fractions=(1, 0, 0))
    images = [p["masked"].astype(np.float32) / 127.5 - 1 for p in pairs]
    return tfrecords.paired_files(out, "train"), images


@pytest.fixture(scope="module")
def unpaired_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("unpaired")
    rng = np.random.default_rng(1)
    records = [{"image": rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), "domain": d,
                "source": f"{d}{i}.jpg"} for d, n in (("A", 5), ("B", 3)) for i in range(n)]
    tfrecords.write_unpaired_shards(records, out, shards=2, fractions=(1, 0, 0))
    return tfrecords.unpaired_files(out, "train", "A"), tfrecords.unpaired_files(out, "train", "B")


def _elements(dataset):
    """Unbatch a dataset of dicts into a list of dicts of numpy arrays."""
    return [{k: v.numpy() for k, v in e.items()} for e in dataset.unbatch()]


def _placement(output, images, size):
    """(image index, top, left, flipped) such that output is that crop of a stored image, else None."""
    for index, image in enumerate(images):
        for flipped in (False, True):
            source = image[:, ::-1] if flipped else image
            for top in range(SIZE - size + 1):
                for left in range(SIZE - size + 1):
                    window = source[top:top + size, left:left + size]
                    if np.array_equal(window, output):
                        return index, top, left, flipped
    return None


def test_training_batches_shapes_dtypes_ranges(paired_data):
    files, _ = paired_data
    dataset = pipeline.paired(files, image_size=32, load_size=36, batch_size=4, seed=1)
    spec = dataset.element_spec
    assert spec["masked"].shape == (4, 32, 32, 3) and spec["mask_map"].shape == (4, 32, 32, 1)
    batches = list(dataset)
    assert len(batches) == 1  # 6 examples, drop_remainder in training
    for key in ("masked", "target", "mask_map"):
        assert batches[0][key].dtype == tf.float32
    assert -1 <= batches[0]["masked"].numpy().min() <= batches[0]["masked"].numpy().max() <= 1
    assert set(np.unique(batches[0]["mask_map"])) <= {0.0, 1.0}


def test_training_crop_and_flip_are_identical_for_the_pair(paired_data):
    files, images = paired_data
    dataset = pipeline.paired(files, image_size=32, load_size=SIZE, batch_size=2, seed=3, repeat=True)
    elements = _elements(dataset.take(8))
    placements = []
    for element in elements:
        np.testing.assert_array_equal(element["masked"], element["target"])
        np.testing.assert_array_equal(element["mask_map"][..., 0], element["masked"][..., 0] > 0)
        placement = _placement(element["masked"], images, 32)
        assert placement is not None, "output is not a plain crop (optionally flipped) of an input"
        placements.append(placement)
    assert {p[3] for p in placements} == {False, True}, "flips never (or always) happen"
    assert len({p[1:3] for p in placements}) > 1, "crop offsets never change"


def test_resized_pairs_stay_identical(paired_data):
    files, _ = paired_data
    for element in _elements(pipeline.paired(files, image_size=32, load_size=48, batch_size=2, seed=0)):
        np.testing.assert_array_equal(element["masked"], element["target"])


def test_same_seed_same_batches_other_seed_differs(paired_data):
    files, _ = paired_data

    def run(seed):
        return np.stack([e["masked"] for e in _elements(
            pipeline.paired(files, image_size=32, load_size=36, batch_size=2, seed=seed))])
    first = run(7)
    np.testing.assert_array_equal(first, run(7))
    assert not np.array_equal(first, run(8))


def test_every_iterator_over_a_dataset_gives_the_same_batches(paired_data, unpaired_files):
    """Keras may open several iterators on one dataset; each must see the same order."""
    datasets = [pipeline.paired(paired_data[0], image_size=32, load_size=36, batch_size=2, seed=5, repeat=True),
                pipeline.unpaired(*unpaired_files, image_size=32, load_size=36, batch_size=2, seed=5,
                                  repeat=True)]
    for dataset in datasets:
        first, second = iter(dataset), iter(dataset)
        for _ in range(7):  # past the end of the first pass
            a, b = next(first), next(second)
            for key in a:
                np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())


def test_repeated_passes_are_reshuffled_permutations(paired_data):
    files, images = paired_data
    dataset = pipeline.paired(files, image_size=SIZE, load_size=SIZE, batch_size=1, seed=0, repeat=True)
    order = [_placement(e["masked"][0].numpy(), images, SIZE)[0] for e in dataset.take(3 * N)]
    passes = [order[i * N:(i + 1) * N] for i in range(3)]
    assert all(sorted(p) == list(range(N)) for p in passes), passes
    assert len({tuple(p) for p in passes}) == 3, passes


def test_eval_mode_is_plain_resize(paired_data):
    files, _ = paired_data
    elements = _elements(pipeline.paired(files, image_size=32, load_size=48, batch_size=4, training=False))
    assert len(elements) == N  # last partial batch kept
    expected = []
    for example in map(tfrecords.parse_paired, tf.data.TFRecordDataset(files)):
        image = tf.cast(example["masked"], tf.float32) / 127.5 - 1
        mask = tf.cast(example["mask_map"] > 127, tf.float32)
        expected.append((tf.image.resize(image, [32, 32], method="bilinear", antialias=True).numpy(),
                         tf.image.resize(mask, [32, 32], method="nearest").numpy()))
    for element in elements:  # shards are interleaved, so match each output to its input
        errors = [np.abs(element["masked"] - image).max() for image, _ in expected]
        image, mask = expected[int(np.argmin(errors))]
        np.testing.assert_allclose(element["masked"], image, atol=1e-6)
        np.testing.assert_array_equal(element["mask_map"], mask)


def test_eval_at_stored_size_returns_stored_images(paired_data):
    files, images = paired_data
    elements = _elements(pipeline.paired(files, image_size=SIZE, load_size=SIZE, training=False))
    got = sorted(e["masked"].tobytes() for e in elements)
    assert got == sorted(image.tobytes() for image in images)


def test_non_deterministic_reading_gives_the_same_examples(paired_data):
    files, images = paired_data
    dataset = pipeline.paired(files, image_size=SIZE, load_size=SIZE, training=False, deterministic=False)
    assert sorted(e["masked"].tobytes() for e in _elements(dataset)) == sorted(i.tobytes() for i in images)


def test_unpaired_zips_to_the_longer_domain(unpaired_files):
    files_a, files_b = unpaired_files
    dataset = pipeline.unpaired(files_a, files_b, image_size=32, load_size=36, batch_size=2, seed=0)
    assert dataset.element_spec["a"].shape == (2, 32, 32, 3) == dataset.element_spec["b"].shape
    assert len(list(dataset)) == 2  # 5 A, 3 B -> 5 pairs -> 2 full batches
    evaluation = _elements(pipeline.unpaired(files_a, files_b, image_size=32, load_size=32,
                                             batch_size=2, training=False))
    assert len(evaluation) == 5
    for element in evaluation:
        assert element["a"].shape == (32, 32, 3) and -1 <= element["b"].min() <= element["b"].max() <= 1


def test_unpaired_domains_are_augmented_independently(unpaired_files):
    files_a, _ = unpaired_files
    element = next(iter(pipeline.unpaired(files_a, files_a, image_size=32, load_size=40, seed=0, repeat=True)))
    assert not np.array_equal(element["a"], element["b"])


def test_unpaired_with_guiding_pairs(unpaired_files, paired_data):
    """Each unpaired element carries a synthetic pair cropped and flipped as one (its members
    agree), from its own stream: the domains' batches are the ones made without it, and the epoch
    stays the longer domain's."""
    (files_a, files_b), (files_p, _) = unpaired_files, paired_data
    options = dict(image_size=32, load_size=SIZE, batch_size=2, seed=0)  # crops of the stored pixels
    plain = list(pipeline.unpaired(files_a, files_b, **options))
    guided = list(pipeline.batches("unpaired", [files_a, files_b, files_p], **options))
    assert len(guided) == len(plain) == 2
    for with_pairs, without in zip(guided, plain):
        np.testing.assert_array_equal(with_pairs["a"], without["a"])
        np.testing.assert_array_equal(with_pairs["b"], without["b"])
        pair = {k: v.numpy() for k, v in with_pairs["paired"].items()}
        assert pair["masked"].shape == (2, 32, 32, 3) and pair["mask_map"].shape == (2, 32, 32, 1)
        np.testing.assert_array_equal(pair["masked"], pair["target"])
        np.testing.assert_array_equal(pair["mask_map"][..., 0], (pair["masked"][..., 0] > 0).astype(np.float32))
    bare = next(iter(pipeline.unpaired(files_a, files_b, paired_files=files_p, variation=Variation(bare=1.0),
                                       **options)))["paired"]  # the variation reaches the guiding pairs
    assert bare["mask_map"].numpy().max() == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"files": []}, "no TFRecord files"),
    ({"image_size": 64, "load_size": 32}, "image_size"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_arguments_raise(paired_data, kwargs, message):
    arguments = {"files": paired_data[0]} | kwargs
    with pytest.raises(ValueError, match=message):
        pipeline.paired(**arguments)


_DISTRIBUTED = textwrap.dedent("""
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfunmask.data import pipeline
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    dataset = pipeline.paired(sys.argv[1:], image_size=32, load_size=36, batch_size=4, seed=0)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    shapes = [tuple(t.shape) for t in strategy.experimental_local_results(batch["mask_map"])]
    print(strategy.num_replicas_in_sync, shapes)
""")


def test_works_with_mirrored_strategy_over_two_cpus(paired_data):
    # Logical CPUs must be configured before TensorFlow initialises: use a fresh interpreter.
    result = subprocess.run([sys.executable, "-c", _DISTRIBUTED, *paired_data[0]],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "2 [(2, 32, 32, 1), (2, 32, 32, 1)]"
