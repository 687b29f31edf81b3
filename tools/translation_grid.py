"""Grid of a trained CycleGAN/AttentionGAN's A -> B translations of held-out masked faces.

    python tools/translation_grid.py --model_dir runs/aggan128 --data data/unpaired128 \
        --split test --count 8 --out docs/aggan128_masked_real_grid.png

One row per face of domain A (real masked photos) from --split of the unpaired TFRecords.
Columns: the masked input, then for AttentionGAN its foreground attention sum_{i<n} A_i
(white = written by the generator, black = input kept) and, with --masks, each of the n - 1
foreground masks; then the output G(x). The images are in the run's --image_size.
"""

from pathlib import Path

import numpy as np
from absl import flags

from tfunmask.cli import fail, run_main


def define_flags():
    """Defines the program's flags (only when it runs as a program)."""
    flags.DEFINE_string("model_dir", None, "A finished cyclegan or aggan training run.")
    flags.DEFINE_string("data", None, "Unpaired TFRecord folder (tools/make_tfrecords.py --mode=unpaired).")
    flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split of domain A to show.")
    flags.DEFINE_integer("count", 8, "Rows (faces).", lower_bound=1)
    flags.DEFINE_boolean("masks", False, "AttentionGAN: also show each foreground attention mask.")
    flags.DEFINE_string("out", None, "PNG file to write.")


FLAGS = flags.FLAGS


def translation_columns(model, images, *, each_mask=False):
    """Labelled columns in [-1, 1]: input, [foreground attention, [each mask]], output."""
    outputs = model.generator_ab(images, training=False)
    if not isinstance(outputs, dict):  # CycleGAN: the image alone
        return {"input": images, "output": outputs}
    masks = np.asarray(outputs["attention"])[..., :-1]
    columns = {"input": images, "attention": 2.0 * masks.sum(axis=-1, keepdims=True) - 1.0}
    if each_mask:
        columns.update({f"mask {i + 1}": 2.0 * masks[..., i:i + 1] - 1.0 for i in range(masks.shape[-1])})
    return {**columns, "output": outputs["image"]}


def main(argv):
    if not FLAGS.model_dir or not FLAGS.data or not FLAGS.out:
        fail("--model_dir, --data and --out are required")
    import cv2
    import tensorflow as tf

    from tfunmask.config import ConfigError
    from tfunmask.data import tfrecords
    from tfunmask.pixels import to_unit
    from tfunmask.runs import restore
    from tfunmask.training.callbacks import image_grid

    try:
        model, config = restore(FLAGS.model_dir)
    except ConfigError as error:
        fail(error)
    if not hasattr(model, "generator_ab"):
        fail(f"{FLAGS.model_dir} holds a {config.model_name} run; this grid is for cyclegan and aggan")
    try:
        faces = tfrecords.unpaired_images(FLAGS.data, FLAGS.split, "A", FLAGS.count)
    except LookupError as error:
        fail(error)
    images = tf.image.resize(to_unit(faces), (config.image_size,) * 2, antialias=True)
    grid = image_grid(translation_columns(model, images, each_mask=FLAGS.masks))
    Path(FLAGS.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(FLAGS.out, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f"{len(images)} faces of {FLAGS.split} A -> {FLAGS.out} ({grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    define_flags()
    run_main(main)
