"""Starting a run's unmasker from another run (``training.warm_start``, ``--warm_start``)."""

import shutil

import keras
import numpy as np
import pytest

from tfunmask import models
from tfunmask.config import ConfigError, TrainConfig
from tfunmask.serving import exporter
from tfunmask.training import trainer, warm_start
from tests.test_training import tiny_config

SIZE = 32
UNET = dict(image_size=SIZE, filters=4, max_filters=16)


def composite_pix2pix(seed=0):
    keras.utils.set_random_seed(seed)
    return models.build("pix2pix", {**UNET, "composite": True})


def unet_aggan(**overrides):
    return models.build("aggan", {**UNET, "backbone": "unet", "aggan_scheme": 1, "resnet_blocks": 1,
                                  "pool_size": 2, **overrides})


def faces():
    return np.random.default_rng(3).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)


def test_a_unet_attentiongan_started_from_a_pix2pix_export_unmasks_like_it(tmp_path):
    """G_AB of ``backbone="unet"`` is the composite Pix2Pix generator: from a float32 export it
    gives the same image and map (same weights, same graph); a float16 export gives its weights
    rounded to float16 (large kernels) and the rest exactly."""
    source = composite_pix2pix()
    path = exporter.export_saved_model(source.generator, tmp_path / "saved_model")
    model = unet_aggan()
    assert warm_start.warm_start(model, path) == len(source.generator.weights)
    ours, theirs = model.generator_ab(faces()), source.generator(faces())
    np.testing.assert_array_equal(ours["image"], theirs["unmasked"])
    np.testing.assert_array_equal(ours["attention"][..., :1], theirs["mask"])

    half = exporter.export_saved_model(source.generator, tmp_path / "half", half=True)
    warm_start.warm_start(model, half)
    theirs = {v.path: v for v in source.generator.weights}
    for ours in model.generator_ab.weights:
        expected = theirs[ours.path].numpy()
        if expected.size >= exporter.HALF_MIN_SIZE:
            expected = expected.astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(ours.numpy(), expected, err_msg=ours.path)


@pytest.mark.usefixtures("eager_steps")
def test_training_starts_the_unmasker_from_a_run_folder_and_a_resume_does_not(
        tiny_paired_data, tiny_unpaired_data, tmp_path):
    """A fresh run's G_AB starts where the Pix2Pix run's generator ended: after one step at a
    negligible learning rate its trainable weights are still the source's (a random start differs
    by O(0.1)); the path is recorded in config.json, a resume does not read it again, and a
    missing source is a one-line error."""
    pix2pix_run = tmp_path / "pix2pix"
    source, _ = trainer.train(tiny_config(tiny_paired_data, pix2pix_run, composite=True, max_filters=16,
                                          filters=4, epochs=1, decay_epochs=0, steps_per_epoch=1), verbose=0)
    unpaired = dict(model="aggan", data=tiny_unpaired_data, filters=4, max_filters=16, backbone="unet",
                    aggan_scheme=1, resnet_blocks=1, lambda_attention_gan=0.0,  # what G_AB starts from: no D^att
                    epochs=1, decay_epochs=0, steps_per_epoch=1, batch_size=2)
    model, _ = trainer.train(tiny_config(model_dir=tmp_path / "aggan", warm_start=str(pix2pix_run), lr=1e-9,
                                         **unpaired), verbose=0)
    theirs = {v.path: v for v in source.generator.trainable_weights}
    for ours in model.generator_ab.trainable_weights:
        np.testing.assert_allclose(ours.numpy(), theirs[ours.path].numpy(), atol=1e-6, err_msg=ours.path)
    saved = TrainConfig.load(tmp_path / "aggan")
    assert saved.runtime.warm_start == str(pix2pix_run)
    shutil.rmtree(pix2pix_run)  # a resume restores its own checkpoint: the source is not read again
    saved.optimizer.epochs = 2
    _, summary = trainer.train(saved, resume=True, verbose=0)
    assert summary["start_epoch"] == 1
    with pytest.raises(ConfigError, match="--warm_start: .* is not a folder"):
        trainer.train(tiny_config(model_dir=tmp_path / "b", warm_start=str(tmp_path / "nowhere"), **unpaired),
                      verbose=0)


