"""Pix2Pix: shapes, determinism at inference, learning and precision (replicas: test_replicas)."""


import keras
import numpy as np
import pytest
import tensorflow as tf

from tfunmask.models.pix2pix import Pix2Pix, unet_depth, unet_generator

SIZE = 32


def batch(n=4, seed=0):
    """Smooth random faces-to-be (upsampled 4x4 noise), masked by a flat lower half."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1, 1, (n, 4, 4, 3)).astype(np.float32)
    target = tf.image.resize(coarse, (SIZE, SIZE), "bilinear").numpy()
    mask_map = np.zeros((n, SIZE, SIZE, 1), np.float32)
    mask_map[:, SIZE // 2:] = 1
    masked = np.where(mask_map > 0, 0.8, target).astype(np.float32)
    return {"masked": masked, "target": target, "mask_map": mask_map}


def compiled(**kwargs):
    keras.utils.set_random_seed(0)
    model = Pix2Pix(SIZE, filters=8, **kwargs)
    model.compile(keras.optimizers.Adam(2e-3, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    return model


@pytest.mark.parametrize("size, depth", [(32, 5), (64, 6), (256, 8), (512, 8), (192, 6)])
def test_unet_depth_adapts_to_size(size, depth):
    assert unet_depth(size) == depth


def test_unet_rejects_sizes_not_divisible_by_16():
    with pytest.raises(ValueError, match="divisible by 16"):
        unet_depth(40)


def test_generator_shape_range_and_deterministic_inference():
    generator = unet_generator(64, filters=8, dropout=0.5)
    images = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    first = generator(images, training=False).numpy()
    second = generator(images, training=False).numpy()
    assert first.shape == (2, 64, 64, 3) and first.dtype == np.float32
    assert np.all(np.abs(first) <= 1)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(generator(images, training=True), generator(images, training=True))


@pytest.mark.parametrize("normalization", ["instance", "batch"])
def test_bottleneck_carries_the_input_at_batch_1(normalization):
    """The 1x1 bottleneck is not normalised: instance norm (or batch norm over a batch of 1)
    of a 1x1 map would make it the same constant for every input."""
    generator = unet_generator(SIZE, filters=8, dropout=0.0, normalization=normalization)
    inner = generator.get_layer(f"down{unet_depth(SIZE) - 1}_act").output
    bottleneck = keras.Model(generator.input, inner)
    assert bottleneck.output_shape == (None, 1, 1, 8 * 2 ** (unet_depth(SIZE) - 1))
    a, b = (batch(n=1, seed=seed)["masked"] for seed in (1, 2))
    first, second = (bottleneck(x, training=True).numpy() for x in (a, b))
    assert np.abs(first - second).max() > 1e-3


def test_generator_has_no_transposed_convolutions():
    generator = unet_generator(64, filters=8)
    assert not [layer for layer in generator.layers if isinstance(layer, keras.layers.Conv2DTranspose)]


def test_discriminator_is_70px_patchgan():
    model = Pix2Pix(256, filters=8)
    assert model.discriminator.output_shape == (None, 32, 32, 1)


@pytest.mark.parametrize("loss", ["l1", "cosine_mean", "cosine_sum"])
def test_losses_decrease_on_a_fixed_batch(loss):
    model = compiled(loss=loss, dropout=0.0)
    data = batch()
    history = [model.train_on_batch(data, return_dict=True)["g_rec"] for _ in range(30)]
    assert np.mean(history[-5:]) < 0.6 * history[0], history


def test_metrics_cover_every_loss_term():
    model = compiled()
    logs = model.train_on_batch(batch(), return_dict=True)
    assert set(logs) == {"g_loss", "g_gan", "g_rec", "d_loss", "d_real", "d_fake"}
    assert all(np.isfinite(v) for v in logs.values())


def test_unknown_loss_is_rejected():
    with pytest.raises(ValueError, match=r"loss must be one of l1, cosine_mean, cosine_sum \(got 'l2'\)"):
        Pix2Pix(SIZE, loss="l2")


def test_mask_weight_changes_only_weighting():
    data = batch()
    plain = compiled(dropout=0.0)
    weighted = compiled(dropout=0.0, mask_weight=5.0)
    weighted.set_weights(plain.get_weights())
    a = plain.test_on_batch(data, return_dict=True)["g_rec"]
    b = weighted.test_on_batch(data, return_dict=True)["g_rec"]
    assert a != pytest.approx(b)


def test_mixed_bfloat16_trains_without_nans():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = compiled()
        data = batch()
        for _ in range(5):
            logs = model.train_on_batch(data, return_dict=True)
        assert all(np.isfinite(v) for v in logs.values())
        assert model.generator(data["masked"]).dtype == tf.float32
        assert model.generator.layers[1].compute_dtype == "bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_composite_generator_keeps_input_where_mask_is_zero():
    model = compiled(composite=True, dropout=0.0)
    data = batch()
    out = model.generator(data["masked"], training=False)
    mask, content = out["mask"].numpy(), out["content"].numpy()
    expected = content * mask + data["masked"] * (1 - mask)
    np.testing.assert_allclose(out["unmasked"].numpy(), expected, atol=1e-6)
    assert mask.shape == (4, SIZE, SIZE, 1) and np.all((mask >= 0) & (mask <= 1))
    exported = model.export_generator()(data["masked"])  # serving keeps the image and its mask
    assert sorted(exported) == ["mask", "unmasked"]
    np.testing.assert_allclose(exported["unmasked"].numpy(), out["unmasked"].numpy(), atol=1e-6)
    np.testing.assert_array_equal(exported["mask"].numpy(), mask)


def test_map_closing_fills_cracks_and_keeps_the_outer_edge():
    from tfunmask.models.layers import MapClosing

    block = np.zeros((1, 16, 16, 1), np.float32)
    block[0, 4:12, 3:13] = 1.0
    cracked = block.copy()
    cracked[0, 7, 3:13] = 0.2  # a dim line across the map, one pixel high
    np.testing.assert_array_equal(MapClosing(1)(cracked).numpy(), block)
    np.testing.assert_array_equal(MapClosing(2)(block).numpy(), block)
    with pytest.raises(ValueError, match="radius must be at least 1"):
        MapClosing(0)


def test_export_with_mask_closing_composites_by_the_closed_map():
    """The exported generator's map is the trained map closed (grey closing over a (2r+1)
    square, as scipy computes it) and its image the content pasted by that map."""
    from scipy import ndimage

    model = compiled(composite=True, dropout=0.0)
    data = batch()
    out = model.generator(data["masked"], training=False)
    closed = ndimage.grey_closing(out["mask"].numpy(), size=(1, 5, 5, 1), mode="nearest")
    exported = model.export_generator(mask_closing=2)(data["masked"])
    np.testing.assert_allclose(exported["mask"].numpy(), closed, atol=1e-6)
    assert not np.allclose(closed, out["mask"].numpy(), atol=1e-3)  # the closing did something here
    expected = out["content"].numpy() * closed + data["masked"] * (1 - closed)
    np.testing.assert_allclose(exported["unmasked"].numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="mask_closing needs a composite"):
        compiled(dropout=0.0).export_generator(mask_closing=2)
    with pytest.raises(ValueError, match="mask_closing must be 0"):
        model.export_generator(mask_closing=-1)


def test_feature_matching_runs_the_discriminator_layer_by_layer():
    """Run layer by layer, the discriminator gives its own logits and its four activations."""
    matched = compiled(dropout=0.0, lambda_feature_matching=10.0)
    data = batch()
    pair = tf.concat([data["masked"], data["target"]], -1)
    logits, features = matched._discriminate(pair, training=False)
    np.testing.assert_allclose(logits.numpy(), matched.discriminator(pair, training=False).numpy(), atol=1e-6)
    assert [f.shape[-1] for f in features] == [8, 16, 32, 64]


@pytest.mark.parametrize("argument, term", [("lambda_feature_matching", "g_fm"), ("lambda_ssim", "g_ssim")])
def test_an_added_generator_term_adds_its_weighted_value_and_leaves_the_rest_alone(argument, term):
    """On the same weights and batch every other term is the same with the term on, and the
    generator's objective grows by exactly lambda * term (the discriminator's not at all)."""
    plain, added = compiled(dropout=0.0), compiled(dropout=0.0, **{argument: 10.0})
    added.set_weights(plain.get_weights())
    data = batch()
    a, b = (m._report(m._loss_terms(data, training=False)) for m in (plain, added))
    a, b = ({k: float(v) for k, v in r.items()} for r in (a, b))
    assert b[term] > 0 and term not in a
    for name in ("g_gan", "g_rec", "d_real", "d_fake", "d_loss"):
        assert b[name] == pytest.approx(a[name], rel=1e-5), name
    assert b["g_loss"] - a["g_loss"] == pytest.approx(10.0 * b[term], rel=1e-4)
    history = [added.train_on_batch(data, return_dict=True) for _ in range(3)]
    assert all(np.isfinite(h[term]) for h in history)
    assert added.get_config()[argument] == 10.0
    with pytest.raises(ValueError, match=f"{argument} must be 0"):
        Pix2Pix(SIZE, **{argument: -1.0})


def test_ssim_term_scores_the_mask_region():
    """With mask maps in the batch the SSIM term is 1 - SSIM over the map alone: an output equal
    to the target under the map's windows scores 0 whatever it does elsewhere."""
    from tfunmask.models import losses

    data = batch()
    half = losses.SSIM_WINDOW // 2
    output = np.array(data["target"])
    output[:, :SIZE // 2 - half] = -1.0  # the top, outside every window centred on the map
    np.testing.assert_allclose(losses.ssim_distance(data["target"], output, data["mask_map"]).numpy(), 0.0,
                               atol=1e-5)
    model = compiled(dropout=0.0, lambda_ssim=1.0)
    terms = model._loss_terms(data, training=False)
    expected = losses.ssim_distance(data["target"], model.generate(data["masked"])[0], data["mask_map"])
    np.testing.assert_allclose(terms["g_ssim"].numpy(), expected.numpy(), rtol=1e-5)


def test_composite_learns_the_mask_map():
    model = compiled(composite=True, dropout=0.0)
    data = batch()
    history = [model.train_on_batch(data, return_dict=True) for _ in range(30)]
    assert "g_mask" in history[0]
    assert history[-1]["g_mask"] < 0.7 * history[0]["g_mask"], [h["g_mask"] for h in history]


@pytest.mark.parametrize("segmenter_filters", [0, 4])
def test_two_stage_content_cannot_see_what_the_map_covers(segmenter_filters):
    """With a segmenter, the inpainter sees the input blanked where the map is: a map of 1
    everywhere (its bias at +50) leaves it nothing of the input, so the content is the same for
    any input. The one-network composite reads the masked pixels, and its content changes."""
    model = compiled(composite=True, dropout=0.0, segmenter_filters=segmenter_filters)
    bias = model.generator.get_layer("mask_conv").bias
    bias.assign(tf.fill(bias.shape, 50.0))
    first, second = (model.generator(batch(seed=s)["masked"], training=False) for s in (0, 1))
    np.testing.assert_array_equal(first["mask"].numpy(), 1.0)
    change = np.abs(first["content"].numpy() - second["content"].numpy()).max()
    assert (change == 0.0) if segmenter_filters else (change > 1e-3), change
    if segmenter_filters:
        assert model.generator.get_layer("seg_down0_conv").filters == 4
        assert model.generator.get_layer("down0_conv").kernel.shape[2] == 4  # the image and the map
        np.testing.assert_array_equal(first["unmasked"].numpy(), first["content"].numpy())


def test_segmenter_needs_the_composite():
    with pytest.raises(ValueError, match="segmenter_filters needs composite=True"):
        Pix2Pix(SIZE, segmenter_filters=4)
    with pytest.raises(ValueError, match="segmenter_filters must be 0"):
        Pix2Pix(SIZE, composite=True, segmenter_filters=-1)


def test_leaky_relu_max_is_leaky_relu_forward_and_backward():
    """The activation of unnormalised encoder steps: the same values and gradients as
    LeakyReLU(0.2) (random inputs avoid exact zeros, the one point where they differ)."""
    from tfunmask.models import layers as blocks

    x = tf.random.stateless_normal([4, 8, 8, 16], seed=[1, 2])
    upstream = tf.random.stateless_normal([4, 8, 8, 16], seed=[3, 4])
    results = []
    for layer in (keras.layers.LeakyReLU(0.2), blocks.LeakyReLUMax(0.2)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        results.append((y.numpy(), tape.gradient(y, x, output_gradients=upstream).numpy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
