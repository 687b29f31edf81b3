"""The contract every model keeps, checked by one harness for all of ``models.REGISTRY``:

* its constructor arguments are its configuration: ``get_config`` returns exactly them (plus
  Keras' name/trainable/dtype), and ``from_config`` rebuilds the same networks;
* it survives a ``.keras`` round trip with every weight;
* one ``train_step`` runs in float32 and in mixed bfloat16 (the mixed precision Keras runs on any
  CPU), with either decoder upsampling, the precision being the model's own policy (the global
  policy is left alone);
* its generator exports as a SavedModel that serves uint8 faces like the Keras generator, with
  the map of where it writes as "mask" where the model has one (composite Pix2Pix, AttentionGAN).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfunmask import models
from tfunmask.models.gan import generator_outputs
from tfunmask.serving import exporter

SIZE = 32
# Tiny but complete: every optional part on where a model has one.
TINY = {
    "pix2pix": dict(image_size=SIZE, filters=4, max_filters=16, composite=True, mask_weight=2.0,
                    segmenter_filters=2, lambda_feature_matching=1.0, lambda_ssim=1.0),
    "cyclegan": dict(image_size=SIZE, filters=4, resnet_blocks=1, pool_size=2),
    "aggan": dict(image_size=SIZE, filters=4, resnet_blocks=1, pool_size=2, attention_masks=3,
                  lambda_attention_map=1.0, lambda_paired=1.0, attention_discriminator="concat"),
    "aggan_unet": dict(image_size=SIZE, filters=4, max_filters=16, backbone="unet", aggan_scheme=1, pool_size=2,
                       lambda_attention_map=1.0, lambda_paired=1.0, attention_discriminator="context",
                       generator_ab_trains="attention"),
}
NAMES = sorted(TINY)  # a case is a model's name, then "_" and a variant's
HAS_MASK = {"pix2pix": True, "cyclegan": False, "aggan": True}


def model_name(case):
    return case.split("_")[0]


def build(case, dtype=None, **overrides):
    return models.build(model_name(case), {**TINY[case], **overrides}, dtype=dtype)


def batch(kind):
    """A batch of the model's kind; an unpaired one also carries synthetic pairs (``"paired"``),
    which a guided AttentionGAN trains on and the other unpaired models ignore."""
    rng = np.random.default_rng(0)

    def images():
        return rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)

    mask = np.zeros((2, SIZE, SIZE, 1), np.float32)
    mask[:, SIZE // 2:] = 1.0
    pairs = {"masked": images(), "target": images(), "mask_map": mask}
    return pairs if kind == "paired" else {"a": images(), "b": images(), "paired": pairs}


def outputs(model, images):
    """(image, mask map or None) of the exported generator, as numpy."""
    image, mask = generator_outputs(model.export_generator()(images, training=False))
    return keras.ops.convert_to_numpy(image), None if mask is None else keras.ops.convert_to_numpy(mask)


def test_the_harness_covers_every_model():
    assert {model_name(case) for case in TINY} == set(models.REGISTRY)


@pytest.mark.parametrize("name", NAMES)
def test_config_is_the_constructor_arguments_and_round_trips(name):
    keras.utils.set_random_seed(0)
    model = build(name)
    arguments = models.constructor_arguments(model)
    assert sorted(arguments) == sorted(models.parameters(model_name(name)))  # no more, no less
    assert {k: arguments[k] for k in TINY[name]} == TINY[name]
    rebuilt = type(model).from_config(model.get_config())
    assert rebuilt.get_config() == model.get_config()
    rebuilt.set_weights(model.get_weights())
    images = batch("paired")["masked"]
    np.testing.assert_array_equal(outputs(rebuilt, images)[0], outputs(model, images)[0])


@pytest.mark.parametrize("name", NAMES)
def test_constructor_checks_its_arguments_up_front(name):
    with pytest.raises(ValueError, match="image_size must be a multiple of 16"):
        build(name, image_size=40)
    with pytest.raises(ValueError, match="filters must be positive"):
        build(name, filters=0)
    with pytest.raises((TypeError, ValueError), match="no_such_argument"):
        build(name, no_such_argument=1)


@pytest.mark.parametrize("name", NAMES)
def test_keras_file_round_trip(name, tmp_path):
    model = build(name)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    assert len(loaded.weights) == len(model.weights)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path)


@pytest.mark.parametrize("upsampling", ["fused", "plain"])
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("name", NAMES)
def test_one_train_step_in_each_precision(name, policy, upsampling):
    before = keras.mixed_precision.global_policy().name
    keras.utils.set_random_seed(0)
    model = build(name, dtype=policy, upsampling=upsampling)
    assert keras.mixed_precision.global_policy().name == before  # the model's own, not global
    compute = "bfloat16" if policy == "mixed_bfloat16" else "float32"
    convolutions = [layer for network in (model.export_generator(),) for layer in network.layers
                    if isinstance(layer, keras.layers.Conv2D)]
    assert convolutions and all(layer.compute_dtype == compute for layer in convolutions)
    assert all(v.dtype == "float32" for v in model.generator_variables)  # weights stay float32
    model.compile(keras.optimizers.Adam(1e-3, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5),
                  run_eagerly=True)  # tracing these models costs more than the step
    start = [v.numpy().copy() for v in model.generator_variables + model.discriminator_variables]
    logs = model.train_on_batch(batch(model.DATA), return_dict=True)
    assert set(logs) == set(model.trackers) and all(np.isfinite(v) for v in logs.values()), logs
    after = [v.numpy() for v in model.generator_variables + model.discriminator_variables]
    changed = [not np.array_equal(a, b) for a, b in zip(start, after)]
    generators = len(model.generator_variables)
    assert any(changed[:generators]) and any(changed[generators:])  # both players stepped
    assert int(model.g_optimizer.iterations) == int(model.d_optimizer.iterations) == 1


@pytest.mark.parametrize("name", NAMES)
def test_export_closes_the_map_only_where_one_composites(name):
    """Every model takes ``mask_closing``: 0 leaves the generator as it is, a radius is taken
    only by a composite generator (whose exported map is then closed), a negative one by none."""
    model = build(name)
    images = np.random.default_rng(2).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_array_equal(generator_outputs(model.export_generator(mask_closing=0)(images))[0],
                                  outputs(model, images)[0])
    with pytest.raises(ValueError, match="mask_closing must be 0"):
        model.export_generator(mask_closing=-1)
    if name in ("pix2pix", "aggan_unet"):  # TINY's Pix2Pix is composite
        _, closed = generator_outputs(model.export_generator(mask_closing=1)(images))
        assert (keras.ops.convert_to_numpy(closed) >= outputs(model, images)[1] - 1e-6).all()  # closing is extensive
    else:
        with pytest.raises(ValueError, match="mask_closing needs a composite U-Net generator"):
            model.export_generator(mask_closing=1)


@pytest.mark.parametrize("name", NAMES)
def test_generator_exports_and_serves_like_keras(name, tmp_path):
    model = build(name)
    path = exporter.export_saved_model(model.export_generator(), tmp_path / "saved_model")
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    faces = np.random.default_rng(1).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    served = serve(images=tf.constant(faces))
    assert served["unmasked"].dtype == tf.uint8 and served["unmasked"].shape == faces.shape
    # uint8 in, uint8 out: the same float generator, so at most one level apart after rounding
    image, mask = outputs(model, faces / 127.5 - 1.0)
    expected = np.clip(np.rint((image + 1.0) * 127.5), 0, 255)
    assert np.abs(served["unmasked"].numpy().astype(int) - expected).max() <= 1
    assert ("mask" in served) == HAS_MASK[model_name(name)] == (mask is not None)
    if mask is not None:  # the map in [0, 1] as uint8 [0, 255]
        assert served["mask"].dtype == tf.uint8 and served["mask"].shape == (*faces.shape[:3], 1)
        assert np.abs(served["mask"].numpy().astype(int) - np.rint(mask * 255)).max() <= 1


@pytest.mark.parametrize("name", NAMES)
def test_generator_converts_to_tflite_and_the_photo_path_takes_both_files(name, tmp_path):
    """Every model's generator, as SavedModel and as float16 TFLite, opens with ``photos.load``
    (what ``unmask --model=`` uses) and unmasks an aligned face of another size, with the mask
    map where the model has one. float16 weights round each weight by at most 2^-11 of itself;
    through these few tiny layers the outputs move far less than one of 255 levels, so 2 levels
    allow the rounding of both files' uint8 outputs."""
    from tfunmask.inference import photos

    model = build(name)
    written = dict(exporter.export_generator(model.export_generator(), tmp_path, ["saved_model", "float16"]))
    face = np.random.default_rng(2).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    crops = np.random.default_rng(3).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    results = {}
    for fmt, path in written.items():
        unmasker = photos.load(path)
        result = unmasker.unmask(face, assume_cropped=True)
        assert result.image.shape == face.shape and len(result.faces) == 1
        results[fmt] = unmasker.generator.predict(crops)
        assert (results[fmt][1] is not None) == HAS_MASK[model_name(name)]
    (saved, saved_map), (lite, lite_map) = results["saved_model"], results["float16"]
    assert np.abs(saved.astype(int) - lite).max() <= 2
    if saved_map is not None:
        assert np.abs(saved_map - lite_map).max() <= 2 / 255