@pytest.mark.usefixtures("eager_steps")
def test_a_fine_tune_can_keep_the_source_runs_discriminator(tiny_paired_data, tmp_path):
    """With ``warm_start_discriminators`` a Pix2Pix run starts both its generator and its
    PatchGAN from the source run (after one step at a negligible learning rate both still equal
    the source's); without it the discriminator starts at random. A SavedModel source, a model
    whose discriminators the source lacks, and the flag without --warm_start are one-line errors."""
    p2p = dict(composite=True, max_filters=16, filters=4, epochs=1, decay_epochs=0, steps_per_epoch=1)
    source_run = tmp_path / "source"
    source, _ = trainer.train(tiny_config(tiny_paired_data, source_run, **p2p), verbose=0)

    def fine_tune(name, **runtime):
        model, _ = trainer.train(tiny_config(tiny_paired_data, tmp_path / name, warm_start=str(source_run),
                                             lr=1e-9, seed=1, **p2p, **runtime), verbose=0)
        return model

    def same(network, reference):
        return all(np.allclose(a.numpy(), b.numpy(), atol=1e-6)
                   for a, b in zip(network.trainable_weights, reference.trainable_weights))

    kept = fine_tune("kept", warm_start_discriminators=True)
    assert same(kept.generator, source.generator) and same(kept.discriminator, source.discriminator)
    fresh = fine_tune("fresh")
    assert same(fresh.generator, source.generator) and not same(fresh.discriminator, source.discriminator)
    assert TrainConfig.load(tmp_path / "kept").runtime.warm_start_discriminators

    exported = exporter.export_saved_model(source.generator, tmp_path / "saved_model")
    with pytest.raises(ConfigError, match="is an exported SavedModel, which holds no discriminator"):
        warm_start.warm_start(kept, exported, discriminators=True)
    with pytest.raises(ConfigError, match=r"has no discriminator named discriminator_a, discriminator_b, .* "
                                          r"\(it has discriminator\)"):
        warm_start.warm_start(unet_aggan(), source_run, discriminators=True)
    with pytest.raises(ConfigError, match="--warm_start_discriminators .* give --warm_start"):
        tiny_config(tiny_paired_data, tmp_path / "none", warm_start_discriminators=True, **p2p).validate()


def test_a_source_that_does_not_fit_changes_nothing_and_says_what_differs(tmp_path):
    path = exporter.export_saved_model(composite_pix2pix().generator, tmp_path / "saved_model")
    weights = warm_start.source_weights(path)
    wider = unet_aggan(max_filters=32)
    before = [v.numpy() for v in wider.generator_ab.weights]
    with pytest.raises(ConfigError, match=r"does not fit the network 'generator_ab': shapes differ: "
                                          r"down3_conv/kernel \(4, 4, 16, 16\) vs \(4, 4, 16, 32\), .* and \d+ more"):
        warm_start.apply(wider.unmasker, weights)
    for value, variable in zip(before, wider.generator_ab.weights):
        np.testing.assert_array_equal(value, variable.numpy())
    resnet = models.build("aggan", dict(image_size=SIZE, filters=4, resnet_blocks=1, pool_size=2))
    with pytest.raises(ConfigError, match=r"it lacks .* and \d+ more"):
        warm_start.apply(resnet.unmasker, weights)
    with pytest.raises(ConfigError, match="not a tfunmask training directory"):
        warm_start.warm_start(resnet, tmp_path)


def test_a_composite_source_for_a_plain_generator_says_so(tmp_path):
    path = exporter.export_saved_model(composite_pix2pix().generator, tmp_path / "saved_model")
    plain = models.build("pix2pix", UNET)
    with pytest.raises(ConfigError, match=r"it lacks unmasked_conv.* \(the source predicts a mask map and the network "
                                          "does not: both must be --composite or neither"):
        warm_start.apply(plain.unmasker, warm_start.source_weights(path))
    plain_path = exporter.export_saved_model(plain.generator, tmp_path / "plain")
    with pytest.raises(ConfigError, match="the network predicts a mask map and the source does not"):
        warm_start.apply(composite_pix2pix().unmasker, warm_start.source_weights(plain_path))


def test_the_unet_backbone_takes_its_own_arguments_only():
    with pytest.raises(ValueError, match="backbone='unet' composes with one mask: it needs aggan_scheme=1"):
        models.build("aggan", {**UNET, "backbone": "unet"})
    with pytest.raises(ValueError, match="max_filters, normalization and dropout shape the U-Net"):
        models.build("aggan", dict(image_size=SIZE, filters=4, max_filters=16))
    with pytest.raises(ValueError, match="backbone must be one of resnet, unet"):
        models.build("aggan", dict(image_size=SIZE, backbone="vit"))
