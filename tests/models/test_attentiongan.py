"""AttentionGAN: composition invariants, attention masks, loss terms, learning, export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.models.unpaired import SIZE, TINY, TINY_MODEL, compiled, faces, l1, lsgan, moved_weights, unpaired_batch
from tfunmask import models, pixels
from tfunmask.config import TrainConfig
from tfunmask.models.attentiongan import ATTENTION_LAYERS, AttentionGAN, attention_generator
from tfunmask.models.layers import Composite
from tfunmask.serving import exporter

GUIDE_TERMS = ("attention_map", "attention_unmasked", "paired")


def force_background(generator, scheme):
    """Zero the attention head and bias it so the background mask is exactly 1."""
    layer = generator.get_layer("foreground_conv" if scheme == 1 else "attention_conv")
    kernel, bias = layer.get_weights()
    bias[:] = -200.0 if scheme == 1 else 0.0  # sigmoid(-200) and exp(-200) are 0 in float32
    if scheme == 2:
        bias[-1] = 200.0
    layer.set_weights([np.zeros_like(kernel), bias])


def np_total_variation(maps):
    maps = np.asarray(maps)
    dy = np.abs(np.diff(maps, axis=1)).reshape(len(maps), -1).mean(1)
    dx = np.abs(np.diff(maps, axis=2)).reshape(len(maps), -1).mean(1)
    return dx + dy


# ----------------------------------------------------------------------------- composition

def test_composite_is_the_mask_weighted_sum_and_passes_the_background_where_masks_are_0():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2, 4, 4, 3)).astype(np.float32)
    content = rng.uniform(-1, 1, (2, 4, 4, 6)).astype(np.float32)
    attention = rng.dirichlet(np.ones(3), (2, 4, 4)).astype(np.float32)
    expected = (content[..., :3] * attention[..., :1] + content[..., 3:] * attention[..., 1:2]
                + images * attention[..., 2:])
    composed = Composite()([content, attention[..., :2], images])
    np.testing.assert_allclose(composed, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(Composite()([content, np.zeros_like(attention[..., :2]), images]), images)


@pytest.mark.parametrize("scheme", [1, 2])
def test_generator_with_background_forced_to_one_returns_the_input_exactly(scheme):
    """Exact by construction: the foreground masks underflow to 0 (exp(-200) in float32) and
    ``Composite`` weights the input by 1 - sum(foreground), which is then exactly 1. The background
    mask itself is a softmax quotient, rounded once: within 1 ulp of 1 (an AVX2 CPU gives
    1 - 2**-24), so it is checked to that and not relied on."""
    generator = attention_generator(SIZE, scheme=scheme, masks=4, **TINY)
    force_background(generator, scheme)
    images = faces(2, 0)
    outputs = generator(images)
    np.testing.assert_array_equal(outputs["attention"][..., :-1], 0.0)
    np.testing.assert_allclose(outputs["attention"][..., -1], 1.0, rtol=0, atol=2.0 ** -23)
    np.testing.assert_array_equal(outputs["image"], images)


@pytest.mark.parametrize("scheme, masks", [(1, 2), (2, 3), (2, 10)])
def test_an_untrained_generator_starts_near_a_copy_of_its_input(scheme, masks):
    """The attention biases start the foreground at START (0.1) whatever n is, not at (n - 1) / n:
    with the kernels zeroed it is exactly START, and random kernels (N(0, 0.02)) move it little."""
    from tfunmask.models.attentiongan import START, foreground

    generator = attention_generator(SIZE, scheme=scheme, masks=masks, **TINY)
    images = faces(2, 0)
    assert abs(float(np.mean(foreground(generator(images)["attention"]))) - START) < 0.03
    layer = generator.get_layer("foreground_conv" if scheme == 1 else "attention_conv")
    layer.set_weights([np.zeros_like(w) if i == 0 else w for i, w in enumerate(layer.get_weights())])
    np.testing.assert_allclose(foreground(generator(images)["attention"]), START, rtol=1e-5)


@pytest.mark.parametrize("scheme, masks, contents", [(1, 10, 1), (2, 4, 3), (2, 10, 9)])
def test_attention_masks_are_a_partition_of_unity(scheme, masks, contents):
    outputs = attention_generator(SIZE, scheme=scheme, masks=masks, **TINY)(faces(2, 0))
    attention = outputs["attention"].numpy()
    assert attention.shape == (2, SIZE, SIZE, contents + 1)
    assert outputs["content"].shape == (2, SIZE, SIZE, 3 * contents)
    assert attention.min() >= 0 and attention.max() <= 1
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-6)
    assert np.all(np.abs(outputs["image"]) <= 1)


def test_unknown_scheme_and_too_few_masks_are_rejected():
    with pytest.raises(ValueError, match="scheme 3"):
        attention_generator(SIZE, scheme=3)
    with pytest.raises(ValueError, match="at least 2"):
        attention_generator(SIZE, scheme=2, masks=1)


def test_build_reads_the_training_config():
    config = TrainConfig.create(model="aggan", image_size=SIZE, filters=8, resnet_blocks=2, aggan_scheme=1,
                                lambda_tv=0.3, pool_size=5)
    model = models.build(config.model_name, config.model)
    assert isinstance(model, AttentionGAN) and model.aggan_scheme == 1 and model.lambda_tv == 0.3
    assert model.pool_a.size == 5
    assert model.generator_ab.output["attention"].shape[-1] == 2


# ----------------------------------------------------------------------------- losses

def test_loss_terms_match_numpy():
    model = compiled(AttentionGAN, attention_masks=3)
    data = unpaired_batch()
    a, b = data["a"], data["b"]
    g, f = model.generator_ab(a), model.generator_ba(b)
    mask_b, mask_a = (t["attention"][..., :-1].numpy().sum(-1, keepdims=True) for t in (g, f))
    d_b, d_a = model.attention_discriminator_b, model.attention_discriminator_a
    fake_scores = d_b(mask_b * g["image"]), d_a(mask_a * f["image"])
    expected = {
        "pixel": l1(g["image"], a) + l1(f["image"], b),
        "tv": np_total_variation(g["attention"]) + np_total_variation(f["attention"]),
        "g_attention": lsgan(fake_scores[0], 1) + lsgan(fake_scores[1], 1),
        "d_attention_real": lsgan(d_b(mask_b * b), 1) + lsgan(d_a(mask_a * a), 1),
        "d_attention_fake": lsgan(fake_scores[0], 0) + lsgan(fake_scores[1], 0),
        "g_gan": lsgan(model.discriminator_b(g["image"]), 1) + lsgan(model.discriminator_a(f["image"]), 1),
    }
    terms = model._loss_terms(data, training=False)
    assert set(terms) == set(AttentionGAN.LOSS_NAMES) - {"g_loss", "d_loss", *GUIDE_TERMS}
    for name, value in expected.items():
        np.testing.assert_allclose(terms[name], value, rtol=1e-5, atol=1e-7, err_msg=name)
    g_weights, d_weights = model.loss_weights()
    assert g_weights["pixel"] == model.lambda_pixel and g_weights["tv"] == model.lambda_tv
    assert g_weights["g_attention"] == model.lambda_attention_gan
    assert d_weights == {"d_real": 0.5, "d_fake": 0.5, "d_attention_real": 0.5, "d_attention_fake": 0.5}


def test_no_attention_discriminators_at_weight_0():
    """``lambda_attention_gan=0`` builds and trains no attention-guided pair: two discriminators,
    no D^att terms or weights, and a training step still updates both players."""
    model = compiled(AttentionGAN, attention_masks=3, lambda_attention_gan=0.0)
    assert model.attention_discriminator_a is None and len(model.discriminators) == 2
    terms = model._loss_terms(unpaired_batch(), training=False)
    assert not {"g_attention", "d_attention_real", "d_attention_fake"} & set(terms)
    g_weights, d_weights = model.loss_weights()
    assert "g_attention" not in g_weights and d_weights == {"d_real": 0.5, "d_fake": 0.5}
    before = [v.numpy().copy() for v in model.discriminator_variables]
    logs = model.train_on_batch(unpaired_batch(), return_dict=True)
    assert np.isfinite(logs["d_loss"]) and "d_attention_real" not in logs
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(before, model.discriminator_variables))


def np_bce(target, probability):
    p = np.clip(np.asarray(probability, np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(target, np.float64)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p)).reshape(len(p), -1).mean(1)


def guided_batch(n=2):
    """An unpaired batch plus synthetic pairs: the "mask" is the flat lower half of a face."""
    data = unpaired_batch(n)
    target = faces(n, 2)
    masked, mask_map = target.copy(), np.zeros((n, SIZE, SIZE, 1), np.float32)
    masked[:, SIZE // 2:], mask_map[:, SIZE // 2:] = 0.8, 1.0
    return {**data, "paired": {"masked": masked, "target": target, "mask_map": mask_map}}


def test_guide_terms_match_numpy_and_enter_the_generator_objective():
    model = compiled(AttentionGAN, attention_masks=3, lambda_attention_map=10.0, lambda_paired=5.0)
    data = guided_batch()
    pairs = data["paired"]
    guided = model.generator_ab(pairs["masked"])
    foreground_on = {name: out["attention"][..., :-1].numpy().sum(-1, keepdims=True)
                     for name, out in (("pairs", guided), ("unmasked", model.generator_ab(data["b"])))}
    terms = model._loss_terms(data, training=False)
    assert set(terms) == set(AttentionGAN.LOSS_NAMES) - {"g_loss", "d_loss"}
    np.testing.assert_allclose(terms["attention_map"], np_bce(pairs["mask_map"], foreground_on["pairs"]),
                               rtol=1e-5)
    np.testing.assert_allclose(terms["attention_unmasked"], np_bce(0.0 * foreground_on["unmasked"],
                                                                   foreground_on["unmasked"]), rtol=1e-5)
    np.testing.assert_allclose(terms["paired"], l1(guided["image"], pairs["target"]), rtol=1e-5)
    g_weights, _ = model.loss_weights()
    assert (g_weights["attention_map"], g_weights["attention_unmasked"], g_weights["paired"]) == (10.0, 10.0, 5.0)
    assert not set(GUIDE_TERMS) & set(compiled(AttentionGAN, attention_masks=3).loss_weights()[0])


@pytest.mark.parametrize("share", [0.0, 0.1])
def test_unmasked_attention_weight_scales_only_the_attention_on_unmasked_faces(share):
    model = compiled(AttentionGAN, attention_masks=3, lambda_attention_map=10.0, lambda_paired=5.0,
                     unmasked_attention_weight=share)
    g_weights, _ = model.loss_weights()
    assert g_weights["attention_map"] == 10.0 and g_weights["paired"] == 5.0
    assert g_weights.get("attention_unmasked", 0.0) == pytest.approx(10.0 * share)
    assert ("attention_unmasked" in model._loss_terms(guided_batch(), training=False)) == bool(share)
    assert model.get_config()["unmasked_attention_weight"] == share


def test_guide_terms_need_synthetic_pairs():
    model = compiled(AttentionGAN, attention_masks=3, lambda_paired=1.0)
    with pytest.raises(ValueError, match=r"need synthetic pairs .*--paired_data"):
        model._loss_terms(unpaired_batch(), training=False)
    with pytest.raises(ValueError, match="must not be negative"):
        AttentionGAN(SIZE, lambda_attention_map=-1.0)
    with pytest.raises(ValueError, match=r"unmasked_attention_weight and lambda_paired must not be negative "
                                         r"\(got 1.0, -0.5, 0.0\)"):
        AttentionGAN(SIZE, lambda_attention_map=1.0, unmasked_attention_weight=-0.5)


def test_warmup_epochs_train_only_the_unmasker_on_the_guide_terms():
    """A warm-up step moves G_AB alone, from the guide terms alone; both step counters advance
    (the learning-rate schedules stay on the epochs); the phase ends with ``warmup_epochs``."""
    model = compiled(AttentionGAN, attention_masks=3, lambda_attention_map=10.0, lambda_paired=5.0,
                     warmup_epochs=1)
    assert model.begin_epoch(0) and model.phase == "pairs"
    networks = {network.name: network for network in model.generators + model.discriminators}
    before = {name: network.get_weights() for name, network in networks.items()}
    logs = model.train_on_batch(guided_batch(), return_dict=True)
    moved = {name: any(not np.array_equal(a, b) for a, b in zip(before[name], network.get_weights()))
             for name, network in networks.items()}
    assert moved == {name: name == "generator_ab" for name in networks}, moved
    assert int(model.g_optimizer.iterations) == int(model.d_optimizer.iterations) == 1
    guide_terms = {"g_loss", "attention_map", "attention_unmasked", "paired"}
    assert set(logs) == guide_terms  # no d_loss or cycle: not computed in the warm-up
    assert logs["g_loss"] == pytest.approx(10 * (logs["attention_map"] + logs["attention_unmasked"])
                                           + 5 * logs["paired"], rel=1e-5)
    validation = model.test_on_batch(guided_batch(), return_dict=True)  # scores what the phase trains
    assert set(validation) == guide_terms and validation["g_loss"] == pytest.approx(
        10 * (validation["attention_map"] + validation["attention_unmasked"]) + 5 * validation["paired"], rel=1e-5)
    assert model.begin_epoch(1) and model.phase == "full" and not model.begin_epoch(2)
    with pytest.raises(ValueError, match="warmup_epochs trains G_AB on the synthetic pairs alone"):
        AttentionGAN(SIZE, warmup_epochs=1)


def test_a_discriminator_warm_up_trains_the_discriminators_alone():
    """A discriminator warm-up step moves every discriminator and no generator; both step counters
    advance; the phase ends with ``discriminator_warmup_epochs``; it excludes the pair warm-up."""
    model = compiled(AttentionGAN, attention_masks=3, discriminator_warmup_epochs=1)
    assert model.begin_epoch(0) and model.phase == "discriminators"
    networks = model.generators + model.discriminators
    moved = moved_weights(networks, lambda: model.train_on_batch(unpaired_batch(), return_dict=True))
    assert [bool(paths) for paths in moved] == [network in model.discriminators for network in networks], moved
    assert int(model.g_optimizer.iterations) == int(model.d_optimizer.iterations) == 1
    assert model.begin_epoch(1) and model.phase == "full"
    with pytest.raises(ValueError, match="nor combined with warmup_epochs"):
        AttentionGAN(SIZE, discriminator_warmup_epochs=1, warmup_epochs=1, lambda_paired=1.0)


@pytest.mark.parametrize("shape", [dict(aggan_scheme=1, backbone="unet", max_filters=16), dict(attention_masks=3)],
                         ids=["unet", "scheme2"])
def test_generator_ab_can_train_its_attention_alone(shape):
    """With ``generator_ab_trains="attention"`` a full step moves every trainable weight of G_AB's
    attention layers and no other weight of G_AB (its batch statistics included), while G_BA and
    the discriminators learn; by default the same step moves G_AB's trunk too."""
    def step(**kwargs):
        model = compiled(AttentionGAN, **shape, **kwargs)
        networks = (model.generator_ab, model.generator_ba) + model.discriminators
        return model, moved_weights(networks, lambda: model.train_on_batch(unpaired_batch(), return_dict=True))

    model, moved = step(generator_ab_trains="attention")
    trainable = {v.path for v in model.generator_ab.trainable_variables}
    assert trainable and all(path.startswith(ATTENTION_LAYERS) for path in trainable), trainable
    assert moved[0] == trainable, moved[0] ^ trainable
    assert all(moved[1:]), "G_BA and every discriminator learn"
    _, moved = step()
    assert any(not path.startswith(ATTENTION_LAYERS) for path in moved[0])
    with pytest.raises(ValueError, match="generator_ab_trains"):
        AttentionGAN(SIZE, generator_ab_trains="content")


