"""The unmasking GANs, by the name ``--model`` uses."""

from tfunmask.models.attentiongan import AttentionGAN
from tfunmask.models.cyclegan import CycleGAN
from tfunmask.models.pix2pix import Pix2Pix

REGISTRY = {"pix2pix": Pix2Pix, "cyclegan": CycleGAN, "aggan": AttentionGAN}


def build(config):
    """The model ``config.model`` names, built from a ``TrainConfig``."""
    if config.model not in REGISTRY:
        raise ValueError(f"unknown model {config.model!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[config.model].from_train_config(config)
