"""2 replicas == 1 replica for every model: a training step split over two devices (MirroredStrategy
over two logical CPUs, 2 examples each) equals the step on one device with the same global batch of 4.

Each variant runs in a fresh interpreter (logical devices must be set before TensorFlow starts).
The tolerances and why they are what they are: ``tests.training_helpers.replica_report``. Two
deliberately broken layouts (pools drawn per replica, a mean over the local batch) must fail the
same check, so it is known to catch what it is for.

Pix2Pix with L1 trains its traced step (the path of every real run); the other variants and the
mutants run eagerly (``run_eagerly``), which distributes the same step over the same replicas
without tracing it (~10-20 s a model at 32 px). The traced steps of the other models are trained by
the command-line and multi-worker tests.
"""

import textwrap

import pytest

from tests.training_helpers import STATE_TOLERANCE, UPDATE_TOLERANCE, run_script

SCRIPT = textwrap.dedent("""
    import sys
    from tests.training_helpers import replica_report, two_logical_cpus
    two_logical_cpus()
    import json
    import numpy as np
    import tensorflow as tf
    from tfunmask.models import AttentionGAN, CycleGAN, Pix2Pix
    from tfunmask.models.gan import GAN
    from tfunmask.models.image_pool import ImagePool

    variant, size = sys.argv[1], 32
    rng = np.random.default_rng(0)
    unpaired = {k: rng.uniform(-1, 1, (4, size, size, 3)).astype("float32") for k in "ab"}
    target = rng.uniform(-1, 1, (4, size, size, 3)).astype("float32")
    paired = {"masked": np.clip(target + rng.normal(0, .3, target.shape), -1, 1).astype("float32"),
              "target": target, "mask_map": np.ones((4, size, size, 1), "float32")}
    tiny = dict(filters=8, resnet_blocks=2, pool_size=2)  # pools of 2 under a batch of 4: they fill and swap
    builds = {
        "pix2pix_l1": (lambda: Pix2Pix(size, filters=8, dropout=0.0, loss="l1"), paired, {}),
        "pix2pix_cosine_sum": (lambda: Pix2Pix(size, filters=8, dropout=0.0, loss="cosine_sum"), paired,
                               dict(run_eagerly=True)),
        "cyclegan": (lambda: CycleGAN(size, **tiny), unpaired, dict(run_eagerly=True)),
        "aggan_scheme2": (lambda: AttentionGAN(size, aggan_scheme=2, attention_masks=4, **tiny), unpaired, dict(run_eagerly=True)),
    }
    mutant = sys.argv[2] if len(sys.argv) > 2 else None
    if mutant == "local_pool":  # every replica runs its own pool on its own two images
        ImagePool.call = lambda self, images, step: self.query(tf.cast(images, tf.float32), step)[0]
    if mutant == "local_mean":  # a per-replica mean, averaged again by the gradient all-reduce
        GAN.reduce = staticmethod(lambda values, mode="mean": tf.reduce_mean(tf.cast(values, tf.float32)))
    build, data, options = builds[variant]
    if mutant:
        options = dict(run_eagerly=True)
    print(json.dumps(replica_report(build, data, **options)))
""")

# AttentionGAN's scheme I is not checked apart: it differs from scheme II only in how its generator
# turns features into attention (per pixel, per example); pools, discriminators, batch statistics
# and every loss reduction across the batch are the same code.
VARIANTS = ["pix2pix_l1", "pix2pix_cosine_sum", "cyclegan", "aggan_scheme2"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_two_replicas_equal_one_replica(variant):
    """Two steps: trainable updates within UPDATE_TOLERANCE (relative L2), pooled images and
    batch-norm statistics within STATE_TOLERANCE (pixels in [-1, 1]), pool counts equal."""
    report = run_script(SCRIPT, variant, timeout=400)
    assert report["replicas"] == [1, 2]
    assert report["moved"] > 1e-4, report  # the steps really changed the weights
    assert report["update"] < UPDATE_TOLERANCE, report
    assert report["state"] < STATE_TOLERANCE, report
    assert report["counts"], report


def test_pools_drawn_per_replica_fail_the_check():
    """Replica 1 draws its coins for images 1-2 instead of 3-4 of the global batch, so its
    discriminator sees other pooled images (measured: update 3.4e-2)."""
    report = run_script(SCRIPT, "cyclegan", "local_pool", timeout=400)
    assert report["update"] > UPDATE_TOLERANCE or report["state"] > STATE_TOLERANCE, report


def test_a_mean_over_the_local_batch_fails_the_check():
    report = run_script(SCRIPT, "pix2pix_l1", "local_mean", timeout=400)  # measured: 1.0
    assert report["update"] > 10 * UPDATE_TOLERANCE, report
