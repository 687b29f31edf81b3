"""Mask and photo variation of training pairs: where it changes pixels, determinism, the pipeline switch."""
import numpy as np
import pytest
import tensorflow as tf

from tfunmask.data import pipeline, tfrecords, variation
from tfunmask.data.variation import Variation

S = 48


def _pair(seed=0):
    """A smooth face-like target, the same image with a flat grey 'mask' in its lower half."""
    rng = np.random.default_rng(seed)
    target = tf.image.resize(rng.uniform(-0.8, 0.8, (1, 6, 6, 3)), [S, S])[0].numpy().astype(np.float32)
    mask = np.zeros((S, S, 1), np.float32)
    mask[S // 2:, 8:40] = 1
    masked = target * (1 - mask) + 0.3 * mask
    return tf.constant(masked), tf.constant(target), tf.constant(mask)


def _key(i):
    return tf.constant([7, i], tf.int64)


def test_probability_zero_changes_nothing():
    masked, target, mask = _pair()
    out_masked, out_target = variation.vary(masked, target, mask, _key(0), 0.0)
    np.testing.assert_array_equal(out_masked, masked)
    np.testing.assert_array_equal(out_target, target)


def test_varied_pairs_agree_outside_the_mask_and_stay_in_range():
    """The photo changes apply to both images alike, so outside the mask map the masked image
    still equals the target (the same float32 ops on equal inputs; 1e-6 allows a kernel that
    orders its sums differently per channel)."""
    masked, target, mask = _pair()
    outside = mask.numpy()[..., 0] == 0
    for i in range(20):
        out_masked, out_target = (t.numpy() for t in variation.vary(masked, target, mask, _key(i), 1.0))
        assert out_masked.shape == out_target.shape == (S, S, 3)
        assert out_masked.min() >= -1 and out_masked.max() <= 1 and out_target.min() >= -1
        # The blur reaches 3 px across the mask's edge: compare pixels further away.
        far = outside & (tf.nn.max_pool2d(mask[None], 7, 1, "SAME")[0, ..., 0].numpy() == 0)
        np.testing.assert_allclose(out_masked[far], out_target[far], atol=1e-6)


def test_the_mask_gets_new_looks_and_the_same_key_the_same_one():
    masked, target, mask = _pair()
    inside = mask.numpy()[..., 0] == 1
    looks = [variation.vary(masked, target, mask, _key(i), 1.0)[0].numpy()[inside].mean(axis=0) for i in range(12)]
    assert np.ptp(np.array(looks), axis=0).min() > 0.3  # colours spread, every channel
    again = variation.vary(masked, target, mask, _key(3), 1.0)[0].numpy()
    np.testing.assert_array_equal(again, variation.vary(masked, target, mask, _key(3), 1.0)[0].numpy())


def test_extras_texture_every_new_look_and_keep_the_outside_exactly():
    """extras=1: every recoloured look is a textured one (not the flat look extras=0 draws from
    the same key), and after downscaling and JPEG the masked image still equals the target
    outside the map, exactly (it takes the target's compressed pixels there)."""
    masked, target, mask = _pair()
    inside, outside = mask.numpy()[..., 0] == 1, mask.numpy()[..., 0] == 0
    for i in range(12):
        plain = variation.vary(masked, target, mask, _key(i), 1.0)[0].numpy()
        out_masked, out_target = (t.numpy() for t in variation.vary(masked, target, mask, _key(i), 1.0, 1.0))
        assert np.abs(out_masked[inside] - plain[inside]).max() > 0.05
        assert out_masked.min() >= -1 and out_masked.max() <= 1 and out_target.min() >= -1 and out_target.max() <= 1
        np.testing.assert_array_equal(out_masked[outside], out_target[outside])
    # compression and downscaling change the photo itself (the target), not only the mask
    targets = [variation.vary(masked, target, mask, _key(i), 1.0, 1.0)[1].numpy() for i in range(4)]
    assert min(np.abs(t - variation.vary(masked, target, mask, _key(i), 1.0)[1].numpy()).mean()
               for i, t in enumerate(targets)) > 1e-3


@pytest.mark.parametrize("width", [1, 2, 3])
def test_hem_is_the_band_along_the_edge_of_the_map(width):
    """A 10 x 20 rectangle's band of width w is the rectangle less its (10 - 2w) x (20 - 2w) core."""
    mask = np.zeros((S, S, 1), np.float32)
    mask[10:20, 5:25] = 1
    band = variation.hem(tf.constant(mask), width).numpy()
    assert set(np.unique(band)) == {0.0, 1.0} and band.sum() == 200 - (10 - 2 * width) * (20 - 2 * width)
    assert band[10, 15, 0] == 1 and band[15, 5 + width - 1, 0] == 1 and band[15, 5 + width, 0] == 0
    assert band[mask == 0].max() == 0


def test_only_training_pairs_are_varied_and_bad_probabilities_fail(tmp_path):
    masked, target, mask = _pair()
    to_uint8 = lambda x: np.rint((x.numpy() + 1) * 127.5).astype(np.uint8)  # noqa: E731
    pairs = [{"masked": to_uint8(masked), "target": to_uint8(target), "mask_map": to_uint8(mask * 2 - 1)[..., 0],
              "source": f"p{i}.jpg", "face_index": 0, "style": "cloth", "id": f"p{i}"} for i in range(4)]
    tfrecords.write_paired_shards(pairs, tmp_path, shards=1, fractions=(1, 0, 0))
    files = tfrecords.paired_files(tmp_path, "train")

    def first(training=True, **variation):
        return next(iter(pipeline.paired(files, image_size=S, load_size=S, batch_size=4, training=training,
                                         variation=Variation(**variation))))

    plain, varied = first(probability=0.0), first(probability=1.0)
    np.testing.assert_array_equal(plain["mask_map"], varied["mask_map"])
    assert np.abs(plain["masked"] - varied["masked"]).max() > 0.1
    np.testing.assert_array_equal(first(training=False, probability=1.0, bare=1.0)["masked"],
                                  first(training=False)["masked"])
    np.testing.assert_array_equal(plain["mask_map"], first(probability=1.0, extras=1.0)["mask_map"])
    # bare faces: the target as both images and an empty map, the photo still varied like the target
    bare = first(probability=1.0, bare=1.0)
    np.testing.assert_array_equal(bare["masked"], bare["target"])
    assert bare["mask_map"].numpy().max() == 0 and np.abs(bare["target"] - varied["target"]).max() == 0
    # (compression included; a bare pair's mask gets no new look, which changes no target pixel)
    degraded, bare_degraded = first(probability=1.0, extras=1.0), first(probability=1.0, extras=1.0, bare=1.0)
    np.testing.assert_array_equal(bare_degraded["target"], degraded["target"])
    np.testing.assert_array_equal(bare_degraded["masked"], degraded["target"])
    half = first(bare=0.5)
    empty = half["mask_map"].numpy().max(axis=(1, 2, 3)) == 0
    assert 0 < empty.sum() < 4  # stateless draws: the same on every machine
    np.testing.assert_array_equal(half["masked"].numpy()[empty], half["target"].numpy()[empty])
    np.testing.assert_array_equal(half["masked"].numpy()[~empty], plain["masked"].numpy()[~empty])
    with pytest.raises(ValueError, match="mask_variation must be a probability"):
        Variation(1.5)
    with pytest.raises(ValueError, match="variation_extras must be a probability"):
        Variation(0.5, -0.1)
    with pytest.raises(ValueError, match="bare_faces must be a probability"):
        Variation(bare=2.0)
    with pytest.raises(ValueError, match="variation_extras adds to mask_variation"):
        Variation(extras=0.5)
