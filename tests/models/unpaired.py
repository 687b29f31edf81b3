"""Helpers shared by the CycleGAN and AttentionGAN tests: tiny batches, models, NumPy losses."""

import keras
import numpy as np
import tensorflow as tf

SIZE = 32
TINY = dict(filters=8, blocks=2)  # for the generator builders
TINY_MODEL = dict(filters=8, resnet_blocks=2)  # the same, as model constructor arguments


def faces(n, seed):
    """Smooth random images (upsampled 4x4 noise) in [-1, 1]."""
    coarse = np.random.default_rng(seed).uniform(-1, 1, (n, 4, 4, 3)).astype(np.float32)
    return tf.image.resize(coarse, (SIZE, SIZE), "bilinear").numpy()


def unpaired_batch(n=2):
    """Domain A: faces with a flat lower half (the "mask"); domain B: other faces."""
    masked = faces(n, 0)
    masked[:, SIZE // 2:] = 0.8
    return {"a": masked, "b": faces(n, 1)}


def compiled(cls, **kwargs):
    """A tiny model that runs eagerly: at 32 px tracing a step of these models costs
    tens of seconds on two cores, an eager step about a second."""
    keras.utils.set_random_seed(0)
    model = cls(SIZE, **{**TINY_MODEL, **kwargs})
    model.compile(keras.optimizers.Adam(2e-3, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5),
                  run_eagerly=True)
    return model


def moved_weights(networks, step):
    """Runs ``step()``; returns, per network, the paths of the weights (trainable or not) it changed."""
    before = [{v.path: v.numpy() for v in network.weights} for network in networks]
    step()
    return [{v.path for v in network.weights if not np.array_equal(v.numpy(), old[v.path])}
            for network, old in zip(networks, before)]


def lsgan(scores, target):
    """Per-example least-squares GAN loss."""
    return ((np.asarray(scores) - target) ** 2).reshape(len(scores), -1).mean(1)


def l1(x, y):
    """Per-example mean absolute difference."""
    return np.abs(np.asarray(x) - np.asarray(y)).reshape(len(x), -1).mean(1)
