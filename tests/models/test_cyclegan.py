"""CycleGAN: networks, the image pool, loss terms, learning and resume (replicas: test_replicas).

Training tests run eagerly (see ``unpaired.compiled``); the traced step is the
same code (``tf.while_loop`` and stateless ops behave alike in both).
"""


import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.models.unpaired import SIZE, TINY, compiled, faces, l1, lsgan, unpaired_batch
from tests.training_helpers import Crash, CrashAfterFirstEpoch, running_eagerly
from tfunmask.config import TrainConfig
from tfunmask.models.cyclegan import CycleGAN
from tfunmask.models.image_pool import ImagePool
from tfunmask.models.layers import ReflectionPad2D, resnet_generator
from tfunmask.training import trainer

# ----------------------------------------------------------------------------- networks

@pytest.mark.parametrize("blocks", [6, 9])
def test_resnet_generator_has_the_selected_residual_blocks(blocks):
    generator = resnet_generator(64, filters=4, blocks=blocks)
    assert sum(isinstance(layer, keras.layers.Add) for layer in generator.layers) == blocks
    assert not [layer for layer in generator.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert sum(isinstance(layer, ReflectionPad2D) for layer in generator.layers) == 2 * blocks + 2
    assert sum(isinstance(layer, keras.layers.GroupNormalization) for layer in generator.layers) == 2 * blocks + 5


def test_generator_output_shape_range_and_float32_under_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        generator = resnet_generator(SIZE, **TINY)
        output = generator(faces(2, 0))
        assert output.shape == (2, SIZE, SIZE, 3) and output.dtype == tf.float32
        assert np.all(np.abs(output) <= 1)
        assert generator.get_layer("encoder_r0_a_conv").compute_dtype == "bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_discriminators_are_70px_patchgans_and_optimizers_cover_both_of_each():
    model = CycleGAN(256, filters=4, resnet_blocks=1, pool_size=0)
    assert model.discriminator_a.output_shape == model.discriminator_b.output_shape == (None, 32, 32, 1)
    assert len(model.generator_variables) == 2 * len(model.generator_ab.trainable_variables)
    assert len(model.discriminator_variables) == 2 * len(model.discriminator_a.trainable_variables)
    assert model.export_generator() is model.generator_ab


# ----------------------------------------------------------------------------- image pool

def reference_pool(pool, count, images, coins, slots):
    """The official CycleGAN ImagePool.query, one image at a time, with given draws."""
    pool, returned = pool.copy(), []
    for image, coin, slot in zip(images, coins, slots):
        if count < len(pool):
            pool[count], count = image, count + 1
            returned.append(image)
        elif coin < 0.5:
            returned.append(pool[slot].copy())
            pool[slot] = image
        else:
            returned.append(image)
    return np.stack(returned), pool, count


def test_pool_follows_the_official_rule_step_by_step():
    pool = ImagePool(3, (2, 2, 1), seed=7)
    rng = np.random.default_rng(0)
    for step in range(6):
        images = rng.normal(size=(2, 2, 2, 1)).astype(np.float32)
        coins, slots = (t.numpy() for t in pool.draws(2, step))
        expected = reference_pool(pool.images.numpy(), int(pool.count.numpy()), images, coins, slots)
        returned = pool(images, step=step).numpy()
        np.testing.assert_array_equal(returned, expected[0])
        np.testing.assert_array_equal(pool.images.numpy(), expected[1])
        assert int(pool.count.numpy()) == expected[2]


def test_pool_fills_first_then_swaps_about_half_and_conserves_images():
    pool = ImagePool(4, (1, 1, 1), seed=1)
    first = np.arange(4, dtype=np.float32).reshape(4, 1, 1, 1)
    np.testing.assert_array_equal(pool(first, step=0), first)  # filling: returned as given, and stored
    np.testing.assert_array_equal(pool.images.numpy(), first)
    images = np.arange(100, 500, dtype=np.float32).reshape(400, 1, 1, 1)
    before = np.concatenate([pool.images.numpy(), images]).ravel()
    returned = pool(images, step=1).numpy()
    after = np.concatenate([pool.images.numpy(), returned]).ravel()
    np.testing.assert_array_equal(np.sort(before), np.sort(after))  # nothing lost or duplicated
    from_history = np.mean(returned.ravel() != images.ravel())
    assert 0.4 < from_history < 0.6, from_history


def test_pool_draws_depend_only_on_seed_and_step():
    a, b = ImagePool(5, (1, 1, 1), seed=3), ImagePool(5, (1, 1, 1), seed=3)
    np.testing.assert_array_equal(a.draws(8, 11)[1], b.draws(8, 11)[1])
    assert not np.array_equal(a.draws(8, 11)[1], a.draws(8, 12)[1])
    assert not np.array_equal(a.draws(8, 11)[1], ImagePool(5, (1, 1, 1), seed=4).draws(8, 11)[1])


def test_pool_of_size_zero_passes_images_through():
    images = np.ones((2, 2, 2, 3), np.float32)
    np.testing.assert_array_equal(ImagePool(0, (2, 2, 3))(images, step=0), images)


def test_pool_state_is_checkpointed(tmp_path):
    pool = ImagePool(2, (1, 1, 1))
    pool(np.array([[[[5.0]]], [[[6.0]]]], np.float32), step=0)
    path = tf.train.Checkpoint(pool=pool).save(str(tmp_path / "pool"))
    restored = ImagePool(2, (1, 1, 1))
    tf.train.Checkpoint(pool=restored).restore(path).assert_consumed()
    np.testing.assert_array_equal(restored.images.numpy().ravel(), [5, 6])
    assert int(restored.count.numpy()) == 2


# ----------------------------------------------------------------------------- losses

def test_loss_terms_match_numpy():
    model = compiled(CycleGAN)
    data = unpaired_batch()
    a, b = data["a"], data["b"]
    g, f = model.generator_ab, model.generator_ba
    fake_b, fake_a = g(a).numpy(), f(b).numpy()
    expected = {
        "g_gan": lsgan(model.discriminator_b(fake_b), 1) + lsgan(model.discriminator_a(fake_a), 1),
        "cycle": l1(f(fake_b), a) + l1(g(fake_a), b),
        "identity": l1(g(b), b) + l1(f(a), a),
        "d_real": lsgan(model.discriminator_a(a), 1) + lsgan(model.discriminator_b(b), 1),
        "d_fake": lsgan(model.discriminator_b(fake_b), 0) + lsgan(model.discriminator_a(fake_a), 0),
    }
    terms = model._loss_terms(data, training=False)
    assert set(terms) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(terms[name], value, rtol=1e-5, err_msg=name)
    logs = model.test_on_batch(data, return_dict=True)
    mean = {name: value.mean() for name, value in expected.items()}
    g_loss = mean["g_gan"] + 10 * mean["cycle"] + 5 * mean["identity"]
    assert logs["g_loss"] == pytest.approx(g_loss, rel=1e-5)
    assert logs["d_loss"] == pytest.approx(0.5 * (mean["d_real"] + mean["d_fake"]), rel=1e-5)


@pytest.mark.parametrize("weight", [0.0, 0.25])
def test_masked_cycle_weight_scales_only_the_masked_cycle(weight):
    model = compiled(CycleGAN, masked_cycle_weight=weight)
    data = unpaired_batch()
    a, b = data["a"], data["b"]
    g, f = model.generator_ab, model.generator_ba
    expected = weight * l1(f(g(a)), a) + l1(g(f(b)), b)
    np.testing.assert_allclose(model._loss_terms(data, training=False)["cycle"], expected, rtol=1e-5)
    assert model.get_config()["masked_cycle_weight"] == weight


@pytest.mark.parametrize("weight", [0.0, 0.25])
def test_lambda_gan_weights_only_the_generators_adversarial_term(weight):
    model = compiled(CycleGAN, lambda_gan=weight)
    data = unpaired_batch()
    mean = {name: float(np.mean(value)) for name, value in model._loss_terms(data, training=False).items()}
    logs = model.test_on_batch(data, return_dict=True)
    assert logs["g_loss"] == pytest.approx(weight * mean["g_gan"] + 10 * mean["cycle"] + 5 * mean["identity"],
                                           rel=1e-5)
    assert logs["d_loss"] == pytest.approx(0.5 * (mean["d_real"] + mean["d_fake"]), rel=1e-5)
    assert mean["g_gan"] > 0 and model.get_config()["lambda_gan"] == weight


def test_a_zero_cycle_weight_skips_the_cycle_and_identity_passes():
    """lambda_cycle 0 (which also zeroes the identity weight, a fraction of it): neither term is
    computed or weighted, each generator runs once per direction, and g_loss is the adversarial
    term alone."""
    model = compiled(CycleGAN, lambda_cycle=0.0)
    calls = []
    for network in model.generators:
        network.call = _counting(network.call, calls, network.name)
    data = unpaired_batch()
    terms = model._loss_terms(data, training=False)
    assert set(terms) == {"g_gan", "d_real", "d_fake"}
    assert sorted(calls) == ["generator_ab", "generator_ba"]
    assert set(model.loss_weights()[0]) == {"g_gan"}
    logs = model.test_on_batch(data, return_dict=True)
    assert logs["g_loss"] == pytest.approx(float(np.mean(terms["g_gan"])), rel=1e-5)


def _counting(call, calls, name):
    def counted(*args, **kwargs):
        calls.append(name)
        return call(*args, **kwargs)
    return counted


def test_one_sided_cycle_gives_the_inverse_generator_no_gradient_from_masked_faces():
    """With masked_cycle_weight 0, F only learns from B -> A: feeding it a batch whose unmasked
    half is fixed, F's gradient does not depend on the masked faces."""
    model = compiled(CycleGAN, masked_cycle_weight=0.0, lambda_identity=0.0)
    data = unpaired_batch()
    other = {"a": -data["a"], "b": data["b"]}

    def cycle_gradient(batch):
        with tf.GradientTape() as tape:
            cycle = tf.reduce_mean(model._loss_terms(batch, training=False)["cycle"])
        return tape.gradient(cycle, model.generator_ba.trainable_variables)

    for first, second in zip(cycle_gradient(data), cycle_gradient(other)):
        np.testing.assert_array_equal(first, second)


def test_identity_passes_are_skipped_without_identity_weight():
    model = compiled(CycleGAN, lambda_identity=0.0)
    assert "identity" not in model._loss_terms(unpaired_batch(), training=False)
    assert "identity" not in model.loss_weights()[0]


# ----------------------------------------------------------------------------- training

def test_training_decreases_generator_losses_and_fills_the_pools():
    model = compiled(CycleGAN, pool_size=3)
    data = unpaired_batch()
    history = [model.train_on_batch(data, return_dict=True) for _ in range(5)]
    assert set(history[0]) == set(CycleGAN.LOSS_NAMES)
    assert all(np.isfinite(v) for v in history[-1].values())
    for name in ("g_loss", "cycle", "identity"):
        assert history[-1][name] < 0.75 * history[0][name], (name, [h[name] for h in history])
    assert int(model.pool_a.count.numpy()) == int(model.pool_b.count.numpy()) == 3


def test_constructors_reject_bad_unpaired_options():
    from tfunmask.models import AttentionGAN

    with pytest.raises(ValueError, match="pool_size must not be negative"):
        CycleGAN(SIZE, filters=4, pool_size=-1)
    with pytest.raises(ValueError, match="masked_cycle_weight and lambda_gan must not be negative .got -1.0, 1.0"):
        CycleGAN(SIZE, filters=4, masked_cycle_weight=-1.0)
    with pytest.raises(ValueError, match="must not be negative .got 1.0, -0.5"):
        CycleGAN(SIZE, filters=4, lambda_gan=-0.5)
    with pytest.raises(ValueError, match="aggan_scheme must be one of 1, 2 .got 3."):
        AttentionGAN(SIZE, filters=4, aggan_scheme=3)
    with pytest.raises(ValueError, match="image_size must be a multiple of 16"):
        CycleGAN(24)


# ----------------------------------------------------------------------------- resume

def test_resume_equals_an_uninterrupted_run(tiny_unpaired_data, tmp_path):
    """Weights, optimizer state, pools and learning-rate decay all continue exactly."""
    config = dict(model="cyclegan", data=str(tiny_unpaired_data), image_size=SIZE, batch_size=2,
                  epochs=2, decay_epochs=1, steps_per_epoch=2, validation_steps=1, filters=8, resnet_blocks=2,
                  pool_size=3, strategy="one_device", mixed_precision="none", export=False,
                  image_every=1000)
    with running_eagerly():
        straight, _ = trainer.train(TrainConfig.create(model_dir=str(tmp_path / "straight"), **config), verbose=0)
        split = TrainConfig.create(model_dir=str(tmp_path / "split"), **config)
        with pytest.raises(Crash):
            trainer.train(split, verbose=0, callbacks=[CrashAfterFirstEpoch()])
        resumed, summary = trainer.train(split, resume=True, verbose=0)
    assert summary["start_epoch"] == 1
    assert int(resumed.g_optimizer.iterations.numpy()) == 4
    assert int(resumed.pool_a.count.numpy()) == 3
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