def test_attention_map_supervision_teaches_where_the_mask_is():
    """Twelve steps with the map term open a gap between G_AB's attention on the masked and the
    bare half of held-out synthetic faces (0.13 measured); without the term the same steps leave
    the halves alike (-0.02). No attention-guided discriminators: the map term alone is tested."""
    test, half = guided_batch(3)["paired"], SIZE // 2

    def gap_after_training(**weights):
        keras.utils.set_random_seed(0)
        model = AttentionGAN(SIZE, aggan_scheme=1, lambda_attention_gan=0.0, **TINY_MODEL, **weights)
        model.compile(keras.optimizers.Adam(1e-2, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5),
                      run_eagerly=True)
        data = guided_batch()
        for _ in range(12):
            model.train_on_batch(data)
        masked = model.generator_ab(test["masked"])["attention"][..., 0].numpy()
        return masked[:, half:].mean() - masked[:, :half].mean()

    gap, control_gap = gap_after_training(lambda_attention_map=50.0), gap_after_training()
    assert gap > 0.08 and control_gap < 0.03, (gap, control_gap)


@pytest.mark.parametrize("attention_discriminator", ["product", "context"])
def test_attention_guided_discriminator_gives_no_gradient_through_the_mask(attention_discriminator):
    model = compiled(AttentionGAN, aggan_scheme=1, attention_discriminator=attention_discriminator)
    data = unpaired_batch()
    attention_head = model.generator_ab.get_layer("foreground_conv").kernel
    with tf.GradientTape() as tape:
        terms = model._loss_terms(data, training=True)
        loss = tf.reduce_sum(terms["d_attention_real"])
    assert tape.gradient(loss, attention_head) is None


