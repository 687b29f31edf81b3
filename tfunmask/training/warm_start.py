"""Starting a new run's unmasker from another run's weights (``--warm_start``).

The source is a training run folder (its newest checkpoint, through ``runs.restore``) or an
exported SavedModel folder (``tfunmask.export``: the serving signature captures every weight of
the generator, under its Keras path with "/" written as "_" where the export stored it in
float16). Weights are matched by their path inside the network ("down0_conv/kernel"), so any two
networks built from the same layers match: a composite Pix2Pix generator starts an AttentionGAN's
``backbone="unet"`` G_AB, or another Pix2Pix run (a fine-tune with new loss terms). Every weight
of the target must be found with its shape; anything else is a ConfigError naming what is
missing, so a warm start never silently leaves part of a network at its random start.

Only the network's weights move: optimizers, discriminators and step counters start afresh.
"""

from pathlib import Path

import numpy as np

from tfunmask.config import ConfigError


def _key(path):
    """A weight's name as both sources spell it: Keras path or SavedModel variable name."""
    return path.split(":")[0].replace("/", "_")


def _keyed(named):
    """``{key: array}`` of (name, array) pairs; ConfigError where two names share a key."""
    weights = {}
    for name, value in named:
        key = _key(name)
        if key in weights:
            raise ConfigError(f"the warm start source has two weights named like {name!r}")
        weights[key] = np.asarray(value, dtype=np.float32)
    return weights


def _first(names, shown=4):
    """The first ``shown`` of ``names``, and how many more there are."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def source_weights(path):
    """``{key: float32 array}`` of the unmasker stored at ``path`` (a run folder or a SavedModel)."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))  # held: the signature's variables live as long as it
        return _keyed((v.name, v.numpy()) for v in loaded.signatures["serving_default"].variables)
    from tfunmask import runs  # a run folder (ConfigError when it is not one)

    model, _ = runs.restore(path)
    return _keyed((v.path, v.numpy()) for v in model.unmasker.weights)


def apply(network, weights, source="the warm start source"):
    """Assigns ``weights`` (``source_weights``) to every weight of ``network``; returns how many.
    ConfigError, changing nothing, when one is missing or has another shape."""
    pairs = [(variable, weights.get(_key(variable.path))) for variable in network.weights]
    missing = [variable.path for variable, value in pairs if value is None]
    wrong = [f"{variable.path} {tuple(value.shape)} vs {tuple(variable.shape)}" for variable, value in pairs
             if value is not None and tuple(value.shape) != tuple(variable.shape)]
    if missing or wrong:
        problems = [f"{what}{_first(names)}" for what, names in (("it lacks ", missing), ("shapes differ: ", wrong))
                    if names]
        raise ConfigError(f"{source} does not fit the network {network.name!r}: {'; '.join(problems)} "
                          "(the same architecture and widths are needed)")
    for variable, value in pairs:
        variable.assign(value.astype(variable.dtype))
    return len(pairs)


def warm_start(network, path):
    """``apply`` the unmasker at ``path`` to ``network``; returns how many weights were set."""
    if not Path(path).is_dir():
        raise ConfigError(f"--warm_start: {path} is not a folder (give a run folder or an exported SavedModel)")
    return apply(network, source_weights(path), source=f"--warm_start {path}")
