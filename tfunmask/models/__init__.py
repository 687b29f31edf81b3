"""The unmasking GANs, by the name ``--model`` uses, and what each one's constructor takes.

A model's constructor arguments are its configuration: the ``model`` section of a run's
``config.json`` holds exactly ``get_config()`` minus Keras' own keys, and ``build`` passes it
straight back in.
"""

import inspect

from tfunmask.models.attentiongan import AttentionGAN
from tfunmask.models.cyclegan import CycleGAN
from tfunmask.models.gan import GAN
from tfunmask.models.pix2pix import Pix2Pix

REGISTRY = {"pix2pix": Pix2Pix, "cyclegan": CycleGAN, "aggan": AttentionGAN}
KERAS_KEYS = ("name", "trainable", "dtype")  # keras.Model's own get_config keys


def model_class(name):
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def parameters(name):
    """``{argument: inspect.Parameter}`` of the model's constructor, through its base classes
    (AttentionGAN passes the rest of its keywords on to CycleGAN)."""
    found = {}
    for cls in model_class(name).__mro__:
        if cls is GAN:
            break
        if "__init__" in vars(cls):
            for param in inspect.signature(cls.__init__).parameters.values():
                if param.name != "self" and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                    found.setdefault(param.name, param)
    return found


def constructor_arguments(model):
    """A built model's constructor arguments (its ``get_config`` without Keras' keys)."""
    return {k: v for k, v in model.get_config().items() if k not in KERAS_KEYS}


def build(name, arguments, dtype="float32"):
    """The model ``name`` built from its constructor ``arguments`` in precision ``dtype``."""
    return model_class(name)(**arguments, dtype=dtype)