def test_concat_attention_discriminator_sees_the_mask_and_passes_its_gradient():
    """The paper's variant: D^att sees [mask, image]; G's adversarial term reaches the attention
    head (the product form gives it none, above)."""
    model = compiled(AttentionGAN, aggan_scheme=1, attention_discriminator="concat")
    data = unpaired_batch()
    assert model.attention_discriminator_b.input.shape[-1] == 4
    attention_head = model.generator_ab.get_layer("foreground_conv").kernel
    with tf.GradientTape(persistent=True) as tape:
        terms = model._loss_terms(data, training=True)
        g_term, d_term = (tf.reduce_sum(terms[name]) for name in ("g_attention", "d_attention_real"))
    assert tape.gradient(d_term, attention_head) is None
    assert np.abs(tape.gradient(g_term, attention_head).numpy()).max() > 0
    seen = [(model.attention_discriminator_b, model.generator_ab(data["a"])),
            (model.attention_discriminator_a, model.generator_ba(data["b"]))]
    expected = sum(lsgan(judge(tf.concat([out["attention"][..., :1], out["image"]], -1)), 1) for judge, out in seen)
    np.testing.assert_allclose(terms["g_attention"], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="attention_discriminator must be one of product, concat, context"):
        AttentionGAN(SIZE, attention_discriminator="stack")


