"""tfunmask: remove face masks from photos with GANs (Pix2Pix, CycleGAN, AttentionGAN) in Keras 3.

``tfunmask.load(path)`` returns an ``Unmasker`` for an exported generator; importing the package
alone loads neither TensorFlow nor dlib.
"""


def load(path=None, **options):
    """An ``Unmasker`` over the generator at ``path`` (default: the shipped model): see
    ``tfunmask.inference.photos.load``."""
    from tfunmask.inference.photos import load as load_unmasker

    return load_unmasker(path, **options)
