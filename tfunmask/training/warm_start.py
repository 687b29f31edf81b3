"""Starting a new run's unmasker from another run's weights (``--warm_start``).

The source is a training run folder (its newest checkpoint, through ``runs.restore``) or an
exported SavedModel folder (``tfunmask.export``: the serving signature captures every weight of
the generator, under its Keras path with "/" written as "_" where the export stored it in
float16). Weights are matched by their path inside the network ("down0_conv/kernel"), so any two
networks built from the same layers match: a composite Pix2Pix generator starts an AttentionGAN's
``backbone="unet"`` G_AB, or another Pix2Pix run (a fine-tune with new loss terms). Every weight
of the target must be found with its shape; anything else is a ConfigError naming what is
missing, so a warm start never silently leaves part of a network at its random start.

Only the networks' weights move: optimizers and step counters start afresh. Discriminators start
afresh too unless ``discriminators=True`` (``--warm_start_discriminators``): then a run folder's
discriminators start ours, matched by network name, so a fine-tune keeps its trained adversary.
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


def _network_weights(network):
    return _keyed((v.path, v.numpy()) for v in network.weights)


def _run_model(path):
    """The model of the run folder at ``path``, restored from its newest checkpoint."""
    from tfunmask import runs  # ConfigError when it is not a run folder

    model, _ = runs.restore(path)
    return model


def _is_saved_model(path):
    return (Path(path) / "saved_model.pb").is_file()


def source_weights(path):
    """``{key: float32 array}`` of the unmasker stored at ``path`` (a run folder or a SavedModel)."""
    if _is_saved_model(path):
        from tfunmask.inference.generators import load_saved_model

        loaded = load_saved_model(path)  # held: the signature's variables live as long as it
        return _keyed((v.name, v.numpy()) for v in loaded.signatures["serving_default"].variables)
    return _network_weights(_run_model(path).unmasker)


def _pairs(network, weights, source):
    """(variable, value) for every weight of ``network``; ConfigError when one is missing or has
    another shape."""
    pairs = [(variable, weights.get(_key(variable.path))) for variable in network.weights]
    missing = [variable.path for variable, value in pairs if value is None]
    wrong = [f"{variable.path} {tuple(value.shape)} vs {tuple(variable.shape)}" for variable, value in pairs
             if value is not None and tuple(value.shape) != tuple(variable.shape)]
    if missing or wrong:
        problems = [f"{what}{_first(names)}" for what, names in (("it lacks ", missing), ("shapes differ: ", wrong))
                    if names]
        raise ConfigError(f"{source} does not fit the network {network.name!r}: {'; '.join(problems)} "
                          f"({_hint(network, weights)})")
    return pairs


def _has_map(keys):
    from tfunmask.models.pix2pix import MAP_HEAD  # the layer only a composite U-Net has

    return any(key.startswith(MAP_HEAD) for key in keys)


def _hint(network, weights):
    """What a mismatch most likely means: a composite generator against a plain one, or other widths."""
    ours = _has_map(_key(v.path) for v in network.weights)
    if ours != _has_map(weights):
        composite, plain = ("the network", "the source") if ours else ("the source", "the network")
        return f"{composite} predicts a mask map and {plain} does not: both must be --composite or neither"
    return "the same architecture and widths are needed"


def _assign(pairs, share=1.0):
    for variable, value in pairs:
        if share != 1.0:
            value = share * value + (1.0 - share) * variable.numpy().astype(np.float32)
        variable.assign(value.astype(variable.dtype))
    return len(pairs)


def apply(network, weights, source="the warm start source", share=1.0):
    """Moves every weight of ``network`` to ``share`` × ``weights`` (``source_weights``) +
    (1 − ``share``) × its own value (1: assigns them); returns how many. ConfigError, changing
    nothing, when one is missing or has another shape."""
    return _assign(_pairs(network, weights, source), share)


def warm_start(model, path, discriminators=False):
    """Starts ``model.unmasker`` from the unmasker at ``path`` and, with ``discriminators``, each of
    ``model.discriminators`` from the run folder's discriminator of the same name. Returns how many
    weights were set; ConfigError, changing nothing, where a network does not fit."""
    if not Path(path).is_dir():
        raise ConfigError(f"--warm_start: {path} is not a folder (give a run folder or an exported SavedModel)")
    source = f"--warm_start {path}"
    if not discriminators:
        return apply(model.unmasker, source_weights(path), source)
    if _is_saved_model(path):
        raise ConfigError(f"--warm_start_discriminators: {path} is an exported SavedModel, which holds no "
                          "discriminator (give the run folder)")
    theirs = _run_model(path)
    named = {network.name: network for network in theirs.discriminators}
    absent = [network.name for network in model.discriminators if network.name not in named]
    if absent:
        raise ConfigError(f"--warm_start_discriminators: {path} has no discriminator named {_first(absent)} "
                          f"(it has {', '.join(named) or 'none'})")
    pairs = _pairs(model.unmasker, _network_weights(theirs.unmasker), source)
    for network in model.discriminators:
        pairs += _pairs(network, _network_weights(named[network.name]), source)
    return _assign(pairs)