def test_context_attention_discriminator_sees_the_dilated_region_and_stops_its_gradient():
    """"context": D^att sees the image times the attention max-filtered over an eighth of the image
    on each side, real and fake alike (its gradient is stopped like the product's: the test
    above), and a one-pixel attention lets it see that pixel's neighbourhood, not the whole face."""
    model = compiled(AttentionGAN, aggan_scheme=1, attention_discriminator="context")
    data = unpaired_batch()
    terms = model._loss_terms(data, training=True)
    radius = SIZE // 8
    dilate = lambda m: tf.nn.max_pool2d(m, 2 * radius + 1, 1, "SAME")  # noqa: E731
    seen = [(model.attention_discriminator_b, model.generator_ab(data["a"])),
            (model.attention_discriminator_a, model.generator_ba(data["b"]))]
    expected = sum(lsgan(judge(dilate(out["attention"][..., :1]) * out["image"]), 1) for judge, out in seen)
    np.testing.assert_allclose(terms["g_attention"], expected, rtol=1e-5)
    dot = np.zeros((1, SIZE, SIZE, 1), np.float32)
    dot[0, SIZE // 2, SIZE // 2] = 1
    seen = model._attended(tf.constant(dot), tf.ones((1, SIZE, SIZE, 3)))[0, ..., 0].numpy()
    assert seen.sum() == (2 * radius + 1) ** 2 and seen[SIZE // 2, SIZE // 2 + radius] == 1


# ----------------------------------------------------------------------------- training

@pytest.mark.parametrize("scheme", [1, 2])
def test_training_decreases_generator_losses(scheme):
    model = compiled(AttentionGAN, aggan_scheme=scheme, attention_masks=3)
    data = unpaired_batch()
    history = [model.train_on_batch(data, return_dict=True) for _ in range(4)]
    assert all(np.isfinite(v) for v in history[-1].values())
    for name in ("g_loss", "cycle"):
        assert history[-1][name] < 0.8 * history[0][name], (name, [h[name] for h in history])


def test_mixed_bfloat16_trains_without_nans_and_composes_in_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = compiled(AttentionGAN, attention_masks=3)
        data = unpaired_batch()
        for _ in range(2):
            logs = model.train_on_batch(data, return_dict=True)
        outputs = model.generator_ab(data["a"])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(np.isfinite(v) for v in logs.values())
    assert {t.dtype for t in outputs.values()} == {tf.float32}
    assert model.generator_ab.get_layer("encoder_r0_a_conv").compute_dtype == "bfloat16"


# ----------------------------------------------------------------------------- export and TensorBoard

def test_export_serves_the_composed_image(tmp_path):
    model = compiled(AttentionGAN, attention_masks=3)
    masked = unpaired_batch()["a"]
    path = exporter.export_saved_model(model.export_generator(), tmp_path / "saved_model")
    images = pixels.to_uint8(masked)
    served = tf.saved_model.load(str(path)).signatures["serving_default"](images=images)["unmasked"]
    expected = pixels.to_uint8(model(pixels.to_unit(images)))
    assert np.abs(served.numpy().astype(int) - expected.numpy().astype(int)).max() <= 1


def test_samples_show_masks_and_content_images_in_range():
    model = compiled(AttentionGAN, attention_masks=3)
    grids = model.sample_images(unpaired_batch())
    parts = ("", "_attention", "_content")
    assert set(grids) == {f"{d}{part}" for d in ("a_to_b", "b_to_a") for part in parts}
    assert list(grids["a_to_b_attention"]) == ["mask 1", "mask 2", "background"]
    assert list(grids["a_to_b_content"]) == ["content 1", "content 2"]
    assert list(grids["a_to_b"]) == ["input", "translated", "reconstructed"]
    assert grids["a_to_b_attention"]["mask 1"].shape == (2, SIZE, SIZE, 1)
    for columns in grids.values():
        assert all(np.abs(np.asarray(c)).max() <= 1 for c in columns.values())
